// The map as a standalone SVG file, drawn by our own code from the laid-out Cytoscape graph,
// with what the map shows: node boxes with their name and figures (rate, error share, broker
// depth or lag), the error-ratio ring, edges along their routed path with their style, arrow
// and rate/p99 label, finding badges on the nodes involved, and a legend. Every name comes
// from span data, so each one goes through esc().
(function () {
  "use strict";
  // XML 1.0 forbids the C0 controls but tab, newline and carriage return (even as references):
  // they become their Unicode control pictures (U+2400..U+241F, DEL U+2421), as in the DOT
  // export, so a name holding one still gives a file that parses. Lone surrogates (not
  // characters either) become U+FFFD.
  function esc(text) {
    return String(text == null ? "" : text)
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, function (c) {
        var code = c.charCodeAt(0);
        return String.fromCharCode(code === 0x7f ? 0x2421 : 0x2400 + code);
      })
      .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/g, function (m, before) {
        return (before || "") + "\uFFFD";
      })
      .replace(/[\uFFFE\uFFFF]/g, "\uFFFD")
      .replace(/[&<>"']/g, function (c) {
        return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c];
      });
  }
  function num(x) { return (Math.round((x || 0) * 10) / 10).toString(); }
  function colour(value, fallback) {
    // Only plain colour values reach the file (no url(), no quotes).
    value = String(value || "").trim();
    return /^(#[0-9a-fA-F]{3,8}|rgba?\([0-9., ]+\)|[a-z]+)$/.test(value) ? value : fallback;
  }
  function cssVar(name, fallback) {
    return colour(getComputedStyle(document.documentElement).getPropertyValue(name), fallback);
  }
  function attrs(pairs) {
    return Object.keys(pairs).filter(function (k) { return pairs[k] != null && pairs[k] !== ""; })
      .map(function (k) { return " " + k + '="' + esc(pairs[k]) + '"'; }).join("");
  }
  function tag(name, pairs, inner) {
    return "<" + name + attrs(pairs) + (inner == null ? "/>" : ">" + inner + "</" + name + ">");
  }
  function dashOf(style, width) {
    if (style === "dotted") { return "1," + num(Math.max(3, width * 2)); }
    if (style === "dashed") { return "6,4"; }
    return "";
  }

  var BADGE = { broadcast: "broadcast", work_queue: "work queue", action_response: "action/response",
    dead_end: "dead end", idle_subscriber: "idle subscriber", cycle: "cycle", backlog: "backlog",
    lag_growing: "lag growing", dead_letter: "dead letter" };

  // The error-ratio ring, as on the map: green for what went through, red for the errors'
  // share, grey without traffic.
  function ring(cx, cy, traffic, ratio, c) {
    var r = 7, len = 2 * Math.PI * r;
    if (!traffic) {
      return tag("circle", { "class": "ring", cx: num(cx), cy: num(cy), r: r, fill: "none", stroke: c.border, "stroke-width": 4 });
    }
    var step = Math.round(ratio * 100);
    if (ratio > 0 && step === 0) { step = 1; }
    var err = len * step / 100;
    return tag("g", { "class": "ring", "data-error-percent": String(step) },
      tag("circle", { cx: num(cx), cy: num(cy), r: r, fill: "none", stroke: c.ok, "stroke-width": 4 }) +
      (err > 0 ? tag("circle", { "class": "ring-error", cx: num(cx), cy: num(cy), r: r, fill: "none", stroke: c.error,
        "stroke-width": 4, "stroke-dasharray": err.toFixed(2) + " " + (len - err + 0.01).toFixed(2),
        transform: "rotate(-90 " + num(cx) + " " + num(cy) + ")" }) : ""));
  }

  // The legend: node kinds, the ring, line styles, badges and the colour of each system.
  function legend(x, y, c, systems) {
    var rows = [], line = 0;
    function row(swatch, text) {
      var ry = y + 28 + line * 20;
      rows.push(tag("g", { "class": "legend-row" }, swatch(x + 10, ry) +
        tag("text", { x: num(x + 46), y: num(ry + 4), fill: c.text }, esc(text))));
      line += 1;
    }
    function box(fill, stroke, dash) {
      return function (lx, ly) { return tag("rect", { x: lx, y: ly - 7, width: 26, height: 14, rx: 4, fill: fill, "fill-opacity": 0.14, stroke: stroke, "stroke-dasharray": dash }); };
    }
    function stroke(col, dash, width) {
      return function (lx, ly) { return tag("line", { x1: lx, y1: ly, x2: lx + 26, y2: ly, stroke: col, "stroke-width": width || 2, "stroke-dasharray": dash }); };
    }
    row(box(c.service, c.service), "service");
    row(box(c.destination, c.destination), "destination (colour: its system)");
    row(box(c.external, c.external, "4,3"), "external peer");
    row(function (lx, ly) { return ring(lx + 13, ly, true, 0.25, c); }, "ring: share of errors (red)");
    row(stroke(c.publish), "publish");
    row(stroke(c.consume), "consume");
    row(stroke(c.edge, "6,4"), "route (exchange to queue); dashed: only the broker reports it");
    row(stroke(c.edge, "1,4"), "call");
    row(stroke(c.error), "errors, dead letters");
    row(function (lx, ly) { return tag("text", { x: lx, y: ly + 4, fill: c.muted }, "1/s"); }, "edge labels: rate \u00b7 p99");
    row(function (lx, ly) { return tag("rect", { x: lx, y: ly - 7, width: 26, height: 14, rx: 7, fill: c.broker }); }, "badge: a finding on that node");
    systems.forEach(function (s) { row(box(s[1], s[1]), "system: " + (s[0] || "(no system)")); });
    var h = 36 + line * 20;
    return { height: h, svg: tag("g", { "class": "legend" },
      tag("rect", { x: x, y: y, width: 400, height: h, rx: 6, fill: c.surface, stroke: c.border }) +
      tag("text", { x: x + 10, y: y + 16, fill: c.text, "font-weight": "bold" }, "Legend") + rows.join("")) };
  }

  // Returns the SVG text of the graph `cy` on a background `bg`; `findings` (those of
  // /api/topology) become badges on their nodes, `describe(f)` their tooltip text.
  function mapSvg(cy, bg, findings, describe) {
    var c = {
      text: cssVar("--text", "#1d2430"), muted: cssVar("--muted", "#5d6878"), surface: cssVar("--surface", "#ffffff"),
      border: cssVar("--border", "#d9dee6"), ok: cssVar("--consume", "#2fb38f"), error: cssVar("--error", "#d23f3f"),
      service: cssVar("--service", "#2f6fdf"), destination: cssVar("--destination", "#0f8a6c"),
      external: cssVar("--external", "#8a6d3b"), edge: cssVar("--edge", "#8d97a6"), broker: cssVar("--broker", "#e8a93a"),
      publish: cssVar("--publish", "#5b8def"), consume: cssVar("--consume", "#2fb38f")
    };
    var visible = cy.elements(":visible");
    var box = visible.nonempty() ? visible.boundingBox({ includeLabels: true }) : { x1: 0, y1: 0, w: 1, h: 1 };
    var systems = [], seenSystem = {};
    cy.nodes("[kind = 'destination']").forEach(function (n) {
      var s = n.data("system") || "";
      if (!seenSystem[s]) { seenSystem[s] = true; systems.push([s, colour(n.data("color"), c.destination)]); }
    });
    systems.sort(function (a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0; });
    var pad = 20, top = 24;
    var lg = legend(0, 0, c, systems);
    var gw = Math.max(box.w, 1) + 2 * pad, w = gw + 420, h = Math.max(Math.max(box.h, 1) + 2 * pad + top, lg.height + 2 * pad);
    var dx = pad - box.x1, dy = pad + top - box.y1;
    function px(p) { return num(p.x + dx) + "," + num(p.y + dy); }
    var out = [];
    out.push('<svg xmlns="http://www.w3.org/2000/svg" width="' + num(w) + '" height="' + num(h) +
      '" viewBox="0 0 ' + num(w) + " " + num(h) + '" font-family="sans-serif" font-size="12">');
    out.push("<title>Switchyard topology</title>");
    out.push('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" ' +
      'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>');
    out.push(tag("rect", { width: "100%", height: "100%", fill: colour(bg, "#ffffff") }));
    cy.edges(":visible").forEach(function (e) {
      var pts = [e.sourceEndpoint()].concat(e.hasClass("routed") ? (e.segmentPoints() || []) : [], [e.targetEndpoint()]);
      var width = parseFloat(e.style("width")) || 1;
      var dash = e.data("kind") === "dependency" && e.data("inferred") ? "6,4" : dashOf(e.style("line-style"), width);
      var label = e.data("label") || "";
      var mid = e.midpoint();
      out.push(tag("g", { "class": "edge", "data-source": e.data("source"), "data-target": e.data("target"), "data-kind": e.data("kind") },
        tag("title", {}, esc(e.data("source") + " \u2192 " + e.data("target") + (label ? ": " + label : ""))) +
        tag("polyline", { points: pts.map(px).join(" "), fill: "none", stroke: colour(e.style("line-color"), c.edge),
          "stroke-width": num(width), "stroke-dasharray": dash, "stroke-opacity": 0.9, "marker-end": "url(#arrow)" }) +
        (label ? tag("text", { "class": "edge-label", x: num(mid.x + dx), y: num(mid.y + dy - 4), "text-anchor": "middle",
          fill: c.muted, "font-size": 11, stroke: colour(bg, "#ffffff"), "stroke-width": 3, "paint-order": "stroke" }, esc(label)) : "")));
    });
    cy.nodes(":visible").forEach(function (n) {
      var p = n.position(), nw = n.width(), nh = n.height();
      var x = p.x - nw / 2 + dx, y = p.y - nh / 2 + dy;
      var lines = String(n.data("label") || n.data("name") || n.id()).split("\n");
      var kind = n.data("kind");
      var fill = colour(n.style("background-color"), c.surface);
      var tx = x + 36 + (nw - 36) / 2;
      out.push(tag("g", { "class": "node", "data-id": n.id(), "data-kind": kind },
        tag("title", {}, esc(n.data("name") || n.id())) +
        tag("rect", { x: num(x), y: num(y), width: num(nw), height: num(nh), rx: kind === "destination" ? 14 : 6,
          fill: fill, "fill-opacity": num(parseFloat(n.style("background-opacity")) || 1),
          stroke: colour(n.style("border-color"), c.border), "stroke-width": num(parseFloat(n.style("border-width")) || 1),
          "stroke-dasharray": n.style("border-style") === "dashed" ? "5,3" : "" }) +
        ring(x + 18, p.y + dy, !!n.data("traffic"), n.data("ratio") || 0, c) +
        tag("text", { x: num(tx), y: num(p.y + dy - 3), "text-anchor": "middle", fill: c.text, "font-size": 13 },
          tag("tspan", { "class": "name" }, esc(lines[0])) +
          (lines.length > 1 ? tag("tspan", { "class": "figures", x: num(tx), dy: 16, "font-size": 11, fill: c.muted }, esc(lines.slice(1).join(" "))) : ""))));
    });
    // Badges: one per pattern on each node a finding involves, above its top-left corner.
    var per = {}, order = [];
    (findings || []).forEach(function (f) {
      (f.nodes || []).forEach(function (id) {
        var n = cy.getElementById(id);
        if (n.empty() || !n.visible()) { return; }
        if (!per[id]) { per[id] = {}; order.push(id); }
        if (!per[id][f.pattern]) { per[id][f.pattern] = f; }
      });
    });
    order.forEach(function (id) {
      var n = cy.getElementById(id), p = n.position();
      var bx = p.x - n.width() / 2 + dx, by = p.y - n.height() / 2 + dy - 20;
      Object.keys(per[id]).forEach(function (pattern) {
        var text = BADGE[pattern] || pattern, bw = text.length * 6.5 + 12, f = per[id][pattern];
        out.push(tag("g", { "class": "badge", "data-node-id": id, "data-pattern": pattern },
          tag("title", {}, esc(describe ? describe(f) : f.description)) +
          tag("rect", { x: num(bx), y: num(by), width: num(bw), height: 16, rx: 8,
            fill: pattern === "dead_letter" || pattern === "dead_end" ? c.error : c.broker }) +
          tag("text", { x: num(bx + bw / 2), y: num(by + 12), "text-anchor": "middle", "font-size": 10, fill: "#1d2430" }, esc(text))));
        bx += bw + 4;
      });
    });
    out.push(legend(gw, pad, c, systems).svg);
    out.push("</svg>");
    return out.join("\n");
  }

  window.switchyardSvg = { mapSvg: mapSvg, esc: esc };
})();
