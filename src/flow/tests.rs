use super::sample::{consume, id, publish, span, Change, TRACE};
use super::*;

const OTHER_TRACE: &str = "ffffffffffffffffffffffffffffffff";

#[test]
fn a_consume_follows_its_parent_publish_else_a_link_into_the_trace() {
    let spans = vec![
        publish(0xa1).at(0, 10).by("orders").on("order.created"),
        consume(0xa2)
            .under(0xa1)
            .at(40, 50)
            .by("billing")
            .on("billing.q"),
        // Tied by a link only; the link into another trace is not a hop of this one.
        consume(0xa3)
            .at(90, 100)
            .by("shipping")
            .linked(OTHER_TRACE, 0xff)
            .linked(TRACE, 0xa1),
        consume(0xa4).at(95, 99).linked(OTHER_TRACE, 0xa1),
    ];
    let journey = follow(&spans);
    assert_eq!(journey.hop_count(), 2);
    assert_eq!(
        journey.hops(),
        [
            Hop {
                publish_span_id: id(0xa1),
                consume_span_id: id(0xa2),
                destination: Some("order.created".into()),
                consume_destination: Some("billing.q".into()),
                system: Some("rabbitmq".into()),
                publish_service: "orders".into(),
                consume_service: "billing".into(),
                broker_wait_micros: 40_000.0,
                via: Via::Parent,
            },
            Hop {
                publish_span_id: id(0xa1),
                consume_span_id: id(0xa3),
                destination: Some("order.created".into()),
                consume_destination: Some("orders".into()),
                system: Some("rabbitmq".into()),
                publish_service: "orders".into(),
                consume_service: "shipping".into(),
                broker_wait_micros: 90_000.0,
                via: Via::Link,
            },
        ]
    );
    assert_eq!(
        journey.follows(2),
        Some(0),
        "a linked consume hangs under its publish"
    );
    assert_eq!(journey.producer(3), None);
    assert_eq!(journey.follows(3), None);
}

#[test]
fn only_publishes_and_consumes_make_a_hop() {
    // A consume under an internal span, and a publish under a consume: no hop.
    let spans = vec![
        span(1, crate::model::SpanKind::Internal, None),
        consume(2).under(1),
        publish(3).under(2),
        // Without messaging facts the span kind decides.
        span(4, crate::model::SpanKind::Consumer, None).under(3),
    ];
    let journey = follow(&spans);
    assert_eq!(journey.producer(1), None);
    assert_eq!(journey.producer(2), None);
    let hop = journey
        .hop(3)
        .expect("a consumer-kind child of a publish is a hop");
    assert_eq!(hop.consume_destination, None);
    assert_eq!(hop.destination.as_deref(), Some("orders"));
}

#[test]
fn a_consume_before_its_publish_waits_no_time() {
    let spans = vec![publish(1).at(5, 6), consume(2).under(1).at(3, 4)];
    assert_eq!(follow(&spans).hops()[0].broker_wait_micros, 0.0);
}

/// wallet publishes a request; identity handles it and publishes a reply, which wallet
/// consumes.
fn request_reply() -> Vec<StoredSpan> {
    vec![
        publish(0xc1).at(0, 1).by("wallet"),
        consume(0xc2).under(0xc1).at(2, 6).by("identity"),
        publish(0xc3).under(0xc2).at(4, 5).by("identity"),
        consume(0xc4).under(0xc3).at(8, 9).by("wallet"),
    ]
}

#[test]
fn a_reply_consumed_by_the_requester_answers_the_request() {
    let spans = request_reply();
    let journey = follow(&spans);
    let want = Reply {
        request_span_id: id(0xc1),
        reply_publish_span_id: id(0xc3),
        reply_consume_span_id: id(0xc4),
        service: "wallet".into(),
        round_trip_micros: 8_000.0,
    };
    assert_eq!(journey.replies_to(0), journey.replies());
    assert_eq!(journey.replies(), [want]);
    assert!(
        journey.replies_to(2).is_empty(),
        "the reply has no reply of its own"
    );
    assert_eq!(journey.hop_count(), 2);
}

#[test]
fn a_message_consumed_by_another_service_is_no_reply() {
    let mut spans = request_reply();
    spans[3].service = "audit".into();
    assert!(follow(&spans).replies().is_empty());
}

#[test]
fn a_parent_cycle_ends() {
    let spans = vec![consume(1).under(2), publish(2).under(1)];
    let journey = follow(&spans);
    assert_eq!(journey.producer(0), Some(1));
    assert!(journey.replies().is_empty());
}

#[test]
fn hops_and_replies_round_trip_as_json() {
    let spans = request_reply();
    let journey = follow(&spans);
    let hops = serde_json::to_value(journey.hops()).unwrap();
    assert_eq!(hops[0]["via"], "parent");
    assert_eq!(hops[0]["publish_span_id"], "00000000000000c1");
    let back: Vec<Hop> = serde_json::from_value(hops).unwrap();
    assert_eq!(back, journey.hops());
    let replies = serde_json::to_value(journey.replies()).unwrap();
    let back: Vec<Reply> = serde_json::from_value(replies).unwrap();
    assert_eq!(back, journey.replies());
}

#[test]
fn nested_publishes_of_one_message_are_one_message_with_every_consumer() {
    // pika's shape: an outer publish with an inner publish of the same message, consumers
    // under the inner one; a publish to another destination nested in it is its own message.
    let spans = vec![
        publish(0xd1).at(0, 10).by("orders").on("order.created"),
        publish(0xd2)
            .under(0xd1)
            .at(1, 9)
            .by("orders")
            .on("order.created"),
        consume(0xd3)
            .under(0xd2)
            .at(20, 30)
            .by("shipping")
            .on("order.created"),
        {
            let mut c = consume(0xd4)
                .under(0xd2)
                .at(15, 40)
                .by("billing")
                .on("order.created");
            c.status = crate::model::StatusCode::Error;
            c
        },
        // A consume nested in a consume of the same message: one delivery.
        consume(0xd5)
            .under(0xd4)
            .at(16, 39)
            .by("billing")
            .on("order.created"),
        publish(0xd6).under(0xd1).at(2, 3).by("orders").on("audit"),
    ];
    let journey = follow(&spans);
    let nested: Vec<Option<usize>> = (0..spans.len()).map(|i| journey.nested_in(i)).collect();
    assert_eq!(nested, [None, Some(0), None, None, Some(3), None]);
    let messages = journey.messages(|system, destination| match (system, destination) {
        ("rabbitmq", "order.created") => vec!["shipping".into(), "billing".into(), "audit".into()],
        _ => vec!["archive".into()],
    });
    assert_eq!(
        messages.len(),
        2,
        "the nested publish is not a message of its own"
    );
    let first = &messages[0];
    assert_eq!((first.publish, first.nested.clone()), (0, vec![1]));
    let got: Vec<(&str, f64, bool)> = first
        .deliveries
        .iter()
        .map(|d| (d.service.as_str(), d.wait_micros, d.error))
        .collect();
    // Waits count from the publish the consume is tied to (the inner one, at 1 ms).
    assert_eq!(
        got,
        [("billing", 14_000.0, true), ("shipping", 19_000.0, false)]
    );
    assert_eq!(first.missing, ["audit"]);
    let audit = &messages[1];
    assert_eq!(audit.destination.as_deref(), Some("audit"));
    assert!(audit.deliveries.is_empty());
    assert_eq!(audit.missing, ["archive"]);
}

#[test]
fn a_cycle_of_nested_publishes_ends() {
    let spans = vec![
        publish(0xe1).under(0xe2).at(0, 5),
        publish(0xe2).under(0xe1).at(1, 4),
    ];
    let journey = follow(&spans);
    assert!(journey.nested_in(0).is_some() && journey.nested_in(1).is_some());
    // Both inner: neither is listed, and nothing loops.
    assert!(journey.messages(|_, _| Vec::new()).is_empty());
}

#[test]
fn a_request_message_carries_its_response() {
    let spans = vec![
        publish(0xf1).at(0, 1).by("wallet").on("identity.2fa"),
        consume(0xf2)
            .under(0xf1)
            .at(2, 6)
            .by("identity")
            .on("identity.2fa"),
        publish(0xf3)
            .under(0xf2)
            .at(4, 5)
            .by("identity")
            .on("amq.gen"),
        consume(0xf4)
            .under(0xf3)
            .at(8, 9)
            .by("wallet")
            .on("amq.gen"),
    ];
    let messages = follow(&spans).messages(|_, _| Vec::new());
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].replies.len(), 1);
    assert_eq!(messages[0].replies[0].reply_consume_span_id, id(0xf4));
    assert_eq!(messages[0].replies[0].round_trip_micros, 8_000.0);
    assert!(messages[1].replies.is_empty());
}
