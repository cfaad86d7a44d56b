// The topology map: draws /api/topology with Cytoscape.js (map-layout.js lays it out and
// routes the edges), numbers on every node and edge, findings as badges (map-badges.js),
// reach and blast radius in the side panel (map-panel.js), and a service-only view.
// Every name comes from span data: it is only ever set as text (textContent, attributes,
// canvas labels), never parsed as HTML.
(function () {
  "use strict";
  var container = document.getElementById("cy");
  if (!container || typeof cytoscape !== "function") { return; }
  if (typeof cytoscapeDagre === "function") { cytoscape.use(cytoscapeDagre); }

  var kit = window.switchyardKit, el = kit.el, truncate = kit.truncate, micros = kit.micros, rate = kit.rate, css = kit.css;
  var panel = window.switchyardPanel, layout = window.switchyardLayout;
  var windowQuery = container.getAttribute("data-window-query") || "";
  var pageQuery = container.getAttribute("data-page-query") || "";
  var topology = null, cy = null, badges = null, largeMap = false;
  // "all": every node; "services": services joined by their dependencies through destinations.
  var mode = "all";
  // The node whose reach is shown, and the section refreshers of the side panel.
  var focused = null, refreshers = [];
  var tooltip = document.getElementById("tooltip");

  function nodePage(id) {
    if (id.indexOf("service:") === 0) { return "/services/" + encodeURIComponent(id) + "?" + pageQuery; }
    if (id.indexOf("destination:") === 0) { return "/destinations/" + encodeURIComponent(id) + "?" + pageQuery; }
    return null;
  }

  // ---- graph elements ----
  // Destinations are styled by broker system: one colour per system, named under the node.
  var PALETTE = ["#0f8a6c", "#b5651d", "#7b4fd0", "#c2418b", "#1f7fb3", "#6f8f1f", "#a83e3e", "#3d6f8f"];
  function systemsOf(topo) {
    return topo.nodes.map(function (n) { return n.kind === "destination" ? n.system || "" : null; })
      .filter(function (s, i, all) { return s !== null && all.indexOf(s) === i; }).sort();
  }
  // Where a node or edge was seen: "traces", "broker" or "both". Traces-only is told apart
  // only when a broker reports anything at all. "declared": only an AsyncAPI document names it.
  function seenIn(x, brokered) {
    var s = x.seen_in || ["traces"];
    if (s.length === 1 && s[0] === "declared") { return "declared"; }
    if (s.indexOf("traces") < 0) { return "broker"; }
    return s.indexOf("broker") >= 0 || !brokered ? "both" : "traces";
  }
  function brokered(topo) {
    return topo.nodes.some(function (n) { return (n.seen_in || []).indexOf("broker") >= 0; });
  }
  function windowSecs(topo) {
    return Math.max(1, ((topo.until_unix_nanos || 0) - (topo.since_unix_nanos || 0)) / 1e9);
  }
  function edgeLabel(r, p99) {
    return rate(r) + (p99 != null ? " \u00b7 p99 " + micros(p99) : "");
  }

  function nodeElement(n, figures, systems, hasBroker) {
    var name = truncate(n.name, 28);
    var f = figures[n.id];
    var second = (n.kind === "destination" && n.system ? truncate(n.system, 14) + " \u00b7 " : "") + kit.figuresText(f);
    var color = n.kind === "destination" ? PALETTE[systems.indexOf(n.system || "") % PALETTE.length] : null;
    return { group: "nodes", data: {
      id: n.id, label: name + "\n" + second, name: n.name, kind: n.kind, system: n.system || "", color: color,
      namespace: n.namespace || "", spans: n.spans, span_errors: n.span_errors || 0,
      seen: seenIn(n, hasBroker), entity: n.entity || "", ring: kit.ring(f), ratio: f.ratio, traffic: f.traffic ? 1 : 0,
      figures: second,
      w: Math.max(90, Math.max(name.length, second.length) * 7.3 + 50)
    } };
  }
  function elements(topo) {
    var out = [], systems = systemsOf(topo), figures = kit.nodeFigures(topo), hasBroker = brokered(topo);
    var services = mode === "services";
    var shown = {};
    topo.nodes.forEach(function (n) {
      if (services && n.kind === "destination") { return; }
      shown[n.id] = true;
      out.push(nodeElement(n, figures, systems, hasBroker));
    });
    var maxRate = topo.edges.reduce(function (m, e) { return Math.max(m, e.rate_per_sec || 0); }, 0) || 1;
    function width(r) { return 1.5 + 6.5 * Math.log1p(r || 0) / Math.log1p(maxRate); }
    topo.edges.forEach(function (e, i) {
      if (!shown[e.from] || !shown[e.to]) { return; }
      var l = e.latency || {};
      out.push({ group: "edges", data: {
        id: "edge:" + e.from + "\u0001" + e.to + "\u0001" + e.kind, index: i, source: e.from, target: e.to, kind: e.kind, count: e.count,
        errors: e.errors, rate: e.rate_per_sec, width: width(e.rate_per_sec), seen: seenIn(e, hasBroker),
        label: edgeLabel(e.rate_per_sec, l.p99_micros)
      } });
    });
    if (services) {
      var secs = windowSecs(topo), names = {};
      topo.nodes.forEach(function (n) { names[n.id] = n.name; });
      topo.dependencies.forEach(function (d, i) {
        if (!shown[d.from] || !shown[d.to]) { return; }
        var r = d.count != null ? d.count / secs : null;
        out.push({ group: "edges", data: {
          id: "dep:" + d.from + "\u0001" + d.to + "\u0001" + d.via, dep: i, source: d.from, target: d.to,
          kind: "dependency", inferred: d.count == null ? 1 : 0, count: d.count || 0, errors: 0, width: width(r || 0),
          seen: "both", label: truncate(names[d.via] || d.via, 24) + (r != null ? " \u00b7 " + edgeLabel(r, (d.latency || {}).p99_micros) : "")
        } });
      });
    }
    return out;
  }

  function style() {
    var text = css("--text"), surface = css("--surface");
    // A node's label and error ring (an image): on every node of a small map; on a large map
    // only on the nodes in view from the zoom the labels can be read at (labelEdges), so its
    // first draw neither works out nor measures hundreds of labels a few pixels high.
    var nodeText = {
      "label": "data(label)", "color": text, "font-size": 13, "text-valign": "center",
      "text-halign": "center", "text-wrap": "wrap", "text-max-width": 1000,
      "line-height": 1.35, "text-margin-x": 12, "background-image": "data(ring)", "background-width": 20,
      "background-height": 20, "background-position-x": 8, "background-position-y": "50%",
      "background-clip": "none", "background-image-containment": "over", "background-fit": "none",
      "background-image-smoothing": "yes"
    };
    // Arrows: on every edge of a small map; a large map draws its thousands of edges as plain
    // lines between node centres (no arrow to place on each node's outline, no bundling of
    // parallel edges) and gives the edges that show their label (in view, zoomed in to read),
    // hovered, selected or in a reach their arrows back.
    var arrows = { "target-arrow-shape": "triangle", "arrow-scale": 0.9 };
    var pointed = "edge.labelled, edge.hovered, edge:selected, edge.up, edge.down";
    return [
      { selector: "node", style: Object.assign({
        "width": "data(w)", "height": 44, "border-width": 1.5,
        "border-color": css("--border"), "background-color": surface
      }, largeMap ? {} : nodeText) },
      largeMap ? { selector: "node.near", style: nodeText } : null,
      { selector: "node[kind = 'service']", style: {
        "shape": "round-rectangle", "border-color": css("--service"),
        "background-color": css("--service"), "background-opacity": 0.14
      } },
      { selector: "node[kind = 'destination']", style: {
        "shape": "barrel", "border-color": "data(color)", "background-color": "data(color)",
        "background-opacity": 0.14, "height": 46
      } },
      { selector: "node[kind = 'external']", style: {
        "shape": "round-hexagon", "border-style": "dashed", "border-color": css("--external"),
        "background-color": css("--external"), "background-opacity": 0.1
      } },
      { selector: "node[span_errors > 0]", style: { "border-width": 2.5, "border-color": css("--error") } },
      { selector: "edge", style: Object.assign({
        "width": "data(width)", "line-color": css("--edge"), "target-arrow-color": css("--edge"),
        "opacity": 0.85
      }, largeMap ? { "curve-style": "haystack", "haystack-radius": 0 } : Object.assign({ "curve-style": "bezier" }, arrows)) },
      largeMap ? { selector: pointed, style: Object.assign({ "curve-style": "straight" }, arrows) } : null,
      // A large map's node labels show from the zoom where they can be read (7 px of 13).
      largeMap ? { selector: "node.near", style: { "min-zoomed-font-size": 7 } } : null,
      // The label's look only on the edges that show one (compare mode labels changed edges):
      // every style property costs each of thousands of edges on a large map's first draw.
      { selector: "edge.labelled, edge.hovered, edge.diff-changed", style: {
        "font-size": 12, "color": css("--muted"), "min-zoomed-font-size": 9,
        "text-background-color": surface, "text-background-opacity": 0.85, "text-background-padding": 2,
        "text-background-shape": "roundrectangle"
      } },
      { selector: "edge.labelled, edge.hovered", style: { "label": "data(label)" } },
      { selector: "edge.routed", style: {
        "curve-style": "segments", "segment-weights": "data(segw)", "segment-distances": "data(segd)",
        "edge-distances": "node-position", "segment-radius": 14
      } },
      { selector: "edge.hovered", style: { "min-zoomed-font-size": 0, "z-index": 10, "opacity": 1, "color": text } },
      { selector: "edge[kind = 'consume']", style: { "line-color": css("--consume"), "target-arrow-color": css("--consume") } },
      { selector: "edge[kind = 'publish']", style: { "line-color": css("--publish"), "target-arrow-color": css("--publish") } },
      { selector: "edge[kind = 'dependency']", style: { "line-color": css("--accent"), "target-arrow-color": css("--accent") } },
      { selector: "edge[inferred = 1]", style: { "line-style": "dashed", "line-dash-pattern": [6, 4] } },
      { selector: "edge[kind = 'route']", style: { "line-style": "dashed" } },
      { selector: "edge[kind = 'call']", style: { "line-style": "dotted" } },
      // Only a broker reported it: dashed; only traces, while a broker reports others: dash-dot.
      { selector: "node[seen = 'broker']", style: { "border-style": "dashed", "border-width": 1.5 } },
      { selector: "edge[seen = 'broker']", style: { "line-style": "dashed", "opacity": 0.6 } },
      { selector: "edge[seen = 'traces']", style: { "line-style": "dashed", "line-dash-pattern": [10, 3, 2, 3] } },
      { selector: "edge[kind = 'dead_letter']", style: { "line-style": "dashed", "line-color": css("--error"), "target-arrow-color": css("--error") } },
      // Declared in an AsyncAPI document (serve --declared) and never observed: dotted, magenta.
      { selector: "node[seen = 'declared']", style: { "border-style": "dotted", "border-width": 2, "border-color": css("--declared") } },
      { selector: "edge[seen = 'declared']", style: { "line-style": "dotted", "line-color": css("--declared"), "target-arrow-color": css("--declared"), "target-arrow-shape": "triangle-tee", "width": 2 } },
      { selector: "edge[errors > 0]", style: { "line-color": css("--error"), "target-arrow-color": css("--error") } },
      // Reach: what the focused node depends on (upstream) and what depends on it (downstream).
      { selector: ".up", style: { "border-color": css("--upstream"), "border-width": 3, "line-color": css("--upstream"), "target-arrow-color": css("--upstream"), "opacity": 1 } },
      { selector: ".down", style: { "border-color": css("--downstream"), "border-width": 3, "line-color": css("--downstream"), "target-arrow-color": css("--downstream"), "opacity": 1 } },
      { selector: ".starved", style: { "border-color": css("--error"), "border-width": 3, "border-style": "dashed" } },
      { selector: ".piling", style: { "border-color": css("--broker"), "border-width": 4 } },
      { selector: ".unreached", style: { "opacity": 0.2 } },
      { selector: ":selected", style: { "border-width": 3, "border-color": css("--accent"), "line-color": css("--accent"), "target-arrow-color": css("--accent"), "opacity": 1 } },
      { selector: ".faded", style: { "opacity": 0.15 } },
      { selector: ".filtered", style: { "opacity": 0.08 } }
    ].filter(Boolean);
  }

  // ---- side panel ----
  var body = document.getElementById("details-body");
  var hint = document.getElementById("details-hint");
  function show(children) {
    body.replaceChildren.apply(body, children.filter(Boolean));
    if (hint) { hint.hidden = true; }
  }
  function facts(pairs) {
    return el("dl", {}, pairs.filter(function (p) { return p[1] !== "" && p[1] != null; }).map(function (p) {
      return el("div", {}, [el("dt", { text: p[0] }), el("dd", { text: String(p[1]) })]);
    }));
  }
  // Node names by id, kept per topology (a large map asks for hundreds at its first draw).
  var names = { of: null, byId: {} };
  function nodeName(id) {
    if (!topology) { return id; }
    if (names.of !== topology) {
      names = { of: topology, byId: {} };
      topology.nodes.forEach(function (x) { names.byId[x.id] = x.name; });
    }
    var name = names.byId[id];
    return name === undefined ? id : name;
  }
  function selectButton(id) {
    var b = el("button", { type: "button", "class": "link truncate", title: nodeName(id), text: nodeName(id), "data-node-id": id });
    b.addEventListener("click", function () { focusNode(id); });
    return b;
  }
  function edgeList(title, edges, otherEnd) {
    if (!edges.length) { return null; }
    return el("div", {}, [el("h3", { text: title }), el("ul", { "class": "detail-list" }, edges.map(function (e) {
      var d = e.data("dep") != null ? topology.dependencies[e.data("dep")] : topology.edges[e.data("index")];
      var what = d.via ? "via " + truncate(nodeName(d.via), 20) : d.kind + " \u00b7 " + d.count + (d.errors ? " \u00b7 " + d.errors + " err" : "");
      return el("li", {}, [selectButton(otherEnd(d)), el("span", { "class": "muted", text: what })]);
    }))]);
  }
  var PATTERNS = { broadcast: "Broadcast", work_queue: "Work queue", action_response: "Action / response",
    dead_end: "Dead end", idle_subscriber: "Idle subscriber", cycle: "Cycle", backlog: "Backlog",
    lag_growing: "Lag growing", dead_letter: "Dead letter", declared_unused: "Declared, unused",
    undeclared_flow: "Undeclared flow", declared_silent_publisher: "Silent publisher" };
  function findingLine(f) {
    if (f.pattern !== "action_response") { return f.description; }
    var x = kit.exchange(topology, f, nodeName);
    return nodeName(x.asker) + " asks " + nodeName(x.answerer) + " (" + nodeName(x.request) + ", reply on " +
      nodeName(x.reply) + ")";
  }
  function nodeFindings(id) {
    var related = [];
    topology.findings.forEach(function (f, i) { if (f.nodes.indexOf(id) >= 0) { related.push(i); } });
    if (!related.length) { return null; }
    return el("div", {}, [el("h3", { text: "Findings" }), el("ul", { "class": "node-findings" }, related.map(function (i) {
      var f = topology.findings[i];
      var b = el("button", { type: "button", "class": "link", "data-finding": String(i) }, [el("span", { "class": "badge pattern-" + f.pattern, text: PATTERNS[f.pattern] || f.pattern })]);
      b.addEventListener("click", function () { pickFinding(i, id); });
      return el("li", {}, [b, " ", findingLine(f)]);
    }))]);
  }
  function panelContext() {
    return {
      windowQuery: function () { return windowQuery; }, pageQuery: function () { return pageQuery; },
      name: nodeName, button: selectButton,
      highlight: highlightReach, marked: markImpact
    };
  }
  function sections(list) {
    refreshers = list.map(function (s) { return s.refresh; });
    return list.map(function (s) { return s.node; });
  }
  function showNode(node) {
    var d = node.data(), ctx = panelContext();
    var filter = d.kind === "destination" ? "destination=" + encodeURIComponent(d.name) : "service=" + encodeURIComponent(d.name);
    var page = nodePage(d.id);
    var links = el("p", { "class": "detail-links" }, [
      page ? el("a", { href: page, id: "node-page-link", text: d.kind === "service" ? "Service page" : "Destination page" }) : null,
      d.kind !== "external" ? el("a", { href: "/traces?" + filter + "&" + pageQuery, text: "Search traces" }) : null
    ]);
    var loaders = [panel.reach(d.id, ctx), panel.impact(d.id, ctx)];
    if (d.kind !== "external") { loaders.push(panel.recentTraces(filter, ctx, d.span_errors > 0 || d.errors > 0)); }
    if (d.kind === "destination" && d.system === "switchyard") { loaders.push(panel.brokerState(d.name, facts)); }
    var parts = sections(loaders);
    show([
      el("h3", { "class": "truncate", title: d.name, text: d.name }),
      facts([["Kind", d.kind], ["System", d.system], ["Namespace", d.namespace], ["Traffic", d.figures], ["Spans", d.spans], ["Span errors", d.spans != null ? d.span_errors : ""]]),
      links,
      nodeFindings(d.id),
      edgeList("In", node.incomers("edge").toArray(), function (e) { return e.from; }),
      edgeList("Out", node.outgoers("edge").toArray(), function (e) { return e.to; })
    ].concat(parts));
  }
  function showEdge(edge) {
    if (edge.data("dep") != null) { return showDependency(topology.dependencies[edge.data("dep")]); }
    var e = topology.edges[edge.data("index")];
    var l = e.latency || {};
    var latencyName = (e.kind === "consume" || e.kind === "route") ? "Publish \u2192 consume" : "Duration";
    var from = cy.getElementById(e.from).data() || {}, to = cy.getElementById(e.to).data() || {};
    var filter = from.kind === "service" ? "service=" + encodeURIComponent(from.name) : (to.kind === "service" ? "service=" + encodeURIComponent(to.name) : "");
    if (from.kind === "destination") { filter += (filter ? "&" : "") + "destination=" + encodeURIComponent(from.name); }
    else if (to.kind === "destination") { filter += (filter ? "&" : "") + "destination=" + encodeURIComponent(to.name); }
    show([
      el("h3", {}, [selectButton(e.from), " \u2192 ", selectButton(e.to)]),
      facts([["Kind", e.kind], ["Count", e.count], ["Errors", e.errors], ["Rate over the window", rate(e.rate_per_sec)],
        [latencyName + " p50", micros(l.p50_micros)], ["p90", micros(l.p90_micros)], ["p99", micros(l.p99_micros)],
        // A stream's events read again: apart from the count and the delay above.
        ["Replayed", e.replays ? e.replays.count + ", p99 " + micros(e.replays.latency.p99_micros) : ""],
        ["Consumer instances", e.instances != null ? e.instances : ""]])
    ].concat(sections([panel.recentTraces(filter, panelContext(), e.errors > 0)])));
  }
  function showDependency(d) {
    var l = d.latency || {};
    var filter = "service=" + encodeURIComponent(nodeName(d.to)) + "&destination=" + encodeURIComponent(nodeName(d.via));
    show([
      el("h3", {}, [selectButton(d.from), " \u2192 ", selectButton(d.to)]),
      el("p", {}, ["via ", selectButton(d.via)]),
      facts([["Messages", d.count != null ? d.count : "inferred (no traced pair)"],
        ["Rate over the window", d.count != null ? rate(d.count / windowSecs(topology)) : ""],
        ["Publish \u2192 consume p50", d.count != null ? micros(l.p50_micros) : ""], ["p99", d.count != null ? micros(l.p99_micros) : ""]])
    ].concat(sections([panel.recentTraces(filter, panelContext())])));
  }
  // The map in this window with finding `f` framed, seen from node `on`: what a copied link
  // or a node page's finding link opens.
  function findingHref(f, on) {
    return "/?" + pageQuery + "&finding=" + encodeURIComponent(f.pattern) + "&on=" + encodeURIComponent(on);
  }
  function showFinding(i, on) {
    var f = topology.findings[i], extra = [];
    if (f.pattern === "action_response") {
      var x = kit.exchange(topology, f, nodeName);
      extra = [facts([["Asks", nodeName(x.asker)], ["Answers", nodeName(x.answerer)], ["Request", nodeName(x.request)],
        ["Reply", nodeName(x.reply)], ["Request leg p99 (in the broker)", x.requestP99 != null ? micros(x.requestP99) : ""],
        ["Reply leg p99 (in the broker)", x.replyP99 != null ? micros(x.replyP99) : ""]]),
        panel.roundTrips(x, panelContext(), facts).node];
    }
    show([
      el("h3", {}, [el("span", { "class": "badge pattern-" + f.pattern, text: PATTERNS[f.pattern] || f.pattern })]),
      el("p", { "class": "finding-text", id: "finding-description", text: f.description })
    ].concat(extra, [
      el("h3", { text: "Nodes" }),
      el("ul", { "class": "detail-list finding-nodes" }, f.nodes.map(function (id) {
        var page = nodePage(id);
        return el("li", {}, [selectButton(id), page ? el("a", { "class": "small node-page", href: page, text: "page" }) : null]);
      })),
      el("p", { "class": "detail-links" }, [el("a", { id: "finding-link", href: findingHref(f, on), text: "Link to this finding" })])
    ]));
    refreshers = [];
  }
  function clearDetails() {
    body.replaceChildren();
    refreshers = [];
    if (hint) { hint.hidden = false; }
  }

  // ---- focus: reach and impact on the map ----
  function clearFocus() {
    focused = null;
    cy.elements().removeClass("up down unreached starved piling");
    badges.dim(null);
  }
  function highlightReach(id, r) {
    if (focused !== id || cy.getElementById(id).empty()) { return; }
    var up = {}, down = {};
    up[id] = down[id] = true;
    r.depends_on.forEach(function (x) { up[x.id] = true; });
    r.dependents.forEach(function (x) { down[x.id] = true; });
    cy.batch(function () {
      cy.elements().removeClass("up down unreached starved piling");
      cy.nodes().forEach(function (n) {
        if (n.id() === id) { return; }
        n.addClass(up[n.id()] ? "up" : (down[n.id()] ? "down" : "unreached"));
      });
      cy.edges().forEach(function (e) {
        var s = e.source().id(), t = e.target().id();
        e.addClass(up[s] && up[t] ? "up" : (down[s] && down[t] ? "down" : "unreached"));
      });
    });
    badges.dim(Object.assign({}, up, down));
  }
  function markImpact(r) {
    if (focused !== r.node) { return; }
    cy.batch(function () {
      r.services.forEach(function (s) { cy.getElementById(s.id).addClass("starved").removeClass("unreached"); });
      r.destinations.forEach(function (d) { cy.getElementById(d.id).addClass("piling").removeClass("unreached"); });
    });
    var keep = Object.assign({}, badges.keep || {});
    keep[r.node] = true;
    r.services.concat(r.destinations).forEach(function (x) { keep[x.id] = true; });
    badges.dim(keep);
  }
  function selectNode(node) {
    cy.elements().unselect();
    node.select();
    focused = node.id();
    showNode(node);
  }
  function focusNode(id) {
    var n = cy.getElementById(id);
    if (n.empty()) { return; }
    selectNode(n);
    cy.animate({ center: { eles: n }, duration: 250 });
  }
  function pickFinding(i, on) {
    var f = topology.findings[i];
    if (!f) { return; }
    on = on || f.nodes[0];
    if (window.history && history.replaceState) { history.replaceState(null, "", findingHref(f, on)); }
    clearFocus();
    var eles = cy.collection();
    f.nodes.forEach(function (id) { eles = eles.union(cy.getElementById(id)); });
    cy.elements().unselect();
    eles.select();
    if (eles.nonempty()) { cy.animate({ fit: { eles: eles, padding: 70 }, duration: 300 }); }
    showFinding(i, on);
  }
  // A link's `finding=PATTERN&on=NODE`: the first finding of that pattern on that node (as its
  // badge picks), or a note that this window has none.
  function pickLinkedFinding() {
    var q = new URLSearchParams(location.search), pattern = q.get("finding"), on = q.get("on");
    if (!pattern || !on) { return; }
    var i = topology.findings.findIndex(function (f) { return f.pattern === pattern && f.nodes.indexOf(on) >= 0; });
    if (i >= 0) { pickFinding(i, on); return; }
    show([el("p", { "class": "notice", id: "finding-missing",
      text: "No " + (PATTERNS[pattern] || pattern).toLowerCase() + " finding on " + nodeName(on) + " in this window." })]);
  }

  // ---- interactions ----
  function edgeTooltip(e) {
    if (e.data("dep") != null) {
      var d = topology.dependencies[e.data("dep")];
      return nodeName(d.from) + " \u2192 " + nodeName(d.to) + "\nvia " + nodeName(d.via) + (d.count != null ? ": " + d.count + " messages, " + e.data("label") : " (inferred)");
    }
    var x = topology.edges[e.data("index")];
    var l = x.latency || {};
    return nodeName(x.from) + " \u2192 " + nodeName(x.to) + "\n" + x.kind + ": " + x.count +
      (x.errors ? " (" + x.errors + " errors)" : "") + ", " + rate(x.rate_per_sec) +
      "\nlatency p50 " + micros(l.p50_micros) + " \u00b7 p99 " + micros(l.p99_micros);
  }
  function hideTip() { tooltip.hidden = true; }
  function download(blob, name) {
    var a = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
  function wire() {
    cy.on("mouseover", "node", function (ev) {
      if (focused) { return; }
      cy.elements().addClass("faded");
      ev.target.closedNeighborhood().removeClass("faded");
    });
    cy.on("mouseout", "node", function () { cy.elements().removeClass("faded"); hideTip(); });
    cy.on("mouseover", "edge", function (ev) {
      ev.target.addClass("hovered");
      tooltip.textContent = edgeTooltip(ev.target);
      var p = ev.renderedPosition || { x: 0, y: 0 };
      tooltip.style.left = (p.x + 14) + "px";
      tooltip.style.top = (p.y + 14) + "px";
      tooltip.hidden = false;
    });
    cy.on("mouseout", "edge", function (ev) { ev.target.removeClass("hovered"); hideTip(); });
    cy.on("tap", "node", function (ev) { selectNode(ev.target); });
    cy.on("tap", "edge", function (ev) { clearFocus(); showEdge(ev.target); });
    cy.on("tap", function (ev) { if (ev.target === cy) { clearFocus(); clearDetails(); } });
    cy.on("dragfree", "node", function () { if (layout.small(cy)) { layout.route(cy); } });
    cy.on("viewport", labelSoon);
    function fit() { cy.fit(undefined, 30); }
    document.getElementById("fit").addEventListener("click", fit);
    document.addEventListener("keydown", function (ev) {
      var tag = (ev.target.tagName || "").toLowerCase();
      if (tag === "input" || tag === "select" || tag === "textarea") { return; }
      if (ev.key === "f" || ev.key === "F") { fit(); }
      if (ev.key === "Escape") { cy.elements().unselect(); clearFocus(); clearDetails(); }
    });
    document.getElementById("download-png").addEventListener("click", function () {
      download(cy.png({ full: true, scale: 2, bg: css("--bg"), output: "blob" }), "switchyard-topology.png");
    });
    document.getElementById("download-svg").addEventListener("click", function () {
      download(new Blob([window.switchyardSvg.mapSvg(cy, css("--bg"), topology.findings, findingTitle)], { type: "image/svg+xml" }), "switchyard-topology.svg");
    });
    var toggle = document.getElementById("services-only");
    if (toggle) {
      toggle.addEventListener("click", function () {
        mode = mode === "services" ? "all" : "services";
        toggle.setAttribute("aria-pressed", String(mode === "services"));
        rebuild();
      });
    }
    document.querySelectorAll(".node-select").forEach(function (b) {
      b.addEventListener("click", function () { focusNode(b.getAttribute("data-node-id")); });
    });
    document.querySelectorAll(".finding-select").forEach(function (b) {
      b.addEventListener("click", function () { pickFinding(Number(b.getAttribute("data-finding"))); });
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
    document.addEventListener("switchyard:theme", function () {
      cy.style(style());
      var figures = kit.nodeFigures(topology);
      cy.batch(function () { cy.nodes().forEach(function (n) { if (figures[n.id()]) { n.data("ring", kit.ring(figures[n.id()])); } }); });
    });
  }

  // ---- edge labels ----
  // A small graph labels every edge (Cytoscape hides what would be under 9 px); a large one
  // only the edges in view once zoomed in enough to read them: measuring thousands of labels
  // would cost every frame.
  // Likewise a large map's node labels and error rings, on the nodes in view from the zoom
  // the labels can be read at (7 px of 13).
  var LABEL_ZOOM = 0.75, RING_ZOOM = 7 / 13, labelTimer = null;
  function labelEdges() {
    if (layout.small(cy)) { cy.edges().not(".labelled").addClass("labelled"); return; }
    var on = cy.collection(), near = cy.collection(), zoom = cy.zoom();
    var ext = cy.extent();
    // A node's centre may be out of view while its box shows: a margin of a node's width.
    var inside = function (p, m) {
      m = m || 0;
      return p.x >= ext.x1 - m && p.x <= ext.x2 + m && p.y >= ext.y1 - m && p.y <= ext.y2 + m;
    };
    if (zoom >= LABEL_ZOOM) {
      on = cy.edges().filter(function (e) { return inside(e.source().position()) || inside(e.target().position()); });
    }
    if (zoom >= RING_ZOOM) {
      near = cy.nodes().filter(function (n) { return inside(n.position(), 150); });
    }
    cy.batch(function () {
      cy.edges(".labelled").difference(on).removeClass("labelled");
      on.not(".labelled").addClass("labelled");
      cy.nodes(".near").difference(near).removeClass("near");
      near.not(".near").addClass("near");
    });
  }
  function labelSoon() {
    if (labelTimer) { clearTimeout(labelTimer); }
    labelTimer = setTimeout(function () { labelTimer = null; labelEdges(); }, 120);
  }

  // ---- layout ----
  // The smallest zoom a first view of a small graph gets: 13 px labels stay at 10 px or more.
  var READABLE_ZOOM = 0.8;
  // `placed`: the nodes already hold their layered positions (a large map's first draw).
  function place(fit, placed) {
    if (!placed) { cy.layout(layout.layoutFor(cy, fit)).run(); } else if (fit) { cy.fit(undefined, 30); }
    if (layout.small(cy)) { layout.route(cy); }
    labelEdges();
    if (fit && layout.small(cy) && cy.zoom() < READABLE_ZOOM && cy.nodes().length) {
      // Too small to read when all of it fits: start readable at the sources (the left),
      // centred vertically; Fit (F) shows everything.
      var bb = cy.elements().boundingBox(), h = cy.height(), z = READABLE_ZOOM;
      cy.zoom(z);
      cy.pan({ x: 30 - bb.x1 * z, y: (bb.h * z < h ? (h - bb.h * z) / 2 : 30) - bb.y1 * z });
    }
  }
  function legend(topo) {
    var list = document.getElementById("legend-systems");
    if (!list) { return; }
    var systems = systemsOf(topo);
    list.replaceChildren.apply(list, systems.map(function (s, i) {
      return el("li", {}, [el("span", { "class": "swatch-node", style: "border-color:" + PALETTE[i % PALETTE.length] }), s || "(no system)"]);
    }));
    var traces = document.getElementById("legend-traces-only");
    if (traces) { traces.hidden = !brokered(topo); }
    var declared = document.getElementById("legend-declared");
    if (declared) { declared.hidden = !topo.edges.concat(topo.nodes).some(function (x) { return seenIn(x, false) === "declared"; }); }
  }
  function findingTitle(f) { return (PATTERNS[f.pattern] || f.pattern) + ": " + findingLine(f); }
  function rebuild() {
    clearFocus();
    cy.elements().remove();
    cy.add(elements(topology));
    place(true);
    badges.set(topology.findings, findingTitle);
    document.dispatchEvent(new CustomEvent("switchyard:drawn"));
  }

  // ---- live: refresh the graph in place when spans arrive (preset windows only) ----
  var PRESET_SECS = { "window=5m": 300, "window=15m": 900, "window=1h": 3600, "window=6h": 21600,
    "window=24h": 86400, "window=7d": 604800 };
  function update(topo) {
    topology = topo;
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
    window.switchyard.topology = topo;
    var counts = document.getElementById("counts");
    var errors = topo.edges.filter(function (e) { return e.errors > 0; }).length;
    counts.textContent = topo.nodes.length + " nodes \u00b7 " + topo.edges.length + " edges" + (errors ? " \u00b7 " + errors + " with errors" : "");
    var empty = document.getElementById("empty-state");
    if (empty && topo.nodes.length) { empty.hidden = true; }
    // New nodes need a place; the user's zoom and pan stay as they are.
    if (added) { place(!drawnOnce); } else if (layout.small(cy)) { layout.route(cy); }
    labelEdges();
    drawnOnce = drawnOnce || cy.nodes().length > 0;
    legend(topo);
    badges.set(topo.findings, findingTitle);
    document.dispatchEvent(new CustomEvent("switchyard:drawn"));
  }
  var drawnOnce = false;
  function refresh() {
    var secs = PRESET_SECS[pageQuery];
    var until = new Date(Date.now() + 1000), since = new Date(until.getTime() - secs * 1000);
    var q = "since=" + encodeURIComponent(since.toISOString()) + "&until=" + encodeURIComponent(until.toISOString());
    return fetch("/api/topology?" + q).then(function (r) { return r.json(); }).then(function (topo) {
      windowQuery = q;
      update(topo);
      refreshers.forEach(function (f) { f(); });
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

  // Works out the style of `eles` now, in a batch (see draw).
  function styleNow(eles) {
    cy.batch(function () { eles.forEach(function (e) { e.pstyle("width"); }); });
  }
  // Where the first draw's time goes, in ms: when this script started (since navigation), then
  // each step's share (the topology read, elements, layout, Cytoscape and styles, the view,
  // badges); `paint`, the first frame after, is added once drawn. The tests print it.
  var marks = { scripts: performance.now() };
  function draw(topo) {
    marks.data = performance.now();
    topology = topo;
    var big = topo.edges.length > 800, items = elements(topo), placed = layout.large(items);
    largeMap = placed;
    marks.elements = performance.now();
    // A large map is laid out on the plain data and created in place, its view fitted from the
    // positions: Cytoscape neither runs a layout nor measures the whole graph to fit it.
    var view = null;
    if (placed) {
      var positions = layout.layeredPositions(items);
      items.forEach(function (it) { if (it.group === "nodes") { it.position = positions[it.data.id]; } });
      view = layout.fitViewport(items, positions, container.clientWidth, container.clientHeight, 30, 0.05, 4);
    }
    marks.layout = performance.now();
    // Nodes first, then edges: each node's style is worked out on first use, and each of its
    // properties then marks its connected edges (none yet) and tells the renderer of new
    // bounds, thousands of notices on a large map, merged into one in a batch.
    var nodes = items.filter(function (it) { return it.group === "nodes"; });
    var edges = items.filter(function (it) { return it.group !== "nodes"; });
    var options = {
      container: container,
      elements: nodes,
      style: style(),
      // "null" would put every node at the origin; "preset" without positions keeps theirs.
      layout: placed ? { name: "preset", fit: false, animate: false } : { name: "null" },
      minZoom: 0.05, maxZoom: 4, wheelSensitivity: 0.3,
      textureOnViewport: big, hideEdgesOnViewport: big, pixelRatio: big ? 1 : "auto"
    };
    if (view) { options.zoom = view.zoom; options.pan = view.pan; }
    cy = cytoscape(options);
    styleNow(cy.nodes());
    styleNow(cy.add(edges));
    marks.cy = performance.now();
    badges = new window.switchyardBadges.Badges(cy, document.getElementById("map-badges"), pickFinding);
    wire();
    place(!view, placed);
    marks.place = performance.now();
    badges.set(topo.findings, findingTitle);
    legend(topo);
    marks.badges = performance.now();
    var timings = {};
    var names = ["scripts", "data", "elements", "layout", "cy", "place", "badges"];
    names.forEach(function (k, i) { timings[k] = i ? marks[k] - marks[names[i - 1]] : marks[k]; });
    window.switchyard = { cy: cy, topology: topo, readyAt: performance.now(), timings: timings, mode: function () { return mode; } };
    // The first frame drawn after it: two animation frames (the canvas draws in the first).
    requestAnimationFrame(function () {
      requestAnimationFrame(function () {
        window.switchyard.paintedAt = performance.now();
        timings.paint = window.switchyard.paintedAt - window.switchyard.readyAt;
      });
    });
    drawnOnce = topo.nodes.length > 0;
    watch();
    pickLinkedFinding();
    document.body.setAttribute("data-map-ready", "1");
  }

  // The page carries the topology (`#topology-data`, what /api/topology answers): drawn with
  // no second request. Without it (it could not be written), the API is asked.
  function inlineTopology() {
    var data = document.getElementById("topology-data");
    var text = data ? data.textContent : "";
    if (data) { data.remove(); }
    return text ? JSON.parse(text) : null;
  }
  var inline = null;
  try { inline = inlineTopology(); } catch (err) { inline = null; }
  (inline ? Promise.resolve(inline) : fetch(container.getAttribute("data-topology-url"), { headers: { Accept: "application/json" } })
    .then(function (r) {
      if (!r.ok) { throw new Error("topology request failed with " + r.status); }
      return r.json();
    }))
    .then(draw)
    .catch(function (err) {
      container.replaceChildren(el("p", { "class": "empty", text: "Could not load the topology: " + err.message }));
      document.body.setAttribute("data-map-ready", "error");
    });
})();
