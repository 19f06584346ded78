//! Venues: the [`Venue`] trait, the reports a venue makes, and the deterministic
//! [`PaperVenue`].
//!
//! The paper venue is pure arithmetic on the market data it is shown, so it lives in the
//! core beside the trait: backtests, replays and tests need no adapter to fill orders.
//! Live venues implement the same trait in `ledger-adapters`.

use std::collections::VecDeque;
use std::sync::Arc;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::codec::{self, CodecError};
use crate::event::{
    Liquidity, OrderAccepted, OrderCanceled, OrderFilled, OrderQty, OrderRejected, OrderSubmitted, OrderType, Side,
    TickData, TimeInForce,
};
use crate::ids::{ClientOrderId, FillId, InstrumentId};
use crate::sizing::{self, Costs, Funds};
use crate::time::TimestampNs;

/// The market as a venue sees it on one tick.
#[derive(Debug, Clone, Copy)]
pub struct MarketView<'a> {
    /// Source time of the tick, UTC ns.
    pub ts: TimestampNs,
    /// The instrument the tick is for.
    pub instrument: InstrumentId,
    /// The tick.
    pub data: &'a TickData,
}

/// What a venue reports about an order: the venue's side of the order's life, recorded
/// as events by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VenueReport {
    /// The venue took the order; it is working.
    Accepted(OrderAccepted),
    /// The venue refused the order, with the reason.
    Rejected(OrderRejected),
    /// Filled: the order's last fill (wholly, in the paper venue); the order is done.
    Filled(OrderFilled),
    /// No longer working: canceled on request.
    Canceled(OrderCanceled),
    /// A fill with more of the order still working (a live venue's partial fill):
    /// recorded as `OrderFilled` like [`VenueReport::Filled`], but the order stays
    /// open, its later fills caused by it. (A new last variant: a paper venue's saved
    /// reports decode unchanged.)
    PartiallyFilled(OrderFilled),
}

impl VenueReport {
    /// The order the report is about.
    pub fn client_order_id(&self) -> ClientOrderId {
        match self {
            VenueReport::Accepted(r) => r.client_order_id,
            VenueReport::Rejected(r) => r.client_order_id,
            VenueReport::Filled(r) => r.client_order_id,
            VenueReport::Canceled(r) => r.client_order_id,
            VenueReport::PartiallyFilled(r) => r.client_order_id,
        }
    }

    /// Whether the order is done after this report: rejected, canceled, or its last
    /// fill.
    pub fn ends_order(&self) -> bool {
        matches!(self, VenueReport::Rejected(_) | VenueReport::Filled(_) | VenueReport::Canceled(_))
    }
}

/// An order the venue could not take at all (not sent, or refused on the wire). The
/// engine records it as the order's rejection; a run goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct VenueError(pub String);

/// A place orders go. The venue does the venue's own work only: it takes orders and
/// reports what becomes of them; the engine records the reports and keeps the account.
pub trait Venue {
    /// Short name recorded in `RunStarted`, e.g. `paper`.
    fn name(&self) -> &str;

    /// Whether orders leave the process (a live venue). The runner makes every
    /// `OrderSubmitted` durable before such a venue sees it.
    fn is_external(&self) -> bool;

    /// Takes an order. What becomes of it (accepted, filled, rejected) comes from
    /// [`Venue::poll`].
    ///
    /// # Errors
    /// The order could not be placed at all; it is recorded as rejected.
    fn submit(&mut self, order: &OrderSubmitted, market: &MarketView<'_>) -> Result<(), VenueError>;

    /// The next report, given the market now and the money the account has now (after
    /// every report already taken). `None` when nothing more happens now.
    fn poll(&mut self, market: &MarketView<'_>, funds: &Funds) -> Option<VenueReport>;

    /// Cancels every working order; returns their `Canceled` reports in submission order.
    fn cancel_all(&mut self, reason: &str) -> Vec<VenueReport>;

    /// Cancels one working order. Returns its `Canceled` report when the venue knows
    /// it at once (the paper venue); `None` when the order is not working (it filled or
    /// was canceled already), or when the report comes later through [`Venue::poll`].
    ///
    /// # Errors
    /// The request could not be made.
    fn cancel(&mut self, order: ClientOrderId, reason: &str) -> Result<Option<VenueReport>, VenueError>;

    /// Moves a working stop order's trigger price to `stop_price` (quote currency) on
    /// the tick `market`: a trailing stop following the price.
    ///
    /// # Errors
    /// The order is not a working stop order, or the request could not be made.
    fn amend(&mut self, order: ClientOrderId, stop_price: Decimal, market: &MarketView<'_>) -> Result<(), VenueError>;

    /// At the end of the data, closing out (`close_at_end`): fills the oldest working
    /// market order for `market`'s instrument at once at the last tick's price (a bar's close,
    /// a quote's bid or ask, a trade's price), whatever the fill model; `None` when no
    /// such order is left. A venue that cannot (a live one) keeps the default, `None`,
    /// and its orders are canceled at the stop.
    fn settle(&mut self, _market: &MarketView<'_>, _funds: &Funds) -> Option<VenueReport> {
        None
    }

    /// The orders working at the venue now, in submission order.
    fn working_orders(&self) -> Vec<ClientOrderId>;

    /// Takes over `order`, an order of the run sent before it was interrupted (a live
    /// venue, on resume): `accepted` when its acceptance is on the record, `fills` its
    /// recorded fills. `open`: the run has it open; otherwise its record ends with a
    /// fill that may have been a partial one (the run interrupted before the rest), and
    /// the venue adopts it only if the exchange has executed more of it than recorded.
    /// It is never sent again: the venue finds it by its client order id and reports
    /// what became of it that the record does not hold yet. The default (a venue that
    /// keeps no orders across processes) does nothing.
    fn adopt(&mut self, _order: &OrderSubmitted, _accepted: bool, _fills: &[OrderFilled], _open: bool) {}

    /// The venue's state (working orders, fill ids), encoded, for a session snapshot;
    /// `None` for a venue whose state lives elsewhere (a live venue: it is reconciled
    /// on resume instead).
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Restores what [`Venue::save_state`] saved, on a venue built from the same
    /// configuration.
    ///
    /// # Errors
    /// Bytes this venue does not read.
    fn restore_state(&mut self, _state: &[u8]) -> Result<(), CodecError> {
        Err(CodecError::Body(format!("venue {} keeps no state to restore", self.name())))
    }
}

/// Which price a paper fill takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillModel {
    /// A market order decided on bar t fills at the open of bar t+1.
    NextOpen,
    /// Fills at the close of the bar it was decided on.
    Close,
    /// Fills at the ask (buy) or bid (sell) of the current quote.
    Quote,
    /// Fills at the last trade price.
    Trade,
}

impl FillModel {
    /// Whether this model can fill on ticks like `data` (otherwise orders would wait
    /// forever): bars for `next_open` and `close`, quotes for `quote`, trades for `trade`.
    pub fn fills_on(self, data: &TickData) -> bool {
        matches!(
            (self, data),
            (FillModel::NextOpen | FillModel::Close, TickData::Bar(_))
                | (FillModel::Quote, TickData::Quote(_))
                | (FillModel::Trade, TickData::Trade(_))
        )
    }
}

/// Paper venue settings. Orders fill on the ticks their fill model fills on:
///
/// - A market order at the model's price: the next bar's open (`next_open`), the bar's
///   close (`close`), the ask or bid (`quote`), the trade's price (`trade`), moved by
///   the slippage.
/// - A limit order at its limit or better, as backtesting.py 0.6.6
///   (`_Broker._process_orders`): on a bar after the one it was placed on, a buy when
///   the low is below the limit (strictly) at the lower of the open and the limit, a
///   sell when the high is above it at the higher of the two; on the bar it was placed
///   on under `close`, at the close if the close is at the limit or better; on quotes
///   and trades at the ask, bid or trade price once it is at the limit or better. No
///   slippage.
/// - A stop order once the price reaches its stop, as a market order: on a bar, a sell
///   stop when the low is at or below the stop, at the lower of the open and the stop (a
///   gap through the stop fills at the open), a buy stop when the high is at or above
///   it, at the higher of the two; on quotes at the bid (sell) or ask (buy) once it
///   reaches the stop; on trades at the trade's price. Slippage applies.
///
/// A protective exit placed on a fill at a bar's open (`next_open`) can fill on the
/// rest of that bar, as backtesting.py reprocesses a new trade's stop-loss and
/// take-profit orders on the bar it opened on; placed on a fill at a close, from the
/// next bar. On each tick the closes of positions are tried first, then the
/// protective exits in the order they were placed (so a bar touching an entry's
/// stop-loss and take-profit fills the stop), then the entries, as backtesting.py
/// queues them. A day order still working on a tick of a later UTC day is
/// canceled; an immediate-or-cancel order that does not fill on the first tick it can
/// fill on is canceled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaperConfig {
    /// Fill price rule.
    pub fill_model: FillModel,
    /// Slippage against the trader, basis points of the reference price.
    pub slippage_bps: Decimal,
    /// Commission as a fraction of notional (0.001 = 0.1%), charged on every fill.
    pub commission_rate: Decimal,
    /// Commission per unit filled, account currency.
    pub commission_per_unit: Decimal,
    /// Minimum commission per fill, account currency.
    pub commission_min: Decimal,
    /// Quantities are whole multiples of this (1 = whole units).
    pub lot_size: Decimal,
    /// Fill prices are multiples of this, rounded against the trader; none = exact.
    pub price_increment: Option<Decimal>,
    /// Decimal places of the account currency; fees are rounded half away from zero to
    /// them when `round_fees` is set.
    pub money_decimals: u32,
    /// Whether fees are rounded to `money_decimals` places, as venues charge them (on by
    /// default). A backtest compared with a peer that keeps fees exact (backtesting.py)
    /// turns it off.
    pub round_fees: bool,
    /// Maximum gross exposure over equity for opening orders (1 = no leverage).
    pub max_leverage: Decimal,
    /// At the end of the data (not when interrupted), close every open position at the
    /// last price of its instrument (a bar's close; the bid or ask of a quote; a trade's
    /// price), whatever the fill model (`--close-at-end`; backtesting.py's
    /// `finalize_trades=True`, which fills at the last bar's open instead). Off: open
    /// positions stay open, marked to the last price.
    pub close_at_end: bool,
}

impl Default for PaperConfig {
    fn default() -> Self {
        PaperConfig {
            fill_model: FillModel::NextOpen,
            slippage_bps: Decimal::ZERO,
            commission_rate: Decimal::ZERO,
            commission_per_unit: Decimal::ZERO,
            commission_min: Decimal::ZERO,
            lot_size: Decimal::ONE,
            price_increment: None,
            money_decimals: 2,
            round_fees: true,
            max_leverage: Decimal::ONE,
            close_at_end: false,
        }
    }
}

impl PaperConfig {
    /// The costs sizing and fees take from this configuration.
    pub fn costs(&self) -> Costs {
        Costs {
            commission_rate: self.commission_rate,
            commission_per_unit: self.commission_per_unit,
            commission_min: self.commission_min,
            lot_size: self.lot_size,
            money_decimals: self.money_decimals,
            round_fees: self.round_fees,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkingOrder {
    order: OrderSubmitted,
    submitted_at: TimestampNs,
    /// The tick its stop was last moved on: a stop moved by a bar's high acts from
    /// the next bar.
    amended_at: Option<TimestampNs>,
}

/// A deterministic simulated venue. See [`PaperConfig`] for its conventions. Orders are
/// accepted when submitted and fill in submission order, each sized with the funds the
/// engine hands it after the fills before it ([`sizing::units_for`]).
#[derive(Debug, Clone)]
pub struct PaperVenue {
    config: PaperConfig,
    costs: Costs,
    working: VecDeque<WorkingOrder>,
    reports: VecDeque<VenueReport>,
    next_fill: u64,
}

impl PaperVenue {
    /// A venue with `config`.
    pub fn new(config: PaperConfig) -> Self {
        let costs = config.costs();
        PaperVenue { config, costs, working: VecDeque::new(), reports: VecDeque::new(), next_fill: 1 }
    }

    /// How `working` can act on this tick, or `None` when it cannot: another
    /// instrument, a tick the fill model does not fill on, the bar its stop was moved on,
    /// or the bar it was placed on (but under `close`, and for an exit placed on a fill
    /// at the bar's open).
    fn phase(&self, working: &WorkingOrder, market: &MarketView<'_>) -> Option<Phase> {
        let model = self.config.fill_model;
        if working.order.instrument != market.instrument || !model.fills_on(market.data) {
            return None;
        }
        let bar = matches!(market.data, TickData::Bar(_));
        if bar && working.amended_at.is_some_and(|at| market.ts <= at) {
            return None;
        }
        let fresh = market.ts <= working.submitted_at;
        match market.data {
            TickData::Bar(_) if fresh => match model {
                FillModel::Close => Some(Phase::AtClose),
                _ if working.order.protects.is_some() => Some(Phase::Whole),
                _ => None,
            },
            _ => Some(Phase::Whole),
        }
    }

    /// The price `working` fills at on this tick before slippage and whether slippage
    /// applies (market and stop orders), or `None` when it does not fill here.
    fn trigger(&self, working: &WorkingOrder, market: &MarketView<'_>) -> Option<(Decimal, bool)> {
        let phase = self.phase(working, market)?;
        let order = &working.order;
        let buy = order.side == Side::Buy;
        match order.order_type {
            OrderType::Market => {
                let price = match market.data {
                    TickData::Bar(bar) if self.config.fill_model == FillModel::Close => bar.close,
                    TickData::Bar(bar) => bar.open,
                    TickData::Quote(q) if buy => q.ask,
                    TickData::Quote(q) => q.bid,
                    TickData::Trade(t) => t.price,
                };
                Some((price, true))
            }
            OrderType::Limit => limit_fill(buy, order.limit_price?, market.data, phase).map(|p| (p, false)),
            OrderType::Stop => stop_fill(buy, order.stop_price?, market.data, phase).map(|p| (p, true)),
        }
    }

    /// The next working order to leave the book on this tick, and its report: a day
    /// order past its day; else the first order that fills, closes first, then exits,
    /// then the rest ([`Priority`]); else an immediate-or-cancel order that could have
    /// filled here and did not.
    fn next_off_book(&self, market: &MarketView<'_>) -> Option<(usize, Outcome)> {
        // One pass: the first expired day order; the first fill of the best priority;
        // the first immediate-or-cancel order that could act here.
        let mut fill: Option<(Priority, usize, Decimal, bool)> = None;
        let mut unfilled_ioc = None;
        for (index, working) in self.working.iter().enumerate() {
            let order = &working.order;
            if order.tif == TimeInForce::Day && market.ts.utc_day() > working.submitted_at.utc_day() {
                return Some((index, Outcome::Cancel("day order expired at the end of its UTC day")));
            }
            let priority = Priority::of(order);
            if fill.as_ref().is_some_and(|(best, ..)| *best <= priority) {
                continue;
            }
            match self.trigger(working, market) {
                Some((reference, slips)) => fill = Some((priority, index, reference, slips)),
                None if unfilled_ioc.is_none() && order.tif == TimeInForce::Ioc => {
                    unfilled_ioc = self.phase(working, market).map(|_| index);
                }
                None => {}
            }
        }
        if let Some((_, index, reference, slips)) = fill {
            return Some((index, Outcome::Fill { reference, slips }));
        }
        let reason = "immediate-or-cancel: not filled on the first tick it could fill on";
        unfilled_ioc.map(|index| (index, Outcome::Cancel(reason)))
    }

    /// Reference price moved against the trader by the slippage (when `slips`), on the
    /// price grid; `None` when that leaves `Decimal`'s range (the order is then
    /// rejected).
    fn fill_price(&self, side: Side, reference: Decimal, slips: bool) -> Option<Decimal> {
        let slip = match slips {
            true => self.config.slippage_bps.checked_div(Decimal::from(10_000))?,
            false => Decimal::ZERO,
        };
        let (raw, strategy) = match side {
            Side::Buy => (reference.checked_mul(Decimal::ONE.checked_add(slip)?)?, RoundingStrategy::AwayFromZero),
            Side::Sell => (reference.checked_mul(Decimal::ONE.checked_sub(slip)?)?, RoundingStrategy::ToZero),
        };
        match self.config.price_increment.filter(|inc| *inc > Decimal::ZERO) {
            Some(inc) => raw.checked_div(inc)?.round_dp_with_strategy(0, strategy).checked_mul(inc),
            None => Some(raw),
        }
    }

    fn fill(&mut self, order: &OrderSubmitted, reference: Decimal, slips: bool, funds: &Funds) -> VenueReport {
        let reject = |reason: String| {
            VenueReport::Rejected(OrderRejected {
                client_order_id: order.client_order_id,
                reason: Arc::from(reason.as_str()),
            })
        };
        let Some(price) = self.fill_price(order.side, reference, slips).filter(|p| *p > Decimal::ZERO) else {
            return reject(format!("no fill price: reference {reference} with the slippage and price grid"));
        };
        let units = match order.qty {
            OrderQty::Units(units) => sizing::floor_lot(units, self.costs.lot_size),
            OrderQty::Notional(notional) => {
                let budget = funds.budget(order.side, self.config.max_leverage);
                sizing::units_for(notional, budget, price, &self.costs)
            }
            OrderQty::EquityFraction(fraction) => {
                let budget = funds.budget(order.side, self.config.max_leverage);
                sizing::units_for_fraction(fraction, budget, price, &self.costs)
            }
        };
        if units <= Decimal::ZERO {
            return reject(format!(
                "zero units: order {:?} at fill price {price} does not fit the cash available",
                order.qty
            ));
        }
        let Some(fee) = sizing::fee(units, price, &self.costs) else {
            return reject(format!("the fee on {units} units at {price} is out of range"));
        };
        let fill_id = FillId::new(self.next_fill);
        self.next_fill += 1;
        VenueReport::Filled(OrderFilled {
            client_order_id: order.client_order_id,
            fill_id,
            instrument: order.instrument,
            side: order.side,
            qty: units,
            price,
            fee,
            liquidity: Liquidity::Taker,
        })
    }
}

impl Venue for PaperVenue {
    fn name(&self) -> &str {
        "paper"
    }

    fn is_external(&self) -> bool {
        false
    }

    fn submit(&mut self, order: &OrderSubmitted, market: &MarketView<'_>) -> Result<(), VenueError> {
        let priced = match order.order_type {
            OrderType::Market => true,
            OrderType::Limit => order.limit_price.is_some_and(|p| p > Decimal::ZERO),
            OrderType::Stop => order.stop_price.is_some_and(|p| p > Decimal::ZERO),
        };
        if !priced {
            return Err(VenueError(format!("a {:?} order needs a positive price", order.order_type)));
        }
        self.working.push_back(WorkingOrder { order: order.clone(), submitted_at: market.ts, amended_at: None });
        self.reports.push_back(VenueReport::Accepted(OrderAccepted { client_order_id: order.client_order_id }));
        Ok(())
    }

    /// The next order off the book on this tick (see [`PaperConfig`]): an expired day
    /// order, else the first order that fills (exits first, then in submission order;
    /// orders for other instruments wait for their own ticks), else an unfilled
    /// immediate-or-cancel order.
    fn poll(&mut self, market: &MarketView<'_>, funds: &Funds) -> Option<VenueReport> {
        if let Some(report) = self.reports.pop_front() {
            return Some(report);
        }
        let (index, outcome) = self.next_off_book(market)?;
        let working = self.working.remove(index)?;
        Some(match outcome {
            Outcome::Fill { reference, slips } => self.fill(&working.order, reference, slips, funds),
            Outcome::Cancel(reason) => VenueReport::Canceled(OrderCanceled {
                client_order_id: working.order.client_order_id,
                reason: Arc::from(reason),
            }),
        })
    }

    fn cancel(&mut self, order: ClientOrderId, reason: &str) -> Result<Option<VenueReport>, VenueError> {
        let Some(index) = self.working.iter().position(|w| w.order.client_order_id == order) else {
            return Ok(None);
        };
        let working = self.working.remove(index);
        Ok(working.map(|w| {
            VenueReport::Canceled(OrderCanceled { client_order_id: w.order.client_order_id, reason: Arc::from(reason) })
        }))
    }

    fn amend(&mut self, order: ClientOrderId, stop_price: Decimal, market: &MarketView<'_>) -> Result<(), VenueError> {
        let working = self.working.iter_mut().find(|w| w.order.client_order_id == order);
        match working {
            Some(w) if w.order.order_type == OrderType::Stop => {
                w.order.stop_price = Some(stop_price);
                w.amended_at = Some(market.ts);
                Ok(())
            }
            _ => Err(VenueError(format!("{order} is not a working stop order"))),
        }
    }

    fn working_orders(&self) -> Vec<ClientOrderId> {
        self.working.iter().map(|w| w.order.client_order_id).collect()
    }

    fn settle(&mut self, market: &MarketView<'_>, funds: &Funds) -> Option<VenueReport> {
        if let Some(report) = self.reports.pop_front() {
            return Some(report);
        }
        let index = self
            .working
            .iter()
            .position(|w| w.order.instrument == market.instrument && w.order.order_type == OrderType::Market)?;
        let working = self.working.remove(index)?;
        let reference = match market.data {
            TickData::Bar(bar) => bar.close,
            TickData::Quote(q) if working.order.side == Side::Buy => q.ask,
            TickData::Quote(q) => q.bid,
            TickData::Trade(t) => t.price,
        };
        Some(self.fill(&working.order, reference, true, funds))
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        codec::encode_meta(&(&self.working, &self.reports, self.next_fill)).ok()
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), CodecError> {
        (self.working, self.reports, self.next_fill) = codec::decode_meta(state)?;
        Ok(())
    }

    fn cancel_all(&mut self, reason: &str) -> Vec<VenueReport> {
        let reason: Arc<str> = Arc::from(reason);
        self.working
            .drain(..)
            .map(|w| {
                VenueReport::Canceled(OrderCanceled {
                    client_order_id: w.order.client_order_id,
                    reason: reason.clone(),
                })
            })
            .collect()
    }
}

/// The order in which working orders are tried on a tick, as backtesting.py 0.6.6
/// queues them (`_Broker.new_order` puts orders tied to a trade at the front, the
/// newest first): the closes of positions (`close`, a reversal's closing leg), then
/// the protective exits (a bracket's stop-loss before its take-profit), then entries.
/// Within a class, in submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Priority {
    Close,
    Exit,
    Other,
}

impl Priority {
    fn of(order: &OrderSubmitted) -> Priority {
        match (&order.protects, order.reduce_only) {
            (Some(_), _) => Priority::Exit,
            (None, true) => Priority::Close,
            (None, false) => Priority::Other,
        }
    }
}

/// How an order can act on a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// On all of the tick: a bar's open, high and low (or a quote or trade).
    Whole,
    /// Only at the close of the bar it was placed on (the `close` fill model).
    AtClose,
}

/// What becomes of a working order on a tick.
enum Outcome {
    /// It fills at this reference price (before slippage, if it slips).
    Fill { reference: Decimal, slips: bool },
    /// It is canceled, for this reason.
    Cancel(&'static str),
}

/// Where a limit order at `limit` fills on `data`, if it does (see [`PaperConfig`]).
fn limit_fill(buy: bool, limit: Decimal, data: &TickData, phase: Phase) -> Option<Decimal> {
    match (data, phase) {
        (TickData::Bar(bar), Phase::AtClose) => {
            let marketable = if buy { bar.close <= limit } else { bar.close >= limit };
            marketable.then_some(bar.close)
        }
        (TickData::Bar(bar), Phase::Whole) if buy => (bar.low < limit).then(|| bar.open.min(limit)),
        (TickData::Bar(bar), Phase::Whole) => (bar.high > limit).then(|| bar.open.max(limit)),
        (TickData::Quote(q), _) if buy => (q.ask <= limit).then_some(q.ask),
        (TickData::Quote(q), _) => (q.bid >= limit).then_some(q.bid),
        (TickData::Trade(t), _) if buy => (t.price <= limit).then_some(t.price),
        (TickData::Trade(t), _) => (t.price >= limit).then_some(t.price),
    }
}

/// Where a stop order at `stop` fills on `data`, if it triggers (see [`PaperConfig`]).
fn stop_fill(buy: bool, stop: Decimal, data: &TickData, phase: Phase) -> Option<Decimal> {
    match (data, phase) {
        (TickData::Bar(_), Phase::AtClose) => None,
        (TickData::Bar(bar), Phase::Whole) if buy => (bar.high >= stop).then(|| bar.open.max(stop)),
        (TickData::Bar(bar), Phase::Whole) => (bar.low <= stop).then(|| bar.open.min(stop)),
        (TickData::Quote(q), _) if buy => (q.ask >= stop).then_some(q.ask),
        (TickData::Quote(q), _) => (q.bid <= stop).then_some(q.bid),
        (TickData::Trade(t), _) if buy => (t.price >= stop).then_some(t.price),
        (TickData::Trade(t), _) => (t.price <= stop).then_some(t.price),
    }
}
