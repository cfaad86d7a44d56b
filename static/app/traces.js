// Trace search, live: while the window ends now (a preset or all stored), new spans reported
// by the SSE watch (/api/live) re-run the same search and swap in the results, without a
// reload. The new results are our own server-rendered, escaped HTML, parsed with DOMParser
// (which runs no script) and moved in as nodes.
(function () {
  "use strict";
  var results = document.getElementById("trace-results");
  if (!results || results.getAttribute("data-live") !== "1" || typeof EventSource !== "function") { return; }
  var badge = document.getElementById("live");
  var last = null, timer = null, loading = false;
  function reload() {
    if (loading) { return; }
    loading = true;
    fetch(location.href, { headers: { "Accept": "text/html" } }).then(function (r) {
      if (!r.ok) { throw new Error("status " + r.status); }
      return r.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("trace-results");
      if (fresh) {
        results.replaceChildren.apply(results, Array.prototype.slice.call(fresh.childNodes).map(function (n) {
          return document.adoptNode(n);
        }));
        results.setAttribute("data-updates", String(Number(results.getAttribute("data-updates") || "0") + 1));
      }
    }).catch(function () {}).then(function () { loading = false; });
  }
  var source = new EventSource("/api/live");
  source.addEventListener("open", function () { if (badge) { badge.hidden = false; } });
  source.addEventListener("stored", function (ev) {
    var n = JSON.parse(ev.data).spans_stored;
    if (last !== null && n !== last && !timer) {
      timer = setTimeout(function () { timer = null; reload(); }, 1000);
    }
    last = n;
  });
})();
