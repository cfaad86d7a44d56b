// Trace view: the row a link points at (#span-<id>) opens and scrolls into view, so following
// a hop or a span link lands on the span's details.
(function () {
  "use strict";
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var row = id ? document.getElementById(id) : null;
    if (row && row.tagName === "DETAILS") {
      row.open = true;
      row.scrollIntoView({ block: "nearest" });
      var summary = row.querySelector("summary");
      if (summary) { summary.focus({ preventScroll: true }); }
    }
  }
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", openTarget);
})();
