//! Graphviz DOT and JSON exports: served over HTTP, printed by `switchyard export`, accepted
//! by Graphviz, parsed back and compared with the JSON, and against golden files.

mod common;

use common::builder::{self, span, Client, Consumer, Producer, SpanB};
use common::fixtures::{self, Window};
use common::TestEnv;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs Graphviz `dot -T<format>` on `dot`; fails (never skips) when Graphviz is missing.
fn graphviz(dot: &str, format: &str) -> String {
    let mut child = match Command::new("dot")
        .arg(format!("-T{format}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "Graphviz `dot` is not installed: run .ci/run, which installs graphviz before the tests"
        ),
        Err(e) => panic!("running dot: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("dot output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dot -T{format} refused the graph: {stderr}\n{dot}"
    );
    assert!(
        stderr.trim().is_empty(),
        "dot -T{format} warned: {stderr}\n{dot}"
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A DOT token: a quoted or bare ID (raw text between the quotes), or punctuation.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Id(String),
    P(&'static str),
}

fn tokenize(dot: &str) -> Vec<Tok> {
    let chars: Vec<char> = dot.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut raw = String::new();
            i += 1;
            while chars[i] != '"' {
                if chars[i] == '\\' {
                    raw.push(chars[i]);
                    i += 1;
                }
                raw.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(Tok::Id(raw));
        } else if c == '<' {
            // An HTML-like ID (used for names with backslashes): entities decoded.
            let start = i + 1;
            while chars[i] != '>' {
                i += 1;
            }
            let html: String = chars[start..i].iter().collect();
            i += 1;
            out.push(Tok::Id(html_value(&html).replace('"', "\\\"")));
        } else if c == '-' && chars.get(i + 1) == Some(&'>') {
            out.push(Tok::P("->"));
            i += 2;
        } else if let Some(p) = ["{", "}", "[", "]", "=", ";", ","]
            .iter()
            .find(|p| p.starts_with(c))
        {
            out.push(Tok::P(p));
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.#".contains(chars[i])) {
                i += 1;
            }
            assert!(i > start, "unexpected character {c:?} in DOT");
            out.push(Tok::Id(chars[start..i].iter().collect()));
        }
    }
    out
}

/// The text of an HTML-like DOT ID: XML entities decoded.
fn html_value(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let end = rest[amp..].find(';').expect("entity ends with ;") + amp;
        let entity = &rest[amp + 1..end];
        out.push(match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            n => char::from_u32(n.trim_start_matches('#').parse().expect("numeric entity"))
                .expect("valid char"),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The value of a quoted DOT ID: only `\"` is an escape (Graphviz's rule for IDs).
fn id_value(raw: &str) -> String {
    raw.replace("\\\"", "\"")
}

/// The text a label shows: `\\` and `\"` are escapes in labels.
fn label_value(raw: &str) -> String {
    let mut out = String::new();
    let mut it = raw.chars();
    while let Some(c) = it.next() {
        match (c, c == '\\') {
            (_, true) => out.push(it.next().expect("escape")),
            (c, false) => out.push(c),
        }
    }
    out
}

#[derive(Debug, Default)]
struct Parsed {
    /// (node id, label)
    nodes: BTreeSet<(String, String)>,
    /// (from, to, label)
    edges: BTreeSet<(String, String, String)>,
}

fn attrs(toks: &[Tok], i: &mut usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if toks.get(*i) != Some(&Tok::P("[")) {
        return out;
    }
    *i += 1;
    while toks[*i] != Tok::P("]") {
        match (&toks[*i], &toks[*i + 1], &toks[*i + 2]) {
            (Tok::Id(k), Tok::P("="), Tok::Id(v)) => out.push((k.clone(), v.clone())),
            other => panic!("bad attribute {other:?}"),
        }
        *i += 3;
        if matches!(toks[*i], Tok::P(",") | Tok::P(";")) {
            *i += 1;
        }
    }
    *i += 1;
    out
}

fn label(attrs: &[(String, String)]) -> String {
    attrs
        .iter()
        .find(|(k, _)| k == "label")
        .map(|(_, v)| label_value(v))
        .expect("a label")
}

/// Reads the nodes and edges of a `digraph` (statements as Switchyard writes them).
fn parse_dot(dot: &str) -> Parsed {
    let toks = tokenize(dot);
    assert_eq!(toks.first(), Some(&Tok::Id("digraph".into())), "{dot}");
    let mut p = Parsed::default();
    // `digraph NAME {` or `digraph {`
    let mut i = if matches!(toks.get(1), Some(Tok::Id(_))) {
        2
    } else {
        1
    };
    while i < toks.len() {
        match &toks[i] {
            Tok::P(_) => i += 1,
            Tok::Id(kw) if kw == "subgraph" => i += 2,
            Tok::Id(kw) if ["graph", "node", "edge"].contains(&kw.as_str()) => {
                i += 1;
                attrs(&toks, &mut i);
            }
            Tok::Id(a) => match toks.get(i + 1) {
                Some(Tok::P("=")) => i += 3,
                Some(Tok::P("->")) => {
                    let Tok::Id(b) = &toks[i + 2] else {
                        panic!("edge without a head")
                    };
                    i += 3;
                    let at = attrs(&toks, &mut i);
                    p.edges.insert((id_value(a), id_value(b), label(&at)));
                }
                _ => {
                    i += 1;
                    let at = attrs(&toks, &mut i);
                    p.nodes.insert((id_value(a), label(&at)));
                }
            },
        }
    }
    p
}

/// What the DOT of a topology must hold: node (id, name) and edge (from, to, "KIND COUNT[ (N errors)]").
fn expected_from_json(t: &Value) -> Parsed {
    let mut p = Parsed::default();
    for n in t["nodes"].as_array().unwrap() {
        p.nodes.insert((
            n["id"].as_str().unwrap().into(),
            n["name"].as_str().unwrap().into(),
        ));
    }
    for e in t["edges"].as_array().unwrap() {
        let mut label = format!("{} {}", e["kind"].as_str().unwrap(), e["count"]);
        if e["errors"].as_i64().unwrap() > 0 {
            label.push_str(&format!(" ({} errors)", e["errors"]));
        }
        p.edges.insert((
            e["from"].as_str().unwrap().into(),
            e["to"].as_str().unwrap().into(),
            label,
        ));
    }
    p
}

fn assert_dot_matches_json(dot: &str, t: &Value) {
    let got = parse_dot(dot);
    let want = expected_from_json(t);
    common::topo::assert_same_set("DOT nodes (id, label)", got.nodes, want.nodes);
    common::topo::assert_same_set("DOT edges (from, to, label)", got.edges, want.edges);
}

fn fixture_env(set: &str) -> (TestEnv, Window) {
    let env = TestEnv::start();
    env.post_fixtures(&fixtures::load(set));
    (env, Window::of_sets(&[set]))
}

/// A graph whose names need quoting: quotes, spaces, braces, arrows, semicolons, non-ASCII.
fn awkward_names() -> Vec<SpanB> {
    let dest = "orders; eu -> café {1}";
    let p = span("checkout \"v2\"", "send", Producer).messaging("kafka", dest);
    let c = p
        .child("billing [blue]", "process", Consumer)
        .messaging("kafka", dest)
        .error("declined");
    let call = c
        .child("billing [blue]", "POST /ledger", Client)
        .attr("peer.service", "ledger \"main\" = x");
    vec![p, c, call]
}

#[test]
fn dot_is_served_as_graphviz() {
    let (env, window) = fixture_env(fixtures::NODE_AMQPLIB_JSON);
    let reply = env.get(&format!("/api/topology.dot?{}", window.query()));
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/vnd.graphviz; charset=utf-8")
    );
    assert!(reply.text().starts_with("digraph"), "{}", reply.text());
}

#[test]
fn dot_of_every_fixture_set_is_accepted_by_graphviz_and_matches_the_json() {
    for set in fixtures::ALL_SETS {
        let (env, window) = fixture_env(set);
        let dot = env.dot(&window);
        let svg = graphviz(&dot, "svg");
        assert!(svg.contains("<svg"), "{set}");
        assert_dot_matches_json(&dot, &env.topology(&window));
    }
}

#[test]
fn names_that_need_quoting_survive_dot() {
    let env = TestEnv::start();
    let spans = awkward_names();
    let reply = env.post_protobuf(&builder::protobuf(&spans.iter().collect::<Vec<_>>()));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let dot = env.dot(&builder::window());
    let t = env.topology(&builder::window());
    assert_eq!(t["edges"].as_array().unwrap().len(), 3, "{t:#}");
    assert_dot_matches_json(&dot, &t);
    // Graphviz sees the same node ids.
    let plain = graphviz(&dot, "plain");
    let seen: BTreeSet<String> = tokenize_plain_nodes(&plain);
    let ids: BTreeSet<String> = common::topo::node_ids(&t);
    common::topo::assert_same_set("node names read by Graphviz", seen, ids);
}

/// Node names from `dot -Tplain` (`node NAME x y ...` lines).
fn tokenize_plain_nodes(plain: &str) -> BTreeSet<String> {
    plain
        .lines()
        .filter(|l| l.starts_with("node "))
        .map(|l| match &tokenize(&l[5..]).into_iter().next() {
            Some(Tok::Id(raw)) => id_value(raw),
            other => panic!("bad plain line {l:?}: {other:?}"),
        })
        .collect()
}

#[test]
fn a_backslash_in_a_name_keeps_the_node_id_in_graphviz() {
    let env = TestEnv::start();
    // A Windows-style account name as the service name.
    let p = span("CORP\\billing", "send", Producer).messaging("rabbitmq", "invoices");
    assert_eq!(env.post_protobuf(&builder::protobuf(&[&p])).status, 200);
    let t = env.topology(&builder::window());
    let ids = common::topo::node_ids(&t);
    assert!(ids.contains("service:CORP\\billing"), "{ids:?}");
    let seen = tokenize_plain_nodes(&graphviz(&env.dot(&builder::window()), "plain"));
    common::topo::assert_same_set("node names read by Graphviz", seen, ids);
}

#[test]
fn cli_export_prints_the_api_json_and_dot() {
    let (mut env, window) = fixture_env(fixtures::PYTHON_PIKA);
    env.post_fixtures(&fixtures::load(fixtures::NODE_AMQPLIB_JSON));
    let api_json = env.topology(&window);
    let api_dot = env.dot(&window);
    let args = |format: &'static str| -> Vec<String> {
        vec![
            "--format".into(),
            format.into(),
            "--since".into(),
            window.since(),
            "--until".into(),
            window.until(),
        ]
    };
    let export = |env: &TestEnv, format: &'static str| -> String {
        let a = args(format);
        let (status, stdout, stderr) =
            env.export_cli(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(status.success(), "export --format {format}: {stderr}");
        stdout
    };
    // While the server runs, and after it stopped.
    for running in [true, false] {
        if !running {
            assert_eq!(env.sigterm().code(), Some(0));
        }
        let cli_json: Value =
            serde_json::from_str(&export(&env, "json")).expect("export prints JSON");
        assert_eq!(
            cli_json, api_json,
            "CLI JSON vs API JSON (server running: {running})"
        );
        assert_eq!(
            export(&env, "dot"),
            api_dot,
            "CLI DOT vs API DOT (server running: {running})"
        );
    }
}

#[test]
fn dot_matches_the_golden_files() {
    let bless = std::env::var_os("SWITCHYARD_BLESS").is_some();
    for set in fixtures::ALL_SETS {
        let (env, window) = fixture_env(set);
        let dot = env.dot(&window);
        let path = fixtures::root().join("expected").join(format!("{set}.dot"));
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &dot).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "{} is missing: run the tests with SWITCHYARD_BLESS=1 to write it",
                path.display()
            )
        });
        assert_eq!(
            dot,
            golden,
            "DOT of {set} differs from {} (SWITCHYARD_BLESS=1 rewrites it after review)",
            path.display()
        );
    }
}
