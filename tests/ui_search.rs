//! Trace search by operation, status and attribute `key=value`, with the produce -> consume
//! hop count of every result, checked as parsed HTML.

mod common;

use common::builder::{self, span, Consumer, Producer, Server};
use common::ui::{self, Page};
use common::TestEnv;

fn consume(parent: &builder::SpanB, service: &str, dest: &str) -> builder::SpanB {
    parent
        .child(service, &format!("process {dest}"), Consumer)
        .messaging("rabbitmq", dest)
        .attr("messaging.operation.type", "process")
}

#[test]
fn search_by_operation_status_and_attribute_shows_hops() {
    let env = TestEnv::start();
    let publish = span("checkout", "send orders", Producer)
        .messaging("rabbitmq", "orders")
        .attr("messaging.operation.type", "send")
        .attr("tenant", "acme")
        .attr("retries", 3i64);
    let billing = consume(&publish, "billing", "orders");
    let shipping = consume(&publish, "shipping", "orders");
    let forward = shipping
        .child("shipping", "send shipments", Producer)
        .messaging("rabbitmq", "shipments")
        .attr("messaging.operation.type", "send");
    let audit = consume(&forward, "audit", "shipments");
    let health = span("checkout", "GET /health", Server)
        .at_ms(5)
        .attr("tenant", "<script>window.__pwned=1</script>")
        .error("down");
    let body = builder::protobuf(&[&publish, &billing, &shipping, &forward, &audit, &health]);
    assert_eq!(env.post_protobuf(&body).status, 200);
    let (messaging, plain) = (publish.trace_hex(), health.trace_hex());

    let ids = |page: &Page| page.attrs(".trace-row a.trace-link", "href");
    let one = |path: &str, want: &str| {
        let page = Page::ok(&env, path);
        assert_eq!(ids(&page), vec![format!("/traces/{want}")], "{path}");
        page
    };
    // Every result carries its hop count: three produce -> consume hops, and none.
    let all = Page::ok(&env, "/traces");
    assert_eq!(all.all(".trace-row").len(), 2);
    // A search that ends now follows new spans (static/app/traces.js); a fixed range does not.
    let live = |p: &Page| {
        p.one("#trace-results")
            .value()
            .attr("data-live")
            .map(String::from)
    };
    assert_eq!(live(&all), Some("1".into()));
    let fixed = Page::ok(
        &env,
        &format!("/traces?window=custom&{}", builder::window().query()),
    );
    assert_eq!(live(&fixed), Some("0".into()));
    assert_eq!(fixed.all(".trace-row").len(), 2);
    let hops = one("/traces?operation=process+shipments", &messaging);
    assert_eq!(ui::text(&hops.one(".trace-row .hops")), "3");
    assert_eq!(
        hops.one("input[name=operation]").value().attr("value"),
        Some("process shipments")
    );
    let health_page = one("/traces?operation=GET+%2Fhealth", &plain);
    assert_eq!(ui::text(&health_page.one(".trace-row .hops")), "0");
    one("/traces?status=error", &plain);
    one("/traces?attr=tenant%3Dacme", &messaging);
    one("/traces?attr=retries%3D3", &messaging);
    // Conditions hold on one span together (as in Jaeger): the tenant is on checkout's span.
    one("/traces?attr=tenant%3Dacme&service=checkout", &messaging);
    assert!(ids(&Page::ok(&env, "/traces?attr=tenant%3Dacme&service=audit")).is_empty());
    let hostile = one(
        "/traces?attr=tenant%3D%3Cscript%3Ewindow.__pwned%3D1%3C%2Fscript%3E",
        &plain,
    );
    hostile.assert_no_injected_markup("search by a hostile attribute");
    assert!(ids(&Page::ok(&env, "/traces?attr=tenant%3Dnobody")).is_empty());
    assert!(ids(&Page::ok(&env, "/traces?operation=nothing")).is_empty());
    assert_eq!(Page::get(&env, "/traces?attr=novalue").status, 400);
}

#[test]
fn the_trace_view_lists_the_traces_that_link_to_it() {
    let env = TestEnv::start();
    let publish = span("orders", "send orders", Producer)
        .messaging("rabbitmq", "orders")
        .attr("messaging.operation.type", "send");
    // A batch consumer in its own trace, linking to the publish.
    let batch = span("<b>reports</b>", "process orders", Consumer)
        .at_ms(50)
        .messaging("rabbitmq", "orders")
        .attr("messaging.operation.type", "process")
        .link(&publish);
    let body = builder::protobuf(&[&publish, &batch]);
    assert_eq!(env.post_protobuf(&body).status, 200);
    let page = Page::ok(&env, &format!("/traces/{}", publish.trace_hex()));
    assert_eq!(
        page.attrs("#linked-from a.linked-trace", "href"),
        vec![format!("/traces/{}", batch.trace_hex())]
    );
    assert_eq!(
        ui::text(&page.one("#linked-from a.linked-trace")),
        "<b>reports</b>: process orders"
    );
    page.assert_no_injected_markup("linked from");
    // The linking trace itself is linked from nothing.
    let other = Page::ok(&env, &format!("/traces/{}", batch.trace_hex()));
    assert!(other.all("#linked-from").is_empty());
}
