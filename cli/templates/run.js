// The run page: draws the figure, shows the decision behind a clicked marker or trade,
// and sorts the trades table. Text from the run (reasons, prompts, answers) goes into the
// page through textContent only: it is shown, never interpreted.
(function () {
  // Read on first use: a long run's panel data need not be parsed for the page to open.
  var panelData = null;
  function data() {
    return panelData || (panelData = JSON.parse(document.getElementById("panel-data").textContent));
  }
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
    return card.fills || [];
  }

  // Shows marker `index` (of panel.markers) with the card of its decision and its fill.
  function show(index) {
    var panel = data();
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
      ["trade", m.trade === undefined ? "" : "#" + (m.trade + 1)]
    ]));
    var card = m.card === undefined ? null : panel.cards[m.card];
    if (!card) {
      target.appendChild(el("p", "No decision behind it in this run's events.", "hint"));
    } else {
      target.appendChild(el("h3", "Decision (cycle " + card.cycle + ")"));
      target.appendChild(fields([
        ["provider", panel.provider.provider], ["model", panel.provider.model], ["params", panel.provider.params],
        ["action", card.action], ["size", card.size_pct], ["confidence", card.confidence],
        ["reason", card.reason], ["parse", card.parse_status], ["parse error", card.parse_error],
        ["latency µs", card.latency_us], ["tokens", card.tokens],
        ["tick price", card.price], ["seqs", card.seqs[0] + " to " + card.seqs[1]]
      ]));
      if (card.prompt) target.appendChild(folded("prompt", card.prompt));
      if (card.raw_output) target.appendChild(folded("raw answer", card.raw_output));
      target.appendChild(el("h3", "Risk verdict"));
      target.appendChild(fields([["verdict", card.verdict || "none"], ["why", card.verdict_reason], ["seq", card.verdict_seq || ""]]));
      if (card.checks) {
        target.appendChild(table(["check", "value", "limit", ""], card.checks.map(function (c) {
          return [c[0], c[1], c[2], el("td", c[3] ? "pass" : "FAIL", c[3] ? "passed" : "failed")];
        })));
      }
      if (card.orders) {
        target.appendChild(el("h3", "Orders"));
        target.appendChild(table(["seq", "order", "side", "type", "qty", "unit", "status", "exit"], card.orders));
      }
    }
    var fillCard = m.fill_card === undefined ? null : panel.cards[m.fill_card];
    var fills = fillCard ? fillsOf(fillCard) : [];
    if (fills.length) {
      target.appendChild(el("h3", "Fills (cycle " + fillCard.cycle + ")"));
      target.appendChild(table(["seq", "order", "side", "qty", "price", "fee", "liquidity"], fills));
    }
    window.ledgerReport.shown = index;
  }

  var NUMBER = /^-?[0-9]+(\.[0-9]+)?$/;
  var PAGE = 200;

  // The trades table: rows from #trades-data, PAGE at a time ("show more" adds more); a
  // click on a header sorts every row by that column (as numbers where both are), a click
  // on a row shows its entry's decision.
  function tradesTable(t) {
    var rows = JSON.parse(document.getElementById("trades-data").textContent);
    var order = rows.map(function (_, i) { return i; });
    var shown = 0;
    var body = t.tBodies[0], more = document.getElementById("more-trades"), count = document.getElementById("trades-shown");
    function render(upTo) {
      body.textContent = "";
      shown = Math.min(upTo, rows.length);
      for (var k = 0; k < shown; k++) {
        var tr = el("tr");
        tr.dataset.row = order[k];
        rows[order[k]].forEach(function (cell) { tr.appendChild(el("td", cell)); });
        body.appendChild(tr);
      }
      more.hidden = shown >= rows.length;
      count.textContent = shown + " of " + rows.length + " trades";
    }
    var headers = t.querySelectorAll("th");
    headers.forEach(function (th, column) {
      th.addEventListener("click", function () {
        var up = th.dataset.order !== "up";
        headers.forEach(function (h) { delete h.dataset.order; });
        th.dataset.order = up ? "up" : "down";
        order.sort(function (a, b) {
          var x = rows[a][column], y = rows[b][column];
          var c = NUMBER.test(x) && NUMBER.test(y) ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
          return up ? c : -c;
        });
        render(Math.max(shown, PAGE));
      });
    });
    more.addEventListener("click", function () { render(shown + PAGE * 5); });
    body.addEventListener("click", function (e) {
      var row = e.target.closest("tr");
      if (!row || row.dataset.row === undefined) return;
      var trade = Number(row.dataset.row), markers = data().markers;
      t.querySelectorAll("tr.chosen").forEach(function (r) { r.classList.remove("chosen"); });
      row.classList.add("chosen");
      var entry = markers.findIndex(function (m) { return m.trade === trade && m.kind === "entry"; });
      show(entry >= 0 ? entry : markers.findIndex(function (m) { return m.trade === trade; }));
    });
    render(PAGE);
  }

  window.ledgerReport.show = show;
  tradesTable(document.getElementById("trades"));
  ledgerDraw().then(function (chart) {
    chart.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      if (point && point.customdata !== undefined) show(point.customdata);
    });
  });
})();
