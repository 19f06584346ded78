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
        segment[4] = 4;
        events.insert(key, segment).unwrap();
        events.flush().unwrap();
    }
    let append = ledger.run(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(append.code, 2, "{}{}", append.stdout, append.stderr);
    assert!(
        append.stderr.contains("unknown record format version 4 (this build reads versions 1 to 3)"),
        "{}",
        append.stderr
    );
}

/// A full disk (here a file-size limit: `ulimit -f` with SIGXFSZ ignored makes sled's
/// writes fail with EFBIG, as ENOSPC would) stops `ledger run` mid-run with exit 2 and
/// one line naming the data directory and what failed: not a panic, not a hang. The
/// ledger then verifies, and the same `ledger run` without the limit continues the run
/// to its end, with the account of the run never interrupted. Paced runs fail in a
/// flush; fast ones, whose appends are large, often in the write of one of sled's blobs
/// (values over 128 KiB), which sled 0.34 leaves half done: that case is run three
/// times.
#[test]
fn a_full_disk_stops_the_run_with_one_clear_line_and_the_run_continues_after() {
    use crate::crash::{account, reference, Setup};
    use crate::harness::workspace_root;
    use std::time::{Duration, Instant};
    let setup = Setup::new();
    let reference = reference(&setup);
    let full = reference.payloads.len();
    // (speed, limit in 512-byte blocks): each fails after the ledger opened, mid-run.
    for (speed, blocks) in [("1000000", 512), ("0", 768), ("0", 1024), ("0", 1024), ("0", 1024)] {
        let case = format!("--speed {speed}, ulimit -f {blocks}");
        let ledger = Ledger::new();
        let data_dir = ledger.data_dir().display().to_string();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "ulimit -f \"$0\"; trap '' XFSZ; exec \"$@\"", &blocks.to_string()])
            .arg(env!("CARGO_BIN_EXE_ledger"))
            .args(["--data-dir", &data_dir, "run", "--config", &setup.config(), "--speed", speed])
            .current_dir(workspace_root())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(ledger.dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("{case}: ledger run hung on the full disk (killed after 30 s)");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(ledger.dir.path().join("stderr")).unwrap();
        assert_eq!(status.code(), Some(2), "{case}: {status:?}\n{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{case}: one error line\n{stderr}");
        assert!(errors[0].contains(&data_dir), "{case}: the error names the data dir\n{stderr}");
        assert!(errors[0].contains("File too large (os error 27)"), "{case}: the error says why\n{stderr}");
        for noise in ["panicked", "backtrace", "internal error", "Os {"] {
            assert!(!stderr.contains(noise), "{case}: {noise:?} in stderr\n{stderr}");
        }
        // What was written before the failure is intact, and it was mid-run.
        let verify = ledger.run(&["verify"]);
        assert_eq!(verify.code, 0, "{case}: {}{}", verify.stdout, verify.stderr);
        let events: usize = verify.stdout.split(' ').nth(1).and_then(|n| n.parse().ok()).unwrap();
        assert!(events > 100 && events < full, "{case}: {events} events of {full}");
        // Without the limit, the run continues to its end, as if never interrupted.
        ledger.ok(&["run", "--config", &setup.config(), "--speed", speed]);
        assert!(ledger.ok(&["verify"]).starts_with("ok: "), "{case}");
        let runs = ledger.ok(&["runs"]);
        assert_eq!(runs.matches("(end of data)").count(), 1, "{case}: {runs}");
        for from_scratch in [false, true] {
            assert_eq!(account(&ledger, from_scratch), reference.account, "{case}, from scratch: {from_scratch}");
        }
    }
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
