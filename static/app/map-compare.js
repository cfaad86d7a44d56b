// The map's compare mode: the window shown against a base window (the previous period of the
// same length, or one typed in), from /api/topology/diff. Added nodes and edges are drawn in
// green, removed ones come back in grey (dashed, not clickable), changed edges are bold with
// what moved in their label; the side panel lists it all. Names come from span data: only
// ever set as text.
(function () {
  "use strict";
  var button = document.getElementById("compare");
  var container = document.getElementById("cy");
  if (!button || !container) { return; }
  var kit = window.switchyardKit, el = kit.el, truncate = kit.truncate, css = kit.css;
  var options = document.getElementById("compare-options");
  var baseSelect = document.getElementById("compare-base");
  var custom = document.getElementById("compare-custom");
  var summary = document.getElementById("compare-summary");
  var panel = document.getElementById("compare-panel");
  var list = document.getElementById("compare-list");
  var title = document.getElementById("compare-title");
  var on = false, diff = null, cy = null, request = 0;

  function edgeId(e) { return "edge:" + e.from + "\u0001" + e.to + "\u0001" + e.kind; }
  function ghostEdgeId(e) { return "diff-removed:" + e.from + "\u0001" + e.to + "\u0001" + e.kind; }
  function pct(x) { return (x > 0 ? "+" : "") + Math.round(x * 100) + "%"; }
  // One change as people read it: "rate +150%", "errors +12.0 pts", "p99 -40%".
  function changeText(c) {
    var name = c.measure === "rate" ? "rate" : (c.measure === "error_ratio" ? "errors" : "p99");
    if (c.change == null) { return name + " from 0"; }
    if (c.measure === "error_ratio") { return name + " " + (c.change > 0 ? "+" : "") + (c.change * 100).toFixed(1) + " pts"; }
    return name + " " + pct(c.change);
  }
  function styles() {
    var added = css("--diff-added"), removed = css("--diff-removed"), changed = css("--diff-changed");
    cy.style()
      .selector("node.diff-added").style({ "border-color": added, "border-width": 4 })
      .selector("edge.diff-added").style({ "line-color": added, "target-arrow-color": added, "opacity": 1 })
      .selector("node.diff-removed").style({ "border-color": removed, "border-style": "dashed", "border-width": 2,
        "background-color": removed, "background-opacity": 0.08, "color": removed, "events": "no" })
      .selector("edge.diff-removed").style({ "line-color": removed, "target-arrow-color": removed, "line-style": "dashed",
        "line-dash-pattern": [6, 4], "opacity": 0.7, "color": removed, "events": "no" })
      .selector("edge.diff-changed").style({ "line-color": changed, "target-arrow-color": changed, "opacity": 1,
        "width": "mapData(width, 0, 8, 4, 10)", "label": "data(label)", "text-wrap": "wrap", "font-weight": "bold", "color": changed })
      .update();
  }
  function nodeName(id) {
    var n = cy.getElementById(id);
    if (n.nonempty()) { return n.data("name"); }
    var r = (diff.nodes_removed || []).filter(function (x) { return x.id === id; })[0];
    return r ? r.name : id;
  }

  // ---- drawing the diff on the map ----
  function clear() {
    if (!cy) { return; }
    cy.batch(function () {
      cy.remove(".diff-removed");
      cy.edges(".diff-changed").forEach(function (e) {
        if (e.data("labelBeforeDiff") != null) { e.data("label", e.data("labelBeforeDiff")); e.removeData("labelBeforeDiff"); }
      });
      cy.elements().removeClass("diff-added diff-changed");
    });
  }
  function ghostNode(n) {
    var label = truncate(n.name, 28) + "\n(gone)";
    return { group: "nodes", classes: "diff-removed", data: {
      id: n.id, label: label, name: n.name, kind: n.kind, system: n.system || "", namespace: n.namespace || "",
      color: css("--diff-removed"), spans: 0, span_errors: 0, seen: "traces", entity: "", ratio: 0, figures: "gone",
      ring: kit.ring({ traffic: 0, ratio: 0 }), w: Math.max(90, truncate(n.name, 28).length * 7.3 + 50), removed: 1
    } };
  }
  function ghostEdge(e) {
    var b = e.base || {};
    return { group: "edges", classes: "diff-removed", data: {
      id: ghostEdgeId(e), source: e.from, target: e.to, kind: e.kind, count: b.count || 0, errors: 0, rate: 0,
      width: 1.5, seen: "traces", label: e.kind + " (gone)", removed: 1
    } };
  }
  function apply() {
    cy = window.switchyard && window.switchyard.cy;
    if (!cy || !diff) { return; }
    clear();
    var servicesOnly = window.switchyard.mode && window.switchyard.mode() === "services";
    var added = false;
    cy.batch(function () {
      (diff.nodes_added || []).forEach(function (n) { cy.getElementById(n.id).addClass("diff-added"); });
      (diff.nodes_removed || []).forEach(function (n) {
        if (servicesOnly && n.kind !== "service") { return; }
        if (cy.getElementById(n.id).empty()) { cy.add(ghostNode(n)); added = true; }
      });
      if (servicesOnly) { return; }
      (diff.edges_added || []).forEach(function (e) { cy.getElementById(edgeId(e)).addClass("diff-added"); });
      (diff.edges_changed || []).forEach(function (e) {
        var x = cy.getElementById(edgeId(e));
        if (x.empty()) { return; }
        x.data("labelBeforeDiff", x.data("label"));
        x.data("label", x.data("label") + "\n" + e.changes.map(changeText).join(", "));
        x.addClass("diff-changed");
      });
      (diff.edges_removed || []).forEach(function (e) {
        if (cy.getElementById(e.from).empty() || cy.getElementById(e.to).empty()) { return; }
        cy.add(ghostEdge(e));
        added = true;
      });
    });
    styles();
    if (added) { relayout(); }
  }
  function relayout() {
    var layout = window.switchyardLayout;
    cy.layout(layout.layoutFor(cy, true)).run();
    if (layout.small(cy)) { layout.route(cy); }
  }

  // ---- the side panel and the summary ----
  function item(cls, text) { return el("li", { "class": cls, text: text }); }
  function edgeText(e) { return nodeName(e.from) + " \u2192 " + nodeName(e.to) + " (" + e.kind + ")"; }
  function describe() {
    var n = function (k) { return (diff[k] || []).length; };
    var added = n("nodes_added") + n("edges_added"), removed = n("nodes_removed") + n("edges_removed"), changed = n("edges_changed");
    summary.className = "compare-summary";
    summary.textContent = added + " added \u00b7 " + removed + " removed \u00b7 " + changed + " changed";
    var items = [];
    (diff.nodes_added || []).forEach(function (x) { items.push(item("added", "new " + x.kind + " " + x.name)); });
    (diff.edges_added || []).forEach(function (x) { items.push(item("added", "new edge " + edgeText(x))); });
    (diff.edges_changed || []).forEach(function (x) { items.push(item("changed", edgeText(x) + ": " + x.changes.map(changeText).join(", "))); });
    (diff.nodes_removed || []).forEach(function (x) { items.push(item("removed", "gone: " + x.kind + " " + x.name)); });
    (diff.edges_removed || []).forEach(function (x) { items.push(item("removed", "gone: edge " + edgeText(x))); });
    if (!items.length) { items.push(el("li", { "class": "muted", text: "Nothing added, removed or changed." })); }
    list.replaceChildren.apply(list, items);
    title.textContent = "Compared with " + new Date(diff.base.since_unix_nanos / 1e6).toISOString().replace(".000Z", "Z") +
      " \u2013 " + new Date(diff.base.until_unix_nanos / 1e6).toISOString().replace(".000Z", "Z");
    panel.hidden = false;
  }
  function legend(show) {
    document.querySelectorAll(".legend-compare").forEach(function (li) { li.hidden = !show; });
  }

  // ---- fetching ----
  function query() {
    var q = container.getAttribute("data-window-query") || "";
    if (baseSelect.value === "custom") {
      q += "&base_since=" + encodeURIComponent(document.getElementById("compare-since").value.trim()) +
        "&base_until=" + encodeURIComponent(document.getElementById("compare-until").value.trim());
    }
    return q;
  }
  function load() {
    var mine = ++request;
    summary.className = "compare-summary";
    summary.textContent = "comparing\u2026";
    return fetch("/api/topology/diff?" + query(), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (mine !== request || !on) { return; }
        if (!res.ok) { throw new Error(res.body && res.body.message ? res.body.message : "the comparison failed"); }
        diff = res.body;
        apply();
        describe();
        legend(true);
        document.body.setAttribute("data-compare-ready", String(mine));
      })
      .catch(function (err) {
        if (mine !== request) { return; }
        summary.className = "compare-summary bad";
        summary.textContent = err.message;
        document.body.setAttribute("data-compare-ready", "error");
      });
  }
  function setOn(value) {
    on = value;
    button.setAttribute("aria-pressed", String(on));
    options.hidden = !on;
    if (on) { return load(); }
    request++;
    diff = null;
    clear();
    if (cy) { relayout(); }
    summary.textContent = "";
    panel.hidden = true;
    legend(false);
    document.body.removeAttribute("data-compare-ready");
  }

  button.addEventListener("click", function () { setOn(!on); });
  baseSelect.addEventListener("change", function () {
    custom.hidden = baseSelect.value !== "custom";
    if (baseSelect.value !== "custom" && on) { load(); }
  });
  document.getElementById("compare-apply").addEventListener("click", function () { if (on) { load(); } });
  // The map redrew (live refresh, services-only view): draw the diff on it again.
  document.addEventListener("switchyard:drawn", function () { if (on && diff) { apply(); } });
  // After the map's own listener, which replaces the whole stylesheet.
  document.addEventListener("switchyard:theme", function () {
    setTimeout(function () {
      if (!on || !cy) { return; }
      styles();
      cy.nodes(".diff-removed").forEach(function (n) { n.data("color", css("--diff-removed")); });
    }, 0);
  });
  window.switchyardCompare = { on: function () { return on; }, diff: function () { return diff; }, set: setOn };
})();
