//! The performance report of one run: a fold of its events into the portfolio, the
//! equity curve (one point per tick) and the round-trip trades, then the statistics.
//!
//! # Definitions
//! The statistics are backtesting.py 0.6.6's, under its names (`compute_stats` in
//! `backtesting/_stats.py`; the table of `ledger report` prints those names, the JSON
//! the snake-case keys of [`Report`]). Each field of [`Report`] cites the formula it
//! follows. Where this report keeps a different definition beside them, it has its own
//! name (`ticks`, `total_fees`, `profit_factor_pnl`, `avg_trade_pnl`).
//!
//! The equity curve is the account's equity after each tick (its fills included, marked
//! at the tick's price: a bar's close), as backtesting.py records `equity[i]` after the
//! broker's turn on bar `i`. Fills after the last tick (`close_at_end`) count in its
//! point, as backtesting.py's `finalize_trades` rewrites the last one.
//!
//! Annualized figures never come from per-tick returns: the equity is resampled to days
//! (weeks, months or years for data that comes at that pace), as backtesting.py does
//! (`equity.resample(freq).last().dropna().pct_change()`), so an intraday run of any
//! tick rate is annualized from its daily returns.
//!
//! # Memory
//! Everything is accumulated as the events go by (running sums, Welford's mean and
//! variance, co-moments, drawdown episodes closed as they end, one open period per
//! resampling, the last 100 tick times for the data's period), so memory does not grow
//! with the run: a ten-million-bar backtest is reported from under 2 KB of state.
//!
//! Money is exact (`Decimal`); ratios are `f64` (backtesting.py computes them in floating
//! point too). A statistic backtesting.py leaves undefined (`NaN`: no trades, fewer than
//! two returns, a zero denominator) is `NaN` here, `null` in JSON.

use std::collections::{BTreeMap, VecDeque};

use ledger_core::codec::{decimal, decimal_opt};
use ledger_core::decision::WARMING_UP;
use ledger_core::event::{EventRef, Payload};
use ledger_core::ids::{InstrumentId, RunId, Seq};
use ledger_core::portfolio::Portfolio;
use ledger_core::time::{TimestampNs, NANOS_PER_DAY, NANOS_PER_SECOND};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Fold;

/// The report fold of one run. See the module docs for what it keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportFold {
    run: RunId,
    covers: Seq,
    started: Option<TimestampNs>,
    portfolio: Portfolio,
    /// The instrument of the run's first tick: buy and hold, beta and the data's period
    /// are measured on it (backtesting.py trades one instrument).
    primary: Option<InstrumentId>,
    /// Whether the cycle being folded is one of a tick of `primary`.
    primary_cycle: bool,
    ticks: u64,
    first_tick: Option<TimestampNs>,
    last_tick: Option<TimestampNs>,
    #[serde(with = "decimal_opt")]
    first_price: Option<Decimal>,
    #[serde(with = "decimal_opt")]
    last_price: Option<Decimal>,
    /// The primary's price at the first decision after the strategy's warm-up.
    #[serde(with = "decimal_opt")]
    hold_from_price: Option<Decimal>,
    /// The last tick's point of the equity curve, open to the fills at its time.
    pending: Option<Point>,
    curve: Curve,
    open_trades: BTreeMap<InstrumentId, OpenTrade>,
    trades: TradeStats,
    exposure: Exposure,
}

/// One point of the equity curve: the equity after a tick.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Point {
    /// The tick's index in the run, from 0.
    index: u64,
    ts: TimestampNs,
    #[serde(with = "decimal")]
    equity: Decimal,
    /// The primary instrument's price, when the tick is one of it.
    price: Option<f64>,
}

/// The equity curve, accumulated point by point.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Curve {
    /// Running maximum of the equity (`np.maximum.accumulate(equity)`).
    #[serde(with = "decimal_opt")]
    peak: Option<Decimal>,
    /// `peak` as a float, for each point's drawdown (converted once per new maximum; not
    /// stored: converted again after a load).
    #[serde(skip)]
    peak_value: Option<f64>,
    /// Deepest drawdown of any point, fraction.
    max_drawdown: f64,
    drawdowns: Drawdowns,
    /// Resampled returns by calendar day, week (Monday to Sunday), month and year.
    periods: [Resample; 4],
    /// The cached UTC day of the last point and its period keys.
    day: Option<(i64, [i64; 4])>,
    data_period: DataPeriod,
    /// Log returns of the equity against the primary's, point to point on its ticks.
    beta: CoMoments,
    /// Equity and price at the primary's previous tick.
    previous: Option<(f64, f64)>,
}

/// Drawdown episodes as backtesting.py delimits them
/// (`_stats.compute_drawdown_duration_peaks`): from a point at the running maximum
/// (drawdown 0) to the next one, or to the last point; an episode needs at least one
/// point between its ends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Drawdowns {
    /// Index and time of the last point at the running maximum.
    last_top: Option<(u64, TimestampNs)>,
    /// Deepest drawdown since `last_top`, fraction.
    depth: f64,
    episodes: u64,
    depth_sum: f64,
    duration_sum_ns: f64,
    duration_max_ns: i64,
}

impl Drawdowns {
    fn end_episode(&mut self, to: TimestampNs) {
        if let Some((_, from)) = self.last_top {
            let duration = to.nanos().saturating_sub(from.nanos());
            self.episodes += 1;
            self.depth_sum += self.depth;
            self.duration_sum_ns += duration as f64;
            self.duration_max_ns = self.duration_max_ns.max(duration);
        }
    }
}

/// Returns of the equity resampled to one period (the last equity of each period that
/// has a point, to the next one's): count, geometric and arithmetic moments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Resample {
    /// The current period's key and its last equity so far.
    current: Option<(i64, f64)>,
    /// The previous period's last equity.
    previous: Option<f64>,
    returns: Moments,
    /// Sum of `ln(1 + r)`, and whether some `1 + r` was not positive.
    log_sum: f64,
    not_positive: bool,
    /// Sum of `min(r, 0)^2`.
    downside_squares: f64,
}

impl Resample {
    fn push(&mut self, key: i64, equity: f64) {
        match self.current {
            Some((current, _)) if current == key => self.current = Some((key, equity)),
            Some(_) => {
                self.close();
                self.current = Some((key, equity));
            }
            None => self.current = Some((key, equity)),
        }
    }

    /// Ends the current period: its return on the previous one (pandas `pct_change`:
    /// `x / x.shift(1) - 1`).
    fn close(&mut self) {
        let Some((_, last)) = self.current.take() else { return };
        if let Some(previous) = self.previous {
            let r = last / previous - 1.0;
            self.returns.push(r);
            if 1.0 + r > 0.0 {
                self.log_sum += (1.0 + r).ln();
            } else {
                self.not_positive = true;
            }
            self.downside_squares += r.min(0.0).powi(2);
        }
        self.previous = Some(last);
    }

    /// backtesting.py's `geometric_mean(returns)`: `exp(mean(ln(1 + r))) - 1`, 0 when
    /// some `1 + r <= 0`, NaN with no returns.
    fn geometric_mean(&self) -> f64 {
        geometric_mean(self.returns.n, self.log_sum, self.not_positive)
    }
}

/// The data's period and calendar, as backtesting.py reads them from its index: the
/// median spacing of the last 100 times (`_util._data_period`) and the share of times
/// on weekends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DataPeriod {
    recent: VecDeque<i64>,
    count: u64,
    weekend: u64,
}

/// Times `_data_period` takes the median spacing of.
const PERIOD_WINDOW: usize = 100;

impl DataPeriod {
    fn push(&mut self, ts: TimestampNs) {
        if self.recent.len() == PERIOD_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(ts.nanos());
        self.count += 1;
        // Monday is 0 (pandas `dayofweek`); 1970-01-01 was a Thursday (3).
        if (ts.utc_day() + 3).rem_euclid(7) >= 5 {
            self.weekend += 1;
        }
    }

    /// The median of the spacings of the last 100 times, ns (pandas `median`: the mean of
    /// the two middle values for an even count); `None` below two times.
    fn median_ns(&self) -> Option<i64> {
        let mut gaps: Vec<i64> = self.recent.iter().zip(self.recent.iter().skip(1)).map(|(a, b)| b - a).collect();
        if gaps.is_empty() {
            return None;
        }
        gaps.sort_unstable();
        let mid = gaps.len() / 2;
        Some(if gaps.len() % 2 == 1 {
            gaps[mid]
        } else {
            ((i128::from(gaps[mid - 1]) + i128::from(gaps[mid])) / 2) as i64
        })
    }
}

/// The resampling backtesting.py chooses from the data's period, and the periods per
/// year it annualizes with (`compute_stats`: 52 for weekly data, 12 for monthly, 1 for
/// yearly, else days: 365 when more than 60% of the 2/7 share of weekend days is there,
/// else 252).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frequency {
    Day,
    Week,
    Month,
    Year,
}

impl Frequency {
    fn index(self) -> usize {
        self as usize
    }
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

    /// Sample variance (n - 1, as pandas' `var` and `std`); NaN below two values.
    fn variance(&self) -> f64 {
        if self.n < 2 {
            f64::NAN
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }

    /// Mean; NaN with no values.
    fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.mean
        }
    }
}

/// Co-moments of two series (Welford's update for the covariance): `beta =
/// cov(x, y) / var(y)` as `np.cov(x, y)[0, 1] / np.cov(x, y)[1, 1]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CoMoments {
    n: u64,
    mean_x: f64,
    mean_y: f64,
    c_xy: f64,
    m2_y: f64,
}

impl CoMoments {
    fn push(&mut self, x: f64, y: f64) {
        self.n += 1;
        let n = self.n as f64;
        let dx = x - self.mean_x;
        self.mean_x += dx / n;
        let dy = y - self.mean_y;
        self.mean_y += dy / n;
        self.c_xy += dx * (y - self.mean_y);
        self.m2_y += dy * (y - self.mean_y);
    }

    /// `cov(x, y) / var(y)`; NaN below two pairs (backtesting.py's `len > 1`) or when
    /// either series holds a non-finite value.
    fn beta(&self) -> f64 {
        if self.n < 2 {
            f64::NAN
        } else {
            self.c_xy / self.m2_y
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenTrade {
    /// Units times entry price of every fill that opened or added, account currency.
    #[serde(with = "decimal")]
    entry_notional: Decimal,
    #[serde(with = "decimal")]
    realized_at_entry: Decimal,
    #[serde(with = "decimal")]
    fees_at_entry: Decimal,
    entry_ts: TimestampNs,
    entry_index: u64,
}

/// Closed round trips, as sums and extremes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TradeStats {
    count: u64,
    /// Trades with P&L above 0, and below.
    wins: u64,
    losses: u64,
    #[serde(with = "decimal")]
    gross_win: Decimal,
    #[serde(with = "decimal")]
    gross_loss: Decimal,
    #[serde(with = "decimal")]
    pnl_sum: Decimal,
    #[serde(with = "decimal")]
    commissions: Decimal,
    /// Net P&L per trade, account currency, as floats (for SQN).
    pnl: Moments,
    win_pnl_sum: f64,
    loss_pnl_sum: f64,
    /// Net returns per trade: sum, of the positive and of the negative ones, of `ln(1 + r)`.
    return_sum: f64,
    positive_return_sum: f64,
    negative_return_sum: f64,
    log_sum: f64,
    not_positive: bool,
    best: Option<f64>,
    worst: Option<f64>,
    duration_sum_ns: f64,
    duration_max_ns: i64,
}

/// Ticks covered by closed round trips, entry tick to exit tick inclusive (backtesting.py
/// `have_position[EntryBar:ExitBar + 1] = 1`). Exact for one instrument, whose trades
/// follow one another; overlapping trades of several instruments that close out of
/// order can leave some ticks uncounted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Exposure {
    ticks: u64,
    covered_until: Option<u64>,
}

impl Exposure {
    fn cover(&mut self, from: u64, to: u64) {
        let from = self.covered_until.map_or(from, |c| from.max(c + 1));
        if to >= from {
            self.ticks += to - from + 1;
        }
        self.covered_until = Some(self.covered_until.map_or(to, |c| c.max(to)));
    }
}

impl ReportFold {
    /// The snapshot name of run `run`'s report fold (`2`: the layout of this state;
    /// `report/1` was the layout before backtesting.py's statistics).
    pub fn snapshot_name(run: RunId) -> String {
        format!("report/2/{run}")
    }

    /// The report fold of run `run`; other runs' events are passed over.
    pub fn new(run: RunId) -> Self {
        ReportFold {
            run,
            covers: Seq::ZERO,
            started: None,
            portfolio: Portfolio::new(Decimal::ZERO),
            primary: None,
            primary_cycle: false,
            ticks: 0,
            first_tick: None,
            last_tick: None,
            first_price: None,
            last_price: None,
            hold_from_price: None,
            pending: None,
            curve: Curve::default(),
            open_trades: BTreeMap::new(),
            trades: TradeStats::default(),
            exposure: Exposure::default(),
        }
    }

    /// The run's account so far.
    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    fn on_tick(&mut self, ts: TimestampNs, instrument: InstrumentId, price: Decimal) {
        self.commit();
        let primary = *self.primary.get_or_insert(instrument) == instrument;
        self.primary_cycle = primary;
        if primary {
            self.first_price.get_or_insert(price);
            self.last_price = Some(price);
        }
        self.first_tick.get_or_insert(ts);
        self.last_tick = Some(ts);
        self.pending = Some(Point {
            index: self.ticks,
            ts,
            equity: self.portfolio.equity(),
            price: primary.then(|| to_f64(price)),
        });
        self.ticks += 1;
    }

    /// Adds the pending point to the curve.
    fn commit(&mut self) {
        if let Some(point) = self.pending.take() {
            self.curve.push(&point);
        }
    }

    /// The tick index a fill at `ts` belongs to: the pending tick's when it is at the
    /// same time (fills at a bar's close, the close-out at the end), else the next tick's
    /// (a fill at a bar's open comes before the bar's tick).
    fn fill_index(&self, ts: TimestampNs) -> u64 {
        match &self.pending {
            Some(point) if point.ts == ts => point.index,
            _ => self.ticks,
        }
    }

    /// Opens, adds to, closes or flips the round trip of `instrument` after a fill at
    /// `ts` moved its position from `before` to `after` units. A trade's P&L is its
    /// realized P&L net of the fees of every fill in it, entry and exit (backtesting.py's
    /// `Trade.pl`, commissions included); a single fill that flips the position counts
    /// its whole fee in the trade it closes.
    fn track_trade(&mut self, ts: TimestampNs, instrument: InstrumentId, fill: FillFacts) {
        let FillFacts { before, after, price, fee } = fill;
        let index = self.fill_index(ts);
        let crossed = !before.is_zero() && (after.is_zero() || after.is_sign_positive() != before.is_sign_positive());
        if crossed {
            if let Some(open) = self.open_trades.remove(&instrument) {
                let fees = self.portfolio.fees.saturating_sub(open.fees_at_entry);
                let pnl = self.portfolio.realized_pnl.saturating_sub(open.realized_at_entry).saturating_sub(fees);
                let duration = ts.nanos().saturating_sub(open.entry_ts.nanos());
                self.trades.push(pnl, ratio(pnl, open.entry_notional), fees, duration);
                self.exposure.cover(open.entry_index, index);
            }
        }
        let notional = |units: Decimal| units.abs().saturating_mul(price);
        if !after.is_zero() && (before.is_zero() || crossed) {
            // A fresh entry's own fee belongs to the trade it opens.
            let entry_fee = if crossed { Decimal::ZERO } else { fee };
            self.open_trades.insert(
                instrument,
                OpenTrade {
                    entry_notional: notional(after),
                    realized_at_entry: self.portfolio.realized_pnl,
                    fees_at_entry: self.portfolio.fees.saturating_sub(entry_fee),
                    entry_ts: ts,
                    entry_index: index,
                },
            );
        } else if !before.is_zero() && after.abs() > before.abs() && !crossed {
            // Adding to the position: the entry value grows by the fill's.
            if let Some(open) = self.open_trades.get_mut(&instrument) {
                open.entry_notional = open.entry_notional.saturating_add(notional(after.saturating_sub(before)));
            }
        }
    }

    /// The statistics of the run so far.
    pub fn report(&self) -> Report {
        let mut done = self.clone();
        done.commit();
        done.statistics()
    }

    fn statistics(&self) -> Report {
        let c = &self.curve;
        let start_equity = self.portfolio.starting_equity;
        let final_equity = self.portfolio.equity();
        let started = self.started.unwrap_or_default();
        let (start, end) = (self.first_tick.unwrap_or(started), self.last_tick.unwrap_or(started));
        let duration_ns = end.nanos().saturating_sub(start.nanos());

        // The data's period and the resampling it implies (`compute_stats`).
        let period_ns = c.data_period.median_ns().unwrap_or(0);
        let period_days = period_ns.div_euclid(NANOS_PER_DAY);
        let weekends =
            c.data_period.count > 0 && c.data_period.weekend as f64 / c.data_period.count as f64 > 2.0 / 7.0 * 0.6;
        let (frequency, periods_per_year) = match period_days {
            7 => (Frequency::Week, 52.0),
            31 => (Frequency::Month, 12.0),
            365 => (Frequency::Year, 1.0),
            _ if weekends => (Frequency::Day, 365.0),
            _ => (Frequency::Day, 252.0),
        };
        let mut resampled = c.periods[frequency.index()].clone();
        resampled.close();
        let g = resampled.geometric_mean();
        let n_year = periods_per_year;
        let ann_return = (1.0 + g).powf(n_year) - 1.0;
        let volatility =
            ((resampled.returns.variance() + (1.0 + g).powi(2)).powf(n_year) - (1.0 + g).powf(2.0 * n_year)).sqrt();
        let downside = if resampled.returns.n == 0 {
            f64::NAN
        } else {
            (resampled.downside_squares / resampled.returns.n as f64).sqrt() * n_year.sqrt()
        };
        let years = (duration_ns.div_euclid(NANOS_PER_SECOND) as f64 / 86_400.0) / 365.25;
        let cagr =
            if years > 0.0 { (to_f64(final_equity) / to_f64(start_equity)).powf(1.0 / years) - 1.0 } else { f64::NAN };

        let return_pct = ratio(final_equity.saturating_sub(start_equity), start_equity) * 100.0;
        let hold_from = self.hold_from_price.or(self.first_price);
        let buy_and_hold_pct = match (hold_from, self.last_price) {
            (Some(first), Some(last)) if !first.is_zero() => ratio(last.saturating_sub(first), first) * 100.0,
            _ => f64::NAN,
        };
        let beta = c.beta.beta();

        // Drawdown episodes: the one still open counts when it holds more than its last
        // point (backtesting.py closes it at the last index).
        let mut drawdowns = c.drawdowns.clone();
        if let (Some((top, _)), Some(point_count)) = (drawdowns.last_top, self.ticks.checked_sub(1)) {
            if point_count > top + 1 {
                drawdowns.end_episode(end);
            }
        }
        let episodes = drawdowns.episodes as f64;
        let per_episode = |sum: f64| if episodes > 0.0 { sum / episodes } else { f64::NAN };
        let resolution = resolution_ns(period_ns);
        let days = |ns: f64| ceil_to(ns, resolution) / NANOS_PER_DAY as f64;

        let t = &self.trades;
        let n = t.count as f64;
        let per_trade = |sum: f64| if t.count > 0 { sum / n } else { f64::NAN };
        let win_rate = per_trade(t.wins as f64);
        let mean_win = if t.wins > 0 { t.win_pnl_sum / t.wins as f64 } else { f64::NAN };
        let mean_loss = if t.losses > 0 { -t.loss_pnl_sum / t.losses as f64 } else { f64::NAN };
        let pnl_std = t.pnl.variance().sqrt();
        Report {
            run_id: self.run.get(),
            start: start.to_rfc3339(),
            end: end.to_rfc3339(),
            duration_days: duration_ns as f64 / NANOS_PER_DAY as f64,
            ticks: self.ticks,
            exposure_time_pct: if self.ticks > 0 {
                self.exposure.ticks as f64 / self.ticks as f64 * 100.0
            } else {
                f64::NAN
            },
            equity_start: start_equity,
            equity_final: final_equity.round_dp(2),
            equity_peak: c.peak.unwrap_or(start_equity).round_dp(2),
            cash: self.portfolio.cash.round_dp(2),
            commissions: t.commissions.round_dp(2),
            total_fees: self.portfolio.fees.round_dp(2),
            return_pct,
            buy_and_hold_return_pct: buy_and_hold_pct,
            return_ann_pct: ann_return * 100.0,
            volatility_ann_pct: volatility * 100.0,
            cagr_pct: cagr * 100.0,
            sharpe_ratio: ann_return * 100.0 / nan_if_zero(volatility * 100.0),
            sortino_ratio: ann_return / downside,
            calmar_ratio: ann_return / nan_if_zero(c.max_drawdown),
            alpha_pct: return_pct - beta * buy_and_hold_pct,
            beta,
            max_drawdown_pct: -c.max_drawdown * 100.0,
            avg_drawdown_pct: -per_episode(drawdowns.depth_sum) * 100.0,
            max_drawdown_duration_days: if drawdowns.episodes > 0 {
                days(drawdowns.duration_max_ns as f64)
            } else {
                f64::NAN
            },
            avg_drawdown_duration_days: days(per_episode(drawdowns.duration_sum_ns)),
            trades: t.count,
            win_rate_pct: win_rate * 100.0,
            best_trade_pct: t.best.unwrap_or(f64::NAN) * 100.0,
            worst_trade_pct: t.worst.unwrap_or(f64::NAN) * 100.0,
            avg_trade_pct: geometric_mean(t.count, t.log_sum, t.not_positive) * 100.0,
            max_trade_duration_days: if t.count > 0 { days(t.duration_max_ns as f64) } else { f64::NAN },
            avg_trade_duration_days: days(per_trade(t.duration_sum_ns)),
            profit_factor: if t.count > 0 {
                t.positive_return_sum / nan_if_zero(t.negative_return_sum.abs())
            } else {
                f64::NAN
            },
            profit_factor_pnl: if t.gross_loss > Decimal::ZERO { ratio(t.gross_win, t.gross_loss) } else { f64::NAN },
            expectancy_pct: per_trade(t.return_sum) * 100.0,
            avg_trade_pnl: if t.count == 0 {
                None
            } else {
                t.pnl_sum.checked_div(Decimal::from(t.count)).map(|d| d.round_dp(2))
            },
            sqn: n.sqrt() * t.pnl.mean() / nan_if_zero(pnl_std),
            kelly_criterion: win_rate - (1.0 - win_rate) / (mean_win / mean_loss),
            periods_per_year: n_year,
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
        }
    }
}

/// What a fill did to its instrument's position.
struct FillFacts {
    before: Decimal,
    after: Decimal,
    price: Decimal,
    fee: Decimal,
}

impl Curve {
    fn push(&mut self, point: &Point) {
        let equity = point.equity;
        let value = to_f64(equity);
        // Drawdown `1 - equity / cummax(equity)`, 0 at a new (or equal) maximum.
        let top = self.peak.is_none_or(|peak| equity >= peak);
        if top {
            self.peak = Some(equity);
            self.peak_value = Some(value);
            if let Some((at, _)) = self.drawdowns.last_top {
                if point.index > at + 1 {
                    self.drawdowns.end_episode(point.ts);
                }
            }
            self.drawdowns.last_top = Some((point.index, point.ts));
            self.drawdowns.depth = 0.0;
        } else if let Some(peak) = self.peak {
            let peak = *self.peak_value.get_or_insert_with(|| to_f64(peak));
            let dd = 1.0 - value / peak;
            self.max_drawdown = self.max_drawdown.max(dd);
            self.drawdowns.depth = self.drawdowns.depth.max(dd);
        }

        let day = point.ts.utc_day();
        let keys = match self.day {
            Some((cached, keys)) if cached == day => keys,
            _ => {
                let keys = period_keys(day);
                self.day = Some((day, keys));
                keys
            }
        };
        for (resample, key) in self.periods.iter_mut().zip(keys) {
            resample.push(key, value);
        }

        if let Some(price) = point.price {
            self.data_period.push(point.ts);
            if let Some((previous_equity, previous_price)) = self.previous {
                // np.log(equity[1:] / equity[:-1]) against np.log(c[1:] / c[:-1]).
                self.beta.push((value / previous_equity).ln(), (price / previous_price).ln());
            }
            self.previous = Some((value, price));
        }
    }
}

impl TradeStats {
    /// Adds a closed trade: its net P&L, net return on its entry value, fees, and
    /// duration in ns.
    fn push(&mut self, pnl: Decimal, r: f64, fees: Decimal, duration_ns: i64) {
        self.count += 1;
        self.pnl_sum = self.pnl_sum.saturating_add(pnl);
        self.commissions = self.commissions.saturating_add(fees);
        let pnl_f = to_f64(pnl);
        self.pnl.push(pnl_f);
        if pnl > Decimal::ZERO {
            self.wins += 1;
            self.gross_win = self.gross_win.saturating_add(pnl);
            self.win_pnl_sum += pnl_f;
        } else if pnl < Decimal::ZERO {
            self.losses += 1;
            self.gross_loss = self.gross_loss.saturating_sub(pnl);
            self.loss_pnl_sum += pnl_f;
        }
        self.return_sum += r;
        if r > 0.0 {
            self.positive_return_sum += r;
        } else if r < 0.0 {
            self.negative_return_sum += r;
        }
        if 1.0 + r > 0.0 {
            self.log_sum += (1.0 + r).ln();
        } else {
            self.not_positive = true;
        }
        self.best = Some(self.best.map_or(r, |b| b.max(r)));
        self.worst = Some(self.worst.map_or(r, |w| w.min(r)));
        self.duration_sum_ns += duration_ns as f64;
        self.duration_max_ns = self.duration_max_ns.max(duration_ns);
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
                self.on_tick(event.ts_event, tick.instrument, tick.data.reference_price());
            }
            Payload::DecisionMade(made)
                if self.hold_from_price.is_none() && self.primary_cycle && &*made.parsed.reason != WARMING_UP =>
            {
                self.hold_from_price = self.last_price;
            }
            Payload::OrderFilled(fill) => {
                let before = self.portfolio.qty(&fill.instrument);
                if self.portfolio.apply_fill(fill).is_ok() {
                    let after = self.portfolio.qty(&fill.instrument);
                    let facts = FillFacts { before, after, price: fill.price, fee: fill.fee };
                    self.track_trade(event.ts_event, fill.instrument, facts);
                    if let Some(point) = self.pending.as_mut().filter(|p| p.ts == event.ts_event) {
                        point.equity = self.portfolio.equity();
                    }
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

/// The statistics of one run, backtesting.py 0.6.6's (`_stats.compute_stats`) unless a
/// field says otherwise: each field names backtesting.py's key and its formula.
/// Percentages are in percent (12.5 = 12.5%), durations in days (backtesting.py's
/// `Timedelta`s, rounded up to the data's resolution as its `_round_timedelta` does),
/// money in the account currency. `NaN` (JSON `null`) where backtesting.py's is.
///
/// Symbols: `E` the equity curve (one point per tick), `E0` the starting equity, `Ef` the
/// final equity; `r_d` the resampled returns ([`ReportFold`]), `g` their geometric mean,
/// `N` the periods per year; trade `pl` its net P&L, `R` its net return.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run.
    pub run_id: u64,
    /// `Start`: the first tick's time, RFC 3339.
    pub start: String,
    /// `End`: the last tick's time, RFC 3339.
    pub end: String,
    /// `Duration`: end minus start, days.
    pub duration_days: f64,
    /// Ticks folded (the points of the equity curve; not in backtesting.py).
    pub ticks: u64,
    /// `Exposure Time [%]`: the share of ticks from a closed trade's entry tick to its
    /// exit tick, inclusive (`have_position[EntryBar:ExitBar + 1] = 1`, then its mean).
    /// Trades still open at the end are not counted (close them with `close_at_end`).
    pub exposure_time_pct: f64,
    /// Starting equity (`equity[0]`).
    pub equity_start: Decimal,
    /// `Equity Final [$]`: cash plus positions marked to the last price (`equity[-1]`).
    pub equity_final: Decimal,
    /// `Equity Peak [$]`: the highest point of the curve (`equity.max()`).
    pub equity_peak: Decimal,
    /// Final cash (not in backtesting.py).
    pub cash: Decimal,
    /// `Commissions [$]`: the fees of the closed trades, entry and exit
    /// (`sum(t._commissions for t in trades)`).
    pub commissions: Decimal,
    /// Every fee paid, closed trades or not (not in backtesting.py).
    pub total_fees: Decimal,
    /// `Return [%]`: `(Ef - E0) / E0`.
    pub return_pct: f64,
    /// `Buy & Hold Return [%]`: `(c[-1] - c[w]) / c[w]`, `c` the primary instrument's
    /// prices, `w` the first tick after the strategy's warm-up (backtesting.py's
    /// `first_trading_bar = _indicator_warmup_nbars(strategy)`; here the first tick
    /// whose decision is not a warm-up hold, [`WARMING_UP`]).
    pub buy_and_hold_return_pct: f64,
    /// `Return (Ann.) [%]`: `(1 + g)^N - 1`, compounded from the geometric mean of the
    /// resampled returns (`gmean_day_return`; `N` 252, or 365 for data with weekends, or
    /// 52, 12, 1 for weekly, monthly, yearly data).
    pub return_ann_pct: f64,
    /// `Volatility (Ann.) [%]`: `sqrt((var(r_d) + (1 + g)^2)^N - (1 + g)^(2N))`, the
    /// annualized standard deviation of compounded returns (backtesting.py cites
    /// <https://dx.doi.org/10.2139/ssrn.3054517>); `var` with n - 1.
    pub volatility_ann_pct: f64,
    /// `CAGR [%]`: `(Ef / E0)^(1 / years) - 1`, years = the duration's whole seconds /
    /// 86,400 / 365.25.
    pub cagr_pct: f64,
    /// `Sharpe Ratio`: `Return (Ann.) / Volatility (Ann.)`, risk-free rate 0.
    pub sharpe_ratio: f64,
    /// `Sortino Ratio`: `((1 + g)^N - 1) / (sqrt(mean(min(r_d, 0)^2)) * sqrt(N))`.
    pub sortino_ratio: f64,
    /// `Calmar Ratio`: `((1 + g)^N - 1) / max drawdown`.
    pub calmar_ratio: f64,
    /// `Alpha [%]`: Jensen's alpha, `Return - Beta * Buy & Hold Return` (risk-free 0).
    pub alpha_pct: f64,
    /// `Beta`: `cov(ln E_t/E_t-1, ln c_t/c_t-1) / var(ln c_t/c_t-1)` over the primary
    /// instrument's ticks.
    pub beta: f64,
    /// `Max. Drawdown [%]`: `-max(1 - E / cummax(E))`.
    pub max_drawdown_pct: f64,
    /// `Avg. Drawdown [%]`: minus the mean of the episodes' deepest drawdowns; an episode
    /// runs from a point at the running maximum to the next one (or to the last point)
    /// with at least one point between (`compute_drawdown_duration_peaks`).
    pub avg_drawdown_pct: f64,
    /// `Max. Drawdown Duration`: the longest episode, days.
    pub max_drawdown_duration_days: f64,
    /// `Avg. Drawdown Duration`: the mean episode, days.
    pub avg_drawdown_duration_days: f64,
    /// `# Trades`: closed round trips (flat to flat, or to a reversal).
    pub trades: u64,
    /// `Win Rate [%]`: the share of trades with `pl > 0`.
    pub win_rate_pct: f64,
    /// `Best Trade [%]`: `max(R)`; `R = pl / entry value`, which is backtesting.py's
    /// `pl_pct` (the price move less the commissions over the entry value).
    pub best_trade_pct: f64,
    /// `Worst Trade [%]`: `min(R)`.
    pub worst_trade_pct: f64,
    /// `Avg. Trade [%]`: the geometric mean of `R`, `exp(mean(ln(1 + R))) - 1` (0 when
    /// some `R <= -100%`).
    pub avg_trade_pct: f64,
    /// `Max. Trade Duration`: the longest trade, entry fill to exit fill, days.
    pub max_trade_duration_days: f64,
    /// `Avg. Trade Duration`: the mean trade, days.
    pub avg_trade_duration_days: f64,
    /// `Profit Factor`: `sum(R > 0) / |sum(R < 0)|`, of returns (not money).
    pub profit_factor: f64,
    /// Gross winning P&L over gross losing P&L, money (the usual profit factor; named
    /// apart because backtesting.py's is of returns).
    pub profit_factor_pnl: f64,
    /// `Expectancy [%]`: the arithmetic mean of `R`.
    pub expectancy_pct: f64,
    /// Mean net P&L per trade, account currency (not in backtesting.py; `null` with no
    /// trades).
    pub avg_trade_pnl: Option<Decimal>,
    /// `SQN`: Van Tharp's system quality number, `sqrt(trades) * mean(pl) / std(pl)`
    /// (`std` with n - 1).
    pub sqn: f64,
    /// `Kelly Criterion`: `W - (1 - W) / (mean(pl > 0) / -mean(pl < 0))`, `W` the win
    /// rate as a fraction.
    pub kelly_criterion: f64,
    /// The periods per year the annualized figures use (`N` above: 252, 365, 52, 12 or 1).
    pub periods_per_year: f64,
    /// Positions open at the end (not counted as trades).
    pub open_positions: Vec<OpenPosition>,
}

/// The keys of the day `day` (days since the epoch) in the four resamplings: the day,
/// its week (Monday to Sunday, pandas `W` = `W-SUN`), its month (`ME`), its year (`YE`).
fn period_keys(day: i64) -> [i64; 4] {
    let (year, month) = civil_from_days(day);
    [day, (day + 3).div_euclid(7), year * 12 + (month - 1), year]
}

/// The proleptic Gregorian year and month (1 to 12) of `days` since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// backtesting.py's `geometric_mean`: `exp(sum(ln(1 + r)) / n) - 1`; 0 when some
/// `1 + r <= 0`; NaN with no values.
fn geometric_mean(n: u64, log_sum: f64, not_positive: bool) -> f64 {
    if n == 0 {
        f64::NAN
    } else if not_positive {
        0.0
    } else {
        (log_sum / n as f64).exp() - 1.0
    }
}

/// The unit pandas' `Timedelta.resolution_string` names for a period of `ns`: the
/// coarsest of day, hour, minute, second, ms, us, ns that divides it (a day for 0).
fn resolution_ns(ns: i64) -> i64 {
    const UNITS: [i64; 7] =
        [NANOS_PER_DAY, 3_600 * NANOS_PER_SECOND, 60 * NANOS_PER_SECOND, NANOS_PER_SECOND, 1_000_000, 1_000, 1];
    UNITS.into_iter().find(|unit| ns % unit == 0).unwrap_or(1)
}

/// `ns` rounded up to a multiple of `unit` (`Timedelta.ceil`); NaN stays NaN.
fn ceil_to(ns: f64, unit: i64) -> f64 {
    let unit = unit as f64;
    (ns / unit).ceil() * unit
}

/// NaN for 0 (backtesting.py's `x or np.nan`).
fn nan_if_zero(x: f64) -> f64 {
    if x == 0.0 {
        f64::NAN
    } else {
        x
    }
}

fn to_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

/// `num / den` as a float: exact where the quotient fits a `Decimal`, in floating point
/// beyond (never a panic), NaN for a zero denominator.
fn ratio(num: Decimal, den: Decimal) -> f64 {
    if den.is_zero() {
        f64::NAN
    } else {
        num.checked_div(den).map_or_else(|| to_f64(num) / to_f64(den), to_f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::chain::Hash32;
    use ledger_core::event::*;
    use ledger_core::ids::{ClientOrderId, CycleId, FillId};
    use rust_decimal_macros::dec;

    const DAY: i64 = 86_400_000_000_000;
    const MINUTE: i64 = 60_000_000_000;

    fn event(ts: i64, payload: Payload) -> Envelope {
        Envelope {
            header: Header {
                seq: Seq::new(1),
                run_id: RunId::new(1),
                cycle_id: CycleId::new(0),
                causation_seq: None,
                ts_event: TimestampNs::from_nanos(ts),
                ts_recorded: TimestampNs::from_nanos(ts),
                schema_version: 2,
                prev_hash: Hash32::ZERO,
                hash: Hash32::ZERO,
            },
            payload,
        }
    }

    fn close(ts: i64, price: Decimal) -> Envelope {
        let instrument = InstrumentId::new("SPY").unwrap();
        let bar = Bar { open: price, high: price, low: price, close: price, volume: None, interval_ns: DAY };
        event(ts, Payload::MarketTick(MarketTick { instrument, data: TickData::Bar(bar) }))
    }

    fn fill(ts: i64, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Envelope {
        event(
            ts,
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

    fn decision(ts: i64, reason: &str) -> Envelope {
        event(
            ts,
            Payload::DecisionMade(DecisionMade {
                prompt_sha256: None,
                prompt: "".into(),
                raw_output: "".into(),
                parsed: Decision::new(Action::Hold, Decimal::ZERO, Decimal::ZERO, reason.into()),
                parse_status: ParseStatus::Ok,
                latency_us: 0,
                tokens_in: 0,
                tokens_out: 0,
            }),
        )
    }

    fn start(cash: Decimal) -> Envelope {
        event(
            0,
            Payload::RunStarted(Box::new(RunStarted {
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
            })),
        )
    }

    fn fold(events: &[Envelope]) -> ReportFold {
        let mut fold = ReportFold::new(RunId::new(1));
        for (seq, e) in events.iter().enumerate() {
            let mut e = e.clone();
            e.header.seq = Seq::new(seq as u64 + 1);
            fold.apply(&e.as_ref());
        }
        fold
    }

    fn close_to(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
    }

    #[test]
    fn statistics_are_backtesting_py_compute_stats_on_a_curve_by_hand() {
        // Cash 1,000; daily bars from Thursday 1970-01-01. Day 0 close 100. Day 1: buy 5 @
        // 100 (fee 1), close 110. Day 2: close 90. Day 3: sell 5 @ 120 (fee 1), close 120:
        // a trade of +98 net on a 500 entry. Day 4: buy 5 @ 120 (fee 1), close 100. Day 5:
        // sell 5 @ 100 (fee 1), close 100: -102 net on 600.
        // Equity: 1000, 1049, 949, 1098, 997, 996.
        let r = fold(&[
            start(dec!(1000)),
            close(0, dec!(100)),
            fill(DAY, Side::Buy, dec!(5), dec!(100), dec!(1)),
            close(DAY, dec!(110)),
            close(2 * DAY, dec!(90)),
            fill(3 * DAY, Side::Sell, dec!(5), dec!(120), dec!(1)),
            close(3 * DAY, dec!(120)),
            fill(4 * DAY, Side::Buy, dec!(5), dec!(120), dec!(1)),
            close(4 * DAY, dec!(100)),
            fill(5 * DAY, Side::Sell, dec!(5), dec!(100), dec!(1)),
            close(5 * DAY, dec!(100)),
        ])
        .report();
        // Money, exact.
        assert_eq!(
            (r.equity_final, r.equity_peak, r.commissions, r.total_fees),
            (dec!(996), dec!(1098), dec!(4), dec!(4))
        );
        assert_eq!((r.trades, r.avg_trade_pnl), (2, Some(dec!(-2))));
        // Every ratio as backtesting.py 0.6.6's compute_stats gives it for this equity
        // curve and these two trades (weekend days present: 365 periods a year).
        let expected = [
            ("Exposure Time [%]", r.exposure_time_pct, 83.33333333333334),
            ("Return [%]", r.return_pct, -0.4),
            ("Buy & Hold Return [%]", r.buy_and_hold_return_pct, 0.0),
            ("Return (Ann.) [%]", r.return_ann_pct, -25.36686153172143),
            ("Volatility (Ann.) [%]", r.volatility_ann_pct, 559.9775102686057),
            ("CAGR [%]", r.cagr_pct, -25.381816593962213),
            ("Sharpe Ratio", r.sharpe_ratio, -0.045299786270976576),
            ("Sortino Ratio", r.sortino_ratio, -0.22411334731194968),
            ("Calmar Ratio", r.calmar_ratio, -2.6609837746775775),
            ("Alpha [%]", r.alpha_pct, -0.4),
            ("Beta", r.beta, 0.509274772272064),
            ("Max. Drawdown [%]", r.max_drawdown_pct, -9.532888465204959),
            ("Avg. Drawdown [%]", r.avg_drawdown_pct, -9.411252975771877),
            ("Max. Drawdown Duration", r.max_drawdown_duration_days, 2.0),
            ("Avg. Drawdown Duration", r.avg_drawdown_duration_days, 2.0),
            ("Win Rate [%]", r.win_rate_pct, 50.0),
            ("Best Trade [%]", r.best_trade_pct, 19.6),
            ("Worst Trade [%]", r.worst_trade_pct, -17.0),
            ("Avg. Trade [%]", r.avg_trade_pct, -0.36667224266772047),
            ("Max. Trade Duration", r.max_trade_duration_days, 2.0),
            ("Avg. Trade Duration", r.avg_trade_duration_days, 2.0),
            ("Profit Factor", r.profit_factor, 1.1529411764705881),
            ("Expectancy [%]", r.expectancy_pct, 1.2999999999999998),
            ("SQN", r.sqn, -0.02),
            ("Kelly Criterion", r.kelly_criterion, -0.020408163265306145),
            ("periods per year", r.periods_per_year, 365.0),
            ("profit factor of P&L", r.profit_factor_pnl, 98.0 / 102.0),
        ];
        for (name, actual, want) in expected {
            assert!(close_to(actual, want), "{name}: {actual}, backtesting.py {want}");
        }
        assert!(r.open_positions.is_empty());
    }

    #[test]
    fn buy_and_hold_starts_after_the_warm_up_and_no_trades_leave_trade_statistics_undefined() {
        // Ticks at 100, 200, 400, 800; the first two decisions are warm-up holds: buy and
        // hold runs from 400 to 800 (backtesting.py's first_trading_bar).
        let mut events = vec![start(dec!(1000))];
        for (day, (price, reason)) in
            [(100, WARMING_UP), (200, WARMING_UP), (400, "no signal"), (800, "no signal")].into_iter().enumerate()
        {
            events.push(close(day as i64 * DAY, Decimal::from(price)));
            events.push(decision(day as i64 * DAY, reason));
        }
        let r = fold(&events).report();
        assert_eq!(r.buy_and_hold_return_pct, 100.0);
        // No trades: backtesting.py's NaN for every trade statistic; flat equity: no
        // drawdown episodes, a 0 maximum drawdown, 0 return.
        assert_eq!((r.trades, r.avg_trade_pnl, r.commissions), (0, None, dec!(0)));
        for (name, x) in [
            ("win rate", r.win_rate_pct),
            ("best", r.best_trade_pct),
            ("avg trade", r.avg_trade_pct),
            ("profit factor", r.profit_factor),
            ("sqn", r.sqn),
            ("kelly", r.kelly_criterion),
            ("avg drawdown", r.avg_drawdown_pct),
            ("max drawdown duration", r.max_drawdown_duration_days),
            ("sharpe", r.sharpe_ratio),
        ] {
            assert!(x.is_nan(), "{name}: {x}");
        }
        assert_eq!((r.max_drawdown_pct, r.return_pct, r.exposure_time_pct), (0.0, 0.0, 0.0));
        // The report's JSON holds them as null, never as a panic or a bare NaN.
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["sqn"].is_null() && json["trades"] == 0);
    }

    #[test]
    fn intraday_runs_annualize_from_daily_returns() {
        // One unit held over minute bars on Monday to Wednesday 1970-01-05..07, 600 a day;
        // the price walks up and down within each day but closes the days at 100, 110, 99.
        // Per-tick returns would annualize the minute noise; backtesting.py (and this
        // report) resample the equity to days first: returns 110/100 - 1 and 99/110 - 1
        // (equity = cash 0 + the unit), 252 days a year (no weekends).
        let monday = 4 * DAY;
        let mut events = vec![start(dec!(100)), fill(monday, Side::Buy, dec!(1), dec!(100), dec!(0))];
        for (day, day_close) in [(0, 100), (1, 110), (2, 99)] {
            for minute in 0..600 {
                let wiggle = if minute % 2 == 0 { 3 } else { -3 };
                let price = if minute == 599 { day_close } else { day_close + wiggle };
                events.push(close(monday + day * DAY + minute * MINUTE, Decimal::from(price)));
            }
        }
        let r = fold(&events).report();
        let (r1, r2): (f64, f64) = (110.0 / 100.0 - 1.0, 99.0 / 110.0 - 1.0);
        let g = (((1.0 + r1) * (1.0 + r2)).ln() / 2.0).exp() - 1.0;
        let mean = (r1 + r2) / 2.0;
        let var = (r1 - mean).powi(2) + (r2 - mean).powi(2);
        let ann = (1.0 + g).powf(252.0) - 1.0;
        let vol = ((var + (1.0 + g).powi(2)).powf(252.0) - (1.0 + g).powf(504.0)).sqrt();
        assert_eq!(r.periods_per_year, 252.0);
        assert!(close_to(r.return_ann_pct, ann * 100.0), "{} vs {}", r.return_ann_pct, ann * 100.0);
        assert!(close_to(r.volatility_ann_pct, vol * 100.0), "{} vs {}", r.volatility_ann_pct, vol * 100.0);
        assert!(close_to(r.sharpe_ratio, ann / vol));
        // Durations round up to the data's resolution (a minute): whole minutes.
        assert_eq!(r.ticks, 1800);
        let whole_minutes = |days: f64| ((days * 1440.0) - (days * 1440.0).round()).abs() < 1e-6;
        assert!(whole_minutes(r.max_drawdown_duration_days) && whole_minutes(r.avg_drawdown_duration_days));
    }

    #[test]
    fn calendar_keys_and_resolutions_are_pandas() {
        // TC0: civil dates of day numbers (1970-01-01 is day 0; 2000-02-29 is day 11016;
        // 1969-12-31 is day -1).
        assert_eq!(
            (civil_from_days(0), civil_from_days(11_016), civil_from_days(-1)),
            ((1970, 1), (2000, 2), (1969, 12))
        );
        // TC1: weeks run Monday to Sunday: Sunday 1970-01-04 (day 3) and Monday 01-05 (day 4)
        // are in different weeks, Monday to Sunday 01-11 (day 10) in one.
        assert_ne!(period_keys(3)[1], period_keys(4)[1]);
        assert_eq!(period_keys(4)[1], period_keys(10)[1]);
        // TC2: Timedelta.resolution_string: 1 day, 1 hour, 5 minutes, 1.5 s, 0 (a day).
        let s = NANOS_PER_SECOND;
        assert_eq!(resolution_ns(NANOS_PER_DAY), NANOS_PER_DAY);
        assert_eq!(resolution_ns(3_600 * s), 3_600 * s);
        assert_eq!(resolution_ns(300 * s), 60 * s);
        assert_eq!(resolution_ns(1_500_000_000), 1_000_000);
        assert_eq!(resolution_ns(0), NANOS_PER_DAY);
        // TC3: Timedelta.ceil: 46.3 days to 47 days.
        assert_eq!(ceil_to(46.3 * NANOS_PER_DAY as f64, NANOS_PER_DAY), 47.0 * NANOS_PER_DAY as f64);
    }

    #[test]
    fn a_close_out_after_the_last_tick_is_in_the_last_point_and_trade() {
        // Bought 10 at 100 on day 1; the data ends on day 2 (close 110); closed out at that
        // close with a fee of 1 (close_at_end): the trade covers ticks 1 and 2, and the
        // last point is the equity after it (1099), not the mark before it (1100).
        let r = fold(&[
            start(dec!(1000)),
            close(0, dec!(100)),
            fill(DAY, Side::Buy, dec!(10), dec!(100), dec!(0)),
            close(DAY, dec!(105)),
            close(2 * DAY, dec!(110)),
            fill(2 * DAY, Side::Sell, dec!(10), dec!(110), dec!(1)),
        ])
        .report();
        assert_eq!((r.trades, r.equity_final, r.equity_peak), (1, dec!(1099), dec!(1099)));
        assert!(close_to(r.exposure_time_pct, 200.0 / 3.0));
        assert!(close_to(r.best_trade_pct, 9.9)); // 99 / 1000
    }
}
