//! `ledger sweep`: every combination of a grid backtested in memory, ranked, written as
//! CSV; each row equals the same backtest run on its own, and `--record` records them.

use crate::harness::Ledger;

fn read_csv(path: &std::path::Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect()
}

#[test]
fn a_sweep_ranks_every_valid_combination_and_each_equals_its_own_backtest() {
    let ledger = Ledger::new();
    let out = ledger.dir.path().join("grid.csv");
    let out_arg = out.to_str().unwrap();
    let args = [
        "sweep",
        "--data",
        "fixtures/spy-daily-1998-q1.csv",
        "--strategy",
        "sma-cross",
        "--param",
        "fast=2..4",
        "--param",
        "slow=3..7:2",
        "--constraint",
        "fast < slow",
        "--rank",
        "return",
        "--out",
        out_arg,
    ];
    let table = ledger.ok(&args);
    assert!(table.starts_with("| rank | fast | slow | return %"), "{table}");
    let rows = read_csv(&out);
    // fast in 2..4, slow in {3, 5, 7}, fast < slow: (2,3) (2,5) (2,7) (3,5) (3,7) (4,5) (4,7).
    assert_eq!(rows.len(), 7, "{rows:?}");
    let returns: Vec<f64> = rows.iter().map(|r| r["return_pct"].parse().unwrap()).collect();
    assert!(returns.windows(2).all(|w| w[0] >= w[1]), "ranked by return: {returns:?}");
    assert_eq!(rows[0]["rank"], "1");
    // Each row is the backtest `replay --in-memory` makes with those parameters.
    for row in [&rows[0], &rows[6]] {
        let (fast, slow) = (format!("fast={}", row["fast"]), format!("slow={}", row["slow"]));
        let single = ledger.ok(&[
            "replay",
            "--data",
            "fixtures/spy-daily-1998-q1.csv",
            "--strategy",
            "sma-cross",
            "--param",
            &fast,
            "--param",
            &slow,
            "--in-memory",
        ]);
        let equity = single.lines().find(|l| l.contains("| Equity Final [$] ")).unwrap();
        assert!(equity.contains(&row["equity_final"]), "{equity} vs {}", row["equity_final"]);
    }
    // Nothing was recorded; with --record each is a run of the ledger.
    assert!(!ledger.data_dir().exists() || ledger.ok(&["runs"]).lines().count() <= 2);
    let mut recorded = args.to_vec();
    recorded.push("--record");
    ledger.ok(&recorded);
    let runs = ledger.ok(&["runs"]);
    assert!(runs.contains("| 7   | Replay"), "{runs}");
    assert_eq!(read_csv(&out).len(), 7);
    assert!(ledger.ok(&["verify"]).starts_with("ok: "));
}

#[test]
fn a_sweep_names_what_is_wrong_with_its_grid() {
    let ledger = Ledger::new();
    let cases: [(&[&str], &str); 3] = [
        (&["--param", "speed=1..3"], "unknown parameter \"speed\""),
        (&["--param", "fast=1..3", "--rank", "luck"], "--rank \"luck\": choose one of sharpe"),
        (&["--param", "fast=40..50", "--param", "slow=10..20"], "no combination of the grid is a valid sma-cross"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["sweep", "--data", "fixtures/spy-daily-1998-q1.csv", "--strategy", "sma-cross"];
        args.extend_from_slice(extra);
        let run = ledger.run(&args);
        assert_eq!(run.code, 2, "{extra:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(message), "{extra:?}: {}", run.stderr);
    }
}
