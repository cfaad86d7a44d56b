#!/usr/bin/env python3
"""Main-thread CPU of a page to interactive, in headless Chromium over its DevTools protocol.

Loads each URL in turn (alternating, `--rounds` times) and reads the page's own CPU clocks
(`Performance.getMetrics`: ThreadTime is the renderer's main thread, ProcessTime the whole
renderer) from just before navigation to two frames after the page says it is ready (a body
attribute its script sets). On a loaded machine these stretch far less than the wall clock,
which is printed too (navigation to ready, by the page's clock). Medians, and each URL's
ratio to the first.

    tools/ui-cpu.py --ready data-trace-ready --rounds 5 URL_A URL_B

`--inject REV` (repeatable; `.` is the working tree, a directory a checkout) instead loads one map page (the URL) with
each revision's map scripts in turn: the page's HTML without its scripts, then Cytoscape and
the revision's `static/app` map scripts, as `tests/ui_map.rs`'s `large_map` does, so two
revisions' scripts are compared on one server.

`--load OTLP_HTTP_URL` (repeatable) first posts the two pages of the UI's floors to each
server: a 5,000-span trace (one publish, 4,999 consumes from 20 services) and a map of 500
nodes and 2,000 edges (1,000 publish/consume pairs among 250 services and 250 topics), then
prints the trace's id.

Needs Debian's chromium and chromium-driver packages; only the standard library.
"""
import argparse
import json
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

DRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"


def call(base, method, path, body=None, timeout=300):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())["value"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(base, sid):
    got = call(base, "POST", f"/session/{sid}/goog/cdp/execute",
               {"cmd": "Performance.getMetrics", "params": {}})
    return {m["name"]: m["value"] for m in got["metrics"]}


def attr(k, v):
    return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}


def otlp_span(trace, span, parent, service, name, kind, start, dest, extra=()):
    s = {"traceId": trace, "spanId": span, "name": name, "kind": kind,
         "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 1_000_000),
         "attributes": [attr("messaging.system", "kafka"),
                        attr("messaging.destination.name", dest)] + list(extra)}
    if parent:
        s["parentSpanId"] = parent
    return {"resource": {"attributes": [attr("service.name", service)]},
            "scopeSpans": [{"scope": {"name": "ui-cpu"}, "spans": [s]}]}


def floors(now):
    """The 5,000-span trace and the spans of the 500-node map, as OTLP/JSON bodies."""
    trace = "%032x" % (0x5000 << 64 | now)
    spans = [otlp_span(trace, "%016x" % 1, None, "gateway", "publish batch", 4, now, "batch")]
    for i in range(4999):
        spans.append(otlp_span(trace, "%016x" % (i + 2), "%016x" % 1, f"worker-{i % 20}",
                               "receive", 5, now + (i + 1) * 100_000, "batch",
                               [attr("worker.index", i)]))
    bodies = [spans[k:k + 1000] for k in range(0, len(spans), 1000)]
    pairs = []
    for k in range(1000):
        t = "%032x" % (0x3A9 << 64 | k + 1)
        dest = f"topic-{(k * 7 + k // 250) % 250}"
        pairs.append(otlp_span(t, "%016x" % 1, None, f"svc-{k % 250}", "send", 4, now, dest))
        pairs.append(otlp_span(t, "%016x" % 2, "%016x" % 1, f"svc-{(k * 13 + 5) % 250}",
                               "receive", 5, now + 2_000_000, dest))
    bodies.append(pairs)
    return trace, [{"resourceSpans": b} for b in bodies]


def load(servers):
    trace, bodies = floors(time.time_ns() - 60_000_000_000)
    for server in servers:
        for body in bodies:
            req = urllib.request.Request(server.rstrip("/") + "/v1/traces", method="POST",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                assert r.status == 200, r.read()
    print(trace)


MAP_SCRIPTS = ["svg", "map-kit", "map-layout", "map-badges", "map-panel", "map"]


def revision_scripts(rev):
    """Cytoscape and the map's scripts of a git revision (`.`: the working tree)."""
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = ["static/vendor/cytoscape/cytoscape.min.js",
             "static/vendor/cytoscape-dagre/cytoscape-dagre.min.js"]
    paths += [f"static/app/{f}.js" for f in MAP_SCRIPTS]
    out = []
    for p in paths:
        if rev == "." or os.path.isdir(rev):
            with open(os.path.join(root if rev == "." else rev, p)) as f:
                out.append(f.read())
        else:
            got = subprocess.run(["git", "show", f"{rev}:{p}"], cwd=root, capture_output=True,
                                 text=True)
            if got.returncode == 0:
                out.append(got.stdout)
    return out[:2], out[2:]


INJECT = """
const [page, vendor, scripts, ready] = arguments, done = arguments[arguments.length - 1];
const frames = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
(async () => {
  const html = await (await fetch(page)).text();
  const doc = new DOMParser().parseFromString(html, 'text/html');
  doc.querySelectorAll('script').forEach(s => s.remove());
  document.replaceChild(document.adoptNode(doc.documentElement), document.documentElement);
  const add = src => { const s = document.createElement('script'); s.textContent = src; document.head.appendChild(s); };
  vendor.forEach(add);
  await new Promise(r => setTimeout(r, 50));
  done(1);
})();
"""

RUN = """
const [scripts, ready] = arguments, done = arguments[arguments.length - 1];
const t0 = performance.now();
const add = src => { const s = document.createElement('script'); s.textContent = src; document.head.appendChild(s); };
scripts.forEach(add);
(function poll() {
  if (document.body.getAttribute(ready) === '1') {
    requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));
  } else { setTimeout(poll, 5); }
})();
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("urls", nargs="*")
    ap.add_argument("--load", action="append", metavar="OTLP_HTTP_URL")
    ap.add_argument("--inject", action="append", metavar="REV")
    ap.add_argument("--ready", default="data-trace-ready",
                    help="body attribute set to 1 when interactive")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="1024,700")
    args = ap.parse_args()
    if args.load:
        load(args.load)
    if not args.urls:
        return
    port = free_port()
    driver = subprocess.Popen([DRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.2)
        profile = tempfile.mkdtemp()
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", f"--window-size={args.size}",
                     f"--user-data-dir={profile}"]}}}}
        sid = call(base, "POST", "/session", caps)["sessionId"]
        call(base, "POST", f"/session/{sid}/timeouts", {"script": 300000, "pageLoad": 300000})
        call(base, "POST", f"/session/{sid}/goog/cdp/execute",
             {"cmd": "Performance.enable", "params": {"timeDomain": "threadTicks"}})
        wait = ("const done = arguments[arguments.length - 1]; (function poll() { "
                f"if (document.body && document.body.getAttribute('{args.ready}') === '1') "
                "{ requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now()))); } "
                "else { setTimeout(poll, 5); } })();")
        runs = [(u, None) for u in args.urls]
        if args.inject:
            runs = [(f"{args.urls[0]} with {rev}'s scripts", revision_scripts(rev))
                    for rev in args.inject]
        results = {u: [] for u, _ in runs}
        for r in range(args.rounds + 1):  # the first round warms caches and is not kept
            for u, scripts in runs:
                url = args.urls[0] if scripts else u
                origin = "/".join(url.split("/")[:3])
                call(base, "POST", f"/session/{sid}/url", {"url": origin + "/healthz"})
                if scripts:
                    call(base, "POST", f"/session/{sid}/execute/async",
                         {"script": INJECT, "args": [url, scripts[0], [], args.ready]})
                    before = metrics(base, sid)
                    wall = call(base, "POST", f"/session/{sid}/execute/async",
                                {"script": RUN, "args": [scripts[1], args.ready]})
                else:
                    before = metrics(base, sid)
                    call(base, "POST", f"/session/{sid}/url", {"url": url})
                    wall = call(base, "POST", f"/session/{sid}/execute/async",
                                {"script": wait, "args": []})
                after = metrics(base, sid)
                row = {k: after.get(k, 0) - before.get(k, 0)
                       for k in ("ThreadTime", "ProcessTime", "ScriptDuration", "LayoutDuration",
                                 "RecalcStyleDuration", "TaskDuration")}
                row["wall"] = wall / 1000
                row["nodes"] = after.get("Nodes", 0)
                if r > 0:
                    results[u].append(row)
        first = None
        for u, _ in runs:
            med = {k: statistics.median(x[k] for x in results[u]) for k in results[u][0]}
            first = first or med
            print(f"{u}\n  median of {args.rounds}: main thread {med['ThreadTime']:.3f} s CPU, "
                  f"renderer {med['ProcessTime']:.3f} s, script {med['ScriptDuration']:.3f} s, "
                  f"layout {med['LayoutDuration']:.3f} s, style {med['RecalcStyleDuration']:.3f} s, "
                  f"wall {med['wall']:.2f} s (worst {max(x['wall'] for x in results[u]):.2f} s), "
                  f"{med['nodes']:.0f} DOM nodes")
            print(f"  ratio to the first: main thread {med['ThreadTime'] / first['ThreadTime']:.2f}, "
                  f"renderer {med['ProcessTime'] / first['ProcessTime']:.2f}, "
                  f"wall {med['wall'] / first['wall']:.2f}")
        call(base, "DELETE", f"/session/{sid}")
    finally:
        driver.terminate()
        driver.wait()


if __name__ == "__main__":
    main()
