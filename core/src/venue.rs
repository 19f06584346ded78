//! Venues: the [`Venue`] trait and the deterministic [`PaperVenue`].
//!
//! The paper venue is pure arithmetic on the market data it is shown, so it lives in the
//! core beside the trait: backtests, replays and tests need no adapter to fill orders.
//! Live venues implement the same trait in `ledger-adapters`.

use std::sync::Arc;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::event::{Liquidity, OrderFilled, OrderQty, OrderRejected, OrderSubmitted, Side, TickData};
use crate::ids::{ClientOrderId, FillId};
use crate::portfolio::Portfolio;
use crate::time::TimestampNs;

/// The market as a venue sees it on one tick.
#[derive(Debug, Clone, Copy)]
pub struct MarketView<'a> {
    /// Source time of the tick, UTC ns.
    pub ts: TimestampNs,
    /// The tick.
    pub data: &'a TickData,
}

/// What a venue reports about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueReport {
    /// Filled (wholly, in the paper venue).
    Filled(OrderFilled),
    /// Refused, with the reason.
    Rejected(OrderRejected),
}

/// A place orders go.
pub trait Venue {
    /// Short name recorded in `RunStarted`, e.g. `paper`.
    fn name(&self) -> &str;

    /// Whether orders leave the process (a live venue). The engine makes every
    /// `OrderSubmitted` durable before such a venue sees it.
    fn is_external(&self) -> bool;

    /// Takes an order. The venue accepts it; fills and rejections come from [`Venue::poll`].
    fn submit(&mut self, order: &OrderSubmitted, market: &MarketView<'_>);

    /// The next report for a working order, given the market now and the account as it
    /// stands after every report already taken. `None` when nothing more happens now.
    fn poll(&mut self, market: &MarketView<'_>, portfolio: &Portfolio) -> Option<(ClientOrderId, VenueReport)>;

    /// Cancels every working order; returns their ids in submission order.
    fn cancel_all(&mut self) -> Vec<ClientOrderId>;
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
    /// Decimal places of the account currency; fees are rounded half away from zero.
    pub money_decimals: u32,
    /// Maximum gross exposure over equity for opening orders (1 = no leverage).
    pub max_leverage: Decimal,
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
            max_leverage: Decimal::ONE,
        }
    }
}

#[derive(Debug, Clone)]
struct WorkingOrder {
    order: OrderSubmitted,
    submitted_at: TimestampNs,
}

/// A deterministic simulated venue. See [`PaperConfig`] for its conventions.
#[derive(Debug, Clone)]
pub struct PaperVenue {
    config: PaperConfig,
    working: Vec<WorkingOrder>,
    next_fill: u64,
}

impl PaperVenue {
    /// A venue with `config`.
    pub fn new(config: PaperConfig) -> Self {
        PaperVenue { config, working: Vec::new(), next_fill: 1 }
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

    /// Reference price moved against the trader by the slippage, on the price grid.
    fn fill_price(&self, side: Side, reference: Decimal) -> Decimal {
        let slip = self.config.slippage_bps / Decimal::from(10_000);
        let (raw, strategy) = match side {
            Side::Buy => (reference * (Decimal::ONE + slip), RoundingStrategy::AwayFromZero),
            Side::Sell => (reference * (Decimal::ONE - slip), RoundingStrategy::ToZero),
        };
        match self.config.price_increment.filter(|inc| *inc > Decimal::ZERO) {
            Some(inc) => (raw / inc).round_dp_with_strategy(0, strategy) * inc,
            None => raw,
        }
    }

    /// Commission on `units` at `price`, rounded to the account currency.
    pub fn fee(&self, units: Decimal, price: Decimal) -> Decimal {
        let c = &self.config;
        let fee = (units * price * c.commission_rate + units * c.commission_per_unit).max(c.commission_min);
        fee.round_dp_with_strategy(c.money_decimals, RoundingStrategy::MidpointAwayFromZero)
    }

    fn floor_lot(&self, units: Decimal) -> Decimal {
        let lot = self.config.lot_size;
        if lot <= Decimal::ZERO {
            return units;
        }
        (units / lot).floor() * lot
    }

    /// Units a notional order buys at `price`: the most lots whose cost plus commission
    /// fits in `min(notional, budget)`.
    fn units_for(&self, notional: Decimal, budget: Decimal, price: Decimal) -> Decimal {
        let spend = notional.min(budget);
        if spend <= Decimal::ZERO || price <= Decimal::ZERO {
            return Decimal::ZERO;
        }
        let c = &self.config;
        let per_unit = price * (Decimal::ONE + c.commission_rate) + c.commission_per_unit;
        let mut units = self.floor_lot(spend / per_unit);
        // The minimum commission and fee rounding can push the cost over: step down.
        while units > Decimal::ZERO && units * price + self.fee(units, price) > spend {
            units -= c.lot_size.max(Decimal::ONE).min(units);
            units = self.floor_lot(units);
        }
        units
    }

    fn fill(&mut self, working: &WorkingOrder, price: Decimal, portfolio: &Portfolio) -> VenueReport {
        let order = &working.order;
        let units = match order.qty {
            OrderQty::Units(units) => self.floor_lot(units),
            OrderQty::Notional(notional) => {
                let equity = portfolio.equity();
                let room = equity * self.config.max_leverage - portfolio.gross_exposure();
                let budget = match order.side {
                    Side::Buy => portfolio.cash + (self.config.max_leverage - Decimal::ONE) * equity,
                    Side::Sell => room,
                };
                self.units_for(notional, budget.min(room.max(Decimal::ZERO)), price)
            }
        };
        if units <= Decimal::ZERO {
            let reason =
                format!("zero units: order {:?} at fill price {price} does not fit the cash available", order.qty);
            return VenueReport::Rejected(OrderRejected {
                client_order_id: order.client_order_id,
                reason: Arc::from(reason.as_str()),
            });
        }
        let fill_id = FillId::new(self.next_fill);
        self.next_fill += 1;
        VenueReport::Filled(OrderFilled {
            client_order_id: order.client_order_id,
            fill_id,
            instrument: order.instrument,
            side: order.side,
            qty: units,
            price,
            fee: self.fee(units, price),
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

    fn submit(&mut self, order: &OrderSubmitted, market: &MarketView<'_>) {
        self.working.push(WorkingOrder { order: order.clone(), submitted_at: market.ts });
    }

    fn poll(&mut self, market: &MarketView<'_>, portfolio: &Portfolio) -> Option<(ClientOrderId, VenueReport)> {
        let first = self.working.first()?;
        let reference = self.reference(first.order.side, market, first.submitted_at)?;
        let working = self.working.remove(0);
        let price = self.fill_price(working.order.side, reference);
        let report = self.fill(&working, price, portfolio);
        Some((working.order.client_order_id, report))
    }

    fn cancel_all(&mut self) -> Vec<ClientOrderId> {
        self.working.drain(..).map(|w| w.order.client_order_id).collect()
    }
}
