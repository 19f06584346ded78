//! The control endpoint from the commands' side: `status`, `runs`, `events [--follow]` and
//! `kill-switch` with no session running (the ledger read directly, a stale socket taken
//! for what it is), through a session, and the clear error of the commands that need the
//! ledger while a session holds it.
//!
//! A "fake session" here is this test process holding the ledger's lock and answering on
//! `control.sock` as the protocol says (docs/operations.md): it tests the client side
//! without a running `ledger run`. The tests marked `needs the session wiring` drive a
//! real `ledger run`, whose loop serves the endpoint.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger_adapters::sled_log::{Durability, SledLog};
use serde_json::{json, Value};

use crate::harness::{small_ledger, Ledger};

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill").args([name, &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

/// `ledger events --follow ...` running, its stdout lines read as they come.
struct Follower {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Follower {
    fn start(ledger: &Ledger, args: &[&str]) -> Follower {
        let mut child = ledger.command(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines, seen: Vec::new() }
    }

    /// Reads lines until one satisfies `done`; panics with what it saw after `timeout`.
    fn wait_for(&mut self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = done(&line);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!("no line with {what} within {timeout:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Ctrl-C: the follower ends with exit 0; every line it printed.
    fn interrupt(mut self) -> (ExitStatus, Vec<String>) {
        signal(self.child.id(), "-INT");
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status, std::mem::take(&mut self.seen))
    }

    /// Waits for the follower to exit by itself (at its --limit).
    fn finish(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.seen.extend(self.lines.iter());
                return (status, std::mem::take(&mut self.seen));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the follower did not end within {timeout:?}; saw:\n{}", self.seen.join("\n"));
    }
}

impl Drop for Follower {
    /// A failed test leaves no follower running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).unwrap()["header"]["seq"].as_u64().unwrap()
}

fn payload_kind(line: &str) -> String {
    let value: Value = serde_json::from_str(line).unwrap();
    value["payload"].as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// No session running.
// ---------------------------------------------------------------------------------------

#[test]
fn status_without_a_session_names_the_latest_run_and_the_kill_switch() {
    let ledger = small_ledger();
    // TC0: text.
    let text = ledger.ok(&["status"]);
    let dir = ledger.data_dir().display().to_string();
    assert_eq!(
        text,
        format!(
            "no session is running on {dir}\nlatest run:  1 (Replay), last seq 227, stopped 1998-03-30T00:00:00.000000Z (end of data)\nkill switch: armed\n"
        )
    );
    // TC1: JSON, after a trip (recorded under the operator run, which is not "the latest run").
    ledger.ok(&["kill-switch", "trip", "--by", "alice", "--reason", "drill"]);
    let value: Value = serde_json::from_str(&ledger.ok(&["status", "--json"])).unwrap();
    assert_eq!(value["running"], json!(false));
    assert_eq!(value["kill_switch_tripped"], json!(true));
    assert_eq!(value["latest_run"]["run_id"], json!(1));
    assert_eq!(value["latest_run"]["last_seq"], json!(227));
    // TC2: no ledger there: an error, as for every reading command.
    let empty = Ledger::new();
    let run = empty.run(&["status"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("no ledger at"), "{}", run.stderr);
}

#[test]
fn a_killed_run_shows_as_interrupted_in_status() {
    let ledger = small_ledger();
    let args = ["run", "--data", "fixtures/spy-daily-1998-q1.csv", "--speed", "86400"];
    let mut child = ledger.command(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    child.kill().unwrap(); // SIGKILL: no RunStopped, and (once served) a stale socket left
    child.wait().unwrap();
    let text = ledger.ok(&["status"]);
    assert!(text.starts_with("no session is running on "), "{text}");
    assert!(text.contains("latest run:  2 (Paper), last seq "), "{text}");
    assert!(text.contains(", interrupted (no RunStopped)\n"), "{text}");
    assert!(ledger.ok(&["verify"]).starts_with("ok: "));
}

#[test]
fn a_stale_socket_is_no_session() {
    let ledger = small_ledger();
    let dir = ledger.data_dir();
    // What a session killed with SIGKILL leaves: a socket nobody listens on, its token.
    drop(UnixListener::bind(dir.join("control.sock")).unwrap());
    std::fs::write(dir.join("control.token"), format!("{}\n", "ab".repeat(32))).unwrap();
    assert!(ledger.ok(&["status"]).starts_with("no session is running on "));
    assert!(ledger.ok(&["runs"]).contains("| 1   | Replay"));
    assert_eq!(ledger.ok(&["events", "--from", "227", "--json"]).lines().count(), 1);
    assert_eq!(
        ledger.ok(&["kill-switch", "trip", "--by", "alice", "--reason", "drill"]),
        "kill switch tripped (seq 228)\n"
    );
    assert_eq!(ledger.ok(&["kill-switch", "status"]), "kill switch: TRIPPED\n");
    assert!(ledger.ok(&["verify"]).starts_with("ok: 228 events"));
}

#[test]
fn events_follow_without_a_session_picks_up_a_later_trip() {
    let ledger = small_ledger();
    // TC0: JSON from the last stored event on; a trip made by another process appears.
    let mut follower = Follower::start(&ledger, &["events", "--follow", "--json", "--from", "227"]);
    follower.wait_for("seq 227", Duration::from_secs(10), |line| seq_of(line) == 227);
    // The follower opens the ledger only for moments: the trip gets the lock.
    assert_eq!(
        ledger.ok(&["kill-switch", "trip", "--by", "alice", "--reason", "drill"]),
        "kill switch tripped (seq 228)\n"
    );
    follower.wait_for("the trip", Duration::from_secs(10), |line| payload_kind(line) == "KillSwitchTripped");
    // Ctrl-C ends it, exit 0, and nothing was printed twice.
    let (status, lines) = follower.interrupt();
    assert!(status.success(), "{status:?}");
    assert_eq!(lines.iter().map(|l| seq_of(l)).collect::<Vec<_>>(), vec![227, 228]);
    // TC1: --limit caps the total: the follower ends by itself after its second event.
    let follower = Follower::start(&ledger, &["events", "--follow", "--json", "--from", "228", "--limit", "2"]);
    std::thread::sleep(Duration::from_millis(700));
    ledger.ok(&["kill-switch", "reset", "--by", "alice", "--reason", "done"]);
    ledger.ok(&["kill-switch", "trip", "--by", "alice", "--reason", "again"]);
    let (status, lines) = follower.finish(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert_eq!(lines.iter().map(|l| seq_of(l)).collect::<Vec<_>>(), vec![228, 229]);
    // TC2: a table, for one run only: the operator's trips are not run 1's.
    let mut follower = Follower::start(&ledger, &["events", "--follow", "--run", "1", "--from", "226"]);
    follower.wait_for("seq 227's row", Duration::from_secs(10), |line| line.starts_with("| 227 "));
    ledger.ok(&["kill-switch", "reset", "--by", "alice", "--reason", "done"]);
    std::thread::sleep(Duration::from_millis(1200));
    let (status, lines) = follower.interrupt();
    assert!(status.success());
    assert!(!lines.iter().any(|line| line.contains("KillSwitch")), "{lines:?}");
}

// ---------------------------------------------------------------------------------------
// A fake session: this process holds the ledger and answers on its socket.
// ---------------------------------------------------------------------------------------

/// This process holding the ledger's lock and answering on `control.sock`: status and
/// runs as given, every events request with `events` (then, when following, nothing
/// until it ends), kill-switch commands with `command_answer`.
struct FakeSession {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    /// The requests it got, in order.
    requests: Arc<Mutex<Vec<Value>>>,
    lock: Option<SledLog>,
}

#[derive(Clone)]
struct Answers {
    status: Value,
    runs: Value,
    events: Vec<String>,
    command_answer: Value,
}

impl FakeSession {
    fn start(ledger: &Ledger, answers: Answers) -> FakeSession {
        let dir = ledger.data_dir();
        let lock = SledLog::open(&dir, Durability::Strict).unwrap();
        let token = "5e".repeat(32);
        std::fs::write(dir.join("control.token"), format!("{token}\n")).unwrap();
        let listener = UnixListener::bind(dir.join("control.sock")).unwrap();
        let (stop, requests) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let accept = {
            let (stop, requests) = (Arc::clone(&stop), Arc::clone(&requests));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let (stop, requests, answers, token) =
                        (Arc::clone(&stop), Arc::clone(&requests), answers.clone(), token.clone());
                    std::thread::spawn(move || serve_fake(stream.unwrap(), &token, &answers, &requests, &stop));
                }
            })
        };
        FakeSession { dir, stop, accept: Some(accept), requests, lock: Some(lock) }
    }

    fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeSession {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(self.dir.join("control.sock"));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let _ = std::fs::remove_file(self.dir.join("control.sock"));
        let _ = std::fs::remove_file(self.dir.join("control.token"));
        // Followers got their `end` within their next poll; then the lock goes.
        std::thread::sleep(Duration::from_millis(300));
        drop(self.lock.take());
    }
}

fn serve_fake(stream: UnixStream, token: &str, answers: &Answers, requests: &Mutex<Vec<Value>>, stop: &AtomicBool) {
    let mut out = stream.try_clone().unwrap();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let line: Value = serde_json::from_str(&line).unwrap();
        if line["token"] != json!(token) {
            let _ = writeln!(out, r#"{{"error":"refused: wrong or missing token"}}"#);
            return;
        }
        let request = line["request"].clone();
        requests.lock().unwrap().push(request.clone());
        let written = match request["type"].as_str().unwrap() {
            "status" => writeln!(out, "{}", json!({ "status": answers.status })),
            "runs" => writeln!(out, "{}", json!({ "runs": answers.runs })),
            "kill_switch" => writeln!(out, "{}", answers.command_answer),
            "events" => {
                let mut next = request["from"].as_u64().unwrap();
                for event in &answers.events {
                    writeln!(out, r#"{{"event":{event}}}"#).unwrap();
                    next = seq_of(event) + 1;
                }
                if request["follow"] == json!(true) {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    writeln!(out, "{}", json!({ "end": { "next": next, "session_ended": true } }))
                } else {
                    writeln!(out, "{}", json!({ "end": { "next": next, "session_ended": false } }))
                }
            }
            other => panic!("the client sent {other}"),
        };
        if written.is_err() {
            return;
        }
    }
}

fn fake_status(tripped: bool) -> Value {
    json!({
        "run_id": 7, "mode": "Paper", "pid": 4242, "started_ns": 1_700_000_000_000_000_000i64,
        "cycle": 12, "head_seq": 230, "durable_seq": 227,
        "last_tick_ns": 1_700_000_060_000_000_000i64, "last_cycle_ns": 1_700_000_061_000_000_000i64,
        "cash": "99000.5", "equity": "100250.75", "realized_pnl": "250", "fees": "1.25",
        "positions": [{"instrument": "SPY", "qty": "10", "avg_price": "100", "mark": "125.1",
                       "unrealized_pnl": "251"}],
        "kill_switch_tripped": tripped, "working_orders": 1
    })
}

/// The small ledger's answers as a session would give them, read before it is locked.
fn answers_of(ledger: &Ledger) -> Answers {
    let status: Value = serde_json::from_str(&ledger.ok(&["status", "--json"])).unwrap();
    Answers {
        status: fake_status(false),
        runs: json!([status["latest_run"]]),
        events: ledger.ok(&["events", "--json"]).lines().map(str::to_string).collect(),
        command_answer: json!({ "recorded": 999 }),
    }
}

#[test]
fn commands_that_need_the_ledger_name_the_running_session() {
    let ledger = small_ledger();
    let _session = FakeSession::start(&ledger, answers_of(&ledger));
    let expected = format!(
        "error: a session is running on {} (run 7, pid 4242): stop it first (`ledger kill-switch trip` or SIGTERM), or use `ledger status` / `ledger events --follow`\n",
        ledger.data_dir().display()
    );
    let commands: [&[&str]; 5] = [
        &["verify"],
        &["report", "--run", "1"],
        &["rebuild"],
        &["replay", "--data", "fixtures/spy-daily-1998-q1.csv"],
        &["run", "--data", "fixtures/spy-daily-1998-q1.csv", "--speed", "0"],
    ];
    for args in commands {
        let run = ledger.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert_eq!(run.stderr, expected, "{args:?}");
    }
}

#[test]
fn status_runs_events_and_the_kill_switch_go_through_a_running_session() {
    let ledger = small_ledger();
    let direct_runs = ledger.ok(&["runs"]);
    let direct_table = ledger.ok(&["events"]);
    let direct_json = ledger.ok(&["events", "--json"]);
    let session = FakeSession::start(&ledger, answers_of(&ledger));
    // TC0: status, as text.
    let text = ledger.ok(&["status"]);
    let dir = ledger.data_dir().display().to_string();
    let expected = [
        format!("session running on {dir}"),
        "run:            7 (Paper), pid 4242, started 2023-11-14T22:13:20.000000Z".into(),
        "cycle:          12".into(),
        "seq:            head 230, durable 227 (3 unflushed)".into(),
        "last tick:      2023-11-14T22:14:20.000000Z (cycle at 2023-11-14T22:14:21.000000Z)".into(),
        "cash:           99000.5".into(),
        "equity:         100250.75".into(),
        "realized P&L:   250".into(),
        "fees:           1.25".into(),
        "kill switch:    armed".into(),
        "working orders: 1".into(),
    ];
    assert_eq!(text.lines().take(expected.len()).collect::<Vec<_>>(), expected);
    assert!(text.contains("| SPY        | 10  | 100       | 125.1 | 251            |"), "{text}");
    // TC1: status as JSON.
    let value: Value = serde_json::from_str(&ledger.ok(&["status", "--json"])).unwrap();
    assert_eq!(value["running"], json!(true));
    assert_eq!(value["session"], fake_status(false));
    // TC2: runs and events print as they do from the ledger (runs without what only the
    // ledger holds: strategy, data, return; the index's own columns the same).
    let index_columns = |table: &str| -> Vec<String> {
        let keep = |line: &str| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            [1, 2, 8, 9, 10, 11]
                .iter()
                .map(|&i| cells.get(i).copied().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join("|")
        };
        table.lines().filter(|l| !l.starts_with("|--")).map(keep).collect()
    };
    let through_session = ledger.ok(&["runs"]);
    assert_eq!(index_columns(&through_session), index_columns(&direct_runs));
    assert!(
        through_session.contains("| 1   | Replay | -        | -      | -    | -        | -      |"),
        "{through_session}"
    );
    assert_eq!(ledger.ok(&["events"]), direct_table);
    assert_eq!(ledger.ok(&["events", "--json"]), direct_json);
    // TC3: the kill switch: the command is checked here, then recorded by the session.
    assert_eq!(ledger.ok(&["kill-switch", "status"]), "kill switch: armed\n");
    assert_eq!(
        ledger.ok(&["kill-switch", "trip", "--by", " alice ", "--reason", "drill"]),
        "kill switch tripped (seq 999)\n"
    );
    let bad = ledger.run(&["kill-switch", "trip", "--by", "", "--reason", "drill"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--by must not be empty"), "{}", bad.stderr);
    let requests = session.requests();
    let sent: Vec<_> = requests.iter().filter(|r| r["type"] == json!("kill_switch")).collect();
    assert_eq!(sent, [&json!({"type": "kill_switch", "command": "trip", "by": "alice", "reason": "drill"})]);
    let events: Vec<_> = requests.iter().filter(|r| r["type"] == json!("events")).collect();
    assert_eq!(events[0], &json!({"type": "events", "from": 1, "run": null, "limit": null, "follow": false}));
}

#[test]
fn a_refusal_by_the_session_is_an_error() {
    let ledger = small_ledger();
    let answers = Answers {
        status: fake_status(true),
        command_answer: json!({ "refused": "the kill switch is already tripped" }),
        ..answers_of(&ledger)
    };
    let _session = FakeSession::start(&ledger, answers);
    assert_eq!(ledger.ok(&["kill-switch", "status"]), "kill switch: TRIPPED\n");
    let run = ledger.run(&["kill-switch", "trip", "--by", "alice", "--reason", "again"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, "error: the kill switch is already tripped\n");
}

#[test]
fn events_follow_moves_from_a_session_to_the_ledger_when_it_ends() {
    let ledger = small_ledger();
    let answers = Answers {
        events: ledger.ok(&["events", "--json", "--from", "226"]).lines().map(str::to_string).collect(),
        ..answers_of(&ledger)
    };
    let session = FakeSession::start(&ledger, answers);
    let mut follower = Follower::start(&ledger, &["events", "--follow", "--json", "--from", "226"]);
    follower.wait_for("seq 227 from the session", Duration::from_secs(10), |line| seq_of(line) == 227);
    let asked = session.requests();
    assert_eq!(asked[0], json!({"type": "events", "from": 226, "run": null, "limit": null, "follow": true}));
    // The session ends; the next event is appended with none running.
    drop(session);
    assert_eq!(
        ledger.ok(&["kill-switch", "trip", "--by", "alice", "--reason", "drill"]),
        "kill switch tripped (seq 228)\n"
    );
    follower.wait_for("the trip", Duration::from_secs(10), |line| seq_of(line) == 228);
    let (status, lines) = follower.interrupt();
    assert!(status.success());
    assert_eq!(lines.iter().map(|l| seq_of(l)).collect::<Vec<_>>(), vec![226, 227, 228]);
}

// ---------------------------------------------------------------------------------------
// A real session (`ledger run` serving its endpoint).
// ---------------------------------------------------------------------------------------

/// A paced paper run (one SPY day a second), started and waited for until it answers.
fn start_session(ledger: &Ledger) -> Session {
    let args = [
        "run",
        "--data",
        "fixtures/spy-daily-1998-q1.csv",
        "--strategy",
        "sma-cross",
        "--param",
        "fast=2",
        "--param",
        "slow=5",
        "--speed",
        "86400",
    ];
    let mut child = ledger.command(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Waits for the socket to take connections (a stale one refuses them) before asking:
    // `status` with no session would open the ledger, racing the session for its lock.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if UnixStream::connect(ledger.data_dir().join("control.sock")).is_ok() {
            let run = ledger.run(&["status"]);
            assert!(run.stdout.starts_with("session running on "), "{}{}", run.stdout, run.stderr);
            return Session(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the session did not answer within 20 s");
}

/// A `ledger run` child, killed if a failed test leaves it running.
struct Session(Child);

impl Session {
    fn id(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM: the run stops on the record, exit 0, its socket and token removed.
    fn stop(mut self, data_dir: &Path) {
        signal(self.0.id(), "-TERM");
        assert!(self.0.wait().unwrap().success());
        assert!(!data_dir.join("control.sock").exists(), "the socket is removed");
        assert!(!data_dir.join("control.token").exists(), "the token is removed");
    }

    /// SIGKILL: nothing is cleaned up.
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_session_answers_status_runs_and_the_kill_switch() {
    let ledger = small_ledger();
    let session = start_session(&ledger);
    let pid = session.id();
    let text = ledger.ok(&["status"]);
    assert!(text.contains(&format!("run:            2 (Paper), pid {pid}, started ")), "{text}");
    let value: Value = serde_json::from_str(&ledger.ok(&["status", "--json"])).unwrap();
    assert_eq!(value["running"], json!(true));
    assert_eq!(value["session"]["pid"], json!(pid));
    assert!(ledger.ok(&["runs"]).contains("| 2   | Paper"));
    assert_eq!(ledger.ok(&["kill-switch", "status"]), "kill switch: armed\n");
    // Recorded by the session, durable before it answers: `events` shows it at once.
    let tripped = ledger.ok(&["kill-switch", "trip", "--by", "ci", "--reason", "drill"]);
    let seq: u64 =
        tripped.trim().strip_prefix("kill switch tripped (seq ").unwrap().trim_end_matches(')').parse().unwrap();
    let shown = ledger.ok(&["events", "--from", &seq.to_string(), "--limit", "1", "--json"]);
    assert_eq!(seq_of(&shown), seq);
    assert_eq!(payload_kind(&shown), "KillSwitchTripped");
    assert_eq!(ledger.ok(&["kill-switch", "status"]), "kill switch: TRIPPED\n");
    assert_eq!(ledger.run(&["kill-switch", "trip", "--by", "ci", "--reason", "again"]).code, 2);
    assert!(ledger
        .ok(&["kill-switch", "reset", "--by", "ci", "--reason", "done"])
        .starts_with("kill switch reset (seq "));
    session.stop(&ledger.data_dir());
    assert!(ledger.ok(&["status"]).starts_with("no session is running on "));
    assert!(ledger.ok(&["verify"]).starts_with("ok: "));
}

#[test]
fn commands_that_need_the_ledger_name_a_real_session() {
    let ledger = small_ledger();
    let session = start_session(&ledger);
    let expected = format!("a session is running on {} (run 2, pid {})", ledger.data_dir().display(), session.id());
    for args in [&["verify"][..], &["rebuild"], &["run", "--data", "fixtures/spy-daily-1998-q1.csv", "--speed", "0"]] {
        let run = ledger.run(args);
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stderr.contains(&expected), "{args:?}: {}", run.stderr);
    }
    session.stop(&ledger.data_dir());
}

#[test]
fn events_follow_through_a_running_session_and_after_it() {
    let ledger = small_ledger();
    let mut follower = Follower::start(&ledger, &["events", "--follow", "--json", "--from", "227"]);
    follower.wait_for("seq 227", Duration::from_secs(10), |line| seq_of(line) == 227);
    let session = start_session(&ledger);
    follower.wait_for("the run's start", Duration::from_secs(20), |line| payload_kind(line) == "RunStarted");
    ledger.ok(&["kill-switch", "trip", "--by", "ci", "--reason", "drill"]);
    follower.wait_for("the trip", Duration::from_secs(20), |line| payload_kind(line) == "KillSwitchTripped");
    session.stop(&ledger.data_dir());
    follower.wait_for("the run's stop", Duration::from_secs(20), |line| payload_kind(line) == "RunStopped");
    ledger.ok(&["kill-switch", "reset", "--by", "ci", "--reason", "done"]);
    follower.wait_for("the reset", Duration::from_secs(20), |line| payload_kind(line) == "KillSwitchReset");
    let (status, lines) = follower.interrupt();
    assert!(status.success());
    // Every event once, in order, exactly as `ledger events` prints them.
    let all = ledger.ok(&["events", "--from", "227", "--json"]);
    assert_eq!(lines, all.lines().collect::<Vec<_>>());
}

#[test]
fn a_session_killed_with_sigkill_leaves_a_stale_socket_the_next_one_replaces_and_resumes_the_run() {
    let ledger = small_ledger();
    let dir = ledger.data_dir();
    let mut session = start_session(&ledger);
    session.kill();
    assert!(dir.join("control.sock").exists(), "SIGKILL leaves the socket");
    let text = ledger.ok(&["status"]);
    assert!(text.starts_with("no session is running on "), "{text}");
    assert!(text.contains(", interrupted (no RunStopped)"), "{text}");
    assert_eq!(ledger.ok(&["kill-switch", "status"]), "kill switch: armed\n");
    // The next session continues the interrupted run.
    let session = start_session(&ledger);
    let status = ledger.ok(&["status"]);
    assert!(status.contains(&format!("run:            2 (Paper), pid {}", session.id())), "{status}");
    session.stop(&dir);
}
