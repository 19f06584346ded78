//! Sizing: how many units an order for a share of the money buys, and what a fill
//! costs. Pure functions of the price, the money available and the venue's costs,
//! which the paper venue applies at fill time and a live venue at submit time, so both
//! size alike.
//!
//! The rule is backtesting.py 0.6.6's for a relative order (`_Broker._process_orders`
//! in `backtesting/backtesting.py`): the units are the money the order may use divided
//! by the cost of one unit with its commission, rounded down (there: `int(margin_available
//! * leverage * size // (price + commission / size))`; here rounded down to the lot).

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::event::Side;

/// What a venue charges and how it rounds: the inputs of sizing besides the price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Costs {
    /// Commission as a fraction of notional (0.001 = 0.1%), charged on every fill.
    pub commission_rate: Decimal,
    /// Commission per unit filled, account currency.
    pub commission_per_unit: Decimal,
    /// Minimum commission per fill, account currency.
    pub commission_min: Decimal,
    /// Quantities are whole multiples of this (1 = whole units; 0 = any quantity).
    pub lot_size: Decimal,
    /// Decimal places of the account currency; fees are rounded half away from zero to
    /// them when `round_fees` is set.
    pub money_decimals: u32,
    /// Whether fees are rounded to `money_decimals` places (as venues charge them);
    /// `false` keeps them exact (as backtesting.py computes them, in floating point).
    pub round_fees: bool,
}

/// The money an order may use, as the account stands when it fills (after every fill
/// before it). Handed to venues by the engine, so a venue never reads the portfolio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Funds {
    /// Cash, account currency.
    pub cash: Decimal,
    /// Cash plus positions marked to market, account currency.
    pub equity: Decimal,
    /// Sum of the absolute marked values of all positions, account currency.
    pub gross_exposure: Decimal,
}

impl Funds {
    /// The most an opening order on `side` may spend, account currency: cash plus the
    /// leverage room for buys, the room under `max_leverage` x equity for sells (shorts),
    /// never more than that room, never negative.
    ///
    /// Arithmetic that leaves `Decimal`'s range gives no budget (the order is rejected).
    pub fn budget(&self, side: Side, max_leverage: Decimal) -> Decimal {
        let room = self.equity.checked_mul(max_leverage).and_then(|l| l.checked_sub(self.gross_exposure));
        let Some(room) = room.map(|r| r.max(Decimal::ZERO)) else { return Decimal::ZERO };
        let budget = match side {
            Side::Buy => max_leverage
                .checked_sub(Decimal::ONE)
                .and_then(|l| l.checked_mul(self.equity))
                .and_then(|extra| self.cash.checked_add(extra)),
            Side::Sell => Some(room),
        };
        budget.map_or(Decimal::ZERO, |b| b.min(room).max(Decimal::ZERO))
    }
}

/// Commission on `units` at `price`, account currency: rate x notional plus per-unit,
/// at least the minimum, rounded half away from zero to the account currency's places
/// when [`Costs::round_fees`] is set (exact otherwise). `None` when it leaves
/// `Decimal`'s range.
pub fn fee(units: Decimal, price: Decimal, costs: &Costs) -> Option<Decimal> {
    let by_rate = units.checked_mul(price)?.checked_mul(costs.commission_rate)?;
    let fee = by_rate.checked_add(units.checked_mul(costs.commission_per_unit)?)?.max(costs.commission_min);
    Some(if costs.round_fees {
        fee.round_dp_with_strategy(costs.money_decimals, RoundingStrategy::MidpointAwayFromZero)
    } else {
        fee
    })
}

/// `units` rounded down to a whole number of lots (unchanged when the lot is not
/// positive; zero when the division leaves `Decimal`'s range).
pub fn floor_lot(units: Decimal, lot: Decimal) -> Decimal {
    if lot <= Decimal::ZERO {
        return units;
    }
    units.checked_div(lot).and_then(|n| n.floor().checked_mul(lot)).unwrap_or(Decimal::ZERO)
}

/// Units an order for `fraction` (0 to 1) of the money available buys at `price`: the
/// money is `fraction x budget` ([`Funds::budget`] when the order fills: for an account
/// with no other position, its equity times the leverage allowed), and the units
/// `floor(money / (price x (1 + commission rate) + commission per unit))` rounded down
/// to the lot, then stepped down while the fee's minimum or rounding pushes the cost
/// over ([`units_for`]). Zero when nothing fits (the order is then rejected).
///
/// Source: backtesting.py 0.6.6 `_Broker._process_orders`, where an order of size
/// `-1 < size < 1` is `int(margin_available * leverage * abs(size) //
/// adjusted_price_plus_commission)` units; `margin_available` is its equity (cash plus
/// unrealized P&L) less the margin of the trades still open, which for a reversal is
/// the equity after the closing leg.
pub fn units_for_fraction(fraction: Decimal, budget: Decimal, price: Decimal, costs: &Costs) -> Decimal {
    if fraction <= Decimal::ZERO || budget <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    match fraction.min(Decimal::ONE).checked_mul(budget) {
        Some(money) => units_for(money, budget, price, costs),
        None => Decimal::ZERO,
    }
}

/// Units a notional order buys at `price`: the most lots whose cost plus commission fits
/// in `min(notional, budget)`, or zero (the order is then rejected, not filled).
///
/// The first guess divides the money by the cost of one unit with its commission; the
/// minimum commission and the fee's rounding can still push the cost over, so it steps
/// down by one lot (never by a whole unit when lots are smaller: a lot of 1e-8 steps by
/// 1e-8), then two, four, ... until it fits (a few steps at most).
///
/// Arithmetic that leaves `Decimal`'s range (prices near 1e-28 or 1e28) gives zero units.
pub fn units_for(notional: Decimal, budget: Decimal, price: Decimal, costs: &Costs) -> Decimal {
    let spend = notional.min(budget);
    if spend <= Decimal::ZERO || price <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let per_unit = Decimal::ONE
        .checked_add(costs.commission_rate)
        .and_then(|r| r.checked_mul(price))
        .and_then(|p| p.checked_add(costs.commission_per_unit));
    let Some(per_unit) = per_unit.filter(|p| *p > Decimal::ZERO) else { return Decimal::ZERO };
    let Some(first_guess) = spend.checked_div(per_unit) else { return Decimal::ZERO };
    let mut units = floor_lot(first_guess, costs.lot_size);
    let mut step = if costs.lot_size > Decimal::ZERO { costs.lot_size } else { Decimal::new(1, 8) };
    let fits = |units: Decimal| {
        let cost = units.checked_mul(price).zip(fee(units, price, costs)).and_then(|(n, f)| n.checked_add(f));
        cost.is_some_and(|c| c <= spend)
    };
    while units > Decimal::ZERO && !fits(units) {
        units = floor_lot((units - step).max(Decimal::ZERO), costs.lot_size);
        step = step.checked_mul(Decimal::TWO).unwrap_or(units);
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn costs(rate: Decimal, min: Decimal, lot: Decimal) -> Costs {
        Costs {
            commission_rate: rate,
            commission_per_unit: Decimal::ZERO,
            commission_min: min,
            lot_size: lot,
            money_decimals: 2,
            round_fees: true,
        }
    }

    #[test]
    fn units_fit_the_money_with_their_fee() {
        // TC0: whole units, 0.1%: 10,000 / 100.1 = 99.9 -> 99 units, cost 9,900 + 9.90.
        assert_eq!(units_for(dec!(10000), dec!(10000), dec!(100), &costs(dec!(0.001), dec!(0), dec!(1))), dec!(99));
        // TC1: crypto lots of 1e-8 step down by a lot, not by a whole unit.
        let btc = units_for(dec!(100000), dec!(100000), dec!(47000), &costs(dec!(0.001), dec!(0), dec!(0.00000001)));
        let cost = btc * dec!(47000) + fee(btc, dec!(47000), &costs(dec!(0.001), dec!(0), dec!(0.00000001))).unwrap();
        assert!(btc > dec!(2.12) && cost <= dec!(100000));
        // TC2: a minimum commission of 5 pushes the first guess over: 99 units cost 9,900 + 5.
        assert_eq!(units_for(dec!(10000), dec!(10000), dec!(100), &costs(dec!(0), dec!(5), dec!(1))), dec!(99));
        // TC3: no money, no units.
        assert_eq!(units_for(dec!(0), dec!(10000), dec!(100), &costs(dec!(0), dec!(0), dec!(1))), dec!(0));
    }

    #[test]
    fn a_fraction_of_the_money_is_sized_as_backtesting_py_does() {
        let exact = Costs { round_fees: false, ..costs(dec!(0.002), dec!(0), dec!(1)) };
        // TC0: all of 100,000 at 97.84 with 0.2%: floor(100000 / 98.03568) = 1020 units.
        assert_eq!(units_for_fraction(dec!(1), dec!(100000), dec!(97.84), &exact), dec!(1020));
        // TC1: half of it: floor(50000 / 98.03568) = 510.
        assert_eq!(units_for_fraction(dec!(0.5), dec!(100000), dec!(97.84), &exact), dec!(510));
        // TC2: unrounded fees never push the first guess over: cost + fee <= money.
        let units = units_for_fraction(dec!(1), dec!(12345.67), dec!(3.21), &exact);
        assert!(units * dec!(3.21) + fee(units, dec!(3.21), &exact).unwrap() <= dec!(12345.67));
        assert_eq!(units, dec!(3838)); // 12345.67 / 3.21642 = 3838.33
                                       // TC3: nothing to spend, or no fraction: no units.
        assert_eq!(units_for_fraction(dec!(0), dec!(100000), dec!(97.84), &exact), dec!(0));
        assert_eq!(units_for_fraction(dec!(1), dec!(-5), dec!(97.84), &exact), dec!(0));
    }

    #[test]
    fn crypto_lots_of_1e_8_fill_after_a_rounded_fee_pushes_the_cost_over() {
        // The bug of issue 9: stepping down by max(lot, 1) took a whole BTC off, so with a
        // lot of 1e-8 most orders fell to zero units. TC0: the money of a later BTC
        // 1-minute order, whose rounded fee pushes the first guess over by a cent.
        let c = costs(dec!(0.001), dec!(0), dec!(0.00000001));
        for (money, price) in
            [(dec!(99876.54), dec!(46377.0)), (dec!(1234.5), dec!(47111.5)), (dec!(50.01), dec!(46000))]
        {
            let units = units_for(money, money, price, &c);
            let cost = units * price + fee(units, price, &c).unwrap();
            assert!(units > dec!(0) && cost <= money, "{money} at {price}: {units} units cost {cost}");
            // At most a few lots below the exact quotient: never a whole unit off.
            let exact = money / (price * dec!(1.001));
            assert!(exact - units < dec!(0.0000001), "{money} at {price}: {units} vs {exact}");
        }
    }

    #[test]
    fn extreme_prices_give_zero_units_never_a_panic() {
        let c = costs(dec!(0.001), dec!(0), dec!(0.001));
        // TC0: a price near the smallest decimal: the division would overflow.
        assert_eq!(units_for(dec!(100000), dec!(100000), Decimal::new(1, 27), &c), dec!(0));
        // TC1: the largest price: nothing fits.
        assert_eq!(units_for(dec!(100000), dec!(100000), Decimal::MAX, &c), dec!(0));
        // TC2: a fee on the largest notional does not fit.
        assert_eq!(fee(Decimal::MAX, dec!(2), &c), None);
        // TC3: a budget on the largest equity with leverage does not overflow.
        let funds = Funds { cash: Decimal::MAX, equity: Decimal::MAX, gross_exposure: dec!(0) };
        assert_eq!(funds.budget(Side::Buy, dec!(2)), dec!(0));
    }

    #[test]
    fn budget_for_buys_is_cash_and_for_shorts_the_room() {
        let funds = Funds { cash: dec!(400), equity: dec!(1000), gross_exposure: dec!(600) };
        assert_eq!(funds.budget(Side::Buy, dec!(1)), dec!(400));
        assert_eq!(funds.budget(Side::Sell, dec!(1)), dec!(400));
        assert_eq!(funds.budget(Side::Buy, dec!(2)), dec!(1400));
    }
}
