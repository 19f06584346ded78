//! The runner: everything around the pure [`Engine`] for one run. It hands the engine
//! ticks with the cycle's time, sends the orders the engine records to the venue and
//! hands the venue's reports back, appends the drafts to the log in batches, makes every
//! `OrderSubmitted` durable before an external venue sees it, and feeds each batch to an
//! [`Observer`] (the projections' folds) as it is appended.
//!
//! Paper, live and replay differ only in what the caller feeds it: the ticks (a file, a
//! recorded run, an exchange), the cycle's time (the data's, the recorded one, the wall
//! clock's) and the venue.

use thiserror::Error;

use crate::decision::DecisionProvider;
use crate::engine::{Engine, EngineError, RunSpec};
use crate::event::{EventDraft, OrderRejected, OrderSubmitted, Payload};
use crate::feed::Tick;
use crate::ids::Seq;
use crate::log::{EventLog, LogError};
use crate::portfolio::Portfolio;
use crate::risk::{KillSwitch, RiskEngine};
use crate::time::TimestampNs;
use crate::venue::{MarketView, Venue, VenueReport};

/// Why a run stopped with an error. Every variant stops the run: what was appended
/// before it stays, chained and verifiable. (Provider and venue failures do not get
/// here: they are recorded as holds and rejections, and the run goes on.)
#[derive(Debug, Error)]
pub enum RunError {
    /// The ledger failed an append or a flush.
    #[error("ledger: {0}")]
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
}

/// Something fed every event as it is appended, in sequence order: the live folds.
pub trait Observer {
    /// `events` are about to be appended as the records `first`, `first + 1`, ...
    /// (if the append then fails, the run stops with that error).
    fn observe(&mut self, first: Seq, events: &[EventDraft]);
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
        let mut runner = Runner {
            log,
            observer,
            engine,
            venue: parts.venue,
            pending,
            appended,
            cycles_pending: 0,
            cycles_per_append: cycles_per_append.max(1),
            to_send: Vec::new(),
        };
        runner.append()?;
        Ok(runner)
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
            // Nothing of a failed cycle is recorded; the cycles before it are.
            self.pending.truncate(cycle_start);
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
        let market = MarketView { ts: tick.ts, instrument: tick.instrument, data: &tick.data };
        self.take_reports(&market, now)?;
        let first_new = self.pending.len();
        self.engine.on_tick(tick, now, &mut self.pending)?;
        self.act_on(first_new, &market, now)
    }

    /// Carries out what the drafts from `first_new` on ask of the venue: a kill-switch
    /// trip cancels the working orders; each `OrderSubmitted` is sent, after it is made
    /// durable when the venue is external. Then takes the venue's reports.
    fn act_on(&mut self, first_new: usize, market: &MarketView<'_>, now: TimestampNs) -> Result<(), RunError> {
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
            for report in self.venue.cancel_all("kill switch tripped") {
                self.engine.on_report(report, market.ts, now, &mut self.pending)?;
            }
        }
        if self.to_send.is_empty() {
            return Ok(());
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
        self.take_reports(market, now)
    }

    /// Records every report the venue has now, handing it the funds after each.
    fn take_reports(&mut self, market: &MarketView<'_>, now: TimestampNs) -> Result<(), RunError> {
        while let Some(report) = self.venue.poll(market, &self.engine.funds()) {
            self.engine.on_report(report, market.ts, now, &mut self.pending)?;
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

    /// Ends the run at `now`: cancels working orders, records `RunStopped` (with the
    /// count of market data rows skipped as bad) and makes everything durable. Returns
    /// the final account.
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
        self.log.sync()?;
        Ok(portfolio)
    }
}
