//! Crash recovery: `ledger run` killed with SIGKILL at seeded random moments (while it
//! starts or resumes, mid-run, late, during snapshot writes), restarted with the same
//! configuration each time, paced (every cycle flushed) and fast (batched, group
//! durability) sessions mixed, until a session ends the run by itself. What survives
//! must be one run, whole: the chain verifies, no order is submitted twice, every order
//! ends once, each restart that found the run interrupted and recorded anything began
//! with one `RunResumed` where it took over (a fast session flushes every 50 ms: one
//! killed sooner leaves nothing, and the next resumes from the same point), and the
//! run's events and account are exactly those of the same run never interrupted (the
//! paper venue is deterministic).
//!
//! The kill moments come from a seeded PRNG; the seed is printed, in every assertion
//! message too, with the kill schedule. `LEDGER_CRASH_SEED=0x... cargo test -p
//! ledger-cli --test e2e crash` reruns a seed (the moments are the same, the process's
//! progress at each one depends on the machine's speed).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{workspace_root, Ledger};

/// Bars of the fixture feed the run trades on (about 8,200 events).
const ROWS: usize = 2_500;
/// Kills in all, over as many data directories as it takes.
const MIN_KILLS: usize = 50;

/// splitmix64 (Steele, Lea, Flood 2014): a tiny, well-mixed PRNG for the schedule.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..high` (the bias of the modulo is negligible at these sizes).
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// The seed: `LEDGER_CRASH_SEED` (decimal or 0x-hex), else drawn from the clock.
fn seed() -> u64 {
    match std::env::var("LEDGER_CRASH_SEED") {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("LEDGER_CRASH_SEED={text}: not a u64 (decimal or 0x-hex)"))
        }
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}

/// The feed (the fixture's first [`ROWS`] bars) and the configuration, in a temp dir
/// (also used by the full-disk test in `storage`).
pub struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fixture = std::fs::read_to_string(workspace_root().join("fixtures/btcperp-1m-2022-01.csv")).unwrap();
        let slice: Vec<&str> = fixture.lines().take(ROWS + 1).collect();
        std::fs::write(dir.path().join("feed.csv"), slice.join("\n") + "\n").unwrap();
        // Fees and fractional lots so the account has every kind of figure; snapshots
        // every 200 events, so kills land during snapshot writes too.
        std::fs::write(
            dir.path().join("crash.toml"),
            r#"
[data]
files = ["feed.csv"]
instrument = "BTC-PERP"

[provider]
kind = "rules"
strategy = "sma-cross"
params = { fast = "10", slow = "30" }

[venue]
commission_rate = "0.001"
lot_size = "0.001"

[ledger]
snapshot_every = 200
"#,
        )
        .unwrap();
        Setup { dir }
    }

    pub fn config(&self) -> String {
        self.dir.path().join("crash.toml").display().to_string()
    }
}

/// How a session is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    /// `--speed 1000000`: each cycle appended and flushed on its own, barely waiting.
    Paced,
    /// `--speed 0`: 256 cycles per append, group durability.
    Fast,
}

impl Pace {
    fn speed(self) -> &'static str {
        match self {
            Pace::Paced => "1000000",
            Pace::Fast => "0",
        }
    }
}

/// One session of the schedule: its pace, when it is killed, and what happened.
struct Session {
    pace: Pace,
    /// `None`: not killed (the case has made its share of the kills), run to the end.
    kill_after: Option<Duration>,
    outcome: &'static str,
}

/// Draws a session: paced or fast, killed early (while the process starts, opens the
/// ledger and resumes), mid-run or late. A whole paced run takes about 2 s in a debug
/// build, a whole fast one about 0.1 s. Half the first sessions are paced and killed
/// within 80 ms, often before the first session snapshot (200 events, about 50 ms in):
/// the restart then re-executes the run from its start.
fn draw(rng: &mut SplitMix64, first: bool) -> Session {
    if first && rng.range(0, 2) == 0 {
        return Session { pace: Pace::Paced, kill_after: Some(Duration::from_millis(rng.range(10, 80))), outcome: "" };
    }
    let pace = if rng.range(0, 100) < 60 { Pace::Paced } else { Pace::Fast };
    let moment = rng.range(0, 100);
    let ms = match (pace, moment) {
        (_, 0..=29) => rng.range(0, 40),
        (Pace::Paced, 30..=79) => rng.range(40, 400),
        (Pace::Paced, _) => rng.range(400, 1500),
        (Pace::Fast, 30..=79) => rng.range(40, 110),
        (Pace::Fast, _) => rng.range(110, 200),
    };
    Session { pace, kill_after: Some(Duration::from_millis(ms)), outcome: "" }
}

/// What the test knows of the ledger of one case, read back after every session.
#[derive(Default)]
struct Seen {
    /// Every event read so far, by seq order (seq 1 first).
    events: Vec<Value>,
    /// Restarts that found the run interrupted.
    found_interrupted: usize,
    /// Of those, restarts that left nothing durable (killed before their `RunResumed`
    /// was flushed: a fast session flushes every 50 ms).
    left_nothing: usize,
    /// `RunResumed` events seen, and how many of them restored a session snapshot.
    resumed: usize,
    from_snapshot: usize,
    /// `RunResumed` events that found orders still working at the venue.
    with_working_orders: usize,
}

fn kind(event: &Value) -> &str {
    event["payload"].as_object().and_then(|o| o.keys().next()).map_or("?", String::as_str)
}

fn seq(event: &Value) -> u64 {
    event["header"]["seq"].as_u64().unwrap()
}

fn client_order_id(event: &Value) -> Option<&str> {
    event["payload"][kind(event)]["client_order_id"].as_str()
}

impl Seen {
    fn run_started(&self) -> bool {
        self.events.iter().any(|e| kind(e) == "RunStarted")
    }

    fn run_stopped(&self) -> bool {
        self.events.iter().any(|e| kind(e) == "RunStopped")
    }

    /// The orders submitted with no terminal event yet, in submission order.
    fn working(&self) -> Vec<String> {
        let mut working: Vec<String> = Vec::new();
        for event in &self.events {
            match (kind(event), client_order_id(event)) {
                ("OrderSubmitted", Some(id)) => working.push(id.to_string()),
                ("OrderFilled" | "OrderRejected" | "OrderCanceled", Some(id)) => working.retain(|w| w != id),
                _ => {}
            }
        }
        working
    }

    /// Reads the events appended since the last look (and the last one seen again, to
    /// check that nothing durable was lost or rewritten), and checks what the session
    /// that just ended recorded: a new run starts with `RunStarted`; a restart that
    /// found the run interrupted starts with `RunResumed` after the last event,
    /// counting the ticks recorded so far and naming the orders still working.
    fn look(&mut self, ledger: &Ledger, interrupted_before: bool, ran: Duration, context: &dyn Fn() -> String) {
        if !ledger.data_dir().join("conf").is_file() {
            assert!(self.events.is_empty(), "the ledger vanished\n{}", context());
            return;
        }
        let last = self.events.last().map_or(0, seq);
        let from = last.max(1).to_string();
        let read = ledger.run(&["events", "--from", &from, "--json"]);
        assert_eq!(read.code, 0, "ledger events --from {from}: {}{}\n{}", read.stdout, read.stderr, context());
        let mut lines = read.stdout.lines().map(|line| serde_json::from_str::<Value>(line).unwrap());
        if let Some(previous) = self.events.last() {
            let again = lines.next();
            assert_eq!(
                again.as_ref().map(|e| &e["header"]),
                Some(&previous["header"]),
                "seq {last}, durable before this session, changed or vanished\n{}",
                context()
            );
        }
        let new: Vec<Value> = lines.collect();
        for (offset, event) in new.iter().enumerate() {
            assert_eq!(seq(event), last + 1 + offset as u64, "a gap in the seqs\n{}", context());
        }
        if interrupted_before {
            self.found_interrupted += 1;
            match new.first() {
                None => {
                    // Paced sessions flush every cycle, fast ones every 50 ms: one that
                    // ran this long and recorded nothing lost work it had done.
                    assert!(
                        ran < NOTHING_DURABLE_WITHIN,
                        "a restart ran {ran:?} and left nothing durable\n{}",
                        context()
                    );
                    self.left_nothing += 1;
                }
                Some(first) => {
                    assert_eq!(kind(first), "RunResumed", "the restart's first event\n{}", context());
                    let resumed = &first["payload"]["RunResumed"];
                    let ticks = self.events.iter().filter(|e| kind(e) == "MarketTick").count() as u64;
                    assert_eq!(resumed["after_seq"], last, "{resumed}\n{}", context());
                    assert_eq!(resumed["cycles"], ticks, "{resumed}\n{}", context());
                    let working: Vec<Value> = self.working().into_iter().map(Value::from).collect();
                    self.with_working_orders += usize::from(!working.is_empty());
                    assert_eq!(resumed["working_orders"], Value::from(working), "{resumed}\n{}", context());
                    self.resumed += 1;
                    if resumed["snapshot_seq"] != 0 {
                        self.from_snapshot += 1;
                    }
                }
            }
        } else if let Some(first) = new.first() {
            assert_eq!(kind(first), "RunStarted", "a new run's first event\n{}", context());
        }
        let extra = new.iter().skip(1).find(|e| matches!(kind(e), "RunStarted" | "RunResumed"));
        assert!(extra.is_none(), "a second start in one session: {extra:?}\n{}", context());
        self.events.extend(new);
    }
}

/// The uninterrupted run: its account and its events' payloads.
pub struct Reference {
    pub account: Value,
    pub payloads: Vec<Value>,
}

/// The latest run's account, `rebuild --json` without the fields that name the run and
/// where the rebuild started: from the run's latest session snapshot, or with
/// `from_scratch` from all its events.
pub fn account(ledger: &Ledger, from_scratch: bool) -> Value {
    let args: &[&str] = if from_scratch { &["rebuild", "--from-scratch", "--json"] } else { &["rebuild", "--json"] };
    let mut account: Value = serde_json::from_str(&ledger.ok(args)).unwrap();
    let fields = account.as_object_mut().unwrap();
    for name in ["covers_seq", "run_id", "snapshot_seq"] {
        assert!(fields.remove(name).is_some(), "rebuild --json has no {name}");
    }
    account
}

pub fn reference(setup: &Setup) -> Reference {
    let ledger = Ledger::new();
    ledger.ok(&["run", "--config", &setup.config(), "--speed", "0"]);
    let events: Vec<Value> =
        ledger.ok(&["events", "--json"]).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let payloads: Vec<Value> = events.iter().map(|e| e["payload"].clone()).collect();
    assert_eq!(payloads.iter().filter(|p| p.get("MarketTick").is_some()).count(), ROWS);
    assert!(payloads.iter().filter(|p| p.get("OrderFilled").is_some()).count() > 20, "the run must trade");
    let account = account(&ledger, true);
    Reference { account, payloads }
}

/// A restart killed after running this long has recorded its `RunResumed` (a debug
/// build starts, opens the ledger and resumes in tens of milliseconds).
const NOTHING_DURABLE_WITHIN: Duration = Duration::from_secs(1);

/// How long a session not killed may take (a whole paced run takes about 2 s).
const HANG: Duration = Duration::from_secs(60);

/// One data directory: sessions killed at the drawn moments until one ends the run by
/// itself, then the checks; once `kills_wanted` kills are made, the next session runs
/// to the end. Returns the kills made.
fn crash_case(setup: &Setup, reference: &Reference, seed: u64, case: u64, kills_wanted: usize) -> usize {
    let mut rng = SplitMix64(seed ^ case.wrapping_mul(0xd1b5_4a32_d192_ed03));
    let ledger = Ledger::new();
    let mut seen = Seen::default();
    let mut schedule: Vec<Session> = Vec::new();
    let context = |schedule: &[Session], events: usize| {
        let mut text = format!(
            "seed {seed:#x} case {case} (rerun: LEDGER_CRASH_SEED={seed:#x} cargo test -p ledger-cli --test e2e crash)\n\
             schedule:"
        );
        for (i, s) in schedule.iter().enumerate() {
            let at = s.kill_after.map_or_else(|| "end".to_string(), |d| format!("{}ms", d.as_millis()));
            let _ = write!(text, " {i}:{:?}@{at}={}", s.pace, s.outcome);
        }
        let _ = write!(text, "\nevents read back before the last session: {events}");
        text
    };
    loop {
        let mut session = draw(&mut rng, schedule.is_empty());
        if schedule.iter().filter(|s| s.outcome == "killed").count() >= kills_wanted {
            session.kill_after = None;
        }
        let interrupted_before = seen.run_started() && !seen.run_stopped();
        let stderr_path = ledger.dir.path().join(format!("session-{}.err", schedule.len()));
        let mut child = ledger
            .command(&["run", "--config", &setup.config(), "--speed", session.pace.speed()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let deadline = session.kill_after.unwrap_or(HANG);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                break None;
            }
            std::thread::sleep(left.min(Duration::from_millis(5)));
        };
        let status = match status {
            Some(status) => status,
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap()
            }
        };
        if session.kill_after.is_none() && status.signal() == Some(9) {
            session.outcome = "hung";
            schedule.push(session);
            panic!("ledger run did not end within {HANG:?}\n{}", context(&schedule, seen.events.len()));
        }
        session.outcome = match (status.signal(), status.code()) {
            (Some(9), _) => "killed",
            (_, Some(0)) => "ended",
            _ => "failed",
        };
        schedule.push(session);
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        assert_ne!(
            schedule.last().unwrap().outcome,
            "failed",
            "ledger run exited with {status:?}:\n{stderr}\n{}",
            context(&schedule, seen.events.len())
        );
        let events = seen.events.len();
        seen.look(&ledger, interrupted_before, started.elapsed(), &|| context(&schedule, events));
        // A session killed after its RunStopped was durable also ended the run: another
        // `ledger run` would start a new one.
        if schedule.last().unwrap().outcome == "ended" || seen.run_stopped() {
            break;
        }
        assert!(schedule.len() < 200, "the run does not end\n{}", context(&schedule, seen.events.len()));
    }
    let context = context(&schedule, seen.events.len());
    check_case(&ledger, &seen, reference, &context);
    let kills = schedule.iter().filter(|s| s.outcome == "killed").count();
    eprintln!(
        "crash case {case}: {kills} kills, {} restarts found the run interrupted ({} left nothing durable), \
         {} RunResumed ({} from a session snapshot, {} with orders working)",
        seen.found_interrupted, seen.left_nothing, seen.resumed, seen.from_snapshot, seen.with_working_orders
    );
    kills
}

/// What must hold once the run has ended.
fn check_case(ledger: &Ledger, seen: &Seen, reference: &Reference, context: &str) {
    // The chain verifies: seqs gapless from 1, every record decodes, every hash links.
    let verify = ledger.run(&["verify"]);
    assert_eq!(verify.code, 0, "verify: {}{}\n{context}", verify.stdout, verify.stderr);
    assert!(verify.stdout.starts_with(&format!("ok: {} events", seen.events.len())), "{}\n{context}", verify.stdout);
    // One run, stopped at the end of the data once.
    let runs = ledger.ok(&["runs"]);
    let rows = runs.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| run ")).count();
    assert_eq!(rows, 1, "{runs}\n{context}");
    assert_eq!(runs.matches("(end of data)").count(), 1, "{runs}\n{context}");
    let stops: Vec<&Value> = seen.events.iter().filter(|e| kind(e) == "RunStopped").collect();
    assert_eq!(stops.len(), 1, "{stops:?}\n{context}");
    assert_eq!(stops[0]["payload"]["RunStopped"]["reason"], "end of data", "{context}");
    // One RunResumed per restart that found the run interrupted and recorded anything.
    let resumed = seen.events.iter().filter(|e| kind(e) == "RunResumed").count();
    assert_eq!(resumed, seen.found_interrupted - seen.left_nothing, "RunResumed events\n{context}");
    // No client order id submitted twice; each order ends exactly once, after it was
    // submitted (the stop cancels what is still working).
    let mut submitted = BTreeSet::new();
    let mut ended: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &seen.events {
        match (kind(event), client_order_id(event)) {
            ("OrderSubmitted", Some(id)) => {
                assert!(submitted.insert(id.to_string()), "{id} submitted twice (seq {})\n{context}", seq(event));
            }
            ("OrderFilled" | "OrderRejected" | "OrderCanceled", Some(id)) => {
                assert!(submitted.contains(id), "{} of {id} before it was submitted\n{context}", kind(event));
                ended.entry(id.to_string()).or_default().push(seq(event));
            }
            _ => {}
        }
    }
    for id in &submitted {
        let ends = ended.get(id).map_or(0, Vec::len);
        assert_eq!(ends, 1, "order {id} has {ends} terminal events ({:?})\n{context}", ended.get(id));
    }
    // The same run as the uninterrupted one: the same events (but RunResumed) ...
    let payloads: Vec<&Value> = seen.events.iter().filter(|e| kind(e) != "RunResumed").map(|e| &e["payload"]).collect();
    assert_eq!(payloads.len(), reference.payloads.len(), "events but RunResumed, against the reference\n{context}");
    for (index, (got, want)) in payloads.iter().zip(&reference.payloads).enumerate() {
        assert_eq!(*got, want, "the {index}th event (but RunResumed) differs from the reference run's\n{context}");
    }
    // ... and the same account, from the run's last session snapshot and from scratch.
    for from_scratch in [false, true] {
        let account = account(ledger, from_scratch);
        assert_eq!(
            account, reference.account,
            "rebuild (from scratch: {from_scratch}) against the reference\n{context}"
        );
    }
}

/// The crash test. About 20 to 40 s in a debug build on 2 cores.
#[test]
fn a_run_killed_at_random_moments_continues_to_the_same_end() {
    let seed = seed();
    eprintln!(
        "crash test seed {seed:#x} (rerun: LEDGER_CRASH_SEED={seed:#x} cargo test -p ledger-cli --test e2e crash)"
    );
    let started = Instant::now();
    let setup = Setup::new();
    let reference = reference(&setup);
    let (mut kills, mut cases) = (0, 0);
    while kills < MIN_KILLS {
        kills += crash_case(&setup, &reference, seed, cases, MIN_KILLS - kills);
        cases += 1;
    }
    eprintln!("crash test seed {seed:#x}: {kills} kills in {cases} data dirs, {:.1?}", started.elapsed());
}
