//! The performance report of one run: a fold of its events into the portfolio, the
//! equity curve (marked at every tick) and round-trip trades, then the statistics.
//!
//! Money is exact (`Decimal`); ratios are `f64`, computed for display only. Formulas
//! follow backtesting.py's `compute_stats` (`backtesting/_stats.py`) where it defines
//! one, with two documented differences: annualized return is the CAGR over the run's
//! calendar duration, and periods per year are the run's ticks per calendar year
//! (so daily bars give about 252, 1-minute crypto bars about 525,600).

use std::collections::BTreeMap;

use ledger_core::event::{Envelope, Payload};
use ledger_core::ids::{InstrumentId, RunId};
use ledger_core::portfolio::Portfolio;
use ledger_core::time::{TimestampNs, NANOS_PER_DAY};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

/// The fold state of one run.
#[derive(Debug, Clone)]
pub struct RunFold {
    portfolio: Portfolio,
    equity: Vec<(TimestampNs, Decimal)>,
    exposed_ticks: u64,
    first_price: Option<Decimal>,
    last_price: Option<Decimal>,
    open_trades: BTreeMap<InstrumentId, OpenTrade>,
    trades: Vec<ClosedTrade>,
    run_id: Option<RunId>,
    started: Option<TimestampNs>,
}

#[derive(Debug, Clone)]
struct OpenTrade {
    entry_notional: Decimal,
    realized_at_entry: Decimal,
    fees_at_entry: Decimal,
}

/// One round trip: from flat to flat (a reversal closes one and opens another).
#[derive(Debug, Clone, Serialize)]
pub struct ClosedTrade {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Net P&L, account currency, after the fees of both legs.
    pub pnl: Decimal,
    /// Net P&L over the entry notional.
    pub return_pct: f64,
}

impl Default for RunFold {
    fn default() -> Self {
        RunFold {
            portfolio: Portfolio::new(Decimal::ZERO),
            equity: Vec::new(),
            exposed_ticks: 0,
            first_price: None,
            last_price: None,
            open_trades: BTreeMap::new(),
            trades: Vec::new(),
            run_id: None,
            started: None,
        }
    }
}

impl RunFold {
    /// Folds one event of the run.
    pub fn apply(&mut self, event: &Envelope) {
        match &event.payload {
            Payload::RunStarted(started) => {
                self.portfolio = Portfolio::new(started.starting_cash);
                self.run_id = Some(event.header.run_id);
                self.started = Some(event.header.ts_event);
            }
            Payload::MarketTick(tick) => {
                let price = tick.data.reference_price();
                self.first_price.get_or_insert(price);
                self.last_price = Some(price);
                self.portfolio.mark(&tick.instrument, price);
                if !self.portfolio.positions.is_empty() {
                    self.exposed_ticks += 1;
                }
                self.equity.push((event.header.ts_event, self.portfolio.equity()));
            }
            Payload::OrderFilled(fill) => {
                let before = self.portfolio.qty(&fill.instrument);
                self.portfolio.apply_fill(fill);
                let after = self.portfolio.qty(&fill.instrument);
                self.track_trade(fill.instrument, before, after, fill.price, fill.fee);
            }
            _ => {}
        }
    }

    /// Opens, closes or flips the round trip of `instrument` after a fill moved its
    /// position from `before` to `after` units. A trade's P&L is its realized P&L net of
    /// the fees of every fill in it, entry and exit; a single fill that flips the
    /// position counts its whole fee in the trade it closes.
    fn track_trade(&mut self, instrument: InstrumentId, before: Decimal, after: Decimal, price: Decimal, fee: Decimal) {
        let crossed = !before.is_zero() && (after.is_zero() || after.is_sign_positive() != before.is_sign_positive());
        if crossed {
            if let Some(open) = self.open_trades.remove(&instrument) {
                // Fees of the closing fill are counted whole in this trade.
                let pnl =
                    (self.portfolio.realized_pnl - open.realized_at_entry) - (self.portfolio.fees - open.fees_at_entry);
                let return_pct = ratio(pnl, open.entry_notional);
                self.trades.push(ClosedTrade { instrument, pnl, return_pct });
            }
        }
        if !after.is_zero() && (before.is_zero() || crossed) {
            // A fresh entry's own fee belongs to the trade it opens.
            let entry_fee = if crossed { Decimal::ZERO } else { fee };
            self.open_trades.insert(
                instrument,
                OpenTrade {
                    entry_notional: after.abs() * price,
                    realized_at_entry: self.portfolio.realized_pnl,
                    fees_at_entry: self.portfolio.fees - entry_fee,
                },
            );
        }
    }

    /// The statistics of the run so far.
    pub fn report(&self) -> Report {
        let start_equity = self.portfolio.starting_equity;
        let final_equity = self.portfolio.equity();
        let (start, end) = match (self.equity.first(), self.equity.last()) {
            (Some(first), Some(last)) => (first.0, last.0),
            _ => (self.started.unwrap_or_default(), self.started.unwrap_or_default()),
        };
        let years = (end.nanos() - start.nanos()) as f64 / (365.25 * NANOS_PER_DAY as f64);
        let ticks = self.equity.len();
        let periods_per_year = if years > 0.0 { ticks as f64 / years } else { 0.0 };
        let returns: Vec<f64> = self
            .equity
            .windows(2)
            .map(|w| if w[0].1.is_zero() { 0.0 } else { ratio(w[1].1 - w[0].1, w[0].1) })
            .collect();
        let total_return = ratio(final_equity - start_equity, start_equity);
        let ann_return = if years > 0.0 && start_equity > Decimal::ZERO {
            (to_f64(final_equity) / to_f64(start_equity)).powf(1.0 / years) - 1.0
        } else {
            0.0
        };
        let volatility = std_dev(&returns) * periods_per_year.sqrt();
        let downside = {
            let squares: Vec<f64> = returns.iter().map(|r| r.min(0.0).powi(2)).collect();
            (mean(&squares)).sqrt() * periods_per_year.sqrt()
        };
        let drawdowns = drawdown_episodes(&self.equity);
        let max_dd = drawdowns.iter().map(|d| d.depth).fold(0.0, f64::max);
        let wins: Vec<&ClosedTrade> = self.trades.iter().filter(|t| t.pnl > Decimal::ZERO).collect();
        let gross_win: Decimal = wins.iter().map(|t| t.pnl).sum();
        let gross_loss: Decimal = self.trades.iter().filter(|t| t.pnl < Decimal::ZERO).map(|t| -t.pnl).sum();
        let trade_returns: Vec<f64> = self.trades.iter().map(|t| t.return_pct).collect();
        let buy_and_hold = match (self.first_price, self.last_price) {
            (Some(first), Some(last)) => ratio(last - first, first),
            _ => 0.0,
        };
        Report {
            run_id: self.run_id.map_or(0, RunId::get),
            start: start.to_rfc3339(),
            end: end.to_rfc3339(),
            duration_days: round(years * 365.25, 2),
            ticks: ticks as u64,
            exposure_time_pct: pct(if ticks > 0 { self.exposed_ticks as f64 / ticks as f64 } else { 0.0 }),
            equity_start: start_equity,
            equity_final: final_equity.round_dp(2),
            equity_peak: self.portfolio.peak_equity.round_dp(2),
            cash: self.portfolio.cash.round_dp(2),
            open_positions: self
                .portfolio
                .positions
                .iter()
                .map(|(id, p)| OpenPosition {
                    instrument: *id,
                    qty: p.qty,
                    avg_price: p.avg_price,
                    mark: p.mark,
                    unrealized_pnl: p.unrealized().round_dp(2),
                })
                .collect(),
            return_pct: pct(total_return),
            buy_and_hold_return_pct: pct(buy_and_hold),
            return_ann_pct: pct(ann_return),
            volatility_ann_pct: pct(volatility),
            sharpe_ratio: round(if volatility > 0.0 { ann_return / volatility } else { 0.0 }, 3),
            sortino_ratio: round(if downside > 0.0 { ann_return / downside } else { 0.0 }, 3),
            calmar_ratio: round(if max_dd > 0.0 { ann_return / max_dd } else { 0.0 }, 3),
            max_drawdown_pct: pct(-max_dd),
            avg_drawdown_pct: pct(-mean(&drawdowns.iter().map(|d| d.depth).collect::<Vec<_>>())),
            max_drawdown_duration_days: round(drawdowns.iter().map(|d| d.days).fold(0.0, f64::max), 2),
            avg_drawdown_duration_days: round(mean(&drawdowns.iter().map(|d| d.days).collect::<Vec<_>>()), 2),
            trades: self.trades.len() as u64,
            win_rate_pct: pct(if self.trades.is_empty() { 0.0 } else { wins.len() as f64 / self.trades.len() as f64 }),
            best_trade_pct: pct(trade_returns.iter().copied().fold(f64::NAN, f64::max).max_or_zero()),
            worst_trade_pct: pct(trade_returns.iter().copied().fold(f64::NAN, f64::min).max_or_zero()),
            avg_trade_pct: pct(mean(&trade_returns)),
            profit_factor: round(if gross_loss > Decimal::ZERO { ratio(gross_win, gross_loss) } else { 0.0 }, 3),
            expectancy: if self.trades.is_empty() {
                Decimal::ZERO
            } else {
                (self.trades.iter().map(|t| t.pnl).sum::<Decimal>() / Decimal::from(self.trades.len() as u64))
                    .round_dp(2)
            },
            total_fees: self.portfolio.fees.round_dp(2),
        }
    }
}

trait NanToZero {
    fn max_or_zero(self) -> f64;
}

impl NanToZero for f64 {
    fn max_or_zero(self) -> f64 {
        if self.is_nan() {
            0.0
        } else {
            self
        }
    }
}

/// A position still open at the end of the run, marked to the last price.
#[derive(Debug, Clone, Serialize)]
pub struct OpenPosition {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Signed units.
    pub qty: Decimal,
    /// Entry price.
    pub avg_price: Decimal,
    /// Last mark.
    pub mark: Decimal,
    /// Unrealized P&L at the mark, account currency.
    pub unrealized_pnl: Decimal,
}

/// The statistics of one run. Percentages are in percent (12.5 = 12.5%), durations in
/// days, money in the account currency.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run.
    pub run_id: u64,
    /// First tick, RFC 3339.
    pub start: String,
    /// Last tick, RFC 3339.
    pub end: String,
    /// End minus start, days.
    pub duration_days: f64,
    /// Ticks folded.
    pub ticks: u64,
    /// Share of ticks with an open position.
    pub exposure_time_pct: f64,
    /// Starting equity.
    pub equity_start: Decimal,
    /// Final equity (cash plus positions marked to the last price).
    pub equity_final: Decimal,
    /// Highest equity.
    pub equity_peak: Decimal,
    /// Final cash.
    pub cash: Decimal,
    /// Positions open at the end (not counted as trades).
    pub open_positions: Vec<OpenPosition>,
    /// Final over starting equity, minus one.
    pub return_pct: f64,
    /// Last over first reference price, minus one.
    pub buy_and_hold_return_pct: f64,
    /// CAGR over the calendar duration.
    pub return_ann_pct: f64,
    /// Standard deviation of per-tick returns times sqrt(ticks per year).
    pub volatility_ann_pct: f64,
    /// Annualized return over annualized volatility (risk-free rate 0).
    pub sharpe_ratio: f64,
    /// Annualized return over annualized downside deviation.
    pub sortino_ratio: f64,
    /// Annualized return over maximum drawdown.
    pub calmar_ratio: f64,
    /// Deepest fall from a peak (negative).
    pub max_drawdown_pct: f64,
    /// Mean depth of the drawdown episodes (negative).
    pub avg_drawdown_pct: f64,
    /// Longest drawdown episode, peak to recovery (or to the end), days.
    pub max_drawdown_duration_days: f64,
    /// Mean drawdown episode length, days.
    pub avg_drawdown_duration_days: f64,
    /// Closed round trips.
    pub trades: u64,
    /// Share of trades with positive net P&L.
    pub win_rate_pct: f64,
    /// Best trade's net return.
    pub best_trade_pct: f64,
    /// Worst trade's net return.
    pub worst_trade_pct: f64,
    /// Mean trade net return.
    pub avg_trade_pct: f64,
    /// Gross winning P&L over gross losing P&L.
    pub profit_factor: f64,
    /// Mean net P&L per trade, account currency.
    pub expectancy: Decimal,
    /// Fees paid.
    pub total_fees: Decimal,
}

struct Episode {
    depth: f64,
    days: f64,
}

/// Drawdown episodes: from a peak until equity regains it (or the data ends).
fn drawdown_episodes(equity: &[(TimestampNs, Decimal)]) -> Vec<Episode> {
    let mut episodes = Vec::new();
    let Some(&(mut peak_ts, mut peak)) = equity.first() else {
        return episodes;
    };
    let mut depth = 0.0f64;
    for &(ts, value) in &equity[1..] {
        if value >= peak {
            if depth > 0.0 {
                episodes.push(Episode { depth, days: days_between(peak_ts, ts) });
            }
            (peak_ts, peak, depth) = (ts, value, 0.0);
        } else if peak > Decimal::ZERO {
            depth = depth.max(ratio(peak - value, peak));
        }
    }
    if depth > 0.0 {
        if let Some(&(end, _)) = equity.last() {
            episodes.push(Episode { depth, days: days_between(peak_ts, end) });
        }
    }
    episodes
}

fn days_between(a: TimestampNs, b: TimestampNs) -> f64 {
    (b.nanos() - a.nanos()) as f64 / NANOS_PER_DAY as f64
}

fn to_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

fn ratio(num: Decimal, den: Decimal) -> f64 {
    if den.is_zero() {
        0.0
    } else {
        to_f64(num / den)
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Sample standard deviation (n - 1).
fn std_dev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    let r = (x * scale).round() / scale;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

fn pct(x: f64) -> f64 {
    round(x * 100.0, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::chain::Hash32;
    use ledger_core::event::*;
    use ledger_core::ids::{ClientOrderId, CycleId, FillId, Seq};
    use rust_decimal_macros::dec;

    const DAY: i64 = 86_400_000_000_000;

    fn event(day: i64, payload: Payload) -> Envelope {
        Envelope {
            header: Header {
                seq: Seq::new(1),
                run_id: RunId::new(1),
                cycle_id: CycleId::new(0),
                causation_seq: None,
                ts_event: TimestampNs::from_nanos(day * DAY),
                ts_recorded: TimestampNs::from_nanos(day * DAY),
                schema_version: 1,
                prev_hash: Hash32::ZERO,
                hash: Hash32::ZERO,
            },
            payload,
        }
    }

    fn close(day: i64, price: Decimal) -> Envelope {
        let instrument = InstrumentId::new("SPY").unwrap();
        let bar = Bar { open: price, high: price, low: price, close: price, volume: None, interval_ns: DAY };
        event(day, Payload::MarketTick(MarketTick { instrument, data: TickData::Bar(bar) }))
    }

    fn fill(day: i64, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Envelope {
        event(
            day,
            Payload::OrderFilled(OrderFilled {
                client_order_id: ClientOrderId::new("o").unwrap(),
                fill_id: FillId::new(1),
                instrument: InstrumentId::new("SPY").unwrap(),
                side,
                qty,
                price,
                fee,
                liquidity: Liquidity::Taker,
            }),
        )
    }

    fn start(cash: Decimal) -> Envelope {
        event(
            0,
            Payload::RunStarted(RunStarted {
                mode: RunMode::Replay,
                config_hash: Hash32::ZERO,
                config: "{}".into(),
                software_version: "test".into(),
                venue: "paper".into(),
                instruments: Vec::new(),
                decision_provider: "test".into(),
                parent_run: None,
                data_source: "test".into(),
                starting_cash: cash,
                kill_switch_tripped: false,
            }),
        )
    }

    #[test]
    fn trades_fees_drawdown_and_exposure_by_hand() {
        // Cash 1,000. Day 0 close 100. Day 1: buy 5 @ 100 (fee 1), close 110. Day 2: close 90.
        // Day 3: sell 5 @ 120 (fee 1), close 120: a trade of +100 gross, +98 net on a
        // 500 entry. Day 4: buy 5 @ 120 (fee 1), close 100. Day 5: sell 5 @ 100 (fee 1),
        // close 100: a trade of -100 gross, -102 net.
        let events = [
            start(dec!(1000)),
            close(0, dec!(100)),
            fill(1, Side::Buy, dec!(5), dec!(100), dec!(1)),
            close(1, dec!(110)),
            close(2, dec!(90)),
            fill(3, Side::Sell, dec!(5), dec!(120), dec!(1)),
            close(3, dec!(120)),
            fill(4, Side::Buy, dec!(5), dec!(120), dec!(1)),
            close(4, dec!(100)),
            fill(5, Side::Sell, dec!(5), dec!(100), dec!(1)),
            close(5, dec!(100)),
        ];
        let mut fold = RunFold::default();
        for e in &events {
            fold.apply(e);
        }
        let r = fold.report();
        // Equity: day 0 1000, day 1 499 + 550 = 1049, day 2 949, day 3 1098, day 4 997, day 5 996.
        assert_eq!((r.equity_final, r.equity_peak, r.total_fees), (dec!(996), dec!(1098), dec!(4)));
        assert_eq!((r.trades, r.win_rate_pct), (2, 50.0));
        assert_eq!((r.best_trade_pct, r.worst_trade_pct), (19.6, -17.0)); // 98 / 500, -102 / 600
        assert_eq!(r.expectancy, dec!(-2)); // (98 - 102) / 2
        assert_eq!(r.profit_factor, 0.961); // 98 / 102
                                            // Drawdowns: 1049 -> 949 (9.533%), recovered on day 3; 1098 -> 996 (9.290%), open to the end.
        assert_eq!(r.max_drawdown_pct, -9.533);
        assert_eq!(r.avg_drawdown_pct, -9.411);
        assert_eq!(r.max_drawdown_duration_days, 2.0);
        // Positions were open at the marks of days 1, 2 and 4: 3 of 6 ticks.
        assert_eq!(r.exposure_time_pct, 50.0);
        assert_eq!(r.buy_and_hold_return_pct, 0.0);
        assert_eq!(r.return_pct, -0.4);
        assert!(r.open_positions.is_empty());
    }
}
