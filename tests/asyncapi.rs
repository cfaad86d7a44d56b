//! AsyncAPI: the observed architecture as an AsyncAPI 3.0 document (`GET /api/asyncapi`,
//! `switchyard export --format asyncapi`), checked against the official JSON schema by a real
//! validator (Ajv with the pinned @asyncapi/specs, tools/record/node/validate-asyncapi.js) on
//! recorded real-SDK fixtures (RabbitMQ, NATS, Kafka) and the demo; and `serve --declared`:
//! AsyncAPI 2.6 and 3.0 documents (fixtures/asyncapi/) compared with what was observed, as drift
//! findings in the API, the map page, the map itself (headless Chromium) and DOT.

mod common;

use common::browser::Browser;
use common::fixtures::{self, Window};
use common::{builder, TestEnv};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn declared_doc(name: &str) -> String {
    fixtures::root()
        .join("asyncapi")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Validates a JSON document against the AsyncAPI schema of its version; the validator's
/// complaints when it is not valid. Fails (never skips) when the validator is not installed.
fn schema_errors(doc: &Value) -> Option<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/record/node");
    assert!(
        dir.join("node_modules/@asyncapi/specs").is_dir() && dir.join("node_modules/ajv").is_dir(),
        "the AsyncAPI validator is not installed: run tools/record/setup.sh (.ci/run does)"
    );
    let mut child = Command::new("node")
        .arg(dir.join("validate-asyncapi.js"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("validator output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(0) => {
            assert!(stdout.starts_with("valid"), "{stdout}");
            None
        }
        Some(1) => Some(stdout),
        _ => panic!(
            "validator failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn assert_valid(doc: &Value, what: &str) {
    if let Some(errors) = schema_errors(doc) {
        panic!("{what} is not valid AsyncAPI:\n{errors}\n{doc:#}");
    }
}

/// Only a `--declared` document names it (not in the observed document).
fn declared_only(x: &Value) -> bool {
    x["seen_in"] == json!(["declared"])
}

/// Channels are the topology's destinations (address = name), operations its publish and
/// consume edges between services and destinations (what was observed).
fn assert_mirrors(doc: &Value, topo: &Value, what: &str) {
    let nodes = topo["nodes"].as_array().unwrap();
    let dests: BTreeSet<(&str, &str)> = nodes
        .iter()
        .filter(|n| n["kind"] == "destination" && !declared_only(n))
        .map(|n| (n["id"].as_str().unwrap(), n["name"].as_str().unwrap()))
        .collect();
    let channels: BTreeSet<(&str, &str)> = doc["channels"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| {
            (
                c["x-switchyard-node"].as_str().unwrap(),
                c["address"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(channels, dests, "{what}");
    let kind_of = |id: &str| {
        nodes
            .iter()
            .find(|n| n["id"] == id)
            .map(|n| n["kind"].as_str().unwrap().to_string())
    };
    let mut wanted = BTreeSet::new();
    for e in topo["edges"].as_array().unwrap() {
        if declared_only(e) {
            continue;
        }
        let (from, to) = (e["from"].as_str().unwrap(), e["to"].as_str().unwrap());
        let (service, dest, action) = match e["kind"].as_str().unwrap() {
            "publish" => (from, to, "send"),
            "consume" => (to, from, "receive"),
            _ => continue,
        };
        if kind_of(service).as_deref() == Some("service")
            && kind_of(dest).as_deref() == Some("destination")
        {
            wanted.insert((service.to_string(), dest.to_string(), action.to_string()));
        }
    }
    let channel_node = |r: &str| -> String {
        let id = r.strip_prefix("#/channels/").unwrap();
        doc["channels"][id]["x-switchyard-node"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let got: BTreeSet<(String, String, String)> = doc["operations"]
        .as_object()
        .unwrap()
        .values()
        .map(|o| {
            (
                o["x-switchyard-service-node"].as_str().unwrap().to_string(),
                channel_node(o["channel"]["$ref"].as_str().unwrap()),
                o["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, wanted, "{what}");
    assert!(!wanted.is_empty(), "{what}: no operations");
}

#[test]
fn the_validator_refuses_what_is_not_asyncapi_3() {
    // The check below would pass anything if the validator did: a document missing required
    // fields and one with a wrong binding are refused.
    let no_version = json!({"asyncapi": "3.0.0", "info": {"title": "x"}});
    assert!(schema_errors(&no_version).unwrap().contains("version"));
    let bad_binding = json!({"asyncapi": "3.0.0", "info": {"title": "x", "version": "1"},
        "channels": {"c": {"address": "c", "bindings": {"amqp": {"is": "queue"}}}}});
    assert!(schema_errors(&bad_binding).is_some());
    let good = json!({"asyncapi": "3.0.0", "info": {"title": "x", "version": "1"},
        "channels": {"c": {"address": "c", "bindings": {"amqp": {"is": "queue", "queue": {"name": "c"}}}}}});
    assert_valid(&good, "a minimal document");
}

#[test]
fn recorded_sdk_topologies_export_valid_asyncapi_through_the_api_and_the_cli() {
    let mut sets = fixtures::ALL_SETS.to_vec();
    sets.push(fixtures::KAFKA);
    for set in sets {
        let (env, _, window) = TestEnv::with_recording(set);
        let doc = env.get_json(&format!("/api/asyncapi?{}", window.query()));
        assert_valid(&doc, set);
        assert_eq!(doc["asyncapi"], "3.0.0");
        assert_eq!(doc["info"]["x-switchyard-window"]["since"], window.since());
        assert_mirrors(&doc, &env.topology(&window), set);
        let (status, out, err) = env.export_cli(&[
            "--format",
            "asyncapi",
            "--since",
            &window.since(),
            "--until",
            &window.until(),
        ]);
        assert!(status.success(), "{set}: {err}");
        let cli: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(cli, doc, "{set}: the CLI and the API differ");
        let systems: BTreeSet<&str> = doc["servers"]
            .as_object()
            .unwrap()
            .values()
            .map(|s| s["protocol"].as_str().unwrap())
            .collect();
        let want = match set {
            fixtures::KAFKA => "kafka",
            fixtures::PYTHON_NATS => "nats",
            _ => "amqp",
        };
        assert!(systems.contains(want), "{set}: {systems:?}");
        match set {
            fixtures::KAFKA => {
                let orders = doc["channels"]
                    .as_object()
                    .unwrap()
                    .values()
                    .find(|c| c["address"] == "orders")
                    .expect("the orders topic");
                assert_eq!(orders["bindings"]["kafka"]["topic"], "orders");
                // A Kafka destination is a topic, from the spans alone.
                assert_eq!(orders["x-switchyard-entity"], "topic", "{orders}");
            }
            fixtures::PYTHON_PIKA => {
                let c = &doc["channels"]["tasks"];
                assert_eq!(c["address"], "tasks");
                let op = &doc["operations"]["checkout.send.tasks"];
                assert_eq!(op["action"], "send");
                assert_eq!(op["x-switchyard-count"], 6);
                assert_eq!(op["channel"]["$ref"], "#/channels/tasks");
            }
            fixtures::PYTHON_NATS => {
                let op = &doc["operations"]["auditor.receive.orders.created"];
                assert_eq!(op["bindings"]["nats"]["bindingVersion"], "0.1.0");
                let c = doc["channels"]
                    .as_object()
                    .unwrap()
                    .values()
                    .find(|c| c["address"] == "orders.created")
                    .expect("the orders.created subject");
                assert_eq!(c["x-switchyard-entity"], "subject", "{c}");
            }
            _ => {}
        }
    }
}

#[test]
fn the_declared_fixture_documents_are_valid_asyncapi() {
    for name in [
        "shop-checkout.yaml",
        "shop-payments.yaml",
        "shop-reporting.json",
        "pika-orders.yaml",
    ] {
        let text = std::fs::read_to_string(declared_doc(name)).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        assert_valid(&doc, name);
    }
}

fn findings(topo: &Value, pattern: &str) -> Vec<Vec<String>> {
    topo["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["pattern"] == pattern)
        .map(|f| {
            f["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn edge<'a>(topo: &'a Value, from: &str, to: &str, kind: &str) -> Option<&'a Value> {
    topo["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == from && e["to"] == to && e["kind"] == kind)
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The python-pika recording against pika-orders.yaml (3.0): each kind of drift, exactly.
fn pika_with_declaration() -> (TestEnv, Window) {
    let env = TestEnv::with_args(&["--declared", &declared_doc("pika-orders.yaml")]);
    let files = fixtures::load(fixtures::PYTHON_PIKA);
    env.post_fixtures(&files);
    let spans: Vec<_> = files.into_iter().flat_map(|f| f.spans).collect();
    (env, Window::of_spans(&spans))
}

#[test]
fn declared_drift_on_a_recorded_rabbitmq_shop() {
    let (env, window) = pika_with_declaration();
    let topo = env.topology(&window);
    let refunded = "destination:rabbitmq:order.refunded";
    let invoices = "destination:rabbitmq:invoice.requests";
    assert_eq!(
        findings(&topo, "declared_silent_publisher"),
        vec![ids(&["service:orders", refunded])]
    );
    let unused: BTreeSet<Vec<String>> = findings(&topo, "declared_unused").into_iter().collect();
    assert_eq!(unused, BTreeSet::from([ids(&[invoices]), ids(&[refunded])]));
    assert_eq!(
        findings(&topo, "undeclared_flow"),
        vec![ids(&[
            "service:billing",
            "destination:rabbitmq:order.created"
        ])]
    );
    // Descriptions name the document by its file name.
    let described: Vec<&str> = topo["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["pattern"] == "declared_unused")
        .map(|f| f["description"].as_str().unwrap())
        .collect();
    assert!(
        described
            .iter()
            .all(|d| d.contains("declared in pika-orders.yaml but")),
        "{described:?}"
    );
    // Declared-only edges and nodes; declared and observed ones say both.
    let silent = edge(&topo, "service:orders", refunded, "publish").expect("declared edge");
    assert_eq!(silent["seen_in"], json!(["declared"]));
    assert_eq!(silent["count"], 0);
    let never = edge(&topo, invoices, "service:billing", "consume").expect("declared edge");
    assert_eq!(never["seen_in"], json!(["declared"]));
    let both = edge(
        &topo,
        "service:orders",
        "destination:rabbitmq:order.created",
        "publish",
    )
    .unwrap();
    assert_eq!(both["seen_in"], json!(["traces", "declared"]));
    let billing = edge(
        &topo,
        "destination:rabbitmq:order.created",
        "service:billing",
        "consume",
    )
    .unwrap();
    assert_eq!(billing["seen_in"], json!(["traces"]));
    // Services without a declaration (identity, wallet, audit) are not judged.
    for f in findings(&topo, "undeclared_flow") {
        assert_eq!(f[0], "service:billing");
    }
    // DOT: declared-only edges dotted, apart from the observed ones.
    let dot = env.dot(&window);
    let line = dot
        .lines()
        .find(|l| l.contains(&format!("\"service:orders\" -> \"{refunded}\"")))
        .expect("declared edge in DOT");
    assert!(
        line.contains("style=dotted") && line.contains("seen_in=\"declared\""),
        "{line}"
    );
    let observed = dot
        .lines()
        .find(|l| l.contains("\"service:orders\" -> \"destination:rabbitmq:order.created\""))
        .unwrap();
    assert!(!observed.contains("dotted"), "{observed}");
    // The map page lists the findings with their labels.
    let page = common::ui::Page::ok(&env, &format!("/?window=custom&{}", window.query()));
    let body = page.body;
    for label in ["Silent publisher", "Declared, unused", "Undeclared flow"] {
        assert!(body.contains(label), "{label} not on the map page");
    }
    // The AsyncAPI export stays what was observed: no declared-only channel in it.
    let doc = env.get_json(&format!("/api/asyncapi?{}", window.query()));
    assert!(doc["channels"]
        .as_object()
        .unwrap()
        .values()
        .all(|c| c["address"] != "order.refunded"));
}

#[test]
fn bad_declared_files_stop_the_server_with_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let broken = write("broken.yaml", b"asyncapi: 3.0.0\ninfo: [unclosed\n");
    let old = write(
        "old.yaml",
        b"asyncapi: 1.2.0\ninfo: {title: a, version: '1'}\n",
    );
    let action = write(
        "action.json",
        br##"{"asyncapi": "3.0.0", "info": {"title": "a", "version": "1"},
             "channels": {"c": {"address": "c"}},
             "operations": {"o": {"action": "publish", "channel": {"$ref": "#/channels/c"}}}}"##,
    );
    let huge = write("huge.yaml", &vec![b'#'; 4 * 1024 * 1024 + 1]);
    let missing = dir
        .path()
        .join("missing.yaml")
        .to_string_lossy()
        .into_owned();
    let good = declared_doc("shop-payments.yaml");
    let db = dir.path().join("db.sqlite");
    // (--declared files, environment, the file the error names, the problem it names)
    type Case<'a> = (Vec<String>, Vec<(String, String)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![good.clone(), broken.clone()],
            vec![],
            "broken.yaml",
            "not valid YAML",
        ),
        (vec![old.clone()], vec![], "old.yaml", "2.0 to 2.6 and 3.0"),
        (vec![action], vec![], "action.json", "not send or receive"),
        (vec![huge], vec![], "huge.yaml", "larger than 4 MiB"),
        (vec![missing], vec![], "missing.yaml", "cannot open"),
        // The variable holds a comma-separated list, like the other repeatable flags.
        (
            vec![],
            vec![("SWITCHYARD_DECLARED".into(), format!("{good},{old}"))],
            "old.yaml",
            "2.0 to 2.6",
        ),
    ];
    for (files, envs, file, problem) in cases {
        let mut cmd = Command::new(common::binary());
        cmd.arg("serve").arg("--db").arg(&db);
        cmd.args(["--http", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"]);
        cmd.args(["--otlp-grpc", "127.0.0.1:0"]);
        for f in &files {
            cmd.args(["--declared", f]);
        }
        let out = cmd
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .env_remove("SWITCHYARD_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file}: started anyway");
        assert!(out.stdout.is_empty(), "{file}: listened before refusing");
        assert!(
            stderr.contains(file) && stderr.contains(problem),
            "{file}: {stderr}"
        );
        // Nothing was created: the check comes before the store opens.
        assert!(!db.exists(), "{file}: the database was created");
    }
}

/// Waits for a demo window (ending in a minute that is over) whose topology has `ready`.
fn demo_window(env: &TestEnv, ready: impl Fn(&Value) -> bool) -> Window {
    const MINUTE: u64 = 60_000_000_000;
    common::wait_for("demo traffic", Duration::from_secs(180), || {
        let ended = (builder::now_unix_nanos() - 3_000_000_000) / MINUTE * MINUTE;
        let window = Window {
            since_unix_nanos: ended - 10 * MINUTE,
            until_unix_nanos: ended - 1_000_000_000,
        };
        ready(&env.topology(&window)).then_some(window)
    })
}

#[test]
fn the_demo_exports_valid_asyncapi_and_its_declared_drift_is_found() {
    let env = TestEnv::with_args(&[
        "--demo",
        "--declared",
        &declared_doc("shop-checkout.yaml"),
        "--declared",
        &declared_doc("shop-payments.yaml"),
        "--declared",
        &declared_doc("shop-reporting.json"),
    ]);
    let reporting_flows = |t: &Value| {
        t["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["to"] == "service:reporting" && e["kind"] == "consume")
            .filter(|e| e["seen_in"].as_array().unwrap().contains(&json!("traces")))
            .count()
    };
    let window = demo_window(&env, |t| {
        !findings(t, "undeclared_flow").is_empty() && reporting_flows(t) >= 3
    });
    let topo = env.topology(&window);
    let cancelled = "destination:switchyard:orders.cancelled";
    assert_eq!(
        findings(&topo, "declared_silent_publisher"),
        vec![ids(&["service:checkout", cancelled])]
    );
    assert_eq!(findings(&topo, "declared_unused"), vec![ids(&[cancelled])]);
    assert_eq!(
        findings(&topo, "undeclared_flow"),
        vec![ids(&[
            "service:payments",
            "destination:switchyard:audit.legacy"
        ])]
    );
    // reporting reads subscriptions of the topics it declares, and the stream: all declared.
    let declared_reads = topo["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"] == "service:reporting" && e["kind"] == "consume")
        .filter(|e| {
            e["seen_in"]
                .as_array()
                .unwrap()
                .contains(&json!("declared"))
        })
        .count();
    assert_eq!(declared_reads, reporting_flows(&topo), "{topo:#}");
    assert_eq!(
        edge(&topo, "service:checkout", cancelled, "publish").unwrap()["seen_in"],
        json!(["declared"])
    );
    // The observed document (the embedded broker's server is this listener).
    let doc = env.get_json(&format!("/api/asyncapi?{}", window.query()));
    assert_valid(&doc, "the demo");
    assert_mirrors(&doc, &env.topology(&window), "the demo");
    let server = &doc["servers"]["switchyard"];
    assert_eq!(server["protocol"], "http");
    assert_eq!(server["host"], env.server().http.to_string());
    let tasks = &doc["operations"]["checkout.send.fulfilment.tasks"];
    assert_eq!(tasks["action"], "send");
    assert!(tasks["x-switchyard-count"].as_i64().unwrap() > 0);
}

#[test]
fn declared_only_edges_are_drawn_apart_on_the_map() {
    let Some(b) = Browser::start() else { return };
    let (env, window) = pika_with_declaration();
    b.resize(1024, 700);
    b.goto(&env.api_url(&format!("/?window=custom&{}", window.query())));
    let state = b.wait_for(
        "the map",
        "return document.body.getAttribute('data-map-ready');",
    );
    assert_eq!(state, json!("1"), "map failed to load");
    b.wait_for("a still map", "return !window.switchyard.cy.animated();");
    let styles = b.eval(
        "const cy = window.switchyard.cy; \
         const style = e => [e.data('seen'), e.style('line-style'), e.style('line-color')]; \
         const get = id => { const e = cy.getElementById(id); return e.empty() ? null : style(e); }; \
         return {declared: get(arguments[0]), observed: get(arguments[1]), \
                 node: cy.getElementById(arguments[2]).style('border-style'), \
                 legend: !document.getElementById('legend-declared').hidden};",
        json!([
            "edge:service:orders\u{1}destination:rabbitmq:order.refunded\u{1}publish",
            "edge:service:orders\u{1}destination:rabbitmq:order.created\u{1}publish",
            "destination:rabbitmq:order.refunded"
        ]),
    );
    assert_eq!(styles["declared"][0], "declared", "{styles}");
    assert_eq!(styles["declared"][1], "dotted", "{styles}");
    assert_eq!(styles["observed"][1], "solid", "{styles}");
    assert_ne!(styles["declared"][2], styles["observed"][2], "{styles}");
    assert_eq!(styles["node"], "dotted", "{styles}");
    assert_eq!(styles["legend"], true, "{styles}");
    // Each drift finding is a badge on its nodes.
    let badges = b.eval(
        "return [...document.querySelectorAll('#map-badges .map-badge')].map(x => \
           [x.closest('.map-badge-group').getAttribute('data-node-id'), x.getAttribute('data-pattern')]);",
        json!([]),
    );
    for (node, pattern) in [
        ("service:orders", "declared_silent_publisher"),
        ("destination:rabbitmq:invoice.requests", "declared_unused"),
        ("service:billing", "undeclared_flow"),
    ] {
        assert!(
            badges.as_array().unwrap().contains(&json!([node, pattern])),
            "{pattern} on {node}: {badges}"
        );
    }
    b.screenshot("map-declared-drift");
}
