// The run page: draws the figure, shows the decision behind a clicked marker or trade,
// and sorts the trades table. Text from the run (reasons, prompts, answers) goes into the
// page through textContent only: it is shown, never interpreted.
(function () {
  var panel = JSON.parse(document.getElementById("panel-data").textContent);
  var target = document.getElementById("decision");

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function fields(pairs) {
    var dl = el("dl");
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === "") return;
      dl.appendChild(el("dt", p[0]));
      dl.appendChild(el("dd", p[1]));
    });
    return dl;
  }
  function folded(title, text) {
    var details = el("details");
    details.appendChild(el("summary", title));
    details.appendChild(el("pre", text));
    return details;
  }
  function table(header, rows) {
    var t = el("table"), head = el("tr");
    header.forEach(function (h) { head.appendChild(el("th", h)); });
    t.appendChild(head);
    rows.forEach(function (r) {
      var tr = el("tr");
      r.forEach(function (c) { tr.appendChild(typeof c === "object" && c ? c : el("td", c)); });
      t.appendChild(tr);
    });
    return t;
  }
  function fillsOf(card) {
    return (card.fills || []).map(function (f) {
      return [f.seq, f.client_order_id, f.side, f.qty, f.price, f.fee, f.liquidity];
    });
  }

  // Shows marker `index` (of panel.markers) with the card of its decision and its fill.
  function show(index) {
    var m = panel.markers[index];
    if (!m) return;
    target.textContent = "";
    var what = m.kind.replace("_", " ") + ": " + m.side + " " + m.size + (m.kind === "denied" ? " of equity" : " @ " + m.price);
    target.appendChild(el("h3", what, "marker"));
    target.appendChild(fields([
      ["time", new Date(m.ms).toISOString()],
      ["instrument", m.instrument],
      [m.kind === "denied" ? "verdict seq" : "fill seq", m.seq],
      ["exit reason", m.exit_reason],
      ["trade", m.trade === null ? "" : "#" + (m.trade + 1)]
    ]));
    var card = m.card === null ? null : panel.cards[m.card];
    if (!card) {
      target.appendChild(el("p", "No decision behind it in this run's events.", "hint"));
    } else {
      target.appendChild(el("h3", "Decision (cycle " + card.cycle_id + ")"));
      target.appendChild(fields([
        ["provider", card.provider], ["model", card.model], ["params", card.params],
        ["action", card.action], ["size", card.size_pct], ["confidence", card.confidence],
        ["reason", card.decision_reason], ["parse", card.parse_status], ["parse error", card.parse_error],
        ["latency µs", card.latency_us || ""], ["tokens in/out", card.tokens_in ? card.tokens_in + " / " + card.tokens_out : ""],
        ["tick price", card.price], ["seqs", card.first_seq + " to " + card.last_seq]
      ]));
      if (card.prompt) target.appendChild(folded("prompt", card.prompt));
      if (card.raw_output) target.appendChild(folded("raw answer", card.raw_output));
      target.appendChild(el("h3", "Risk verdict"));
      target.appendChild(fields([["verdict", card.verdict || "none"], ["why", card.verdict_reason], ["seq", card.verdict_seq || ""]]));
      if (card.checks && card.checks.length) {
        target.appendChild(table(["check", "value", "limit", ""], card.checks.map(function (c) {
          return [c.id, c.value, c.limit, el("td", c.passed ? "pass" : "FAIL", c.passed ? "passed" : "failed")];
        })));
      }
      if (card.orders && card.orders.length) {
        target.appendChild(el("h3", "Orders"));
        target.appendChild(table(["seq", "order", "side", "type", "qty", "unit", "status", "exit"], card.orders.map(function (o) {
          return [o.seq, o.client_order_id, o.side, o.order_type, o.qty, o.qty_unit, o.status, o.exit_kind || ""];
        })));
      }
    }
    var fillCard = m.fill_card === null ? null : panel.cards[m.fill_card];
    var fills = fillCard ? fillsOf(fillCard) : [];
    if (fills.length) {
      target.appendChild(el("h3", "Fills (cycle " + fillCard.cycle_id + ")"));
      target.appendChild(table(["seq", "order", "side", "qty", "price", "fee", "liquidity"], fills));
    }
    window.ledgerReport.shown = index;
  }

  // The trades table: a click on a header sorts by it, on a row shows its entry's decision.
  function sortable(t) {
    var headers = t.querySelectorAll("th");
    headers.forEach(function (th, column) {
      th.addEventListener("click", function () {
        var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var up = th.dataset.order !== "up";
        headers.forEach(function (h) { delete h.dataset.order; });
        th.dataset.order = up ? "up" : "down";
        rows.sort(function (a, b) {
          var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = !isNaN(nx) && !isNaN(ny) && String(nx) !== "NaN" && /^-?[0-9.e+-]+$/.test(x) && /^-?[0-9.e+-]+$/.test(y) ? nx - ny : x.localeCompare(y);
          return up ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
    t.tBodies[0].addEventListener("click", function (e) {
      var row = e.target.closest("tr");
      if (!row || row.dataset.row === undefined) return;
      var trade = Number(row.dataset.row);
      t.querySelectorAll("tr.chosen").forEach(function (r) { r.classList.remove("chosen"); });
      row.classList.add("chosen");
      var entry = panel.markers.findIndex(function (m) { return m.trade === trade && m.kind === "entry"; });
      show(entry >= 0 ? entry : panel.markers.findIndex(function (m) { return m.trade === trade; }));
    });
  }

  window.ledgerReport.show = show;
  var trades = document.getElementById("trades");
  if (trades) sortable(trades);
  ledgerDraw().then(function (chart) {
    chart.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      if (point && point.customdata !== undefined) show(point.customdata);
    });
  });
})();
