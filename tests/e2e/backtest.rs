//! The main job: a backtest on real data, its report, and replays that reproduce runs.

use crate::harness::{fixture, Ledger};

#[test]
fn the_readme_backtest_prints_its_report_and_writes_a_verifiable_ledger() {
    let ledger = Ledger::new();
    let report = ledger.ok(&["replay", "--config", "fixtures/spy-backtest.toml"]);
    insta::assert_snapshot!(report);
    let verify = ledger.ok(&["verify"]);
    assert!(verify.starts_with("ok: 18"), "{verify}");
    // The stored run reports the same numbers, as JSON too.
    let json = ledger.ok(&["report", "--run", "1", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["trades"], 101);
    assert_eq!(value["total_fees"], "20481.40");
}

#[test]
fn a_paper_run_replays_identically_and_a_backtest_too() {
    let ledger = Ledger::new();
    ledger.ok(&["run", "--config", "fixtures/ledger.example.toml", "--speed", "0"]);
    let verified = ledger.ok(&["replay", "--run", "1", "--verify"]);
    assert!(verified.starts_with("ok: run 2 reproduces run 1"), "{verified}");
    let quotes = ledger.dir.path().join("quotes.toml");
    std::fs::write(&quotes, "[venue]\nfill_model = \"quote\"\nlot_size = \"1000\"\n").unwrap();
    let quotes = quotes.to_str().unwrap();
    let args =
        ["replay", "--data", "fixtures/eurusd-quotes-2014-05-08.csv", "--config", quotes, "--strategy", "ema-rsi"];
    ledger.ok(&args);
    assert!(ledger.ok(&["events", "--run", "3", "--json"]).contains("OrderFilled"), "quotes should fill at bid/ask");
    let verified = ledger.ok(&["replay", "--run", "3", "--verify"]);
    assert!(verified.starts_with("ok: run 4 reproduces run 3"), "{verified}");
    let runs = ledger.ok(&["runs"]);
    assert!(runs.contains("| 1   | Paper") && runs.contains("| 4   | Replay"), "{runs}");
}

#[test]
fn trade_ticks_backtest_with_the_trade_fill_model() {
    let ledger = Ledger::new();
    let dir = ledger.dir.path().join("trade.toml");
    std::fs::write(&dir, "[venue]\nfill_model = \"trade\"\nlot_size = \"1\"\ncommission_rate = \"0.00075\"\n").unwrap();
    let report = ledger.ok(&[
        "replay",
        "--data",
        "fixtures/xrpeth-aggtrades-2019-10-11.csv",
        "--strategy",
        "sma-cross",
        "--param",
        "fast=20",
        "--param",
        "slow=100",
        "--cash",
        "10",
        "--config",
        dir.to_str().unwrap(),
    ]);
    assert!(report.contains("| # Trades "), "{report}");
    let fills = ledger.ok(&["events", "--json"]);
    assert!(fills.contains("\"OrderFilled\""), "no fills in a trade-tick backtest");
}

#[test]
fn a_paced_paper_run_publishes_fills_as_they_happen_and_stops_on_ctrl_c() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("paper.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\nfiles = [{:?}]\n[provider]\nkind = \"rules\"\nstrategy = \"sma-cross\"\nparams = {{ fast = 2, slow = \"5\" }}\n",
            fixture("spy-daily-1998-q1.csv")
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // TC0: 60 days played at 20,000,000x (about 4 ms a day): every fill reaches the bus's
    // subscriber, which logs it.
    let output =
        ledger.command(&["run", "--config", config, "--speed", "20000000"]).env("RUST_LOG", "info").output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OrderFilled r1-1 Buy"), "{stderr}");
    // TC1: at the data's own pace (a day a day), Ctrl-C stops after the current cycle.
    let mut child = ledger.command(&["run", "--config", config, "--speed", "1"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    assert!(child.wait().unwrap().success());
    let runs = ledger.ok(&["runs"]);
    assert!(runs.contains("(interrupted)"), "{runs}");
    assert!(ledger.ok(&["verify"]).starts_with("ok: "));
}

/// Issue 9's lot bug: stepping a too-costly order down by `max(lot, 1)` took a whole BTC
/// off, so with a lot of 1e-8 (and fees rounded to cents, which push the first guess
/// over) one trade filled and every later order fell to zero units and was rejected.
/// Now every order of the BTC minute-bar run fills, in fractions of a coin.
#[test]
fn crypto_lots_of_1e_8_fill_every_order_on_btc_minute_bars() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("btc.toml");
    std::fs::write(
        &config,
        "[venue]\nfill_model = \"next_open\"\ncommission_rate = \"0.001\"\nlot_size = \"0.00000001\"\n",
    )
    .unwrap();
    ledger.ok(&[
        "replay",
        "--data",
        "fixtures/btcperp-1m-2022-01.csv",
        "--config",
        config.to_str().unwrap(),
        "--strategy",
        "sma-cross",
        "--param",
        "fast=10",
        "--param",
        "slow=30",
        "--param",
        "short=true",
    ]);
    let events = ledger.ok(&["events", "--json"]);
    let (fills, rejections) = (events.matches("\"OrderFilled\"").count(), events.matches("\"OrderRejected\"").count());
    assert_eq!(rejections, 0, "no order falls to zero units");
    assert!(fills > 800, "{fills} fills");
    let fractional = events.lines().filter(|l| l.contains("\"OrderFilled\"")).any(|l| l.contains("\"qty\":\"2.1"));
    assert!(fractional, "the first fills are ~2.1 BTC of 100,000 at ~46,000, in lots of 1e-8");
}

/// `--close-at-end` closes what is open at the last bar's close, in the last tick's
/// cycle, before `RunStopped`; it is part of the recorded settings, so a replay of the
/// run closes out the same way.
#[test]
fn close_at_end_closes_out_at_the_last_close_and_replays_identically() {
    let ledger = Ledger::new();
    let args = ["--data", "fixtures/spy-daily-1998-q1.csv", "--strategy", "sma-cross", "--param", "fast=3"];
    let mut open = vec!["replay"];
    open.extend(args);
    open.extend(["--param", "slow=8", "--param", "short=true"]);
    ledger.ok(&open);
    let mut closed = open.clone();
    closed.push("--close-at-end");
    ledger.ok(&closed);
    let report = |run: &str| -> serde_json::Value {
        serde_json::from_str(&ledger.ok(&["report", "--run", run, "--json"])).unwrap()
    };
    // TC0: without it, the run ends holding 969 SPY; with it, flat, one trade more.
    let (kept, flat) = (report("1"), report("2"));
    assert_eq!(kept["open_positions"][0]["qty"], "969");
    assert!(flat["open_positions"].as_array().unwrap().is_empty());
    assert_eq!(flat["trades"].as_u64().unwrap(), kept["trades"].as_u64().unwrap() + 1);
    // TC1: the close-out sells at the last close (1998-03-30, 109.34), before RunStopped.
    let events = ledger.ok(&["events", "--run", "2", "--json"]);
    let last_two: Vec<&str> = events.lines().rev().take(2).collect();
    assert!(last_two[0].contains("\"RunStopped\""), "{}", last_two[0]);
    assert!(
        last_two[1].contains("\"OrderFilled\"") && last_two[1].contains("\"price\":\"109.3400\""),
        "{}",
        last_two[1]
    );
    // TC2: the replay of the run reproduces it, close-out included.
    let verified = ledger.ok(&["replay", "--run", "2", "--verify"]);
    assert!(verified.starts_with("ok: run 3 reproduces run 2"), "{verified}");
}
