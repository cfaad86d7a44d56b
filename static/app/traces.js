// Trace search, live: while the window ends now (a preset or all stored), new spans reported
// by the live watch (live.js) re-run the same search and swap in the results, without a
// reload, until the user pauses. The new results are our own server-rendered, escaped HTML,
// parsed with DOMParser (which runs no script) and moved in as nodes.
(function () {
  "use strict";
  var results = document.getElementById("trace-results");
  if (!results || results.getAttribute("data-live") !== "1" || !window.switchyardLive) { return; }
  var badge = document.getElementById("live");
  var pause = document.getElementById("live-pause");
  var timer = null, loading = false, paused = false, missed = false;
  function swap(id, doc) {
    var mine = document.getElementById(id), fresh = doc.getElementById(id);
    if (mine && fresh) {
      mine.replaceChildren.apply(mine, Array.prototype.slice.call(fresh.childNodes).map(function (n) {
        return document.adoptNode(n);
      }));
    }
  }
  function reload() {
    if (loading) { return; }
    if (paused) { missed = true; results.setAttribute("data-missed", "1"); return; }
    loading = true;
    fetch(location.href, { headers: { "Accept": "text/html" } }).then(function (r) {
      if (!r.ok) { throw new Error("status " + r.status); }
      return r.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      if (doc.getElementById("trace-results")) {
        swap("trace-results", doc);
        swap("trace-scatter-box", doc);
        results.setAttribute("data-updates", String(Number(results.getAttribute("data-updates") || "0") + 1));
      }
    }).catch(function () {}).then(function () { loading = false; });
  }
  if (pause) {
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", paused ? "true" : "false");
      pause.textContent = paused ? "Resume" : "Pause";
      if (badge) { badge.textContent = paused ? "paused" : "live"; }
      results.setAttribute("data-paused", paused ? "1" : "0");
      if (!paused && missed) { missed = false; reload(); }
    });
  }
  window.switchyardLive.watch(function () {
    if (!timer) { timer = setTimeout(function () { timer = null; reload(); }, 1000); }
  }, function () {
    if (badge) { badge.hidden = false; }
    if (pause) { pause.hidden = false; }
  });
})();
