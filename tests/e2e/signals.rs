//! Signals a service manager sends: SIGTERM stops a paced run after the current cycle
//! with `RunStopped`, like Ctrl-C; a second signal stops at once; the ledger verifies.

use crate::harness::Ledger;

fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill").args([name, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_stops_a_paced_run_on_the_record_and_a_second_signal_at_once() {
    let ledger = Ledger::new();
    let args = ["run", "--data", "fixtures/spy-daily-1998-q1.csv", "--speed", "1"];
    // TC0: one SIGTERM: the current cycle ends, RunStopped (interrupted), exit 0.
    let mut child = ledger.command(&args).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    assert!(ledger.ok(&["runs"]).contains("(interrupted)"));
    // TC1: two signals: out at once (exit 130), no RunStopped, the chain intact.
    let mut child = ledger.command(&args).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    signal(&child, "-TERM");
    signal(&child, "-INT");
    let status = child.wait().unwrap();
    assert!(status.code() == Some(130) || status.success(), "{status:?}");
    assert!(ledger.ok(&["verify"]).starts_with("ok: "));
}
