//! The main job: a backtest on real data, its report, and replays that reproduce runs.

use crate::harness::Ledger;

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
    ledger.ok(&[
        "replay",
        "--data",
        "fixtures/eurusd-quotes-2014-05-08.csv",
        "--strategy",
        "ema-rsi",
        "--param",
        "size_pct=0.5",
    ]);
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
    assert!(report.contains("| trades "), "{report}");
    let fills = ledger.ok(&["events", "--json"]);
    assert!(fills.contains("\"OrderFilled\""), "no fills in a trade-tick backtest");
}
