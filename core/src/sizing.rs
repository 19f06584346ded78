//! Sizing: how many units a notional order buys, and what a fill costs. One pure
//! function of the price, the money available and the venue's costs, which the paper
//! venue applies at fill time and a live venue at submit time, so both size alike.

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
    /// Decimal places of the account currency; fees are rounded half away from zero.
    pub money_decimals: u32,
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
    pub fn budget(&self, side: Side, max_leverage: Decimal) -> Decimal {
        let room = (self.equity * max_leverage - self.gross_exposure).max(Decimal::ZERO);
        let budget = match side {
            Side::Buy => self.cash + (max_leverage - Decimal::ONE) * self.equity,
            Side::Sell => room,
        };
        budget.min(room).max(Decimal::ZERO)
    }
}

/// Commission on `units` at `price`: rate x notional plus per-unit, at least the
/// minimum, rounded half away from zero to the account currency's places.
pub fn fee(units: Decimal, price: Decimal, costs: &Costs) -> Decimal {
    let fee = (units * price * costs.commission_rate + units * costs.commission_per_unit).max(costs.commission_min);
    fee.round_dp_with_strategy(costs.money_decimals, RoundingStrategy::MidpointAwayFromZero)
}

/// `units` rounded down to a whole number of lots (unchanged when the lot is not positive).
pub fn floor_lot(units: Decimal, lot: Decimal) -> Decimal {
    if lot <= Decimal::ZERO {
        return units;
    }
    (units / lot).floor() * lot
}

/// Units a notional order buys at `price`: the most lots whose cost plus commission fits
/// in `min(notional, budget)`, or zero (the order is then rejected, not filled).
///
/// The first guess divides the money by the cost of one unit with its commission; the
/// minimum commission and the fee's rounding can still push the cost over, so it steps
/// down by one lot, then two, four, ... until it fits (a few steps at most).
pub fn units_for(notional: Decimal, budget: Decimal, price: Decimal, costs: &Costs) -> Decimal {
    let spend = notional.min(budget);
    if spend <= Decimal::ZERO || price <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let per_unit = price * (Decimal::ONE + costs.commission_rate) + costs.commission_per_unit;
    if per_unit <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let mut units = floor_lot(spend / per_unit, costs.lot_size);
    let mut step = if costs.lot_size > Decimal::ZERO { costs.lot_size } else { Decimal::new(1, 8) };
    while units > Decimal::ZERO && units * price + fee(units, price, costs) > spend {
        units = floor_lot((units - step).max(Decimal::ZERO), costs.lot_size);
        step *= Decimal::TWO;
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
        }
    }

    #[test]
    fn units_fit_the_money_with_their_fee() {
        // TC0: whole units, 0.1%: 10,000 / 100.1 = 99.9 -> 99 units, cost 9,900 + 9.90.
        assert_eq!(units_for(dec!(10000), dec!(10000), dec!(100), &costs(dec!(0.001), dec!(0), dec!(1))), dec!(99));
        // TC1: crypto lots of 1e-8 step down by a lot, not by a whole unit.
        let btc = units_for(dec!(100000), dec!(100000), dec!(47000), &costs(dec!(0.001), dec!(0), dec!(0.00000001)));
        assert!(
            btc > dec!(2.12)
                && btc * dec!(47000) + fee(btc, dec!(47000), &costs(dec!(0.001), dec!(0), dec!(0.00000001)))
                    <= dec!(100000)
        );
        // TC2: a minimum commission of 5 pushes the first guess over: 99 units cost 9,900 + 5.
        assert_eq!(units_for(dec!(10000), dec!(10000), dec!(100), &costs(dec!(0), dec!(5), dec!(1))), dec!(99));
        // TC3: no money, no units.
        assert_eq!(units_for(dec!(0), dec!(10000), dec!(100), &costs(dec!(0), dec!(0), dec!(1))), dec!(0));
    }

    #[test]
    fn budget_for_buys_is_cash_and_for_shorts_the_room() {
        let funds = Funds { cash: dec!(400), equity: dec!(1000), gross_exposure: dec!(600) };
        assert_eq!(funds.budget(Side::Buy, dec!(1)), dec!(400));
        assert_eq!(funds.budget(Side::Sell, dec!(1)), dec!(400));
        assert_eq!(funds.budget(Side::Buy, dec!(2)), dec!(1400));
    }
}
