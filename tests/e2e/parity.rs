//! Parity with backtesting.py 0.6.6, run for real: the same SMA cross on the same real
//! data, once through `ledger replay` and once through backtesting.py itself
//! (`scripts/parity/peer.py`, in the pinned venv `scripts/parity/venv.sh` makes under
//! `target/peer-venv`), must give the same trades (entry and exit bar, size, price), the
//! same final equity within 0.01%, and the same statistics within the tolerances below.
//!
//! The peer's Python is `LEDGER_PEER_PYTHON` (set by `scripts/test.sh`), else the venv
//! at its known path, else the venv is made here. The tests are skipped, saying why,
//! only when no Python 3 is found.
//!
//! Each test prints its row of the parity table in docs/benchmarks.md:
//! `cargo test --test e2e parity -- --nocapture --test-threads 1 | grep '^| '`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::harness::{workspace_root, Ledger};

/// One backtest compared with the peer.
struct Case {
    /// A fixture file of bars.
    data: &'static str,
    fast: u32,
    slow: u32,
    /// Commission, fraction of notional per fill.
    commission: &'static str,
    cash: u64,
    /// Long and flat only (a cross down closes), or long and short (it reverses).
    long_only: bool,
    /// `--close-at-end` here, `finalize_trades=True` there.
    close_at_end: bool,
    /// Protective exits on every entry, fractions: stop-loss and take-profit from the
    /// decision's close, trailing stop from the fill ("" for none).
    exits: Exits,
}

/// `--stop-loss-pct`, `--take-profit-pct`, `--trailing-stop-pct` here; the peer's
/// `--sl`, `--tp`, `--trail` (scripts/parity/peer.py).
#[derive(Default)]
struct Exits {
    stop_loss: &'static str,
    take_profit: &'static str,
    trailing: &'static str,
}

impl Exits {
    /// (our flag, the peer's flag, value) of each exit set.
    fn flags(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        [
            ("--stop-loss-pct", "--sl", self.stop_loss),
            ("--take-profit-pct", "--tp", self.take_profit),
            ("--trailing-stop-pct", "--trail", self.trailing),
        ]
        .into_iter()
        .filter(|(_, _, value)| !value.is_empty())
        .collect()
    }
}

/// The peer's python: found or made once per test process; `None` (with the reason
/// printed) when no Python 3 is there.
fn peer_python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(python) = std::env::var_os("LEDGER_PEER_PYTHON").map(PathBuf::from) {
                assert!(python.exists(), "LEDGER_PEER_PYTHON={} does not exist", python.display());
                return Some(python);
            }
            // venv.sh reuses the venv when it is there with the same pins, and makes it
            // otherwise.
            let output = Command::new("bash")
                .arg(workspace_root().join("scripts/parity/venv.sh"))
                .output()
                .expect("bash runs scripts/parity/venv.sh");
            match output.status.code() {
                Some(0) => Some(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())),
                Some(3) => {
                    // Straight to stderr: the test harness captures print! and eprint!.
                    let why = String::from_utf8_lossy(&output.stderr);
                    let _ = writeln!(std::io::stderr(), "parity with backtesting.py: skipped: {}", why.trim());
                    None
                }
                _ => panic!(
                    "scripts/parity/venv.sh could not make the peer's venv:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                ),
            }
        })
        .clone()
}

/// A trade as both sides describe it: signed whole units, entry and exit bar (indexes
/// into the data file) and prices.
#[derive(Debug, Clone, PartialEq)]
struct Trade {
    size: i64,
    entry_bar: u64,
    exit_bar: Option<u64>,
    entry_price: f64,
    exit_price: Option<f64>,
}

/// The ledger's round trips, rebuilt from the run's events: a fill belongs to the bar
/// whose tick has its time (a next-open fill is recorded before that tick, a close-out
/// after the last one). Trades still open have no exit.
fn ledger_trades(events: &str) -> Vec<Trade> {
    let mut trades: Vec<Trade> = Vec::new();
    let (mut ticks, mut last_tick_ts, mut position) = (0u64, None::<String>, 0i64);
    for line in events.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let ts = event["header"]["ts_event"].as_str().unwrap().to_string();
        let payload = &event["payload"];
        if payload.get("MarketTick").is_some() {
            ticks += 1;
            last_tick_ts = Some(ts);
        } else if let Some(fill) = payload.get("OrderFilled") {
            let bar = if last_tick_ts.as_deref() == Some(ts.as_str()) { ticks - 1 } else { ticks };
            let qty: i64 = fill["qty"].as_str().unwrap().parse().expect("whole units");
            let price: f64 = fill["price"].as_str().unwrap().parse().unwrap();
            let signed = if fill["side"] == "Buy" { qty } else { -qty };
            if position == 0 {
                trades.push(Trade {
                    size: signed,
                    entry_bar: bar,
                    exit_bar: None,
                    entry_price: price,
                    exit_price: None,
                });
            } else {
                assert_eq!(position + signed, 0, "the engine closes a position whole, then opens the next");
                let open = trades.last_mut().unwrap();
                (open.exit_bar, open.exit_price) = (Some(bar), Some(price));
            }
            position += signed;
        }
    }
    trades
}

/// The peer's trades, closed then open.
fn peer_trades(peer: &Value) -> Vec<Trade> {
    let closed = peer["trades"].as_array().unwrap().iter().map(|t| Trade {
        size: t["size"].as_i64().unwrap(),
        entry_bar: t["entry_bar"].as_u64().unwrap(),
        exit_bar: t["exit_bar"].as_u64(),
        entry_price: t["entry_price"].as_f64().unwrap(),
        exit_price: t["exit_price"].as_f64(),
    });
    let open = peer["open_trades"].as_array().unwrap().iter().map(|t| Trade {
        size: t["size"].as_i64().unwrap(),
        entry_bar: t["entry_bar"].as_u64().unwrap(),
        exit_bar: None,
        entry_price: t["entry_price"].as_f64().unwrap(),
        exit_price: None,
    });
    let mut trades: Vec<Trade> = closed.chain(open).collect();
    trades.sort_by_key(|t| t.entry_bar);
    trades
}

/// How close a statistic must be, and why.
#[derive(Clone, Copy)]
enum Tolerance {
    /// Counts: equal.
    Exact,
    /// Money: the report shows cents, the peer a float: within a cent.
    Cent,
    /// Days: whole multiples of the data's resolution on both sides; 1e-9 day (86 us)
    /// absorbs float division.
    Days,
    /// Ratios of floats computed by the same formulas on the same numbers (ours from
    /// exact decimals converted once, with running sums; numpy's with pairwise sums and
    /// two passes): they differ by rounding alone, measured below 1e-12. 1e-9 relative.
    Float,
    /// The annualized volatility and the Sharpe ratio built on it:
    /// `(var + (1 + g)^2)^N - (1 + g)^(2N)` subtracts two nearly equal powers (N = 252 or
    /// 365), which turns 1e-16 rounding into ~1e-13 (measured on the minute bars). 1e-7.
    Compounded,
}

/// backtesting.py's key, the report's key, the tolerance.
const STATISTICS: [(&str, &str, Tolerance); 31] = [
    ("Duration", "duration_days", Tolerance::Days),
    ("Exposure Time [%]", "exposure_time_pct", Tolerance::Float),
    ("Equity Final [$]", "equity_final", Tolerance::Cent),
    ("Equity Peak [$]", "equity_peak", Tolerance::Cent),
    ("Commissions [$]", "commissions", Tolerance::Cent),
    ("Return [%]", "return_pct", Tolerance::Float),
    ("Buy & Hold Return [%]", "buy_and_hold_return_pct", Tolerance::Float),
    ("Return (Ann.) [%]", "return_ann_pct", Tolerance::Float),
    ("Volatility (Ann.) [%]", "volatility_ann_pct", Tolerance::Compounded),
    ("CAGR [%]", "cagr_pct", Tolerance::Float),
    ("Sharpe Ratio", "sharpe_ratio", Tolerance::Compounded),
    ("Sortino Ratio", "sortino_ratio", Tolerance::Float),
    ("Calmar Ratio", "calmar_ratio", Tolerance::Float),
    ("Alpha [%]", "alpha_pct", Tolerance::Float),
    ("Beta", "beta", Tolerance::Float),
    ("Max. Drawdown [%]", "max_drawdown_pct", Tolerance::Float),
    ("Avg. Drawdown [%]", "avg_drawdown_pct", Tolerance::Float),
    ("Max. Drawdown Duration", "max_drawdown_duration_days", Tolerance::Days),
    ("Avg. Drawdown Duration", "avg_drawdown_duration_days", Tolerance::Days),
    ("# Trades", "trades", Tolerance::Exact),
    ("Win Rate [%]", "win_rate_pct", Tolerance::Float),
    ("Best Trade [%]", "best_trade_pct", Tolerance::Float),
    ("Worst Trade [%]", "worst_trade_pct", Tolerance::Float),
    ("Avg. Trade [%]", "avg_trade_pct", Tolerance::Float),
    ("Max. Trade Duration", "max_trade_duration_days", Tolerance::Days),
    ("Avg. Trade Duration", "avg_trade_duration_days", Tolerance::Days),
    ("Profit Factor", "profit_factor", Tolerance::Float),
    ("Expectancy [%]", "expectancy_pct", Tolerance::Float),
    ("SQN", "sqn", Tolerance::Float),
    ("Kelly Criterion", "kelly_criterion", Tolerance::Float),
    ("Start", "start", Tolerance::Exact),
];

/// A JSON statistic as a float: numbers, decimal strings, `null` as NaN.
fn number(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

fn within(ours: f64, peer: f64, tolerance: Tolerance) -> bool {
    if ours.is_nan() || peer.is_nan() {
        return ours.is_nan() && peer.is_nan();
    }
    let difference = (ours - peer).abs();
    match tolerance {
        Tolerance::Exact => ours == peer,
        Tolerance::Cent => difference <= 0.005 + 1e-9 * peer.abs(),
        Tolerance::Days => difference <= 1e-9,
        Tolerance::Float => difference <= 1e-9 * peer.abs().max(1e-9),
        Tolerance::Compounded => difference <= 1e-7 * peer.abs().max(1e-9),
    }
}

/// Runs `case` both ways; returns the ledger's report, its trades, the peer's output.
fn run_both(case: &Case, python: &PathBuf) -> (Value, Vec<Trade>, Value) {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("parity.toml");
    // Fills at the next open, whole units, exact fees (backtesting.py rounds nothing), no
    // slippage, no risk limits: the peer's defaults.
    let toml = format!(
        "[venue]\nfill_model = \"next_open\"\ncommission_rate = \"{}\"\nlot_size = \"1\"\nround_fees = false\nclose_at_end = {}\n",
        case.commission, case.close_at_end
    );
    std::fs::write(&config, toml).unwrap();
    let (fast, slow, cash) = (format!("fast={}", case.fast), format!("slow={}", case.slow), case.cash.to_string());
    let short = format!("short={}", !case.long_only);
    let data = format!("fixtures/{}", case.data);
    let exits: Vec<&str> = case.exits.flags().iter().flat_map(|(ours, _, value)| [*ours, *value]).collect();
    ledger.ok(&[
        &["replay"][..],
        &[
            "--data",
            &data,
            "--config",
            config.to_str().unwrap(),
            "--strategy",
            "sma-cross",
            "--param",
            &fast,
            "--param",
            &slow,
            "--param",
            &short,
            "--param",
            "size_pct=1",
            "--cash",
            &cash,
        ][..],
        &exits,
    ]
    .concat());
    let report: Value = serde_json::from_str(&ledger.ok(&["report", "--run", "1", "--json"])).unwrap();
    let trades = ledger_trades(&ledger.ok(&["events", "--run", "1", "--json"]));

    let mut peer = Command::new(python);
    peer.current_dir(workspace_root()).arg("scripts/parity/peer.py").args(["--data", &data]);
    peer.args(["--fast", &case.fast.to_string(), "--slow", &case.slow.to_string()]);
    peer.args(["--commission", case.commission, "--cash", &cash]);
    if case.long_only {
        peer.arg("--long-only");
    }
    if case.close_at_end {
        peer.arg("--finalize");
    }
    for (_, theirs, value) in case.exits.flags() {
        peer.args([theirs, value]);
    }
    let output = peer.output().expect("the peer's python runs");
    assert!(output.status.success(), "peer.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let peer: Value = serde_json::from_slice(&output.stdout).unwrap();
    (report, trades, peer)
}

/// Asserts every statistic within its tolerance; returns the largest relative
/// difference among those both sides define.
fn assert_statistics(label: &str, report: &Value, peer: &Value) -> f64 {
    let stats = &peer["stats"];
    let mut wrong = Vec::new();
    let mut largest: f64 = 0.0;
    for (name, key, tolerance) in STATISTICS {
        if key == "start" {
            // Times: the same bar (the peer prints no zone; the data is UTC).
            let ours = report["start"].as_str().unwrap();
            let theirs = stats["Start"].as_str().unwrap();
            if !ours.starts_with(theirs) {
                wrong.push(format!("Start: ours {ours}, backtesting.py {theirs}"));
            }
            continue;
        }
        // backtesting.py leaves Commissions out when they are 0.
        let theirs = if name == "Commissions [$]" && stats.get(name).is_none() { 0.0 } else { number(&stats[name]) };
        let ours = number(&report[key]);
        if !within(ours, theirs, tolerance) {
            wrong.push(format!("{name}: ours {ours}, backtesting.py {theirs}"));
        }
        if ours.is_finite() && theirs.is_finite() && theirs != 0.0 {
            largest = largest.max((ours - theirs).abs() / theirs.abs());
        }
    }
    assert!(wrong.is_empty(), "{label}: statistics differ:\n{}", wrong.join("\n"));
    largest
}

/// The parity table's row for `case` (on a line of its own), with the largest relative
/// difference over the statistics, if they were compared.
fn row(case: &Case, report: &Value, peer: &Value, largest: Option<f64>) -> String {
    let stats = &peer["stats"];
    let side = if case.long_only { "long/flat" } else { "long/short" };
    let f = |v: &Value| format!("{:.4}", number(v));
    format!(
        "\n| {} | SMA {}/{} {side}, {} commission{}{} | {} / {} | {} / {:.2} | {} / {} | {} / {} | {} / {} | {} |",
        case.data,
        case.fast,
        case.slow,
        case.commission,
        if case.close_at_end { ", close at end" } else { "" },
        case.exits.flags().iter().map(|(ours, _, value)| format!(", {ours} {value}")).collect::<String>(),
        report["trades"],
        number(&stats["# Trades"]),
        report["equity_final"].as_str().unwrap(),
        number(&stats["Equity Final [$]"]),
        f(&report["sharpe_ratio"]),
        f(&stats["Sharpe Ratio"]),
        f(&report["max_drawdown_pct"]),
        f(&stats["Max. Drawdown [%]"]),
        f(&report["profit_factor"]),
        f(&stats["Profit Factor"]),
        largest.map_or_else(|| "see below".to_string(), |x| format!("{x:.1e}")),
    )
}

/// Same trades, same final equity within 0.01%, same statistics.
fn check(case: Case) {
    let Some(python) = peer_python() else { return };
    let label = format!("{} SMA {}/{}", case.data, case.fast, case.slow);
    let (report, ours, peer) = run_both(&case, &python);
    let theirs = peer_trades(&peer);
    assert!(!theirs.is_empty(), "{label}: the case makes no trades; it tests nothing");
    assert_eq!(ours.len(), theirs.len(), "{label}: trade count (open ones included)");
    // Prices: equal, but for the levels of protective exits (a fraction of a price:
    // exact decimals here, floats there), within float rounding.
    let same_price = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!((a.size, a.entry_bar, a.exit_bar), (b.size, b.entry_bar, b.exit_bar), "{label}: trade {i}");
        let exit_prices = match (a.exit_price, b.exit_price) {
            (Some(x), Some(y)) => same_price(x, y),
            (x, y) => x == y,
        };
        assert!(same_price(a.entry_price, b.entry_price) && exit_prices, "{label}: trade {i} prices: {a:?} vs {b:?}");
    }
    let (equity, peer_equity) = (number(&report["equity_final"]), number(&peer["stats"]["Equity Final [$]"]));
    assert!((equity - peer_equity).abs() <= 1e-4 * peer_equity, "{label}: final equity {equity} vs {peer_equity}");
    let largest = assert_statistics(&label, &report, &peer);
    println!("{}", row(&case, &report, &peer, Some(largest)));
}

#[test]
fn parity_spy_daily_sma_10_30_long_short() {
    check(Case {
        data: "spy-daily-1998-2021.csv",
        fast: 10,
        slow: 30,
        commission: "0.001",
        cash: 100_000,
        long_only: false,
        close_at_end: false,
        exits: Exits::default(),
    });
}

#[test]
fn parity_btc_daily_with_weekends_sma_5_20_long_only() {
    check(Case {
        data: "btcusd-daily-2014-2018.csv",
        fast: 5,
        slow: 20,
        commission: "0.002",
        cash: 100_000,
        long_only: true,
        close_at_end: false,
        exits: Exits::default(),
    });
}

#[test]
fn parity_btc_perp_minute_bars_sma_20_60_long_short() {
    check(Case {
        data: "btcperp-1m-2022-01.csv",
        fast: 20,
        slow: 60,
        commission: "0.0005",
        cash: 1_000_000,
        long_only: false,
        close_at_end: false,
        exits: Exits::default(),
    });
}

#[test]
fn parity_aapl_daily_with_splits_sma_20_50_no_commission() {
    check(Case {
        data: "aapl-daily-2005-2012.csv",
        fast: 20,
        slow: 50,
        commission: "0",
        cash: 100_000,
        long_only: true,
        close_at_end: false,
        exits: Exits::default(),
    });
}

/// `--close-at-end` against `finalize_trades=True`: the one documented difference.
/// backtesting.py 0.6.6 closes the trades left open by re-running its broker on the
/// last bar (`Backtest.run`), which fills them at that bar's open; the ledger closes
/// them at the last bar's close. Every other trade is the same, the last one differs
/// only in its exit price, and the final equity by exactly that:
/// `(close - open) x (size - commission x |size|)`.
#[test]
fn parity_close_at_end_differs_from_finalize_trades_only_in_the_last_exit_price() {
    let Some(python) = peer_python() else { return };
    let case = Case {
        data: "btcperp-1m-2022-01.csv",
        fast: 20,
        slow: 60,
        commission: "0.0005",
        cash: 1_000_000,
        long_only: false,
        close_at_end: true,
        exits: Exits::default(),
    };
    let (report, ours, peer) = run_both(&case, &python);
    let theirs = peer_trades(&peer);
    assert_eq!(ours.len(), theirs.len());
    let last = ours.len() - 1;
    assert_eq!(ours[..last], theirs[..last], "every trade before the closed-out one");
    let (a, b) = (&ours[last], &theirs[last]);
    let bars = peer["bars"].as_u64().unwrap();
    assert_eq!((a.size, a.entry_bar, a.exit_bar), (b.size, b.entry_bar, Some(bars - 1)));
    // The last bar of the file: 2022-01-07 21:40, open 41962, close 41985.
    assert_eq!((a.exit_price, b.exit_price), (Some(41985.0), Some(41962.0)));
    let size = a.size as f64;
    let expected = (41985.0 - 41962.0) * (size - 0.0005 * size.abs());
    let difference = number(&report["equity_final"]) - number(&peer["stats"]["Equity Final [$]"]);
    assert!((difference - expected).abs() <= 0.01, "equity differs by {difference}, expected {expected}");
    assert!(report["open_positions"].as_array().unwrap().is_empty());
    println!("{}", row(&case, &report, &peer, None));
}

/// Stop-loss and take-profit orders, filled on the bars' highs and lows: gaps through a
/// stop at the open, a bar reaching both fills the stop, a signal's close goes first.
#[test]
fn parity_spy_daily_sma_10_30_with_stop_loss_and_take_profit() {
    check(Case {
        data: "spy-daily-1998-2021.csv",
        fast: 10,
        slow: 30,
        commission: "0.001",
        cash: 100_000,
        long_only: false,
        close_at_end: false,
        exits: Exits { stop_loss: "0.02", take_profit: "0.05", trailing: "" },
    });
}

/// Trailing stops moved after every bar, on minute bars.
#[test]
fn parity_btc_perp_minute_bars_sma_20_60_with_a_trailing_stop() {
    check(Case {
        data: "btcperp-1m-2022-01.csv",
        fast: 20,
        slow: 60,
        commission: "0.0005",
        cash: 1_000_000,
        long_only: false,
        close_at_end: false,
        exits: Exits { trailing: "0.004", ..Exits::default() },
    });
}
