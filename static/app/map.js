// The topology map: draws /api/topology with Cytoscape.js and a left-to-right dagre layout.
// Every name comes from span data: it is only ever set as text (textContent, attributes,
// canvas labels), never parsed as HTML.
(function () {
  "use strict";
  var container = document.getElementById("cy");
  if (!container || typeof cytoscape !== "function") { return; }
  if (typeof cytoscapeDagre === "function") { cytoscape.use(cytoscapeDagre); }

  var windowQuery = container.getAttribute("data-window-query") || "";
  var pageQuery = container.getAttribute("data-page-query") || "";
  var topology = null;
  var cy = null;
  var tooltip = document.getElementById("tooltip");

  // ---- small DOM helpers (text only) ----
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) {
      if (c == null) { return; }
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function truncate(text, max) {
    return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
  }
  function micros(us) {
    if (us == null) { return "\u2013"; }
    if (us < 1000) { return us.toFixed(0) + " \u00b5s"; }
    if (us < 1e6) { return (us / 1000).toFixed(1) + " ms"; }
    return (us / 1e6).toFixed(2) + " s";
  }
  function rate(r) {
    if (r >= 10) { return r.toFixed(0) + "/s"; }
    if (r >= 0.1) { return r.toFixed(2) + "/s"; }
    return (r * 60).toFixed(2) + "/min";
  }
  function nodePage(id) {
    if (id.indexOf("service:") === 0) { return "/services/" + encodeURIComponent(id) + "?" + pageQuery; }
    if (id.indexOf("destination:") === 0) { return "/destinations/" + encodeURIComponent(id) + "?" + pageQuery; }
    return null;
  }
  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  // ---- graph elements ----
  // Destinations are styled by broker system: one colour per system, named under the node.
  var PALETTE = ["#0f8a6c", "#b5651d", "#7b4fd0", "#c2418b", "#1f7fb3", "#6f8f1f", "#a83e3e", "#3d6f8f"];
  // Where a node or edge was seen: "traces", "broker" or "both" (older answers: traces).
  function seenIn(x) {
    var s = x.seen_in || ["traces"];
    return s.indexOf("traces") >= 0 ? (s.indexOf("broker") >= 0 ? "both" : "traces") : "broker";
  }

  function elements(topo) {
    var out = [];
    var systems = topo.nodes.map(function (n) { return n.kind === "destination" ? n.system || "" : null; })
      .filter(function (s, i, all) { return s !== null && all.indexOf(s) === i; }).sort();
    topo.nodes.forEach(function (n) {
      var label = truncate(n.name, 28);
      var color = n.kind === "destination" ? PALETTE[systems.indexOf(n.system || "") % PALETTE.length] : null;
      out.push({ group: "nodes", data: {
        id: n.id, label: n.kind === "destination" && n.system ? label + "\n" + truncate(n.system, 28) : label,
        name: n.name, kind: n.kind, system: n.system || "", color: color,
        namespace: n.namespace || "", spans: n.spans, span_errors: n.span_errors || 0,
        seen: seenIn(n), entity: n.entity || "",
        w: Math.max(54, Math.max(label.length, n.kind === "destination" ? truncate(n.system || "", 28).length : 0) * 7 + 22)
      } });
    });
    var maxRate = topo.edges.reduce(function (m, e) { return Math.max(m, e.rate_per_sec || 0); }, 0) || 1;
    topo.edges.forEach(function (e, i) {
      var width = 1.5 + 6.5 * Math.log1p(e.rate_per_sec || 0) / Math.log1p(maxRate);
      out.push({ group: "edges", data: {
        id: "edge:" + e.from + "\u0001" + e.to + "\u0001" + e.kind, index: i, source: e.from, target: e.to, kind: e.kind, count: e.count,
        errors: e.errors, rate: e.rate_per_sec, width: width, seen: seenIn(e)
      } });
    });
    return out;
  }

  function style() {
    var text = css("--text"), muted = css("--muted"), surface = css("--surface");
    return [
      { selector: "node", style: {
        "label": "data(label)", "color": text, "font-size": 12, "text-valign": "center",
        "text-halign": "center", "width": "data(w)", "height": 30, "border-width": 1.5,
        "border-color": css("--border"), "background-color": surface, "text-wrap": "none"
      } },
      { selector: "node[kind = 'service']", style: {
        "shape": "round-rectangle", "border-color": css("--service"),
        "background-color": css("--service"), "background-opacity": 0.16
      } },
      { selector: "node[kind = 'destination']", style: {
        "shape": "barrel", "border-color": "data(color)", "background-color": "data(color)",
        "background-opacity": 0.16, "height": 40, "text-wrap": "wrap", "line-height": 1.3
      } },
      { selector: "node[kind = 'external']", style: {
        "shape": "ellipse", "border-style": "dashed", "border-color": css("--external"),
        "background-color": css("--external"), "background-opacity": 0.1
      } },
      { selector: "node[span_errors > 0]", style: { "border-width": 2.5, "border-color": css("--error") } },
      { selector: "edge", style: {
        "width": "data(width)", "line-color": css("--edge"), "target-arrow-color": css("--edge"),
        "target-arrow-shape": "triangle", "arrow-scale": 0.9, "curve-style": "bezier", "opacity": 0.85
      } },
      { selector: "edge[kind = 'consume']", style: { "line-color": css("--consume"), "target-arrow-color": css("--consume") } },
      { selector: "edge[kind = 'publish']", style: { "line-color": css("--publish"), "target-arrow-color": css("--publish") } },
      { selector: "edge[kind = 'route']", style: { "line-style": "dashed" } },
      { selector: "edge[kind = 'call']", style: { "line-style": "dotted" } },
      // Only a broker reported it: dashed. Dead-letter flows: their own colour.
      { selector: "node[seen = 'broker']", style: { "border-style": "dashed", "border-width": 1.5 } },
      { selector: "edge[seen = 'broker']", style: { "line-style": "dashed", "opacity": 0.6 } },
      { selector: "edge[kind = 'dead_letter']", style: { "line-style": "dashed", "line-color": css("--error"), "target-arrow-color": css("--error") } },
      { selector: "edge[errors > 0]", style: { "line-color": css("--error"), "target-arrow-color": css("--error") } },
      { selector: ":selected", style: { "border-width": 3, "border-color": css("--accent"), "line-color": css("--accent"), "target-arrow-color": css("--accent"), "opacity": 1 } },
      { selector: ".faded", style: { "opacity": 0.15 } },
      { selector: ".filtered", style: { "opacity": 0.08 } }
    ];
  }

  // ---- side panel ----
  var body = document.getElementById("details-body");
  var hint = document.getElementById("details-hint");
  function show(children) {
    body.replaceChildren.apply(body, children);
    if (hint) { hint.hidden = true; }
  }
  function facts(pairs) {
    return el("dl", {}, pairs.filter(function (p) { return p[1] !== "" && p[1] != null; }).map(function (p) {
      return el("div", {}, [el("dt", { text: p[0] }), el("dd", { text: String(p[1]) })]);
    }));
  }
  function nodeName(id) {
    var n = cy.getElementById(id);
    return n.nonempty() ? n.data("name") : id;
  }
  function selectButton(id) {
    var b = el("button", { type: "button", "class": "link truncate", title: nodeName(id), text: nodeName(id) });
    b.addEventListener("click", function () { focusNode(id); });
    return b;
  }
  function edgeList(title, edges, otherEnd) {
    if (!edges.length) { return null; }
    return el("div", {}, [el("h3", { text: title }), el("ul", { "class": "detail-list" }, edges.map(function (e) {
      var d = topology.edges[e.data("index")];
      return el("li", {}, [selectButton(otherEnd(d)), el("span", { "class": "muted", text: d.kind + " \u00b7 " + d.count + (d.errors ? " \u00b7 " + d.errors + " err" : "") })]);
    }))]);
  }
  // The recent traces of the selected node or edge; the live watch reloads the list shown.
  var liveTraces = null;
  // Each line: failing traces first when the selection has errors, with their start time,
  // duration and an error marker; links carry the page's window.
  function recentTraces(filter, hasErrors) {
    var list = el("ul", { "class": "detail-list recent-traces" }, [el("li", { "class": "muted", text: "Loading traces\u2026" })]);
    function get(extra) {
      return fetch("/api/traces?" + filter + "&" + windowQuery + "&limit=8" + extra).then(function (r) { return r.json(); })
        .then(function (j) { return j.traces || []; });
    }
    function load() {
      return Promise.all([hasErrors ? get("&status=error") : Promise.resolve([]), get("")]).then(function (found) {
        var seen = {}, traces = [];
        found[0].concat(found[1]).forEach(function (t) { if (!seen[t.trace_id] && traces.length < 8) { seen[t.trace_id] = 1; traces.push(t); } });
        var items = traces.map(function (t) {
          var label = (t.root_service || "") + ": " + (t.root_name || t.trace_id);
          var when = new Date(Math.floor(t.start_unix_nanos / 1e6)).toISOString().slice(11, 19);
          return el("li", { "class": t.error_count ? "error" : "" }, [
            t.error_count ? el("span", { "class": "trace-err", title: t.error_count + " error span(s)", text: "!" }) : null,
            el("a", { "class": "trace-link truncate", href: "/traces/" + encodeURIComponent(t.trace_id) + "?" + pageQuery, title: label, text: label }),
            el("span", { "class": "muted", text: when + " \u00b7 " + micros(t.duration_micros) })
          ].filter(Boolean));
        });
        list.replaceChildren.apply(list, items.length ? items : [el("li", { "class": "muted", text: "No traces in this window." })]);
      }).catch(function () { list.replaceChildren(el("li", { "class": "muted", text: "Could not load traces." })); });
    }
    load();
    liveTraces = function () { if (list.isConnected) { load(); } };
    return el("div", {}, [el("h3", { text: "Recent traces" }), list]);
  }
  var PATTERNS = { broadcast: "Broadcast", work_queue: "Work queue", action_response: "Action / response",
    dead_end: "Dead end", idle_subscriber: "Idle subscriber", cycle: "Cycle" };
  function nodeFindings(id) {
    var related = topology.findings.filter(function (f) { return f.nodes.indexOf(id) >= 0; });
    if (!related.length) { return null; }
    return el("div", {}, [el("h3", { text: "Findings" }), el("ul", { "class": "node-findings" }, related.map(function (f) {
      return el("li", {}, [el("span", { "class": "badge pattern-" + f.pattern, text: PATTERNS[f.pattern] || f.pattern }), " ", f.description]);
    }))]);
  }
  // An embedded-broker destination's live state, read from the broker's own JSON: per
  // subscription of a topic its depth, in-flight and dead letters; for a stream its offsets and
  // the lag of each consumer group.
  function brokerState(name) {
    var box = el("div", { "class": "broker-state" }, [el("p", { "class": "muted", text: "Loading broker state\u2026" })]);
    function num(n) { return el("td", { "class": "num", text: String(n) }); }
    function table(head, rows) {
      return el("table", { "class": "broker-table" }, [
        el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", { text: h }); }))]),
        el("tbody", {}, rows)
      ]);
    }
    function load() {
      Promise.all([fetch("/broker/subscriptions"), fetch("/broker/streams")].map(function (p) {
        return p.then(function (r) { return r.ok ? r.json() : {}; });
      })).then(function (both) {
        var subs = (both[0].subscriptions || []).filter(function (s) { return s.topic === name; });
        var stream = (both[1].streams || []).filter(function (s) { return s.name === name; })[0];
        var parts = [];
        if (subs.length) {
          parts.push(table(["Subscription", "Ready", "In flight", "Dead"], subs.map(function (s) {
            return el("tr", { "class": s.dead ? "has-dead" : "" }, [
              el("td", { "class": "truncate-cell", title: s.name, text: s.name }), num(s.ready), num(s.leased), num(s.dead)
            ]);
          })));
        }
        if (stream) {
          parts.push(facts([["Offsets", stream.first_offset + " \u2013 " + stream.next_offset]]));
          if (stream.groups.length) {
            parts.push(table(["Group", "Committed", "Lag"], stream.groups.map(function (g) {
              return el("tr", {}, [el("td", { "class": "truncate-cell", title: g.name, text: g.name }), num(g.committed), num(g.lag)]);
            })));
          }
        }
        if (!parts.length) { parts.push(el("p", { "class": "muted", text: "No subscriptions." })); }
        box.replaceChildren.apply(box, parts);
      }).catch(function () { box.replaceChildren(el("p", { "class": "muted", text: "Could not load the broker state." })); });
    }
    load();
    var traces = liveTraces;
    liveTraces = function () { if (box.isConnected) { load(); } if (traces) { traces(); } };
    return el("div", {}, [el("h3", { text: "Broker state" }), box]);
  }
  function showNode(node) {
    var d = node.data();
    var filter = d.kind === "destination" ? "destination=" + encodeURIComponent(d.name) : "service=" + encodeURIComponent(d.name);
    var page = nodePage(d.id);
    var links = el("p", { "class": "detail-links" }, [
      page ? el("a", { href: page, id: "node-page-link", text: d.kind === "service" ? "Service page" : "Destination page" }) : null,
      d.kind !== "external" ? el("a", { href: "/traces?" + filter + "&" + pageQuery, text: "Search traces" }) : null
    ]);
    show([
      el("h3", { "class": "truncate", title: d.name, text: d.name }),
      facts([["Kind", d.kind], ["System", d.system], ["Namespace", d.namespace], ["Spans", d.spans], ["Span errors", d.spans != null ? d.span_errors : ""]]),
      links,
      nodeFindings(d.id),
      edgeList("In", node.incomers("edge").toArray(), function (e) { return e.from; }),
      edgeList("Out", node.outgoers("edge").toArray(), function (e) { return e.to; }),
      d.kind !== "external" ? recentTraces(filter, d.span_errors > 0 || d.errors > 0) : null,
      d.kind === "destination" && d.system === "switchyard" ? brokerState(d.name) : null
    ].filter(Boolean));
  }
  function showEdge(edge) {
    var e = topology.edges[edge.data("index")];
    var l = e.latency || {};
    var latencyName = (e.kind === "consume" || e.kind === "route") ? "Publish \u2192 consume" : "Duration";
    var from = cy.getElementById(e.from).data() || {}, to = cy.getElementById(e.to).data() || {};
    var filter = from.kind === "service" ? "service=" + encodeURIComponent(from.name) : (to.kind === "service" ? "service=" + encodeURIComponent(to.name) : "");
    if (from.kind === "destination") { filter += (filter ? "&" : "") + "destination=" + encodeURIComponent(from.name); }
    else if (to.kind === "destination") { filter += (filter ? "&" : "") + "destination=" + encodeURIComponent(to.name); }
    show([
      el("h3", {}, [selectButton(e.from), " \u2192 ", selectButton(e.to)]),
      facts([["Kind", e.kind], ["Count", e.count], ["Errors", e.errors], ["Rate", rate(e.rate_per_sec)],
        [latencyName + " p50", micros(l.p50_micros)], ["p90", micros(l.p90_micros)], ["p99", micros(l.p99_micros)],
        ["Consumer instances", e.instances != null ? e.instances : ""]]),
      recentTraces(filter, e.errors > 0)
    ]);
  }
  function clearDetails() {
    body.replaceChildren();
    if (hint) { hint.hidden = false; }
  }
  function focusNode(id) {
    var n = cy.getElementById(id);
    if (n.empty()) { return; }
    cy.elements().unselect();
    n.select();
    cy.animate({ center: { eles: n }, duration: 250 });
    showNode(n);
  }

  // ---- interactions ----
  function edgeTooltip(e) {
    var d = topology.edges[e.data("index")];
    var l = d.latency || {};
    return nodeName(d.from) + " \u2192 " + nodeName(d.to) + "\n" + d.kind + ": " + d.count +
      (d.errors ? " (" + d.errors + " errors)" : "") + ", " + rate(d.rate_per_sec) +
      "\nlatency p50 " + micros(l.p50_micros) + " \u00b7 p99 " + micros(l.p99_micros);
  }
  function wire() {
    cy.on("mouseover", "node", function (ev) {
      cy.elements().addClass("faded");
      ev.target.closedNeighborhood().removeClass("faded");
    });
    cy.on("mouseout", "node", function () { cy.elements().removeClass("faded"); hideTip(); });
    cy.on("mouseover", "edge", function (ev) {
      tooltip.textContent = edgeTooltip(ev.target);
      var p = ev.renderedPosition || { x: 0, y: 0 };
      tooltip.style.left = (p.x + 14) + "px";
      tooltip.style.top = (p.y + 14) + "px";
      tooltip.hidden = false;
    });
    cy.on("mouseout", "edge", hideTip);
    cy.on("tap", "node", function (ev) { showNode(ev.target); });
    cy.on("tap", "edge", function (ev) { showEdge(ev.target); });
    cy.on("tap", function (ev) { if (ev.target === cy) { clearDetails(); } });
    document.getElementById("fit").addEventListener("click", function () { cy.fit(undefined, 30); });
    document.addEventListener("keydown", function (ev) {
      var tag = (ev.target.tagName || "").toLowerCase();
      if (tag === "input" || tag === "select" || tag === "textarea") { return; }
      if (ev.key === "f" || ev.key === "F") { cy.fit(undefined, 30); }
      if (ev.key === "Escape") { cy.elements().unselect(); clearDetails(); }
    });
    document.getElementById("download-png").addEventListener("click", function () {
      var blob = cy.png({ full: true, scale: 2, bg: css("--bg"), output: "blob" });
      var a = el("a", { href: URL.createObjectURL(blob), download: "switchyard-topology.png" });
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    });
    document.getElementById("download-svg").addEventListener("click", function () {
      var svg = window.switchyardSvg.mapSvg(cy, css("--bg"));
      var blob = new Blob([svg], { type: "image/svg+xml" });
      var a = el("a", { href: URL.createObjectURL(blob), download: "switchyard-topology.svg" });
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    });
    document.querySelectorAll(".node-select").forEach(function (b) {
      b.addEventListener("click", function () { focusNode(b.getAttribute("data-node-id")); });
    });
    document.querySelectorAll(".finding-select").forEach(function (b) {
      b.addEventListener("click", function () {
        var f = topology.findings[Number(b.getAttribute("data-finding"))];
        if (!f) { return; }
        var eles = cy.collection();
        f.nodes.forEach(function (id) { eles = eles.union(cy.getElementById(id)); });
        cy.elements().unselect();
        eles.select();
        cy.animate({ fit: { eles: eles, padding: 60 }, duration: 300 });
      });
    });
    var text = document.getElementById("filter-text");
    var system = document.getElementById("filter-system");
    var namespace = document.getElementById("filter-namespace");
    // Free text matches names; a system or a namespace keeps its nodes and their neighbours.
    function filter() {
      var q = text.value.trim().toLowerCase(), s = system.value, ns = namespace ? namespace.value : "";
      function hit(name, sys, nsp) {
        return (!q || name.toLowerCase().indexOf(q) >= 0) && (!s || sys === s) && (!ns || nsp === ns);
      }
      cy.batch(function () {
        cy.nodes().forEach(function (n) {
          var ok = hit(n.data("name"), n.data("system"), n.data("namespace"));
          if (!ok && !q && (s || ns)) {
            ok = n.neighborhood("node").some(function (m) { return hit(m.data("name"), m.data("system"), m.data("namespace")); });
          }
          n.toggleClass("filtered", !ok);
        });
        cy.edges().forEach(function (e) {
          e.toggleClass("filtered", e.source().hasClass("filtered") || e.target().hasClass("filtered"));
        });
      });
      document.querySelectorAll(".node-list li").forEach(function (li) {
        li.hidden = !hit(li.textContent.trim(), li.getAttribute("data-system"), li.getAttribute("data-namespace"));
      });
    }
    text.addEventListener("input", filter);
    system.addEventListener("change", filter);
    if (namespace) { namespace.addEventListener("change", filter); }
    document.addEventListener("switchyard:theme", function () { cy.style(style()); });
  }
  function hideTip() { tooltip.hidden = true; }

  // ---- layout ----
  // dagre gives the best picture but grows much faster than linearly; past this size a
  // simple layered layout (breadth-first ranks from the sources, barycentre ordering) keeps
  // the map instant. Breadth-first ranks stay shallow where longest paths would not.
  var DAGRE_MAX_NODES = 150, DAGRE_MAX_EDGES = 400;
  function fastLayered(fit) {
    var nodes = cy.nodes(), rank = {}, order = [];
    function bfs(starts) {
      var queue = starts.slice();
      starts.forEach(function (n) { rank[n.id()] = rank[n.id()] || 0; });
      for (var q = 0; q < queue.length; q++) {
        var n = queue[q];
        order.push(n);
        n.outgoers("node").forEach(function (m) {
          if (rank[m.id()] === undefined) { rank[m.id()] = rank[n.id()] + 1; queue.push(m); }
        });
      }
    }
    bfs(nodes.filter(function (n) { return n.indegree(false) === 0; }).toArray());
    // What no source reaches (cycles): start from the busiest publisher left.
    var rest = nodes.filter(function (n) { return rank[n.id()] === undefined; })
      .sort(function (a, b) { return b.outdegree(false) - a.outdegree(false); });
    rest.forEach(function (n) { if (rank[n.id()] === undefined) { rank[n.id()] = 0; bfs([n]); } });
    var columns = [];
    order.forEach(function (n) { (columns[rank[n.id()]] = columns[rank[n.id()]] || []).push(n); });
    var y = {};
    columns.forEach(function (col) { col.forEach(function (n, i) { y[n.id()] = i; }); });
    // Two sweeps of barycentre ordering reduce crossings.
    for (var sweep = 0; sweep < 2; sweep++) {
      columns.forEach(function (col) {
        col.forEach(function (n) {
          var sum = 0, k = 0;
          n.neighborhood("node").forEach(function (m) { if (rank[m.id()] !== rank[n.id()]) { sum += y[m.id()]; k++; } });
          n.scratch("_bary", k ? sum / k : y[n.id()]);
        });
        col.sort(function (a, b) { return a.scratch("_bary") - b.scratch("_bary"); });
        col.forEach(function (n, i) { y[n.id()] = i; });
      });
    }
    // A rank taller than the screen wraps into several narrower columns.
    var maxRows = Math.max(12, Math.ceil(Math.sqrt(nodes.length) * 1.5));
    var positions = {}, x = 0;
    columns.forEach(function (col) {
      if (!col) { return; }
      var parts = Math.ceil(col.length / maxRows);
      col.forEach(function (n, i) {
        var part = Math.floor(i / maxRows), row = i % maxRows;
        var rows = Math.min(maxRows, col.length - part * maxRows);
        positions[n.id()] = { x: (x + part) * 200, y: (row - rows / 2) * 54 + (part % 2) * 27 };
      });
      x += parts + 0.4;
    });
    return { name: "preset", positions: positions, fit: fit, padding: 30, animate: false };
  }
  function layoutFor(fit) {
    var small = cy.nodes().length <= DAGRE_MAX_NODES && cy.edges().length <= DAGRE_MAX_EDGES;
    return small ? layoutOptions(fit) : fastLayered(fit);
  }

  // ---- live: refresh the graph in place when spans arrive (preset windows only) ----
  var PRESET_SECS = { "window=5m": 300, "window=15m": 900, "window=1h": 3600, "window=6h": 21600,
    "window=24h": 86400, "window=7d": 604800 };
  function layoutOptions(fit) {
    return { name: typeof cytoscapeDagre === "function" ? "dagre" : "breadthfirst", rankDir: "LR",
      nodeSep: 24, rankSep: 70, edgeSep: 8, padding: 30, directed: true, fit: fit, animate: false };
  }
  function update(topo) {
    var fresh = elements(topo), seen = {}, added = false;
    cy.batch(function () {
      fresh.forEach(function (item) {
        seen[item.data.id] = true;
        var existing = cy.getElementById(item.data.id);
        if (existing.nonempty()) {
          var d = Object.assign({}, item.data);
          delete d.source; delete d.target; delete d.id;
          existing.data(d);
        } else {
          cy.add(item);
          added = true;
        }
      });
      cy.elements().forEach(function (e) { if (!seen[e.id()]) { e.remove(); } });
    });
    topology = topo;
    window.switchyard.topology = topo;
    var counts = document.getElementById("counts");
    var errors = topo.edges.filter(function (e) { return e.errors > 0; }).length;
    counts.textContent = topo.nodes.length + " nodes \u00b7 " + topo.edges.length + " edges" + (errors ? " \u00b7 " + errors + " with errors" : "");
    var empty = document.getElementById("empty-state");
    if (empty && topo.nodes.length) { empty.hidden = true; }
    // New nodes need a place; the user's zoom and pan stay as they are.
    if (added) { cy.layout(layoutFor(!drawnOnce)).run(); }
    drawnOnce = drawnOnce || cy.nodes().length > 0;
  }
  var drawnOnce = false;
  function refresh() {
    var secs = PRESET_SECS[pageQuery];
    var until = new Date(Date.now() + 1000), since = new Date(until.getTime() - secs * 1000);
    var q = "since=" + encodeURIComponent(since.toISOString()) + "&until=" + encodeURIComponent(until.toISOString());
    return fetch("/api/topology?" + q).then(function (r) { return r.json(); }).then(function (topo) {
      windowQuery = q;
      update(topo);
      if (liveTraces) { liveTraces(); }
    });
  }
  function watch() {
    window.switchyard.refresh = refresh;
    if (!PRESET_SECS[pageQuery] || !window.switchyardLive) { return; }
    var badge = document.getElementById("live");
    var timer = null;
    window.switchyardLive.watch(function () {
      if (!timer) { timer = setTimeout(function () { timer = null; refresh(); }, 1500); }
    }, function () { if (badge) { badge.hidden = false; } });
  }

  function draw(topo) {
    topology = topo;
    var big = topo.edges.length > 800;
    cy = cytoscape({
      container: container,
      elements: elements(topo),
      style: style(),
      layout: { name: "null" },
      minZoom: 0.05, maxZoom: 4, wheelSensitivity: 0.3,
      textureOnViewport: big, hideEdgesOnViewport: big, pixelRatio: big ? 1 : "auto"
    });
    wire();
    cy.layout(layoutFor(true)).run();
    window.switchyard = { cy: cy, topology: topo, readyAt: performance.now() };
    drawnOnce = topo.nodes.length > 0;
    watch();
    document.body.setAttribute("data-map-ready", "1");
  }

  fetch(container.getAttribute("data-topology-url"), { headers: { Accept: "application/json" } })
    .then(function (r) {
      if (!r.ok) { throw new Error("topology request failed with " + r.status); }
      return r.json();
    })
    .then(draw)
    .catch(function (err) {
      container.replaceChildren(el("p", { "class": "empty", text: "Could not load the topology: " + err.message }));
      document.body.setAttribute("data-map-ready", "error");
    });
})();
