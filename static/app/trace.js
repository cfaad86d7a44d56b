// Trace view: the row a link points at (#span-<id>) opens and scrolls into view; zoom and pan
// on the time axis (buttons, Ctrl+wheel over the bars, dragging the axis, a minimap);
// collapsing subtrees; unfolding nested spans of one message; finding within the trace.
// Bars are placed by CSS from each row's --l/--w and the view's --v0/--vk, so zooming sets two
// properties on the waterfall, whatever the number of rows. Span data is only read as text;
// a large trace's rows load their details when opened (the server's escaped HTML), and only
// its first rows come as HTML: the others are built from the page's compact row data
// (#wf-rows) as they scroll into view, or when find, a link or a fold needs them.
(function () {
  "use strict";
  var wf = null, view = { from: 0, to: 100 };
  // Every row by index, in tree order: its element once built, span id, depth, the outer row
  // it is folded into (-1: none), and its state (kept here for rows not built yet).
  var n = 0, els = [], ids = [], depth = [], outer = [], collapsed = [], unfolded = [], hidden = [], matched = [];
  var byId = {};
  // A large trace: its rows' data, how many rows are built, the room the others take.
  var data = null, made = 0, rest = null, rowPx = 41;
  var CHUNK = 200, AHEAD = 1200;

  function readRows() {
    var dom = Array.prototype.slice.call(wf.querySelectorAll(":scope > .wf-row"));
    var script = document.getElementById("wf-rows");
    if (script) {
      try { data = JSON.parse(script.textContent); } catch (e) { data = null; }
    }
    rest = data ? document.getElementById("wf-rest") : null;
    n = data ? data.rows.length : dom.length;
    made = Math.min(n, dom.length);
    els = dom.slice(0, made);
    for (var k = 0; k < n; k++) {
      ids[k] = data ? data.rows[k][0] : dom[k].getAttribute("data-span-id");
      depth[k] = data ? data.rows[k][1] : Number(dom[k].getAttribute("data-depth")) || 0;
      byId[ids[k]] = k;
      collapsed[k] = false; unfolded[k] = false; hidden[k] = false; matched[k] = false;
    }
    for (k = 0; k < n; k++) {
      var o = data ? data.rows[k][12] : byId[dom[k].getAttribute("data-folded-into")];
      outer[k] = o === undefined || o === null || o < 0 ? -1 : o;
    }
    var h = els.length ? els[0].getBoundingClientRect().height : 0;
    if (h >= 20 && h <= 200) { rowPx = h; }
  }

  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var k = id.indexOf("span-") === 0 ? byId[id.slice(5)] : undefined;
    if (k === undefined) { return; }
    reveal(k);
    var row = els[k];
    row.open = true;
    row.scrollIntoView({ block: "nearest" });
    var summary = row.querySelector("summary");
    if (summary) { summary.focus({ preventScroll: true }); }
  }

  // Visibility: a row is hidden under a collapsed ancestor, and an inner span of nested spans
  // of one message is hidden until its outer row is unfolded. Rows not built yet take their
  // room in the space after the built ones.
  function layout() {
    var cut = Infinity, k, d, hide, room = 0;
    for (k = 0; k < n; k++) {
      d = depth[k];
      if (d <= cut) { cut = Infinity; }
      hide = d > cut || (outer[k] >= 0 && !unfolded[outer[k]]);
      hidden[k] = hide;
      if (k < made) { if (els[k].hidden !== hide) { els[k].hidden = hide; } } else if (!hide) { room++; }
      if (!hide && cut === Infinity && collapsed[k]) { cut = d; }
    }
    if (rest) { rest.style.height = (room * rowPx) + "px"; }
  }

  // Builds the rows up to index `upTo` (exclusive) from the data, as the page's HTML has them.
  function grow(upTo) {
    upTo = Math.min(n, upTo);
    if (!data || upTo <= made) { return; }
    var frag = document.createDocumentFragment();
    for (var k = made; k < upTo; k++) { els[k] = build(k); frag.appendChild(els[k]); }
    wf.insertBefore(frag, rest);
    made = upTo;
    layout();
  }
  function el(tag, cls, text, attrs) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text) { e.textContent = text; }
    for (var a in attrs || {}) { e.setAttribute(a, attrs[a]); }
    return e;
  }
  // The markup of templates/trace.html's rows (keep the two alike).
  function build(k) {
    var r = data.rows[k], flags = r[3], error = flags & 1, role = flags & 2 ? "publish" : (flags & 4 ? "consume" : "");
    var service = data.services[r[4]] || "", hop = r[13];
    var row = el("details", "wf-row svc-c" + r[2] + (error ? " error" : "") + (role ? " role-" + role : "") +
      (outer[k] >= 0 ? " folded" : "") + (r[11] > 0 ? " has-folds" : "") + (collapsed[k] ? " collapsed" : "") +
      (unfolded[k] ? " unfolded" : "") + (matched[k] ? " match" : ""), "",
      { id: "span-" + r[0], "data-span-id": r[0], "data-depth": String(r[1]), role: "listitem", style: "--l:" + r[8] + ";--w:" + r[9] });
    if (outer[k] >= 0) { row.setAttribute("data-folded-into", ids[outer[k]]); }
    var label = el("span", "wf-label", "", { style: "padding-left:" + Math.min(r[1], 24) * 14 + "px" });
    if (k + 1 < n && depth[k + 1] > depth[k]) {
      label.appendChild(el("button", "wf-fold", "\u25be", { type: "button", "aria-expanded": collapsed[k] ? "false" : "true",
        title: "Collapse or expand what hangs under this span" }));
    } else {
      label.appendChild(el("span", "wf-fold-space"));
    }
    if (error) { label.appendChild(el("span", "err-mark", "!", { title: "error" + (r[7] ? ": " + r[7] : "") })); }
    label.appendChild(el("span", "svc truncate", service, { title: service }));
    if (role) { label.appendChild(el("span", "role-tag", role === "publish" ? "pub" : "con", { title: role })); }
    label.appendChild(el("span", "op truncate", r[5], { title: r[5] }));
    if (r[6]) { label.appendChild(el("span", "err-reason", r[6], { title: "why this span failed (error.type)" })); }
    if (r[11] > 0) {
      label.appendChild(el("button", "wf-folds", "\u00d7" + (r[11] + 1), { type: "button", "aria-expanded": unfolded[k] ? "true" : "false",
        title: (r[11] + 1) + " nested spans of one message, counted once: show the inner ones" }));
    }
    var track = el("span", "wf-track"), text = r[10];
    if (hop) {
      track.appendChild(el("span", "bar broker", "", { style: "--gl:" + hop[1] + ";--gw:" + hop[2], title: hop[3] + " from publish to consume" }));
      text += " \u00b7 " + hop[3] + " after publish";
    }
    r[14].forEach(function (x) { text += " \u00b7 response after " + x[2]; });
    track.appendChild(el("span", "bar span-bar"));
    track.appendChild(el("span", "bar-text" + (flags & 8 ? " flip" : ""), text));
    var summary = el("summary");
    summary.appendChild(label);
    summary.appendChild(track);
    row.appendChild(summary);
    return row;
  }
  // Rows are built ahead of the view as the space for the others comes near it.
  function watchRest() {
    if (!data || !rest || made >= n) { return; }
    if (!("IntersectionObserver" in window)) { grow(n); return; }
    var pending = false;
    function near() { var r = rest.getBoundingClientRect(); return r.top < innerHeight + AHEAD && r.bottom > -AHEAD; }
    function more() {
      pending = false;
      if (made >= n || !near()) { return; }
      // Enough rows to fill the view, if it jumped into the middle of the space.
      var want = Math.ceil((innerHeight + AHEAD - rest.getBoundingClientRect().top) / rowPx);
      grow(made + Math.max(CHUNK, want));
      if (made < n && !pending) { pending = true; requestAnimationFrame(more); }
    }
    var io = new IntersectionObserver(function (entries) {
      if (made >= n) { io.disconnect(); return; }
      if (entries.some(function (e) { return e.isIntersecting; }) && !pending) { pending = true; requestAnimationFrame(more); }
    }, { rootMargin: AHEAD + "px 0px" });
    io.observe(rest);
  }

  // Opens every collapsed ancestor (and the fold) of a row and builds it, so a found or linked
  // row shows.
  function reveal(k) {
    var d = depth[k], changed = false;
    for (var j = k - 1; j >= 0 && d > 0; j--) {
      if (depth[j] < d) {
        d = depth[j];
        if (collapsed[j]) { setCollapsed(j, false); changed = true; }
      }
    }
    var o = outer[k];
    if (o >= 0 && !unfolded[o]) { setUnfolded(o, true); changed = true; }
    grow(k + 1);
    if (changed || hidden[k]) { layout(); }
  }

  function setCollapsed(k, on) {
    collapsed[k] = on;
    if (k >= made) { return; }
    els[k].classList.toggle("collapsed", on);
    var b = els[k].querySelector(":scope > summary .wf-fold");
    if (b) { b.setAttribute("aria-expanded", on ? "false" : "true"); }
  }

  function setUnfolded(k, on) {
    unfolded[k] = on;
    if (k >= made) { return; }
    els[k].classList.toggle("unfolded", on);
    var b = els[k].querySelector(":scope > summary .wf-folds");
    if (b) { b.setAttribute("aria-expanded", on ? "true" : "false"); }
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
  function bar(k) {
    if (data) { var r = data.rows[k]; return [r[8], r[9], r[2], r[3] & 1]; }
    var e = els[k], c = e.className.match(/svc-c(\d+)/);
    return [parseFloat(e.style.getPropertyValue("--l")) || 0, parseFloat(e.style.getPropertyValue("--w")) || 0,
      c ? c[1] : "", e.classList.contains("error")];
  }
  function colour(key, cache) {
    if (!(key in cache)) {
      var probe = el("span", "svc-c" + key, "", { hidden: "" });
      wf.appendChild(probe);
      cache[key] = getComputedStyle(probe).getPropertyValue("--svc").trim() || "#888";
      probe.remove();
    }
    return cache[key];
  }
  function drawMinimap() {
    var box = document.getElementById("wf-minimap"), canvas = document.getElementById("wf-minimap-canvas");
    if (!box || !canvas || !canvas.getContext) { return; }
    var w = Math.max(1, box.clientWidth), h = 48, ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
    var ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, w, h);
    var colours = {}, lane = Math.max(h / Math.max(n, 1), 0.25);
    var error = getComputedStyle(document.documentElement).getPropertyValue("--error");
    for (var k = 0; k < n; k++) {
      var b = bar(k);
      ctx.fillStyle = b[3] ? error : colour(b[2], colours);
      ctx.fillRect(b[0] * w / 100, k * h / n, Math.max(b[1] * w / 100, 1), Math.max(lane, 1));
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
  function text(k) {
    if (!data) { return els[k].textContent + " " + ids[k]; }
    var r = data.rows[k], flags = r[3];
    return [data.services[r[4]], flags & 2 ? "pub" : (flags & 4 ? "con" : ""), r[5], r[6], r[10], r[0], r[15]].join(" ");
  }
  function mark(k, on, current) {
    matched[k] = on;
    if (k < made) {
      els[k].classList.toggle("match", on);
      els[k].classList.toggle("match-current", !!current);
    }
  }
  function find(typed) {
    lastQuery = typed;
    var query = typed.trim().toLowerCase();
    if (!texts) { texts = ids.map(function (id, k) { return text(k).toLowerCase(); }); }
    matches.forEach(function (k) { mark(k, false); });
    matches = [];
    current = -1;
    if (query) {
      for (var k = 0; k < n; k++) {
        if (texts[k].indexOf(query) >= 0) { matches.push(k); mark(k, true); }
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
    if (current >= 0) { mark(matches[current], true); }
    current = current < 0 ? 0 : (current + step + matches.length) % matches.length;
    var k = matches[current];
    reveal(k);
    mark(k, true, true);
    els[k].scrollIntoView({ block: "nearest" });
    if (count) { count.textContent = (current + 1) + " of " + matches.length; }
  }

  // A large trace's rows come without their details: a row opened the first time loads its
  // span's (the server's own escaped HTML, as the rows of a smaller trace hold them), and what
  // only the whole trace tells (its hop, consumers and responses) is added from the rows' data.
  function loadDetails(row) {
    var base = wf.getAttribute("data-details");
    if (!base || !row.open || row.hasAttribute("data-details-state")) { return; }
    row.setAttribute("data-details-state", "loading");
    var url = base + encodeURIComponent(row.getAttribute("data-span-id") || "") + "?" + (wf.getAttribute("data-details-query") || "");
    fetch(url, { headers: { Accept: "text/html" } }).then(function (r) {
      if (!r.ok) { throw new Error("the server answered " + r.status); }
      return r.text();
    }).then(function (html) {
      var body = new DOMParser().parseFromString(html, "text/html").body.firstElementChild;
      if (body) {
        relations(byId[row.getAttribute("data-span-id")], body);
        row.appendChild(document.adoptNode(body));
      }
      row.setAttribute("data-details-state", "loaded");
    }).catch(function (err) {
      var p = document.createElement("p");
      p.className = "notice wf-details";
      p.textContent = "Could not load this span's details: " + err.message;
      row.appendChild(p);
      row.setAttribute("data-details-state", "error");
    });
  }
  // The paragraphs of templates/trace_span.html that the whole trace tells, after the facts.
  var CONSUMERS_SHOWN = 200, consumersOf = null;
  function hopLink(k, cls) {
    return el("a", cls, data.services[data.rows[k][4]], { href: "#span-" + ids[k] });
  }
  function relations(k, details) {
    if (!data || k === undefined) { return; }
    var r = data.rows[k], out = [];
    if (r[13] && r[13][0] >= 0) {
      var p = el("p", "hop", "Consumed " + r[13][3] + " after it was published by ");
      p.appendChild(hopLink(r[13][0], "hop-link"));
      p.appendChild(document.createTextNode("."));
      out.push(p);
    }
    if (!consumersOf) {
      consumersOf = {};
      data.rows.forEach(function (x, j) { if (x[13] && x[13][0] >= 0) { (consumersOf[x[13][0]] = consumersOf[x[13][0]] || []).push(j); } });
    }
    var by = consumersOf[k] || [];
    if (by.length) {
      var c = el("p", "hop", "Consumed by: ");
      by.slice(0, CONSUMERS_SHOWN).forEach(function (j, i) {
        if (i) { c.appendChild(document.createTextNode(", ")); }
        c.appendChild(hopLink(j, "hop-link"));
      });
      if (by.length > CONSUMERS_SHOWN) { c.appendChild(document.createTextNode(" and " + (by.length - CONSUMERS_SHOWN) + " more")); }
      out.push(c);
    }
    r[14].forEach(function (x) {
      var q = el("p", "hop response", "Response: received by ");
      q.appendChild(el("a", "response-link", x[1], { href: "#span-" + x[0] }));
      q.appendChild(document.createTextNode(" " + x[2] + " after this request was published."));
      out.push(q);
    });
    var facts = details.querySelector(":scope > dl.facts");
    out.reverse().forEach(function (x) { if (facts) { facts.after(x); } else { details.prepend(x); } });
  }

  function wire() {
    wf = document.getElementById("waterfall");
    if (!wf) { return; }
    // "toggle" does not bubble: caught on its way down.
    wf.addEventListener("toggle", function (ev) {
      if (ev.target.classList && ev.target.classList.contains("wf-row")) { loadDetails(ev.target); }
    }, true);
    readRows();
    totalNanos = Math.max(1, Number(wf.getAttribute("data-total-nanos")) || 1);
    var tools = document.getElementById("wf-tools");
    if (tools) { tools.hidden = false; }
    wf.addEventListener("click", function (ev) {
      var b = ev.target.closest ? ev.target.closest(".wf-fold, .wf-folds") : null;
      if (!b) { return; }
      ev.preventDefault(); // a button in a summary would also open the row
      var k = byId[b.closest(".wf-row").getAttribute("data-span-id")];
      if (k === undefined) { return; }
      if (b.classList.contains("wf-fold")) { setCollapsed(k, !collapsed[k]); } else { setUnfolded(k, !unfolded[k]); }
      layout();
    });
    function on(id, f) { var e = document.getElementById(id); if (e) { e.addEventListener("click", f); } }
    // Only rows with something under them can collapse (the next row is deeper).
    on("collapse-all", function () {
      for (var k = 0; k + 1 < n; k++) {
        if (depth[k + 1] > depth[k] && !collapsed[k]) { setCollapsed(k, true); }
      }
      layout();
    });
    on("expand-all", function () {
      for (var k = 0; k < n; k++) { if (collapsed[k]) { setCollapsed(k, false); } }
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
    watchRest();
    window.switchyardTrace = { setView: setView, view: function () { return view; }, find: find, layout: layout,
      built: function () { return made; }, readyAt: performance.now() };
    openTarget();
    document.body.setAttribute("data-trace-ready", "1");
  }

  window.addEventListener("hashchange", openTarget);
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", wire); } else { wire(); }
})();
