//! `ledger run`: paper trading on a played-back feed, with the same data and strategy
//! flags as `ledger replay`. Each cycle runs at the wall clock's time, recorded in its
//! events, so the run replays identically. Fills, rejections and kill-switch trips are
//! logged as they are recorded.
//! Ctrl-C or SIGTERM stops after the current cycle and records `RunStopped { reason:
//! "interrupted" }`; a second signal stops at once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ledger_adapters::clock::WallClock;
use ledger_adapters::nats::NatsOptions;
use ledger_core::chain::Hash32;
use ledger_core::codec::CodecError;
use ledger_core::event::{Envelope, EventDraft, EventRef, Payload, RunMode, RunStopped};
use ledger_core::ids::{CycleId, InstrumentId, RunId, Seq};
use ledger_core::log::{EventCursor, EventLog};
use ledger_core::runner::{Observer, ResumeFrom};
use ledger_core::time::Clock;
use ledger_projections::report::ReportFold;
use ledger_projections::runs::RunsFold;
use ledger_projections::{fold_range, Fold, Folds};

use crate::args::{RunArgs, StreamFlags};
use crate::binance;
use crate::commands::report;
use crate::config::Settings;
use crate::control;
use crate::describe;
use crate::outbox::NatsOutbox;
use crate::pipeline::{self, Cycles, Session};
use crate::session_link::{SessionLink, SessionStatus};
use crate::store::Ledger;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &RunArgs) -> Result<Outcome> {
    if !(args.speed.is_finite() && args.speed >= 0.0) {
        anyhow::bail!("--speed {}: must be finite and >= 0 (0 = as fast as possible, 1 = the data's pace)", args.speed);
    }
    let mut settings = Settings::resolve(&args.session)?;
    // A live venue's ticks come at the exchange's pace; files are played at `--speed`.
    let trading = settings.binance.as_ref().is_some_and(|b| b.trading_enabled);
    let mode = if trading { RunMode::Live } else { RunMode::Paper };
    let (mut feed, source, instruments, speed): (Box<dyn Cycles>, String, Vec<InstrumentId>, f64) =
        match settings.binance.clone() {
            Some(binance) => {
                binance::check_mode(&binance, args.live)?;
                let data = binance::market_data(&mut settings, &binance)?;
                (Box::new(data.cycles), data.source, data.instruments, 0.0)
            }
            None => {
                let data = pipeline::market_data(&mut settings)?;
                (Box::new(data.feed.at_wall_clock()), data.source, data.instruments, args.speed)
            }
        };
    let cache = pipeline::llm_cache(&settings)?;
    let provider = pipeline::provider(&settings, cache.as_ref())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // SIGINT, SIGTERM (what systemd and docker send) and SIGHUP stop after the current
    // cycle with `RunStopped`; a second signal stops at once (appends are atomic, so the
    // ledger still verifies; only what was not yet flushed is lost).
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    })
    .context("installing the signal handler")?;
    let mut ledger = Ledger::open(data_dir, pipeline::durability(&settings.ledger))?;
    // A live venue's interrupted run is re-executed from its record, then goes on with
    // the stream's next tick (its orders left open adopted, never sent again).
    let (run_id, resume) = continuation(&mut ledger, &settings, args.new_run)?;
    // The control endpoint: `ledger status`, `kill-switch`, `events --follow` and `runs`
    // reach the session through it while it holds the ledger.
    let link = Arc::new(SessionLink::new(ledger.log.reader()?, ledger.log.durable_seq()));
    link.set_status(SessionStatus {
        run_id: run_id.get(),
        mode: format!("{:?}", mode),
        pid: std::process::id(),
        started_ns: WallClock.now().nanos(),
        ..SessionStatus::default()
    });
    link.set_runs(ledger.runs.iter().cloned().collect());
    let server = control::Server::start(data_dir, Arc::clone(&link)).context("serving the control endpoint")?;
    if server.is_serving() {
        let socket = data_dir.join(control::SOCKET_FILE);
        tracing::info!(run = %run_id, "control endpoint at {} (ledger status, kill-switch, events --follow)", describe::path(&socket));
    }
    let outbox = match &args.nats {
        Some(url) => Some(start_outbox(&mut ledger, url, &args.stream)?),
        None => None,
    };
    let session = Session {
        run_id,
        mode,
        speed,
        source: &source,
        instruments,
        parent: None,
        stop: Some(&stop),
        kill_switch_tripped: ledger.kill_switch.is_tripped(),
        resume: resume.clone(),
        link: Some(&link),
        outbox: outbox.as_ref(),
    };
    let mut watcher = Watcher { covers: ledger.log.head().seq };
    let mut report = match &resume {
        // A resumed run's report goes on from its snapshot and the events after it.
        Some(from) => {
            let mut report = ledger.report_state(run_id)?.unwrap_or_else(|| ReportFold::new(run_id));
            let start = report.covers().next().max(from.range.first);
            fold_range(&ledger.log, start, ledger.log.head().seq, &mut report)?;
            report
        }
        None => ReportFold::new(run_id),
    };
    let Ledger { log, runs, kill_switch, .. } = &mut ledger;
    let mut runs = PublishedRuns::new(runs, &link);
    let mut folds = Folds::new().with(&mut runs).with(kill_switch).with(&mut report).with(&mut watcher);
    let result = pipeline::execute(log, &mut folds, &settings, feed.as_mut(), provider, &session);
    drop(folds);
    drop(server); // followers read on from the ledger once it is closed
    result?;
    ledger.save_folds()?;
    if let Some(outbox) = outbox {
        finish_outbox(outbox, ledger.log.durable_seq());
    }
    report::print(&report.report(), false)?;
    pipeline::check_llm_cache(cache.as_ref())?;
    Ok(Outcome::Ok)
}

/// How long a session waits at its end for the stream to acknowledge its last events;
/// what is left goes out at the next `--nats` session or `ledger publish`.
pub const DRAIN_PATIENCE: Duration = Duration::from_secs(10);

/// Starts the NATS outbox of a session on `ledger` (`--nats URL`).
///
/// # Errors
/// A URL that does not parse or an unreadable credentials file; reading the ledger's id
/// or a reader of it failed.
pub fn start_outbox(ledger: &mut Ledger, url: &str, stream: &StreamFlags) -> Result<NatsOutbox> {
    let options = NatsOptions::from_env(url, &stream.nats_stream, stream.nats_replicas);
    options.validate()?;
    let ledger_id = ledger.log.ledger_id()?;
    tracing::info!(url = %options.display_url(), stream = %options.stream, "publishing the ledger to NATS");
    Ok(NatsOutbox::start(options, ledger_id, ledger.log.reader()?, ledger.log.outbox_mark(), ledger.log.durable_seq()))
}

/// Waits for the outbox to catch up with `durable` (at most [`DRAIN_PATIENCE`]) and
/// says what is left.
pub fn finish_outbox(outbox: NatsOutbox, durable: Seq) {
    let status = outbox.finish(durable, DRAIN_PATIENCE);
    if status.acked_seq < durable.get() {
        tracing::warn!(
            url = %status.url,
            stream = %status.stream,
            acked = status.acked_seq,
            durable = %durable,
            error = status.error.as_deref().unwrap_or("none"),
            "NATS has not acknowledged every event: the rest is published by the next `--nats` session or `ledger publish`"
        );
    }
}

/// Logs what a trader watches for as the run records it (fills, rejections, kill-switch
/// trips): a fold fed each event as it is appended, so a fast session (a live venue's
/// among them) shows them at once, not at its end, and nothing is read back for it.
struct Watcher {
    covers: Seq,
}

impl Fold for Watcher {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.covers = event.seq;
        if matches!(event.payload, Payload::OrderFilled(_) | Payload::OrderRejected(_) | Payload::KillSwitchTripped(_))
        {
            tracing::info!(seq = %event.seq, "{} {}", event.payload.kind(), describe::summary(event));
        }
    }

    fn covers(&self) -> Seq {
        self.covers
    }
}

/// The runs index, published to the control endpoint as it changes: at once when a run
/// starts, stops or resumes, else at most every [`RUNS_EVERY`].
struct PublishedRuns<'a> {
    runs: &'a mut RunsFold,
    link: &'a SessionLink,
    last: Instant,
}

/// How often the runs index is published while only its counts change.
const RUNS_EVERY: Duration = Duration::from_millis(200);

impl<'a> PublishedRuns<'a> {
    fn new(runs: &'a mut RunsFold, link: &'a SessionLink) -> Self {
        PublishedRuns { runs, link, last: Instant::now() }
    }
}

impl Fold for PublishedRuns<'_> {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.runs.apply(event);
        let lifecycle =
            matches!(event.payload, Payload::RunStarted(_) | Payload::RunStopped(_) | Payload::RunResumed(_));
        if lifecycle || self.last.elapsed() >= RUNS_EVERY {
            self.last = Instant::now();
            self.link.set_runs(self.runs.iter().cloned().collect());
        }
    }

    fn covers(&self) -> Seq {
        self.runs.covers()
    }

    fn snapshot(&self) -> Result<Option<(String, Vec<u8>)>, CodecError> {
        self.runs.snapshot()
    }
}

/// The run this session continues, or a new one. The latest paper or live run that has
/// no `RunStopped` was interrupted (the process was killed): started again with the
/// same configuration, the session resumes it; with another configuration it is
/// refused, unless `new_run` asks to close the interrupted run (recording its
/// `RunStopped`) and start a new one.
///
/// # Errors
/// The interrupted run's configuration differs and `new_run` is not set; a read or
/// append failure.
fn continuation(ledger: &mut Ledger, settings: &Settings, new_run: bool) -> Result<(RunId, Option<ResumeFrom>)> {
    let Some(interrupted) = ledger.runs.interrupted().cloned() else {
        return Ok((ledger.runs.next_run_id(), None));
    };
    let run = interrupted.run_id;
    let reader = ledger.log.reader()?;
    let mut cursor = EventCursor::new(&*reader, interrupted.first_seq, interrupted.first_seq);
    let config_hash = match cursor.next_event()? {
        Some(Envelope { payload: Payload::RunStarted(started), .. }) => started.config_hash,
        _ => bail!("run {run} does not begin with its RunStarted at seq {}", interrupted.first_seq),
    };
    if !new_run {
        if config_hash != Hash32::digest(settings.canonical_json().as_bytes()) {
            bail!(
                "run {run} was interrupted (it has no RunStopped) and was started with another configuration: \
                 start `ledger run` with the configuration it was started with to continue it, \
                 or pass --new-run to close it and start a new run"
            );
        }
        let snapshot = ledger.session_state(run)?;
        return Ok((run, Some(ResumeFrom { range: interrupted.range(), snapshot })));
    }
    let next = ledger.runs.next_run_id();
    let now = WallClock.now();
    let reason = format!("abandoned: interrupted, and superseded by run {next} (--new-run)");
    let stopped = EventDraft {
        run_id: run,
        cycle_id: CycleId::new(0),
        causation_seq: None,
        ts_event: now,
        ts_recorded: now,
        payload: Payload::RunStopped(RunStopped { reason: reason.as_str().into(), skipped_rows: 0 }),
    };
    let first = ledger.log.head().seq.next();
    Folds::new().with(&mut ledger.runs).with(&mut ledger.kill_switch).observe(first, std::slice::from_ref(&stopped));
    ledger.log.append(&mut vec![stopped])?;
    ledger.log.sync()?;
    tracing::warn!(%run, "closed the interrupted run ({reason})");
    Ok((next, None))
}
