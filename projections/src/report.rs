//! The performance report of one run: a fold of its events into the portfolio, the
//! equity marked at every tick and round-trip trades, then the statistics.
//!
//! Money is exact (`Decimal`); ratios are `f64`, computed for display only. Formulas
//! follow backtesting.py's `compute_stats` (`backtesting/_stats.py`) where it defines
//! one, with two documented differences: annualized return is the CAGR over the run's
//! calendar duration, and periods per year are the run's ticks per calendar year
//! (so daily bars give about 252, 1-minute crypto bars about 525,600).

use std::collections::BTreeMap;

use ledger_core::codec::{decimal, decimal_opt};
use ledger_core::event::{EventRef, Payload};
use ledger_core::ids::{InstrumentId, RunId, Seq};
use ledger_core::portfolio::Portfolio;
use ledger_core::time::{TimestampNs, NANOS_PER_DAY};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Fold;

/// The report fold of one run. Everything the statistics need is accumulated as the
/// events go by (running sums, Welford's mean and variance, drawdown episodes closed as
/// they end), so memory does not grow with the run: a ten-million-bar backtest is
/// reported from a few hundred bytes of state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportFold {
    run: RunId,
    covers: Seq,
    started: Option<TimestampNs>,
    portfolio: Portfolio,
    ticks: u64,
    exposed_ticks: u64,
    first_tick: Option<TimestampNs>,
    last_tick: Option<TimestampNs>,
    #[serde(with = "decimal_opt")]
    first_price: Option<Decimal>,
    #[serde(with = "decimal_opt")]
    last_price: Option<Decimal>,
    /// Equity at the previous tick, for per-tick returns.
    last_equity: Option<f64>,
    returns: Moments,
    /// Mean of squared negative returns (downside deviation), as a running sum.
    downside_squares: f64,
    drawdowns: Drawdowns,
    open_trades: BTreeMap<InstrumentId, OpenTrade>,
    trades: TradeStats,
}

/// Count, mean and sum of squared deviations (Welford, *Technometrics* 4(3), 1962).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Sample standard deviation (n - 1), 0 below two values.
    fn std_dev(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / (self.n - 1) as f64).sqrt()
        }
    }
}

/// The equity peak of the current drawdown episode.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Peak {
    ts: TimestampNs,
    #[serde(with = "decimal")]
    equity: Decimal,
}

/// Drawdown episodes, from a peak until equity regains it: the current one, and sums
/// and maxima of those that ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Drawdowns {
    peak: Option<Peak>,
    depth: f64,
    ended: u64,
    depth_sum: f64,
    depth_max: f64,
    days_sum: f64,
    days_max: f64,
}

impl Drawdowns {
    fn push(&mut self, ts: TimestampNs, equity: Decimal) {
        let Some(Peak { equity: peak, .. }) = self.peak else {
            self.peak = Some(Peak { ts, equity });
            return;
        };
        if equity >= peak {
            self.close(ts);
            self.peak = Some(Peak { ts, equity });
        } else if peak > Decimal::ZERO {
            self.depth = self.depth.max(ratio(peak.saturating_sub(equity), peak));
        }
    }

    /// Ends the current episode (if any) at `ts`.
    fn close(&mut self, ts: TimestampNs) {
        if self.depth > 0.0 {
            let days = self.peak.map_or(0.0, |peak| days_between(peak.ts, ts));
            self.ended += 1;
            self.depth_sum += self.depth;
            self.depth_max = self.depth_max.max(self.depth);
            self.days_sum += days;
            self.days_max = self.days_max.max(days);
            self.depth = 0.0;
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenTrade {
    #[serde(with = "decimal")]
    entry_notional: Decimal,
    #[serde(with = "decimal")]
    realized_at_entry: Decimal,
    #[serde(with = "decimal")]
    fees_at_entry: Decimal,
}

/// Closed round trips, as sums and extremes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TradeStats {
    count: u64,
    wins: u64,
    #[serde(with = "decimal")]
    gross_win: Decimal,
    #[serde(with = "decimal")]
    gross_loss: Decimal,
    #[serde(with = "decimal")]
    pnl_sum: Decimal,
    return_sum: f64,
    best: Option<f64>,
    worst: Option<f64>,
}

impl ReportFold {
    /// The snapshot name of run `run`'s report fold (`1`: the layout of this state).
    pub fn snapshot_name(run: RunId) -> String {
        format!("report/1/{run}")
    }

    /// The report fold of run `run`; other runs' events are passed over.
    pub fn new(run: RunId) -> Self {
        ReportFold {
            run,
            covers: Seq::ZERO,
            started: None,
            portfolio: Portfolio::new(Decimal::ZERO),
            ticks: 0,
            exposed_ticks: 0,
            first_tick: None,
            last_tick: None,
            first_price: None,
            last_price: None,
            last_equity: None,
            returns: Moments::default(),
            downside_squares: 0.0,
            drawdowns: Drawdowns::default(),
            open_trades: BTreeMap::new(),
            trades: TradeStats::default(),
        }
    }

    /// The run's account so far.
    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    fn on_tick(&mut self, ts: TimestampNs, price: Decimal) {
        self.first_price.get_or_insert(price);
        self.last_price = Some(price);
        self.first_tick.get_or_insert(ts);
        self.last_tick = Some(ts);
        self.ticks += 1;
        if !self.portfolio.positions.is_empty() {
            self.exposed_ticks += 1;
        }
        let equity = self.portfolio.equity();
        let value = to_f64(equity);
        if let Some(previous) = self.last_equity {
            let r = if previous == 0.0 { 0.0 } else { (value - previous) / previous };
            self.returns.push(r);
            self.downside_squares += r.min(0.0).powi(2);
        }
        self.last_equity = Some(value);
        self.drawdowns.push(ts, equity);
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
                let pnl = (self.portfolio.realized_pnl.saturating_sub(open.realized_at_entry))
                    .saturating_sub(self.portfolio.fees.saturating_sub(open.fees_at_entry));
                let return_pct = ratio(pnl, open.entry_notional);
                let t = &mut self.trades;
                t.count += 1;
                t.pnl_sum = t.pnl_sum.saturating_add(pnl);
                t.return_sum += return_pct;
                if pnl > Decimal::ZERO {
                    t.wins += 1;
                    t.gross_win = t.gross_win.saturating_add(pnl);
                } else if pnl < Decimal::ZERO {
                    t.gross_loss = t.gross_loss.saturating_sub(pnl);
                }
                t.best = Some(t.best.map_or(return_pct, |b| b.max(return_pct)));
                t.worst = Some(t.worst.map_or(return_pct, |w| w.min(return_pct)));
            }
        }
        if !after.is_zero() && (before.is_zero() || crossed) {
            // A fresh entry's own fee belongs to the trade it opens.
            let entry_fee = if crossed { Decimal::ZERO } else { fee };
            self.open_trades.insert(
                instrument,
                OpenTrade {
                    entry_notional: after.abs().saturating_mul(price),
                    realized_at_entry: self.portfolio.realized_pnl,
                    fees_at_entry: self.portfolio.fees.saturating_sub(entry_fee),
                },
            );
        }
    }

    /// The statistics of the run so far.
    pub fn report(&self) -> Report {
        let start_equity = self.portfolio.starting_equity;
        let final_equity = self.portfolio.equity();
        let started = self.started.unwrap_or_default();
        let (start, end) = (self.first_tick.unwrap_or(started), self.last_tick.unwrap_or(started));
        let years = (end.nanos() - start.nanos()) as f64 / (365.25 * NANOS_PER_DAY as f64);
        let ticks = self.ticks;
        let periods_per_year = if years > 0.0 { ticks as f64 / years } else { 0.0 };
        let total_return = ratio(final_equity.saturating_sub(start_equity), start_equity);
        let ann_return = if years > 0.0 && start_equity > Decimal::ZERO {
            (to_f64(final_equity) / to_f64(start_equity)).powf(1.0 / years) - 1.0
        } else {
            0.0
        };
        let volatility = self.returns.std_dev() * periods_per_year.sqrt();
        let downside = if self.returns.n > 0 {
            (self.downside_squares / self.returns.n as f64).sqrt() * periods_per_year.sqrt()
        } else {
            0.0
        };
        // The episode still open at the end counts, as of the last tick.
        let mut drawdowns = self.drawdowns.clone();
        drawdowns.close(end);
        let max_dd = drawdowns.depth_max;
        let episodes = drawdowns.ended as f64;
        let mean_of = |sum: f64| if episodes > 0.0 { sum / episodes } else { 0.0 };
        let t = &self.trades;
        let per_trade = |sum: f64| if t.count > 0 { sum / t.count as f64 } else { 0.0 };
        let buy_and_hold = match (self.first_price, self.last_price) {
            (Some(first), Some(last)) => ratio(last.saturating_sub(first), first),
            _ => 0.0,
        };
        Report {
            run_id: self.run.get(),
            start: start.to_rfc3339(),
            end: end.to_rfc3339(),
            duration_days: round(years * 365.25, 2),
            ticks,
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
            avg_drawdown_pct: pct(-mean_of(drawdowns.depth_sum)),
            max_drawdown_duration_days: round(drawdowns.days_max, 2),
            avg_drawdown_duration_days: round(mean_of(drawdowns.days_sum), 2),
            trades: t.count,
            win_rate_pct: pct(per_trade(t.wins as f64)),
            best_trade_pct: pct(t.best.unwrap_or(0.0)),
            worst_trade_pct: pct(t.worst.unwrap_or(0.0)),
            avg_trade_pct: pct(per_trade(t.return_sum)),
            profit_factor: round(if t.gross_loss > Decimal::ZERO { ratio(t.gross_win, t.gross_loss) } else { 0.0 }, 3),
            expectancy: if t.count == 0 { Decimal::ZERO } else { (t.pnl_sum / Decimal::from(t.count)).round_dp(2) },
            total_fees: self.portfolio.fees.round_dp(2),
        }
    }
}

impl Fold for ReportFold {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.covers = event.seq;
        if event.run_id != self.run {
            return;
        }
        match event.payload {
            Payload::RunStarted(started) => {
                self.portfolio = Portfolio::new(started.starting_cash);
                self.started = Some(event.ts_event);
            }
            // A change the account cannot represent is not in a ledger the engine wrote
            // (it stops the run instead); in any other it is passed over.
            Payload::MarketTick(tick) if self.portfolio.mark(&tick.instrument, tick.data.reference_price()).is_ok() => {
                self.on_tick(event.ts_event, tick.data.reference_price());
            }
            Payload::OrderFilled(fill) => {
                let before = self.portfolio.qty(&fill.instrument);
                if self.portfolio.apply_fill(fill).is_ok() {
                    let after = self.portfolio.qty(&fill.instrument);
                    self.track_trade(fill.instrument, before, after, fill.price, fill.fee);
                }
            }
            _ => {}
        }
    }

    fn covers(&self) -> Seq {
        self.covers
    }

    fn snapshot(&self) -> Result<Option<(String, Vec<u8>)>, ledger_core::codec::CodecError> {
        crate::snapshot_of(ReportFold::snapshot_name(self.run), self)
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

fn days_between(a: TimestampNs, b: TimestampNs) -> f64 {
    (b.nanos() - a.nanos()) as f64 / NANOS_PER_DAY as f64
}

fn to_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// `num / den` as a float for display: exact where the quotient fits a `Decimal`, in
/// floating point beyond (never a panic), 0 for a zero denominator.
fn ratio(num: Decimal, den: Decimal) -> f64 {
    if den.is_zero() {
        0.0
    } else {
        num.checked_div(den).map_or_else(|| to_f64(num) / to_f64(den), to_f64)
    }
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
    use ledger_core::ids::{ClientOrderId, CycleId, FillId};
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
                provider: "test".into(),
                model: "test".into(),
                params: "".into(),
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
        let mut fold = ReportFold::new(RunId::new(1));
        for (seq, e) in events.iter().enumerate() {
            let mut e = e.clone();
            e.header.seq = Seq::new(seq as u64 + 1);
            fold.apply(&e.as_ref());
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
