//! Who may ask (issue 17, item 4): the bearer token on every listener (OTLP/HTTP, OTLP/gRPC,
//! API, broker, pages), the login page and its cookie, the `Host` check (421) and the refusal
//! of cross-site requests (403); and that the token shows nowhere.

mod common;

use common::browser::Browser;
use common::{wait_for, Http, Reply, TestEnv};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "test-token-6f1d0c9a8b7e";
const BEARER: (&str, &str) = ("Authorization", "Bearer test-token-6f1d0c9a8b7e");

/// Any request to `addr`, redirects not followed; `headers` may set `Host`.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    Http::without_redirects(format!("http://{addr}")).send(method, path, headers, body)
}

fn web(env: &TestEnv) -> SocketAddr {
    env.server().http
}

fn otlp(env: &TestEnv) -> SocketAddr {
    env.server().otlp_http
}

/// A 401 for API clients: the JSON error and `WWW-Authenticate: Bearer`, no data.
fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{what}: {:?}",
        reply.headers
    );
    assert_eq!(reply.json()["error"], "unauthorized", "{what}");
}

/// One gRPC export of an empty request (valid, stores nothing), with or without the token.
fn grpc_export(env: &TestEnv, authorization: Option<&str>) -> Result<(), tonic::Status> {
    let (rt, channel) = env.grpc_channel();
    rt.block_on(async move {
        let mut client = TraceServiceClient::new(channel);
        let mut request = tonic::Request::new(ExportTraceServiceRequest::default());
        if let Some(a) = authorization {
            request
                .metadata_mut()
                .insert("authorization", a.parse().expect("metadata value"));
        }
        client.export(request).await.map(|_| ())
    })
}

fn declare_queue(env: &TestEnv, auth: &[(&str, &str)]) {
    let put = |path: &str, body: &str| {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend_from_slice(auth);
        let r = send(web(env), "PUT", path, &headers, body.as_bytes());
        assert!(r.status < 300, "PUT {path}: {} {}", r.status, r.text());
    };
    put("/broker/topics/orders", "");
    put("/broker/subscriptions/billing", r#"{"topic": "orders"}"#);
}

/// The messages waiting on `billing` (a bearer is sent, harmless without a token).
fn ready_on_billing(env: &TestEnv) -> u64 {
    let r = send(web(env), "GET", "/broker/subscriptions", &[BEARER], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["subscriptions"]
        .as_array()
        .and_then(|subs| subs.iter().find(|s| s["name"] == "billing"))
        .and_then(|s| s["ready"].as_u64())
        .expect("billing's ready count")
}

#[test]
fn without_a_token_unknown_hosts_get_421_and_other_sites_403() {
    let env = TestEnv::start();
    declare_queue(&env, &[]);
    let publish = "/broker/topics/orders/events";

    // DNS rebinding: another name resolving here is not answered, on either HTTP listener.
    for (addr, path) in [(web(&env), "/api/stats"), (web(&env), "/")] {
        let r = send(addr, "GET", path, &[("Host", "attacker.example")], b"");
        assert_eq!(r.status, 421, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "misdirected_request");
        assert!(!r.text().contains("spans"), "{}", r.text());
    }
    let r = send(
        otlp(&env),
        "POST",
        "/v1/traces",
        &[("Host", "attacker.example:4318")],
        b"",
    );
    assert_eq!(r.status, 421, "{}", r.text());
    for host in ["localhost", "127.0.0.1", "app.localhost:1"] {
        let r = send(web(&env), "GET", "/api/stats", &[("Host", host)], b"");
        assert_eq!(r.status, 200, "Host {host}: {}", r.text());
    }
    let r = send(
        web(&env),
        "GET",
        "/healthz",
        &[("Host", "lb.internal")],
        b"",
    );
    assert_eq!(r.status, 200, "health checks are open");

    // A page of another site posting without a preflight: refused, nothing published.
    let hostile: [&[(&str, &str)]; 3] = [
        &[("Origin", "http://attacker.example")],
        &[("Origin", "null")],
        &[("Sec-Fetch-Site", "cross-site")],
    ];
    for headers in hostile {
        let r = send(web(&env), "POST", publish, headers, b"{\"x\": 1}");
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
        assert_eq!(r.json()["error"], "forbidden");
    }
    assert_eq!(ready_on_billing(&env), 0);
    // A subscription's SSE stream leases with a GET: refused from another site too.
    let r = send(
        web(&env),
        "GET",
        "/broker/subscriptions/billing/events",
        &[("Sec-Fetch-Site", "same-site")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // OTLP protobuf without a content type, from a page.
    let r = send(
        otlp(&env),
        "POST",
        "/v1/traces",
        &[("Origin", "http://attacker.example")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());

    // Tools (no Origin, no Sec-Fetch-Site) and this origin keep working.
    let r = send(web(&env), "POST", publish, &[], b"{\"x\": 1}");
    assert!(r.status < 300, "{} {}", r.status, r.text());
    let own = format!("http://{}", web(&env));
    let r = send(
        web(&env),
        "POST",
        publish,
        &[("Origin", &own)],
        b"{\"x\": 2}",
    );
    assert!(r.status < 300, "{} {}", r.status, r.text());
    assert_eq!(ready_on_billing(&env), 2);
    let r = env.post_protobuf(&[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // A link from another site still opens a page.
    let r = send(
        web(&env),
        "GET",
        "/traces",
        &[("Sec-Fetch-Site", "cross-site")],
        b"",
    );
    assert_eq!(r.status, 200);
    // Without a token the login page has nothing to ask.
    let r = send(web(&env), "GET", "/login", &[], b"");
    assert_eq!((r.status, r.header("location")), (303, Some("/")));
    assert!(
        !env.log(1).contains("beyond loopback"),
        "no warning on loopback"
    );
}

#[test]
fn a_token_is_required_on_every_listener_but_healthz() {
    let env = TestEnv::with_args(&["--auth-token", TOKEN]);
    // Without `Accept: text/html` even a page is answered 401 (a script, a tool).
    let api_paths = [
        "/",
        "/traces",
        "/api/stats",
        "/api/topology",
        "/api/asyncapi",
        "/broker/topics",
        "/broker/subscriptions",
        "/static/app/map.js",
        "/no-such-path",
    ];
    for path in api_paths {
        assert_unauthorized(&send(web(&env), "GET", path, &[], b""), path);
        let wrong = send(
            web(&env),
            "GET",
            path,
            &[("Authorization", "Bearer wrong")],
            b"",
        );
        assert_unauthorized(&wrong, path);
    }
    for path in ["/api/stats", "/broker/topics", "/static/app/map.js"] {
        let r = send(web(&env), "GET", path, &[BEARER], b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = send(web(&env), "GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);

    // The broker's message path.
    assert_unauthorized(
        &send(web(&env), "PUT", "/broker/topics/orders", &[], b""),
        "declare",
    );
    declare_queue(&env, &[BEARER]);
    let publish = "/broker/topics/orders/events";
    assert_unauthorized(&send(web(&env), "POST", publish, &[], b"{}"), "publish");
    assert_eq!(ready_on_billing(&env), 0);
    let r = send(web(&env), "POST", publish, &[BEARER], b"{}");
    assert!(r.status < 300, "{} {}", r.status, r.text());
    assert_unauthorized(
        &send(
            web(&env),
            "POST",
            "/broker/subscriptions/billing/pull",
            &[],
            b"",
        ),
        "pull",
    );
    let r = send(
        web(&env),
        "POST",
        "/broker/subscriptions/billing/pull",
        &[BEARER],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["messages"].as_array().map(Vec::len), Some(1));

    // OTLP/HTTP, the way SDKs send it (OTEL_EXPORTER_OTLP_HEADERS).
    let proto = ("Content-Type", "application/x-protobuf");
    assert_unauthorized(
        &send(otlp(&env), "POST", "/v1/traces", &[proto], b""),
        "OTLP/HTTP",
    );
    let r = send(otlp(&env), "POST", "/v1/traces", &[proto, BEARER], b"");
    assert_eq!(r.status, 200, "{}", r.text());

    // OTLP/gRPC: the `authorization` metadata.
    let err = grpc_export(&env, None).expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let err = grpc_export(&env, Some("Bearer wrong")).expect_err("wrong token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    grpc_export(&env, Some(&format!("Bearer {TOKEN}"))).expect("with the token");

    // A browser asking for a page is sent to the login page, the path kept.
    let r = send(
        web(&env),
        "GET",
        "/traces?window=1h",
        &[("Accept", "text/html,application/xhtml+xml")],
        b"",
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/login?next=%2Ftraces%3Fwindow%3D1h")
    );
    // Host and site checks come first.
    let r = send(
        web(&env),
        "GET",
        "/api/stats",
        &[BEARER, ("Host", "attacker.example")],
        b"",
    );
    assert_eq!(r.status, 421);
    let r = send(
        web(&env),
        "POST",
        publish,
        &[BEARER, ("Sec-Fetch-Site", "cross-site")],
        b"{}",
    );
    assert_eq!(r.status, 403);
}

#[test]
fn the_login_form_sets_a_session_cookie_that_opens_pages() {
    let env = TestEnv::with_args(&["--auth-token", TOKEN]);
    let page = send(web(&env), "GET", "/login?next=%2Ftraces", &[], b"");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains(r#"action="/login""#), "{html}");
    assert!(html.contains(r#"value="/traces""#), "{html}");

    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let wrong = send(
        web(&env),
        "POST",
        "/login",
        &[form],
        b"token=nope&next=%2Ftraces",
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.text().contains("login-error"));

    let body = format!("token={TOKEN}&next=%2Ftraces");
    let ok = send(web(&env), "POST", "/login", &[form], body.as_bytes());
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(ok.header("location"), Some("/traces"));
    let set = ok.header("set-cookie").expect("Set-Cookie").to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "no Secure without --secure-cookie");
    assert!(!set.contains(TOKEN), "the cookie is not the token: {set}");
    let cookie = set.split(';').next().unwrap().to_string();

    let html = [("Accept", "text/html")];
    for path in ["/", "/traces", "/brokers"] {
        let r = send(web(&env), "GET", path, &[html[0], ("Cookie", &cookie)], b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = send(
        web(&env),
        "GET",
        "/api/topology",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.status, 200, "the page's own API calls: {}", r.text());
    // The cookie is not a bearer for the receivers' gRPC, and a forged one opens nothing.
    let forged = format!("switchyard_session={TOKEN}");
    assert_unauthorized(
        &send(web(&env), "GET", "/api/stats", &[("Cookie", &forged)], b""),
        "forged cookie",
    );

    let out = send(web(&env), "POST", "/logout", &[("Cookie", &cookie)], b"");
    assert_eq!(out.status, 303);
    assert!(out
        .header("set-cookie")
        .is_some_and(|c| c.contains("Max-Age=0")));
    // A login from another site is refused like any other cross-site post.
    let r = send(
        web(&env),
        "POST",
        "/login",
        &[form, ("Origin", "http://attacker.example")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn a_restart_asks_again_and_secure_cookie_marks_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let file = file.to_str().unwrap();
    let mut env = TestEnv::with_args(&["--auth-token-file", file, "--secure-cookie"]);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let body = format!("token={TOKEN}");
    let ok = send(web(&env), "POST", "/login", &[form], body.as_bytes());
    assert_eq!(ok.status, 303);
    let set = ok.header("set-cookie").unwrap().to_string();
    assert!(set.contains("; Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let r = send(web(&env), "GET", "/api/stats", &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 200);
    env.restart();
    let r = send(web(&env), "GET", "/api/stats", &[("Cookie", &cookie)], b"");
    assert_unauthorized(&r, "an old process's cookie");
    let r = send(web(&env), "GET", "/api/stats", &[BEARER], b"");
    assert_eq!(r.status, 200, "the token from the file");
}

#[test]
fn the_token_shows_in_no_log_page_answer_or_export() {
    let env = TestEnv::with_args(&["--auth-token", TOKEN]);
    let mut seen: Vec<Reply> = Vec::new();
    declare_queue(&env, &[BEARER]);
    let publish = "/broker/topics/orders/events";
    seen.push(send(web(&env), "POST", publish, &[BEARER], b"{\"a\": 1}"));
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    for body in [format!("token={TOKEN}x"), format!("token={TOKEN}")] {
        seen.push(send(web(&env), "POST", "/login", &[form], body.as_bytes()));
    }
    seen.push(send(
        otlp(&env),
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf"), BEARER],
        b"",
    ));
    // Wait until the broker's spans are stored, so that the exports hold them.
    wait_for("the broker's spans", Duration::from_secs(20), || {
        let r = send(web(&env), "GET", "/api/stats", &[BEARER], b"");
        (r.json()["spans_in_store"].as_i64().unwrap_or(0) > 0).then_some(())
    });
    for path in [
        "/login",
        "/",
        "/traces",
        "/brokers",
        "/api/stats",
        "/api/topology",
        "/api/topology.dot",
        "/api/traces",
        "/broker/topics",
        "/broker/subscriptions",
        "/destinations/destination%3Aswitchyard%3Aorders",
    ] {
        seen.push(send(web(&env), "GET", path, &[BEARER], b""));
    }
    seen.push(send(
        web(&env),
        "GET",
        "/api/stats",
        &[("Authorization", "Bearer x")],
        b"",
    ));
    let traces = send(web(&env), "GET", "/api/traces", &[BEARER], b"").json();
    for t in traces["traces"].as_array().into_iter().flatten() {
        if let Some(id) = t["trace_id"].as_str() {
            seen.push(send(
                web(&env),
                "GET",
                &format!("/api/traces/{id}"),
                &[BEARER],
                b"",
            ));
            seen.push(send(
                web(&env),
                "GET",
                &format!("/traces/{id}"),
                &[BEARER],
                b"",
            ));
        }
    }
    for r in &seen {
        assert!(!r.text().contains(TOKEN), "{}", r.text());
        assert!(
            !format!("{:?}", r.headers).contains(TOKEN),
            "{:?}",
            r.headers
        );
    }
    let (status, dot, _) = env.export_cli(&["--format", "dot"]);
    assert!(status.success());
    let (_, json, _) = env.export_cli(&["--format", "json"]);
    assert!(!dot.contains(TOKEN) && !json.contains(TOKEN));
    assert!(!env.log(1).contains(TOKEN), "{}", env.log(1));
    // `--help` does not show the variable's value.
    let help = Command::new(common::binary())
        .args(["serve", "--help"])
        .env("SWITCHYARD_AUTH_TOKEN", TOKEN)
        .output()
        .expect("serve --help");
    assert!(help.status.success());
    assert!(!String::from_utf8_lossy(&help.stdout).contains(TOKEN));
    // A rejected token is not quoted in the error.
    let bad = Command::new(common::binary())
        .args(["serve", "--http", "127.0.0.1:0", "--auth-token"])
        .arg(format!("{TOKEN} with spaces"))
        .args(["--db", env.dir().join("other.db").to_str().unwrap()])
        .output()
        .expect("serve with a bad token");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("visible ASCII"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");
}

/// A server on 0.0.0.0 (its own process: the harness binds to loopback): any IP literal is
/// answered, names only when allowed; and the start warns that no token is set.
#[test]
fn an_unspecified_bind_answers_ips_and_allowed_names_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut child = Command::new(common::binary())
        .arg("serve")
        .args(["--db", dir.path().join("s.db").to_str().unwrap()])
        .args(["--http", "0.0.0.0:0", "--otlp-http", "127.0.0.1:0"])
        .args(["--otlp-grpc", "127.0.0.1:0"])
        .args(["--allowed-hosts", "switchyard.example,*.corp.example"])
        .env_remove("SWITCHYARD_LOG")
        .env_remove("SWITCHYARD_AUTH_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn switchyard");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("listening line");
    let announced: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    let port = announced["http"]
        .as_str()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .expect("http address")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let status = |host: &str| send(addr, "GET", "/api/stats", &[("Host", host)], b"").status;
    let answers = [
        status("192.0.2.7:8080"),
        status("[2001:db8::1]"),
        status("switchyard.example"),
        status("a.corp.example:443"),
        status("attacker.example"),
        status("corp.example"),
    ];
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answers, [200, 200, 200, 200, 421, 421]);
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("beyond loopback"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains("listener=\"HTTP\""),
        "{text}"
    );
}

/// Chromium: a page asks for the login, the form opens the map (whose API calls carry the
/// cookie), scripts cannot read the cookie, and a page of another origin can publish nothing.
#[test]
fn a_browser_logs_in_once_and_another_origin_cannot_publish() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::with_args(&["--auth-token", TOKEN]);
    declare_queue(&env, &[BEARER]);
    b.goto(&env.api_url("/traces"));
    b.wait_for(
        "the login page",
        "return location.pathname === '/login' && document.getElementById('token');",
    );
    b.screenshot("login");
    b.eval(
        "document.getElementById('token').value = 'not-it'; \
         document.getElementById('login').submit(); return 1;",
        json!([]),
    );
    b.wait_for(
        "the refusal",
        "return document.getElementById('login-error');",
    );
    b.eval(
        "document.getElementById('token').value = arguments[0]; \
         document.getElementById('login').submit(); return 1;",
        json!([TOKEN]),
    );
    b.wait_for(
        "the traces page",
        "return location.pathname === '/traces' && document.querySelector('main');",
    );
    assert_eq!(b.eval("return document.cookie;", json!([])), json!(""));
    b.goto(&env.api_url("/"));
    let state = b.wait_for(
        "the map",
        "return document.body.getAttribute('data-map-ready');",
    );
    assert_eq!(state, json!("1"), "the map's API calls carry the cookie");
    assert!(!b
        .eval("return document.documentElement.outerHTML;", json!([]))
        .to_string()
        .contains(TOKEN));

    // The attack of issue 17 on a server without a token: a page of another origin (the
    // same server as `localhost`) posts without a preflight. Refused; from the server's own
    // origin the same fetch publishes, so the browser did reach it.
    let plain = TestEnv::start();
    declare_queue(&plain, &[]);
    let url = plain.api_url("/broker/topics/orders/events");
    let fetch = "const done = arguments[arguments.length - 1]; \
                 fetch(arguments[0], {method: 'POST', mode: 'no-cors', credentials: 'include', body: new Blob(['{}'])}) \
                 .then(() => done('sent'), e => done('error ' + e));";
    b.goto(&format!("http://localhost:{}/healthz", web(&plain).port()));
    assert_eq!(b.eval_async(fetch, json!([url])), json!("sent"));
    assert_eq!(
        ready_on_billing(&plain),
        0,
        "nothing published from another origin"
    );
    b.goto(&plain.api_url("/healthz"));
    assert_eq!(b.eval_async(fetch, json!([url])), json!("sent"));
    assert_eq!(
        ready_on_billing(&plain),
        1,
        "published from the server's own origin"
    );
}

/// Wrong tokens are limited per client address: past the limit (20 a minute) the login form,
/// the API and OTLP/gRPC answer 429 / UNAVAILABLE with the time to wait, even to the right
/// token from that address; `/healthz` stays open.
#[test]
fn wrong_tokens_past_the_limit_get_429_with_retry_after() {
    let env = TestEnv::with_args(&["--auth-token", TOKEN]);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    for i in 0..20 {
        let body = format!("token=guess-{i}&next=%2F");
        let r = send(web(&env), "POST", "/login", &[form], body.as_bytes());
        assert_eq!(r.status, 401, "guess {i}: {}", r.text());
    }
    let right = format!("token={TOKEN}&next=%2F");
    let limited = send(web(&env), "POST", "/login", &[form], right.as_bytes());
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert!(limited.header("set-cookie").is_none());
    let wait: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(limited.text().contains("Too many wrong tokens"));

    let api = send(web(&env), "GET", "/api/stats", &[BEARER], b"");
    assert_eq!(api.status, 429, "{}", api.text());
    assert_eq!(api.json()["error"], "too_many_requests");
    assert!(api.header("retry-after").is_some());
    assert!(!api.text().contains("spans"), "no data: {}", api.text());
    let err = grpc_export(&env, Some(&format!("Bearer {TOKEN}"))).expect_err("limited");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.metadata().get("retry-after").is_some(), "{err:?}");
    // A request that presents no token is not a guess: still 401.
    assert_unauthorized(&send(web(&env), "GET", "/api/stats", &[], b""), "no token");
    assert_eq!(send(web(&env), "GET", "/healthz", &[], b"").status, 200);
}

/// The broker's Rust client and `switchyard bench` reach a server that asks for a token.
#[test]
fn the_broker_client_and_bench_send_the_token() {
    let env = TestEnv::with_args(&["--auth-token", TOKEN]);
    // The bench first: the broker's own spans (traced calls) would count as stored.
    let bench = |token: Option<&str>| {
        let mut cmd = Command::new(common::binary());
        cmd.args([
            "bench",
            "ingest",
            "--max-spans",
            "2000",
            "--duration",
            "60s",
        ])
        .args(["--batch", "100", "--connections", "2"])
        .args(["--target", &format!("http://{}", otlp(&env))])
        .args(["--api", &format!("http://{}", web(&env))])
        .env_remove("SWITCHYARD_AUTH_TOKEN");
        if let Some(t) = token {
            cmd.env("SWITCHYARD_AUTH_TOKEN", t);
        }
        cmd.output().expect("bench runs")
    };
    let out = bench(Some(TOKEN));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("(lost: 0)"), "{text}");
    let stats = send(web(&env), "GET", "/api/stats", &[BEARER], b"").json();
    assert!(stats["spans_in_store"].as_i64() >= Some(2000), "{stats}");
    // Without it the server's 401 ends the run at once, saying why.
    let out = bench(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("401") && err.contains("--auth-token"), "{err}");
    let addr = web(&env).to_string();
    let without = switchyard::broker::client::Client::new(&addr);
    let err = without.declare_topic("orders").expect_err("no token");
    assert_eq!(err.status(), Some(401), "{err}");
    let client = switchyard::broker::client::Client::new(&addr)
        .with_service("billing")
        .with_auth_token(TOKEN);
    client
        .declare_topic("orders")
        .expect("declare with the token");
    client
        .declare_subscription("billing", "orders", 30_000, 5)
        .expect("subscribe");
    client
        .publish_json("orders", &json!({"n": 1}), None)
        .expect("publish");
    let pulled = client
        .pull("billing", 10, Duration::from_secs(5))
        .expect("pull");
    assert_eq!(pulled.len(), 1);
}
