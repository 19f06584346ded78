//! Portfolio accounting: what a fill does to cash and positions, and what a price does
//! to equity. The engine, the risk engine and the projections all use this one type, so
//! a live run and a rebuild from the log can never disagree about a fill.
//!
//! Conventions: quantities are signed (positive long, negative short); cash moves by
//! the fill's notional and its fee; realized P&L is gross of fees (fees are totalled
//! apart, so net P&L = realized + unrealized - fees); average price is the
//! quantity-weighted entry price of the open position.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::event::{OrderFilled, Side};
use crate::ids::InstrumentId;

/// An open position in one instrument.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    /// Signed units: positive long, negative short, never zero while open.
    #[serde(with = "crate::codec::decimal")]
    pub qty: Decimal,
    /// Quantity-weighted entry price, quote currency.
    #[serde(with = "crate::codec::decimal")]
    pub avg_price: Decimal,
    /// Last mark price, quote currency.
    #[serde(with = "crate::codec::decimal")]
    pub mark: Decimal,
}

impl Position {
    /// Mark-to-market value, signed (negative for shorts).
    pub fn value(&self) -> Decimal {
        self.qty * self.mark
    }

    /// Unrealized P&L at the mark, gross of fees.
    pub fn unrealized(&self) -> Decimal {
        self.qty * (self.mark - self.avg_price)
    }
}

/// Cash, positions, P&L and drawdown of one account (single currency).
///
/// Invariant: every position's value, the equity and the gross exposure fit in a
/// `Decimal`: [`Portfolio::apply_fill`] and [`Portfolio::mark`] refuse a change that
/// would break it, and a stored account that breaks it does not deserialize.
///
/// The fields are changed only by [`Portfolio::apply_fill`] and [`Portfolio::mark`]:
/// the equity, the gross exposure and the drawdown threshold are kept from the last
/// change (`totals`) rather than summed again at every read, the engine, the risk
/// checks and the folds reading them several times a tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Account", into = "Account")]
pub struct Portfolio {
    /// Cash, account currency; negative only when leverage allows.
    #[serde(with = "crate::codec::decimal")]
    pub cash: Decimal,
    /// Open positions by instrument (sorted, so iteration is deterministic).
    pub positions: BTreeMap<InstrumentId, Position>,
    /// Realized P&L so far, gross of fees.
    #[serde(with = "crate::codec::decimal")]
    pub realized_pnl: Decimal,
    /// Fees paid so far.
    #[serde(with = "crate::codec::decimal")]
    pub fees: Decimal,
    /// Equity at the start.
    #[serde(with = "crate::codec::decimal")]
    pub starting_equity: Decimal,
    /// Highest equity seen at a mark.
    #[serde(with = "crate::codec::decimal")]
    pub peak_equity: Decimal,
    /// Largest drawdown seen, as a fraction of the peak (0.25 = 25%).
    #[serde(with = "crate::codec::decimal")]
    pub max_drawdown: Decimal,
    /// What the fields above give, as of their last change.
    totals: Totals,
}

/// The values a [`Portfolio`]'s fields give, computed once per change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Totals {
    /// Cash plus every position's value (`cash + Σ qty × mark`), account currency.
    equity: Decimal,
    /// `Σ |qty × mark|`, account currency.
    gross: Decimal,
    /// The fall from the peak beyond which a mark is a new maximum drawdown; `None`
    /// when it leaves the range of `Decimal`.
    deepest: Option<Deepest>,
}

/// `max_drawdown × peak_equity`, account currency, and the same cut to the peak's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deepest {
    exact: Decimal,
    /// `exact` rounded toward zero to the peak's decimal places: a fall no larger is no
    /// new maximum, and most falls compare with it at the same scale (without the
    /// rescaling that comparing with the 28-place `exact` costs).
    cut: Decimal,
}

impl Deepest {
    fn of(max_drawdown: Decimal, peak: Decimal) -> Option<Deepest> {
        let exact = max_drawdown.checked_mul(peak)?;
        Some(Deepest { exact, cut: exact.round_dp_with_strategy(peak.scale(), RoundingStrategy::ToZero) })
    }
}

impl Totals {
    /// The equity and gross exposure of `cash` and `positions`, with `value_of` giving
    /// each position's value; `None` when a sum leaves the range of `Decimal`. Summed in
    /// the order `equity()` always used (positions first, then cash), so the values and
    /// their scales are the same as before they were kept.
    fn of<'a>(
        cash: Decimal,
        positions: impl Iterator<Item = (&'a InstrumentId, &'a Position)>,
        mut value_of: impl FnMut(&InstrumentId, &Position) -> Option<Decimal>,
        deepest: Option<Deepest>,
    ) -> Option<Totals> {
        let (mut values, mut gross) = (Decimal::ZERO, Decimal::ZERO);
        for (id, position) in positions {
            let value = value_of(id, position)?;
            values = values.checked_add(value)?;
            gross = gross.checked_add(value.abs())?;
        }
        Some(Totals { equity: cash.checked_add(values)?, gross, deepest })
    }
}

/// A [`Portfolio`] as stored (snapshots, JSON): its fields without the totals, which are
/// computed again when it is read.
#[derive(Serialize, Deserialize)]
struct Account {
    #[serde(with = "crate::codec::decimal")]
    cash: Decimal,
    positions: BTreeMap<InstrumentId, Position>,
    #[serde(with = "crate::codec::decimal")]
    realized_pnl: Decimal,
    #[serde(with = "crate::codec::decimal")]
    fees: Decimal,
    #[serde(with = "crate::codec::decimal")]
    starting_equity: Decimal,
    #[serde(with = "crate::codec::decimal")]
    peak_equity: Decimal,
    #[serde(with = "crate::codec::decimal")]
    max_drawdown: Decimal,
}

impl From<Portfolio> for Account {
    fn from(p: Portfolio) -> Self {
        Account {
            cash: p.cash,
            positions: p.positions,
            realized_pnl: p.realized_pnl,
            fees: p.fees,
            starting_equity: p.starting_equity,
            peak_equity: p.peak_equity,
            max_drawdown: p.max_drawdown,
        }
    }
}

impl TryFrom<Account> for Portfolio {
    type Error = AccountOverflow;

    fn try_from(a: Account) -> Result<Self, AccountOverflow> {
        let overflow = AccountOverflow { cause: "a stored account" };
        let value = |_: &InstrumentId, p: &Position| p.qty.checked_mul(p.mark);
        let deepest = Deepest::of(a.max_drawdown, a.peak_equity);
        let totals = Totals::of(a.cash, a.positions.iter(), value, deepest).ok_or(overflow)?;
        Ok(Portfolio {
            cash: a.cash,
            positions: a.positions,
            realized_pnl: a.realized_pnl,
            fees: a.fees,
            starting_equity: a.starting_equity,
            peak_equity: a.peak_equity,
            max_drawdown: a.max_drawdown,
            totals,
        })
    }
}

impl Portfolio {
    /// A flat account holding `cash`.
    pub fn new(cash: Decimal) -> Self {
        Portfolio {
            cash,
            positions: BTreeMap::new(),
            realized_pnl: Decimal::ZERO,
            fees: Decimal::ZERO,
            starting_equity: cash,
            peak_equity: cash,
            max_drawdown: Decimal::ZERO,
            totals: Totals { equity: cash, gross: Decimal::ZERO, deepest: Deepest::of(Decimal::ZERO, cash) },
        }
    }

    /// Signed units held in `instrument` (0 when flat).
    pub fn qty(&self, instrument: &InstrumentId) -> Decimal {
        self.positions.get(instrument).map_or(Decimal::ZERO, |p| p.qty)
    }

    /// Cash plus the marked value of every position.
    pub fn equity(&self) -> Decimal {
        self.totals.equity
    }

    /// Sum of the absolute marked values of all positions.
    pub fn gross_exposure(&self) -> Decimal {
        self.totals.gross
    }

    /// Unrealized P&L of all positions at their marks.
    pub fn unrealized_pnl(&self) -> Decimal {
        self.positions.values().map(Position::unrealized).sum()
    }

    /// Current drawdown from the peak, fraction (0 at a new peak).
    pub fn drawdown(&self) -> Decimal {
        drawdown(self.peak_equity, self.equity())
    }

    /// Applies a fill: moves cash by notional and fee, updates the position's quantity
    /// and average price, and realizes P&L on the part that reduces the position.
    ///
    /// # Errors
    /// [`AccountOverflow`] when the account after the fill would leave the range of
    /// `Decimal` (about ±7.9e28); the account is then unchanged.
    pub fn apply_fill(&mut self, fill: &OrderFilled) -> Result<(), AccountOverflow> {
        let overflow = || AccountOverflow { cause: "a fill" };
        let signed = match fill.side {
            Side::Buy => fill.qty,
            Side::Sell => -fill.qty,
        };
        let notional = signed.checked_mul(fill.price).ok_or_else(overflow)?;
        let cash = self.cash.checked_sub(notional).and_then(|c| c.checked_sub(fill.fee)).ok_or_else(overflow)?;
        let fees = self.fees.checked_add(fill.fee).ok_or_else(overflow)?;
        let mut position = self.positions.get(&fill.instrument).cloned().unwrap_or_default();
        if position.qty.is_zero() {
            position.mark = fill.price;
        }
        let old = position.qty;
        let new = old.checked_add(signed).ok_or_else(overflow)?;
        let mut realized = self.realized_pnl;
        if old.is_zero() || old.is_sign_positive() == signed.is_sign_positive() {
            // Opening or adding: the average moves toward the fill price.
            let cost = old
                .abs()
                .checked_mul(position.avg_price)
                .and_then(|c| c.checked_add(fill.qty.checked_mul(fill.price)?))
                .ok_or_else(overflow)?;
            position.avg_price = cost.checked_div(new.abs()).ok_or_else(overflow)?;
        } else {
            // Reducing, closing or reversing: realize on the closed part.
            let closed = old.abs().min(fill.qty);
            let gain = fill.price.checked_sub(position.avg_price).and_then(|d| d.checked_mul(closed));
            let gain = gain.ok_or_else(overflow)?;
            let gain = if old.is_sign_positive() { gain } else { -gain };
            realized = realized.checked_add(gain).ok_or_else(overflow)?;
            if !new.is_zero() && new.is_sign_positive() != old.is_sign_positive() {
                position.avg_price = fill.price;
            }
        }
        position.qty = new;
        let mut positions = self.positions.clone();
        if new.is_zero() {
            positions.remove(&fill.instrument);
        } else {
            positions.insert(fill.instrument, position);
        }
        let value = |_: &InstrumentId, p: &Position| p.qty.checked_mul(p.mark);
        let totals = Totals::of(cash, positions.iter(), value, self.totals.deepest).ok_or_else(overflow)?;
        (self.cash, self.fees, self.realized_pnl, self.positions) = (cash, fees, realized, positions);
        self.update_peak(totals);
        Ok(())
    }

    /// Marks `instrument` to `price` and updates peak equity and drawdown.
    ///
    /// # Errors
    /// [`AccountOverflow`] when the position's value or the equity at `price` would leave
    /// the range of `Decimal`; the account is then unchanged.
    pub fn mark(&mut self, instrument: &InstrumentId, price: Decimal) -> Result<(), AccountOverflow> {
        if !self.positions.contains_key(instrument) {
            self.update_peak(self.totals.clone());
            return Ok(());
        }
        let value = |id: &InstrumentId, p: &Position| p.qty.checked_mul(if id == instrument { price } else { p.mark });
        let totals = Totals::of(self.cash, self.positions.iter(), value, self.totals.deepest);
        let totals = totals.ok_or(AccountOverflow { cause: "a mark" })?;
        if let Some(position) = self.positions.get_mut(instrument) {
            position.mark = price;
        }
        self.update_peak(totals);
        Ok(())
    }

    /// Takes `totals` (the equity after a change) and moves the peak, the maximum
    /// drawdown and its threshold with it.
    fn update_peak(&mut self, totals: Totals) {
        self.totals = totals;
        let equity = self.totals.equity;
        if equity > self.peak_equity {
            self.peak_equity = equity;
            self.totals.deepest = Deepest::of(self.max_drawdown, equity);
        } else if self.peak_equity > Decimal::ZERO {
            // Divide only on a new maximum drawdown: most marks are not one.
            let deeper = match (self.peak_equity.checked_sub(equity), self.totals.deepest) {
                (Some(fall), Some(deepest)) => fall > deepest.cut && fall > deepest.exact,
                _ => true,
            };
            if deeper {
                self.max_drawdown = drawdown(self.peak_equity, equity);
                self.totals.deepest = Deepest::of(self.max_drawdown, self.peak_equity);
            }
        }
    }
}

/// The account's values would leave the range of `Decimal` (about ±7.9e28): a price or
/// a quantity far outside anything traded. The change is refused and the account kept as
/// it was; a run stops with this error rather than record numbers it cannot represent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the account's value would leave the range of exact decimals (about 7.9e28) at {cause}")]
pub struct AccountOverflow {
    /// What would have overflowed it: `a fill` or `a mark`.
    pub cause: &'static str,
}

/// `(peak - equity) / peak`, or 0 when the peak is not positive.
/// Saturates at `Decimal::MAX` for an equity so far below a tiny peak that the fraction
/// leaves the range.
pub fn drawdown(peak: Decimal, equity: Decimal) -> Decimal {
    if peak <= Decimal::ZERO || equity >= peak {
        Decimal::ZERO
    } else {
        peak.checked_sub(equity).and_then(|d| d.checked_div(peak)).unwrap_or(Decimal::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Liquidity;
    use crate::ids::{ClientOrderId, FillId};
    use rust_decimal_macros::dec;

    fn fill(side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> OrderFilled {
        OrderFilled {
            client_order_id: ClientOrderId::new("o").unwrap(),
            fill_id: FillId::new(1),
            instrument: InstrumentId::new("SPY").unwrap(),
            side,
            qty,
            price,
            fee,
            liquidity: Liquidity::Taker,
        }
    }

    #[test]
    fn round_trip_long_realizes_gross_pnl_and_charges_both_fees() {
        let spy = InstrumentId::new("SPY").unwrap();
        let mut p = Portfolio::new(dec!(10000));
        // TC0: buy 10 @ 100, fee 1: cash 10000 - 1000 - 1.
        p.apply_fill(&fill(Side::Buy, dec!(10), dec!(100), dec!(1))).unwrap();
        assert_eq!((p.cash, p.qty(&spy), p.fees), (dec!(8999), dec!(10), dec!(1)));
        // TC1: mark at 110: equity = 8999 + 1100.
        p.mark(&spy, dec!(110)).unwrap();
        assert_eq!((p.equity(), p.unrealized_pnl()), (dec!(10099), dec!(100)));
        // TC2: sell 10 @ 110, fee 1.1: realized 100 gross, fees 2.1, flat.
        p.apply_fill(&fill(Side::Sell, dec!(10), dec!(110), dec!(1.1))).unwrap();
        assert_eq!((p.cash, p.realized_pnl, p.fees), (dec!(10097.9), dec!(100), dec!(2.1)));
        assert!(p.positions.is_empty());
    }

    #[test]
    fn adding_averages_and_reversing_resets_the_entry_price() {
        let spy = InstrumentId::new("SPY").unwrap();
        let mut p = Portfolio::new(dec!(10000));
        p.apply_fill(&fill(Side::Buy, dec!(10), dec!(100), dec!(0))).unwrap();
        p.apply_fill(&fill(Side::Buy, dec!(10), dec!(110), dec!(0))).unwrap();
        assert_eq!(p.positions[&spy].avg_price, dec!(105));
        // Sell 30 @ 120: closes 20 (realize 20 x 15), opens 10 short at 120.
        p.apply_fill(&fill(Side::Sell, dec!(30), dec!(120), dec!(0))).unwrap();
        assert_eq!((p.realized_pnl, p.qty(&spy), p.positions[&spy].avg_price), (dec!(300), dec!(-10), dec!(120)));
        // Short loses when the price rises.
        p.mark(&spy, dec!(130)).unwrap();
        assert_eq!(p.unrealized_pnl(), dec!(-100));
    }

    #[test]
    fn drawdown_tracks_the_peak() {
        let spy = InstrumentId::new("SPY").unwrap();
        let mut p = Portfolio::new(dec!(1000));
        p.apply_fill(&fill(Side::Buy, dec!(10), dec!(100), dec!(0))).unwrap();
        p.mark(&spy, dec!(120)).unwrap(); // equity 1200, new peak
        p.mark(&spy, dec!(90)).unwrap(); // equity 900: 25% below 1200
        assert_eq!((p.peak_equity, p.drawdown(), p.max_drawdown), (dec!(1200), dec!(0.25), dec!(0.25)));
        p.mark(&spy, dec!(110)).unwrap();
        assert_eq!(p.max_drawdown, dec!(0.25));
    }

    /// One step of the property below: a fill or a mark of instrument `0..3`.
    #[derive(Debug, Clone)]
    enum Step {
        Fill(usize, Side, Decimal, Decimal, Decimal),
        Mark(usize, Decimal),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let price = (1u32..200_000u32, 0u32..4).prop_map(|(m, s)| Decimal::new(m.into(), s));
        let qty = (1u32..5_000u32, 0u32..4).prop_map(|(m, s)| Decimal::new(m.into(), s));
        let fee = (0u32..1_000u32, 0u32..6).prop_map(|(m, s)| Decimal::new(m.into(), s));
        let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
        prop_oneof![
            (0usize..3, side, qty, price.clone(), fee).prop_map(|(i, s, q, p, f)| Step::Fill(i, s, q, p, f)),
            (0usize..3, price).prop_map(|(i, p)| Step::Mark(i, p)),
        ]
    }

    proptest::proptest! {
        /// The kept totals are what summing the fields gives at every step, the maximum
        /// drawdown is the deepest `(peak - equity) / peak` seen with the threshold
        /// recomputed at every mark (as before the totals were kept), and a stored
        /// account reads back equal.
        #[test]
        fn kept_totals_match_the_fields(steps in proptest::collection::vec(step(), 1..60)) {
            let ids = ["SPY", "QQQ", "IWM"].map(|s| InstrumentId::new(s).unwrap());
            let mut p = Portfolio::new(dec!(100000));
            let mut max_drawdown = Decimal::ZERO;
            for step in steps {
                let changed = match step {
                    Step::Fill(i, side, qty, price, fee) => {
                        let mut f = fill(side, qty, price, fee);
                        f.instrument = ids[i];
                        p.apply_fill(&f).is_ok()
                    }
                    Step::Mark(i, price) => p.mark(&ids[i], price).is_ok(),
                };
                let values: Decimal = p.positions.values().map(Position::value).sum();
                proptest::prop_assert_eq!(p.equity(), p.cash + values);
                proptest::prop_assert_eq!(p.gross_exposure(), p.positions.values().map(|v| v.value().abs()).sum::<Decimal>());
                proptest::prop_assert_eq!(p.totals.deepest.map(|d| d.exact), p.max_drawdown.checked_mul(p.peak_equity));
                if let Some(d) = p.totals.deepest {
                    proptest::prop_assert!(d.cut <= d.exact && d.cut.scale() <= p.peak_equity.scale());
                }
                if changed {
                    let fall = p.peak_equity - p.equity();
                    if p.equity() < p.peak_equity && fall > max_drawdown * p.peak_equity {
                        max_drawdown = drawdown(p.peak_equity, p.equity());
                    }
                }
                proptest::prop_assert_eq!(p.max_drawdown, max_drawdown);
                let stored = crate::codec::encode_meta(&p).unwrap();
                proptest::prop_assert_eq!(&crate::codec::decode_meta::<Portfolio>(&stored).unwrap(), &p);
            }
        }
    }
}
