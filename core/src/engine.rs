//! The engine: one cycle per market tick, tick -> decision -> risk verdict -> orders,
//! and the venue's reports on those orders, every step an event draft. The engine is
//! pure: it holds no log, no venue and no clock. A tick (with the cycle's time) or a
//! venue report goes in; the cycle's drafts come out, pushed onto the caller's buffer;
//! and the engine's own state changes only by applying those drafts ([`Engine`]'s
//! `apply`), so a run rebuilt from its events is the run that made them.
//!
//! Time enters a cycle once: the runner passes `now` with the tick, every draft of the
//! cycle carries it as `ts_recorded`, and every check that needs the time (the price
//! staleness check) reads it from there. A replay passes the recorded `ts_recorded`, so
//! a paper run replays identically.
//!
//! The engine predicts the sequence each draft will get (its drafts are appended in the
//! order it pushes them, by one writer), so causation links are known before appending.

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chain::Hash32;
use crate::decision::{DecisionInput, DecisionProvider};
use crate::event::*;
use crate::feed::Tick;
use crate::ids::{ClientOrderId, CycleId, InstrumentId, RunId, Seq};
use crate::portfolio::{AccountOverflow, Portfolio};
use crate::risk::{KillSwitch, RiskEngine, RiskInput};
use crate::sizing::Funds;
use crate::time::TimestampNs;
use crate::venue::VenueReport;

/// Why the engine could not make a cycle's drafts. Provider failures never get here:
/// they become `hold`.
#[derive(Debug, Error)]
pub enum EngineError {
    /// A generated client order id was invalid (a broken invariant of the id scheme).
    #[error("client order id: {0}")]
    OrderId(#[from] crate::ids::IdError),
    /// The account would leave the range of exact decimals (a price or quantity far
    /// outside anything traded): the run stops; nothing of the cycle is recorded.
    #[error("cycle {cycle}: {source}")]
    Overflow {
        /// The cycle it happened in.
        cycle: u64,
        /// What would have overflowed.
        source: AccountOverflow,
    },
}

/// How a run is started.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run id (one above the ledger's highest).
    pub run_id: RunId,
    /// Live, paper or replay.
    pub mode: RunMode,
    /// The effective configuration, canonical JSON (hashed into `config_hash`).
    pub config: Text,
    /// Software version.
    pub software_version: Text,
    /// Instruments traded.
    pub instruments: Vec<InstrumentId>,
    /// Where the data comes from.
    pub data_source: Text,
    /// The replayed run, for replays of a recorded run.
    pub parent_run: Option<RunId>,
    /// Starting cash, account currency.
    pub starting_cash: Decimal,
    /// The venue's name, e.g. `paper`.
    pub venue: Text,
}

/// The engine's state between cycles, without its provider: what a session snapshot
/// holds of it (with the provider's and the venue's own state beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineState {
    risk: RiskEngine,
    kill: KillSwitch,
    portfolio: Portfolio,
    run_id: RunId,
    cycle: u64,
    next_seq: Seq,
    orders: BTreeMap<ClientOrderId, (CycleId, Seq)>,
    #[serde(with = "crate::codec::decimal_map")]
    last_price: BTreeMap<InstrumentId, Decimal>,
    order_counter: u64,
    last_tick_ts: TimestampNs,
}

impl EngineState {
    /// The run.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// Cycles run so far.
    pub fn cycles(&self) -> u64 {
        self.cycle
    }

    /// The account.
    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }
}

/// An operator's command to a running session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCommand {
    /// Trip the kill switch (recorded as `KillSwitchTripped` with trigger `command`).
    Trip {
        /// Who.
        by: Text,
        /// Why.
        reason: Text,
    },
    /// Reset it (recorded as `KillSwitchReset`).
    Reset {
        /// Who.
        by: Text,
        /// Why.
        reason: Text,
    },
}

impl OperatorCommand {
    /// The event that records the command.
    pub fn payload(&self) -> Payload {
        match self {
            OperatorCommand::Trip { by, reason } => Payload::KillSwitchTripped(KillSwitchTripped {
                trigger: KillTrigger::Command,
                value: Decimal::ONE,
                limit: Decimal::ONE,
                reason: Arc::from(format!("tripped by {by}: {reason}").as_str()),
            }),
            OperatorCommand::Reset { by, reason } => {
                Payload::KillSwitchReset(KillSwitchReset { by: by.clone(), reason: reason.clone() })
            }
        }
    }
}

/// The deterministic core of a run: provider, risk engine, kill switch and account.
pub struct Engine {
    provider: Box<dyn DecisionProvider>,
    /// Everything else: plain data, saved whole in session snapshots.
    state: EngineState,
}

impl Engine {
    /// Starts a run after the ledger's `head`: pushes `RunStarted` onto `out` and
    /// returns the engine.
    ///
    /// # Errors
    /// None in practice (a `RunStarted` changes no account); the type is the engine's.
    pub fn start(
        spec: RunSpec,
        provider: Box<dyn DecisionProvider>,
        risk: RiskEngine,
        kill: KillSwitch,
        head: Seq,
        now: TimestampNs,
        out: &mut Vec<EventDraft>,
    ) -> Result<Engine, EngineError> {
        let info = provider.info();
        let state = EngineState {
            risk,
            kill,
            portfolio: Portfolio::new(spec.starting_cash),
            run_id: spec.run_id,
            cycle: 0,
            next_seq: head.next(),
            orders: BTreeMap::new(),
            last_price: BTreeMap::new(),
            order_counter: 0,
            last_tick_ts: now,
        };
        let mut engine = Engine { provider, state };
        let started = RunStarted {
            mode: spec.mode,
            config_hash: Hash32::digest(spec.config.as_bytes()),
            config: spec.config,
            software_version: spec.software_version,
            venue: spec.venue,
            instruments: spec.instruments,
            provider: info.provider,
            model: info.model,
            params: info.params,
            parent_run: spec.parent_run,
            data_source: spec.data_source,
            starting_cash: spec.starting_cash,
            kill_switch_tripped: engine.state.kill.is_tripped(),
        };
        engine.emit(out, CycleId::new(0), None, now, now, Payload::RunStarted(started))?;
        Ok(engine)
    }

    /// The account as the engine keeps it.
    pub fn portfolio(&self) -> &Portfolio {
        &self.state.portfolio
    }

    /// Whether the kill switch is tripped.
    pub fn kill_switch_tripped(&self) -> bool {
        self.state.kill.is_tripped()
    }

    /// Cycles run so far.
    pub fn cycles(&self) -> u64 {
        self.state.cycle
    }

    /// Orders sent and not yet filled, rejected or canceled, in client order id order.
    pub fn open_orders(&self) -> impl Iterator<Item = &ClientOrderId> {
        self.state.orders.keys()
    }

    /// The engine's state (for a session snapshot).
    pub fn save(&self) -> EngineState {
        self.state.clone()
    }

    /// The provider's state, for a session snapshot (see
    /// [`DecisionProvider::save_state`]).
    pub fn provider_state(&self) -> Option<Vec<u8>> {
        self.provider.save_state()
    }

    /// An engine as it was when `state` was saved, deciding with `provider` and
    /// enforcing the limits of `risk` and `kill` (all built from the run's
    /// configuration; the provider's own state already restored).
    pub fn restore(
        state: EngineState,
        provider: Box<dyn DecisionProvider>,
        risk: RiskEngine,
        kill: KillSwitch,
    ) -> Engine {
        let state = EngineState { risk: risk.restored(state.risk), kill: kill.restored(state.kill), ..state };
        Engine { provider, state }
    }

    /// Passes over a stored event at `seq` that is not the run's own doing (another
    /// run's): the next draft follows it. An operator's kill-switch command made while
    /// the run was down (`command`: a run-0 trip or reset) takes effect.
    pub fn pass_over(&mut self, seq: Seq, command: Option<&Payload>) {
        match command {
            Some(Payload::KillSwitchTripped(_)) => self.state.kill.trip(),
            Some(Payload::KillSwitchReset(_)) => self.state.kill.reset(),
            _ => {}
        }
        self.state.next_seq = seq.next();
    }

    /// Records an operator's command (its event, [`OperatorCommand::payload`]) at time
    /// `now`, outside any cycle.
    ///
    /// # Errors
    /// None in practice (a kill-switch event changes no account).
    pub fn record_command(
        &mut self,
        payload: Payload,
        now: TimestampNs,
        out: &mut Vec<EventDraft>,
    ) -> Result<(), EngineError> {
        self.emit(out, CycleId::new(0), None, now, now, payload).map(|_| ())
    }

    /// The run.
    pub fn run_id(&self) -> RunId {
        self.state.run_id
    }

    /// The last price of `instrument` (its last tick's reference price), if it had one.
    pub fn last_price(&self, instrument: &InstrumentId) -> Option<Decimal> {
        self.state.last_price.get(instrument).copied()
    }

    /// Source time of the last tick (the start time before the first).
    pub fn last_tick_ts(&self) -> TimestampNs {
        self.state.last_tick_ts
    }

    /// Records that the run resumes after an interruption, at time `now`.
    ///
    /// # Errors
    /// None in practice.
    pub fn on_resume(
        &mut self,
        after_seq: Seq,
        snapshot_seq: Seq,
        working_orders: Vec<ClientOrderId>,
        now: TimestampNs,
        out: &mut Vec<EventDraft>,
    ) -> Result<(), EngineError> {
        let resumed = RunResumed {
            after_seq,
            cycles: self.state.cycle,
            snapshot_seq,
            working_orders,
            kill_switch_tripped: self.state.kill.is_tripped(),
        };
        self.emit(out, CycleId::new(0), None, now, now, Payload::RunResumed(resumed)).map(|_| ())
    }

    /// The money orders may use now, as handed to venues.
    pub fn funds(&self) -> Funds {
        Funds {
            cash: self.state.portfolio.cash,
            equity: self.state.portfolio.equity(),
            gross_exposure: self.state.portfolio.gross_exposure(),
        }
    }

    /// Pushes a draft, applies it to the engine's state and returns the seq it will get.
    fn emit(
        &mut self,
        out: &mut Vec<EventDraft>,
        cycle: CycleId,
        cause: Option<Seq>,
        ts_event: TimestampNs,
        now: TimestampNs,
        payload: Payload,
    ) -> Result<Seq, EngineError> {
        let seq = self.state.next_seq;
        self.apply(seq, cycle, &payload).map_err(|source| EngineError::Overflow { cycle: self.state.cycle, source })?;
        self.state.next_seq = seq.next();
        out.push(EventDraft {
            run_id: self.state.run_id,
            cycle_id: cycle,
            causation_seq: cause,
            ts_event,
            ts_recorded: now,
            payload,
        });
        Ok(seq)
    }

    /// What an event does to the engine's state: the one place its state changes. A
    /// change the account cannot represent is refused, and the state is left as it was.
    fn apply(&mut self, seq: Seq, cycle: CycleId, payload: &Payload) -> Result<(), AccountOverflow> {
        match payload {
            Payload::MarketTick(tick) => {
                let price = tick.data.reference_price();
                self.state.portfolio.mark(&tick.instrument, price)?;
                self.state.last_price.insert(tick.instrument, price);
            }
            Payload::DecisionMade(made) => self.state.kill.on_outcome(!matches!(made.parse_status, ParseStatus::Ok)),
            Payload::OrderSubmitted(order) => {
                self.state.orders.insert(order.client_order_id, (cycle, seq));
            }
            Payload::OrderFilled(fill) => {
                self.state.portfolio.apply_fill(fill)?;
                self.state.kill.on_outcome(false);
                self.state.orders.remove(&fill.client_order_id);
            }
            Payload::OrderRejected(rejected) => {
                self.state.kill.on_outcome(true);
                self.state.orders.remove(&rejected.client_order_id);
            }
            Payload::OrderCanceled(canceled) => {
                self.state.orders.remove(&canceled.client_order_id);
            }
            Payload::KillSwitchTripped(_) => self.state.kill.trip(),
            Payload::KillSwitchReset(_) => self.state.kill.reset(),
            Payload::RunStarted(_)
            | Payload::RunStopped(_)
            | Payload::RiskVerdict(_)
            | Payload::OrderAccepted(_)
            | Payload::RiskLimitsChanged(_)
            | Payload::RunResumed(_) => {}
        }
        Ok(())
    }

    /// Records a venue's report on one of the run's orders, at source time `ts_event`
    /// (the tick it happened on), in the order's cycle.
    pub fn on_report(
        &mut self,
        report: VenueReport,
        ts_event: TimestampNs,
        now: TimestampNs,
        out: &mut Vec<EventDraft>,
    ) -> Result<(), EngineError> {
        let (cycle, order_seq) =
            self.state.orders.get(&report.client_order_id()).copied().unwrap_or((CycleId::new(0), Seq::ZERO));
        let cause = (order_seq != Seq::ZERO).then_some(order_seq);
        let payload = match report {
            VenueReport::Accepted(r) => Payload::OrderAccepted(r),
            VenueReport::Rejected(r) => Payload::OrderRejected(r),
            VenueReport::Filled(r) => Payload::OrderFilled(r),
            VenueReport::Canceled(r) => Payload::OrderCanceled(r),
        };
        self.emit(out, cycle, cause, ts_event, now, payload).map(|_| ())
    }

    /// Runs one cycle for `tick` at time `now` (the cycle's recording time): the tick
    /// and its marks, the kill switch, the decision, the verdict and the orders, pushed
    /// onto `out`. The orders' `OrderSubmitted` drafts are for the runner to send.
    ///
    /// # Errors
    /// [`EngineError::OrderId`] only on a broken invariant of the id scheme.
    pub fn on_tick(&mut self, tick: &Tick, now: TimestampNs, out: &mut Vec<EventDraft>) -> Result<(), EngineError> {
        self.state.cycle += 1;
        self.state.last_tick_ts = tick.ts;
        let cycle = CycleId::new(self.state.cycle);
        let previous_price = self.state.last_price.get(&tick.instrument).copied();
        let market = MarketTick { instrument: tick.instrument, data: tick.data.clone() };
        let tick_seq = self.emit(out, cycle, None, tick.ts, now, Payload::MarketTick(market))?;
        self.state.risk.on_tick(tick.ts, self.state.portfolio.equity());

        // The kill switch watches equity.
        if let Some(tripped) = self.state.kill.check(&self.state.portfolio) {
            let trip_seq = self.emit(out, cycle, Some(tick_seq), tick.ts, now, Payload::KillSwitchTripped(tripped))?;
            if self.state.kill.closes_positions() {
                let positions: Vec<_> = self.state.portfolio.positions.iter().map(|(id, p)| (*id, p.qty)).collect();
                for (instrument, qty) in positions {
                    let side = if qty > Decimal::ZERO { Side::Sell } else { Side::Buy };
                    self.submit(
                        out,
                        cycle,
                        Some(trip_seq),
                        tick.ts,
                        now,
                        instrument,
                        side,
                        OrderQty::Units(qty.abs()),
                    )?;
                }
            }
        }

        // Decision.
        let price = tick.data.reference_price();
        let bar = match &tick.data {
            TickData::Bar(bar) => Some(bar),
            _ => None,
        };
        let input = DecisionInput {
            ts: tick.ts,
            instrument: &tick.instrument,
            price,
            bar,
            position_qty: self.state.portfolio.qty(&tick.instrument),
        };
        let answer = self.provider.decide(&input);
        let decision = answer.decision.clone();
        let made = DecisionMade {
            prompt_sha256: (!answer.prompt.is_empty()).then(|| Hash32::digest(answer.prompt.as_bytes())),
            prompt: answer.prompt,
            raw_output: answer.raw_output,
            parsed: answer.decision,
            parse_status: answer.parse_status,
            latency_us: answer.latency_us,
            tokens_in: answer.tokens_in,
            tokens_out: answer.tokens_out,
        };
        let decision_seq = self.emit(out, cycle, Some(tick_seq), tick.ts, now, Payload::DecisionMade(made))?;

        // Risk verdict, at the cycle's time.
        let judgement = self.state.risk.judge(&RiskInput {
            decision: &decision,
            instrument: &tick.instrument,
            price: Some(price),
            previous_price,
            tick_ts: tick.ts,
            now,
            portfolio: &self.state.portfolio,
            kill_switch_tripped: self.state.kill.is_tripped(),
        });
        let approved = judgement.approved;
        let verdict = RiskVerdict { approved, checks: judgement.checks, reason: judgement.reason };
        let verdict_seq = self.emit(out, cycle, Some(decision_seq), tick.ts, now, Payload::RiskVerdict(verdict))?;

        // Orders.
        if approved && self.place(out, cycle, verdict_seq, tick, now, &decision)? {
            self.state.risk.on_order(tick.ts, &decision);
        }
        Ok(())
    }

    /// Turns an approved decision into orders; returns whether any was submitted.
    ///
    /// `long` and `short` are exclusive orders, as backtesting.py's
    /// `exclusive_orders=True` (`_Broker.new_order`: every open trade is closed before
    /// the new order): a position held in the instrument is closed first (a `Units`
    /// order for all of it), whichever its side, and the new position is opened after it
    /// for `size_pct` of the money available when it fills ([`OrderQty::EquityFraction`],
    /// sized by the venue against the funds after the closing leg). So a signal in the
    /// direction already held closes and reopens the position; to keep a position,
    /// a provider answers `hold`. `close` closes the position; `hold` does nothing.
    fn place(
        &mut self,
        out: &mut Vec<EventDraft>,
        cycle: CycleId,
        cause: Seq,
        tick: &Tick,
        now: TimestampNs,
        decision: &Decision,
    ) -> Result<bool, EngineError> {
        let held = self.state.portfolio.qty(&tick.instrument);
        let closing_side = if held > Decimal::ZERO { Side::Sell } else { Side::Buy };
        let target_side = match decision.action {
            Action::Long => Side::Buy,
            Action::Short => Side::Sell,
            Action::Close => {
                if held.is_zero() {
                    return Ok(false);
                }
                let qty = OrderQty::Units(held.abs());
                self.submit(out, cycle, Some(cause), tick.ts, now, tick.instrument, closing_side, qty)?;
                return Ok(true);
            }
            Action::Hold => return Ok(false),
        };
        if !held.is_zero() {
            // The closing leg first (a reversal, or the same side closed to reopen).
            let qty = OrderQty::Units(held.abs());
            self.submit(out, cycle, Some(cause), tick.ts, now, tick.instrument, closing_side, qty)?;
        }
        if decision.size_pct > Decimal::ZERO {
            let qty = OrderQty::EquityFraction(decision.size_pct);
            self.submit(out, cycle, Some(cause), tick.ts, now, tick.instrument, target_side, qty)?;
        }
        Ok(true)
    }

    /// Closes every open position at the end of the data (`close_at_end`): records an
    /// `OrderSubmitted` for all of each position, in the last tick's cycle and at its
    /// source time, caused by no event (the end of the data is not one). The runner
    /// sends them and the venue fills them at the last prices
    /// ([`crate::venue::Venue::settle`]).
    ///
    /// # Errors
    /// [`EngineError::OrderId`] only on a broken invariant of the id scheme.
    pub fn close_out(&mut self, now: TimestampNs, out: &mut Vec<EventDraft>) -> Result<(), EngineError> {
        let cycle = CycleId::new(self.state.cycle);
        let ts = self.state.last_tick_ts;
        let positions: Vec<_> = self.state.portfolio.positions.iter().map(|(id, p)| (*id, p.qty)).collect();
        for (instrument, qty) in positions {
            let side = if qty > Decimal::ZERO { Side::Sell } else { Side::Buy };
            self.submit(out, cycle, None, ts, now, instrument, side, OrderQty::Units(qty.abs()))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        out: &mut Vec<EventDraft>,
        cycle: CycleId,
        cause: Option<Seq>,
        ts: TimestampNs,
        now: TimestampNs,
        instrument: InstrumentId,
        side: Side,
        qty: OrderQty,
    ) -> Result<(), EngineError> {
        self.state.order_counter += 1;
        let id = ClientOrderId::new(&format!("r{}-{}", self.state.run_id, self.state.order_counter))?;
        let order = OrderSubmitted {
            client_order_id: id,
            instrument,
            side,
            qty,
            order_type: OrderType::Market,
            limit_price: None,
            tif: TimeInForce::Gtc,
        };
        self.emit(out, cycle, cause, ts, now, Payload::OrderSubmitted(order))?;
        Ok(())
    }

    /// Ends the run at `now`: records the venue's cancellations of working orders
    /// (`canceled`) and `RunStopped` with the count of market data rows skipped as bad.
    /// Returns the final account.
    ///
    /// # Errors
    /// None in practice (cancellations and a stop change no account).
    pub fn stop(
        mut self,
        reason: &str,
        skipped_rows: u64,
        canceled: Vec<VenueReport>,
        now: TimestampNs,
        out: &mut Vec<EventDraft>,
    ) -> Result<Portfolio, EngineError> {
        let ts = self.state.last_tick_ts;
        for report in canceled {
            self.on_report(report, ts, now, out)?;
        }
        let stopped = RunStopped { reason: Arc::from(reason), skipped_rows };
        self.emit(out, CycleId::new(0), None, ts, now, Payload::RunStopped(stopped))?;
        Ok(self.state.portfolio)
    }
}
