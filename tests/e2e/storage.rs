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
