// Findings drawn on the map: a badge per pattern on each node a finding involves, as buttons
// in a layer over the canvas that follows pan and zoom. Clicking one selects and frames the
// finding's nodes (map.js decides what that shows in the side panel).
(function () {
  "use strict";
  var kit = window.switchyardKit;
  var SHORT = { broadcast: "broadcast", work_queue: "work queue", action_response: "action/response",
    dead_end: "dead end", idle_subscriber: "idle subscriber", cycle: "cycle", backlog: "backlog",
    lag_growing: "lag growing", dead_letter: "dead letter", declared_unused: "declared, unused",
    undeclared_flow: "undeclared flow", declared_silent_publisher: "silent publisher" };
  var TINY = { broadcast: "B", work_queue: "W", action_response: "A/R", dead_end: "D", idle_subscriber: "I",
    cycle: "C", backlog: "Q", lag_growing: "L", dead_letter: "DL", declared_unused: "DU",
    undeclared_flow: "UF", declared_silent_publisher: "SP" };
  // Below this zoom a badge shows its letter only (its title keeps the whole text).
  var COMPACT_ZOOM = 0.55;

  function Badges(cy, layer, onPick) {
    this.cy = cy;
    this.layer = layer;
    this.onPick = onPick;
    this.groups = [];
    this.frame = 0;
    var self = this;
    cy.on("viewport position", function () { self.schedule(); });
    cy.on("resize", function () { self.schedule(); });
  }

  // One group of badges per node: a badge per pattern, the first finding of that pattern
  // involving the node is the one a click picks.
  Badges.prototype.set = function (findings, describe) {
    var cy = this.cy, per = {}, order = [];
    findings.forEach(function (f, i) {
      f.nodes.forEach(function (id) {
        if (cy.getElementById(id).empty()) { return; }
        if (!per[id]) { per[id] = {}; order.push(id); }
        if (per[id][f.pattern] == null) { per[id][f.pattern] = i; }
      });
    });
    var self = this;
    this.groups = order.map(function (id) {
      var box = kit.el("div", { "class": "map-badge-group", "data-node-id": id });
      Object.keys(per[id]).forEach(function (pattern) {
        var i = per[id][pattern], f = findings[i];
        var b = kit.el("button", { type: "button", "class": "map-badge pattern-" + pattern,
          "data-finding": String(i), "data-pattern": pattern, title: describe(f) });
        b.appendChild(kit.el("span", { "class": "long", text: SHORT[pattern] || pattern }));
        b.appendChild(kit.el("span", { "class": "short", "aria-hidden": "true", text: TINY[pattern] || "?" }));
        b.addEventListener("click", function (ev) { ev.stopPropagation(); self.onPick(i, id); });
        box.appendChild(b);
      });
      return { id: id, box: box };
    });
    this.layer.replaceChildren.apply(this.layer, this.groups.map(function (g) { return g.box; }));
    this.dim(this.keep || null);
    this.place();
  };

  // Dims the badges of nodes out of `keep` (an id -> true map), or none when `keep` is null.
  Badges.prototype.dim = function (keep) {
    this.keep = keep;
    this.groups.forEach(function (g) { g.box.classList.toggle("dim", !!keep && !keep[g.id]); });
  };

  Badges.prototype.schedule = function () {
    var self = this;
    if (this.frame) { return; }
    this.frame = requestAnimationFrame(function () { self.frame = 0; self.place(); });
  };

  // Each group sits on its node's top-left corner; groups off screen are hidden.
  Badges.prototype.place = function () {
    var cy = this.cy, w = cy.width(), h = cy.height(), compact = cy.zoom() < COMPACT_ZOOM;
    this.layer.classList.toggle("compact", compact);
    this.groups.forEach(function (g) {
      var n = cy.getElementById(g.id);
      if (n.empty() || !n.visible()) { g.box.hidden = true; return; }
      var p = n.renderedPosition(), rw = n.renderedOuterWidth() / 2, rh = n.renderedOuterHeight() / 2;
      var x = p.x - rw, y = p.y - rh - 18;
      var off = x > w || y > h || p.x + rw < 0 || p.y + rh < 0;
      g.box.hidden = off;
      if (!off) { g.box.style.transform = "translate(" + Math.round(x) + "px," + Math.round(y) + "px)"; }
    });
  };

  window.switchyardBadges = { Badges: Badges, SHORT: SHORT };
})();
