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
use crate::decision::{CycleContext, DecisionInput, DecisionProvider, ProviderAnswer};
use crate::event::*;
use crate::exits::{self, ExitPolicy};
use crate::feed::Tick;
use crate::ids::{ClientOrderId, CycleId, InstrumentId, RunId, Seq};
use crate::portfolio::{AccountOverflow, Portfolio};
use crate::risk::{Judgement, KillSwitch, RiskEngine, RiskInput};
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
    /// The protective exits placed on entries whose decisions set none.
    pub exits: ExitPolicy,
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
    /// Working entries' brackets: the exits placed when they fill.
    brackets: BTreeMap<ClientOrderId, Bracket>,
    /// Working reduce-only orders (closes and protective exits), by order.
    reducing: BTreeMap<ClientOrderId, Reducing>,
    /// Units filled so far of each working entry with a bracket (a live venue fills an
    /// order in parts): its exits are sized to this.
    #[serde(with = "crate::codec::decimal_map")]
    entry_filled: BTreeMap<ClientOrderId, Decimal>,
}

/// A working reduce-only order: what it reduces, and for a protective exit what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reducing {
    instrument: InstrumentId,
    /// The order's side: a sell reduces a long, a buy a short.
    side: Side,
    protects: Option<Protection>,
    /// A stop's trigger price, as last amended.
    #[serde(with = "crate::codec::decimal_opt")]
    stop_price: Option<Decimal>,
}

/// What the engine asks of the venue beyond new orders (those are its `OrderSubmitted`
/// drafts): the runner carries these out and records the venue's reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueRequest {
    /// Cancel a working order (a reduce-only order with nothing left to reduce).
    Cancel {
        /// The order.
        client_order_id: ClientOrderId,
        /// Why, recorded in its `OrderCanceled`.
        reason: Text,
    },
    /// Move a working stop order's trigger price (a trailing stop), as its
    /// `OrderAmended` records.
    Amend {
        /// The order.
        client_order_id: ClientOrderId,
        /// The new trigger price, quote currency.
        stop_price: Decimal,
    },
}

/// Where and when the orders of one step are placed.
#[derive(Debug, Clone, Copy)]
struct Placement {
    cycle: CycleId,
    cause: Option<Seq>,
    ts: TimestampNs,
    now: TimestampNs,
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
    /// From the run's configuration.
    exits: ExitPolicy,
    /// Everything else: plain data, saved whole in session snapshots.
    state: EngineState,
    /// Requests for the runner, made by the last call and taken by
    /// [`Engine::take_requests`] before the next.
    requests: Vec<VenueRequest>,
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
            brackets: BTreeMap::new(),
            reducing: BTreeMap::new(),
            entry_filled: BTreeMap::new(),
        };
        let mut engine = Engine { provider, exits: spec.exits, state, requests: Vec::new() };
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
        engine.emit(out, CycleId::new(0), None, now, now, Payload::RunStarted(Box::new(started)))?;
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

    /// An engine as it was when `state` was saved, deciding with `provider`,
    /// enforcing the limits of `risk` and `kill` and placing the exits of `exits` (all
    /// built from the run's configuration; the provider's own state already restored).
    pub fn restore(
        state: EngineState,
        provider: Box<dyn DecisionProvider>,
        risk: RiskEngine,
        kill: KillSwitch,
        exits: ExitPolicy,
    ) -> Engine {
        let state = EngineState { risk: risk.restored(state.risk), kill: kill.restored(state.kill), ..state };
        Engine { provider, exits, state, requests: Vec::new() }
    }

    /// The requests the last calls made of the venue (cancellations of reduce-only
    /// orders left with nothing to reduce, trailing stops moved), in order; the runner
    /// carries them out before anything else reaches the venue.
    pub fn take_requests(&mut self) -> std::vec::Drain<'_, VenueRequest> {
        self.requests.drain(..)
    }

    /// Whether the engine has requests for the venue ([`Engine::take_requests`]).
    pub fn has_requests(&self) -> bool {
        !self.requests.is_empty()
    }

    /// Whether `order` is a working reduce-only order (a close or a protective exit):
    /// a kill-switch trip leaves those working.
    pub fn is_reduce_only(&self, order: &ClientOrderId) -> bool {
        self.state.reducing.contains_key(order)
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

    /// Records what a venue or its feed reported outside any cycle (a gap, a lost
    /// connection), seen at time `now` (the notice's source time too).
    ///
    /// # Errors
    /// None in practice (a notice changes no account).
    pub fn record_notice(
        &mut self,
        notice: VenueNotice,
        now: TimestampNs,
        out: &mut Vec<EventDraft>,
    ) -> Result<(), EngineError> {
        self.emit(out, CycleId::new(0), None, now, now, Payload::VenueNotice(notice)).map(|_| ())
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
            Payload::DecisionMade(made) => {
                self.state.kill.on_outcome(!matches!(made.parse_status, ParseStatus::Ok));
                self.state.kill.on_decision(matches!(made.parse_status, ParseStatus::ProviderError(_)));
            }
            Payload::ModelCalled(call) => {
                self.state.risk.on_model_call(self.state.last_tick_ts, call.requests, call.cost_usd)
            }
            Payload::OrderSubmitted(order) => {
                let id = order.client_order_id;
                self.state.orders.insert(id, (cycle, seq));
                if let Some(bracket) = &order.bracket {
                    self.state.brackets.insert(id, (**bracket).clone());
                }
                if order.reduce_only {
                    let reducing = Reducing {
                        instrument: order.instrument,
                        side: order.side,
                        protects: order.protects.clone(),
                        stop_price: order.stop_price,
                    };
                    self.state.reducing.insert(id, reducing);
                }
            }
            // The order stays open until its last fill ([`Engine::on_report`]).
            Payload::OrderFilled(fill) => {
                self.state.portfolio.apply_fill(fill)?;
                self.state.kill.on_outcome(false);
                if self.state.brackets.contains_key(&fill.client_order_id) {
                    let filled = self.state.entry_filled.entry(fill.client_order_id).or_insert(Decimal::ZERO);
                    *filled = filled.checked_add(fill.qty).ok_or(AccountOverflow { cause: "a fill" })?;
                }
            }
            Payload::OrderRejected(rejected) => {
                self.state.kill.on_outcome(true);
                self.forget(&rejected.client_order_id);
            }
            Payload::OrderCanceled(canceled) => self.forget(&canceled.client_order_id),
            Payload::OrderAmended(amended) => {
                if let Some(order) = self.state.reducing.get_mut(&amended.client_order_id) {
                    order.stop_price = Some(amended.stop_price);
                }
            }
            Payload::KillSwitchTripped(_) => self.state.kill.trip(),
            Payload::KillSwitchReset(_) => self.state.kill.reset(),
            Payload::RunStarted(_)
            | Payload::RunStopped(_)
            | Payload::RiskVerdict(_)
            | Payload::OrderAccepted(_)
            | Payload::RiskLimitsChanged(_)
            | Payload::RunResumed(_)
            | Payload::ToolCalled(_)
            | Payload::VenueNotice(_) => {}
        }
        Ok(())
    }

    /// An order is no longer working.
    fn forget(&mut self, order: &ClientOrderId) {
        self.state.orders.remove(order);
        self.state.brackets.remove(order);
        self.state.reducing.remove(order);
        self.state.entry_filled.remove(order);
    }

    /// Records a venue's report on one of the run's orders, at source time `ts_event`
    /// (the tick it happened on), in the order's cycle. An order stays open until it is
    /// rejected, canceled or filled for the last time ([`VenueReport::ends_order`]), so
    /// each of its fills is caused by it. After a fill, the reduce-only orders of its
    /// instrument left with nothing to reduce are to be canceled
    /// ([`Engine::take_requests`]), and a filled entry's bracket places its exits (their
    /// `OrderSubmitted` drafts, caused by the fill, for the runner to send) sized to
    /// what the entry has filled so far: after a partial fill, the exits placed on its
    /// earlier fills are to be canceled and a new set placed for the whole filled
    /// quantity, at levels from this fill's price.
    ///
    /// # Errors
    /// [`EngineError::Overflow`] when the fill leaves the account's range.
    pub fn on_report(
        &mut self,
        report: VenueReport,
        ts_event: TimestampNs,
        now: TimestampNs,
        out: &mut Vec<EventDraft>,
    ) -> Result<(), EngineError> {
        let id = report.client_order_id();
        let ends = report.ends_order();
        let (cycle, order_seq) = self.state.orders.get(&id).copied().unwrap_or((CycleId::new(0), Seq::ZERO));
        let cause = (order_seq != Seq::ZERO).then_some(order_seq);
        let payload = match report {
            VenueReport::Accepted(r) => Payload::OrderAccepted(r),
            VenueReport::Rejected(r) => Payload::OrderRejected(r),
            VenueReport::Filled(r) | VenueReport::PartiallyFilled(r) => Payload::OrderFilled(r),
            VenueReport::Canceled(r) => Payload::OrderCanceled(r),
        };
        let fill = match &payload {
            Payload::OrderFilled(fill) => Some((
                fill.clone(),
                self.state.brackets.get(&id).cloned(),
                self.state.reducing.get(&id).and_then(|r| r.protects.clone()),
            )),
            _ => None,
        };
        let seq = self.emit(out, cycle, cause, ts_event, now, payload)?;
        let entry_filled = self.state.entry_filled.get(&id).copied();
        if ends {
            self.forget(&id);
        }
        let Some((fill, bracket, protection)) = fill else {
            return Ok(());
        };
        self.release_reduce_only(&fill, protection.as_ref());
        if let Some(bracket) = bracket {
            self.cancel_exits_of(&id, &fill);
            let at = Placement { cycle, cause: Some(seq), ts: ts_event, now };
            self.place_exits(out, at, &bracket, &fill, entry_filled.unwrap_or(fill.qty))?;
        }
        Ok(())
    }

    /// Asks to cancel the working exits placed on the earlier fills of `entry`, before
    /// `fill` places exits for all it has filled.
    fn cancel_exits_of(&mut self, entry: &ClientOrderId, fill: &OrderFilled) {
        for (id, order) in &self.state.reducing {
            if order.protects.as_ref().is_some_and(|p| p.entry == *entry) {
                let reason: Text = format!("resized: {entry} filled again ({})", fill.fill_id).into();
                self.requests.push(VenueRequest::Cancel { client_order_id: *id, reason });
            }
        }
    }

    /// After `fill`: asks to cancel the working reduce-only orders of its instrument
    /// whose side of the position is gone (the other exits of a filled exit, the exits
    /// and closes of a position closed otherwise).
    fn release_reduce_only(&mut self, fill: &OrderFilled, filled_exit: Option<&Protection>) {
        let held = self.state.portfolio.qty(&fill.instrument);
        let reason: Text = match filled_exit {
            Some(exit) => format!("one-cancels-other: {} {} filled", exit.kind.name(), fill.client_order_id),
            None => format!("no position left to reduce after {} filled", fill.client_order_id),
        }
        .into();
        for (id, order) in &self.state.reducing {
            let reduces = match order.side {
                Side::Sell => held > Decimal::ZERO,
                Side::Buy => held < Decimal::ZERO,
            };
            if order.instrument == fill.instrument && *id != fill.client_order_id && !reduces {
                self.requests.push(VenueRequest::Cancel { client_order_id: *id, reason: reason.clone() });
            }
        }
    }

    /// Places the exits of `bracket` for the entry `fill`, for `filled` units (all the
    /// entry has filled so far).
    fn place_exits(
        &mut self,
        out: &mut Vec<EventDraft>,
        at: Placement,
        bracket: &Bracket,
        fill: &OrderFilled,
        filled: Decimal,
    ) -> Result<(), EngineError> {
        for exit in exits::exit_orders(bracket, fill.side, fill.price) {
            let order = |client_order_id| OrderSubmitted {
                client_order_id,
                instrument: fill.instrument,
                side: fill.side.opposite(),
                qty: OrderQty::Units(filled),
                order_type: exit.order_type,
                limit_price: exit.limit_price,
                tif: TimeInForce::Gtc,
                stop_price: exit.stop_price,
                reduce_only: true,
                protects: Some(Protection { entry: fill.client_order_id, kind: exit.kind.clone() }),
                bracket: None,
            };
            self.submit(out, at, order)?;
        }
        Ok(())
    }

    /// Moves the trailing stops of the tick's instrument toward the tick's best price
    /// ([`exits::best_price`]): an `OrderAmended` for each that moves, caused by the
    /// tick, and its request to the venue. The tick has already been checked against
    /// the stops as they were, so a bar's high never moves a stop its own low then hits.
    fn trail(&mut self, out: &mut Vec<EventDraft>, at: Placement, tick: &Tick) -> Result<(), EngineError> {
        if self.state.reducing.is_empty() {
            return Ok(());
        }
        let moves: Vec<(ClientOrderId, Decimal, Decimal, Decimal)> = self
            .state
            .reducing
            .iter()
            .filter(|(_, order)| order.instrument == tick.instrument)
            .filter_map(|(id, order)| {
                let Some(Protection { kind: ExitKind::TrailingStop(pct), .. }) = &order.protects else {
                    return None;
                };
                let best = exits::best_price(order.side, &tick.data);
                let candidate = exits::trailing_level(order.side, *pct, best)?;
                let current = order.stop_price?;
                exits::trails(order.side, current, candidate).then_some((*id, candidate, best, *pct))
            })
            .collect();
        for (client_order_id, stop_price, best, pct) in moves {
            let reason = format!("trailing {pct} from the best price {best}");
            let amended = OrderAmended { client_order_id, stop_price, reason: reason.as_str().into() };
            self.emit(out, at.cycle, at.cause, at.ts, at.now, Payload::OrderAmended(amended))?;
            self.requests.push(VenueRequest::Amend { client_order_id, stop_price });
        }
        Ok(())
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
        let at_tick = Placement { cycle, cause: Some(tick_seq), ts: tick.ts, now };
        self.trail(out, at_tick, tick)?;

        // The kill switch watches equity.
        if let Some(tripped) = self.state.kill.check(&self.state.portfolio) {
            let trip_seq = self.emit(out, cycle, Some(tick_seq), tick.ts, now, Payload::KillSwitchTripped(tripped))?;
            if self.state.kill.closes_positions() {
                let at = Placement { cause: Some(trip_seq), ..at_tick };
                self.close_positions(out, at)?;
            }
        }

        // Decision.
        let price = tick.data.reference_price();
        let (bar, quote) = match &tick.data {
            TickData::Bar(bar) => (Some(bar), None),
            TickData::Quote(quote) => (None, Some(quote)),
            TickData::Trade(_) => (None, None),
        };
        // The LLM guards first: an exhausted one means no call, and a hold it refuses.
        let guard = self.state.risk.llm_guard(tick.ts);
        let answer = match &guard {
            Some(refusal) => ProviderAnswer::unasked(
                crate::decision::hold(Arc::from(format!("llm guard: {}", refusal.reason).as_str())),
                Arc::from(""),
            ),
            None => {
                let context = CycleView {
                    risk: &self.state.risk,
                    portfolio: &self.state.portfolio,
                    exits: &self.exits,
                    instrument: &tick.instrument,
                    price,
                    previous_price,
                    tick_ts: tick.ts,
                    now,
                    kill_switch_tripped: self.state.kill.is_tripped(),
                };
                let input = DecisionInput {
                    ts: tick.ts,
                    instrument: &tick.instrument,
                    price,
                    bar,
                    quote,
                    position_qty: self.state.portfolio.qty(&tick.instrument),
                    equity: self.state.portfolio.equity(),
                    context: Some(&context),
                };
                self.provider.decide(&input)
            }
        };
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
        if let Some(record) = answer.record {
            let record = *record;
            for call in record.tool_calls {
                self.emit(out, cycle, Some(decision_seq), tick.ts, now, Payload::ToolCalled(call))?;
            }
            self.emit(out, cycle, Some(decision_seq), tick.ts, now, Payload::ModelCalled(record.call))?;
        }

        // Risk verdict, at the cycle's time, on the entry with the exits it would carry.
        let bracket = match decision.action {
            Action::Long => self.exits.bracket(Side::Buy, price, decision.terms()),
            Action::Short => self.exits.bracket(Side::Sell, price, decision.terms()),
            Action::Close | Action::Hold => Bracket::default(),
        };
        let judgement = self.state.risk.judge(&RiskInput {
            decision: &decision,
            instrument: &tick.instrument,
            price: Some(price),
            previous_price,
            tick_ts: tick.ts,
            now,
            portfolio: &self.state.portfolio,
            kill_switch_tripped: self.state.kill.is_tripped(),
            bracket: &bracket,
        });
        // A guard's refusal is the verdict: the hold it made shows the guard that refused.
        let judgement = guard.unwrap_or(judgement);
        let approved = judgement.approved;
        let verdict = RiskVerdict { approved, checks: judgement.checks, reason: judgement.reason };
        let verdict_seq = self.emit(out, cycle, Some(decision_seq), tick.ts, now, Payload::RiskVerdict(verdict))?;

        // Orders.
        let at = Placement { cause: Some(verdict_seq), ..at_tick };
        if approved && self.place(out, at, tick, &decision, bracket)? {
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
    /// Closing legs are reduce-only market orders. The entry is a market order, or a
    /// limit order when the decision sets `limit_price` (with its time in force), and
    /// carries `bracket`, its protective exits.
    fn place(
        &mut self,
        out: &mut Vec<EventDraft>,
        at: Placement,
        tick: &Tick,
        decision: &Decision,
        bracket: Bracket,
    ) -> Result<bool, EngineError> {
        let held = self.state.portfolio.qty(&tick.instrument);
        let target_side = match decision.action {
            Action::Long => Side::Buy,
            Action::Short => Side::Sell,
            Action::Close => {
                if held.is_zero() {
                    return Ok(false);
                }
                self.submit(out, at, |id| closing_order(id, tick.instrument, held))?;
                return Ok(true);
            }
            Action::Hold => return Ok(false),
        };
        if !held.is_zero() {
            // The closing leg first (a reversal, or the same side closed to reopen).
            self.submit(out, at, |id| closing_order(id, tick.instrument, held))?;
        }
        if decision.size_pct > Decimal::ZERO {
            let terms = decision.terms();
            let entry = |client_order_id| OrderSubmitted {
                client_order_id,
                instrument: tick.instrument,
                side: target_side,
                qty: OrderQty::EquityFraction(decision.size_pct),
                order_type: if terms.limit_price.is_some() { OrderType::Limit } else { OrderType::Market },
                limit_price: terms.limit_price,
                tif: terms.time_in_force.unwrap_or(TimeInForce::Gtc),
                stop_price: None,
                reduce_only: false,
                protects: None,
                bracket: bracket.boxed(),
            };
            self.submit(out, at, entry)?;
        }
        Ok(true)
    }

    /// A reduce-only market order for every position, in instrument order.
    fn close_positions(&mut self, out: &mut Vec<EventDraft>, at: Placement) -> Result<(), EngineError> {
        let positions: Vec<_> = self.state.portfolio.positions.iter().map(|(id, p)| (*id, p.qty)).collect();
        for (instrument, held) in positions {
            self.submit(out, at, |id| closing_order(id, instrument, held))?;
        }
        Ok(())
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
        let at = Placement { cycle: CycleId::new(self.state.cycle), cause: None, ts: self.state.last_tick_ts, now };
        self.close_positions(out, at)
    }

    /// Records the `OrderSubmitted` that `order` makes with the run's next client order
    /// id (`r<run>-<n>`).
    fn submit(
        &mut self,
        out: &mut Vec<EventDraft>,
        at: Placement,
        order: impl FnOnce(ClientOrderId) -> OrderSubmitted,
    ) -> Result<(), EngineError> {
        self.state.order_counter += 1;
        let id = ClientOrderId::new(&format!("r{}-{}", self.state.run_id, self.state.order_counter))?;
        self.emit(out, at.cycle, at.cause, at.ts, at.now, Payload::OrderSubmitted(order(id)))?;
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

/// The pipeline's state at one cycle, as a provider's tools read it (a few references,
/// made on every tick at no cost).
#[derive(Debug)]
struct CycleView<'a> {
    risk: &'a RiskEngine,
    portfolio: &'a Portfolio,
    exits: &'a ExitPolicy,
    instrument: &'a InstrumentId,
    price: Decimal,
    previous_price: Option<Decimal>,
    tick_ts: TimestampNs,
    now: TimestampNs,
    kill_switch_tripped: bool,
}

impl CycleContext for CycleView<'_> {
    fn portfolio(&self) -> &Portfolio {
        self.portfolio
    }

    /// Judges `decision` as the cycle's verdict would, on a copy of the risk engine's
    /// counters, with the exits the entry would carry.
    fn check_risk(&self, decision: &Decision) -> Judgement {
        let bracket = match decision.action {
            Action::Long => self.exits.bracket(Side::Buy, self.price, decision.terms()),
            Action::Short => self.exits.bracket(Side::Sell, self.price, decision.terms()),
            Action::Close | Action::Hold => Bracket::default(),
        };
        self.risk.clone().judge(&RiskInput {
            decision,
            instrument: self.instrument,
            price: Some(self.price),
            previous_price: self.previous_price,
            tick_ts: self.tick_ts,
            now: self.now,
            portfolio: self.portfolio,
            kill_switch_tripped: self.kill_switch_tripped,
            bracket: &bracket,
        })
    }
}

/// A reduce-only market order closing all of `held` (signed units) of `instrument`.
fn closing_order(client_order_id: ClientOrderId, instrument: InstrumentId, held: Decimal) -> OrderSubmitted {
    OrderSubmitted {
        client_order_id,
        instrument,
        side: if held > Decimal::ZERO { Side::Sell } else { Side::Buy },
        qty: OrderQty::Units(held.abs()),
        order_type: OrderType::Market,
        limit_price: None,
        tif: TimeInForce::Gtc,
        stop_price: None,
        reduce_only: true,
        protects: None,
        bracket: None,
    }
}
