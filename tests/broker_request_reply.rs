//! Broker request/reply over real HTTP against the real binary: a reply correlated to its
//! request, a timeout, errors, and the two-way topology it builds.

mod common;

use common::{topo, wait_for, TestEnv};
use serde_json::json;
use std::time::{Duration, Instant};
use switchyard::broker::client::Client;

/// Declares the request and reply topics and a responder subscription.
fn declare(c: &Client) {
    c.declare_topic("identity.2fa").unwrap();
    c.declare_topic("identity.2fa.reply").unwrap();
    c.declare_subscription("identity.2fa.requests", "identity.2fa", 30_000, 5)
        .unwrap();
}

/// Answers `n` requests with `{"enabled": user is even}`.
fn responder(env: &TestEnv, n: usize) -> std::thread::JoinHandle<()> {
    let c = env.broker("identity");
    std::thread::spawn(move || {
        let mut answered = 0;
        while answered < n {
            for d in c
                .pull("identity.2fa.requests", 10, Duration::from_secs(5))
                .unwrap()
            {
                let user = d.event["data"]["user"].as_i64().unwrap();
                c.reply(&d.event, &json!({ "user": user, "enabled": user % 2 == 0 }))
                    .unwrap();
                c.ack("identity.2fa.requests", &[d.lease_id]).unwrap();
                answered += 1;
            }
        }
    })
}

#[test]
fn a_request_is_answered_by_its_correlated_reply() {
    let env = TestEnv::start();
    let wallet = env.broker("wallet");
    declare(&wallet);
    let identity = responder(&env, 3);
    for user in [4, 7, 10] {
        let r = wallet
            .request(
                "identity.2fa",
                "identity.2fa.reply",
                &json!({ "user": user }),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(r.reply["data"]["user"], user);
        assert_eq!(r.reply["data"]["enabled"], user % 2 == 0);
        assert_eq!(r.request.topic, "identity.2fa");
        assert!(r.reply["correlationid"].is_string());
    }
    identity.join().unwrap();

    let reply = "destination:switchyard:identity.2fa.reply";
    let sub = "destination:switchyard:identity.2fa.requests";
    wait_for(
        "both directions in the topology",
        Duration::from_secs(20),
        || {
            let edges = topo::edges(&env.get_json("/api/topology"));
            let has = |kind: &str, from: &str, to: &str| {
                edges
                    .get(&(kind.to_string(), from.to_string(), to.to_string()))
                    .is_some_and(|(count, _)| *count == 3)
            };
            (has(
                "publish",
                &topo::service("wallet"),
                "destination:switchyard:identity.2fa",
            ) && has("consume", sub, &topo::service("identity"))
                && has("publish", &topo::service("identity"), reply)
                && has("consume", reply, &topo::service("wallet")))
            .then_some(())
        },
    );
}

#[test]
fn a_request_without_a_reply_times_out_with_504() {
    let env = TestEnv::start();
    let wallet = env.broker("wallet");
    declare(&wallet);
    let started = Instant::now();
    let err = wallet
        .request(
            "identity.2fa",
            "identity.2fa.reply",
            &json!({ "user": 1 }),
            Duration::from_millis(400),
        )
        .unwrap_err();
    assert_eq!(err.status(), Some(504), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert!(started.elapsed() < Duration::from_secs(5));
    // The request itself was published: a late responder still gets it.
    let late = env
        .broker("identity")
        .pull("identity.2fa.requests", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].event["replyto"], "identity.2fa.reply");
    // Unknown topics.
    let err = wallet
        .request(
            "identity.2fa",
            "nope",
            &json!({}),
            Duration::from_millis(100),
        )
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = wallet
        .request(
            "nope",
            "identity.2fa.reply",
            &json!({}),
            Duration::from_millis(100),
        )
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
}
