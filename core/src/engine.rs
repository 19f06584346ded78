//! The engine: one cycle per market tick, tick -> decision -> risk verdict -> order ->
//! fill, every step an event. The same engine runs live, paper and replay; only the
//! clock, the feed and the venue differ.
//!
//! A cycle's events are appended together. Several cycles may be gathered into one
//! append (`cycles_per_append`) to amortise storage; an order bound for an external
//! venue is always made durable before the venue sees it.

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use thiserror::Error;

use crate::chain::Hash32;
use crate::decision::{DecisionInput, DecisionProvider};
use crate::event::*;
pub use crate::feed::Tick;
use crate::ids::{ClientOrderId, CycleId, InstrumentId, RunId, Seq};
use crate::log::{EventLog, LogError};
use crate::portfolio::Portfolio;
use crate::risk::{KillSwitch, RiskEngine, RiskInput};
use crate::time::{Clock, TimestampNs};
use crate::venue::{MarketView, Venue, VenueReport};

/// Why the engine stopped. Provider failures never get here: they become `hold`.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The log refused or failed an append: the run cannot continue.
    #[error("ledger: {0}")]
    Log(#[from] LogError),
    /// A generated client order id was invalid (a broken invariant of the id scheme).
    #[error("client order id: {0}")]
    OrderId(#[from] crate::ids::IdError),
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
    /// Cycles gathered per append (1 = every cycle on its own).
    pub cycles_per_append: usize,
}

/// The pipeline bound to a log, a clock, a provider, a risk engine and a venue.
pub struct Engine<'a, L: EventLog + ?Sized, C: Clock + ?Sized> {
    log: &'a mut L,
    clock: &'a C,
    provider: Box<dyn DecisionProvider + 'a>,
    risk: RiskEngine,
    kill: KillSwitch,
    venue: Box<dyn Venue + 'a>,
    portfolio: Portfolio,
    run_id: RunId,
    cycle: u64,
    cycles_pending: usize,
    cycles_per_append: usize,
    /// Drafts not yet appended; their seqs follow `appended_head`.
    pending: Vec<EventDraft>,
    appended_head: Seq,
    /// Order -> (cycle, seq of its OrderSubmitted), for linking fills to their cycle.
    orders: BTreeMap<ClientOrderId, (CycleId, Seq)>,
    last_price: BTreeMap<InstrumentId, Decimal>,
    provider_info: crate::decision::ProviderInfo,
    order_counter: u64,
    /// Source time of the last tick: the `ts_event` of what the run does at its end, so
    /// that a replay derives the same events whatever the wall clock says.
    last_tick_ts: TimestampNs,
}

impl<'a, L: EventLog + ?Sized, C: Clock + ?Sized> Engine<'a, L, C> {
    /// Starts a run: records `RunStarted` and returns the engine.
    ///
    /// # Errors
    /// A failed append.
    pub fn start(
        log: &'a mut L,
        clock: &'a C,
        spec: RunSpec,
        provider: Box<dyn DecisionProvider + 'a>,
        risk: RiskEngine,
        kill: KillSwitch,
        venue: Box<dyn Venue + 'a>,
    ) -> Result<Self, EngineError> {
        let info = provider.info();
        let appended_head = log.head().seq;
        let mut engine = Engine {
            log,
            clock,
            provider,
            risk,
            kill,
            venue,
            portfolio: Portfolio::new(spec.starting_cash),
            run_id: spec.run_id,
            cycle: 0,
            cycles_pending: 0,
            cycles_per_append: spec.cycles_per_append.max(1),
            pending: Vec::with_capacity(64),
            appended_head,
            orders: BTreeMap::new(),
            last_price: BTreeMap::new(),
            provider_info: info.clone(),
            order_counter: 0,
            last_tick_ts: clock.now(),
        };
        let now = clock.now();
        let started = RunStarted {
            mode: spec.mode,
            config_hash: Hash32::digest(spec.config.as_bytes()),
            config: spec.config,
            software_version: spec.software_version,
            venue: Arc::from(engine.venue.name()),
            instruments: spec.instruments,
            decision_provider: Arc::from(format!("{}:{} {}", info.provider, info.model, info.params).as_str()),
            parent_run: spec.parent_run,
            data_source: spec.data_source,
            starting_cash: spec.starting_cash,
            kill_switch_tripped: engine.kill.is_tripped(),
        };
        engine.push(CycleId::new(0), None, now, Payload::RunStarted(started));
        engine.append()?;
        Ok(engine)
    }

    /// The log the run appends to (its appended part; see [`Engine::sync`]).
    pub fn log(&self) -> &L {
        self.log
    }

    /// Appends the cycles gathered so far and makes every appended event durable, so
    /// that they can be published. Returns the durable sequence.
    ///
    /// # Errors
    /// A failed append or flush.
    pub fn sync(&mut self) -> Result<Seq, EngineError> {
        self.append()?;
        Ok(self.log.sync()?)
    }

    /// Queues a draft and returns the seq it will get.
    fn push(&mut self, cycle: CycleId, cause: Option<Seq>, ts_event: TimestampNs, payload: Payload) -> Seq {
        let seq = self.appended_head.plus(self.pending.len() as u64 + 1);
        self.pending.push(EventDraft {
            run_id: self.run_id,
            cycle_id: cycle,
            causation_seq: cause,
            ts_event,
            ts_recorded: self.clock.now(),
            payload,
        });
        seq
    }

    fn append(&mut self) -> Result<(), EngineError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let receipt = self.log.append_owned(&mut self.pending, Some(self.appended_head))?;
        self.appended_head = receipt.last;
        self.cycles_pending = 0;
        Ok(())
    }

    /// Runs one cycle for `tick`.
    ///
    /// # Errors
    /// A failed append; the events of the failed append are not recorded.
    pub fn on_tick(&mut self, tick: &Tick) -> Result<(), EngineError> {
        self.cycle += 1;
        self.last_tick_ts = tick.ts;
        let cycle = CycleId::new(self.cycle);
        let market = MarketView { ts: tick.ts, data: &tick.data };

        // 1. Working orders from earlier cycles may fill on this tick.
        self.take_reports(&market)?;

        // 2. The tick itself, and marks.
        let price = tick.data.reference_price();
        let tick_seq = self.push(
            cycle,
            None,
            tick.ts,
            Payload::MarketTick(MarketTick { instrument: tick.instrument, data: tick.data.clone() }),
        );
        self.portfolio.mark(&tick.instrument, price);
        self.risk.on_tick(tick.ts, self.portfolio.equity());
        let previous_price = self.last_price.insert(tick.instrument, price);

        // 3. The kill switch watches equity.
        if let Some(tripped) = self.kill.check(&self.portfolio) {
            let close = self.kill.closes_positions();
            let trip_seq = self.push(cycle, Some(tick_seq), tick.ts, Payload::KillSwitchTripped(tripped));
            for id in self.venue.cancel_all() {
                let cause = self.orders.get(&id).map(|&(_, seq)| seq);
                let reason = Arc::from("kill switch tripped");
                self.push(cycle, cause, tick.ts, Payload::OrderCanceled(OrderCanceled { client_order_id: id, reason }));
            }
            if close {
                let positions: Vec<_> = self.portfolio.positions.iter().map(|(id, p)| (*id, p.qty)).collect();
                for (instrument, qty) in positions {
                    let side = if qty > Decimal::ZERO { Side::Sell } else { Side::Buy };
                    self.submit(cycle, trip_seq, tick, instrument, side, OrderQty::Units(qty.abs()))?;
                }
            }
        }

        // 4. Decision.
        let bar = match &tick.data {
            TickData::Bar(bar) => Some(bar),
            _ => None,
        };
        let input = DecisionInput {
            ts: tick.ts,
            instrument: &tick.instrument,
            price,
            bar,
            position_qty: self.portfolio.qty(&tick.instrument),
        };
        let answer = self.provider.decide(&input);
        let failed = !matches!(answer.parse_status, ParseStatus::Ok);
        self.kill.on_outcome(failed);
        let decision = answer.decision.clone();
        let info = &self.provider_info;
        let made = DecisionMade {
            provider: info.provider.clone(),
            model: info.model.clone(),
            params: info.params.clone(),
            prompt_sha256: (!answer.prompt.is_empty()).then(|| Hash32::digest(answer.prompt.as_bytes())),
            prompt: answer.prompt,
            raw_output: answer.raw_output,
            parsed: answer.decision,
            parse_status: answer.parse_status,
            latency_us: answer.latency_us,
            tokens_in: answer.tokens_in,
            tokens_out: answer.tokens_out,
        };
        let decision_seq = self.push(cycle, Some(tick_seq), tick.ts, Payload::DecisionMade(made));

        // 5. Risk verdict.
        let judgement = self.risk.judge(&RiskInput {
            decision: &decision,
            instrument: &tick.instrument,
            price: Some(price),
            previous_price,
            tick_ts: tick.ts,
            now: self.clock.now(),
            portfolio: &self.portfolio,
            kill_switch_tripped: self.kill.is_tripped(),
        });
        let approved = judgement.approved;
        let verdict = RiskVerdict { decision_seq, approved, checks: judgement.checks, reason: judgement.reason };
        let verdict_seq = self.push(cycle, Some(decision_seq), tick.ts, Payload::RiskVerdict(verdict));

        // 6. Orders.
        if approved {
            let placed = self.place(cycle, verdict_seq, tick, &decision)?;
            if placed {
                self.risk.on_order(tick.ts, &decision);
            }
        }

        self.cycles_pending += 1;
        if self.cycles_pending >= self.cycles_per_append {
            self.append()?;
        }
        Ok(())
    }

    /// Turns an approved decision into orders; returns whether any was submitted.
    fn place(&mut self, cycle: CycleId, cause: Seq, tick: &Tick, decision: &Decision) -> Result<bool, EngineError> {
        let held = self.portfolio.qty(&tick.instrument);
        let target_side = match decision.action {
            Action::Long => Side::Buy,
            Action::Short => Side::Sell,
            Action::Close => {
                if held.is_zero() {
                    return Ok(false);
                }
                let side = if held > Decimal::ZERO { Side::Sell } else { Side::Buy };
                self.submit(cycle, cause, tick, tick.instrument, side, OrderQty::Units(held.abs()))?;
                return Ok(true);
            }
            Action::Hold => return Ok(false),
        };
        let already =
            (target_side == Side::Buy && held > Decimal::ZERO) || (target_side == Side::Sell && held < Decimal::ZERO);
        if already {
            return Ok(false);
        }
        let notional = decision.size_pct * self.portfolio.equity().max(Decimal::ZERO);
        if !held.is_zero() {
            // Reversal: the closing leg first, then the opening leg.
            self.submit(cycle, cause, tick, tick.instrument, target_side, OrderQty::Units(held.abs()))?;
        }
        if notional > Decimal::ZERO {
            self.submit(cycle, cause, tick, tick.instrument, target_side, OrderQty::Notional(notional))?;
        }
        Ok(true)
    }

    fn submit(
        &mut self,
        cycle: CycleId,
        cause: Seq,
        tick: &Tick,
        instrument: InstrumentId,
        side: Side,
        qty: OrderQty,
    ) -> Result<(), EngineError> {
        self.order_counter += 1;
        let id = ClientOrderId::new(&format!("r{}-{}", self.run_id, self.order_counter))?;
        let order = OrderSubmitted {
            client_order_id: id,
            instrument,
            side,
            qty,
            order_type: OrderType::Market,
            limit_price: None,
            tif: TimeInForce::Gtc,
        };
        let seq = self.push(cycle, Some(cause), tick.ts, Payload::OrderSubmitted(order.clone()));
        self.orders.insert(id, (cycle, seq));
        if self.venue.is_external() {
            // The order must be durable before it leaves the process.
            self.append()?;
            self.log.sync()?;
        }
        let market = MarketView { ts: tick.ts, data: &tick.data };
        self.venue.submit(&order, &market);
        self.push(cycle, Some(seq), tick.ts, Payload::OrderAccepted(OrderAccepted { client_order_id: id }));
        self.take_reports(&market)
    }

    /// Records every report the venue has now, applying fills to the portfolio one by one.
    fn take_reports(&mut self, market: &MarketView<'_>) -> Result<(), EngineError> {
        while let Some((id, report)) = self.venue.poll(market, &self.portfolio) {
            let (order_cycle, order_seq) = self.orders.get(&id).copied().unwrap_or((CycleId::new(0), Seq::ZERO));
            let cause = (order_seq != Seq::ZERO).then_some(order_seq);
            match report {
                VenueReport::Filled(fill) => {
                    self.portfolio.apply_fill(&fill);
                    self.kill.on_outcome(false);
                    self.push(order_cycle, cause, market.ts, Payload::OrderFilled(fill));
                }
                VenueReport::Rejected(rejected) => {
                    self.kill.on_outcome(true);
                    self.push(order_cycle, cause, market.ts, Payload::OrderRejected(rejected));
                }
            }
        }
        Ok(())
    }

    /// Ends the run: cancels working orders, records `RunStopped` and makes everything
    /// durable. Returns the final account.
    ///
    /// # Errors
    /// A failed append or sync.
    pub fn stop(mut self, reason: &str) -> Result<Portfolio, EngineError> {
        let now = self.last_tick_ts;
        for id in self.venue.cancel_all() {
            let (cycle, seq) = self.orders.get(&id).copied().unwrap_or((CycleId::new(0), Seq::ZERO));
            let reason = Arc::from(format!("canceled at stop: {reason}").as_str());
            let cause = (seq != Seq::ZERO).then_some(seq);
            self.push(cycle, cause, now, Payload::OrderCanceled(OrderCanceled { client_order_id: id, reason }));
        }
        self.push(CycleId::new(0), None, now, Payload::RunStopped(RunStopped { reason: Arc::from(reason) }));
        self.append()?;
        self.log.sync()?;
        Ok(self.portfolio)
    }
}
