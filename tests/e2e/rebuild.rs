//! `ledger rebuild`: a run's account folded from its events equals what the run reported,
//! for the latest run by default, as a table or JSON.

use crate::harness::Ledger;

#[test]
fn rebuild_gives_the_account_the_run_reported() {
    let ledger = Ledger::new();
    ledger.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv", "--param", "fast=2", "--param", "slow=5"]);
    ledger.ok(&["replay", "--config", "fixtures/spy-backtest.toml"]);
    let report: serde_json::Value = serde_json::from_str(&ledger.ok(&["report", "--run", "2", "--json"])).unwrap();
    // TC0: the latest run by default, as JSON with money as decimal strings.
    let rebuilt: serde_json::Value = serde_json::from_str(&ledger.ok(&["rebuild", "--json"])).unwrap();
    assert_eq!(rebuilt["run_id"], 2);
    let equity: rust_decimal::Decimal = rebuilt["equity"].as_str().unwrap().parse().unwrap();
    let cash: rust_decimal::Decimal = rebuilt["cash"].as_str().unwrap().parse().unwrap();
    assert_eq!(equity.round_dp(2).to_string(), report["equity_final"].as_str().unwrap());
    assert_eq!(cash.round_dp(2).to_string(), report["cash"].as_str().unwrap());
    assert_eq!(rebuilt["positions"][0]["qty"], report["open_positions"][0]["qty"]);
    // TC1: a named run, as a table.
    let table = ledger.ok(&["rebuild", "--run", "1"]);
    assert!(table.contains("| run            | 1"), "{table}");
    // TC2: an unknown run is an error naming it.
    let missing = ledger.run(&["rebuild", "--run", "9"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("no run 9"), "{}", missing.stderr);
}
