// Layouts of the map and its edge routing. Small graphs get dagre (left to right); past
// DAGRE_MAX a simple layered layout keeps the map instant. Edge routing: an edge whose straight line would cross
// a node box is bent through the gaps of every column it passes, as segments with rounded
// corners. Edges that cross nothing stay straight (Cytoscape's bezier, which also separates
// parallel edges).
(function () {
  "use strict";
  var MARGIN = 8, COLUMN = 24;

  function boxOf(n) {
    var p = n.position(), w = n.outerWidth() / 2 + MARGIN, h = n.outerHeight() / 2 + MARGIN;
    return { id: n.id(), x: p.x, y: p.y, x1: p.x - w, x2: p.x + w, y1: p.y - h, y2: p.y + h };
  }
  // Liang-Barsky: does the segment a-b pass through the box?
  function hits(a, b, box) {
    var t0 = 0, t1 = 1, dx = b.x - a.x, dy = b.y - a.y;
    var p = [-dx, dx, -dy, dy], q = [a.x - box.x1, box.x2 - a.x, a.y - box.y1, box.y2 - a.y];
    for (var i = 0; i < 4; i++) {
      if (p[i] === 0) { if (q[i] < 0) { return false; } continue; }
      var t = q[i] / p[i];
      if (p[i] < 0) { if (t > t1) { return false; } if (t > t0) { t0 = t; } }
      else { if (t < t0) { return false; } if (t < t1) { t1 = t; } }
    }
    return t1 - t0 > 1e-6;
  }
  function blocked(points, boxes, skip) {
    for (var i = 0; i + 1 < points.length; i++) {
      for (var k = 0; k < boxes.length; k++) {
        if (!skip[boxes[k].id] && hits(points[i], points[i + 1], boxes[k])) { return true; }
      }
    }
    return false;
  }
  // Columns: boxes grouped by their centre's x.
  function columns(boxes) {
    var sorted = boxes.slice().sort(function (a, b) { return a.x - b.x; }), out = [];
    sorted.forEach(function (b) {
      var last = out[out.length - 1];
      if (last && b.x - last.x <= COLUMN) { last.boxes.push(b); last.x1 = Math.min(last.x1, b.x1); last.x2 = Math.max(last.x2, b.x2); }
      else { out.push({ x: b.x, x1: b.x1, x2: b.x2, boxes: [b] }); }
    });
    return out;
  }
  // The free y nearest to `y` in a column (outside every box but the edge's own ends).
  function freeY(col, y, skip) {
    var spans = col.boxes.filter(function (b) { return !skip[b.id]; })
      .map(function (b) { return [b.y1, b.y2]; }).sort(function (a, b) { return a[0] - b[0]; });
    var merged = [];
    spans.forEach(function (s) {
      var last = merged[merged.length - 1];
      if (last && s[0] <= last[1]) { last[1] = Math.max(last[1], s[1]); } else { merged.push(s.slice()); }
    });
    for (var i = 0; i < merged.length; i++) {
      var s = merged[i];
      if (y > s[0] && y < s[1]) { return (y - s[0] < s[1] - y) ? s[0] - 2 : s[1] + 2; }
    }
    return y;
  }
  function waypoints(s, t, cols, skip) {
    var a = s.position(), b = t.position(), pts = [];
    var forward = b.x >= a.x, lo = Math.min(a.x, b.x), hi = Math.max(a.x, b.x);
    var between = cols.filter(function (c) { return c.x > lo + COLUMN && c.x < hi - COLUMN; });
    if (!forward) { between.reverse(); }
    if (!between.length) {
      // Same column: out to the right of it and back.
      var col = cols.filter(function (c) { return Math.abs(c.x - a.x) <= COLUMN; })[0];
      var x = (col ? col.x2 : a.x + 80) + 16;
      return [{ x: x, y: a.y }, { x: x, y: b.y }];
    }
    // Leave the source's column and enter the target's level, so no diagonal cuts a neighbour.
    var own = function (x) { return cols.filter(function (c) { return Math.abs(c.x - x) <= COLUMN; })[0]; };
    var from = own(a.x), to = own(b.x);
    if (from) { pts.push({ x: forward ? from.x2 : from.x1, y: a.y }); }
    between.forEach(function (c) {
      var f = (c.x - a.x) / ((b.x - a.x) || 1), y = freeY(c, a.y + f * (b.y - a.y), skip);
      var enter = forward ? c.x1 : c.x2, leave = forward ? c.x2 : c.x1;
      pts.push({ x: enter, y: y }, { x: leave, y: y });
    });
    if (to) { pts.push({ x: forward ? to.x1 : to.x2, y: b.y }); }
    return pts;
  }
  // Segment points as Cytoscape wants them: weights along source -> target (node centres) and
  // distances perpendicular to it (positive: to the left of source -> target on screen).
  function relative(a, b, pts) {
    var dx = b.x - a.x, dy = b.y - a.y, l2 = dx * dx + dy * dy, l = Math.sqrt(l2) || 1;
    return {
      w: pts.map(function (p) { return l2 ? ((p.x - a.x) * dx + (p.y - a.y) * dy) / l2 : 0.5; }),
      d: pts.map(function (p) { return ((p.y - a.y) * dx - (p.x - a.x) * dy) / l; })
    };
  }

  // Routes every edge of `cy` around the node boxes (model coordinates, after a layout).
  function route(cy) {
    var boxes = cy.nodes().map(boxOf), cols = columns(boxes);
    cy.batch(function () {
      cy.edges().forEach(function (e) {
        var s = e.source(), t = e.target();
        e.removeClass("routed");
        if (s.same(t)) { return; }
        var skip = {}; skip[s.id()] = true; skip[t.id()] = true;
        var a = s.position(), b = t.position();
        if (!blocked([a, b], boxes, skip)) { return; }
        var pts = waypoints(s, t, cols, skip), rel = relative(a, b, pts);
        e.data({ segw: rel.w, segd: rel.d });
        e.addClass("routed");
      });
    });
  }

  // dagre gives the best picture but grows much faster than linearly; past this size a
  // simple layered layout (breadth-first ranks from the sources, barycentre ordering) keeps
  // the map instant. Breadth-first ranks stay shallow where longest paths would not.
  var DAGRE_MAX_NODES = 150, DAGRE_MAX_EDGES = 400;
  // The layered positions of a graph given as plain element data (Cytoscape's element JSON:
  // nodes in order, edges with source and target), computed before any Cytoscape element
  // exists, so a large map is created in place with one pass.
  function layeredPositions(items) {
    var ids = [], out = {}, nbr = {}, indeg = {}, outdeg = {}, rank = {}, order = [];
    items.forEach(function (it) {
      if (it.group !== "nodes") { return; }
      var id = it.data.id;
      ids.push(id); out[id] = []; nbr[id] = []; indeg[id] = 0; outdeg[id] = 0;
    });
    var seenOut = {}, seenNbr = {};
    function addOnce(list, seen, key, v) { if (!seen[key]) { seen[key] = true; list.push(v); } }
    items.forEach(function (it) {
      if (it.group !== "edges") { return; }
      var s = it.data.source, t = it.data.target;
      if (!out[s] || !out[t]) { return; }
      addOnce(out[s], seenOut, s + "\u0001" + t, t);
      addOnce(nbr[s], seenNbr, s + "\u0001" + t, t);
      addOnce(nbr[t], seenNbr, t + "\u0001" + s, s);
      if (s !== t) { outdeg[s]++; indeg[t]++; }
    });
    function bfs(starts) {
      var queue = starts.slice();
      starts.forEach(function (n) { rank[n] = rank[n] || 0; });
      for (var q = 0; q < queue.length; q++) {
        var n = queue[q];
        order.push(n);
        out[n].forEach(function (m) {
          if (rank[m] === undefined) { rank[m] = rank[n] + 1; queue.push(m); }
        });
      }
    }
    bfs(ids.filter(function (n) { return indeg[n] === 0; }));
    // What no source reaches (cycles): start from the busiest publisher left.
    var rest = ids.filter(function (n) { return rank[n] === undefined; })
      .sort(function (a, b) { return outdeg[b] - outdeg[a]; });
    rest.forEach(function (n) { if (rank[n] === undefined) { rank[n] = 0; bfs([n]); } });
    var columns = [];
    order.forEach(function (n) { (columns[rank[n]] = columns[rank[n]] || []).push(n); });
    var y = {}, bary = {};
    columns.forEach(function (col) { col.forEach(function (n, i) { y[n] = i; }); });
    // Two sweeps of barycentre ordering reduce crossings.
    for (var sweep = 0; sweep < 2; sweep++) {
      columns.forEach(function (col) {
        col.forEach(function (n) {
          var sum = 0, k = 0;
          nbr[n].forEach(function (m) { if (rank[m] !== rank[n]) { sum += y[m]; k++; } });
          bary[n] = k ? sum / k : y[n];
        });
        col.sort(function (a, b) { return bary[a] - bary[b]; });
        col.forEach(function (n, i) { y[n] = i; });
      });
    }
    // A rank taller than the screen wraps into several narrower columns.
    var maxRows = Math.max(12, Math.ceil(Math.sqrt(ids.length) * 1.5));
    var positions = {}, x = 0;
    columns.forEach(function (col) {
      if (!col) { return; }
      var parts = Math.ceil(col.length / maxRows);
      col.forEach(function (n, i) {
        var part = Math.floor(i / maxRows), row = i % maxRows;
        var rows = Math.min(maxRows, col.length - part * maxRows);
        positions[n] = { x: (x + part) * 200, y: (row - rows / 2) * 54 + (part % 2) * 27 };
      });
      x += parts + 0.4;
    });
    return positions;
  }
  // The zoom and pan that fit nodes placed at `positions` (their boxes: data.w wide, 46 high
  // at most) in a `width` x `height` view with `padding` around: what cy.fit gives once the
  // graph is drawn, known before it exists (a large map's edges are straight lines between
  // node centres and its labels show only when zoomed in, so the node boxes bound it).
  function fitViewport(items, positions, width, height, padding, minZoom, maxZoom) {
    var x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
    items.forEach(function (it) {
      var p = it.group === "nodes" && positions[it.data.id];
      if (!p) { return; }
      var w = (it.data.w || 90) / 2 + 1, h = 46 / 2 + 1;
      x1 = Math.min(x1, p.x - w); x2 = Math.max(x2, p.x + w);
      y1 = Math.min(y1, p.y - h); y2 = Math.max(y2, p.y + h);
    });
    if (!(x2 > x1) || !(y2 > y1) || width <= 0 || height <= 0) { return null; }
    var zoom = Math.min((width - 2 * padding) / (x2 - x1), (height - 2 * padding) / (y2 - y1));
    zoom = Math.max(minZoom, Math.min(maxZoom, zoom));
    return { zoom: zoom, pan: { x: (width - zoom * (x1 + x2)) / 2, y: (height - zoom * (y1 + y2)) / 2 } };
  }
  function elementsOf(cy) {
    return cy.nodes().map(function (n) { return { group: "nodes", data: { id: n.id() } }; })
      .concat(cy.edges().map(function (e) { return { group: "edges", data: { source: e.source().id(), target: e.target().id() } }; }));
  }
  function fastLayered(cy, fit) {
    return { name: "preset", positions: layeredPositions(elementsOf(cy)), fit: fit, padding: 30, animate: false };
  }
  // Whether element data (nodes and edges as Cytoscape's JSON) is past the dagre size.
  function large(items) {
    var nodes = 0, edges = 0;
    items.forEach(function (it) { if (it.group === "nodes") { nodes++; } else { edges++; } });
    return nodes > DAGRE_MAX_NODES || edges > DAGRE_MAX_EDGES;
  }
  function small(cy) { return cy.nodes().length <= DAGRE_MAX_NODES && cy.edges().length <= DAGRE_MAX_EDGES; }
  function layoutFor(cy, fit) {
    if (!small(cy)) { return fastLayered(cy, fit); }
    // Services joined by dependencies carry the destination's name on each edge: room for it.
    var labelled = cy.edges("[kind = 'dependency']").nonempty();
    return { name: typeof cytoscapeDagre === "function" ? "dagre" : "breadthfirst", rankDir: "LR",
      nodeSep: 28, rankSep: labelled ? 220 : 90, edgeSep: 10, padding: 30, directed: true, fit: fit, animate: false };
  }

  window.switchyardLayout = { route: route, hits: hits, layoutFor: layoutFor, small: small, large: large,
    layeredPositions: layeredPositions, fitViewport: fitViewport };
})();
