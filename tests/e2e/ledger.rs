//! The ledger commands on a small fixture ledger: runs, events, verify and tampering.

use ledger_adapters::sled_log::{raw, Durability, SledLog};
use ledger_core::ids::Seq;

use crate::harness::{fixture, small_ledger, Ledger};

#[test]
fn runs_and_events_read_as_tables_and_json() {
    let ledger = small_ledger();
    insta::assert_snapshot!("runs", ledger.ok(&["runs"]));
    // `runs --json`: one exact object per run, with what the table rounds.
    let runs: Vec<serde_json::Value> =
        ledger.ok(&["runs", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["strategy"], "rules:sma-cross");
    assert_eq!(runs[0]["last_seq"], 227);
    assert!((runs[0]["return_pct"].as_f64().unwrap() - 7.15).abs() < 0.005, "{}", runs[0]);
    insta::assert_snapshot!("events", ledger.ok(&["events", "--from", "15", "--limit", "16"]));
    let json = ledger.ok(&["events", "--run", "1", "--limit", "3", "--json"]);
    let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["header"]["seq"], 2);
    assert_eq!(lines[1]["payload"]["MarketTick"]["data"]["Bar"]["close"], "97.3600");
    assert_eq!(lines[1]["header"]["prev_hash"], lines[0]["header"]["hash"]);
}

#[test]
fn verify_accepts_the_ledger_and_names_the_first_tampered_seq() {
    let ledger = small_ledger();
    let ok = ledger.run(&["verify"]);
    assert_eq!(ok.code, 0);
    assert!(ok.stdout.starts_with("ok: "), "{}", ok.stdout);
    {
        // Segment 2 holds every cycle of the run (seqs 2..=227): flip its last byte, which
        // is the stored hash of seq 227.
        let (_db, events) = raw::events_tree(&ledger.data_dir()).unwrap();
        let key = Seq::new(2).to_key();
        let mut segment = events.get(key).unwrap().unwrap().to_vec();
        let last = segment.len() - 1;
        segment[last] ^= 0x01;
        events.insert(key, segment).unwrap();
        events.flush().unwrap();
    }
    let broken = ledger.run(&["verify"]);
    assert_eq!(broken.code, 1, "{}{}", broken.stdout, broken.stderr);
    assert!(broken.stdout.starts_with("FAILED at seq 227: hash mismatch"), "{}", broken.stdout);
    // Reads refuse it, and nothing is appended onto it: the tail is checked at open.
    let report = ledger.run(&["report", "--run", "1"]);
    assert_eq!(report.code, 2, "{}{}", report.stdout, report.stderr);
    assert!(report.stderr.contains("seq 227"), "{}", report.stderr);
    let append = ledger.run(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(append.code, 2, "{}{}", append.stdout, append.stderr);
    assert!(append.stderr.contains("seq 227"), "{}", append.stderr);
    assert!(ledger.run(&["verify"]).stdout.starts_with("FAILED at seq 227"), "nothing was appended");
}

#[test]
fn a_second_process_gets_a_clear_locked_error() {
    let ledger = small_ledger();
    let _held = SledLog::open(&ledger.data_dir(), Durability::Strict).unwrap();
    let run = ledger.run(&["verify"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is locked by another process"), "{}", run.stderr);
}

#[test]
fn the_kill_switch_persists_and_is_reset_by_an_operator_event() {
    let ledger = small_ledger();
    ledger.ok(&["kill-switch", "trip", "--by", "alice", "--reason", "drill"]);
    assert_eq!(ledger.ok(&["kill-switch", "status"]).trim(), "kill switch: TRIPPED");
    // A paper run started while tripped opens nothing (run 0 is the operator's).
    let config = ledger.dir.path().join("paper.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\nfiles = [{:?}]\n[provider]\nkind = \"rules\"\nstrategy = \"sma-cross\"\nparams = {{ fast = 2, slow = \"5\" }}\n",
            fixture("spy-daily-1998-q1.csv")
        ),
    )
    .unwrap();
    ledger.ok(&["run", "--config", config.to_str().unwrap(), "--speed", "0"]);
    let run2 = ledger.ok(&["events", "--run", "2", "--json"]);
    assert!(!run2.contains("OrderSubmitted"), "orders were placed while tripped");
    assert!(run2.contains("kill_switch"), "verdicts should name the kill switch check");
    ledger.ok(&["kill-switch", "reset", "--by", "bob", "--reason", "drill over"]);
    assert_eq!(ledger.ok(&["kill-switch", "status"]).trim(), "kill switch: armed");
    assert!(ledger.ok(&["events", "--run", "0"]).contains("by bob: drill over"));
}

#[test]
fn a_run_killed_with_sigkill_leaves_a_verifiable_ledger_that_carries_on() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("paper.toml");
    std::fs::write(&config, format!("[data]\nfile = {:?}\n", fixture("btcperp-1m-2022-01.csv"))).unwrap();
    let config = config.to_str().unwrap();
    // Paced at 1,000,000x (60 µs a bar, every cycle flushed): killed mid-run.
    let mut child = ledger.command(&["run", "--config", config, "--speed", "1000000"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    child.kill().unwrap(); // SIGKILL: no chance to stop cleanly
    child.wait().unwrap();
    let verify = ledger.ok(&["verify"]);
    assert!(verify.starts_with("ok: "), "{verify}");
    let runs = ledger.ok(&["runs"]);
    assert!(runs.contains("| 1   | Paper") && runs.contains("| -"), "the killed run has no stop: {runs}");
    // The next run continues the same chain after the recovered head.
    ledger.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    let verify = ledger.ok(&["verify"]);
    assert!(verify.starts_with("ok: "), "{verify}");
    assert!(ledger.ok(&["runs"]).contains("| 2   | Replay"));
}
