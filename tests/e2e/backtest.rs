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
