//! The HTML pages, parsed: map, trace search, trace view, service and destination pages,
//! static assets, error pages, and escaping of hostile span data.

mod common;

use common::builder;
use common::fixtures;
use common::ui::{self, Page};
use common::TestEnv;
use std::collections::BTreeSet;

#[test]
fn map_page_carries_the_window_findings_and_every_node() {
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let page = Page::ok(&env, &format!("/?window=custom&{}", window.query()));
    assert!(page.csp.contains("script-src 'self'"), "csp: {}", page.csp);
    let topo = env.topology(&window);
    let cy = page.one("#cy");
    let url = cy.value().attr("data-topology-url").unwrap();
    assert!(url.starts_with("/api/topology?since="), "{url}");
    // The page's own topology URL answers the same graph.
    assert_eq!(env.get_json(url)["nodes"], topo["nodes"]);
    // The page carries that answer for its script (no second request before the first draw).
    let data: String = page.one("script#topology-data").text().collect();
    let carried: serde_json::Value = serde_json::from_str(&data).expect("topology data");
    assert_eq!(carried, env.get_json(url));
    let ids: BTreeSet<String> = page
        .attrs(".node-select", "data-node-id")
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = topo["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, expected);
    let patterns: BTreeSet<String> = page.attrs(".finding", "data-pattern").into_iter().collect();
    let want: BTreeSet<String> = ["action_response", "broadcast", "dead_end", "work_queue"]
        .map(String::from)
        .into();
    assert_eq!(patterns, want);
    assert!(page
        .texts(".finding-text")
        .iter()
        .any(|t| t.contains("order.created is broadcast to 2 services")));
    let dot = page.one("#download-dot").value().attr("href").unwrap();
    assert!(env.get(dot).text().starts_with("digraph"), "{dot}");
    assert!(page.all("#empty-state").is_empty());
    assert_eq!(
        page.one("#window option[selected]").value().attr("value"),
        Some("custom")
    );
}

#[test]
fn empty_map_tells_a_newcomer_what_to_do() {
    let env = TestEnv::start();
    let page = Page::ok(&env, "/");
    let empty = ui::text(&page.one("#empty-state"));
    assert!(
        empty.contains("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318"),
        "{empty}"
    );
    assert!(empty.contains("switchyard serve --demo"), "{empty}");
    assert_eq!(
        page.one("#window option[selected]").value().attr("value"),
        Some("1h")
    );
    for preset in ["5m", "24h"] {
        let p = Page::ok(&env, &format!("/?window={preset}"));
        assert_eq!(
            p.one("#window option[selected]").value().attr("value"),
            Some(preset)
        );
    }
    assert_eq!(Page::get(&env, "/?window=7y").status, 400);
    assert_eq!(
        Page::get(&env, "/?window=custom&since=yesterday").status,
        400
    );
}

#[test]
fn every_script_and_stylesheet_of_the_pages_is_served() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let pages = [
        format!("/?{}", window.query()),
        "/traces".to_string(),
        format!("/traces/{}", spans[0].trace_id),
    ];
    for path in pages {
        let page = Page::ok(&env, &path);
        let mut assets = page.attrs("script[src]", "src");
        assets.extend(page.attrs("link[href^='/static/']", "href"));
        assert!(assets.len() >= 2, "{path}: {assets:?}");
        for a in assets {
            let reply = env.get(&a);
            assert_eq!(reply.status, 200, "{a}");
            assert!(!reply.text().is_empty(), "{a}");
            let ct = reply.content_type();
            assert!(
                ct.starts_with("text/javascript")
                    || ct.starts_with("text/css")
                    || ct.starts_with("image/"),
                "{a}: {ct}"
            );
        }
    }
    assert_eq!(env.get("/static/nope.js").status, 404);
    assert_eq!(env.get("/static/../Cargo.toml").status, 404);
}

#[test]
fn trace_search_lists_matching_traces_with_links() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let page = Page::ok(&env, "/traces?service=worker&limit=1000");
    let listed: BTreeSet<String> = page
        .attrs(".trace-row a.trace-link", "href")
        .into_iter()
        .map(|h| h.trim_start_matches("/traces/").to_string())
        .collect();
    assert_eq!(listed, fixtures::trace_ids_with(&spans, "worker"));
    assert_eq!(
        page.one("input[name=service]").value().attr("value"),
        Some("worker")
    );
    // A window in which the recording lies keeps them; one that excludes it lists nothing.
    let inside = Page::ok(
        &env,
        &format!("/traces?service=worker&window=custom&{}", window.query()),
    );
    assert_eq!(inside.all(".trace-row").len(), listed.len());
    let outside = Page::ok(&env, "/traces?service=worker&window=5m");
    assert!(outside.all(".trace-row").is_empty());
    assert!(ui::text(&outside.one(".empty-list")).contains("No traces match"));
    let limited = Page::ok(&env, "/traces?limit=2");
    assert_eq!(limited.all(".trace-row").len(), 2);
}

#[test]
fn trace_view_draws_every_span_and_each_broker_hop() {
    let (env, spans, _) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let trace_id = fixtures::trace_ids_with(&spans, "billing")
        .into_iter()
        .next()
        .unwrap();
    let api = env.trace_spans(&trace_id);
    let page = Page::ok(&env, &format!("/traces/{trace_id}"));
    let rows = page.attrs(".wf-row", "data-span-id");
    let mut want: Vec<String> = api
        .iter()
        .map(|s| s["span_id"].as_str().unwrap().to_string())
        .collect();
    let mut got = rows.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "one row per span");
    // The broadcast trace: one publish, consumed by shipping and billing.
    let hops = page.all(".wf-row .bar.broker").len();
    assert!(hops >= 2, "broker segments: {hops}");
    assert_eq!(ui::text(&page.one("#hop-count")), hops.to_string());
    for href in page.attrs(".hop-link", "href") {
        let id = href.trim_start_matches("#span-");
        assert!(
            rows.iter().any(|r| r == id),
            "hop link {href} points at a row"
        );
    }
    let publish = page.all(".wf-row.role-publish");
    assert!(!publish.is_empty());
    let consumers = page.all(".wf-row.role-publish .hop-link");
    assert!(consumers.len() >= 2, "publish row names its consumers");
    let attrs = page.texts(".wf-row table.attrs th");
    assert!(attrs.iter().any(|a| a == "messaging.system"), "{attrs:?}");
    assert!(page.all(".wf-row.error").len() <= api.len());
}

#[test]
fn trace_view_errors_are_pages_with_the_right_status() {
    let env = TestEnv::start();
    let missing = Page::get(&env, "/traces/0123456789abcdef0123456789abcdef");
    assert_eq!(missing.status, 404);
    assert!(ui::text(&missing.one("h1")).contains("404"));
    assert_eq!(Page::get(&env, "/traces/not-hex").status, 400);
}

#[test]
fn service_and_destination_pages_show_edges_dependencies_and_traces() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let q = window.query();
    let orders = Page::ok(
        &env,
        &format!("/services/service%3Aorders?window=custom&{q}"),
    );
    assert_eq!(ui::text(&orders.one("h1")), "orders");
    let cells = orders.texts(".edge-row td:first-child");
    // Each other end says what it is: a service and a destination may share a name.
    for name in [
        "order.created destination",
        "shipping service",
        "billing service",
    ] {
        assert!(cells.iter().any(|c| c == name), "{name} in {cells:?}");
    }
    let sparks = orders.texts(".spark figcaption strong");
    assert_eq!(
        sparks[..2],
        ["5".to_string(), "0".to_string()],
        "{sparks:?}"
    );
    assert_eq!(orders.all(".spark svg polyline").len(), 3);
    let traces = orders.all(".trace-row").len();
    assert_eq!(
        traces,
        fixtures::trace_ids_with(&spans, "orders").len().min(20)
    );

    let dest_href = orders
        .attrs(".edge-row a", "href")
        .into_iter()
        .find(|h| h.starts_with("/destinations/"))
        .expect("link to the destination page");
    let dest = Page::ok(&env, &dest_href);
    assert_eq!(ui::text(&dest.one("h1")), "order.created");
    let cells = dest.texts(".edge-row td:first-child");
    for name in ["orders service", "shipping service", "billing service"] {
        assert!(cells.iter().any(|c| c == name), "{name} in {cells:?}");
    }
    assert!(!dest.all(".trace-row").is_empty());
    let sparks = dest.texts(".spark figcaption strong");
    assert_eq!(
        sparks[..2],
        ["5".to_string(), "1".to_string()],
        "{sparks:?}"
    );
    assert!(
        sparks[2].ends_with("ms") || sparks[2].ends_with("µs"),
        "{sparks:?}"
    );
    assert!(dest
        .texts(".finding-line")
        .iter()
        .any(|f| f.contains("broadcast")));
    // Outside its window a node still has a page, saying it was quiet.
    let quiet = Page::ok(&env, "/services/service%3Aorders?window=5m");
    assert!(ui::text(&quiet.one("#quiet")).contains("No traffic"));
    assert_eq!(Page::get(&env, "/services/destination%3Ax%3Ay").status, 404);
}

#[test]
fn hostile_span_data_is_escaped_on_every_page() {
    let env = TestEnv::start();
    let (publish, consume) = ui::hostile_trace();
    let reply = env.post_protobuf(&builder::protobuf(&[&publish, &consume]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let q = builder::window().query();
    let map = Page::ok(&env, &format!("/?window=custom&{q}"));
    map.assert_no_injected_markup("map");
    let names = map.texts(".node-select");
    assert!(names.iter().any(|n| n == ui::HOSTILE_SERVICE), "{names:?}");
    let ids = map.attrs(".node-select", "data-node-id");
    let search = Page::ok(&env, "/traces");
    search.assert_no_injected_markup("trace search");
    let trace = Page::ok(&env, &format!("/traces/{}", publish.trace_hex()));
    trace.assert_no_injected_markup("trace view");
    let cells = trace.texts("table.attrs td");
    assert!(
        cells.iter().any(|c| c.contains("</script><svg onload")),
        "{cells:?}"
    );
    for id in ids {
        let kind = if id.starts_with("service:") {
            "services"
        } else {
            "destinations"
        };
        let path = format!("/{kind}/{}?window=custom&{q}", url_encode(&id));
        let page = Page::ok(&env, &path);
        page.assert_no_injected_markup(&path);
        assert!(!page.all(".trace-row").is_empty(), "{path}: recent traces");
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn live_stream_announces_stored_spans() {
    let env = TestEnv::start();
    let mut live = env.api().events("/api/live", &[]);
    let first = live.next_frame();
    assert!(first.contains("retry: 1000"), "{first}");
    assert!(
        first.contains("event: stored\ndata: {\"spans_stored\":0}"),
        "{first}"
    );
    let files = fixtures::load(fixtures::PYTHON_PIKA);
    env.post_fixture(&files[0]);
    let next = live.next_frame();
    let n: u64 = next
        .trim_end()
        .rsplit(':')
        .next()
        .and_then(|v| v.trim_end_matches('}').parse().ok())
        .unwrap_or_else(|| panic!("{next}"));
    assert_eq!(n as usize, files[0].spans.len(), "{next}");
}

#[test]
fn trace_search_filters_by_status_and_duration_and_pages_older() {
    let (env, spans, _) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let all = Page::ok(&env, "/traces?limit=1000");
    let total = all.all(".trace-row").len();
    let errors = Page::ok(&env, "/traces?status=error&min_ms=&max_ms=");
    let with_errors: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.error)
        .map(|s| s.trace_id.as_str())
        .collect();
    assert_eq!(errors.all(".trace-row").len(), with_errors.len());
    // Status is answered by the block index; duration is checked on the newest matches.
    assert!(!ui::text(&errors.one("#result-count")).contains("among the newest"));
    assert!(errors.all("#search-incomplete").is_empty());
    let slow = Page::ok(&env, "/traces?min_ms=1000000");
    assert!(slow.all(".trace-row").is_empty());
    assert!(ui::text(&slow.one("#result-count")).contains("among the newest"));
    assert_eq!(Page::get(&env, "/traces?min_ms=abc").status, 400);
    // Paging by three walks every trace exactly once.
    let mut seen = BTreeSet::new();
    let mut next = "/traces?limit=3".to_string();
    for _ in 0..100 {
        let page = Page::ok(&env, &next);
        for href in page.attrs(".trace-row a.trace-link", "href") {
            assert!(seen.insert(href.clone()), "{href} listed twice");
        }
        match page.attrs("#older", "href").pop() {
            Some(href) => next = href,
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
}

#[test]
fn trace_view_shows_the_response_beside_its_request() {
    let (env, spans, _) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    // The recording's request/reply: wallet asks identity over identity.2fa and consumes the
    // reply from a temporary queue.
    let trace_id = fixtures::trace_ids_with(&spans, "identity")
        .into_iter()
        .next()
        .unwrap();
    let page = Page::ok(&env, &format!("/traces/{trace_id}"));
    let links = page.attrs(".wf-row.role-publish .response-link", "href");
    assert!(!links.is_empty(), "no response link in {trace_id}");
    for href in links {
        let id = href.trim_start_matches("#span-");
        let target = page.one(&format!("#span-{id}"));
        assert!(target.value().classes().any(|c| c == "role-consume"));
        assert_eq!(ui::text(&page.one(&format!("#span-{id} .svc"))), "wallet");
    }
}

#[test]
fn trace_view_says_how_a_celery_span_got_its_messaging_system() {
    let (env, spans, _) = TestEnv::with_recording(fixtures::PYTHON_CELERY);
    let trace_id = fixtures::trace_ids_with(&spans, "backoffice")
        .into_iter()
        .next()
        .unwrap();
    let page = Page::ok(&env, &format!("/traces/{trace_id}"));
    let rows = page.all(".wf-row");
    assert!(rows.len() >= 2, "publish and run of one task");
    let names = page.texts(".wf-row table.attrs th");
    let values = page.texts(".wf-row table.attrs td");
    let inferred: Vec<&String> = names
        .iter()
        .zip(&values)
        .filter(|(n, _)| *n == "switchyard.messaging.system_inferred")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(inferred.len(), rows.len(), "every span says it: {names:?}");
    for v in inferred {
        assert!(
            v.contains("instrumentation scope opentelemetry.instrumentation.celery"),
            "{v}"
        );
    }
}

/// A recorded real-SDK failure (pika: billing raises on order-3) is one error of its consume
/// edge with its exception type as the reason, on the API, the destination and the service's
/// page, where each other end is labelled service or destination.
#[test]
fn a_recorded_failed_consume_shows_its_reason_once() {
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let topo = env.topology(&window);
    let edge = topo["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["kind"] == "consume"
                && e["from"] == "destination:rabbitmq:order.created"
                && e["to"] == "service:billing"
        })
        .unwrap_or_else(|| panic!("{topo}"))
        .clone();
    assert_eq!(edge["count"], 5, "{edge}");
    assert_eq!(edge["errors"], 1, "counted once: {edge}");
    assert_eq!(
        edge["failures"],
        serde_json::json!({"RuntimeError": 1}),
        "{edge}"
    );
    let node = topo["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "destination:rabbitmq:order.created")
        .unwrap()
        .clone();
    assert_eq!(node["errors"], 1, "{node}");
    assert!(
        edge["active_rate_per_sec"].as_f64().unwrap() > 0.0,
        "{edge}"
    );

    let page = Page::ok(
        &env,
        &format!("/services/service:billing?window=custom&{}", window.query()),
    );
    let rows = page.all(".edges .edge-row");
    let row = rows
        .iter()
        .find(|r| ui::text(r).contains("order.created"))
        .unwrap();
    let cells: Vec<String> = row
        .select(&scraper::Selector::parse("td").unwrap())
        .map(|c| ui::text(&c))
        .collect();
    assert_eq!(cells[0], "order.created destination", "{cells:?}");
    assert_eq!(cells[3], "1", "errors: {cells:?}");
    assert_eq!(cells[4], "RuntimeError 1", "failures: {cells:?}");
    assert!(!cells[5].is_empty(), "a rate: {cells:?}");
    let heads = page.texts(".edges thead th");
    assert!(
        heads.iter().any(|h| h == "Rate /s (while active)"),
        "{heads:?}"
    );
    // Upstream: orders, through order.created, with the errors of billing's consumes there.
    let upstream = page.all(".edges .edge-row");
    assert!(
        upstream.iter().any(|r| {
            let t = ui::text(r);
            t.starts_with("orders service") && t.contains("RuntimeError 1")
        }),
        "{:?}",
        upstream.iter().map(|r| ui::text(r)).collect::<Vec<_>>()
    );
}
