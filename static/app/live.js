// The live watch pages share: `switchyardLive.watch(onChange, onOpen)` calls onChange when the
// count of stored spans changes (the SSE stream /api/live). The stream opens only once the page
// has loaded and only when the page's clock runs at the server's pace: headless Chromium with
// `--virtual-time-budget` runs timers ahead of real time and waits for open requests, so an
// endless stream would hold its screenshot forever. Two small requests a few seconds apart
// (page time) compare with the server's Date header (real time); under virtual time they land
// within the same second or two and no stream is opened. A hidden document closes the stream
// and opens it again when shown.
(function () {
  "use strict";
  var CHECK_MS = 3000;
  function serverSeconds() {
    return fetch("/healthz", { method: "HEAD", cache: "no-store" }).then(function (r) {
      var d = Date.parse(r.headers.get("Date") || "");
      if (isNaN(d)) { throw new Error("no Date header"); }
      return d / 1000;
    });
  }
  // Resolves true when real time passes as the page's timers say it does.
  function realTime() {
    return serverSeconds().then(function (t0) {
      return new Promise(function (done) { setTimeout(done, CHECK_MS); }).then(serverSeconds).then(function (t1) {
        return t1 - t0 >= CHECK_MS / 1000 - 1;
      });
    });
  }
  function watch(onChange, onOpen) {
    if (typeof EventSource !== "function") { return; }
    var source = null, last = null, stopped = false;
    function open() {
      if (source || stopped || document.hidden) { return; }
      source = new EventSource("/api/live");
      source.addEventListener("open", function () { if (onOpen) { onOpen(); } });
      source.addEventListener("stored", function (ev) {
        var n;
        try { n = JSON.parse(ev.data).spans_stored; } catch (e) { return; }
        // The first count also refreshes once: spans may have arrived between the page's
        // render and the stream's opening (after the clock check).
        if (n !== last) { onChange(n); }
        last = n;
      });
    }
    function close() { if (source) { source.close(); source = null; } }
    var started = false;
    function start() {
      if (started) { return; }
      started = true;
      realTime().then(function (real) {
        if (!real) { stopped = true; document.documentElement.setAttribute("data-live", "off"); return; }
        document.documentElement.setAttribute("data-live", "on");
        document.addEventListener("visibilitychange", function () { if (document.hidden) { close(); } else { open(); } });
        open();
      }).catch(function () { /* no live updates; the page still works */ });
    }
    if (document.readyState === "complete") { start(); } else { window.addEventListener("load", start); }
    return { close: function () { stopped = true; close(); } };
  }
  window.switchyardLive = { watch: watch };
})();
