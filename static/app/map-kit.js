// Shared helpers of the map's scripts: DOM building (text only), number formats, and the
// figures each node shows (rate, error ratio, broker depth or lag) computed from
// /api/topology. Names come from span data: they are only ever set as text.
(function () {
  "use strict";
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
    r = r || 0;
    if (r >= 10) { return r.toFixed(0) + "/s"; }
    if (r >= 0.1) { return r.toFixed(2) + "/s"; }
    return (r * 60).toFixed(2) + "/min";
  }
  function percent(ratio) {
    if (ratio <= 0) { return "0%"; }
    if (ratio < 0.001) { return "<0.1%"; }
    return (ratio < 0.1 ? (ratio * 100).toFixed(1) : (ratio * 100).toFixed(0)) + "%";
  }
  // Theme colours, read once per theme (every node's ring asks for three).
  var cssTheme = null, cssKept = {};
  function css(name) {
    var theme = document.documentElement.getAttribute("data-theme");
    if (theme !== cssTheme) { cssTheme = theme; cssKept = {}; }
    if (!cssKept[name]) {
      // Not kept while unset (a style sheet still loading).
      cssKept[name] = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    }
    return cssKept[name] || "#888";
  }

  // Per node: the rate it shows (what comes in; what goes out for a node nothing feeds), its
  // error ratio (a service's span errors, else the errors of its edges) and the broker's depth
  // or lag.
  function nodeFigures(topo) {
    var by = {};
    topo.nodes.forEach(function (n) { by[n.id] = { in: 0, out: 0, count: 0, errors: 0 }; });
    topo.edges.forEach(function (e) {
      var a = by[e.from], b = by[e.to];
      if (a) { a.out += e.rate_per_sec || 0; a.count += e.count || 0; a.errors += e.errors || 0; }
      if (b) { b.in += e.rate_per_sec || 0; b.count += e.count || 0; b.errors += e.errors || 0; }
    });
    var out = {};
    topo.nodes.forEach(function (n) {
      var f = by[n.id], spans = n.spans || 0;
      var ratio = spans > 0 ? (n.span_errors || 0) / spans : (f.count > 0 ? f.errors / f.count : 0);
      var b = n.broker || {};
      var backlog = b.depth != null ? "depth " + b.depth : (b.pending != null ? "lag " + b.pending : "");
      out[n.id] = {
        rate: f.in > 0 ? f.in : f.out, inbound: f.in > 0, traffic: f.count > 0 || spans > 0,
        ratio: Math.min(1, Math.max(0, ratio)), backlog: backlog
      };
    });
    return out;
  }
  function figuresText(f) {
    var parts = [rate(f.rate)];
    if (f.ratio > 0) { parts.push(percent(f.ratio) + " err"); }
    if (f.backlog) { parts.push(f.backlog); }
    return parts.join(" \u00b7 ");
  }

  // The error-ratio ring drawn on a node (an SVG image): green for what went through, red for
  // the errors' share, grey without traffic. One image per percent step and theme.
  var rings = {};
  function ring(f) {
    var ok = css("--consume"), bad = css("--error"), none = css("--border");
    var step = f.traffic ? Math.round(f.ratio * 100) : -1;
    if (f.traffic && f.ratio > 0 && step === 0) { step = 1; }
    var key = ok + bad + none + step;
    if (rings[key]) { return rings[key]; }
    var r = 7, c = 2 * Math.PI * r, parts;
    if (step < 0) {
      parts = '<circle cx="10" cy="10" r="7" fill="none" stroke="' + none + '" stroke-width="4"/>';
    } else {
      var errLen = c * step / 100;
      parts = '<circle cx="10" cy="10" r="7" fill="none" stroke="' + ok + '" stroke-width="4"/>' +
        (errLen > 0 ? '<circle cx="10" cy="10" r="7" fill="none" stroke="' + bad + '" stroke-width="4" ' +
          'stroke-dasharray="' + errLen.toFixed(2) + " " + (c - errLen + 0.01).toFixed(2) + '" transform="rotate(-90 10 10)"/>' : "");
    }
    var svg = '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" viewBox="0 0 20 20">' + parts + "</svg>";
    rings[key] = "data:image/svg+xml;utf8," + encodeURIComponent(svg);
    return rings[key];
  }

  // What an action/response finding's pair is: who asks (publishes the request and consumes
  // the reply), who answers, and each broker leg's p99 (publish to consume, each way; their
  // sum is no round trip: /api/round-trips measures that per request/reply pair).
  var REPLY_NAME = /(reply|replies|response|result|callback|answer|_inbox|amq\.rabbitmq\.reply-to|^\(temporary\)$)/i;
  function exchange(topo, f, name) {
    var a = f.nodes[0], b = f.nodes[1], ab = f.nodes[2], ba = f.nodes[3];
    var askerIsA = !(REPLY_NAME.test(name(ab)) && !REPLY_NAME.test(name(ba)));
    var asker = askerIsA ? a : b, answerer = askerIsA ? b : a;
    function leg(from, to, via) {
      var d = topo.dependencies.filter(function (x) { return x.from === from && x.to === to && x.via === via; })[0];
      return d && d.latency ? d.latency.p99_micros : null;
    }
    var there = askerIsA ? leg(a, b, ab) : leg(b, a, ba), back = askerIsA ? leg(b, a, ba) : leg(a, b, ab);
    return { asker: asker, answerer: answerer, request: askerIsA ? ab : ba, reply: askerIsA ? ba : ab,
      requestP99: there, replyP99: back };
  }

  window.switchyardKit = {
    el: el, truncate: truncate, micros: micros, rate: rate, percent: percent, css: css,
    nodeFigures: nodeFigures, figuresText: figuresText, ring: ring, exchange: exchange
  };
})();
