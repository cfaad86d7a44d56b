//! A minimal WebDriver client (W3C protocol over HTTP) driving Debian's headless Chromium
//! through chromedriver. `.ci/run` installs the `chromium` and `chromium-driver` packages.

use super::http::Http;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Where screenshots go (gitignored).
pub fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-output");
    std::fs::create_dir_all(&dir).expect("test-output dir");
    dir
}

/// A chromedriver process and one browser session. Dropping it ends both.
pub struct Browser {
    driver: Child,
    session: String,
    http: Http,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts a browser, or returns `None` (with a note) when Chromium is not installed
    /// outside CI; in CI a missing browser fails the test.
    pub fn start() -> Option<Browser> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists()
        {
            if std::env::var_os("CI").is_some() {
                panic!("{CHROMEDRIVER} or {CHROMIUM} missing: .ci/run installs them");
            }
            eprintln!("skipping browser test: install the chromium and chromium-driver packages");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = Http::with_timeout(format!("http://127.0.0.1:{port}"), Duration::from_secs(60));
        super::wait_for("chromedriver to answer", Duration::from_secs(20), || {
            http.try_send("GET", "/status", &[], b"").ok()
        });
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-dev-shm-usage",
                         "--window-size=1280,800",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let mut browser = Browser {
            driver,
            session: String::new(),
            http,
            _profile: profile,
        };
        let reply = browser.send("POST", "/session", Some(caps));
        browser.session = reply["sessionId"].as_str().expect("session id").to_string();
        Some(browser)
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = if path == "/session" {
            path.to_string()
        } else {
            format!("/session/{}{path}", self.session)
        };
        let reply = match body {
            Some(b) => self.http.send_json(method, &path, &b),
            None => self.http.send(method, &path, &[], b""),
        };
        assert_eq!(
            reply.status,
            200,
            "webdriver {method} {path}: {}",
            reply.text()
        );
        reply.json()["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.send("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.send("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script` asynchronously: it ends by calling `arguments[arguments.length - 1]`
    /// with its value (WebDriver's script timeout bounds the wait).
    pub fn eval_async(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Waits until `script` returns something truthy, and returns it.
    pub fn wait_for(&self, what: &str, script: &str) -> Value {
        super::wait_for(what, Duration::from_secs(20), || {
            let v = self.eval(script, json!([]));
            let falsy = v.is_null() || v == json!(false) || v == json!(0) || v == json!("");
            (!falsy).then_some(v)
        })
    }

    /// Waits until the page has painted what the DOM holds now: two animation frames (the
    /// first may have started before the last change).
    pub fn wait_for_paint(&self) {
        let script = "const done = arguments[arguments.length - 1]; \
                      requestAnimationFrame(() => requestAnimationFrame(() => done(1)));";
        let painted = self.send(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        );
        assert_eq!(painted, json!(1), "no animation frame");
    }

    /// Clicks the theme button and waits until the other theme is painted.
    pub fn switch_theme(&self) {
        let theme = "return document.documentElement.getAttribute('data-theme');";
        let before = self.eval(theme, json!([]));
        self.click("#theme-toggle");
        self.wait_for(
            "the other theme",
            &format!("return document.documentElement.getAttribute('data-theme') !== {before};"),
        );
        self.wait_for_paint();
    }

    /// The WebDriver reference of the first element matching `css`.
    pub fn find(&self, css: &str) -> String {
        let v = self.send(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.send("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// A real mouse click at viewport coordinates.
    pub fn click_at(&self, x: f64, y: f64) {
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "duration": 0, "origin": "viewport", "x": x.round() as i64, "y": y.round() as i64},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0}
            ]
        }]});
        self.send("POST", "/actions", Some(actions));
        self.send("DELETE", "/actions", None);
    }

    /// A real mouse drag with the left button, from one viewport point to another.
    pub fn drag(&self, from: (f64, f64), to: (f64, f64)) {
        let at = |p: (f64, f64)| {
            json!({"type": "pointerMove", "duration": 0, "origin": "viewport",
                   "x": p.0.round() as i64, "y": p.1.round() as i64})
        };
        let mid = ((from.0 + to.0) / 2.0, (from.1 + to.1) / 2.0);
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [at(from), {"type": "pointerDown", "button": 0}, at(mid), at(to),
                        {"type": "pointerUp", "button": 0}]
        }]});
        self.send("POST", "/actions", Some(actions));
        self.send("DELETE", "/actions", None);
    }

    /// Types `text` into the first element matching `css` as the keyboard would, after
    /// clearing it.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.send("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.send(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Sends keys to the first element matching `css`, after what it holds.
    pub fn press(&self, css: &str, keys: &str) {
        let id = self.find(css);
        self.send(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": keys })),
        );
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.send(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
    }

    /// Sets the browser window's outer size.
    pub fn resize(&self, width: u32, height: u32) {
        self.send(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// Saves a PNG screenshot as test-output/`name`.png and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let data = self.send("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("screenshot data"))
            .expect("screenshot base64");
        let path = output_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = self.http.try_send("DELETE", &path, &[], b"");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
