//! Built-in rule strategies (the `rules` decision provider) and their indicators.
//!
//! Indicators update in O(1) per bar. The SMA keeps an exact `Decimal` running sum, so
//! its crossings are exact; EMA and RSI use `f64` (allowed for indicators) and only
//! their crossing decisions, never their values, reach an event. IEEE-754 basic
//! arithmetic in a fixed order gives the same bits on every machine.

use std::collections::VecDeque;
use std::sync::Arc;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::decision::{hold, DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo};
use crate::event::{Action, Decision, ParseStatus, Text};

/// Simple moving average over the last `len` values, exact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sma {
    len: usize,
    #[serde(with = "crate::codec::decimal_deque")]
    window: VecDeque<Decimal>,
    #[serde(with = "crate::codec::decimal")]
    sum: Decimal,
}

/// Values a new SMA reserves room for; a longer window grows as values arrive, so a
/// period from configuration never allocates up front.
const SMA_RESERVE: usize = 4096;

/// The running sum of an SMA's window left the range of `Decimal` (values near 7.9e28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SumOverflow;

impl Sma {
    /// An SMA of `len` values (`len >= 1`).
    pub fn new(len: usize) -> Self {
        let len = len.max(1);
        Sma { len, window: VecDeque::with_capacity(len.min(SMA_RESERVE) + 1), sum: Decimal::ZERO }
    }

    /// Adds a value; returns the running sum once `len` values are in.
    ///
    /// # Errors
    /// [`SumOverflow`] when the sum leaves `Decimal`'s range; the SMA then starts over
    /// (empty), so it warms up again from the next value.
    pub fn push(&mut self, value: Decimal) -> Result<Option<Decimal>, SumOverflow> {
        let Some(mut sum) = self.sum.checked_add(value) else {
            (self.window, self.sum) = (VecDeque::new(), Decimal::ZERO);
            return Err(SumOverflow);
        };
        self.window.push_back(value);
        if self.window.len() > self.len {
            if let Some(old) = self.window.pop_front() {
                let Some(rest) = sum.checked_sub(old) else {
                    (self.window, self.sum) = (VecDeque::new(), Decimal::ZERO);
                    return Err(SumOverflow);
                };
                sum = rest;
            }
        }
        self.sum = sum;
        Ok((self.window.len() == self.len).then_some(self.sum))
    }
}

/// Exponential moving average, `alpha = 2 / (len + 1)`, seeded with the SMA of the
/// first `len` values (the common TA-Lib convention).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ema {
    len: usize,
    alpha: f64,
    seen: usize,
    seed_sum: f64,
    value: f64,
}

impl Ema {
    /// An EMA of period `len` (`len >= 1`).
    pub fn new(len: usize) -> Self {
        let len = len.max(1);
        Ema { len, alpha: 2.0 / (len as f64 + 1.0), seen: 0, seed_sum: 0.0, value: 0.0 }
    }

    /// Adds a value; returns the EMA once `len` values are in.
    pub fn push(&mut self, x: f64) -> Option<f64> {
        self.seen += 1;
        if self.seen < self.len {
            self.seed_sum += x;
            return None;
        }
        if self.seen == self.len {
            self.value = (self.seed_sum + x) / self.len as f64;
        } else {
            self.value += self.alpha * (x - self.value);
        }
        Some(self.value)
    }
}

/// Relative strength index with Wilder's smoothing (Wilder, *New Concepts in Technical
/// Trading Systems*, 1978): average gain and loss seeded with simple means over `len`
/// changes, then `avg = (avg * (len - 1) + x) / len`; `RSI = 100 - 100 / (1 + gain/loss)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rsi {
    len: usize,
    prev: Option<f64>,
    changes: usize,
    avg_gain: f64,
    avg_loss: f64,
}

impl Rsi {
    /// An RSI of period `len` (`len >= 1`).
    pub fn new(len: usize) -> Self {
        Rsi { len: len.max(1), prev: None, changes: 0, avg_gain: 0.0, avg_loss: 0.0 }
    }

    /// Adds a close; returns the RSI (0..100) once `len` changes are in.
    pub fn push(&mut self, x: f64) -> Option<f64> {
        let prev = self.prev.replace(x)?;
        let (gain, loss) = if x > prev { (x - prev, 0.0) } else { (0.0, prev - x) };
        self.changes += 1;
        let n = self.len as f64;
        if self.changes <= self.len {
            self.avg_gain += gain / n;
            self.avg_loss += loss / n;
            if self.changes < self.len {
                return None;
            }
        } else {
            self.avg_gain = (self.avg_gain * (n - 1.0) + gain) / n;
            self.avg_loss = (self.avg_loss * (n - 1.0) + loss) / n;
        }
        Some(if self.avg_loss == 0.0 { 100.0 } else { 100.0 - 100.0 / (1.0 + self.avg_gain / self.avg_loss) })
    }
}

/// Where a fast line stands against a slow one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Stance {
    Below,
    Equal,
    Above,
}

/// A cross between two lines, strictly as backtesting.py 0.6.6's `lib.crossover`
/// (`backtesting/lib.py`: `series1[-2] < series2[-2] and series1[-1] > series2[-1]`):
/// "fast crosses above slow" means fast < slow on the previous bar and fast > slow on
/// this one. A path through an exact tie (below, equal, above) is no cross, neither
/// when it reaches the tie nor when it leaves it; nor is the first bar both lines are
/// known (there is no previous bar to compare).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct CrossDetector {
    previous: Option<Stance>,
}

impl CrossDetector {
    fn update(&mut self, now: Stance) -> Option<Action> {
        let crossed = match (self.previous, now) {
            (Some(Stance::Below), Stance::Above) => Some(Action::Long),
            (Some(Stance::Above), Stance::Below) => Some(Action::Short),
            _ => None,
        };
        self.previous = Some(now);
        crossed
    }
}

/// Settings shared by the rule strategies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSizing {
    /// Fraction of equity per entry, 0 to 1.
    pub size_pct: Decimal,
    /// Whether a bearish signal opens a short (`true`) or only closes a long (`false`).
    pub allow_short: bool,
}

/// Reasons are shared strings made once, so deciding allocates nothing.
#[derive(Debug, Clone)]
struct Reasons {
    up: Text,
    down: Text,
    down_close: Text,
    hold: Text,
    warmup: Text,
    empty: Text,
}

impl Reasons {
    fn new(up: &str, down: &str) -> Self {
        Reasons {
            up: Arc::from(up),
            down: Arc::from(down),
            down_close: Arc::from(format!("{down}; shorts off, closing").as_str()),
            hold: Arc::from("no signal"),
            warmup: Arc::from(crate::decision::WARMING_UP),
            empty: Arc::from(""),
        }
    }
}

fn answer(decision: Decision, empty: &Text) -> ProviderAnswer {
    ProviderAnswer::unasked(decision, empty.clone())
}

fn signal(action: Action, sizing: &RuleSizing, reasons: &Reasons) -> Decision {
    match action {
        Action::Long => Decision::new(action, sizing.size_pct, Decimal::ONE, reasons.up.clone()),
        Action::Short if sizing.allow_short => {
            Decision::new(action, sizing.size_pct, Decimal::ONE, reasons.down.clone())
        }
        _ => Decision::new(Action::Close, Decimal::ZERO, Decimal::ONE, reasons.down_close.clone()),
    }
}

/// SMA crossover, backtesting.py's README `SmaCross`: long when the fast SMA of closes
/// crosses above the slow one; short (or close, without shorts) when it crosses below;
/// hold otherwise. Crosses are strict, as `lib.crossover` (a path through a tie is no
/// cross), and the engine makes every `long`/`short` an exclusive order (it closes the
/// position held, on either side, before opening), as `position.close()` then
/// `buy()`/`sell()` there.
#[derive(Debug, Clone)]
pub struct SmaCross {
    fast_len: usize,
    slow_len: usize,
    fast: Sma,
    slow: Sma,
    cross: CrossDetector,
    sizing: RuleSizing,
    reasons: Reasons,
}

impl SmaCross {
    /// Fast and slow SMA periods in bars (`fast < slow` is the usual choice).
    pub fn new(fast: usize, slow: usize, sizing: RuleSizing) -> Self {
        SmaCross {
            fast_len: fast,
            slow_len: slow,
            fast: Sma::new(fast),
            slow: Sma::new(slow),
            cross: CrossDetector::default(),
            sizing,
            reasons: Reasons::new("fast SMA crossed above slow SMA", "fast SMA crossed below slow SMA"),
        }
    }
}

impl DecisionProvider for SmaCross {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            provider: Arc::from("rules"),
            model: Arc::from("sma-cross"),
            params: Arc::from(
                format!(
                    "fast={} short={} size_pct={} slow={}",
                    self.fast_len, self.sizing.allow_short, self.sizing.size_pct, self.slow_len
                )
                .as_str(),
            ),
        }
    }

    fn decide(&mut self, input: &DecisionInput<'_>) -> ProviderAnswer {
        let close = input.bar.map_or(input.price, |bar| bar.close);
        let (fast, slow) = match (self.fast.push(close), self.slow.push(close)) {
            (Ok(fast), Ok(slow)) => (fast, slow),
            _ => {
                // Both start over, so that they stay in step.
                (self.fast, self.slow) = (Sma::new(self.fast_len), Sma::new(self.slow_len));
                let why = format!("sma-cross: close {close} overflows the moving sums; warming up again");
                return ProviderAnswer {
                    parse_status: ParseStatus::ProviderError(Arc::from(why.as_str())),
                    ..answer(hold(self.reasons.warmup.clone()), &self.reasons.empty)
                };
            }
        };
        let decision = match (fast, slow) {
            (Some(fast_sum), Some(slow_sum)) => {
                // Compare means without dividing: fast_sum/f vs slow_sum/s <=> fast_sum*s vs
                // slow_sum*f; past Decimal's range, compare the divided means instead.
                let (f, s) = (Decimal::from(self.fast_len as u64), Decimal::from(self.slow_len as u64));
                let (lhs, rhs) = match (fast_sum.checked_mul(s), slow_sum.checked_mul(f)) {
                    (Some(lhs), Some(rhs)) => (lhs, rhs),
                    _ => (fast_sum / f, slow_sum / s),
                };
                let stance = match lhs.cmp(&rhs) {
                    std::cmp::Ordering::Less => Stance::Below,
                    std::cmp::Ordering::Equal => Stance::Equal,
                    std::cmp::Ordering::Greater => Stance::Above,
                };
                match self.cross.update(stance) {
                    Some(action) => signal(action, &self.sizing, &self.reasons),
                    None => hold(self.reasons.hold.clone()),
                }
            }
            _ => hold(self.reasons.warmup.clone()),
        };
        answer(decision, &self.reasons.empty)
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        codec::encode_meta(&(&self.fast, &self.slow, &self.cross)).ok()
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), CodecError> {
        let (fast, slow, cross): (Sma, Sma, CrossDetector) = codec::decode_meta(state)?;
        if (fast.len, slow.len) != (self.fast_len, self.slow_len) {
            return Err(CodecError::Body(format!(
                "sma-cross state for fast={} slow={}, configured fast={} slow={}",
                fast.len, slow.len, self.fast_len, self.slow_len
            )));
        }
        (self.fast, self.slow, self.cross) = (fast, slow, cross);
        Ok(())
    }
}

/// EMA trend with an RSI filter: long when EMA(fast) crosses above EMA(slow) while
/// RSI(rsi) is below `overbought`; short (or close) when it crosses below while RSI is
/// above `oversold`. Defaults 20/50/14 with 70/30.
#[derive(Debug, Clone)]
pub struct EmaRsi {
    params: (usize, usize, usize, f64, f64),
    fast: Ema,
    slow: Ema,
    rsi: Rsi,
    cross: CrossDetector,
    sizing: RuleSizing,
    reasons: Reasons,
}

impl EmaRsi {
    /// EMA periods, RSI period, overbought and oversold RSI levels (0..100).
    pub fn new(fast: usize, slow: usize, rsi: usize, overbought: f64, oversold: f64, sizing: RuleSizing) -> Self {
        EmaRsi {
            params: (fast, slow, rsi, overbought, oversold),
            fast: Ema::new(fast),
            slow: Ema::new(slow),
            rsi: Rsi::new(rsi),
            cross: CrossDetector::default(),
            sizing,
            reasons: Reasons::new(
                "fast EMA crossed above slow EMA, RSI not overbought",
                "fast EMA crossed below slow EMA, RSI not oversold",
            ),
        }
    }
}

impl DecisionProvider for EmaRsi {
    fn info(&self) -> ProviderInfo {
        let (fast, slow, rsi, overbought, oversold) = self.params;
        ProviderInfo {
            provider: Arc::from("rules"),
            model: Arc::from("ema-rsi"),
            params: Arc::from(
                format!(
                    "fast={fast} overbought={overbought} oversold={oversold} rsi={rsi} short={} size_pct={} slow={slow}",
                    self.sizing.allow_short, self.sizing.size_pct
                )
                .as_str(),
            ),
        }
    }

    fn decide(&mut self, input: &DecisionInput<'_>) -> ProviderAnswer {
        let close = input.bar.map_or(input.price, |bar| bar.close);
        let x = close.to_f64().unwrap_or(f64::NAN);
        let (fast, slow, rsi) = (self.fast.push(x), self.slow.push(x), self.rsi.push(x));
        let (_, _, _, overbought, oversold) = self.params;
        let decision = match (fast, slow, rsi) {
            (Some(fast), Some(slow), Some(rsi)) => {
                let stance = if fast < slow {
                    Stance::Below
                } else if fast > slow {
                    Stance::Above
                } else {
                    Stance::Equal
                };
                match self.cross.update(stance) {
                    Some(Action::Long) if rsi < overbought => signal(Action::Long, &self.sizing, &self.reasons),
                    Some(Action::Short) if rsi > oversold => signal(Action::Short, &self.sizing, &self.reasons),
                    _ => hold(self.reasons.hold.clone()),
                }
            }
            _ => hold(self.reasons.warmup.clone()),
        };
        answer(decision, &self.reasons.empty)
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        codec::encode_meta(&(&self.fast, &self.slow, &self.rsi, &self.cross)).ok()
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), CodecError> {
        let (fast, slow, rsi, cross): (Ema, Ema, Rsi, CrossDetector) = codec::decode_meta(state)?;
        let (want_fast, want_slow, want_rsi, _, _) = self.params;
        if (fast.len, slow.len, rsi.len) != (want_fast.max(1), want_slow.max(1), want_rsi.max(1)) {
            return Err(CodecError::Body("ema-rsi state for other periods than configured".into()));
        }
        (self.fast, self.slow, self.rsi, self.cross) = (fast, slow, rsi, cross);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::InstrumentId;
    use crate::time::TimestampNs;
    use rust_decimal_macros::dec;

    fn run(strategy: &mut dyn DecisionProvider, closes: &[i64]) -> Vec<Action> {
        let spy = InstrumentId::new("SPY").unwrap();
        closes
            .iter()
            .map(|&c| {
                let input = DecisionInput {
                    ts: TimestampNs::from_nanos(0),
                    instrument: &spy,
                    price: Decimal::from(c),
                    bar: None,
                    position_qty: Decimal::ZERO,
                    quote: None,
                    equity: Decimal::ZERO,
                    context: None,
                };
                strategy.decide(&input).decision.action
            })
            .collect()
    }

    #[test]
    fn sma_is_exact_over_its_window() {
        let mut sma = Sma::new(3);
        assert_eq!(sma.push(dec!(1)), Ok(None));
        assert_eq!(sma.push(dec!(2)), Ok(None));
        assert_eq!(sma.push(dec!(3)), Ok(Some(dec!(6))));
        assert_eq!(sma.push(dec!(10)), Ok(Some(dec!(15))));
        // TC: a sum past Decimal's range starts the SMA over, never panics.
        assert_eq!(sma.push(Decimal::MAX), Err(SumOverflow));
        assert_eq!(sma.push(dec!(1)), Ok(None));
    }

    #[test]
    fn sma_cross_signals_only_on_strict_crossings() {
        use Action::*;
        let sizing = || RuleSizing { size_pct: dec!(1), allow_short: true };
        // fast = SMA(1) (the close), slow = SMA(2). Stances from the second close on.
        // TC0: closes 5, 4 (below), 6 (above: cross up), 7 (above), 5 (below: cross down).
        assert_eq!(run(&mut SmaCross::new(1, 2, sizing()), &[5, 4, 6, 7, 5]), [Hold, Hold, Long, Hold, Short]);
        // TC1: through an exact tie: 5, 4 (below), 6 (above: up), 6 (equal), 5 (below): the
        // tie is no cross, and leaving it below is none either (lib.crossover compares
        // only the previous bar, which was equal).
        assert_eq!(run(&mut SmaCross::new(1, 2, sizing()), &[5, 4, 6, 6, 5]), [Hold, Hold, Long, Hold, Hold]);
        // TC2: below, equal, above is no cross up either: 5, 4 (4 < 4.5: below), 4 (4 = 4:
        // equal), 5 (5 > 4.5: above). The rule before issue 9 kept the last strict stance
        // (below) through the tie and made this a cross.
        assert_eq!(run(&mut SmaCross::new(1, 2, sizing()), &[5, 4, 4, 5]), [Hold, Hold, Hold, Hold]);
        // TC3: the first bar with both lines known is no cross.
        assert_eq!(run(&mut SmaCross::new(1, 2, sizing()), &[4, 6]), [Hold, Hold]);
    }

    #[test]
    fn sma_cross_without_shorts_closes_instead() {
        let sizing = RuleSizing { size_pct: dec!(1), allow_short: false };
        let mut s = SmaCross::new(1, 2, sizing);
        assert_eq!(run(&mut s, &[5, 4, 6, 5])[3], Action::Close);
    }

    #[test]
    fn rsi_matches_wilder_on_a_rising_then_falling_series() {
        let mut rsi = Rsi::new(2);
        assert_eq!(rsi.push(1.0), None);
        assert_eq!(rsi.push(2.0), None);
        assert_eq!(rsi.push(3.0), Some(100.0)); // only gains
                                                // gain 0, loss 1: avg_gain = (1*1+0)/2 = 0.5, avg_loss = (0*1+1)/2 = 0.5 -> 50.
        assert_eq!(rsi.push(2.0), Some(50.0));
    }

    #[test]
    fn ema_seeds_with_the_sma() {
        let mut ema = Ema::new(3);
        assert_eq!(ema.push(1.0), None);
        assert_eq!(ema.push(2.0), None);
        assert_eq!(ema.push(3.0), Some(2.0));
        assert_eq!(ema.push(6.0), Some(4.0)); // 2 + 0.5 * (6 - 2)
    }
}
