//! The runner: everything around the pure [`Engine`] for one run. It hands the engine
//! ticks with the cycle's time, sends the orders the engine records to the venue and
//! hands the venue's reports back, appends the drafts to the log in batches, makes every
//! `OrderSubmitted` durable before an external venue sees it, and feeds each batch to an
//! [`Observer`] (the projections' folds) as it is appended.
//!
//! Paper, live and replay differ only in what the caller feeds it: the ticks (a file, a
//! recorded run, an exchange), the cycle's time (the data's, the recorded one, the wall
//! clock's) and the venue.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::codec::{self, CodecError};
use crate::decision::DecisionProvider;
use crate::engine::{Engine, EngineError, EngineState, OperatorCommand, RunSpec, VenueRequest};
use crate::event::{
    Envelope, EventDraft, OrderFilled, OrderRejected, OrderSubmitted, Payload, TickData, Trade, VenueNotice,
};
use crate::feed::Tick;
use crate::ids::{ClientOrderId, InstrumentId, RunId, Seq};
use crate::log::{EventCursor, EventLog, LogError, RecordSource};
use crate::portfolio::Portfolio;
use crate::recorded_venue::RecordedVenue;
use crate::replay::RunRange;
use crate::risk::{KillSwitch, RiskEngine};
use crate::time::TimestampNs;
use crate::venue::{MarketView, Venue, VenueError, VenueReport};

/// Why a run stopped with an error. Every variant stops the run: what was appended
/// before it stays, chained and verifiable. (Provider and venue failures do not get
/// here: they are recorded as holds and rejections, and the run goes on.)
#[derive(Debug, Error)]
pub enum RunError {
    /// The ledger failed an append or a flush (its text names what failed where).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The ledger's head is not where this run's single writer left it: another writer
    /// appended, so the engine's predicted sequences are wrong.
    #[error("the ledger's head moved under the run: expected the next seq {expected}, the ledger gave {actual}")]
    HeadMoved {
        /// The seq the engine predicted for the batch's first event.
        expected: Seq,
        /// The seq the log gave it.
        actual: Seq,
    },
    /// The engine could not make a cycle's drafts.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Resuming a run, re-executing its recorded events did not make the same events:
    /// the configuration, the data or the software differs from the interrupted run's.
    #[error("resuming run {run}: seq {seq}: {detail}")]
    Diverged {
        /// The run being resumed.
        run: RunId,
        /// The first stored event that re-execution does not reproduce.
        seq: Seq,
        /// What differs.
        detail: String,
    },
    /// The venue refused a request the engine made of it (a cancellation, an amended
    /// stop).
    #[error("venue: {0}")]
    Venue(#[from] VenueError),
}

/// Why working orders are canceled when an operator trips the kill switch.
const OPERATOR_TRIP: &str = "kill switch tripped by an operator";

/// Something fed every event as it is appended, in sequence order: the live folds.
pub trait Observer {
    /// `events` are about to be appended as the records `first`, `first + 1`, ...
    /// (if the append then fails, the run stops with that error).
    fn observe(&mut self, first: Seq, events: &[EventDraft]);

    /// Snapshots of the observer's state after every event observed so far, as
    /// `(name, bytes)`: the runner stores them with its session snapshot.
    ///
    /// # Errors
    /// A state that does not encode.
    fn snapshots(&self) -> Result<Vec<(String, Vec<u8>)>, CodecError> {
        Ok(Vec::new())
    }
}

/// What a session snapshot holds: the engine's, provider's and venue's state after the
/// event `covers`, at a cycle boundary. Stored under [`SessionState::name`]; a run is
/// resumed from it by re-executing only the events after `covers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// The last seq the state includes.
    pub covers: Seq,
    /// The engine (account, risk counters, kill switch, open orders, counters).
    pub engine: EngineState,
    /// The provider's own state ([`DecisionProvider::save_state`]).
    pub provider: Vec<u8>,
    /// The venue's own state ([`Venue::save_state`]).
    pub venue: Vec<u8>,
}

impl SessionState {
    /// The snapshot name of run `run`'s session state; the `1` is the state's layout
    /// version (a new layout takes a new name, and older snapshots are then ignored:
    /// the run is re-executed from its start instead).
    pub fn name(run: RunId) -> String {
        format!("session/2/{run}")
    }
}

/// A run to resume: where its events lie and the session snapshot to start from.
#[derive(Debug, Clone)]
pub struct ResumeFrom {
    /// The run's events (the first is its `RunStarted`); the run has no `RunStopped`.
    pub range: RunRange,
    /// The latest session snapshot of the run, if there is one.
    pub snapshot: Option<SessionState>,
}

/// What resuming found: how far the run had got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// Cycles (ticks) the run had recorded: the feed continues after that many.
    pub cycles: u64,
    /// Source time of the run's last recorded tick.
    pub last_tick_ts: TimestampNs,
    /// The seq of the snapshot the state came from (0: re-executed from the start).
    pub snapshot_seq: Seq,
    /// Orders still working at the venue.
    pub working_orders: Vec<ClientOrderId>,
}

/// An observer that does nothing.
impl Observer for () {
    fn observe(&mut self, _: Seq, _: &[EventDraft]) {}
}

/// What a run is made of: its spec, provider, risk engine, kill switch and venue.
pub struct RunParts {
    /// Run id, mode, configuration, provenance.
    pub spec: RunSpec,
    /// The decision provider.
    pub provider: Box<dyn DecisionProvider>,
    /// The risk engine.
    pub risk: RiskEngine,
    /// The kill switch, tripped or not as the run starts.
    pub kill: KillSwitch,
    /// Where orders go.
    pub venue: Box<dyn Venue>,
}

/// One run, bound to a log and an observer. See the module docs.
pub struct Runner<'a, L: EventLog + ?Sized> {
    log: &'a mut L,
    observer: &'a mut dyn Observer,
    engine: Engine,
    venue: Box<dyn Venue>,
    /// Drafts not yet appended; they get the seqs after `appended`.
    pending: Vec<EventDraft>,
    appended: Seq,
    cycles_pending: usize,
    cycles_per_append: usize,
    /// Orders of the current cycle, to send (reused buffer).
    to_send: Vec<OrderSubmitted>,
    /// Events between session snapshots (0: none).
    snapshot_every: u64,
    /// The seq the last snapshot covered.
    last_snapshot: Seq,
    /// The last tick of each instrument, kept only when the run closes out at the end
    /// of the data ([`Runner::with_close_at_end`]).
    last_ticks: Option<BTreeMap<InstrumentId, Tick>>,
    /// While a live venue's run is re-executed on resume from its recorded reports:
    /// the recorded venue's cycle counter.
    recorded_cycle: Option<Rc<Cell<u64>>>,
}

impl<'a, L: EventLog + ?Sized> Runner<'a, L> {
    /// Starts a run at time `now`: records `RunStarted` (appended at once). Gathers
    /// `cycles_per_append` cycles into one append (1 = every cycle on its own).
    ///
    /// # Errors
    /// A failed append.
    pub fn start(
        log: &'a mut L,
        observer: &'a mut dyn Observer,
        parts: RunParts,
        now: TimestampNs,
        cycles_per_append: usize,
    ) -> Result<Self, RunError> {
        let appended = log.head().seq;
        let mut pending = Vec::with_capacity(64);
        let engine = Engine::start(parts.spec, parts.provider, parts.risk, parts.kill, appended, now, &mut pending)?;
        let mut runner = Runner::assemble(log, observer, engine, parts.venue, pending, appended, cycles_per_append);
        runner.append()?;
        Ok(runner)
    }

    /// A runner of `engine` and `venue` whose log holds everything through `appended`,
    /// with `pending` drafts to append after it.
    fn assemble(
        log: &'a mut L,
        observer: &'a mut dyn Observer,
        engine: Engine,
        venue: Box<dyn Venue>,
        pending: Vec<EventDraft>,
        appended: Seq,
        cycles_per_append: usize,
    ) -> Self {
        Runner {
            log,
            observer,
            engine,
            venue,
            pending,
            appended,
            cycles_pending: 0,
            cycles_per_append: cycles_per_append.max(1),
            to_send: Vec::new(),
            snapshot_every: 0,
            last_snapshot: appended,
            last_ticks: None,
            recorded_cycle: None,
        }
    }

    /// Keeps the last tick of each instrument, for [`Runner::close_out`] at the end of
    /// the data.
    pub fn with_close_at_end(mut self) -> Self {
        self.last_ticks = Some(BTreeMap::new());
        self
    }

    /// Takes a session snapshot (and the observer's) every `events` appended events,
    /// and at the stop; 0 takes none.
    pub fn with_snapshots(mut self, events: u64) -> Self {
        self.snapshot_every = events;
        self
    }

    /// Resumes an interrupted run at time `now`: rebuilds the engine, provider and venue
    /// from the run's session snapshot (or from its start), re-executes every recorded
    /// event after it and checks each against the record, passes over other runs'
    /// events (an operator's kill-switch command made while the run was down takes
    /// effect), then records `RunResumed` with the orders still working at the venue.
    /// `parts` must be built from the run's configuration; a snapshot that does not
    /// restore is passed over and the run re-executed from its start.
    ///
    /// A live venue's run (an external venue) is re-executed with its recorded reports
    /// in place of the venue ([`RecordedVenue`]: nothing is sent again); then the live
    /// venue adopts each order the run left open ([`Venue::adopt`]), to find it at the
    /// exchange by its client order id, and takes over.
    ///
    /// # Errors
    /// [`RunError::Diverged`] when re-execution does not reproduce a stored event;
    /// read or append failures.
    pub fn resume(
        log: &'a mut L,
        observer: &'a mut dyn Observer,
        parts: RunParts,
        from: ResumeFrom,
        now: TimestampNs,
        cycles_per_append: usize,
    ) -> Result<(Self, Resumed), RunError> {
        let run = from.range.run_id;
        let diverged = |seq: Seq, detail: String| RunError::Diverged { run, seq, detail };
        let reader = log.reader()?;
        let head = log.head().seq;
        let RunParts { spec, mut provider, risk, mut kill, venue } = parts;
        let (mut venue, live, recorded_cycle) = match venue.is_external() {
            true => {
                let cycle = Rc::new(Cell::new(0));
                let recorded = RecordedVenue::read(reader.as_ref(), from.range, venue.name(), Rc::clone(&cycle))?;
                (Box::new(recorded) as Box<dyn Venue>, Some(venue), Some(cycle))
            }
            false => (venue, None, None),
        };
        let mut pending = Vec::with_capacity(64);
        let restored = from.snapshot.filter(|s| {
            s.engine.run_id() == run
                && s.covers >= from.range.first
                && s.covers <= head
                && provider.restore_state(&s.provider).is_ok()
                && venue.restore_state(&s.venue).is_ok()
        });
        let (engine, appended) = match restored {
            Some(state) => (Engine::restore(state.engine, provider, risk, kill, spec.exits.clone()), state.covers),
            None => {
                // From the start: the stored RunStarted fixes the start time and the
                // kill switch's state then.
                let mut cursor = EventCursor::new(reader.as_ref(), from.range.first, from.range.first);
                let Some(first) = cursor.next_event()? else {
                    return Err(diverged(from.range.first, "the run's RunStarted is not in the ledger".into()));
                };
                let Payload::RunStarted(started) = &first.payload else {
                    return Err(diverged(
                        first.header.seq,
                        format!("{} where RunStarted was expected", first.payload.kind()),
                    ));
                };
                if started.kill_switch_tripped != kill.is_tripped() {
                    if started.kill_switch_tripped {
                        kill.trip()
                    } else {
                        kill.reset()
                    }
                }
                let spec = RunSpec { software_version: started.software_version.clone(), ..spec };
                let head_before = Seq::new(from.range.first.get().saturating_sub(1));
                let engine =
                    Engine::start(spec, provider, risk, kill, head_before, first.header.ts_recorded, &mut pending)?;
                check(run, &pending, &[first])?;
                pending.clear();
                (engine, from.range.first)
            }
        };
        let snapshot_seq = if appended == from.range.first { Seq::ZERO } else { appended };
        let mut runner = Runner::assemble(log, observer, engine, venue, pending, appended, cycles_per_append);
        runner.recorded_cycle = recorded_cycle;
        runner.catch_up(reader.as_ref(), head)?;
        if let Some(mut live) = live {
            runner.recorded_cycle = None;
            let open: Vec<ClientOrderId> = runner.engine.open_orders().copied().collect();
            for (recorded, is_open) in orders_to_adopt(reader.as_ref(), from.range, head, &open)? {
                live.adopt(&recorded.order, recorded.accepted, &recorded.fills, is_open);
            }
            runner.venue = live;
        }
        let working_orders = runner.venue.working_orders();
        let resumed = Resumed {
            cycles: runner.engine.cycles(),
            last_tick_ts: runner.engine.last_tick_ts(),
            snapshot_seq,
            working_orders: working_orders.clone(),
        };
        runner.engine.on_resume(head, snapshot_seq, working_orders, now, &mut runner.pending)?;
        runner.append()?;
        Ok((runner, resumed))
    }

    /// Re-executes the stored events after `self.appended` through `head`, checking each
    /// against the record instead of appending it (see [`Runner::resume`]).
    fn catch_up(&mut self, source: &dyn RecordSource, head: Seq) -> Result<(), RunError> {
        let run = self.engine.run_id();
        let mut record =
            Lookahead { cursor: EventCursor::new(source, self.appended.next(), head), ahead: VecDeque::new() };
        while let Some(event) = record.peek(0)? {
            let (seq, now, kind) = (event.header.seq, event.header.ts_recorded, event.payload.kind());
            if event.header.run_id != run || matches!(event.payload, Payload::RunResumed(_) | Payload::VenueNotice(_)) {
                // Only the operator's own commands (run 0) reach this run's switch: a
                // backtest's or a replay's trips and resets stay inside them.
                let operator =
                    event.header.run_id.get() == 0 && event.payload.is_operator_command(event.header.cycle_id);
                let trip = operator && matches!(event.payload, Payload::KillSwitchTripped(_));
                self.engine.pass_over(seq, operator.then_some(&event.payload));
                self.appended = seq;
                record.pop()?;
                if !trip {
                    continue;
                }
                // A trip made while the run was down cancels its working orders, as one
                // made during the session does. The cancellations follow the trip in the
                // record once a resume has recorded them; at the record's end (the resume
                // making them now) they are left to be appended with `RunResumed`.
                self.cancel_working(OPERATOR_TRIP, now, now)?;
                self.confirm(&mut record, true)?;
                continue;
            }
            let command = match &event.payload {
                payload if payload.is_operator_command(event.header.cycle_id) => Some(payload.clone()),
                Payload::RunStarted(_) | Payload::RunStopped(_) => {
                    let detail = format!("{kind} inside the run: it is not an interrupted run");
                    return Err(RunError::Diverged { run, seq, detail });
                }
                _ => None,
            };
            match command {
                Some(payload) => self.command(payload, now)?,
                None => {
                    let Some((tick, now)) = record.next_tick(run)? else {
                        let detail = format!("{kind} after the run's last tick, which no cycle explains");
                        return Err(RunError::Diverged { run, seq, detail });
                    };
                    if let Some(cycle) = &self.recorded_cycle {
                        cycle.set(self.engine.cycles() + 1);
                    }
                    self.cycle(&tick, now)?;
                }
            }
            self.confirm(&mut record, false)?;
        }
        Ok(())
    }

    /// Checks the re-executed drafts pending against the record's next events, and
    /// takes them as appended. With `keep_beyond_end`, drafts past the record's end
    /// stay pending, to be appended (a resume making what the record does not hold
    /// yet); anywhere else a draft the record does not have is a divergence.
    fn confirm(&mut self, record: &mut Lookahead<'_>, keep_beyond_end: bool) -> Result<(), RunError> {
        let run = self.engine.run_id();
        let drafts = std::mem::take(&mut self.pending);
        let mut stored = Vec::with_capacity(drafts.len());
        while stored.len() < drafts.len() {
            match record.pop()? {
                Some(event) => stored.push(event),
                None => break,
            }
        }
        let checked = if keep_beyond_end { stored.len() } else { drafts.len() };
        check_from(run, self.appended, &drafts[..checked], &stored)?;
        self.appended = self.appended.plus(stored.len() as u64);
        if checked < drafts.len() {
            if record.peek(0)?.is_some() {
                let detail = "the record goes on where re-execution made more".to_string();
                return Err(RunError::Diverged { run, seq: self.appended.next(), detail });
            }
            self.pending.extend_from_slice(&drafts[checked..]);
        }
        Ok(())
    }

    /// Cancels every order working at the venue but the reduce-only ones (closes and
    /// protective exits, which only take risk off), for a kill-switch trip (`reason`),
    /// and records the venue's reports, at source time `ts_event` and cycle time `now`.
    fn cancel_working(&mut self, reason: &str, ts_event: TimestampNs, now: TimestampNs) -> Result<(), RunError> {
        for order in self.venue.working_orders() {
            if self.engine.is_reduce_only(&order) {
                continue;
            }
            if let Some(report) = self.venue.cancel(order, reason)? {
                self.engine.on_report(report, ts_event, now, &mut self.pending)?;
            }
        }
        Ok(())
    }

    /// Records an operator's command at time `now`, outside any cycle, and makes it
    /// durable; a trip cancels the working orders. Returns the command's seq.
    ///
    /// # Errors
    /// A failed append or flush.
    pub fn on_command(&mut self, command: &OperatorCommand, now: TimestampNs) -> Result<Seq, RunError> {
        let seq = self.appended.plus(self.pending.len() as u64 + 1);
        self.command(command.payload(), now)?;
        self.flush()?;
        Ok(seq)
    }

    /// Records an operator's command as a recorded run had it (`payload`, its
    /// `KillSwitchTripped` or `KillSwitchReset`), at its recorded time: a replay makes
    /// the commands of the run it replays at the same points.
    ///
    /// # Errors
    /// As [`Runner::on_tick`].
    pub fn on_recorded_command(&mut self, payload: Payload, now: TimestampNs) -> Result<(), RunError> {
        self.command(payload, now)
    }

    /// Records what a live venue or its feed reported outside any cycle (a gap, a lost
    /// connection), seen at time `now`; appended with the next batch.
    ///
    /// # Errors
    /// As [`Runner::on_tick`].
    pub fn on_notice(&mut self, notice: VenueNotice, now: TimestampNs) -> Result<(), RunError> {
        Ok(self.engine.record_notice(notice, now, &mut self.pending)?)
    }

    /// The drafts of an operator's command: the event, and for a trip the cancellation
    /// of every working order.
    fn command(&mut self, payload: Payload, now: TimestampNs) -> Result<(), RunError> {
        let trip = matches!(payload, Payload::KillSwitchTripped(_));
        self.engine.record_command(payload, now, &mut self.pending)?;
        if trip {
            self.cancel_working(OPERATOR_TRIP, now, now)?;
        }
        Ok(())
    }

    /// The run's engine (its account, kill switch, open orders).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The last appended seq.
    pub fn appended(&self) -> Seq {
        self.appended
    }

    /// The seq the log is durable through.
    pub fn durable(&self) -> Seq {
        self.log.durable_seq()
    }

    /// Stores a session snapshot and the observer's, covering everything appended.
    fn snapshot(&mut self) -> Result<(), RunError> {
        self.last_snapshot = self.appended;
        let encode_error = |seq: Seq| move |error| LogError::Encode { seq, error };
        if let (Some(provider), Some(venue)) = (self.engine.provider_state(), self.venue.save_state()) {
            let state = SessionState { covers: self.appended, engine: self.engine.save(), provider, venue };
            let bytes = codec::encode_meta(&state).map_err(encode_error(self.appended))?;
            self.log.put_snapshot(&SessionState::name(self.engine.run_id()), &bytes)?;
        }
        for (name, bytes) in self.observer.snapshots().map_err(encode_error(self.appended))? {
            self.log.put_snapshot(&name, &bytes)?;
        }
        Ok(())
    }

    /// Runs one cycle for `tick` at time `now`: the venue's reports for earlier orders
    /// on this tick, then the engine's cycle, then its orders through the venue.
    ///
    /// # Errors
    /// A failed append or flush (the events of the failed append are not recorded), or
    /// a cycle the engine cannot make ([`EngineError::Overflow`]): nothing of that cycle
    /// is recorded, the cycles before it are appended, and the run cannot go on.
    pub fn on_tick(&mut self, tick: &Tick, now: TimestampNs) -> Result<(), RunError> {
        let cycle_start = self.pending.len();
        if let Err(error) = self.cycle(tick, now) {
            // Nothing of a failed cycle is recorded; the cycles before it are (with no
            // snapshot: the engine has applied part of the failed cycle).
            self.pending.truncate(cycle_start);
            self.snapshot_every = 0;
            let appended = self.append();
            return Err(appended.err().unwrap_or(error));
        }
        self.cycles_pending += 1;
        if self.cycles_pending >= self.cycles_per_append {
            self.append()?;
        }
        Ok(())
    }

    /// One cycle's drafts: the venue's reports on earlier orders at this tick, the
    /// engine's cycle, and its orders through the venue.
    fn cycle(&mut self, tick: &Tick, now: TimestampNs) -> Result<(), RunError> {
        if let Some(last) = &mut self.last_ticks {
            last.insert(tick.instrument, tick.clone());
        }
        let market = MarketView { ts: tick.ts, instrument: tick.instrument, data: &tick.data };
        self.take_reports(&market, now)?;
        let first_new = self.pending.len();
        self.engine.on_tick(tick, now, &mut self.pending)?;
        self.act_on(first_new, &market, now)
    }

    /// Carries out what the drafts from `first_new` on ask of the venue, then takes
    /// the venue's reports.
    fn act_on(&mut self, first_new: usize, market: &MarketView<'_>, now: TimestampNs) -> Result<(), RunError> {
        match self.dispatch(first_new, market, now)? {
            true => self.take_reports(market, now),
            // Nothing new at the venue: it has nothing more to say on this tick.
            false => Ok(()),
        }
    }

    /// Carries out what the engine asked of the venue since draft `first_new`: its
    /// requests (cancellations, amended stops) first; a kill-switch trip cancels the
    /// working orders but the reduce-only ones; each `OrderSubmitted` is sent, after it
    /// is made durable when the venue is external. Returns whether any order was sent.
    fn dispatch(&mut self, first_new: usize, market: &MarketView<'_>, now: TimestampNs) -> Result<bool, RunError> {
        if self.engine.has_requests() {
            self.carry_out_requests(market, now)?;
        }
        self.to_send.clear();
        let mut tripped = false;
        for draft in &self.pending[first_new..] {
            match &draft.payload {
                Payload::OrderSubmitted(order) => self.to_send.push(order.clone()),
                Payload::KillSwitchTripped(_) => tripped = true,
                _ => {}
            }
        }
        if tripped {
            self.cancel_working("kill switch tripped", market.ts, now)?;
        }
        if self.to_send.is_empty() {
            return Ok(false);
        }
        if self.venue.is_external() {
            // An order is durable before it leaves the process.
            self.append()?;
            self.log.sync()?;
        }
        for order in std::mem::take(&mut self.to_send) {
            if let Err(error) = self.venue.submit(&order, market) {
                let reason = format!("venue refused the order: {error}");
                let rejected = OrderRejected { client_order_id: order.client_order_id, reason: reason.as_str().into() };
                self.engine.on_report(VenueReport::Rejected(rejected), market.ts, now, &mut self.pending)?;
            }
        }
        Ok(true)
    }

    /// Carries out the engine's requests on the tick `market`, recording the venue's
    /// reports at its source time.
    fn carry_out_requests(&mut self, market: &MarketView<'_>, now: TimestampNs) -> Result<(), RunError> {
        let requests: Vec<VenueRequest> = self.engine.take_requests().collect();
        for request in requests {
            match request {
                VenueRequest::Cancel { client_order_id, reason } => {
                    if let Some(report) = self.venue.cancel(client_order_id, &reason)? {
                        self.engine.on_report(report, market.ts, now, &mut self.pending)?;
                    }
                }
                VenueRequest::Amend { client_order_id, stop_price } => {
                    self.venue.amend(client_order_id, stop_price, market)?;
                }
            }
        }
        Ok(())
    }

    /// Records every report the venue has now, handing it the funds after each, and
    /// carries out what each report leads to (the exits a filled entry places, the
    /// orders a fill leaves with nothing to reduce) before the next.
    fn take_reports(&mut self, market: &MarketView<'_>, now: TimestampNs) -> Result<(), RunError> {
        while let Some(report) = self.venue.poll(market, &self.engine.funds()) {
            let first_new = self.pending.len();
            self.engine.on_report(report, market.ts, now, &mut self.pending)?;
            self.dispatch(first_new, market, now)?;
        }
        Ok(())
    }

    /// Appends the cycles gathered so far, feeding them to the observer first.
    fn append(&mut self) -> Result<(), RunError> {
        self.cycles_pending = 0;
        if self.pending.is_empty() {
            return Ok(());
        }
        let expected = self.appended.next();
        self.observer.observe(expected, &self.pending);
        let receipt = self.log.append(&mut self.pending)?;
        if receipt.first != expected {
            return Err(RunError::HeadMoved { expected, actual: receipt.first });
        }
        self.appended = receipt.last;
        if self.snapshot_every > 0 && self.appended.get() - self.last_snapshot.get() >= self.snapshot_every {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Appends the cycles gathered so far and makes every appended event durable (so
    /// that they can be published or reported). Returns the durable sequence.
    ///
    /// # Errors
    /// A failed append or flush.
    pub fn flush(&mut self) -> Result<Seq, RunError> {
        self.append()?;
        Ok(self.log.sync()?)
    }

    /// Closes every open position at the end of the data, at time `now`: cancels the
    /// working orders (an order decided on the last tick has no tick left to fill on),
    /// then records an order for all of each position ([`Engine::close_out`]) and has
    /// the venue fill it at once at the last tick of its instrument
    /// ([`Venue::settle`]), all in the last tick's cycle. Call it before
    /// [`Runner::stop`], only when the data has ended (not when interrupted).
    ///
    /// # Errors
    /// As [`Runner::on_tick`]: nothing of the close-out is recorded, what came before
    /// it is appended, and the run cannot go on.
    pub fn close_out(&mut self, now: TimestampNs) -> Result<(), RunError> {
        let start = self.pending.len();
        if let Err(error) = self.close_out_drafts(now) {
            self.pending.truncate(start);
            self.snapshot_every = 0;
            let appended = self.append();
            return Err(appended.err().unwrap_or(error));
        }
        Ok(())
    }

    fn close_out_drafts(&mut self, now: TimestampNs) -> Result<(), RunError> {
        let ts = self.engine.last_tick_ts();
        for report in self.venue.cancel_all("canceled at the end of the data, closing out") {
            self.engine.on_report(report, ts, now, &mut self.pending)?;
        }
        let first_new = self.pending.len();
        self.engine.close_out(now, &mut self.pending)?;
        let orders: Vec<OrderSubmitted> = self.pending[first_new..]
            .iter()
            .filter_map(|draft| match &draft.payload {
                Payload::OrderSubmitted(order) => Some(order.clone()),
                _ => None,
            })
            .collect();
        if !orders.is_empty() && self.venue.is_external() {
            // An order is durable before it leaves the process.
            self.append()?;
            self.log.sync()?;
        }
        for order in orders {
            // The instrument's last tick; a run resumed from a snapshot with no tick since
            // has only the last price, taken as a trade at it.
            let last = self.last_ticks.as_ref().and_then(|ticks| ticks.get(&order.instrument)).cloned();
            let tick = last.unwrap_or_else(|| Tick {
                ts,
                instrument: order.instrument,
                data: TickData::Trade(Trade {
                    price: self.engine.last_price(&order.instrument).unwrap_or_default(),
                    size: rust_decimal::Decimal::ZERO,
                    aggressor: None,
                }),
            });
            let market = MarketView { ts: tick.ts, instrument: tick.instrument, data: &tick.data };
            if let Err(error) = self.venue.submit(&order, &market) {
                let reason = format!("venue refused the order: {error}");
                let rejected = OrderRejected { client_order_id: order.client_order_id, reason: reason.as_str().into() };
                self.engine.on_report(VenueReport::Rejected(rejected), market.ts, now, &mut self.pending)?;
                continue;
            }
            while let Some(report) = self.venue.settle(&market, &self.engine.funds()) {
                self.engine.on_report(report, market.ts, now, &mut self.pending)?;
            }
        }
        Ok(())
    }

    /// Ends the run at `now`: cancels working orders, records `RunStopped` (with the
    /// count of market data rows skipped as bad), stores the observer's snapshots (when
    /// snapshots are on) and makes everything durable. Returns the final account.
    ///
    /// # Errors
    /// A failed append or flush.
    pub fn stop(mut self, reason: &str, skipped_rows: u64, now: TimestampNs) -> Result<Portfolio, RunError> {
        let canceled = self.venue.cancel_all(&format!("canceled at stop: {reason}"));
        let mut pending = std::mem::take(&mut self.pending);
        let portfolio = self.engine.stop(reason, skipped_rows, canceled, now, &mut pending)?;
        let expected = self.appended.next();
        self.observer.observe(expected, &pending);
        let receipt = self.log.append(&mut pending)?;
        if receipt.first != expected {
            return Err(RunError::HeadMoved { expected, actual: receipt.first });
        }
        if self.snapshot_every > 0 {
            // The folds' state at the stop (the engine's is of no use after it).
            for (name, bytes) in
                self.observer.snapshots().map_err(|error| LogError::Encode { seq: receipt.last, error })?
            {
                self.log.put_snapshot(&name, &bytes)?;
            }
        }
        self.log.sync()?;
        Ok(portfolio)
    }
}

/// Stored events read ahead of the one being re-executed (at most one cycle's).
struct Lookahead<'a> {
    cursor: EventCursor<'a>,
    ahead: VecDeque<Envelope>,
}

impl Lookahead<'_> {
    fn peek(&mut self, index: usize) -> Result<Option<&Envelope>, LogError> {
        while self.ahead.len() <= index {
            match self.cursor.next_event()? {
                Some(event) => self.ahead.push_back(event),
                None => return Ok(None),
            }
        }
        Ok(self.ahead.get(index))
    }

    fn pop(&mut self) -> Result<Option<Envelope>, LogError> {
        self.peek(0)?;
        Ok(self.ahead.pop_front())
    }

    /// The first tick of `run` from here on, with its cycle's time: the tick the next
    /// cycle ran on (the reports before it in the record are that cycle's too).
    fn next_tick(&mut self, run: RunId) -> Result<Option<(Tick, TimestampNs)>, LogError> {
        let mut index = 0;
        while let Some(event) = self.peek(index)? {
            if let (true, Payload::MarketTick(market)) = (event.header.run_id == run, &event.payload) {
                let tick = Tick { ts: event.header.ts_event, instrument: market.instrument, data: market.data.clone() };
                return Ok(Some((tick, event.header.ts_recorded)));
            }
            index += 1;
        }
        Ok(None)
    }
}

/// An order of a run as its record has it: its `OrderSubmitted`, whether it was
/// accepted, its fills, and whether it was canceled or rejected.
struct RecordedOrder {
    order: OrderSubmitted,
    accepted: bool,
    fills: Vec<OrderFilled>,
    ended: bool,
}

/// The orders of run `range` (through `head`) a live venue adopts on resume, in
/// submission order, each with whether the run has it open: the `open` ones, and
/// those whose record ends with a fill (perhaps a partial one).
fn orders_to_adopt(
    source: &dyn RecordSource,
    range: RunRange,
    head: Seq,
    open: &[ClientOrderId],
) -> Result<Vec<(RecordedOrder, bool)>, LogError> {
    let mut orders: Vec<RecordedOrder> = Vec::new();
    let mut index: std::collections::HashMap<ClientOrderId, usize> = std::collections::HashMap::new();
    let mut cursor = EventCursor::new(source, range.first, head);
    while let Some(event) = cursor.next_event()? {
        if event.header.run_id != range.run_id {
            continue;
        }
        let at = |id: &ClientOrderId| index.get(id).copied();
        match event.payload {
            Payload::OrderSubmitted(order) => {
                index.insert(order.client_order_id, orders.len());
                orders.push(RecordedOrder { order, accepted: false, fills: Vec::new(), ended: false });
            }
            Payload::OrderAccepted(r) => at(&r.client_order_id).into_iter().for_each(|i| orders[i].accepted = true),
            Payload::OrderFilled(fill) => {
                if let Some(i) = at(&fill.client_order_id) {
                    orders[i].fills.push(fill);
                }
            }
            Payload::OrderCanceled(r) => at(&r.client_order_id).into_iter().for_each(|i| orders[i].ended = true),
            Payload::OrderRejected(r) => at(&r.client_order_id).into_iter().for_each(|i| orders[i].ended = true),
            _ => {}
        }
    }
    Ok(orders
        .into_iter()
        .filter_map(|o| {
            let is_open = open.contains(&o.order.client_order_id);
            (is_open || (!o.ended && !o.fills.is_empty())).then_some((o, is_open))
        })
        .collect())
}

/// Checks re-executed `drafts` against the `stored` events that follow `appended`.
fn check_from(run: RunId, appended: Seq, drafts: &[EventDraft], stored: &[Envelope]) -> Result<(), RunError> {
    for (offset, draft) in drafts.iter().enumerate() {
        let seq = appended.plus(offset as u64 + 1);
        let Some(event) = stored.get(offset) else {
            let detail = format!("re-execution makes a {} the record does not have", draft.payload.kind());
            return Err(RunError::Diverged { run, seq, detail });
        };
        if event.header.seq != seq || draft.at(seq) != event.as_ref() {
            let detail = format!(
                "the record has {} (run {}, seq {}), re-execution makes {}",
                event.payload.kind(),
                event.header.run_id,
                event.header.seq,
                draft.payload.kind()
            );
            return Err(RunError::Diverged { run, seq, detail });
        }
    }
    Ok(())
}

/// [`check_from`] for drafts that start at the stored events' first seq.
fn check(run: RunId, drafts: &[EventDraft], stored: &[Envelope]) -> Result<(), RunError> {
    let first = stored.first().map_or(Seq::ZERO, |e| e.header.seq);
    check_from(run, Seq::new(first.get().saturating_sub(1)), drafts, stored)
}
