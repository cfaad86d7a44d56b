//! Push delivery (webhooks) against the real binary: retries with backoff until a 2xx, the
//! CloudEvent and its trace context in each POST, and dead-lettering when the endpoint never
//! accepts.

mod common;

use common::{wait_for, TestEnv};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One POST the webhook received: (when, headers, body).
type Hit = (Instant, Vec<(String, String)>, Value);

/// A webhook on a free port answering 500 to the first `failures` POSTs, then 200.
fn webhook(failures: usize) -> (String, Arc<Mutex<Vec<Hit>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let seen = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                let line = line.trim_end().to_string();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(": ") {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.parse().unwrap();
                    }
                    headers.push((k.to_ascii_lowercase(), v.to_string()));
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let n = {
                let mut hits = seen.lock().unwrap();
                hits.push((
                    Instant::now(),
                    headers,
                    serde_json::from_slice(&body).unwrap(),
                ));
                hits.len()
            };
            let status = if n <= failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, hits)
}

fn declare_push(env: &TestEnv, name: &str, url: &str, attempts: u32) {
    let body = json!({"topic": "orders", "max_attempts": attempts, "visibility_timeout_ms": 5000,
                      "push": {"url": url, "service": "billing", "backoff_ms": 100}});
    let path = format!("/broker/subscriptions/{name}");
    let reply = env.api().send_json("PUT", &path, &body);
    assert_eq!(reply.status, 201, "{}", reply.text());
}

#[test]
fn a_webhook_is_retried_with_backoff_until_it_answers_2xx() {
    let env = TestEnv::start();
    let c = env.broker("orders");
    c.declare_topic("orders").unwrap();
    let (url, hits) = webhook(2);
    declare_push(&env, "billing.push", &url, 5);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    c.publish_json("orders", &json!({ "order": 1 }), Some(tp))
        .unwrap();
    wait_for("the message acked", Duration::from_secs(20), || {
        let s = &c.subscriptions().unwrap()[0];
        (hits.lock().unwrap().len() == 3 && s.ready + s.leased == 0).then_some(())
    });
    let hits = hits.lock().unwrap();
    for (_, headers, body) in hits.iter() {
        assert_eq!(body["data"]["order"], 1);
        assert_eq!(body["specversion"], "1.0");
        let header = |k: &str| {
            headers
                .iter()
                .find(|(h, _)| h == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("content-type"), Some("application/cloudevents+json"));
        assert!(header("traceparent")
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }
    // Backoff: 100 ms, then 200 ms.
    assert!(hits[1].0 - hits[0].0 >= Duration::from_millis(90));
    assert!(hits[2].0 - hits[1].0 >= Duration::from_millis(190));
}

#[test]
fn a_webhook_that_never_accepts_sends_the_message_to_the_dead_letters() {
    let env = TestEnv::start();
    let c = env.broker("orders");
    c.declare_topic("orders").unwrap();
    let (url, hits) = webhook(usize::MAX);
    declare_push(&env, "broken.push", &url, 2);
    c.publish_json("orders", &json!({ "order": 2 }), None)
        .unwrap();
    wait_for("a dead letter", Duration::from_secs(20), || {
        (c.subscriptions().unwrap()[0].dead == 1).then_some(())
    });
    assert_eq!(hits.lock().unwrap().len(), 2);
    let bad = env.api().send_json(
        "PUT",
        "/broker/subscriptions/tls.push",
        &json!({"topic": "orders", "push": {"url": "https://example.com"}}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[test]
fn push_subscriptions_resume_after_a_restart() {
    let mut env = TestEnv::start();
    env.broker("orders").declare_topic("orders").unwrap();
    let (url, hits) = webhook(0);
    declare_push(&env, "billing.push", &url, 5);
    env.restart();
    let c = env.broker("orders");
    c.publish_json("orders", &json!({ "order": 3 }), None)
        .unwrap();
    wait_for(
        "the webhook called after the restart",
        Duration::from_secs(20),
        || (hits.lock().unwrap().len() == 1).then_some(()),
    );
    assert_eq!(hits.lock().unwrap()[0].2["data"]["order"], 3);
}
