//! A run's round-trip trades and its equity curve, folded from its events and handed
//! out row by row as they happen (nothing is held but the open trades), for `ledger
//! report --trades` and `--equity`.
//!
//! A trade opens when a position leaves zero and closes when it returns to zero or
//! reverses (the reversing fill's closing part ends it, its rest opens the next);
//! adding to a position moves the trade's average entry price; reducing it without
//! closing it closes that part as a trade of its own (its share of the entry fees).

use std::collections::BTreeMap;

use ledger_core::event::{EventRef, OrderFilled, Payload, Side, Text};
use ledger_core::ids::{ClientOrderId, InstrumentId, RunId, Seq};
use ledger_core::portfolio::Portfolio;
use ledger_core::time::TimestampNs;
use rust_decimal::Decimal;
use serde::Serialize;

/// One closed round trip. Prices in the instrument's quote currency, money in the
/// account currency, times UTC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradeRow {
    /// The instrument.
    pub instrument: InstrumentId,
    /// `long` or `short`.
    pub side: &'static str,
    /// Units, positive.
    pub size: Decimal,
    /// Time of the entry fill (its tick's source time), RFC 3339 with nanoseconds.
    pub entry_time: String,
    /// Average entry price.
    pub entry_price: Decimal,
    /// Time of the exit fill, RFC 3339 with nanoseconds.
    pub exit_time: String,
    /// Exit price.
    pub exit_price: Decimal,
    /// Net P&L: price difference times size, less the entry and exit fees.
    pub pnl: Decimal,
    /// `pnl` over the entry notional (`size * entry_price`), a fraction.
    pub return_frac: Decimal,
    /// Entry and exit fees of this trade.
    pub fees: Decimal,
    /// Exit time minus entry time, nanoseconds.
    pub duration_ns: i64,
    /// Seq of the fill that opened the trade.
    pub entry_seq: u64,
    /// Seq of the fill that closed it.
    pub exit_seq: u64,
    /// The reason of the decision behind the entry order.
    pub entry_reason: Text,
    /// Why it closed: the protective exit that filled (`stop_loss`, `take_profit`,
    /// `trailing_stop`), `kill switch` or `end of data` for those closes, else the reason
    /// of the decision behind the closing order.
    pub exit_reason: Text,
}

/// A run's equity after one tick. Money in the account currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EquityRow {
    /// The tick's source time, RFC 3339 with nanoseconds.
    pub time: String,
    /// Cash plus positions at their marks.
    pub equity: Decimal,
    /// Cash.
    pub cash: Decimal,
    /// Signed value of the positions at their marks.
    pub position_value: Decimal,
    /// Fall from the highest equity so far, a fraction (0.25 = 25% below the peak).
    pub drawdown: Decimal,
    /// Seq of the tick.
    pub seq: u64,
}

/// An open trade.
#[derive(Debug, Clone)]
struct Open {
    qty: Decimal,
    avg_price: Decimal,
    fees: Decimal,
    entry_ts: TimestampNs,
    entry_seq: Seq,
    reason: Text,
}

/// The fold: call [`TradesFold::apply`] with every event of the ledger in order (other
/// runs' are passed over); closed trades go to `on_trade`, equity after each tick to
/// `on_equity`.
pub struct TradesFold<T, E> {
    run: RunId,
    portfolio: Portfolio,
    open: BTreeMap<InstrumentId, Open>,
    /// Why each order not filled yet was placed: its decision's reason, or the kind of
    /// protective exit it is.
    reasons: BTreeMap<ClientOrderId, Text>,
    last_reason: Text,
    /// The run's last kill-switch trip: closes it caused are the kill switch's.
    last_trip: Option<Seq>,
    on_trade: T,
    on_equity: E,
}

impl<T: FnMut(TradeRow), E: FnMut(EquityRow)> TradesFold<T, E> {
    /// The fold of run `run`.
    pub fn new(run: RunId, on_trade: T, on_equity: E) -> Self {
        TradesFold {
            run,
            portfolio: Portfolio::new(Decimal::ZERO),
            open: BTreeMap::new(),
            reasons: BTreeMap::new(),
            last_reason: Text::from(""),
            last_trip: None,
            on_trade,
            on_equity,
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &EventRef<'_>) {
        if event.run_id != self.run {
            return;
        }
        match event.payload {
            Payload::RunStarted(started) => self.portfolio = Portfolio::new(started.starting_cash),
            Payload::MarketTick(tick) => {
                // A change the account cannot represent is not in a ledger the engine wrote.
                let _ = self.portfolio.mark(&tick.instrument, tick.data.reference_price());
                let equity = self.portfolio.equity();
                (self.on_equity)(EquityRow {
                    time: event.ts_event.to_rfc3339(),
                    equity,
                    cash: self.portfolio.cash,
                    position_value: self.portfolio.positions.values().map(|p| p.value()).sum(),
                    drawdown: self.portfolio.drawdown(),
                    seq: event.seq.get(),
                });
            }
            Payload::DecisionMade(made) => self.last_reason = made.parsed.reason.clone(),
            Payload::KillSwitchTripped(_) => self.last_trip = Some(event.seq),
            Payload::OrderSubmitted(order) => {
                let reason = match (&order.protects, order.reduce_only, event.causation_seq) {
                    (Some(exit), ..) => Text::from(exit.kind.name()),
                    // Closes no decision asked for: the kill switch's, and the close-out at
                    // the end of the data (caused by no event).
                    (None, true, cause) if cause.is_some() && cause == self.last_trip => Text::from("kill switch"),
                    (None, true, None) => Text::from("end of data"),
                    (None, ..) => self.last_reason.clone(),
                };
                self.reasons.insert(order.client_order_id, reason);
            }
            Payload::OrderRejected(r) => {
                self.reasons.remove(&r.client_order_id);
            }
            Payload::OrderCanceled(c) => {
                self.reasons.remove(&c.client_order_id);
            }
            Payload::OrderFilled(fill) => {
                let _ = self.portfolio.apply_fill(fill);
                let reason = self.reasons.remove(&fill.client_order_id).unwrap_or_else(|| Text::from(""));
                self.fill(fill, event.seq, event.ts_event, reason);
            }
            _ => {}
        }
    }

    /// Moves the open trade of the fill's instrument: opens, adds, reduces, closes or
    /// reverses it.
    fn fill(&mut self, fill: &OrderFilled, seq: Seq, ts: TimestampNs, reason: Text) {
        let signed = match fill.side {
            Side::Buy => fill.qty,
            Side::Sell => -fill.qty,
        };
        let Some(open) = self.open.get_mut(&fill.instrument) else {
            self.open.insert(fill.instrument, opened(signed, fill, ts, seq, reason));
            return;
        };
        if open.qty.is_sign_positive() == signed.is_sign_positive() {
            // Adding: the average entry price moves; the fee joins the trade's.
            let qty = add(open.qty, signed);
            if !qty.is_zero() {
                open.avg_price = div(add(mul(open.avg_price, open.qty), mul(fill.price, signed)), qty);
            }
            open.qty = qty;
            open.fees = add(open.fees, fill.fee);
            return;
        }
        let closing = signed.abs().min(open.qty.abs());
        let share = div(closing, fill.qty);
        let entry_share = div(closing, open.qty.abs());
        let row = TradeRow {
            instrument: fill.instrument,
            side: if open.qty.is_sign_positive() { "long" } else { "short" },
            size: closing,
            entry_time: open.entry_ts.to_rfc3339(),
            entry_price: open.avg_price,
            exit_time: ts.to_rfc3339(),
            exit_price: fill.price,
            pnl: Decimal::ZERO,
            return_frac: Decimal::ZERO,
            fees: add(mul(open.fees, entry_share), mul(fill.fee, share)),
            duration_ns: ts.nanos().saturating_sub(open.entry_ts.nanos()),
            entry_seq: open.entry_seq.get(),
            exit_seq: seq.get(),
            entry_reason: open.reason.clone(),
            exit_reason: reason.clone(),
        };
        let direction = if open.qty.is_sign_positive() { Decimal::ONE } else { Decimal::NEGATIVE_ONE };
        let gross = mul(mul(fill.price - open.avg_price, closing), direction);
        let pnl = gross - row.fees;
        let return_frac = div(pnl, mul(closing, open.avg_price));
        open.fees -= mul(open.fees, entry_share);
        open.qty += if open.qty.is_sign_positive() { -closing } else { closing };
        let rest = signed.abs() - closing;
        (self.on_trade)(TradeRow { pnl, return_frac, ..row });
        if open.qty.is_zero() {
            self.open.remove(&fill.instrument);
            if !rest.is_zero() {
                // A reversal: the rest of the fill opens the next trade.
                let rest_signed = if signed.is_sign_positive() { rest } else { -rest };
                let mut next = opened(rest_signed, fill, ts, seq, reason);
                next.fees = mul(fill.fee, div(rest, fill.qty));
                self.open.insert(fill.instrument, next);
            }
        }
    }
}

// Display arithmetic on fills the engine accepted (their values fit, the account's
// invariant): checked all the same, so no stored data can make it panic; a result out of
// range (not in a ledger the engine wrote) shows as 0.
fn add(a: Decimal, b: Decimal) -> Decimal {
    a.checked_add(b).unwrap_or_default()
}

fn mul(a: Decimal, b: Decimal) -> Decimal {
    a.checked_mul(b).unwrap_or_default()
}

fn div(a: Decimal, b: Decimal) -> Decimal {
    a.checked_div(b).unwrap_or_default()
}

fn opened(signed: Decimal, fill: &OrderFilled, ts: TimestampNs, seq: Seq, reason: Text) -> Open {
    Open { qty: signed, avg_price: fill.price, fees: fill.fee, entry_ts: ts, entry_seq: seq, reason }
}
