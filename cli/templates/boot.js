// Loaded first: records script errors (the browser test reads them) and draws the
// figure in #figure-data with plotly.js once it is loaded.
window.ledgerReport = { errors: [], ready: false };
window.addEventListener("error", function (e) { window.ledgerReport.errors.push(String(e.message)); });
function ledgerDraw() {
  var started = performance.now();
  var figure = JSON.parse(document.getElementById("figure-data").textContent);
  var config = Object.assign({ responsive: true, displaylogo: false, scrollZoom: true }, figure.config || {});
  return Plotly.newPlot("chart", figure.data, figure.layout, config).then(function (chart) {
    window.ledgerReport.draw_ms = performance.now() - started;
    window.ledgerReport.ready = true;
    return chart;
  });
}
