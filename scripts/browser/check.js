// Opens a visual report in headless chromium (playwright-core, the system's chromium) and
// prints one JSON object: script errors, the figure's traces (name, type, points), and,
// for a run report, what the decision panel shows after a real mouse click on the first
// marker named by MARKER_TRACE (a legend name such as "long entry").
// Usage: node check.js CHROMIUM PLAYWRIGHT_CORE_DIR REPORT.html SCREENSHOT.png [MARKER_TRACE]
"use strict";
const path = require("path");
const fs = require("fs");
const os = require("os");
const [chromium, playwrightDir, report, screenshot, markerTrace] = process.argv.slice(2);
const { chromium: browserType } = require(path.resolve(playwrightDir));

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "ledger-chromium-"));
  const context = await browserType.launchPersistentContext(profile, {
    executablePath: chromium,
    headless: true,
    viewport: { width: 1600, height: 1200 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const out = { errors: [], requests: [] };
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (e) => out.errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") out.errors.push(m.text()); });
    // The file is all there is: any other request (a CDN, an image a reason smuggled
    // in) is recorded and refused.
    const url = "file://" + path.resolve(report);
    await page.route("**/*", (route) => {
      if (route.request().url() === url) return route.continue();
      out.requests.push(route.request().url());
      return route.abort();
    });
    const started = Date.now();
    await page.goto(url, { waitUntil: "load" });
    await page.waitForFunction(() => window.ledgerReport && window.ledgerReport.ready, null, { timeout: 60000 });
    out.load_ms = Date.now() - started;
    out.timing = await page.evaluate(() => {
      const n = performance.getEntriesByType("navigation")[0];
      return { dom_content_loaded_ms: n.domContentLoadedEventEnd, load_event_ms: n.loadEventEnd, draw_ms: window.ledgerReport.draw_ms };
    });
    out.page_errors = await page.evaluate(() => window.ledgerReport.errors);
    out.traces = await page.evaluate(() =>
      document.getElementById("chart").data.map((t) => ({
        name: t.name, type: t.type || "scatter", points: (t.x || []).length,
        customdata: t.customdata ? Array.from(t.customdata) : null,
      })));
    out.trade_rows = await page.evaluate(() => document.querySelectorAll("#trades tbody tr").length);
    if (markerTrace) {
      const index = out.traces.findIndex((t) => t.name === markerTrace);
      if (index < 0) throw new Error("no trace " + markerTrace);
      // The point of that trace farthest from any other marker, where plotly drew it:
      // click there with the mouse.
      const box = await page.evaluate((index) => {
        const gd = document.getElementById("chart");
        const r = gd.getBoundingClientRect();
        const xa = gd._fullLayout.xaxis;
        const at = (trace, i) => {
          const ya = gd._fullLayout["yaxis" + trace.yaxis.slice(1)];
          return { x: r.left + xa._offset + xa.d2p(trace.x[i]), y: r.top + ya._offset + ya.d2p(trace.y[i]) };
        };
        const others = [];
        gd._fullData.forEach((t, n) => {
          if (!t.customdata) return;
          for (let i = 0; i < t.x.length; i++) others.push({ n, i, p: at(t, i) });
        });
        const trace = gd._fullData[index];
        let best = null;
        for (let i = 0; i < trace.x.length; i++) {
          const p = at(trace, i);
          const gap = Math.min(...others.filter((o) => o.n !== index || o.i !== i)
            .map((o) => Math.hypot(o.p.x - p.x, o.p.y - p.y)), 1e9);
          if (!best || gap > best.gap) best = { x: p.x, y: p.y, gap, expected: trace.customdata[i] };
        }
        return best;
      }, index);
      out.expected_marker = box.expected;
      await page.mouse.move(box.x, box.y);
      await page.mouse.click(box.x, box.y);
      await page.waitForFunction(() => window.ledgerReport.shown !== undefined, null, { timeout: 10000 });
      out.clicked_marker = await page.evaluate(() => window.ledgerReport.shown);
      out.panel_text = await page.evaluate(() => document.getElementById("decision").innerText);
      out.panel_elements = await page.evaluate(() => document.querySelectorAll("#decision script, #decision img, #decision b").length);
      out.injected = await page.evaluate(() => window.pwned === undefined ? null : String(window.pwned));
      // A click on the trades table's first row shows that trade's entry.
      if (out.trade_rows > 0) {
        await page.click("#trades tbody tr");
        out.row_click_text = await page.evaluate(() => document.getElementById("decision").innerText);
      }
    }
    await page.screenshot({ path: screenshot, fullPage: false });
  } catch (e) {
    out.failure = String(e && e.stack || e);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})();
