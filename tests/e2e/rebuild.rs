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

/// `rebuild` starts from the run's latest session snapshot and folds the events after
/// it; `--from-scratch` folds them all; both give the same account.
fn rebuild_from_snapshot_and_from_scratch(ledger: &Ledger, run: &str) -> serde_json::Value {
    let from_snapshot: serde_json::Value =
        serde_json::from_str(&ledger.ok(&["rebuild", "--run", run, "--json"])).unwrap();
    let mut from_scratch: serde_json::Value =
        serde_json::from_str(&ledger.ok(&["rebuild", "--run", run, "--json", "--from-scratch"])).unwrap();
    assert_eq!(from_scratch["snapshot_seq"], 0);
    from_scratch["snapshot_seq"] = from_snapshot["snapshot_seq"].clone();
    assert_eq!(from_snapshot, from_scratch, "run {run}");
    from_snapshot
}

/// A ledger written by the previous release (`fixtures/ledger-runs-v1`: its runs index
/// snapshot in layout 1, no session snapshots) is read by this one: the index is upcast
/// (and `verify` checks it against the events), the kill switch it kept is in force, a
/// new run appends session snapshots, and a rebuild from a snapshot equals a full fold,
/// for the old runs and the new.
#[test]
fn a_ledger_of_the_previous_release_is_read_and_rebuilt_from_its_snapshots() {
    let ledger = Ledger::from_fixture("ledger-runs-v1");
    let runs = ledger.run(&["runs"]);
    assert!(runs.stdout.contains("| 215    | 228..442 |"), "{}", runs.stdout);
    assert!(
        runs.stdout.contains("| 2   | Paper    | rules:sma-cross | fast=3 short=true size_pct=1 slow=8"),
        "{}",
        runs.stdout
    );
    // Read from the old snapshot, not rebuilt from the log after failing to read it.
    assert!(!runs.stderr.contains("snapshot unreadable"), "{}", runs.stderr);
    assert!(ledger.ok(&["verify"]).starts_with("ok: 443 events"));
    assert_eq!(ledger.ok(&["kill-switch", "status"]).trim(), "kill switch: TRIPPED");
    let old = rebuild_from_snapshot_and_from_scratch(&ledger, "2");
    assert_eq!(old["snapshot_seq"], 0, "the previous release kept no session snapshots");
    ledger.ok(&["kill-switch", "reset", "--by", "alice", "--reason", "after the upgrade"]);
    let run = ledger
        .command(&[
            "run",
            "--data",
            "fixtures/spy-daily-1998-2021.csv",
            "--param",
            "fast=5",
            "--param",
            "slow=20",
            "--speed",
            "0",
        ])
        .env("LEDGER_LEDGER__SNAPSHOT_EVERY", "1000")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let new = rebuild_from_snapshot_and_from_scratch(&ledger, "3");
    assert!(new["snapshot_seq"].as_u64().unwrap() > 445, "{new}");
    assert!(ledger.ok(&["verify"]).starts_with("ok: "));
}
