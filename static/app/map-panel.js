// Sections of the map's side panel that load something: a node's reach (what it depends on
// and what depends on it, to any depth), what breaks if it goes down, its recent traces and
// an embedded-broker destination's live state. Each returns { node, refresh }; `ctx` gives
// the current window's query, the node names and a way to select a node.
(function () {
  "use strict";
  var kit = window.switchyardKit, el = kit.el;

  function loading(text) { return el("p", { "class": "muted", text: text }); }
  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.json();
    });
  }
  function depthChip(d) { return el("span", { "class": "depth-chip", title: d + (d === 1 ? " hop" : " hops") + " away", text: "d" + d }); }

  // A list of reached nodes, nearest first, each with its depth.
  function reachedList(cls, items, ctx) {
    return el("ul", { "class": "detail-list reach-list " + cls }, items.map(function (r) {
      return el("li", { "data-node-id": r.id, "data-depth": String(r.depth) }, [
        ctx.button(r.id), el("span", { "class": "muted" }, [r.kind + " ", depthChip(r.depth)])
      ]);
    }));
  }

  // Reach: highlights the node's suppliers (upstream) and dependents (downstream) on the map.
  function reach(id, ctx) {
    var box = el("div", { "class": "reach", id: "reach" }, [loading("Loading reach\u2026")]);
    function load() {
      return getJson("/api/reach?node=" + encodeURIComponent(id) + "&" + ctx.windowQuery()).then(function (r) {
        ctx.highlight(id, r);
        box.replaceChildren(
          el("h3", { text: "Depends on (" + r.depends_on.length + ")" }),
          r.depends_on.length ? reachedList("upstream", r.depends_on, ctx) : el("p", { "class": "muted", text: "Nothing: no input reaches it." }),
          el("h3", { text: "Depended on by (" + r.dependents.length + ")" }),
          r.dependents.length ? reachedList("downstream", r.dependents, ctx) : el("p", { "class": "muted", text: "Nothing depends on it." })
        );
      }).catch(function () { box.replaceChildren(el("p", { "class": "muted", text: "Could not load the reach." })); });
    }
    load();
    return { node: el("section", { "class": "panel-part" }, [el("h3", { "class": "section-title", text: "Reach through brokers" }), box]),
      refresh: function () { if (box.isConnected) { load(); } } };
  }

  // What breaks if the node goes down: services that stop receiving events, destinations that
  // pile up, destinations that fall silent.
  function impact(id, ctx) {
    var box = el("div", { "class": "impact", id: "impact" }, [loading("Loading the blast radius\u2026")]);
    function load() {
      return getJson("/api/impact?node=" + encodeURIComponent(id) + "&" + ctx.windowQuery()).then(function (r) {
        var parts = [];
        parts.push(el("h3", { text: "Stop receiving events (" + r.services.length + ")" }));
        parts.push(r.services.length ? el("ul", { "class": "detail-list impact-services" }, r.services.map(function (s) {
          var via = s.via.map(ctx.name).join(", ");
          return el("li", { "data-node-id": s.id, "data-all": String(s.all_inputs) }, [
            ctx.button(s.id),
            el("span", { "class": "muted", title: "loses " + kit.rate(s.rate_per_sec) + " from " + via, text: (s.all_inputs ? "all inputs" : "via " + kit.truncate(via, 24)) + " " }, [depthChip(s.depth)])
          ]);
        })) : el("p", { "class": "muted", text: "No service loses its input." }));
        parts.push(el("h3", { text: "Start piling up (" + r.destinations.length + ")" }));
        parts.push(r.destinations.length ? el("ul", { "class": "detail-list impact-destinations" }, r.destinations.map(function (d) {
          return el("li", { "data-node-id": d.id }, [
            ctx.button(d.id),
            el("span", { "class": "muted", text: "+" + kit.rate(d.rate_per_sec) + (d.broker_depth != null ? ", depth " + d.broker_depth : "") + " " }, [depthChip(d.depth)])
          ]);
        })) : el("p", { "class": "muted", text: "No destination piles up." }));
        if (r.silent_destinations.length) {
          parts.push(el("h3", { text: "Fall silent (" + r.silent_destinations.length + ")" }));
          parts.push(reachedList("impact-silent", r.silent_destinations, ctx));
        }
        box.replaceChildren.apply(box, parts);
        ctx.marked(r);
      }).catch(function () { box.replaceChildren(el("p", { "class": "muted", text: "Could not load the blast radius." })); });
    }
    var button = el("button", { type: "button", "class": "btn", id: "impact-button", text: "What breaks if " + kit.truncate(ctx.name(id), 24) + " goes down?" });
    var section = el("section", { "class": "panel-part" }, [button]);
    button.addEventListener("click", function () {
      section.replaceChildren(el("h3", { "class": "section-title", text: "If " + ctx.name(id) + " goes down" }), box);
      load();
    });
    return { node: section, refresh: function () { if (box.isConnected) { load(); } } };
  }

  // The recent traces of the selected node or edge, each with its start time, duration and an
  // error marker; failing traces first when the selection has errors; links carry the window.
  function recentTraces(filter, ctx, hasErrors) {
    var list = el("ul", { "class": "detail-list recent-traces" }, [el("li", { "class": "muted", text: "Loading traces\u2026" })]);
    function get(extra) {
      return getJson("/api/traces?" + filter + "&" + ctx.windowQuery() + "&limit=8" + extra).then(function (j) { return j.traces || []; });
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
            el("a", { "class": "trace-link truncate", href: "/traces/" + encodeURIComponent(t.trace_id) + "?" + ctx.pageQuery(), title: label, text: label }),
            el("span", { "class": "muted", text: when + " \u00b7 " + kit.micros(t.duration_micros) })
          ].filter(Boolean));
        });
        list.replaceChildren.apply(list, items.length ? items : [el("li", { "class": "muted", text: "No traces in this window." })]);
      }).catch(function () { list.replaceChildren(el("li", { "class": "muted", text: "Could not load traces." })); });
    }
    load();
    return { node: el("div", {}, [el("h3", { text: "Recent traces" }), list]), refresh: function () { if (list.isConnected) { load(); } } };
  }

  // An embedded-broker destination's live state, read from the broker's own JSON: per
  // subscription of a topic its depth, in-flight and dead letters; for a stream its offsets and
  // the lag of each consumer group.
  function brokerState(name, facts) {
    var box = el("div", { "class": "broker-state" }, [loading("Loading broker state\u2026")]);
    function num(n) { return el("td", { "class": "num", text: String(n) }); }
    function table(head, rows) {
      return el("table", { "class": "broker-table" }, [
        el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", { text: h }); }))]),
        el("tbody", {}, rows)
      ]);
    }
    function load() {
      return Promise.all([getJson("/broker/subscriptions").catch(function () { return {}; }),
        getJson("/broker/streams").catch(function () { return {}; })]).then(function (both) {
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
      });
    }
    load();
    return { node: el("div", {}, [el("h3", { text: "Broker state" }), box]), refresh: function () { if (box.isConnected) { load(); } } };
  }

  // The round trip of an action/response exchange `x` (kit.exchange), per request/reply pair:
  // the asker's request publish to its consume of the reply.
  function roundTrips(x, ctx, facts) {
    var box = el("div", { "class": "round-trips", id: "round-trips" }, [loading("Measuring round trips\u2026")]);
    function load() {
      var q = "asker=" + encodeURIComponent(x.asker) + "&answerer=" + encodeURIComponent(x.answerer) +
        "&request=" + encodeURIComponent(x.request) + "&reply=" + encodeURIComponent(x.reply);
      return getJson("/api/round-trips?" + q + "&" + ctx.windowQuery()).then(function (r) {
        box.setAttribute("data-pairs", String(r.pairs));
        box.replaceChildren(r.pairs ? facts([
          ["Round trip p50", kit.micros(r.p50_micros)], ["Round trip p99", kit.micros(r.p99_micros)],
          ["Round trip max", kit.micros(r.max_micros)],
          ["Request/reply pairs", r.pairs + (r.complete ? "" : " (the newest " + r.traces_read + " traces)")]
        ]) : el("p", { "class": "muted", text: "No traced request/reply pair in this window." }));
      }).catch(function () { box.replaceChildren(el("p", { "class": "muted", text: "Could not measure the round trips." })); });
    }
    load();
    return { node: el("div", {}, [el("h3", { text: "Round trip (request sent to reply received)" }), box]),
      refresh: function () { if (box.isConnected) { load(); } } };
  }

  window.switchyardPanel = { reach: reach, impact: impact, recentTraces: recentTraces, brokerState: brokerState, roundTrips: roundTrips };
})();
