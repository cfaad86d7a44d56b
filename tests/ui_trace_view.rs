//! The event-trace view and the trace search in a real headless Chromium: zoom and pan with
//! the minimap, collapsing subtrees, finding within the trace, a colour per service, error
//! rows marked on the label, nested publish spans of one message folded into one row, the
//! journey of each message (who received it, who did not, the wait, the response), the
//! window carried by links, both themes at 1024x700; the search's pause; and screenshots
//! with a virtual time budget that finish; broker-side failures found in traces (a RabbitMQ
//! redelivery, a read from a discovered dead-letter exchange) as error rows with their reason.
//! Screenshots go to test-output/.

mod common;

use common::browser::{self, Browser};
use common::builder::{self, span, Client, Consumer, Producer, Server};
use common::{fixtures, rabbit_management as rabbit_admin, TestEnv};
use serde_json::json;
use std::time::Duration;

/// A checkout trace: an order published through nested publish spans of one message (as
/// pika emits), consumed by shipping and (failing) by billing; and another trace in which
/// audit consumes from the same exchange, so the topology names audit as a subscriber.
struct Shop {
    root: builder::SpanB,
    outer: builder::SpanB,
    inner: builder::SpanB,
    shipping: builder::SpanB,
    billing: builder::SpanB,
    insert: builder::SpanB,
}

fn shop(env: &TestEnv) -> Shop {
    let root = span("checkout", "POST /orders", Server).lasting_ms(40);
    let outer = root
        .child("checkout", "order.created send", Producer)
        .messaging("rabbitmq", "order.created")
        .lasting_ms(3);
    let inner = outer
        .child("checkout", "order.created send", Producer)
        .messaging("rabbitmq", "order.created");
    let shipping = inner
        .child("shipping", "order.created receive", Consumer)
        .messaging("rabbitmq", "order.created")
        .at_ms(10)
        .lasting_ms(8);
    let billing = inner
        .child("billing", "order.created receive", Consumer)
        .messaging("rabbitmq", "order.created")
        .at_ms(12)
        .lasting_ms(6)
        .error("card declined");
    let insert = shipping
        .child("shipping", "INSERT shipments", Client)
        .attr("db.system", "postgresql");
    let other = span("checkout", "order.created send", Producer)
        .messaging("rabbitmq", "order.created")
        .at_ms(100);
    let audit = other
        .child("audit", "order.created receive", Consumer)
        .messaging("rabbitmq", "order.created");
    let body = builder::protobuf(&[
        &root, &outer, &inner, &shipping, &billing, &insert, &other, &audit,
    ]);
    let reply = env.post_protobuf(&body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    Shop {
        root,
        outer,
        inner,
        shipping,
        billing,
        insert,
    }
}

fn trace_ready(b: &Browser) {
    b.wait_for(
        "the trace view",
        "return document.body.getAttribute('data-trace-ready') === '1';",
    );
}

const SHOWN: &str =
    "return [...document.querySelectorAll('#waterfall > .wf-row')].filter(r => !r.hidden).length;";

fn row(id: &str) -> String {
    format!("document.getElementById('span-{id}')")
}

/// A trace of more than `LAZY_DETAILS_ROWS` rows comes without the details under each row
/// (most of a large page's bytes), and with only its first rows as HTML: the script builds the
/// others from the page's row data as they scroll into view. Opening a row, or a link to it,
/// loads that span's details from `/traces/{id}/spans/{span}` (escaped, with the page's window
/// on its links, its hop and consumers from the rows); find still matches attribute values of
/// rows not built yet; a bad or unknown span id is a clear 400 or 404.
#[test]
fn a_large_trace_loads_each_rows_details_when_it_opens() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let root = span("gateway", "publish batch", Producer).messaging("kafka", "batch");
    let mut spans = vec![];
    for i in 0..1001u64 {
        let mut c = root
            .child(&format!("worker-{}", i % 5), "receive", Consumer)
            .messaging("kafka", "batch")
            .at(builder::base_time() + (i + 1) * 100_000);
        if i == 700 {
            c = c.attr("order.id", "o-777").error("<b>declined</b>");
        }
        spans.push(c);
    }
    let mut refs: Vec<&builder::SpanB> = vec![&root];
    refs.extend(spans.iter());
    for chunk in refs.chunks(500) {
        let reply = env.post_protobuf(&builder::protobuf(chunk));
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let marked = spans[700].span_hex();
    let trace = root.trace_hex();
    b.resize(1024, 700);
    b.goto(&env.api_url(&format!("/traces/{trace}?window=1h")));
    trace_ready(&b);
    const BUILT: &str = "return document.querySelectorAll('#waterfall > .wf-row').length;";
    assert_eq!(
        b.eval(
            "return [document.querySelectorAll('.wf-details').length, \
             !!document.getElementById('lazy-details-note'), \
             document.getElementById('waterfall').getAttribute('data-rows')];",
            json!([])
        ),
        json!([0, true, "1002"])
    );
    let built = b.eval(BUILT, json!([])).as_u64().unwrap();
    assert!(built < 1002, "{built} rows built at first");
    // Find matches an attribute value the row does not hold yet.
    b.eval(
        "const i = document.getElementById('trace-find'); i.value = 'O-777'; \
         i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); return 1;",
        json!([]),
    );
    let current = b.wait_for(
        "the match",
        "const r = document.querySelector('.wf-row.match-current'); return r && r.id;",
    );
    assert_eq!(current, json!(format!("span-{marked}")));
    // Opening the row loads its details, as a small trace's row holds them.
    b.eval(
        &format!("{}.open = true; return 1;", row(&marked)),
        json!([]),
    );
    b.wait_for(
        "the loaded details",
        &format!(
            "return {}.getAttribute('data-details-state') === 'loaded';",
            row(&marked)
        ),
    );
    let details = b.eval(
        &format!(
            "const d = {}.querySelector(':scope > .wf-details'); \
             return [d.querySelectorAll('table.attrs td').length > 0, d.textContent.includes('o-777'), \
                     d.querySelector('.bad').textContent.includes('<b>declined</b>'), d.querySelectorAll('b').length, \
                     d.querySelector('a.service-link').getAttribute('href'), \
                     d.textContent.includes('Starts at+70.1 ms'), \
                     [...d.querySelectorAll(':scope > p.hop a.hop-link')].map(a => [a.textContent, a.getAttribute('href')])];",
            row(&marked)
        ),
        json!([]),
    );
    assert_eq!(details[0], json!(true), "{details}");
    assert_eq!(details[1], json!(true), "{details}");
    assert_eq!(details[2], json!(true), "the status is text: {details}");
    assert_eq!(details[3], json!(0), "no element from span data: {details}");
    assert!(
        details[4].as_str().unwrap_or("").contains("window=1h"),
        "the page's window travels: {details}"
    );
    assert_eq!(details[5], json!(true), "from the trace's start: {details}");
    assert_eq!(
        details[6],
        json!([["gateway", format!("#span-{}", root.span_hex())]]),
        "the hop from its publish: {details}"
    );
    // The publish's details name its consumers from the rows' data, the first 200 of 1,001.
    b.eval(
        &format!("{}.open = true; return 1;", row(&root.span_hex())),
        json!([]),
    );
    let consumers = b.wait_for(
        "the publish's details",
        &format!(
            "const r = {}; return r.getAttribute('data-details-state') === 'loaded' && \
             [r.querySelectorAll('.wf-details > p.hop a.hop-link').length, r.querySelector('.wf-details > p.hop').textContent.trim().endsWith('and 801 more')];",
            row(&root.span_hex())
        ),
    );
    assert_eq!(consumers, json!([200, true]));
    // Scrolled to the end of the rows, every row is built.
    b.wait_for(
        "every row built",
        &format!(
            "const rest = document.getElementById('wf-rest'); rest.scrollIntoView({{block: 'end'}}); \
             {} return n === 1002 && rest.getBoundingClientRect().height === 0;",
            BUILT.replace("return ", "const n = ")
        ),
    );
    // A link to a span opens its row with its details.
    let other = spans[3].span_hex();
    b.goto(&env.api_url(&format!("/traces/{trace}?window=1h#span-{other}")));
    trace_ready(&b);
    b.wait_for(
        "the linked row's details",
        &format!(
            "const r = {}; return r.open && r.getAttribute('data-details-state') === 'loaded' && \
             !!r.querySelector(':scope > .wf-details dl.facts');",
            row(&other)
        ),
    );
    // The fragment alone: bad and unknown ids are said.
    let ok = env.get(&format!("/traces/{trace}/spans/{marked}"));
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("o-777"));
    assert!(!ok.text().contains("<b>declined"), "escaped");
    let bad = env.get(&format!("/traces/{trace}/spans/zz"));
    assert_eq!(bad.status, 400, "{}", bad.text());
    let bad = env.get(&format!("/traces/{trace}/spans/{marked}?start=soon"));
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("invalid start"), "{}", bad.text());
    let unknown = env.get(&format!("/traces/{trace}/spans/00000000000000ff"));
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let no_trace = env.get(&format!("/traces/{}/spans/{marked}", "ab".repeat(16)));
    assert_eq!(no_trace.status, 404, "{}", no_trace.text());
}

/// A RabbitMQ message delivered twice to one consumer (pika records no `redelivered` bit): the
/// trace is listed by "errors only", and its view marks the second delivery's row as an error
/// with its reason on the label, readable at 1024x700 in both themes; the first delivery's
/// row is no error.
#[test]
fn a_redelivery_found_in_traces_is_an_error_row_with_its_reason() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let publish = span("cashier", "payments publish", Producer).messaging("rabbitmq", "payments");
    let delivery = |at| {
        publish
            .child("settler", "payments receive", Consumer)
            .messaging("rabbitmq", "payments")
            .instance("settler-1")
            .at_ms(at)
    };
    let (first, again) = (delivery(5), delivery(20));
    // The second delivery arrives after the first, as the broker made them.
    for spans in [vec![&publish, &first], vec![&again]] {
        let reply = env.post_protobuf(&builder::protobuf(&spans));
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    b.resize(1024, 700);
    b.goto(&env.api_url("/traces?status=error&window=1h"));
    let listed = b.wait_for(
        "the failed trace in the search",
        "const a = [...document.querySelectorAll('.trace-row a.trace-link')];          return a.length === 1 && a[0].getAttribute('href');",
    );
    let want = format!("/traces/{}?", publish.trace_hex());
    assert!(
        listed.as_str().is_some_and(|l| l.starts_with(&want)),
        "{listed}"
    );
    b.click(".trace-row a.trace-link");
    trace_ready(&b);
    let check = format!(
        "const again = {}, first = {};          const reason = again.querySelector('.wf-label .err-reason');          const r = reason && reason.getBoundingClientRect();          return [again.classList.contains('error'), first.classList.contains('error'),                  reason && reason.textContent.trim(), !!r && r.width > 0 && r.right <= innerWidth,                  reason && parseFloat(getComputedStyle(reason).fontSize) >= 11,                  !!again.querySelector('.err-mark[title*=\"redelivered\"]')];",
        row(&again.span_hex()),
        row(&first.span_hex())
    );
    let want = json!([true, false, "redelivered", true, true, true]);
    assert_eq!(b.eval(&check, json!([])), want);
    b.switch_theme();
    assert_eq!(b.eval(&check, json!([])), want, "the other theme");
    b.screenshot("trace-redelivered");
}

/// A queue and its dead-letter exchange on the machine's RabbitMQ; deleted on drop.
struct DeadLetterQueue(String);

impl Drop for DeadLetterQueue {
    fn drop(&mut self) {
        let _ = rabbit_admin("DELETE", &format!("queues/%2F/{}", self.0), None);
        let _ = rabbit_admin("DELETE", &format!("exchanges/%2F/{}.dlx", self.0), None);
    }
}

/// A read from a dead-letter exchange that RabbitMQ discovery found (a queue's
/// `x-dead-letter-exchange`): no instrumentation marks a dead-lettered message, but the trace
/// view shows that read as an error row with the reason `dead_lettered` on its label, and
/// "errors only" lists its trace.
#[test]
fn a_read_from_a_discovered_dead_letter_exchange_is_a_dead_lettered_row() {
    let Some(b) = Browser::start() else { return };
    let queue = DeadLetterQueue(format!(
        "sy-dlx-{}-{}",
        std::process::id(),
        builder::now_unix_nanos() % 1_000_000
    ));
    let q = &queue.0;
    let dlx = format!("{q}.dlx");
    rabbit_admin(
        "PUT",
        &format!("exchanges/%2F/{dlx}"),
        Some(json!({"type": "fanout"})),
    )
    .unwrap_or_else(|e| panic!("the management API (tools/rabbitmq/management.sh): {e}"));
    rabbit_admin(
        "PUT",
        &format!("queues/%2F/{q}"),
        Some(json!({"arguments": {"x-dead-letter-exchange": dlx}})),
    )
    .expect("declare the queue");
    let env = common::with_flags(&common::discover_flags(
        "rabbitmq=http://guest:guest@127.0.0.1:15672/%2F",
    ));
    let from = format!("destination:rabbitmq:{q}");
    common::wait_for(
        "discovery of the dead-letter exchange",
        Duration::from_secs(60),
        || {
            let t = env.get_json("/api/topology?window=1h");
            t["edges"]
                .as_array()?
                .iter()
                .any(|e| e["kind"] == "dead_letter" && e["from"] == from.as_str())
                .then_some(())
        },
    );
    let publish = span("cashier", "payments publish", Producer).messaging("rabbitmq", q);
    let read = publish
        .child("auditor", "dead letters receive", Consumer)
        .messaging("rabbitmq", &dlx)
        .at_ms(30);
    let reply = env.post_protobuf(&builder::protobuf(&[&publish, &read]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    b.resize(1024, 700);
    b.goto(&env.api_url("/traces?status=error&window=1h"));
    b.wait_for(
        "the dead-lettered trace in the search",
        "return document.querySelectorAll('.trace-row a.trace-link').length === 1;",
    );
    b.click(".trace-row a.trace-link");
    trace_ready(&b);
    let check = format!(
        "const r = {}; const reason = r.querySelector('.wf-label .err-reason'); \
         return [r.classList.contains('error'), reason && reason.textContent.trim(), \
                 {}.classList.contains('error')];",
        row(&read.span_hex()),
        row(&publish.span_hex())
    );
    assert_eq!(
        b.eval(&check, json!([])),
        json!([true, "dead_lettered", false])
    );
    b.screenshot("trace-dead-lettered");
}

/// pika instrumented globally nests two publish spans per message (recorded:
/// fixtures/otlp/python-pika-global). Each broadcast trace stores four spans (outer and inner
/// publish, shipping's and billing's receive, children of the inner one) and shows three rows,
/// the consumers under the outer publish; the topology counts five messages, not ten.
#[test]
fn recorded_nested_pika_publishes_fold_into_one_row() {
    let Some(b) = Browser::start() else { return };
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA_GLOBAL);
    let sends: Vec<&fixtures::SpanInfo> = spans
        .iter()
        .filter(|s| s.service == "orders" && s.kind == fixtures::KIND_PRODUCER)
        .collect();
    assert_eq!(sends.len(), 10, "the recording nests every publish");
    let outers: Vec<&&fixtures::SpanInfo> = sends
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(outers.len(), 5);
    let topo = env.get_json(&format!("/api/topology?{}", window.query()));
    let published: Vec<u64> = topo["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == "service:orders")
        .map(|e| e["count"].as_u64().unwrap())
        .collect();
    assert_eq!(published, vec![5], "{topo}");

    b.resize(1024, 700);
    for outer in &outers {
        let inner = sends
            .iter()
            .find(|s| s.parent_span_id == outer.span_id)
            .expect("an inner publish");
        let consumers: Vec<&fixtures::SpanInfo> = spans
            .iter()
            .filter(|s| s.parent_span_id == inner.span_id)
            .collect();
        assert_eq!(consumers.len(), 2, "shipping and billing");
        b.goto(&env.api_url(&format!("/traces/{}?{}", outer.trace_id, window.query())));
        trace_ready(&b);
        let counts = b.eval(
            "return [document.querySelectorAll('#waterfall > .wf-row').length, \
             document.getElementById('span-count').textContent.trim()];",
            json!([]),
        );
        assert_eq!(counts, json!([4, "3"]), "{}", outer.trace_id);
        assert_eq!(b.eval(SHOWN, json!([])), json!(3));
        let depths: Vec<String> = consumers
            .iter()
            .map(|c| format!("{}.getAttribute('data-depth')", row(&c.span_id)))
            .collect();
        let (outer_row, inner_row) = (row(&outer.span_id), row(&inner.span_id));
        let rows = b.eval(
            &format!(
                "return [{inner_row}.hidden, {outer_row}.getAttribute('data-depth'), [{}], \
                 {outer_row}.querySelector('summary .wf-folds') !== null];",
                depths.join(", ")
            ),
            json!([]),
        );
        assert_eq!(
            rows,
            json!([true, "0", ["1", "1"], true]),
            "{}",
            outer.trace_id
        );
    }
}

#[test]
fn the_trace_view_zooms_collapses_finds_and_folds_nested_publishes() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let s = shop(&env);
    b.resize(1024, 700);
    b.goto(&env.api_url(&format!("/traces/{}?window=1h", s.root.trace_hex())));
    trace_ready(&b);

    // Six spans, five rows: the inner publish is folded into the outer one, and the count
    // says five, as the topology counts one message.
    let counts = b.eval(
        "return [document.querySelectorAll('#waterfall > .wf-row').length, \
         document.getElementById('span-count').textContent, \
         document.getElementById('message-count').textContent];",
        json!([]),
    );
    assert_eq!(counts, json!([6, "5", "1"]));
    assert_eq!(b.eval(SHOWN, json!([])), json!(5));
    let inner_hidden = format!("return {}.hidden;", row(&s.inner.span_hex()));
    assert_eq!(b.eval(&inner_hidden, json!([])), json!(true));
    // The consumers of the inner span hang under the outer row.
    let depths = b.eval(
        &format!(
            "return [{}, {}].map(r => r.getAttribute('data-depth'));",
            row(&s.outer.span_hex()),
            row(&s.shipping.span_hex())
        ),
        json!([]),
    );
    assert_eq!(depths, json!(["1", "2"]));
    b.click(&format!("#span-{} > summary .wf-folds", s.outer.span_hex()));
    b.wait_for(
        "the unfolded inner publish",
        &SHOWN.replace("length;", "length === 6;"),
    );
    b.click(&format!("#span-{} > summary .wf-folds", s.outer.span_hex()));
    b.wait_for(
        "the folded inner publish",
        &SHOWN.replace("length;", "length === 5;"),
    );

    // Collapse a subtree, then everything, then expand.
    b.click(&format!("#span-{} > summary .wf-fold", s.outer.span_hex()));
    assert_eq!(
        b.eval(SHOWN, json!([])),
        json!(2),
        "root and the collapsed publish"
    );
    assert_eq!(
        b.eval(
            &format!("return {}.open;", row(&s.outer.span_hex())),
            json!([])
        ),
        json!(false),
        "the fold button does not open the row"
    );
    b.click(&format!("#span-{} > summary .wf-fold", s.outer.span_hex()));
    assert_eq!(b.eval(SHOWN, json!([])), json!(5));
    b.click("#collapse-all");
    assert_eq!(b.eval(SHOWN, json!([])), json!(1));

    // Find, ignoring case, reveals a match under collapsed rows.
    b.eval(
        "const i = document.getElementById('trace-find'); i.value = 'insert SHIPMENTS'; \
         i.dispatchEvent(new Event('input')); return 1;",
        json!([]),
    );
    let current = b.wait_for(
        "the match",
        "const r = document.querySelector('.wf-row.match-current'); return r && !r.hidden && r.id;",
    );
    assert_eq!(current, json!(format!("span-{}", s.insert.span_hex())));
    assert_eq!(
        b.eval(
            "return document.getElementById('find-count').textContent;",
            json!([])
        ),
        json!("1 of 1")
    );
    // An attribute value and a status message are found too.
    b.eval(
        "const i = document.getElementById('trace-find'); i.value = 'card declined'; \
         i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); return 1;",
        json!([]),
    );
    let current = b.wait_for(
        "the failing consume",
        "const r = document.querySelector('.wf-row.match-current'); return r && r.id;",
    );
    assert_eq!(current, json!(format!("span-{}", s.billing.span_hex())));
    b.click("#expand-all");

    // A colour per service; the error row is marked on its label as well as its bar.
    let marks = b.eval(
        &format!(
            "const c = r => getComputedStyle(r).getPropertyValue('--svc').trim(); \
             const bill = {b}, ship = {s}; \
             return [c(bill) !== c(ship), c(ship) === c({i}), \
                     !!bill.querySelector(':scope > summary .wf-label .err-mark'), \
                     !!ship.querySelector(':scope > summary .err-mark'), \
                     getComputedStyle(bill.querySelector('.span-bar')).boxShadow.includes('rgb')];",
            b = row(&s.billing.span_hex()),
            s = row(&s.shipping.span_hex()),
            i = row(&s.insert.span_hex())
        ),
        json!([]),
    );
    assert_eq!(marks, json!([true, true, true, false, true]));

    // Zoom: the whole trace's root bar becomes twice the track; the minimap selects a range.
    let ratio = "const r = document.querySelector('#waterfall > .wf-row'); \
                 const bar = r.querySelector('.span-bar').getBoundingClientRect(); \
                 const track = r.querySelector('.wf-track').getBoundingClientRect(); \
                 return bar.width / track.width;";
    let whole = b.eval(ratio, json!([])).as_f64().unwrap();
    assert!((whole - 1.0).abs() < 0.02, "{whole}");
    b.click("#zoom-in");
    let zoomed = b.eval(ratio, json!([])).as_f64().unwrap();
    assert!((zoomed - 2.0).abs() < 0.05, "{zoomed}");
    assert_eq!(
        b.eval(
            "return document.getElementById('waterfall').getAttribute('data-view');",
            json!([])
        ),
        json!("25.000,75.000")
    );
    let view = b.eval(
        "const m = document.getElementById('wf-minimap'); const r = m.getBoundingClientRect(); \
         const at = f => ({clientX: r.left + r.width * f, clientY: r.top + 10, bubbles: true, pointerId: 7}); \
         const c = document.getElementById('wf-minimap-canvas'); \
         c.dispatchEvent(new PointerEvent('pointerdown', at(0.1))); \
         m.dispatchEvent(new PointerEvent('pointermove', at(0.2))); \
         m.dispatchEvent(new PointerEvent('pointerup', at(0.3))); \
         return document.getElementById('waterfall').getAttribute('data-view').split(',').map(Number);",
        json!([]),
    );
    let (from, to) = (view[0].as_f64().unwrap(), view[1].as_f64().unwrap());
    assert!(
        (from - 10.0).abs() < 0.5 && (to - 30.0).abs() < 0.5,
        "{view}"
    );
    // Ctrl+wheel over the bars zooms in around the pointer.
    let narrower = b.eval(
        "const t = document.querySelector('#waterfall > .wf-row .wf-track'); const r = t.getBoundingClientRect(); \
         t.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, ctrlKey: true, bubbles: true, cancelable: true, \
           clientX: r.left + r.width / 2, clientY: r.top + 5})); \
         const v = document.getElementById('waterfall').getAttribute('data-view').split(',').map(Number); \
         return v[1] - v[0];",
        json!([]),
    );
    assert!(narrower.as_f64().unwrap() < 19.9, "{narrower}");
    b.screenshot("trace-view-zoomed");
    b.click("#zoom-reset");

    // The window travels with the links: service chips, destinations, the search.
    let links = b.eval(
        "return [...document.querySelectorAll('.service-chips a, a.destination-link, .links a')]\
         .map(a => a.getAttribute('href'));",
        json!([]),
    );
    let links: Vec<String> = serde_json::from_value(links).unwrap();
    assert!(
        links
            .iter()
            .any(|l| l.starts_with("/services/service%3Ashipping?window=1h")),
        "{links:?}"
    );
    assert!(
        links.iter().any(
            |l| l.starts_with("/destinations/destination%3Arabbitmq%3Aorder.created?window=1h")
        ),
        "{links:?}"
    );
    assert!(links.iter().any(|l| l == "/traces?window=1h"), "{links:?}");

    // The journey of the message: both consumers with their wait, the failure, and audit,
    // which subscribes to the exchange, named as not having received it.
    let journey = b.eval(
        "const j = document.querySelectorAll('#journeys .journey'); \
         return [j.length, [...j[0].querySelectorAll('tr.delivery')].map(r => [r.cells[0].textContent, r.cells[2].textContent, r.classList.contains('error')]), \
                 [...j[0].querySelectorAll('.missing-service')].map(c => c.textContent), \
                 j[0].querySelector('.nested-note') !== null];",
        json!([]),
    );
    assert_eq!(
        journey,
        json!([
            1,
            [["shipping", "8.0 ms", false], ["billing", "10.0 ms", true]],
            ["audit"],
            true
        ])
    );
    b.click(&format!(
        "#journey-{} tr.delivery.error a.hop-link",
        s.outer.span_hex()
    ));
    let target = b.wait_for(
        "the failing consume row",
        "const t = document.querySelector(':target'); return t && t.open && t.id;",
    );
    assert_eq!(target, json!(format!("span-{}", s.billing.span_hex())));

    // Both themes at 1024x700: nothing wider than the window, the tools in view.
    for theme in ["first", "second"] {
        let fits = b.eval(
            "return [document.documentElement.scrollWidth <= window.innerWidth, \
             document.getElementById('wf-tools').getBoundingClientRect().right <= window.innerWidth, \
             !document.getElementById('wf-minimap').hidden];",
            json!([]),
        );
        assert_eq!(fits, json!([true, true, true]), "{theme} theme");
        b.wait_for_paint();
        b.screenshot(&format!("trace-view-1024-{theme}-theme"));
        b.click("#theme-toggle");
        b.wait_for_paint();
    }
}

#[test]
fn a_trace_without_a_window_links_to_minutes_around_it_and_a_bad_window_is_said() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let s = shop(&env);
    b.goto(&env.api_url(&format!("/traces/{}", s.root.trace_hex())));
    trace_ready(&b);
    let href = b.eval(
        "return document.querySelector('.service-chips a').getAttribute('href');",
        json!([]),
    );
    assert!(
        href.as_str().unwrap().contains("?window=custom&since="),
        "{href}"
    );
    b.goto(&env.api_url(&format!(
        "/traces/{}?window=custom&since=yesterday",
        s.root.trace_hex()
    )));
    trace_ready(&b);
    let notice = b.eval(
        "return document.getElementById('window-error').textContent;",
        json!([]),
    );
    assert!(
        notice.as_str().unwrap().contains("since must be"),
        "{notice}"
    );
}

/// The recorded pika shop: the order whose billing failed shows both deliveries, the error
/// on billing's label, and the 2FA request its response.
#[test]
fn journeys_of_a_recorded_pika_trace() {
    let Some(b) = Browser::start() else { return };
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let q = window.query();
    let failing = env.get_json(&format!("/api/traces?service=billing&status=error&{q}"));
    let trace = failing["traces"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    b.goto(&env.api_url(&format!("/traces/{trace}?window=custom&{q}")));
    trace_ready(&b);
    let journey = b.eval(
        "const j = document.querySelector('#journeys .journey'); \
         return [[...j.querySelectorAll('tr.delivery')].map(r => [r.cells[0].textContent, r.classList.contains('error')]).sort(), \
                 j.querySelector('h3 code').textContent, \
                 [...document.querySelectorAll('#waterfall > .wf-row.error .wf-label .svc')].map(e => e.textContent)];",
        json!([]),
    );
    assert_eq!(
        journey,
        json!([
            [["billing", true], ["shipping", false]],
            "order-3",
            ["billing"]
        ])
    );
    b.screenshot("trace-pika-order-3");

    let rpc = env.get_json(&format!("/api/traces?service=identity&{q}&limit=1"));
    let trace = rpc["traces"][0]["trace_id"].as_str().unwrap().to_string();
    b.goto(&env.api_url(&format!("/traces/{trace}?window=custom&{q}")));
    trace_ready(&b);
    let response = b.eval(
        "const j = document.querySelector('#journeys .journey'); \
         return [j.querySelector('tr.delivery td').textContent, j.querySelector('.response-link').textContent];",
        json!([]),
    );
    assert_eq!(response, json!(["identity", "wallet"]));
}

#[test]
fn a_paused_search_keeps_its_list_until_resumed() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let post = |service: &str| {
        let p = span(service, "send", Producer)
            .at(builder::now_unix_nanos())
            .messaging("kafka", "paused.list");
        let reply = env.post_protobuf(&builder::protobuf(&[&p]));
        assert_eq!(reply.status, 200, "{}", reply.text());
    };
    post("first");
    b.goto(&env.api_url("/traces"));
    b.wait_for(
        "the live watch",
        "return document.documentElement.getAttribute('data-live') === 'on' && !document.getElementById('live').hidden;",
    );
    let rows = "return document.querySelectorAll('#trace-results .trace-row').length;";
    assert_eq!(b.eval(rows, json!([])), json!(1));
    b.click("#live-pause");
    post("second");
    b.wait_for(
        "an update held back",
        "return document.getElementById('trace-results').getAttribute('data-missed') === '1';",
    );
    assert_eq!(b.eval(rows, json!([])), json!(1), "paused");
    b.click("#live-pause");
    b.wait_for(
        "the resumed list",
        &rows.replace("length;", "length === 2;"),
    );
}

/// `chromium --virtual-time-budget` waits for open requests; the live stream must not hold
/// its screenshot of `/` or `/traces`.
#[test]
fn screenshots_with_a_virtual_time_budget_finish() {
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        assert!(std::env::var_os("CI").is_none(), "chromium missing in CI");
        return;
    }
    let env = TestEnv::start();
    let p = span("orders", "send", Producer)
        .at(builder::now_unix_nanos())
        .messaging("kafka", "budget.topic");
    let c = p
        .child("billing", "receive", Consumer)
        .messaging("kafka", "budget.topic");
    assert_eq!(env.post_protobuf(&builder::protobuf(&[&p, &c])).status, 200);
    for (path, name) in [("/", "budget-map"), ("/traces", "budget-traces")] {
        let png = browser::output_dir().join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        let profile = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("/usr/bin/chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1024,700",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--screenshot={}", png.display()))
            .arg(env.api_url(path))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromium");
        let status = common::wait_for(
            &format!("chromium's screenshot of {path} to finish"),
            Duration::from_secs(90),
            || child.try_wait().ok().flatten(),
        );
        assert!(status.success(), "{path}: {status}");
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "{path}: no screenshot at {}", png.display());
    }
}

/// A server of another build (`SWITCHYARD_BASELINE`: the path of its binary, e.g. main's), on
/// a store of its own, for a figure measured against it in the same run. Killed on drop.
struct Baseline {
    child: std::process::Child,
    http: common::http::Http,
    otlp: common::http::Http,
    _dir: tempfile::TempDir,
}

impl Baseline {
    fn start() -> Option<Baseline> {
        let binary = std::env::var("SWITCHYARD_BASELINE").ok()?;
        let dir = tempfile::tempdir().unwrap();
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (web, otlp, grpc) = (port(), port(), port());
        let child = std::process::Command::new(binary)
            .args(["serve", "--retention", "36500d", "--db"])
            .arg(dir.path().join("baseline.db"))
            .args(["--http", &format!("127.0.0.1:{web}")])
            .args(["--otlp-http", &format!("127.0.0.1:{otlp}")])
            .args(["--otlp-grpc", &format!("127.0.0.1:{grpc}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the baseline build");
        let http = common::http::Http::new(format!("http://127.0.0.1:{web}"));
        common::wait_for("the baseline server", Duration::from_secs(30), || {
            http.try_send("GET", "/healthz", &[], b"").ok()
        });
        Some(Baseline {
            child,
            http,
            otlp: common::http::Http::new(format!("http://127.0.0.1:{otlp}")),
            _dir: dir,
        })
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Performance figure: the event-trace view of a 5,000-span trace, from navigation to an
/// interactive view (the script's tools wired), and the first collapse/expand of every row;
/// with `SWITCHYARD_BASELINE=<another build's binary>` (e.g. main's), the same trace's view in
/// that build (no script to wait for: its load event), in the same run.
/// `SWITCHYARD_BASELINE=/path/to/main/switchyard cargo test --release --test ui_trace_view -- --ignored large_trace --nocapture`
#[test]
#[ignore]
fn large_trace_time_to_interactive() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let baseline = Baseline::start();
    let root = span("gateway", "publish batch", Producer).messaging("kafka", "batch");
    let mut spans = vec![];
    for i in 0..4999u64 {
        let c = root
            .child(&format!("worker-{}", i % 20), "receive", Consumer)
            .messaging("kafka", "batch")
            .attr("worker.index", i as i64)
            .at(builder::base_time() + (i + 1) * 100_000);
        spans.push(c);
    }
    let mut refs: Vec<&builder::SpanB> = vec![&root];
    refs.extend(spans.iter());
    for chunk in refs.chunks(1000) {
        let body = builder::protobuf(chunk);
        let reply = env.post_protobuf(&body);
        assert_eq!(reply.status, 200, "{}", reply.text());
        if let Some(base) = &baseline {
            let reply = base.otlp.post(
                "/v1/traces",
                &[("Content-Type", "application/x-protobuf")],
                &body,
            );
            assert_eq!(reply.status, 200, "baseline: {}", reply.text());
        }
    }
    let path = format!("/traces/{}", root.trace_hex());
    let server = |get: &dyn Fn() -> u16| {
        let mut ms: Vec<f64> = (0..20)
            .map(|_| {
                let t = std::time::Instant::now();
                assert_eq!(get(), 200);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        ms[10]
    };
    let html = env.get(&path).text().len();
    let best = |v: Vec<f64>| v.into_iter().fold(f64::INFINITY, f64::min);
    let (mut ready, mut loaded, mut click, mut old) = (vec![], vec![], vec![], vec![]);
    let load_end = "return performance.getEntriesByType('navigation')[0].loadEventEnd;";
    for _ in 0..3 {
        b.goto(&env.api_url(&path));
        trace_ready(&b);
        b.wait_for("load", "return document.readyState === 'complete';");
        ready.push(
            b.eval("return window.switchyardTrace.readyAt;", json!([]))
                .as_f64()
                .unwrap(),
        );
        loaded.push(b.eval(load_end, json!([])).as_f64().unwrap());
        click.push(
            b.eval(
                "const t = performance.now(); document.getElementById('collapse-all').click(); \
                 document.getElementById('expand-all').click(); return performance.now() - t;",
                json!([]),
            )
            .as_f64()
            .unwrap(),
        );
        if let Some(base) = &baseline {
            b.goto(&base.http.url(&path));
            b.wait_for("the baseline's load", "return document.readyState === 'complete' && performance.getEntriesByType('navigation')[0].loadEventEnd > 0;");
            old.push(b.eval(load_end, json!([])).as_f64().unwrap());
        }
    }
    let server_new = server(&|| env.get(&path).status);
    b.goto(&env.api_url(&path));
    trace_ready(&b);
    b.screenshot("trace-5000");
    let (ready, loaded, click) = (best(ready), best(loaded), best(click));
    eprintln!(
        "5,000-span trace: {} KiB of HTML, server p50 of 20 {server_new:.1} ms; interactive \
         {ready:.0} ms after navigation (load event {loaded:.0} ms), collapse and expand all \
         {click:.0} ms",
        html / 1024
    );
    if let Some(base) = &baseline {
        let old = best(old);
        let server_old = server(&|| base.http.get(&path).status);
        eprintln!(
            "baseline build, same trace: loaded {old:.0} ms after navigation, server p50 \
             {server_old:.1} ms; ratios (this build / baseline): interactive {:.2}, server {:.2}",
            ready / old,
            server_new / server_old
        );
    }
}
