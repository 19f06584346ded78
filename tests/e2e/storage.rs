//! Damaged storage: sled's own failures become clear errors (exit 2, naming the data
//! directory), never a panic.

use crate::harness::Ledger;

#[test]
fn a_db_file_from_another_ledger_is_a_clear_error_not_a_panic() {
    let (a, b) = (Ledger::new(), Ledger::new());
    a.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    b.ok(&["replay", "--data", "fixtures/btcperp-1m-2022-01.csv"]);
    std::fs::copy(b.data_dir().join("db"), a.data_dir().join("db")).unwrap();
    for command in [&["verify"][..], &["runs"], &["events", "--limit", "1"], &["report", "--run", "1"]] {
        let run = a.run(command);
        assert_eq!(run.code, 2, "{command:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("not a ledger's"), "{command:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{command:?}: {}", run.stderr);
    }
}

/// `verify` checks the folds kept as snapshots (the runs index, the kill switch) against
/// the events: a snapshot that does not match them fails the check, though every record
/// is intact.
#[test]
fn verify_refuses_a_runs_index_snapshot_that_does_not_match_the_events() {
    use ledger_adapters::sled_log::{Durability, SledLog};
    use ledger_core::log::EventLog;
    let (a, b) = (Ledger::new(), Ledger::new());
    a.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    a.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv", "--strategy", "ema-rsi"]);
    b.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv", "--param", "fast=2", "--param", "slow=3"]);
    assert!(a.ok(&["verify"]).starts_with("ok: "));
    let foreign = SledLog::open(&b.data_dir(), Durability::Strict).unwrap().snapshot("runs/2").unwrap().unwrap();
    SledLog::open(&a.data_dir(), Durability::Strict).unwrap().put_snapshot("runs/2", &foreign).unwrap();
    let run = a.run(&["verify"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("the runs index kept as a snapshot does not match the events"), "{}", run.stdout);
}

/// Snapshots are written after the events they cover: one that covers more than the log
/// holds means records were cut off the tail, and `verify` says so (exit 1).
#[test]
fn verify_names_records_missing_behind_a_snapshot() {
    use ledger_adapters::sled_log::{Durability, SledLog};
    use ledger_core::log::EventLog;
    let (a, b) = (Ledger::new(), Ledger::new());
    a.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    b.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    b.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    let ahead = SledLog::open(&b.data_dir(), Durability::Strict).unwrap().snapshot("runs/2").unwrap().unwrap();
    SledLog::open(&a.data_dir(), Durability::Strict).unwrap().put_snapshot("runs/2", &ahead).unwrap();
    let run = a.run(&["verify"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("missing records: the ledger's snapshots cover seq"), "{}", run.stdout);
}

/// A ledger whose records were written by a newer format is refused with the versions,
/// not read as damage and not appended to.
#[test]
fn a_record_of_a_newer_format_is_refused_naming_the_versions() {
    use ledger_adapters::sled_log::raw;
    let ledger = Ledger::new();
    ledger.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    {
        // The last segment's first record: its format byte follows the 4-byte length.
        let (_db, events) = raw::events_tree(&ledger.data_dir()).unwrap();
        let (key, segment) = events.last().unwrap().unwrap();
        let mut segment = segment.to_vec();
        segment[4] = 3;
        events.insert(key, segment).unwrap();
        events.flush().unwrap();
    }
    let append = ledger.run(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(append.code, 2, "{}{}", append.stdout, append.stderr);
    assert!(
        append.stderr.contains("unknown record format version 3 (this build reads versions 1 to 2)"),
        "{}",
        append.stderr
    );
}

/// sled recovers a prefix of its log, so a `db` file cut short reads as a shorter,
/// intact ledger, its own head and snapshots cut with it: the head file written beside it
/// at every flush names what was durable, and `verify` names the first missing seq (exit
/// 1, not sled's message, not "ok"); appends are refused. A head file that does not check
/// out is not trusted (and does not stop the ledger).
#[test]
fn a_db_file_cut_short_is_named_at_the_first_missing_seq() {
    let ledger = Ledger::new();
    ledger.ok(&["replay", "--data", "fixtures/btcperp-1m-2022-01.csv"]);
    let db = ledger.data_dir().join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(len / 6).unwrap();
    drop(file);
    let verify = ledger.run(&["verify"]);
    assert_eq!(verify.code, 1, "{}{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains("missing records: the ledger recorded its head at seq 32477"), "{}", verify.stdout);
    assert!(verify.stdout.starts_with("FAILED at seq "), "{}", verify.stdout);
    let append = ledger.run(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(append.code, 2, "{}{}", append.stdout, append.stderr);
    assert!(append.stderr.contains("are missing (the ledger recorded its head at 32477)"), "{}", append.stderr);
    assert!(!append.stderr.contains("panicked"), "{}", append.stderr);
    // A damaged head file is not trusted: the ledger reads as its log has it.
    std::fs::write(ledger.data_dir().join("ledger.head"), b"not a head file").unwrap();
    let verify = ledger.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}
