//! Protective exits: the run's exit policy, the bracket an entry carries, the exit
//! orders placed when the entry fills, and the trailing stop's rule.
//!
//! An entry (`long` or `short`) carries a [`Bracket`]: the stop-loss and take-profit
//! prices and the trailing stop distance, from the decision's [`OrderTerms`] or, where
//! the decision sets none, from the run's [`ExitPolicy`] as a percentage of the price
//! the decision saw (the tick's reference price, or the entry's limit price), as a
//! backtesting.py strategy writes `self.buy(sl=price * (1 - pct), tp=price * (1 + pct))`.
//! When the entry fills, its exits are placed for the quantity filled: a stop-loss stop
//! order, a trailing stop order (starting at the distance from the fill price) and a
//! take-profit limit order, in that order, so that a bar touching both the stop and the
//! take-profit fills the stop, as backtesting.py 0.6.6 does (`_Broker._process_orders`
//! processes a trade's stop-loss order before its take-profit order). The exits are
//! reduce-only and one-cancels-other: when one fills, or the position is closed
//! otherwise, the rest are canceled.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::event::{Bracket, ExitKind, OrderTerms, OrderType, Side, TickData};

/// The protective exits a run places on every entry whose decision does not set its
/// own: distances as fractions of the decision's price (0.02 = 2%), `None` for none.
/// In a configuration file, the `[exits]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExitPolicy {
    /// Stop-loss distance below a long's price (above a short's), fraction, 0 to 1.
    pub stop_loss_pct: Option<Decimal>,
    /// Take-profit distance above a long's price (below a short's), fraction, above 0.
    pub take_profit_pct: Option<Decimal>,
    /// Trailing stop distance from the best price since the fill, fraction, 0 to 1.
    pub trailing_stop_pct: Option<Decimal>,
}

impl ExitPolicy {
    /// Whether the policy places no exit.
    pub fn is_off(&self) -> bool {
        *self == ExitPolicy::default()
    }

    /// The first setting out of its range, named as in the configuration file, with
    /// its value: stop-loss and trailing distances must be above 0 and below 1, the
    /// take-profit distance above 0.
    pub fn invalid_setting(&self) -> Option<(&'static str, Decimal)> {
        let fraction = |v: &Option<Decimal>| v.filter(|v| *v <= Decimal::ZERO || *v >= Decimal::ONE);
        if let Some(v) = fraction(&self.stop_loss_pct) {
            return Some(("stop_loss_pct", v));
        }
        if let Some(v) = self.take_profit_pct.filter(|v| *v <= Decimal::ZERO) {
            return Some(("take_profit_pct", v));
        }
        fraction(&self.trailing_stop_pct).map(|v| ("trailing_stop_pct", v))
    }

    /// The bracket of an entry on `side` decided at `price` (the tick's reference
    /// price, quote currency) with the decision's `terms`: each of the decision's terms
    /// wins over the policy, whose distances are taken from the entry's limit price if
    /// it has one, else from `price` (levels without trailing zeros). A level that leaves `Decimal`'s range is left out
    /// (the risk check on exit levels sees what is placed).
    pub fn bracket(&self, side: Side, price: Decimal, terms: &OrderTerms) -> Bracket {
        let base = terms.limit_price.unwrap_or(price);
        // Below the price for a long's stop and a short's take-profit, above otherwise.
        let level = |pct: Decimal, below: bool| {
            let factor = if below { Decimal::ONE.checked_sub(pct) } else { Decimal::ONE.checked_add(pct) };
            factor.and_then(|f| base.checked_mul(f)).map(|level| level.normalize())
        };
        let long = side == Side::Buy;
        Bracket {
            stop_loss: terms.stop_loss.or_else(|| self.stop_loss_pct.and_then(|pct| level(pct, long))),
            take_profit: terms.take_profit.or_else(|| self.take_profit_pct.and_then(|pct| level(pct, !long))),
            trailing_stop_pct: terms.trailing_stop_pct.or(self.trailing_stop_pct),
        }
    }
}

/// One exit order to place for a filled entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitOrder {
    /// Which exit.
    pub kind: ExitKind,
    /// `Stop` for the stops, `Limit` for the take-profit.
    pub order_type: OrderType,
    /// The take-profit's limit price.
    pub limit_price: Option<Decimal>,
    /// The stops' trigger price.
    pub stop_price: Option<Decimal>,
}

/// The exits `bracket` places for an entry filled on `entry_side` at `fill_price`, in
/// the order they are placed: stop-loss, trailing stop (at its distance from the fill
/// price), take-profit. A trailing stop whose level leaves `Decimal`'s range is left out.
pub fn exit_orders(bracket: &Bracket, entry_side: Side, fill_price: Decimal) -> Vec<ExitOrder> {
    let exit_side = entry_side.opposite();
    let mut orders = Vec::with_capacity(3);
    if let Some(stop) = bracket.stop_loss {
        orders.push(ExitOrder {
            kind: ExitKind::StopLoss,
            order_type: OrderType::Stop,
            limit_price: None,
            stop_price: Some(stop),
        });
    }
    if let Some(pct) = bracket.trailing_stop_pct {
        if let Some(stop) = trailing_level(exit_side, pct, fill_price) {
            orders.push(ExitOrder {
                kind: ExitKind::TrailingStop(pct),
                order_type: OrderType::Stop,
                limit_price: None,
                stop_price: Some(stop),
            });
        }
    }
    if let Some(limit) = bracket.take_profit {
        orders.push(ExitOrder {
            kind: ExitKind::TakeProfit,
            order_type: OrderType::Limit,
            limit_price: Some(limit),
            stop_price: None,
        });
    }
    orders
}

/// The best price a trailing stop on `exit_side` follows on this tick: for a sell
/// stop (protecting a long) the bar's high, the trade's price or the quote's bid (what
/// the long could sell at); for a buy stop the bar's low, the trade's price or the ask.
pub fn best_price(exit_side: Side, data: &TickData) -> Decimal {
    match (exit_side, data) {
        (Side::Sell, TickData::Bar(bar)) => bar.high,
        (Side::Buy, TickData::Bar(bar)) => bar.low,
        (_, TickData::Trade(trade)) => trade.price,
        (Side::Sell, TickData::Quote(quote)) => quote.bid,
        (Side::Buy, TickData::Quote(quote)) => quote.ask,
    }
}

/// The stop level `pct` (fraction) away from `best` on the losing side: below it for a
/// sell stop, above it for a buy stop, without trailing zeros; `None` out of
/// `Decimal`'s range.
pub fn trailing_level(exit_side: Side, pct: Decimal, best: Decimal) -> Option<Decimal> {
    let factor = match exit_side {
        Side::Sell => Decimal::ONE.checked_sub(pct)?,
        Side::Buy => Decimal::ONE.checked_add(pct)?,
    };
    best.checked_mul(factor).map(|level| level.normalize())
}

/// Whether a trailing stop on `exit_side` moves from `current` to `candidate`: only
/// toward the price (up for a sell stop, down for a buy stop), never back.
pub fn trails(exit_side: Side, current: Decimal, candidate: Decimal) -> bool {
    match exit_side {
        Side::Sell => candidate > current,
        Side::Buy => candidate < current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn the_policy_fills_in_what_the_decision_leaves_out() {
        let policy = ExitPolicy {
            stop_loss_pct: Some(dec!(0.02)),
            take_profit_pct: Some(dec!(0.05)),
            trailing_stop_pct: Some(dec!(0.03)),
        };
        // TC0: a long at 100 with no terms: 2% below, 5% above, 3% trailing.
        let bracket = policy.bracket(Side::Buy, dec!(100), &OrderTerms::default());
        assert_eq!((bracket.stop_loss, bracket.take_profit), (Some(dec!(98.00)), Some(dec!(105.00))));
        assert_eq!(bracket.trailing_stop_pct, Some(dec!(0.03)));
        // TC1: a short mirrors them.
        let bracket = policy.bracket(Side::Sell, dec!(100), &OrderTerms::default());
        assert_eq!((bracket.stop_loss, bracket.take_profit), (Some(dec!(102.00)), Some(dec!(95.00))));
        // TC2: the decision's own levels win; distances start from its limit price.
        let terms = OrderTerms { limit_price: Some(dec!(90)), stop_loss: Some(dec!(80)), ..OrderTerms::default() };
        let bracket = policy.bracket(Side::Buy, dec!(100), &terms);
        assert_eq!((bracket.stop_loss, bracket.take_profit), (Some(dec!(80)), Some(dec!(94.50))));
        // TC3: no policy, no terms: no exits.
        assert!(ExitPolicy::default().bracket(Side::Buy, dec!(100), &OrderTerms::default()).is_empty());
    }

    #[test]
    fn exits_are_placed_stop_first_and_a_trailing_stop_only_moves_toward_the_price() {
        let bracket =
            Bracket { stop_loss: Some(dec!(98)), take_profit: Some(dec!(105)), trailing_stop_pct: Some(dec!(0.03)) };
        let kinds: Vec<_> = exit_orders(&bracket, Side::Buy, dec!(100)).into_iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [ExitKind::StopLoss, ExitKind::TrailingStop(dec!(0.03)), ExitKind::TakeProfit]);
        assert_eq!(exit_orders(&bracket, Side::Buy, dec!(100))[1].stop_price, Some(dec!(97.00)));
        assert_eq!(trailing_level(Side::Buy, dec!(0.03), dec!(100)), Some(dec!(103.00)));
        assert!(trails(Side::Sell, dec!(97), dec!(97.5)) && !trails(Side::Sell, dec!(97), dec!(96)));
        assert!(trails(Side::Buy, dec!(103), dec!(102)) && !trails(Side::Buy, dec!(103), dec!(103)));
        let out_of_range = ExitPolicy { stop_loss_pct: Some(dec!(1)), ..ExitPolicy::default() };
        assert_eq!(out_of_range.invalid_setting(), Some(("stop_loss_pct", dec!(1))));
    }
}
