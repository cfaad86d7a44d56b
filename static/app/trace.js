// Trace view: the row a link points at (#span-<id>) opens and scrolls into view; zoom and pan
// on the time axis (buttons, Ctrl+wheel over the bars, dragging the axis, a minimap);
// collapsing subtrees; unfolding nested spans of one message; finding within the trace.
// Bars are placed by CSS from each row's --l/--w and the view's --v0/--vk, so zooming sets two
// properties on the waterfall, whatever the number of rows. Span data is only read as text;
// a large trace's rows load their details when opened (the server's escaped HTML).
(function () {
  "use strict";
  var wf = null, rows = [], depth = [], view = { from: 0, to: 100 };

  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var row = id ? document.getElementById(id) : null;
    if (row && row.tagName === "DETAILS") {
      reveal(row);
      row.open = true;
      row.scrollIntoView({ block: "nearest" });
      var summary = row.querySelector("summary");
      if (summary) { summary.focus({ preventScroll: true }); }
    }
  }

  // Visibility: a row is hidden under a collapsed ancestor, and an inner span of nested spans
  // of one message is hidden until its outer row is unfolded.
  function layout() {
    var cut = Infinity, k, r, d, hide;
    for (k = 0; k < rows.length; k++) {
      r = rows[k]; d = depth[k];
      if (d <= cut) { cut = Infinity; }
      hide = d > cut;
      var outer = r.getAttribute("data-folded-into");
      if (!hide && outer) {
        var o = document.getElementById("span-" + outer);
        hide = !(o && o.classList.contains("unfolded"));
      }
      if (r.hidden !== hide) { r.hidden = hide; }
      if (!hide && cut === Infinity && r.classList.contains("collapsed")) { cut = d; }
    }
  }

  // Opens every collapsed ancestor (and the fold) of a row, so a found or linked row shows.
  function reveal(row) {
    var k = rows.indexOf(row);
    if (k < 0) { return; }
    var d = depth[k], changed = false;
    for (var j = k - 1; j >= 0 && d > 0; j--) {
      if (depth[j] < d) {
        d = depth[j];
        if (rows[j].classList.contains("collapsed")) { setCollapsed(rows[j], false); changed = true; }
      }
    }
    var outer = row.getAttribute("data-folded-into");
    var o = outer && document.getElementById("span-" + outer);
    if (o && !o.classList.contains("unfolded")) { setUnfolded(o, true); changed = true; }
    if (changed || row.hidden) { layout(); }
  }

  function setCollapsed(row, collapsed) {
    row.classList.toggle("collapsed", collapsed);
    var b = row.querySelector(":scope > summary .wf-fold");
    if (b) { b.setAttribute("aria-expanded", collapsed ? "false" : "true"); }
  }

  function setUnfolded(row, unfolded) {
    row.classList.toggle("unfolded", unfolded);
    var b = row.querySelector(":scope > summary .wf-folds");
    if (b) { b.setAttribute("aria-expanded", unfolded ? "true" : "false"); }
  }

  // Time axis.
  var totalNanos = 1;
  function fmt(nanos) {
    var us = nanos / 1000;
    if (us < 1000) { return us.toFixed(us < 10 ? 1 : 0) + " \u00b5s"; }
    if (us < 1e6) { return (us / 1000).toFixed(us < 1e4 ? 2 : 1) + " ms"; }
    return (us / 1e6).toFixed(2) + " s";
  }
  function setView(from, to) {
    var min = Math.max(100 * 1000 / totalNanos, 0.01); // a microsecond, or 1/10,000 of the trace
    from = Math.max(0, from); to = Math.min(100, to);
    if (to - from < min) { var mid = (from + to) / 2; from = Math.max(0, mid - min / 2); to = Math.min(100, from + min); }
    view = { from: from, to: to };
    wf.style.setProperty("--v0", String(from));
    wf.style.setProperty("--vk", String(100 / (to - from)));
    wf.setAttribute("data-view", from.toFixed(3) + "," + to.toFixed(3));
    var ticks = document.getElementById("wf-ticks");
    if (ticks) {
      var spans = [];
      for (var q = 0; q <= 4; q++) {
        var at = from + (to - from) * q / 4;
        var t = document.createElement("span");
        t.className = "tick" + (q === 4 ? " end" : "");
        t.style.left = (q * 25) + "%";
        t.textContent = fmt(totalNanos * at / 100);
        spans.push(t);
      }
      ticks.replaceChildren.apply(ticks, spans);
    }
    var vp = document.getElementById("wf-viewport");
    if (vp) { vp.style.left = from + "%"; vp.style.width = (to - from) + "%"; }
  }
  function zoom(factor, at) {
    var span = view.to - view.from, center = at === undefined ? view.from + span / 2 : at;
    var next = Math.min(100, span * factor);
    var from = center - (center - view.from) * next / span;
    if (from < 0) { from = 0; }
    if (from + next > 100) { from = 100 - next; }
    setView(from, from + next);
  }
  function pan(delta) {
    var span = view.to - view.from;
    var from = Math.min(Math.max(0, view.from + delta), 100 - span);
    setView(from, from + span);
  }

  // The minimap: every span as a thin line, in its service's colour, under the view window.
  function drawMinimap() {
    var box = document.getElementById("wf-minimap"), canvas = document.getElementById("wf-minimap-canvas");
    if (!box || !canvas || !canvas.getContext) { return; }
    var w = Math.max(1, box.clientWidth), h = 48, ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
    var ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, w, h);
    var colours = {}, n = rows.length, lane = Math.max(h / Math.max(n, 1), 0.25);
    for (var k = 0; k < n; k++) {
      var r = rows[k], c = r.className.match(/svc-c\d+/), key = c ? c[0] : "";
      if (!(key in colours)) { colours[key] = getComputedStyle(r).getPropertyValue("--svc").trim() || "#888"; }
      var l = parseFloat(r.style.getPropertyValue("--l")) || 0, sw = parseFloat(r.style.getPropertyValue("--w")) || 0;
      ctx.fillStyle = r.classList.contains("error") ? getComputedStyle(document.documentElement).getPropertyValue("--error") : colours[key];
      ctx.fillRect(l * w / 100, k * h / n, Math.max(sw * w / 100, 1), Math.max(lane, 1));
    }
  }
  function wireMinimap() {
    var box = document.getElementById("wf-minimap"), vp = document.getElementById("wf-viewport");
    if (!box || !vp) { return; }
    box.hidden = false;
    var drag = null;
    function at(ev) { var r = box.getBoundingClientRect(); return Math.min(100, Math.max(0, (ev.clientX - r.left) * 100 / r.width)); }
    box.addEventListener("pointerdown", function (ev) {
      var p = at(ev);
      drag = ev.target === vp ? { mode: "pan", start: p, from: view.from } : { mode: "select", start: p };
      try { box.setPointerCapture(ev.pointerId); } catch (e) { /* a synthetic pointer */ }
      ev.preventDefault();
    });
    box.addEventListener("pointermove", function (ev) {
      if (!drag) { return; }
      var p = at(ev);
      if (drag.mode === "pan") { pan(drag.from + (p - drag.start) - view.from); }
      else { vp.style.left = Math.min(p, drag.start) + "%"; vp.style.width = Math.abs(p - drag.start) + "%"; }
    });
    box.addEventListener("pointerup", function (ev) {
      if (!drag) { return; }
      var p = at(ev);
      if (drag.mode === "select") {
        if (Math.abs(p - drag.start) > 0.5) { setView(Math.min(p, drag.start), Math.max(p, drag.start)); }
        else { var span = view.to - view.from; setView(p - span / 2, p + span / 2); }
      }
      drag = null;
    });
    window.addEventListener("resize", drawMinimap);
    document.addEventListener("switchyard:theme", drawMinimap);
    drawMinimap();
  }

  // Find: rows whose text (service, operation, ids, attributes, events) holds the query,
  // case-insensitively; Enter goes to the next one.
  var texts = null, matches = [], current = -1, lastQuery = null;
  function find(typed) {
    lastQuery = typed;
    var query = typed.trim().toLowerCase();
    if (!texts) { texts = rows.map(function (r) { return (r.textContent + " " + (r.getAttribute("data-text") || "")).toLowerCase(); }); }
    matches.forEach(function (r) { r.classList.remove("match", "match-current"); });
    matches = [];
    current = -1;
    if (query) {
      for (var k = 0; k < rows.length; k++) {
        if (texts[k].indexOf(query) >= 0) { matches.push(rows[k]); rows[k].classList.add("match"); }
      }
    }
    wf.setAttribute("data-matches", String(matches.length));
    show(0);
  }
  function show(step) {
    var count = document.getElementById("find-count");
    if (!matches.length) {
      if (count) { count.textContent = document.getElementById("trace-find").value.trim() ? "no match" : ""; }
      return;
    }
    if (current >= 0) { matches[current].classList.remove("match-current"); }
    current = current < 0 ? 0 : (current + step + matches.length) % matches.length;
    var row = matches[current];
    row.classList.add("match-current");
    reveal(row);
    row.scrollIntoView({ block: "nearest" });
    if (count) { count.textContent = (current + 1) + " of " + matches.length; }
  }

  // A large trace's rows come without their details: a row opened the first time loads its
  // span's (the server's own escaped HTML, as the rows of a smaller trace hold them).
  function loadDetails(row) {
    var base = wf.getAttribute("data-details");
    if (!base || !row.open || row.hasAttribute("data-details-state")) { return; }
    row.setAttribute("data-details-state", "loading");
    var url = base + encodeURIComponent(row.getAttribute("data-span-id") || "") + "?" + (wf.getAttribute("data-window-query") || "");
    fetch(url, { headers: { Accept: "text/html" } }).then(function (r) {
      if (!r.ok) { throw new Error("the server answered " + r.status); }
      return r.text();
    }).then(function (html) {
      var body = new DOMParser().parseFromString(html, "text/html").body.firstElementChild;
      if (body) { row.appendChild(document.adoptNode(body)); }
      row.setAttribute("data-details-state", "loaded");
    }).catch(function (err) {
      var p = document.createElement("p");
      p.className = "notice wf-details";
      p.textContent = "Could not load this span's details: " + err.message;
      row.appendChild(p);
      row.setAttribute("data-details-state", "error");
    });
  }

  function wire() {
    wf = document.getElementById("waterfall");
    if (!wf) { return; }
    // "toggle" does not bubble: caught on its way down.
    wf.addEventListener("toggle", function (ev) {
      if (ev.target.classList && ev.target.classList.contains("wf-row")) { loadDetails(ev.target); }
    }, true);
    rows = Array.prototype.slice.call(wf.querySelectorAll(":scope > .wf-row"));
    depth = rows.map(function (r) { return Number(r.getAttribute("data-depth")) || 0; });
    totalNanos = Math.max(1, Number(wf.getAttribute("data-total-nanos")) || 1);
    var tools = document.getElementById("wf-tools");
    if (tools) { tools.hidden = false; }
    wf.addEventListener("click", function (ev) {
      var b = ev.target.closest ? ev.target.closest(".wf-fold, .wf-folds") : null;
      if (!b) { return; }
      ev.preventDefault(); // a button in a summary would also open the row
      var row = b.closest(".wf-row");
      if (b.classList.contains("wf-fold")) { setCollapsed(row, !row.classList.contains("collapsed")); }
      else { setUnfolded(row, !row.classList.contains("unfolded")); }
      layout();
    });
    function on(id, f) { var e = document.getElementById(id); if (e) { e.addEventListener("click", f); } }
    // Only rows with something under them can collapse (the next row is deeper).
    on("collapse-all", function () {
      for (var k = 0; k + 1 < rows.length; k++) {
        if (depth[k + 1] > depth[k] && !rows[k].classList.contains("collapsed")) { setCollapsed(rows[k], true); }
      }
      layout();
    });
    on("expand-all", function () {
      rows.forEach(function (r) { if (r.classList.contains("collapsed")) { setCollapsed(r, false); } });
      layout();
    });
    on("zoom-in", function () { zoom(0.5); });
    on("zoom-out", function () { zoom(2); });
    on("zoom-reset", function () { setView(0, 100); });
    on("find-next", function () { show(1); });
    on("find-prev", function () { show(-1); });
    var input = document.getElementById("trace-find"), timer = null;
    if (input) {
      input.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () { find(input.value); }, 120);
      });
      input.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter") {
          ev.preventDefault();
          clearTimeout(timer);
          if (lastQuery !== input.value) { find(input.value); } else { show(ev.shiftKey ? -1 : 1); }
        }
      });
    }
    // Ctrl (or Cmd) + wheel over the bars zooms around the pointer; dragging the axis pans.
    wf.addEventListener("wheel", function (ev) {
      if (!(ev.ctrlKey || ev.metaKey)) { return; }
      var track = ev.target.closest ? ev.target.closest(".wf-track") : null;
      if (!track) { return; }
      ev.preventDefault();
      var r = track.getBoundingClientRect();
      var at = view.from + (view.to - view.from) * (ev.clientX - r.left) / r.width;
      zoom(ev.deltaY > 0 ? 1.25 : 0.8, at);
    }, { passive: false });
    var axis = document.getElementById("wf-ticks");
    if (axis) {
      var grab = null;
      axis.addEventListener("pointerdown", function (ev) { grab = { x: ev.clientX, from: view.from, width: axis.clientWidth }; try { axis.setPointerCapture(ev.pointerId); } catch (e) { /* a synthetic pointer */ } });
      axis.addEventListener("pointermove", function (ev) {
        if (grab) { pan(grab.from - (ev.clientX - grab.x) * (view.to - view.from) / grab.width - view.from); }
      });
      axis.addEventListener("pointerup", function () { grab = null; });
    }
    wireMinimap();
    setView(0, 100);
    layout();
    window.switchyardTrace = { setView: setView, view: function () { return view; }, find: find, layout: layout, readyAt: performance.now() };
    openTarget();
    document.body.setAttribute("data-trace-ready", "1");
  }

  window.addEventListener("hashchange", openTarget);
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", wire); } else { wire(); }
})();
