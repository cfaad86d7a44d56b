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
    // The link carries the window of the page (here the minutes around the trace).
    let linked = page.attrs("#linked-from a.linked-trace", "href");
    assert_eq!(linked.len(), 1);
    assert!(
        linked[0].starts_with(&format!(
            "/traces/{}?window=custom&since=",
            batch.trace_hex()
        )),
        "{linked:?}"
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

#[test]
fn pickers_offer_stored_names_matched_ignoring_case_sorted_and_plotted() {
    let env = TestEnv::start();
    let quick = span("Orders", "send order.created", Producer)
        .messaging("rabbitmq", "order.created")
        .lasting_ms(2);
    let slow = span("Orders", "send order.created", Producer)
        .messaging("rabbitmq", "order.created")
        .at_ms(10)
        .lasting_ms(50)
        .error("refused");
    let other = span("billing", "charge", Server).at_ms(20).lasting_ms(5);
    let body = builder::protobuf(&[&quick, &slow, &other]);
    assert_eq!(env.post_protobuf(&body).status, 200);

    // The pickers hold what is stored.
    let page = Page::ok(&env, "/traces");
    let options = |list: &str| page.attrs(&format!("datalist#{list} option"), "value");
    assert_eq!(options("known-services"), ["Orders", "billing"]);
    assert_eq!(options("known-destinations"), ["order.created"]);
    assert_eq!(
        options("known-operations"),
        ["charge", "send order.created"]
    );

    // Names typed in another case find the stored ones, and the page says how it read them.
    let ids = |page: &Page| page.attrs(".trace-row a.trace-link", "href");
    let typed = Page::ok(&env, "/traces?service=orders&destination=ORDER.CREATED");
    assert_eq!(ids(&typed).len(), 2);
    assert_eq!(typed.all(".matched-name").len(), 2);
    let op = Page::ok(&env, "/traces?operation=SEND+Order.Created");
    assert_eq!(ids(&op).len(), 2);

    // Newest first by default, longest first on request; one dot per trace, errors red.
    let newest = Page::ok(&env, "/traces");
    assert_eq!(
        ids(&newest),
        [
            format!("/traces/{}", other.trace_hex()),
            format!("/traces/{}", slow.trace_hex()),
            format!("/traces/{}", quick.trace_hex())
        ]
    );
    let longest = Page::ok(&env, "/traces?sort=duration");
    assert_eq!(
        ids(&longest),
        [
            format!("/traces/{}", slow.trace_hex()),
            format!("/traces/{}", other.trace_hex()),
            format!("/traces/{}", quick.trace_hex())
        ]
    );
    assert_eq!(longest.all("#trace-scatter circle.dot").len(), 3);
    assert_eq!(longest.all("#trace-scatter circle.dot.error").len(), 1);
    assert_eq!(
        longest.attrs("#trace-scatter a", "href").len(),
        3,
        "each dot opens its trace"
    );
    // The error marker on the failing row's label.
    assert_eq!(longest.all(".trace-row.error .err-mark").len(), 1);
    // A window chosen in the search travels with the trace links.
    let windowed = Page::ok(&env, "/traces?window=6h");
    assert!(
        ids(&windowed).iter().all(|h| h.ends_with("?window=6h")),
        "{:?}",
        ids(&windowed)
    );
}

#[test]
fn dates_without_a_time_are_understood_and_bad_ones_are_said_on_the_page() {
    let env = TestEnv::start();
    let p = span("orders", "send", Producer).messaging("kafka", "orders");
    assert_eq!(env.post_protobuf(&builder::protobuf(&[&p])).status, 200);
    let day = |unix_nanos: u64| {
        let days = unix_nanos / 86_400_000_000_000;
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    };
    let today = day(builder::base_time());
    let page = Page::ok(
        &env,
        &format!("/traces?window=custom&since={today}&until={today}"),
    );
    assert_eq!(
        page.all(".trace-row").len(),
        1,
        "the whole day, typed as a date"
    );
    assert_eq!(
        page.one("input[name=since]").value().attr("value"),
        Some(format!("{today}T00:00:00Z").as_str())
    );
    for preset in ["15m", "6h", "7d"] {
        let page = Page::ok(&env, &format!("/traces?window={preset}"));
        assert_eq!(page.all(".trace-row").len(), 1, "{preset}");
        assert_eq!(
            page.attrs("select[name=window] option[selected]", "value"),
            [preset]
        );
    }
    // A bad date: the whole page, its form as typed and the reason, with status 400.
    let bad = Page::get(
        &env,
        "/traces?window=custom&since=27%2F11%2F2026&service=orders",
    );
    assert_eq!(bad.status, 400);
    let said = ui::text(&bad.one("#search-error"));
    assert!(
        said.contains("since must be") && said.contains("27/11/2026"),
        "{said}"
    );
    assert_eq!(
        bad.one("input[name=since]").value().attr("value"),
        Some("27/11/2026")
    );
    assert_eq!(
        bad.one("input[name=service]").value().attr("value"),
        Some("orders")
    );
    assert!(bad.all(".trace-row").is_empty());
    bad.assert_no_injected_markup("a bad date");

    // The map and the node pages read a bare date as that whole day too.
    let map = Page::ok(
        &env,
        &format!("/?window=custom&since={today}&until={today}"),
    );
    let url = map.attrs("#cy", "data-topology-url");
    let tomorrow = day(builder::base_time() + 86_400_000_000_000);
    assert_eq!(
        url,
        [format!(
            "/api/topology?since={today}T00%3A00%3A00Z&until={tomorrow}T00%3A00%3A00Z"
        )]
    );
    let node = Page::ok(
        &env,
        &format!("/services/service%3Aorders?window=custom&since={today}&until={today}"),
    );
    assert_eq!(node.all(".trace-row").len(), 1, "the day's trace");
    // A bad date there is the page's heading, its window picker as typed and the reason,
    // with status 400; nothing else is shown.
    for (path, heading) in [
        ("/", "Topology"),
        ("/services/service%3Aorders", "orders"),
        ("/destinations/destination%3Akafka%3Aorders", "kafka:orders"),
    ] {
        let typed = "2026-02-30<b id=x>";
        let bad = Page::get(
            &env,
            &format!(
                "{path}?window=custom&since={}&until={today}",
                url_encode(typed)
            ),
        );
        assert_eq!(bad.status, 400, "{path}");
        assert_eq!(ui::text(&bad.one("h1")), heading, "{path}");
        let said = ui::text(&bad.one("#window-error"));
        assert!(
            said.contains("since must be") && said.contains(typed),
            "{path}: {said}"
        );
        assert_eq!(
            bad.one("input[name=since]").value().attr("value"),
            Some(typed),
            "{path}"
        );
        assert_eq!(
            bad.attrs("select[name=window] option[selected]", "value"),
            ["custom"],
            "{path}"
        );
        assert!(bad.all("#cy, .trace-row, .edge-row").is_empty(), "{path}");
        assert!(bad.all("b#x").is_empty(), "{path}");
        bad.assert_no_injected_markup(path);
    }
    let bad = Page::get(&env, "/?window=7y");
    assert_eq!(bad.status, 400);
    assert!(ui::text(&bad.one("#window-error")).contains("window must be one of"));
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
