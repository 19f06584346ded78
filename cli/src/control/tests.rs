//! The control endpoint against a [`SessionLink`] over an in-memory log: the protocol's
//! refusals, each request's round trip, following, commands, and the files' life.

use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_core::event::{EventDraft, KillSwitchReset, Payload};
use ledger_core::ids::{CycleId, RunId, Seq};
use ledger_core::log::{visit_events, EventLog, MemLog};
use ledger_core::time::TimestampNs;
use ledger_projections::runs::RunSummary;

use super::client::Received;
use super::*;
use crate::session_link::{PositionStatus, SessionLink};

fn draft(run: u64, n: u64) -> EventDraft {
    let now = TimestampNs::from_nanos(1_700_000_000_000_000_000 + n as i64 * 1_000);
    EventDraft {
        run_id: RunId::new(run),
        cycle_id: CycleId::new(n),
        causation_seq: None,
        ts_event: now,
        ts_recorded: now,
        payload: Payload::KillSwitchReset(KillSwitchReset {
            by: Arc::from("tester"),
            reason: Arc::from(format!("event {n} \u{1b}[31m")),
        }),
    }
}

fn append(log: &mut MemLog, run: u64, count: u64) {
    let first = log.head().seq.get();
    let mut batch: Vec<_> = (1..=count).map(|n| draft(run, first + n)).collect();
    log.append(&mut batch).unwrap();
}

fn summary(run: u64, first: u64, last: u64) -> RunSummary {
    RunSummary {
        run_id: RunId::new(run),
        mode: Some(ledger_core::event::RunMode::Paper),
        first_seq: Seq::new(first),
        last_seq: Seq::new(last),
        event_count: last - first + 1,
        started: TimestampNs::from_nanos(1_700_000_000_000_000_000),
        stopped: None,
        stop_reason: None,
        resumes: 0,
    }
}

/// A session on an in-memory log of `events` events of run 1, serving in a temp dir.
struct Session {
    dir: tempfile::TempDir,
    log: MemLog,
    link: Arc<SessionLink>,
    server: Option<Server>,
}

impl Session {
    fn new(events: u64) -> Session {
        let mut log = MemLog::new();
        append(&mut log, 1, events);
        let link = Arc::new(SessionLink::new(log.reader().unwrap(), log.head().seq));
        link.set_status(SessionStatus {
            run_id: 1,
            mode: "Paper".into(),
            pid: 4242,
            cycle: 7,
            head_seq: events,
            durable_seq: events,
            cash: "1000.50".into(),
            positions: vec![PositionStatus {
                instrument: "SPY".into(),
                qty: "2".into(),
                avg_price: "100".into(),
                mark: "101".into(),
                unrealized_pnl: "2".into(),
            }],
            ..SessionStatus::default()
        });
        link.set_runs(vec![summary(1, 1, events)]);
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), Arc::clone(&link)).unwrap();
        assert!(server.is_serving());
        Session { dir, log, link, server: Some(server) }
    }

    fn client(&self) -> Client {
        Client::connect(self.dir.path()).expect("the session answers")
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(TOKEN_FILE)).unwrap().trim().to_string()
    }

    /// A raw connection, for lines the client would never send.
    fn raw(&self) -> (UnixStream, BufReader<UnixStream>) {
        let stream = UnixStream::connect(self.dir.path().join(SOCKET_FILE)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    }

    /// Every event of the log, read as the server reads them.
    fn stored(&self) -> Vec<Envelope> {
        let mut events = Vec::new();
        visit_events(&self.log, Seq::new(1), &mut |event| {
            events.push(event);
            ControlFlow::Continue(())
        })
        .unwrap();
        events
    }
}

/// The next answer line; `None` when the server has closed the connection (a reset when
/// it closed with our unread bytes in its buffer).
fn answer(reader: &mut BufReader<UnixStream>) -> Option<Response> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(error) => panic!("{error}"),
    }
}

/// The answer lines of one events request, until its `end` (which is returned too).
fn read_events(client: &mut Client) -> (Vec<Envelope>, Option<EventsEnd>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while Instant::now() < deadline {
        match client.recv().unwrap() {
            Received::Answer(Response::Event(event)) => events.push(*event),
            Received::Answer(Response::End(end)) => return (events, Some(end)),
            Received::Answer(other) => panic!("unexpected {other:?}"),
            Received::Nothing => {}
            Received::Closed => return (events, None),
        }
    }
    panic!("no end within 10 s; got {} events", events.len());
}

#[test]
fn requests_and_answers_have_the_documented_shape() {
    // (label, value, its JSON)
    let trip = OperatorCommand::Trip { by: "alice".into(), reason: "drill".into() };
    let cases: [(&str, Request, &str); 4] = [
        ("TC0: status", Request::Status, r#"{"type":"status"}"#),
        ("TC1: runs", Request::Runs, r#"{"type":"runs"}"#),
        (
            "TC2: kill switch",
            Request::KillSwitch(trip),
            r#"{"type":"kill_switch","command":"trip","by":"alice","reason":"drill"}"#,
        ),
        (
            "TC3: events",
            Request::Events(EventsRequest { from: Seq::new(5), run: Some(RunId::new(2)), limit: None, follow: true }),
            r#"{"type":"events","from":5,"run":2,"limit":null,"follow":true}"#,
        ),
    ];
    for (label, request, json) in cases {
        assert_eq!(serde_json::to_string(&request).unwrap(), json, "{label}");
        assert_eq!(serde_json::from_str::<Request>(json).unwrap(), request, "{label}");
    }
    // Optional fields of an events request may be left out.
    let short: Request = serde_json::from_str(r#"{"type":"events","from":1}"#).unwrap();
    assert_eq!(short, Request::Events(EventsRequest { from: Seq::new(1), run: None, limit: None, follow: false }));
    let end = Response::End(EventsEnd { next: Seq::new(9), session_ended: true });
    assert_eq!(serde_json::to_string(&end).unwrap(), r#"{"end":{"next":9,"session_ended":true}}"#);
    assert_eq!(serde_json::to_string(&Response::Recorded(Seq::new(3))).unwrap(), r#"{"recorded":3}"#);
}

#[test]
fn an_event_survives_the_wire_exactly() {
    // `ledger events --json` prints what it got through the socket: it must print the
    // same bytes as from the ledger.
    let session = Session::new(3);
    for event in session.stored() {
        let wire = serde_json::to_string(&Response::Event(Box::new(event.clone()))).unwrap();
        let Response::Event(back) = serde_json::from_str(&wire).unwrap() else { panic!("not an event") };
        assert_eq!(*back, event);
        assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&event).unwrap());
    }
}

#[test]
fn status_and_runs_round_trip() {
    let session = Session::new(5);
    let mut client = session.client();
    // TC0, TC1: two requests on one connection.
    assert_eq!(client.status().unwrap(), session.link.status());
    assert_eq!(client.runs().unwrap(), session.link.runs());
}

#[test]
fn a_wrong_or_missing_token_is_refused_and_the_connection_closed() {
    let session = Session::new(1);
    let wrong = "0".repeat(64);
    // (label, line)
    let cases = [
        ("TC0: wrong token", format!(r#"{{"token":"{wrong}","request":{{"type":"status"}}}}"#)),
        ("TC1: no token", r#"{"request":{"type":"status"}}"#.to_string()),
        (
            "TC2: the token one digit short",
            format!(r#"{{"token":"{}","request":{{"type":"status"}}}}"#, &session.token()[1..]),
        ),
        ("TC3: a token that is not a string", r#"{"token":7,"request":{"type":"status"}}"#.to_string()),
    ];
    for (label, line) in cases {
        let (mut stream, mut reader) = session.raw();
        writeln!(stream, "{line}").unwrap();
        match answer(&mut reader) {
            Some(Response::Error(message)) => {
                assert!(message.contains("refused") || message.contains("malformed"), "{label}: {message}")
            }
            other => panic!("{label}: {other:?}"),
        }
        assert_eq!(answer(&mut reader), None, "{label}: closed after the refusal");
    }
}

#[test]
fn malformed_and_oversized_lines_get_an_error_not_a_panic() {
    let session = Session::new(1);
    // TC0: not JSON: an error, and the connection is closed.
    let (mut stream, mut reader) = session.raw();
    stream.write_all(b"this is not json\n").unwrap();
    assert!(matches!(answer(&mut reader), Some(Response::Error(m)) if m.starts_with("malformed request line")));
    assert_eq!(answer(&mut reader), None);
    // TC1: a line beyond 64 KiB: an error after 64 KiB, without waiting for its end.
    let (mut stream, mut reader) = session.raw();
    stream.write_all(&vec![b'{'; MAX_REQUEST_BYTES + 100]).unwrap();
    assert!(matches!(answer(&mut reader), Some(Response::Error(m)) if m.contains("longer than 65536 bytes")));
    assert_eq!(answer(&mut reader), None);
    // TC2: invalid UTF-8.
    let (mut stream, mut reader) = session.raw();
    stream.write_all(b"{\"token\":\"\xff\xfe\"}\n").unwrap();
    assert!(matches!(answer(&mut reader), Some(Response::Error(_))));
    // TC3: with the right token, a request the session does not know is an error and the
    // connection stays open for the next one.
    let (mut stream, mut reader) = session.raw();
    let token = session.token();
    writeln!(stream, r#"{{"token":"{token}","request":{{"type":"shutdown"}}}}"#).unwrap();
    assert!(matches!(answer(&mut reader), Some(Response::Error(m)) if m.starts_with("bad request")));
    writeln!(stream, r#"{{"token":"{token}","request":{{"type":"events","from":"x"}}}}"#).unwrap();
    assert!(matches!(answer(&mut reader), Some(Response::Error(m)) if m.starts_with("bad request")));
    writeln!(stream, r#"{{"token":"{token}"}}"#).unwrap();
    assert!(matches!(answer(&mut reader), Some(Response::Error(m)) if m.contains("no `request`")));
    writeln!(stream, r#"{{"token":"{token}","request":{{"type":"status"}}}}"#).unwrap();
    assert!(matches!(answer(&mut reader), Some(Response::Status(s)) if s.pid == 4242));
}

#[test]
fn events_round_trip_with_from_limit_and_run() {
    let mut session = Session::new(2500); // more than one chunk of EVENTS_PER_READ
    append(&mut session.log, 2, 10);
    session.link.set_runs(vec![summary(1, 1, 2500), summary(2, 2501, 2510)]);
    let stored = session.stored();
    let seqs = |events: &[Envelope]| events.iter().map(|e| e.header.seq.get()).collect::<Vec<_>>();
    let request = |from: u64, run: Option<u64>, limit: Option<u64>| EventsRequest {
        from: Seq::new(from),
        run: run.map(RunId::new),
        limit,
        follow: false,
    };
    // TC0: durable through 2500: run 2's events are appended but not yet durable.
    let mut client = session.client();
    client.events(request(1, None, None)).unwrap();
    let (events, end) = read_events(&mut client);
    assert_eq!(events, stored[..2500]);
    assert_eq!(end, Some(EventsEnd { next: Seq::new(2501), session_ended: false }));
    session.link.set_durable(Seq::new(2510));
    // (label, request, expected seqs, expected next)
    let cases: [(&str, EventsRequest, Vec<u64>, u64); 5] = [
        ("TC1: from and limit", request(2499, None, Some(3)), vec![2499, 2500, 2501], 2502),
        ("TC2: one run", request(1, Some(2), None), (2501..=2510).collect(), 2511),
        ("TC3: a run, from inside it, limited", request(2505, Some(2), Some(2)), vec![2505, 2506], 2507),
        ("TC4: another run's range is skipped", request(2490, Some(1), None), (2490..=2500).collect(), 2501),
        ("TC5: limit 0", request(1, None, Some(0)), vec![], 1),
    ];
    for (label, request, want, next) in cases {
        // Each on the same connection, one after the other.
        client.events(request).unwrap();
        let (events, end) = read_events(&mut client);
        assert_eq!(seqs(&events), want, "{label}");
        assert_eq!(end, Some(EventsEnd { next: Seq::new(next), session_ended: false }), "{label}");
    }
    // TC6: an unknown run.
    client.events(request(1, Some(9), None)).unwrap();
    assert!(matches!(client.recv().unwrap(), Received::Answer(Response::Error(m)) if m.contains("no run 9")));
}

#[test]
fn follow_sees_events_appended_later_once_durable() {
    let mut session = Session::new(3);
    let mut client = session.client();
    client.events(EventsRequest { from: Seq::new(2), run: None, limit: Some(6), follow: true }).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut appended = false;
    while got.len() < 6 && Instant::now() < deadline {
        match client.recv().unwrap() {
            Received::Answer(Response::Event(event)) => got.push(event.header.seq.get()),
            Received::Answer(other) => panic!("unexpected {other:?}"),
            Received::Nothing if got.len() == 2 && !appended => {
                // Appended but not durable: not sent.
                append(&mut session.log, 1, 5);
                std::thread::sleep(Duration::from_millis(700));
                assert!(matches!(client.recv().unwrap(), Received::Nothing));
                session.link.set_durable(Seq::new(8));
                appended = true;
            }
            Received::Nothing => {}
            Received::Closed => panic!("closed"),
        }
    }
    assert_eq!(got, vec![2, 3, 4, 5, 6, 7]);
    // The limit ends it.
    let (rest, end) = read_events(&mut client);
    assert!(rest.is_empty());
    assert_eq!(end, Some(EventsEnd { next: Seq::new(8), session_ended: false }));
}

#[test]
fn dropping_the_server_ends_followers_and_removes_its_files() {
    let mut session = Session::new(2);
    let mut client = session.client();
    client.events(EventsRequest { from: Seq::new(1), run: None, limit: None, follow: true }).unwrap();
    let started = Instant::now();
    let dropper = {
        let server = session.server.take().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(server);
        })
    };
    let (events, end) = read_events(&mut client);
    assert_eq!(events.len(), 2);
    assert_eq!(end, Some(EventsEnd { next: Seq::new(3), session_ended: true }));
    dropper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!session.dir.path().join(SOCKET_FILE).exists());
    assert!(!session.dir.path().join(TOKEN_FILE).exists());
    assert!(Client::connect(session.dir.path()).is_none());
}

#[test]
fn a_follower_that_goes_away_is_noticed_while_nothing_happens() {
    let session = Session::new(2);
    let server = session.server.as_ref().unwrap();
    let mut client = session.client();
    client.events(EventsRequest { from: Seq::new(1), run: None, limit: None, follow: true }).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.connections() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.connections(), 1);
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.connections() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.connections(), 0, "the follower's thread ended");
}

#[test]
fn a_client_that_stops_reading_does_not_hold_up_the_drop() {
    let session = Session::new(3000);
    let (mut stream, _reader) = session.raw();
    let token = session.token();
    writeln!(stream, r#"{{"token":"{token}","request":{{"type":"events","from":1,"follow":true}}}}"#).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    drop(session);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn kill_switch_commands_reach_the_loop_and_come_back_with_its_answer() {
    let session = Session::new(1);
    // The session loop: records trips at seq 77, refuses resets.
    let link = Arc::clone(&session.link);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = Arc::clone(&stop);
    let session_loop = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !looping.load(std::sync::atomic::Ordering::SeqCst) {
            for pending in link.take_commands() {
                let reply = match &pending.command {
                    OperatorCommand::Trip { .. } => Ok(Seq::new(77)),
                    OperatorCommand::Reset { .. } => Err("the kill switch is not tripped; nothing to reset".into()),
                };
                seen.push(pending.command);
                let _ = pending.reply.send(reply);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    });
    let mut client = session.client();
    // TC0: recorded. The text is trimmed as the CLI trims it.
    let trip = OperatorCommand::Trip { by: " alice ".into(), reason: "drill".into() };
    assert_eq!(client.kill_switch(trip).unwrap(), Ok(Seq::new(77)));
    // TC1: refused by the session.
    let reset = OperatorCommand::Reset { by: "bob".into(), reason: "ok".into() };
    assert_eq!(client.kill_switch(reset).unwrap(), Err("the kill switch is not tripped; nothing to reset".into()));
    // TC2: text the CLI would refuse never reaches the loop.
    let bad = OperatorCommand::Trip { by: "eve\u{1b}[2J".into(), reason: "x".into() };
    let error = client.kill_switch(bad).unwrap_err().to_string();
    assert!(error.contains("control characters are not allowed"), "{error}");
    let empty = OperatorCommand::Reset { by: "eve".into(), reason: "  ".into() };
    assert!(client.kill_switch(empty).unwrap_err().to_string().contains("--reason must not be empty"));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = session_loop.join().unwrap();
    assert_eq!(
        seen,
        vec![
            OperatorCommand::Trip { by: "alice".into(), reason: "drill".into() },
            OperatorCommand::Reset { by: "bob".into(), reason: "ok".into() }
        ]
    );
}

#[test]
fn a_command_the_loop_drops_is_an_error() {
    let session = Session::new(1);
    let link = Arc::clone(&session.link);
    let session_loop = std::thread::spawn(move || loop {
        if !link.take_commands().is_empty() {
            return; // dropped: its reply sender with it
        }
        std::thread::sleep(Duration::from_millis(20));
    });
    let trip = OperatorCommand::Trip { by: "alice".into(), reason: "drill".into() };
    let error = session.client().kill_switch(trip).unwrap_err().to_string();
    assert!(error.contains("dropped the command"), "{error}");
    session_loop.join().unwrap();
}

#[test]
fn files_are_owner_only_and_a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // A killed session's leftovers: a socket nobody listens on, an old token.
    drop(UnixListener::bind(dir.path().join(SOCKET_FILE)).unwrap());
    std::fs::write(dir.path().join(TOKEN_FILE), "stale\n").unwrap();
    assert!(Client::connect(dir.path()).is_none(), "a stale socket is no session");
    let link = Arc::new(SessionLink::new(MemLog::new().reader().unwrap(), Seq::ZERO));
    let server = Server::start(dir.path(), link).unwrap();
    for name in [SOCKET_FILE, TOKEN_FILE] {
        let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    let token = std::fs::read_to_string(dir.path().join(TOKEN_FILE)).unwrap();
    assert_eq!(token.trim().len(), 64);
    assert!(token.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(Client::connect(dir.path()).unwrap().status().is_ok());
    drop(server);
    assert!(!dir.path().join(SOCKET_FILE).exists());
}

#[test]
fn a_data_dir_too_long_for_a_socket_serves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("d".repeat(120));
    std::fs::create_dir(&long).unwrap();
    let link = Arc::new(SessionLink::new(MemLog::new().reader().unwrap(), Seq::ZERO));
    let server = Server::start(&long, link).unwrap();
    assert!(!server.is_serving());
    assert!(!long.join(TOKEN_FILE).exists());
    assert!(Client::connect(&long).is_none());
}

#[test]
fn locked_without_a_session_keeps_the_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = locked(dir.path(), LogError::Locked { path: "x".into() });
    assert!(is_locked(&error));
    assert!(!error.chain().any(|cause| cause.is::<SessionRunning>()));
    assert!(format!("{error:#}").ends_with("ledger at x is locked by another process"), "{error:#}");
}

#[test]
fn locked_with_a_session_names_its_run_and_pid() {
    let session = Session::new(1);
    let error = locked(session.dir.path(), LogError::Locked { path: "x".into() });
    assert!(is_locked(&error));
    let text = error.to_string();
    assert!(text.starts_with("a session is running on "), "{text}");
    assert!(text.contains("(run 1, pid 4242): stop it first"), "{text}");
}

#[test]
fn a_client_reads_nothing_from_a_silent_peer_without_blocking() {
    // A peer that accepts and never answers: recv returns in short steps.
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join(SOCKET_FILE)).unwrap();
    std::fs::write(dir.path().join(TOKEN_FILE), "t\n").unwrap();
    let mut client = Client::connect(dir.path()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    let started = Instant::now();
    assert!(matches!(client.recv().unwrap(), Received::Nothing));
    assert!(started.elapsed() < Duration::from_secs(2));
    // A partial line is kept until its end arrives.
    peer.write_all(br#"{"recorded""#).unwrap();
    assert!(matches!(client.recv().unwrap(), Received::Nothing));
    peer.write_all(b":5}\n").unwrap();
    assert!(matches!(client.recv().unwrap(), Received::Answer(Response::Recorded(seq)) if seq == Seq::new(5)));
    drop(peer);
    assert!(matches!(client.recv().unwrap(), Received::Closed));
}
