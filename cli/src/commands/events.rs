//! `ledger events`: events as a readable table, or one JSON object per line, streamed
//! from the ledger as they are read (tables are printed in blocks of
//! [`TABLE_ROWS`] rows, so memory does not grow with the output).
//!
//! While a session runs they come through its control endpoint (the events it has made
//! durable, checked against the chain as the session reads them). `--follow` goes on
//! printing new events: through the session while one runs, else by opening the ledger
//! every [`POLL`] for a moment (never holding its lock while waiting, so that a session
//! can start), switching between the two as sessions start and stop.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ledger_adapters::sled_log::{Durability, SledLog};
use ledger_core::event::Envelope;
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::{visit_events, EventLog, LogError};

use crate::args::EventsArgs;
use crate::commands::{access, Access};
use crate::control::client::{session_error, unexpected, Received};
use crate::control::{self, Client, EventsRequest, Response};
use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

/// Rows per printed table block.
const TABLE_ROWS: usize = 1000;
/// How often `--follow` looks at the ledger when no session is running.
const POLL: Duration = Duration::from_millis(500);
/// Events read per opening of the ledger while following without a session: the lock is
/// released before they are printed.
const EVENTS_PER_OPEN: usize = 10_000;

pub fn run(data_dir: &Path, args: &EventsArgs) -> Result<Outcome> {
    let mut want = Want {
        next: Seq::new(args.from).max(Seq::new(1)),
        run: args.run.map(RunId::new),
        left: args.limit.map_or(u64::MAX, |limit| limit as u64),
    };
    let mut printer = Printer::new(BufWriter::new(std::io::stdout().lock()), args.json);
    if args.follow {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("installing the Ctrl-C handler")?;
        follow(data_dir, &mut want, &mut printer, &stop)?;
        printer.flush()?;
    } else {
        once(data_dir, &mut want, &mut printer)?;
        printer.finish()?;
    }
    Ok(Outcome::Ok)
}

/// What is still to be shown: from `next` on, of `run`, at most `left` more.
struct Want {
    next: Seq,
    run: Option<RunId>,
    left: u64,
}

impl Want {
    fn request(&self, follow: bool) -> EventsRequest {
        EventsRequest { from: self.next, run: self.run, limit: (self.left != u64::MAX).then_some(self.left), follow }
    }

    fn shown(&mut self, event: &Envelope) {
        self.next = event.header.seq.next();
        self.left = self.left.saturating_sub(1);
    }
}

/// Events once, up to what is there now.
fn once(data_dir: &Path, want: &mut Want, printer: &mut Printer<impl Write>) -> Result<()> {
    match access(data_dir)? {
        Access::Session(mut session) => match from_session(&mut session, want, printer, None)? {
            Ended::Done => Ok(()),
            Ended::SessionGone | Ended::Stopped => bail!(
                "the session ended while sending events (shown up to seq {}); run the command again for the rest",
                want.next.get().saturating_sub(1)
            ),
        },
        Access::Ledger(ledger) => from_ledger(&ledger, want, printer, None),
    }
}

/// The ledger opened directly: the events of `want`, up to its head (or its run's end),
/// or until `stop`.
fn from_ledger(
    ledger: &Ledger,
    want: &mut Want,
    printer: &mut Printer<impl Write>,
    stop: Option<&AtomicBool>,
) -> Result<()> {
    let mut last = Seq::new(u64::MAX);
    if let Some(run) = want.run {
        let Some(info) = ledger.runs.get(run) else {
            bail!("no run {run} in the ledger (see `ledger runs`)");
        };
        want.next = want.next.max(info.first_seq);
        last = info.last_seq;
    }
    if want.left == 0 {
        return Ok(());
    }
    let mut failure = None;
    visit_events(&ledger.log, want.next, &mut |event| {
        if event.header.seq > last {
            return ControlFlow::Break(());
        }
        if want.run.is_some_and(|r| r != event.header.run_id) {
            want.next = event.header.seq.next();
            return ControlFlow::Continue(());
        }
        want.shown(&event);
        if let Err(error) = printer.push(event) {
            failure = Some(error);
            return ControlFlow::Break(());
        }
        if want.left == 0 || stop.is_some_and(|stop| stop.load(Ordering::SeqCst)) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// How reading from a session ended.
enum Ended {
    /// Everything asked for was shown (the range, or the limit).
    Done,
    /// The session stopped or went away: read on from the ledger.
    SessionGone,
    /// Ctrl-C.
    Stopped,
}

/// Events from a session until its `end` line, the connection's end, or `stop`. Rows
/// are printed whenever the session is quiet for a moment.
fn from_session(
    session: &mut Client,
    want: &mut Want,
    printer: &mut Printer<impl Write>,
    stop: Option<&AtomicBool>,
) -> Result<Ended> {
    if want.left == 0 {
        return Ok(Ended::Done);
    }
    let follow = stop.is_some();
    session.events(want.request(follow))?;
    loop {
        if stop.is_some_and(|stop| stop.load(Ordering::SeqCst)) {
            return Ok(Ended::Stopped);
        }
        match session.recv()? {
            Received::Answer(Response::Event(event)) => {
                want.shown(&event);
                printer.push(*event)?;
            }
            Received::Answer(Response::End(end)) => {
                want.next = want.next.max(end.next);
                return Ok(if end.session_ended { Ended::SessionGone } else { Ended::Done });
            }
            Received::Answer(Response::Error(message)) => return Err(session_error(&message)),
            Received::Answer(other) => return Err(unexpected(&other)),
            Received::Nothing if follow => printer.flush()?,
            Received::Nothing => {}
            Received::Closed => return Ok(Ended::SessionGone),
        }
    }
}

/// `--follow`: what is there, then new events as they are recorded, through the session
/// while one runs and from the ledger while none does, until `stop` or the limit.
fn follow(data_dir: &Path, want: &mut Want, printer: &mut Printer<impl Write>, stop: &AtomicBool) -> Result<()> {
    let mut first = true;
    let mut told_busy = false;
    while want.left > 0 && !stop.load(Ordering::SeqCst) {
        if let Some(mut session) = Client::connect(data_dir) {
            match from_session(&mut session, want, printer, Some(stop))? {
                Ended::Done | Ended::Stopped => return Ok(()),
                Ended::SessionGone => {}
            }
            first = false;
            printer.flush()?;
            continue;
        }
        let read =
            if first { first_from_ledger(data_dir, want, printer, stop) } else { poll_ledger(data_dir, want, printer) };
        match read {
            Ok(()) => first = false,
            // A session is starting (its socket not up yet), or another command has the
            // ledger for a moment: look again later.
            Err(error) if control::is_locked(&error) => {
                if !told_busy {
                    tracing::info!("the ledger is held by another process; waiting for it");
                    told_busy = true;
                }
            }
            Err(error) => return Err(error),
        }
        printer.flush()?;
        pause(POLL, stop);
    }
    Ok(())
}

/// The first look without a session: as `ledger events` does (the run must exist).
fn first_from_ledger(
    data_dir: &Path,
    want: &mut Want,
    printer: &mut Printer<impl Write>,
    stop: &AtomicBool,
) -> Result<()> {
    let ledger = Ledger::open_existing(data_dir)?;
    from_ledger(&ledger, want, printer, Some(stop))
}

/// A later look without a session: the events after the last one shown, read with the
/// ledger open and printed after it is closed again.
fn poll_ledger(data_dir: &Path, want: &mut Want, printer: &mut Printer<impl Write>) -> Result<()> {
    loop {
        let mut events = Vec::new();
        {
            let log = match SledLog::open(data_dir, Durability::Strict) {
                Ok(log) => log,
                Err(error @ LogError::Locked { .. }) => return Err(error.into()),
                Err(error) => {
                    return Err(error).with_context(|| format!("opening ledger at {}", describe::path(data_dir)))
                }
            };
            if want.next > log.head().seq {
                return Ok(());
            }
            let cap = EVENTS_PER_OPEN.min(usize::try_from(want.left).unwrap_or(usize::MAX));
            visit_events(&log, want.next, &mut |event| {
                if want.run.is_none_or(|r| r == event.header.run_id) {
                    want.shown(&event);
                    events.push(event);
                } else {
                    want.next = event.header.seq.next();
                }
                if events.len() >= cap {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
        }
        let full = events.len() >= EVENTS_PER_OPEN;
        for event in events {
            printer.push(event)?;
        }
        if !full || want.left == 0 {
            return Ok(());
        }
    }
}

/// Sleeps `time`, waking early on `stop`.
fn pause(time: Duration, stop: &AtomicBool) {
    let until = Instant::now() + time;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Prints events as JSON lines, or as tables of at most [`TABLE_ROWS`] rows.
struct Printer<W: Write> {
    out: W,
    json: bool,
    rows: Vec<Envelope>,
    shown: u64,
}

impl<W: Write> Printer<W> {
    fn new(out: W, json: bool) -> Self {
        Printer { out, json, rows: Vec::new(), shown: 0 }
    }

    fn push(&mut self, event: Envelope) -> Result<()> {
        self.shown += 1;
        if self.json {
            serde_json::to_writer(&mut self.out, &event)?;
            self.out.write_all(b"\n")?;
        } else {
            self.rows.push(event);
            if self.rows.len() >= TABLE_ROWS {
                write_table(&mut self.out, &mut self.rows)?;
            }
        }
        Ok(())
    }

    /// Prints the rows gathered so far and flushes (following: what came, shown now).
    fn flush(&mut self) -> Result<()> {
        if !self.rows.is_empty() {
            write_table(&mut self.out, &mut self.rows)?;
        }
        self.out.flush()?;
        Ok(())
    }

    /// The end of a one-off listing: the last rows, or an empty table if nothing was shown.
    fn finish(&mut self) -> Result<()> {
        if !self.json && self.shown == 0 {
            write_table(&mut self.out, &mut self.rows)?;
        }
        self.flush()
    }
}

/// Prints `rows` as one table and empties it.
fn write_table(out: &mut impl Write, rows: &mut Vec<Envelope>) -> Result<()> {
    let mut table = describe::table(["seq", "run", "cycle", "ts_event", "kind", "summary", "hash"]);
    for event in rows.drain(..) {
        let h = &event.header;
        table.add_row([
            h.seq.to_string(),
            h.run_id.to_string(),
            h.cycle_id.to_string(),
            h.ts_event.to_rfc3339(),
            event.payload.kind().to_string(),
            describe::summary(&event.as_ref()),
            h.hash.short(),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
