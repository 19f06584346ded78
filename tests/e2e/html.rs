//! The visual report (`report --html`, `replay --html`, `report --compare`, `sweep
//! --html`) written by the real binary and opened in headless Chromium: no script
//! errors and no request beyond the file, the charts holding a point per tick and a
//! marker per fill and per denied decision, and a real mouse click on a trade marker
//! showing its decision's reason, with a reason that is an HTML injection shown as text.
//!
//! The browser is `LEDGER_CHROMIUM` driven by playwright-core in `LEDGER_PLAYWRIGHT`
//! (both set by `scripts/test.sh`), else what `scripts/browser/setup.sh` finds or installs
//! (Debian's chromium, playwright-core from npm into target/browser). The browser tests are
//! skipped, saying why, only when it cannot be installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::harness::{small_ledger, workspace_root, Ledger};

/// Chromium and the playwright-core folder, or `None` (the tests are skipped).
fn browser() -> Option<&'static (PathBuf, PathBuf)> {
    static BROWSER: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    BROWSER
        .get_or_init(|| {
            let from_env = |name: &str| std::env::var_os(name).filter(|p| !p.is_empty()).map(PathBuf::from);
            if let (Some(chromium), Some(playwright)) = (from_env("LEDGER_CHROMIUM"), from_env("LEDGER_PLAYWRIGHT")) {
                return Some((chromium, playwright));
            }
            let output = Command::new("bash")
                .arg(workspace_root().join("scripts/browser/setup.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("bash runs");
            match output.status.code() {
                Some(0) => {
                    let text = String::from_utf8_lossy(&output.stdout);
                    let mut lines = text.lines();
                    let chromium = PathBuf::from(lines.next().expect("chromium's path"));
                    Some((chromium, PathBuf::from(lines.next().expect("playwright-core's folder"))))
                }
                Some(3) => {
                    eprintln!("browser tests skipped: chromium, node or playwright-core cannot be installed here");
                    None
                }
                other => panic!("scripts/browser/setup.sh failed ({other:?})"),
            }
        })
        .as_ref()
}

/// Opens `page` in headless Chromium (scripts/browser/check.js), clicking the most
/// isolated marker of the trace named `click` if given; its findings as JSON.
fn open(page: &Path, screenshot: &Path, click: Option<&str>) -> Option<Value> {
    let (chromium, playwright) = browser()?;
    let mut command = Command::new("node");
    command.arg(workspace_root().join("scripts/browser/check.js")).args([chromium, playwright, page, screenshot]);
    command.args(click);
    let output = command.output().expect("node runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let found: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("check.js: {text}\n{}", String::from_utf8_lossy(&output.stderr)));
    assert!(found["failure"].is_null(), "the page failed in the browser: {}", found["failure"]);
    assert_eq!(found["errors"], serde_json::json!([]), "console errors");
    assert_eq!(found["page_errors"], serde_json::json!([]), "script errors");
    assert_eq!(found["requests"], serde_json::json!([]), "the page asked for more than itself");
    Some(found)
}

/// The JSON in the page's `<script type="application/json" id="ID">` element.
fn embedded(html: &str, id: &str) -> Value {
    let start = format!("<script type=\"application/json\" id=\"{id}\">");
    let from = html.find(&start).unwrap_or_else(|| panic!("no #{id}")) + start.len();
    let to = from + html[from..].find("</script>").expect("the element ends");
    serde_json::from_str(&html[from..to]).expect("valid JSON")
}

fn trace<'a>(found: &'a Value, name: &str) -> Option<&'a Value> {
    found["traces"].as_array().expect("traces").iter().find(|t| t["name"] == name)
}

fn points(found: &Value, name: &str) -> u64 {
    trace(found, name).map_or(0, |t| t["points"].as_u64().expect("a count"))
}

/// An agent's decisions on SPY, 1998 Q1, each reason an HTML injection: a stop and a
/// target (the stop fills), a limit entry with a trailing stop, a stop on the wrong side
/// (denied), a close without a position (denied), and a short closed at the end.
const DECISIONS: &str = r#"{"ts":"1998-01-05","action":"long","size_pct":0.5,"confidence":0.8,"reason":"<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"> breakout","stop_loss":95.5,"take_profit":99}
{"ts":"1998-01-12","action":"long","size_pct":0.5,"confidence":0.8,"reason":"<b>dip</b></script><script>window.pwned=3</script>","limit_price":94.5,"trailing_stop_pct":0.02}
{"ts":"1998-01-27","action":"long","size_pct":0.5,"confidence":0.8,"reason":"late <i>","stop_loss":99}
{"ts":"1998-02-10","action":"close","size_pct":0,"confidence":0.8,"reason":"done &amp;"}
{"ts":"1998-02-17","action":"short","size_pct":0.3,"confidence":0.8,"reason":"fade <script>"}
"#;

#[test]
fn a_run_report_shows_every_tick_fill_and_denial_and_explains_a_clicked_trade() {
    let ledger = Ledger::new();
    let script = ledger.dir.path().join("decisions.jsonl");
    std::fs::write(&script, DECISIONS).unwrap();
    let file = format!("file={}", script.display());
    let page = ledger.dir.path().join("run.html");
    let data = "fixtures/spy-daily-1998-q1.csv";
    let replayed = ledger.run(&[
        "replay",
        "--data",
        data,
        "--strategy",
        "script",
        "--param",
        &file,
        "--cash",
        "10000",
        "--close-at-end",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(replayed.code, 0, "{}", replayed.stderr);
    // TC0: replay --html and report --html write the same page of the same run.
    let reported = ledger.dir.path().join("report.html");
    ledger.ok(&["report", "--run", "1", "--html", reported.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html, std::fs::read_to_string(&reported).unwrap());
    // TC1: the untrusted reasons are nowhere in the file as markup: in the JSON for the
    // page's script, `<` is escaped, so no element can end early or begin.
    assert!(!html.contains("<script>window.pwned") && !html.contains("<img src=x") && !html.contains("<b>dip"));
    assert!(html.contains(r"\u003cscript\u003ewindow.pwned=1"), "the reason is in the page, escaped");

    // What the ledger says happened, to hold the page to.
    let events: Vec<Value> =
        ledger.ok(&["events", "--run", "1", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let count = |kind: &str, pick: &dyn Fn(&Value) -> bool| {
        events.iter().filter(|e| e["payload"].get(kind).is_some_and(pick)).count() as u64
    };
    let ticks = count("MarketTick", &|_| true);
    let fills = count("OrderFilled", &|_| true);
    let denied = count("RiskVerdict", &|v| v["approved"] == false);
    let trades: Vec<Value> =
        serde_json::from_str(&ledger.ok(&["report", "--run", "1", "--trades", "--format", "json"])).unwrap();
    let protective = trades.iter().filter(|t| t["exit_reason"] == "stop_loss" || t["exit_reason"] == "trailing_stop");
    assert!((ticks, fills, denied, trades.len()) == (60, 6, 2, 3), "the scenario: {ticks} {fills} {denied}");
    let protective = protective.count() as u64;

    let Some(found) = open(&page, &ledger.dir.path().join("run.png"), Some("long entry")) else { return };
    // TC2: a candle, an equity point and a drawdown point per tick (60: nothing merged).
    assert_eq!(points(&found, "price SPY"), ticks);
    assert_eq!(trace(&found, "price SPY").unwrap()["type"], "candlestick");
    assert_eq!((points(&found, "equity"), points(&found, "drawdown")), (ticks, ticks));
    assert_eq!(found["trade_rows"].as_u64(), Some(trades.len() as u64), "the trades table in the page");
    // TC3: a marker per fill (no fill here both closes and opens) and per denial, each
    // kind in its own trace: protective exits apart from the rest.
    let markers: u64 = ["long entry", "short entry", "exit", "protective exit", "forced exit", "denied"]
        .iter()
        .map(|name| points(&found, name))
        .sum();
    assert_eq!(markers, fills + denied);
    assert_eq!((points(&found, "denied"), points(&found, "protective exit")), (denied, protective));
    assert_eq!((points(&found, "short entry"), points(&found, "forced exit")), (1, 1));
    // TC4: the click landed on a long entry and the panel shows its decision's reason,
    // as text: no element from it, nothing it asked for run.
    let panel = embedded(&html, "panel-data");
    let clicked = found["clicked_marker"].as_u64().expect("a marker was shown") as usize;
    assert_eq!(clicked as u64, found["expected_marker"].as_u64().unwrap());
    let marker = &panel["markers"][clicked];
    assert_eq!((marker["kind"].as_str(), marker["side"].as_str()), (Some("entry"), Some("long")));
    let card = &panel["cards"][marker["card"].as_u64().unwrap() as usize];
    let reason = card["reason"].as_str().unwrap();
    assert!(reason.contains("<script>") || reason.contains("<b>"), "{reason}");
    let shown = found["panel_text"].as_str().unwrap();
    assert!(shown.contains(reason), "the panel shows the reason {reason:?}:\n{shown}");
    assert!(shown.contains("Risk verdict") && shown.contains("approved") && shown.contains("Fills"), "{shown}");
    assert!(shown.contains(&format!("fill seq\n{}", marker["seq"])), "{shown}");
    assert_eq!((found["panel_elements"].as_u64(), &found["injected"]), (Some(0), &Value::Null));
    // TC5: a click on the trades table's first row shows the first trade's entry.
    let row = found["row_click_text"].as_str().unwrap();
    assert!(row.starts_with("entry: long") && row.contains("trade\n#1\n"), "{row}");
    assert!(row.contains(&format!("fill seq\n{}\n", trades[0]["entry_seq"])), "{row}");
}

/// The statistics table as a user reads it in the page.
#[test]
fn the_statistics_table_in_the_page_reads_as_the_text_report() {
    let ledger = small_ledger();
    let page = ledger.dir.path().join("run.html");
    ledger.ok(&["report", "--run", "1", "--html", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    let from = html.find("<table id=\"statistics\"").expect("the statistics table");
    let to = from + html[from..].find("</table>").unwrap() + "</table>".len();
    insta::assert_snapshot!(&html[from..to]);
    // The trades table's data holds a row per round trip, as `report --trades` has them.
    let trades: Vec<Value> =
        serde_json::from_str(&ledger.ok(&["report", "--run", "1", "--trades", "--format", "json"])).unwrap();
    // A backtest in memory (nothing stored to read back: its page folded live) draws the
    // same page as the stored run's.
    let in_memory = ledger.dir.path().join("in-memory.html");
    let data = "fixtures/spy-daily-1998-q1.csv";
    let flags = ["--strategy", "sma-cross", "--param", "fast=2", "--param", "slow=5", "--in-memory", "--html"];
    ledger.ok(&[&["replay", "--data", data][..], &flags, &[in_memory.to_str().unwrap()]].concat());
    assert!(std::fs::read_to_string(&in_memory).unwrap() == html, "in memory and stored, the same page");
    let rows = embedded(&html, "trades-data");
    assert_eq!(rows.as_array().map(Vec::len), Some(trades.len()));
    assert!(!trades.is_empty());
    assert_eq!(
        rows[0][8],
        trades[0]["pnl"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap().round_dp(2).to_string()
    );
}

/// Decisions of run `run` as (cycle, action, size).
fn decisions(ledger: &Ledger, run: &str) -> Vec<(u64, String, String)> {
    ledger
        .ok(&["events", "--run", run, "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|e| {
            let parsed = &e["payload"]["DecisionMade"]["parsed"];
            let action = parsed["action"].as_str()?.to_string();
            Some((e["header"]["cycle_id"].as_u64()?, action, parsed["size_pct"].as_str()?.to_string()))
        })
        .collect()
}

#[test]
fn runs_compared_overlay_their_equity_and_name_the_first_cycle_they_decided_apart() {
    let ledger = small_ledger(); // run 1: SMA 2/5
    let data = "fixtures/spy-daily-1998-q1.csv";
    ledger.ok(&["replay", "--data", data, "--strategy", "sma-cross", "--param", "fast=3", "--param", "slow=5"]);
    ledger.ok(&["replay", "--run", "1"]); // run 3: run 1 again
    let page = ledger.dir.path().join("compare.html");
    ledger.ok(&["report", "--compare", "1", "2", "3", "--html", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    // TC0: the first cycle where runs 1 and 2 decided differently, as the events say.
    let (a, b) = (decisions(&ledger, "1"), decisions(&ledger, "2"));
    assert!(!a.is_empty() && a.len() == b.len());
    let first = a.iter().zip(&b).find(|(x, y)| x != y).map(|(x, _)| x.0).expect("the runs differ");
    assert!(html.contains(&format!("<td>run 2</td><td>{first}</td>")), "cycle {first}");
    // TC1: the replay decided as its original did.
    assert!(html.contains("<td>run 3</td><td>none: every decision the same</td>"));
    // TC2: statistics in columns, a later run's with its difference from the first.
    assert!(html.contains("<th>run 1</th><th>run 2</th><th>run 3</th>"));
    // TC3: --compare needs a page to write, and at least two runs.
    assert_eq!(ledger.run(&["report", "--compare", "1", "2"]).code, 2);
    assert_eq!(ledger.run(&["report", "--compare", "1", "--html", "x.html"]).code, 2);

    let Some(found) = open(&page, &ledger.dir.path().join("compare.png"), None) else { return };
    let ticks = 60;
    for run in ["run 1", "run 2", "run 3"] {
        assert_eq!(points(&found, &format!("{run} equity")), ticks, "{run}");
        assert_eq!(points(&found, &format!("{run} drawdown")), ticks, "{run}");
    }
}

#[test]
fn a_sweep_draws_its_ranked_statistic_over_two_parameters() {
    let ledger = Ledger::new();
    let page = ledger.dir.path().join("sweep.html");
    let csv = ledger.dir.path().join("sweep.csv");
    ledger.ok(&[
        "sweep",
        "--data",
        "fixtures/spy-daily-1998-q1.csv",
        "--strategy",
        "sma-cross",
        "--param",
        "fast=2..4",
        "--param",
        "slow=5,8",
        "--rank",
        "return",
        "--out",
        csv.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    let Some(found) = open(&page, &ledger.dir.path().join("sweep.png"), None) else { return };
    // One heatmap of fast (3 values) by slow (2 values), each cell the run's return.
    let heatmap = trace(&found, "return_pct").expect("the heatmap");
    assert_eq!((heatmap["type"].as_str(), heatmap["points"].as_u64()), (Some("heatmap"), Some(3)));
    let html = std::fs::read_to_string(&page).unwrap();
    let figure = embedded(&html, "figure-data");
    let z = &figure["data"][0]["z"];
    let rows = csv::Reader::from_path(&csv).unwrap().into_deserialize::<std::collections::HashMap<String, String>>();
    let mut seen = BTreeSet::new();
    for row in rows {
        let row = row.unwrap();
        let x = ["2", "3", "4"].iter().position(|v| *v == row["fast"]).unwrap();
        let y = ["5", "8"].iter().position(|v| *v == row["slow"]).unwrap();
        let value: f64 = row["return_pct"].parse().unwrap();
        assert!((z[y][x].as_f64().unwrap() - value).abs() < 1e-9, "fast {} slow {}", row["fast"], row["slow"]);
        seen.insert((x, y));
    }
    assert_eq!(seen.len(), 6);
}

/// A run longer than the drawn buckets: the candles merged (every bar's high and low still
/// the extremes drawn), the equity line holding the true lowest and highest equity, and
/// still a marker per fill.
#[test]
fn a_long_run_is_drawn_merged_with_its_extremes_and_every_marker() {
    let ledger = Ledger::new();
    let page = ledger.dir.path().join("run.html");
    let data = "fixtures/btcperp-1m-2022-01.csv"; // 10,000 minute bars
    let params = ["--param", "fast=10", "--param", "slow=30", "--param", "short=false"];
    let flags = ["--strategy", "sma-cross", "--cash", "100000", "--html", page.to_str().unwrap()];
    ledger.ok(&[&["replay", "--data", data][..], &params, &flags].concat());
    let html = std::fs::read_to_string(&page).unwrap();
    let figure = embedded(&html, "figure-data");
    let traces = figure["data"].as_array().unwrap();
    let named = |name: &str| traces.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no trace {name}"));
    let column = |trace: &Value, key: &str| -> Vec<f64> {
        trace[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    // TC0: 10,000 bars in buckets of 4 (4,096 at most): 2,500 candles whose highest high and
    // lowest low are the file's.
    let candles = named("price BTCPERP");
    assert_eq!(candles["x"].as_array().unwrap().len(), 2_500);
    let mut reader = csv::Reader::from_path(workspace_root().join(data)).unwrap();
    let bars: Vec<std::collections::HashMap<String, String>> = reader.deserialize().map(Result::unwrap).collect();
    assert_eq!(bars.len(), 10_000);
    let of = |key: &str| bars.iter().map(|b| b[key].parse::<f64>().unwrap()).collect::<Vec<_>>();
    let max = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    let min = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    assert_eq!(max(&column(candles, "high")), max(&of("high")));
    assert_eq!(min(&column(candles, "low")), min(&of("low")));
    // TC1: the equity line keeps the lowest and highest equity of every tick.
    let equity: Vec<Value> =
        serde_json::from_str(&ledger.ok(&["report", "--run", "1", "--equity", "--format", "json"])).unwrap();
    let values: Vec<f64> = equity.iter().map(|e| e["equity"].as_str().unwrap().parse().unwrap()).collect();
    let drawn = column(named("equity"), "y");
    assert!(drawn.len() <= 2 * 2_500 + 1 && values.len() == 10_000);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(close(max(&drawn), max(&values)) && close(min(&drawn), min(&values)), "{} {}", max(&drawn), min(&drawn));
    // TC2: every fill marked (long and flat: each fill opens or closes) and every denied
    // decision (a close while flat), none merged.
    let events: Vec<Value> =
        ledger.ok(&["events", "--run", "1", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let fills = events.iter().filter(|e| e["payload"].get("OrderFilled").is_some()).count();
    let denied = events.iter().filter(|e| e["payload"]["RiskVerdict"]["approved"] == false).count();
    let markers: usize =
        traces.iter().filter(|t| t["customdata"].is_array()).map(|t| t["x"].as_array().unwrap().len()).sum();
    assert!(fills > 100, "{fills}");
    assert_eq!(markers, fills + denied);
    assert_eq!(traces.iter().find(|t| t["name"] == "denied").map_or(0, |t| t["x"].as_array().unwrap().len()), denied);
}
