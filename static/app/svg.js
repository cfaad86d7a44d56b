// The map as a standalone SVG file, drawn by our own code from the laid-out Cytoscape graph:
// node boxes at their positions, edges as straight lines with an arrow, labels as escaped
// text. Every name comes from span data, so each one goes through esc().
(function () {
  "use strict";
  // XML 1.0 forbids the C0 controls but tab, newline and carriage return (even as references):
  // they become their Unicode control pictures (U+2400..U+241F, DEL U+2421), as in the DOT
  // export, so a name holding one still gives a file that parses.
  function esc(text) {
    return String(text == null ? "" : text)
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, function (c) {
        var code = c.charCodeAt(0);
        return String.fromCharCode(code === 0x7f ? 0x2421 : 0x2400 + code);
      })
      .replace(/[&<>"']/g, function (c) {
        return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c];
      });
  }
  function num(x) { return (Math.round(x * 10) / 10).toString(); }
  function colour(value, fallback) {
    // Only plain colour values reach the file (no url(), no quotes).
    return /^(#[0-9a-fA-F]{3,8}|rgba?\([0-9., ]+\)|[a-z]+)$/.test(value || "") ? value : fallback;
  }

  // Returns the SVG text of the graph `cy` on a background `bg`.
  function mapSvg(cy, bg) {
    var box = cy.elements().boundingBox({ includeLabels: true });
    var pad = 20;
    var w = Math.max(box.w, 1) + 2 * pad, h = Math.max(box.h, 1) + 2 * pad;
    var dx = pad - box.x1, dy = pad - box.y1;
    var out = [];
    out.push('<svg xmlns="http://www.w3.org/2000/svg" width="' + num(w) + '" height="' + num(h) +
      '" viewBox="0 0 ' + num(w) + " " + num(h) + '" font-family="sans-serif" font-size="11">');
    out.push("<title>Switchyard topology</title>");
    out.push('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" ' +
      'markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>');
    out.push('<rect width="100%" height="100%" fill="' + esc(colour(bg, "#ffffff")) + '"/>');
    cy.edges().forEach(function (e) {
      var s = e.sourceEndpoint(), t = e.targetEndpoint();
      var dash = e.data("kind") === "call" ? ' stroke-dasharray="2,3"' :
        e.data("kind") === "route" ? ' stroke-dasharray="6,4"' : "";
      out.push('<line class="edge" data-source="' + esc(e.data("source")) + '" data-target="' +
        esc(e.data("target")) + '" x1="' + num(s.x + dx) + '" y1="' + num(s.y + dy) + '" x2="' +
        num(t.x + dx) + '" y2="' + num(t.y + dy) + '" stroke="' +
        esc(colour(e.style("line-color"), "#888888")) + '" stroke-width="' +
        num(parseFloat(e.style("width")) || 1) + '"' + dash + ' marker-end="url(#arrow)">' +
        "<title>" + esc(e.data("source") + " \u2192 " + e.data("target")) + "</title></line>");
    });
    cy.nodes().forEach(function (n) {
      var p = n.position(), nw = n.width(), nh = n.height();
      var label = n.data("label") || n.data("name") || n.id();
      out.push('<g class="node" data-id="' + esc(n.id()) + '"><title>' + esc(n.data("name") || n.id()) + "</title>" +
        '<rect x="' + num(p.x - nw / 2 + dx) + '" y="' + num(p.y - nh / 2 + dy) + '" width="' + num(nw) +
        '" height="' + num(nh) + '" rx="6" fill="' + esc(colour(n.style("background-color"), "#dddddd")) +
        '" stroke="' + esc(colour(n.style("border-color"), "#666666")) + '"/>' +
        '<text x="' + num(p.x + dx) + '" y="' + num(p.y + dy + 4) + '" text-anchor="middle" fill="' +
        esc(colour(n.style("color"), "#111111")) + '">' + esc(label) + "</text></g>");
    });
    out.push("</svg>");
    return out.join("\n");
  }

  window.switchyardSvg = { mapSvg: mapSvg, esc: esc };
})();
