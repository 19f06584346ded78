//! `ledger report --trades` and `--equity`: a run's round trips and equity curve out, as
//! CSV (what pandas reads) and JSON, agreeing with the run's own report.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::harness::Ledger;

fn csv_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect()
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap_or_else(|_| panic!("not a decimal: {text}"))
}

#[test]
fn trades_and_equity_out_agree_with_the_report() {
    let ledger = Ledger::new();
    ledger.ok(&["replay", "--config", "fixtures/spy-backtest.toml", "--close-at-end"]);
    let report: serde_json::Value = serde_json::from_str(&ledger.ok(&["report", "--run", "1", "--json"])).unwrap();
    let trades = csv_rows(&ledger.ok(&["report", "--run", "1", "--trades"]));
    // TC0: one row per round trip; with every position closed at the end, their net
    // P&L adds up to the run's, to the cent.
    assert_eq!(trades.len() as u64, report["trades"].as_u64().unwrap());
    let pnl: Decimal = trades.iter().map(|t| dec(&t["pnl"])).sum();
    let start = dec(report["equity_start"].as_str().unwrap());
    assert_eq!(pnl.round_dp(2), dec(report["equity_final"].as_str().unwrap()) - start);
    // TC1: each row is consistent: exit after entry, seqs in order, the decision named.
    for t in &trades {
        assert!(t["exit_time"] >= t["entry_time"] && dec(&t["exit_seq"]) > dec(&t["entry_seq"]), "{t:?}");
        assert!(t["side"] == "long" || t["side"] == "short", "{t:?}");
        assert!(t["entry_reason"].contains("SMA crossed"), "{t:?}");
        let gross = (dec(&t["exit_price"]) - dec(&t["entry_price"])) * dec(&t["size"]);
        let gross = if t["side"] == "long" { gross } else { -gross };
        assert_eq!((gross - dec(&t["fees"])).round_dp(6), dec(&t["pnl"]).round_dp(6), "{t:?}");
    }
    // TC1b: the trade left open at the end is closed by the close-out, and says so.
    assert_eq!(trades.last().unwrap()["exit_reason"], "end of data");
    assert!(trades[..trades.len() - 1].iter().all(|t| t["exit_reason"].contains("SMA crossed")));
    // TC2: the equity curve has a row per tick, times RFC 3339, and never a drawdown
    // beyond the report's maximum.
    let equity = csv_rows(&ledger.ok(&["report", "--run", "1", "--equity"]));
    assert_eq!(equity.len() as u64, report["ticks"].as_u64().unwrap());
    assert_eq!(equity[0]["time"], "1998-01-02T00:00:00.000000Z");
    let deepest = equity.iter().map(|e| dec(&e["drawdown"])).max().unwrap();
    let reported: f64 = report["max_drawdown_pct"].as_f64().unwrap();
    assert!((deepest * Decimal::ONE_HUNDRED + Decimal::try_from(reported).unwrap()).abs() < dec("0.01"));
    // TC3: JSON is the same rows, money as strings.
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&ledger.ok(&["report", "--run", "1", "--trades", "--format", "json"])).unwrap();
    assert_eq!(json.len(), trades.len());
    assert_eq!(json[0]["pnl"].as_str().unwrap(), trades[0]["pnl"]);
    // TC4: one output at a time, and not with --json.
    assert_eq!(ledger.run(&["report", "--run", "1", "--trades", "--equity"]).code, 2);
    assert_eq!(ledger.run(&["report", "--run", "1", "--trades", "--json"]).code, 2);
}

/// A position the kill switch closes says so in its trade.
#[test]
fn a_trade_the_kill_switch_closes_says_so() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("kill.toml");
    std::fs::write(&config, "[kill_switch]\nmax_drawdown = \"0.03\"\nclose_positions = true\n").unwrap();
    let config = config.to_str().unwrap();
    ledger.ok(&["replay", "--data", "fixtures/spy-daily-1998-2021.csv", "--config", config]);
    let trades = csv_rows(&ledger.ok(&["report", "--run", "1", "--trades"]));
    let killed: Vec<_> = trades.iter().filter(|t| t["exit_reason"] == "kill switch").collect();
    assert_eq!(killed.len(), 1, "one trade open when the switch tripped: {trades:?}");
    assert_eq!(trades.last().unwrap()["exit_reason"], "kill switch", "no entry after the trip");
}
