//! The destination pages of embedded-broker destinations show the broker's state: per
//! subscription depth, in-flight and dead-letter counts; per stream offsets and group lag.

mod common;

use common::ui::{self, Page};
use common::TestEnv;
use serde_json::json;
use std::time::Duration;

fn cell(row: &scraper::ElementRef<'_>, css: &str) -> String {
    let sel = scraper::Selector::parse(css).unwrap();
    ui::text(&row.select(&sel).next().expect(css))
}

#[test]
fn a_topic_page_shows_depth_in_flight_and_dead_letters_per_subscription() {
    let env = TestEnv::start();
    let c = env.broker("orders");
    c.declare_topic("ui.orders").unwrap();
    c.declare_subscription("billing", "ui.orders", 60_000, 1)
        .unwrap();
    c.declare_subscription("audit", "ui.orders", 60_000, 5)
        .unwrap();
    for n in 0..4 {
        c.publish_json("ui.orders", &json!({ "n": n }), None)
            .unwrap();
    }
    // billing: one leased, one dead (nack past max_attempts 1), two ready.
    let leased = c.pull("billing", 1, Duration::from_secs(1)).unwrap();
    assert_eq!(leased.len(), 1);
    let dead = c.pull("billing", 1, Duration::from_secs(1)).unwrap();
    c.nack("billing", &[dead[0].lease_id.clone()], 0).unwrap();

    let page = Page::ok(&env, "/destinations/destination:switchyard:ui.orders");
    page.one("#broker-state");
    let rows = page.all("#broker-queues .queue-row");
    assert_eq!(rows.len(), 2);
    let by_name = |name: &str| {
        rows.iter()
            .find(|r| cell(r, ".queue-name") == name)
            .map(|r| (cell(r, ".ready"), cell(r, ".leased"), cell(r, ".dead")))
            .expect(name)
    };
    assert_eq!(by_name("billing"), ("2".into(), "1".into(), "1".into()));
    assert_eq!(by_name("audit"), ("4".into(), "0".into(), "0".into()));

    // A destination of another system has no broker panel; an undeclared one says so.
    let other = Page::ok(&env, "/destinations/destination:rabbitmq:ui.orders");
    assert!(other.all("#broker-state").is_empty());
    let none = Page::ok(&env, "/destinations/destination:switchyard:nothing.here");
    none.one("#broker-undeclared");
}

#[test]
fn a_stream_page_shows_offsets_and_consumer_group_lag() {
    let env = TestEnv::start();
    let c = env.broker("payments");
    c.declare_stream("ui.payments", None).unwrap();
    for n in 0..5 {
        c.append_json("ui.payments", &json!({ "n": n })).unwrap();
    }
    c.commit("ui.payments", "reports", 2).unwrap();
    c.commit("ui.payments", "audit", 5).unwrap();

    let page = Page::ok(&env, "/destinations/destination:switchyard:ui.payments");
    assert_eq!(ui::text(&page.one("#broker-stream .next-offset")), "5");
    let groups: Vec<(String, String, String)> = page
        .all("#broker-groups .group-row")
        .iter()
        .map(|r| {
            (
                cell(r, ".group-name"),
                cell(r, ".committed"),
                cell(r, ".lag"),
            )
        })
        .collect();
    assert!(
        groups.contains(&("reports".into(), "2".into(), "3".into())),
        "{groups:?}"
    );
    assert!(
        groups.contains(&("audit".into(), "5".into(), "0".into())),
        "{groups:?}"
    );
}

#[test]
fn the_maps_side_panel_shows_a_broker_topics_subscriptions_live() {
    let Some(b) = common::browser::Browser::start() else {
        return;
    };
    let env = TestEnv::start();
    let c = env.broker("orders");
    c.declare_topic("panel.orders").unwrap();
    c.declare_subscription("panel.billing", "panel.orders", 60_000, 1)
        .unwrap();
    c.declare_subscription("panel.audit", "panel.orders", 60_000, 5)
        .unwrap();
    for n in 0..3 {
        c.publish_json("panel.orders", &json!({ "n": n }), None)
            .unwrap();
    }
    let leased = c.pull("panel.billing", 1, Duration::ZERO).unwrap();
    assert_eq!(leased.len(), 1);
    let id = "destination:switchyard:panel.orders";
    common::wait_for("the topic in the topology", Duration::from_secs(10), || {
        let t = env.get_json("/api/topology?window=1h");
        t["nodes"]
            .as_array()?
            .iter()
            .any(|n| n["id"] == id)
            .then_some(())
    });
    b.goto(&env.api_url("/?window=1h"));
    b.wait_for(
        "the map",
        "return document.body.getAttribute('data-map-ready') === '1';",
    );
    b.eval(
        &format!("window.switchyard.cy.getElementById('{id}').emit('tap'); return 1;"),
        json!([]),
    );
    let rows = "return [...document.querySelectorAll('#details-body .broker-table tbody tr')]\
                .map(tr => [...tr.children].map(td => td.textContent)).sort();";
    b.wait_for(
        "the broker state",
        &format!("const r = (() => {{ {rows} }})(); return r.length === 2;"),
    );
    let got = b.eval(rows, json!([]));
    assert_eq!(
        got,
        json!([
            ["panel.audit", "3", "0", "0"],
            ["panel.billing", "2", "1", "0"]
        ])
    );
    // A nack past max_attempts 1 dead-letters it; the panel follows without a click.
    c.nack("panel.billing", &[leased[0].lease_id.clone()], 0)
        .unwrap();
    c.publish_json("panel.orders", &json!({ "n": 3 }), None)
        .unwrap();
    b.wait_for(
        "the dead letter in the panel",
        &format!(
            "const r = (() => {{ {rows} }})(); return r.length === 2 && r[1][3] === '1' && r[1][1] === '3';"
        ),
    );
    b.screenshot("map-broker-state");
}

/// A redelivered, then dead-lettered message: one message on the consume edge, its nacks and
/// the dead-lettering as errors with their reasons, the redelivery apart; and the
/// subscription's own page shows that subscription with the service that pulls from it.
#[test]
fn a_subscription_page_and_its_failures() {
    let env = TestEnv::start();
    let c = env.broker("jobs-worker@w-1");
    c.declare_topic("ui.jobs").unwrap();
    c.declare_subscription("ui.jobs.work", "ui.jobs", 60_000, 2)
        .unwrap();
    env.broker("jobs-api")
        .publish_json("ui.jobs", &json!({ "n": 1 }), None)
        .unwrap();
    for attempt in 1..=2 {
        let d = c.pull("ui.jobs.work", 1, Duration::from_secs(1)).unwrap();
        assert_eq!(d.len(), 1, "attempt {attempt}");
        c.nack("ui.jobs.work", &[d[0].lease_id.clone()], 0).unwrap();
    }
    let dest = "destination:switchyard:ui.jobs.work";
    let edge = common::wait_for(
        "the failures on the consume edge",
        Duration::from_secs(20),
        || {
            let t = env.get_json("/api/topology?window=5m");
            t["edges"]
                .as_array()?
                .iter()
                .find(|e| {
                    e["kind"] == "consume" && e["from"] == dest && e["failures"]["dead_letter"] == 1
                })
                .cloned()
        },
    );
    assert_eq!(edge["to"], "service:jobs-worker", "{edge}");
    assert_eq!(edge["count"], 1, "{edge}");
    assert_eq!(
        edge["failures"],
        json!({"nack": 2, "redelivered": 1, "dead_letter": 1}),
        "{edge}"
    );
    assert_eq!(edge["errors"], 3, "{edge}");
    // Errors only: the message's trace.
    let found = env.get_json("/api/traces?status=error&destination=ui.jobs.work&window=5m");
    assert_eq!(found["traces"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["traces"][0]["hops"], 1, "{found}");

    let page = Page::ok(&env, &format!("/destinations/{dest}"));
    assert!(page.all("#broker-undeclared").is_empty());
    assert_eq!(ui::text(&page.one("#broker-topic")), "ui.jobs");
    assert_eq!(ui::text(&page.one("#broker-subscription .dead")), "1");
    assert_eq!(ui::text(&page.one("#broker-subscription .ready")), "0");
    assert_eq!(ui::text(&page.one("#broker-subscription .leased")), "0");
    assert_eq!(
        page.texts("#broker-consumers .consumer"),
        ["jobs-worker@w-1"]
    );
    // The topic's page lists the subscription with its consumer.
    let topic = Page::ok(&env, "/destinations/destination:switchyard:ui.jobs");
    let row = topic.one("#broker-queues .queue-row");
    assert_eq!(cell(&row, ".consumers"), "jobs-worker@w-1");
}
