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
    Liquidity, OrderAccepted, OrderCanceled, OrderFilled, OrderQty, OrderRejected, OrderSubmitted, Side, TickData,
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
    /// Filled (wholly, in the paper venue).
    Filled(OrderFilled),
    /// No longer working: canceled on request.
    Canceled(OrderCanceled),
}

impl VenueReport {
    /// The order the report is about.
    pub fn client_order_id(&self) -> ClientOrderId {
        match self {
            VenueReport::Accepted(r) => r.client_order_id,
            VenueReport::Rejected(r) => r.client_order_id,
            VenueReport::Filled(r) => r.client_order_id,
            VenueReport::Canceled(r) => r.client_order_id,
        }
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

    /// At the end of the data, closing out (`close_at_end`): fills the oldest working
    /// order for `market`'s instrument at once at the last tick's price (a bar's close,
    /// a quote's bid or ask, a trade's price), whatever the fill model; `None` when no
    /// such order is left. A venue that cannot (a live one) keeps the default, `None`,
    /// and its orders are canceled at the stop.
    fn settle(&mut self, _market: &MarketView<'_>, _funds: &Funds) -> Option<VenueReport> {
        None
    }

    /// The orders working at the venue now, in submission order.
    fn working_orders(&self) -> Vec<ClientOrderId>;

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

/// Paper venue settings.
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

    /// Reference price for `side` on this tick, or `None` if the model cannot fill here.
    fn reference(&self, side: Side, market: &MarketView<'_>, submitted_at: TimestampNs) -> Option<Decimal> {
        match (self.config.fill_model, market.data) {
            (FillModel::NextOpen, TickData::Bar(bar)) => (market.ts > submitted_at).then_some(bar.open),
            (FillModel::Close, TickData::Bar(bar)) => Some(bar.close),
            (FillModel::Quote, TickData::Quote(q)) => Some(if side == Side::Buy { q.ask } else { q.bid }),
            (FillModel::Trade, TickData::Trade(t)) => Some(t.price),
            _ => None,
        }
    }

    /// Reference price moved against the trader by the slippage, on the price grid;
    /// `None` when that leaves `Decimal`'s range (the order is then rejected).
    fn fill_price(&self, side: Side, reference: Decimal) -> Option<Decimal> {
        let slip = self.config.slippage_bps.checked_div(Decimal::from(10_000))?;
        let (raw, strategy) = match side {
            Side::Buy => (reference.checked_mul(Decimal::ONE.checked_add(slip)?)?, RoundingStrategy::AwayFromZero),
            Side::Sell => (reference.checked_mul(Decimal::ONE.checked_sub(slip)?)?, RoundingStrategy::ToZero),
        };
        match self.config.price_increment.filter(|inc| *inc > Decimal::ZERO) {
            Some(inc) => raw.checked_div(inc)?.round_dp_with_strategy(0, strategy).checked_mul(inc),
            None => Some(raw),
        }
    }

    fn fill(&mut self, order: &OrderSubmitted, reference: Decimal, funds: &Funds) -> VenueReport {
        let reject = |reason: String| {
            VenueReport::Rejected(OrderRejected {
                client_order_id: order.client_order_id,
                reason: Arc::from(reason.as_str()),
            })
        };
        let Some(price) = self.fill_price(order.side, reference).filter(|p| *p > Decimal::ZERO) else {
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
        self.working.push_back(WorkingOrder { order: order.clone(), submitted_at: market.ts });
        self.reports.push_back(VenueReport::Accepted(OrderAccepted { client_order_id: order.client_order_id }));
        Ok(())
    }

    /// Fills the oldest working order for the tick's instrument that the fill model can
    /// fill on this tick (orders for other instruments wait for their own ticks).
    fn poll(&mut self, market: &MarketView<'_>, funds: &Funds) -> Option<VenueReport> {
        if let Some(report) = self.reports.pop_front() {
            return Some(report);
        }
        let (index, reference) = self.working.iter().enumerate().find_map(|(i, w)| {
            let fillable = w.order.instrument == market.instrument;
            fillable.then(|| self.reference(w.order.side, market, w.submitted_at)).flatten().map(|r| (i, r))
        })?;
        let working = self.working.remove(index)?;
        Some(self.fill(&working.order, reference, funds))
    }

    fn working_orders(&self) -> Vec<ClientOrderId> {
        self.working.iter().map(|w| w.order.client_order_id).collect()
    }

    fn settle(&mut self, market: &MarketView<'_>, funds: &Funds) -> Option<VenueReport> {
        if let Some(report) = self.reports.pop_front() {
            return Some(report);
        }
        let index = self.working.iter().position(|w| w.order.instrument == market.instrument)?;
        let working = self.working.remove(index)?;
        let reference = match market.data {
            TickData::Bar(bar) => bar.close,
            TickData::Quote(q) if working.order.side == Side::Buy => q.ask,
            TickData::Quote(q) => q.bid,
            TickData::Trade(t) => t.price,
        };
        Some(self.fill(&working.order, reference, funds))
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
