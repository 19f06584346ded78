//! The risk engine and the kill switch.
//!
//! Every check records its id, measured value, limit and result in the verdict, passes
//! included. Checks are off unless configured, except price validity and the kill
//! switch, which always run. A `hold` is approved without checks; a `close` with no
//! position is denied; a `close` is otherwise judged only on price validity, because
//! reducing risk must stay possible when limits are hit.
//!
//! Fractions and ratios are measured to 8 decimal places ([`RATIO_DP`], rounded half to
//! even) and compared as recorded, so a verdict's value and limit always explain its
//! result.

use std::collections::VecDeque;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::codec::Exact;
use crate::event::{Action, Bracket, Decision, KillSwitchTripped, KillTrigger, RiskCheck, RiskCheckId, Text};
use crate::ids::InstrumentId;
use crate::portfolio::Portfolio;
use crate::time::TimestampNs;

/// The configurable limits; `None` turns a check off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskLimits {
    /// Oldest acceptable reference tick, nanoseconds before the cycle's time (in a
    /// file: `max_price_age = "2m"`).
    #[serde(alias = "max_price_age", with = "crate::time::duration_ns")]
    pub max_price_age_ns: Option<i64>,
    /// Minimum decision confidence, 0..1.
    pub min_confidence: Option<Decimal>,
    /// Maximum position value as a fraction of equity.
    pub max_position_pct: Option<Decimal>,
    /// Maximum position value, account currency.
    pub max_position_value: Option<Decimal>,
    /// Minimum position value, account currency.
    pub min_position_value: Option<Decimal>,
    /// Maximum gross exposure divided by equity after the order.
    pub max_gross_leverage: Option<Decimal>,
    /// Maximum open positions after the order.
    pub max_open_positions: Option<u32>,
    /// Maximum order notional, account currency.
    pub max_order_notional: Option<Decimal>,
    /// Maximum order quantity, instrument units (estimated at the reference price).
    pub max_order_qty: Option<Decimal>,
    /// Maximum move of the reference price against the previous tick, basis points.
    pub price_collar_bps: Option<Decimal>,
    /// Maximum loss since the start of the UTC day, fraction of start-of-day equity.
    pub daily_loss_cap: Option<Decimal>,
    /// Maximum orders per UTC day.
    pub max_trades_per_day: Option<u32>,
    /// Minimum time after an open before the next open, nanoseconds (in a file:
    /// `cooldown = "5m"`).
    #[serde(alias = "cooldown", with = "crate::time::duration_ns")]
    pub cooldown_ns: Option<i64>,
    /// Length of the rate-limit window, nanoseconds (default one minute; in a file:
    /// `rate_window = "1m"`).
    #[serde(alias = "rate_window", with = "crate::time::duration_ns")]
    pub rate_window_ns: Option<i64>,
    /// Maximum decisions per window.
    pub max_decisions_per_window: Option<u32>,
    /// Maximum orders per window.
    pub max_orders_per_window: Option<u32>,
    /// Block an order with the same action and size as the previous one within the
    /// window.
    pub block_duplicate_orders: bool,
    /// Refuse an entry no stop (stop-loss or trailing stop) protects. (Left out of the
    /// canonical JSON when off, as `max_loss_at_stop` when unset, so configurations
    /// written before these checks keep their hash.)
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_stop_loss: bool,
    /// Maximum loss if an entry's stop is hit, fraction of equity (0.01 = risk at most
    /// 1% per trade).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_loss_at_stop: Option<Decimal>,
    /// Maximum LLM requests per rate window (`rate_window`, default one minute),
    /// counted from the run's `ModelCalled` events at their ticks' times: when the
    /// window holds this many, the model is not asked and the cycle holds. (Left out
    /// of the canonical JSON when unset, as the next.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_llm_calls_per_window: Option<u32>,
    /// Maximum LLM spend per UTC day (of the ticks' times), US dollars, from the
    /// `ModelCalled` costs (token prices in `[provider]`): once reached, the model is not
    /// asked and the cycle holds until the next day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_daily_budget_usd: Option<Decimal>,
}

/// Kill-switch thresholds; `None` turns a trigger off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KillSwitchLimits {
    /// Trip when equity has gained this fraction since the start (take-profit).
    pub max_gain: Option<Decimal>,
    /// Trip when equity has lost this fraction since the start.
    pub max_loss: Option<Decimal>,
    /// Trip when drawdown from peak equity reaches this fraction.
    pub max_drawdown: Option<Decimal>,
    /// Trip after this many consecutive failures (rejected orders, provider errors).
    pub max_consecutive_failures: Option<u32>,
    /// Trip after this many decisions in a row whose provider failed
    /// (`ParseStatus::ProviderError`: timeouts, HTTP errors, malformed bodies); any
    /// other decision resets the count. Off when unset (and then left out of the
    /// canonical JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_provider_errors: Option<u32>,
    /// Close every position when tripped.
    pub close_positions: bool,
}

/// What the risk engine is asked to judge.
#[derive(Debug, Clone, Copy)]
pub struct RiskInput<'a> {
    /// The decision.
    pub decision: &'a Decision,
    /// The instrument.
    pub instrument: &'a InstrumentId,
    /// Reference price of the current tick, if any.
    pub price: Option<Decimal>,
    /// Reference price of the previous tick, if any.
    pub previous_price: Option<Decimal>,
    /// Source time of the tick, UTC ns.
    pub tick_ts: TimestampNs,
    /// Now, from the run's clock, UTC ns.
    pub now: TimestampNs,
    /// The account.
    pub portfolio: &'a Portfolio,
    /// Whether the kill switch is tripped.
    pub kill_switch_tripped: bool,
    /// The protective exits an entry would carry (empty for a close or a hold).
    pub bracket: &'a Bracket,
}

/// A verdict before it becomes an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Whether an order may follow.
    pub approved: bool,
    /// Every check run.
    pub checks: Vec<RiskCheck>,
    /// Empty when approved, else the first failed check in words.
    pub reason: Text,
}

/// Decimal places of measured fractions and ratios.
pub const RATIO_DP: u32 = 8;

const DEFAULT_RATE_WINDOW_NS: i64 = 60 * 1_000_000_000;

/// The risk engine: limits plus the counters the rate and daily checks need. Its state
/// is plain data, saved in session snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskEngine {
    /// From the configuration, not the snapshot ([`RiskEngine::restored`]).
    #[serde(skip)]
    limits: RiskLimits,
    decisions: VecDeque<i64>,
    orders: VecDeque<i64>,
    day: i64,
    #[serde(with = "crate::codec::decimal")]
    day_start_equity: Decimal,
    orders_today: u32,
    last_open: Option<i64>,
    last_order: Option<(Action, Exact, i64)>,
    approved: Text,
    /// Model calls in the rate window: tick time and the requests each took (one entry
    /// a call, not a request: a stored count cannot make it grow).
    llm_requests: VecDeque<(i64, u32)>,
    /// LLM spend since the start of the UTC day, US dollars.
    #[serde(with = "crate::codec::decimal")]
    llm_spend_today: Decimal,
}

impl RiskEngine {
    /// An engine enforcing `limits`.
    pub fn new(limits: RiskLimits) -> Self {
        RiskEngine {
            limits,
            decisions: VecDeque::new(),
            orders: VecDeque::new(),
            day: i64::MIN,
            day_start_equity: Decimal::ZERO,
            orders_today: 0,
            last_open: None,
            last_order: None,
            approved: Arc::from(""),
            llm_requests: VecDeque::new(),
            llm_spend_today: Decimal::ZERO,
        }
    }

    /// This engine's counters from a snapshot, enforcing `self`'s limits (the run's
    /// configuration).
    pub fn restored(self, snapshot: RiskEngine) -> RiskEngine {
        RiskEngine { limits: self.limits, ..snapshot }
    }

    /// Tells the engine time has reached `ts` with `equity`; rolls the UTC day.
    pub fn on_tick(&mut self, ts: TimestampNs, equity: Decimal) {
        let day = ts.utc_day();
        if day != self.day {
            self.day = day;
            self.day_start_equity = equity;
            self.orders_today = 0;
            self.llm_spend_today = Decimal::ZERO;
        }
    }

    /// Tells the engine a model call for a decision at `ts` made `requests` HTTP
    /// requests costing `cost_usd` (applying a `ModelCalled`).
    pub fn on_model_call(&mut self, ts: TimestampNs, requests: u32, cost_usd: Decimal) {
        if self.limits.max_llm_calls_per_window.is_some() {
            self.llm_requests.push_back((ts.nanos(), requests));
        }
        self.llm_spend_today = self.llm_spend_today.checked_add(cost_usd).unwrap_or(Decimal::MAX);
    }

    /// The LLM guards before the model is asked at tick time `ts`: `None` when none is
    /// configured or all pass, else the refusing verdict, every guard's value and
    /// limit in it.
    pub fn llm_guard(&mut self, ts: TimestampNs) -> Option<Judgement> {
        let (calls, budget) = (self.limits.max_llm_calls_per_window, self.limits.llm_daily_budget_usd);
        if calls.is_none() && budget.is_none() {
            return None;
        }
        let mut checks = Checks::default();
        if let Some(limit) = calls {
            let window = self.limits.rate_window_ns.unwrap_or(DEFAULT_RATE_WINDOW_NS);
            let older_than = ts.nanos().saturating_sub(window);
            while self.llm_requests.front().is_some_and(|&(t, _)| t <= older_than) {
                self.llm_requests.pop_front();
            }
            let count = self.llm_requests.iter().fold(0u32, |sum, &(_, n)| sum.saturating_add(n));
            checks.add(RiskCheckId::MaxLlmCallsPerWindow, count.into(), limit.into(), count < limit);
        }
        if let Some(limit) = budget {
            checks.add(RiskCheckId::LlmDailyBudgetUsd, self.llm_spend_today, limit, self.llm_spend_today < limit);
        }
        let judgement = checks.finish(&self.approved);
        (!judgement.approved).then_some(judgement)
    }

    /// Tells the engine an order for `decision` was submitted at `ts`.
    pub fn on_order(&mut self, ts: TimestampNs, decision: &Decision) {
        self.orders.push_back(ts.nanos());
        self.orders_today = self.orders_today.saturating_add(1);
        if matches!(decision.action, Action::Long | Action::Short) {
            self.last_open = Some(ts.nanos());
        }
        self.last_order = Some((decision.action, Exact(decision.size_pct), ts.nanos()));
    }

    /// Judges one decision. Counts it toward the decision rate.
    pub fn judge(&mut self, input: &RiskInput<'_>) -> Judgement {
        let now = input.tick_ts.nanos();
        let window = self.limits.rate_window_ns.unwrap_or(DEFAULT_RATE_WINDOW_NS);
        prune(&mut self.decisions, now.saturating_sub(window));
        prune(&mut self.orders, now.saturating_sub(window));
        self.decisions.push_back(now);

        let decision = input.decision;
        if decision.action == Action::Hold {
            return Judgement { approved: true, checks: Vec::new(), reason: self.approved.clone() };
        }
        let mut checks = Checks::default();
        let position = input.portfolio.qty(input.instrument);
        if decision.action == Action::Close {
            checks.add(RiskCheckId::PositionExists, position.abs(), Decimal::ZERO, !position.is_zero());
        }
        let price = input.price.unwrap_or(Decimal::ZERO);
        checks.add(RiskCheckId::PriceValid, price, Decimal::ZERO, price > Decimal::ZERO);
        if decision.action == Action::Close {
            return checks.finish(&self.approved);
        }

        let l = &self.limits;
        checks.add(RiskCheckId::KillSwitch, flag(input.kill_switch_tripped), Decimal::ZERO, !input.kill_switch_tripped);
        if let Some(limit) = l.max_price_age_ns {
            let age = input.now.nanos().saturating_sub(input.tick_ts.nanos());
            checks.add(RiskCheckId::PriceStaleness, age.into(), limit.into(), age <= limit);
        }
        if let Some(limit) = l.min_confidence {
            checks.add(RiskCheckId::MinConfidence, decision.confidence, limit, decision.confidence >= limit);
        }
        let equity = input.portfolio.equity();
        let notional = decision.size_pct.checked_mul(equity.max(Decimal::ZERO)).unwrap_or(Decimal::MAX);
        if let Some(limit) = l.max_position_pct {
            let pct = ratio(notional, equity);
            checks.add(RiskCheckId::MaxPositionPct, pct, limit, pct <= limit);
        }
        if let Some(limit) = l.max_position_value {
            checks.add(RiskCheckId::MaxPositionValue, notional, limit, notional <= limit);
        }
        if let Some(limit) = l.min_position_value {
            checks.add(RiskCheckId::MinPositionValue, notional, limit, notional >= limit);
        }
        if let Some(limit) = l.max_gross_leverage {
            let others: Decimal = input
                .portfolio
                .positions
                .iter()
                .filter(|(id, _)| *id != input.instrument)
                .map(|(_, p)| p.value().abs())
                .sum();
            let exposure = others.checked_add(notional).unwrap_or(Decimal::MAX);
            let leverage = if equity > Decimal::ZERO { ratio(exposure, equity) } else { Decimal::MAX };
            checks.add(RiskCheckId::MaxGrossLeverage, leverage, limit, leverage <= limit);
        }
        if let Some(limit) = l.max_open_positions {
            let open = input.portfolio.positions.keys().filter(|id| *id != input.instrument).count() as u32 + 1;
            checks.add(RiskCheckId::MaxOpenPositions, open.into(), limit.into(), open <= limit);
        }
        if let Some(limit) = l.max_order_notional {
            checks.add(RiskCheckId::MaxOrderNotional, notional, limit, notional <= limit);
        }
        if let Some(limit) = l.max_order_qty {
            let qty = ratio(notional, price);
            checks.add(RiskCheckId::MaxOrderQty, qty, limit, qty <= limit);
        }
        if let (Some(limit), Some(previous)) = (l.price_collar_bps, input.previous_price) {
            let bps = if previous > Decimal::ZERO {
                let moved = price.checked_sub(previous).map(|d| d.abs());
                moved
                    .and_then(|m| m.checked_div(previous))
                    .and_then(|f| f.checked_mul(Decimal::from(10_000)))
                    .map_or(Decimal::MAX, |bps| bps.round_dp(RATIO_DP))
            } else {
                Decimal::ZERO
            };
            checks.add(RiskCheckId::PriceCollar, bps, limit, bps <= limit);
        }
        if let Some(limit) = l.daily_loss_cap {
            let loss = if self.day_start_equity > Decimal::ZERO {
                ratio(self.day_start_equity.checked_sub(equity).unwrap_or(Decimal::MAX), self.day_start_equity)
                    .max(Decimal::ZERO)
            } else {
                Decimal::ZERO
            };
            checks.add(RiskCheckId::DailyLossCap, loss, limit, loss < limit);
        }
        if let Some(limit) = l.max_trades_per_day {
            let after = self.orders_today.saturating_add(1);
            checks.add(RiskCheckId::MaxTradesPerDay, after.into(), limit.into(), after <= limit);
        }
        if let (Some(limit), Some(last)) = (l.cooldown_ns, self.last_open) {
            let since = now.saturating_sub(last);
            checks.add(RiskCheckId::Cooldown, since.into(), limit.into(), since >= limit);
        }
        if let Some(limit) = l.max_decisions_per_window {
            let count = self.decisions.len() as u32;
            checks.add(RiskCheckId::MaxDecisionsPerWindow, count.into(), limit.into(), count <= limit);
        }
        if let Some(limit) = l.max_orders_per_window {
            let after = u32::try_from(self.orders.len()).unwrap_or(u32::MAX).saturating_add(1);
            checks.add(RiskCheckId::MaxOrdersPerWindow, after.into(), limit.into(), after <= limit);
        }
        if l.block_duplicate_orders {
            let duplicate = self.last_order.is_some_and(|(a, Exact(s), ts)| {
                a == decision.action && s == decision.size_pct && now.saturating_sub(ts) < window
            });
            checks.add(RiskCheckId::DuplicateOrder, flag(duplicate), Decimal::ZERO, !duplicate);
        }
        self.judge_exits(input, price, &mut checks);
        checks.finish(&self.approved)
    }

    /// The checks on an entry's protective exits: their levels against the entry price
    /// (the limit price, else the reference price), and the configured stop rules.
    fn judge_exits(&self, input: &RiskInput<'_>, price: Decimal, checks: &mut Checks) {
        let decision = input.decision;
        let bracket = input.bracket;
        let entry = decision.terms().limit_price.unwrap_or(price);
        let long = decision.action == Action::Long;
        if !bracket.is_empty() {
            let wrong_stop = bracket.stop_loss.is_some_and(|stop| if long { stop >= entry } else { stop <= entry });
            let wrong_target =
                bracket.take_profit.is_some_and(|target| if long { target <= entry } else { target >= entry });
            let wrong = Decimal::from(u8::from(wrong_stop) + u8::from(wrong_target));
            checks.add(RiskCheckId::ExitLevels, wrong, Decimal::ZERO, wrong.is_zero());
        }
        let stopped = bracket.stop_loss.is_some() || bracket.trailing_stop_pct.is_some();
        if self.limits.require_stop_loss {
            checks.add(RiskCheckId::StopLossRequired, flag(stopped), Decimal::ONE, stopped);
        }
        if let Some(limit) = self.limits.max_loss_at_stop {
            // The distance to the nearest stop as a fraction of the entry price; the
            // whole position when no stop protects it.
            let fixed =
                bracket.stop_loss.map(|stop| ratio(entry.checked_sub(stop).unwrap_or(Decimal::MAX).abs(), entry));
            let distance = match (fixed, bracket.trailing_stop_pct) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => Decimal::ONE,
            };
            let loss = decision.size_pct.checked_mul(distance).map_or(Decimal::MAX, |l| l.round_dp(RATIO_DP));
            checks.add(RiskCheckId::MaxLossAtStop, loss, limit, loss <= limit);
        }
    }
}

/// `num / den` to [`RATIO_DP`] places, or 0 when `den` is not positive; `Decimal::MAX`
/// (or `MIN`) when the quotient leaves the range (a check then fails, never panics).
fn ratio(num: Decimal, den: Decimal) -> Decimal {
    if den <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    match num.checked_div(den) {
        Some(q) => q.round_dp(RATIO_DP),
        None if num.is_sign_negative() => Decimal::MIN,
        None => Decimal::MAX,
    }
}

fn flag(on: bool) -> Decimal {
    if on {
        Decimal::ONE
    } else {
        Decimal::ZERO
    }
}

fn prune(times: &mut VecDeque<i64>, older_than: i64) {
    while times.front().is_some_and(|&t| t <= older_than) {
        times.pop_front();
    }
}

#[derive(Default)]
struct Checks(Vec<RiskCheck>);

impl Checks {
    fn add(&mut self, id: RiskCheckId, value: Decimal, limit: Decimal, passed: bool) {
        self.0.push(RiskCheck { id, value, limit, passed });
    }

    fn finish(self, approved: &Text) -> Judgement {
        let reason = match self.0.iter().find(|c| !c.passed) {
            None => approved.clone(),
            Some(c) => Arc::from(format!("{}: value {} against limit {}", check_name(c.id), c.value, c.limit).as_str()),
        };
        Judgement { approved: self.0.iter().all(|c| c.passed), checks: self.0, reason }
    }
}

/// The snake_case name of a check, as in JSON.
fn check_name(id: RiskCheckId) -> &'static str {
    use RiskCheckId::*;
    match id {
        PositionExists => "position_exists",
        PriceValid => "price_valid",
        PriceStaleness => "price_staleness",
        MinConfidence => "min_confidence",
        MaxPositionPct => "max_position_pct",
        MaxPositionValue => "max_position_value",
        MinPositionValue => "min_position_value",
        MaxGrossLeverage => "max_gross_leverage",
        MaxOpenPositions => "max_open_positions",
        MaxOrderNotional => "max_order_notional",
        MaxOrderQty => "max_order_qty",
        PriceCollar => "price_collar",
        DailyLossCap => "daily_loss_cap",
        MaxTradesPerDay => "max_trades_per_day",
        Cooldown => "cooldown",
        MaxDecisionsPerWindow => "max_decisions_per_window",
        MaxOrdersPerWindow => "max_orders_per_window",
        DuplicateOrder => "duplicate_order",
        KillSwitch => "kill_switch",
        ExitLevels => "exit_levels",
        StopLossRequired => "stop_loss_required",
        MaxLossAtStop => "max_loss_at_stop",
        MaxLlmCallsPerWindow => "max_llm_calls_per_window",
        LlmDailyBudgetUsd => "llm_daily_budget_usd",
    }
}

/// The kill switch: trips on gain, loss or drawdown thresholds and on consecutive
/// failures; once tripped it stays tripped until an operator resets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitch {
    /// From the configuration, not the snapshot ([`KillSwitch::restored`]).
    #[serde(skip)]
    limits: KillSwitchLimits,
    tripped: bool,
    failures: u32,
    /// Decisions in a row whose provider failed.
    provider_errors: u32,
}

impl KillSwitch {
    /// A switch with `limits`, tripped or not (restored from the log).
    pub fn new(limits: KillSwitchLimits, tripped: bool) -> Self {
        KillSwitch { limits, tripped, failures: 0, provider_errors: 0 }
    }

    /// This switch's state from a snapshot, with `self`'s limits (the run's configuration).
    pub fn restored(self, snapshot: KillSwitch) -> KillSwitch {
        KillSwitch { limits: self.limits, ..snapshot }
    }

    /// Whether it is tripped.
    pub fn is_tripped(&self) -> bool {
        self.tripped
    }

    /// Whether positions are closed on a trip.
    pub fn closes_positions(&self) -> bool {
        self.limits.close_positions
    }

    /// Counts a failure (`true`) or a success (`false`, which resets the count).
    pub fn on_outcome(&mut self, failed: bool) {
        self.failures = if failed { self.failures.saturating_add(1) } else { 0 };
    }

    /// Counts a decision whose provider failed (`true`) or did not (`false`, which
    /// resets the count).
    pub fn on_decision(&mut self, provider_failed: bool) {
        self.provider_errors = if provider_failed { self.provider_errors.saturating_add(1) } else { 0 };
    }

    /// Trips the switch (applying a `KillSwitchTripped`).
    pub fn trip(&mut self) {
        self.tripped = true;
    }

    /// Resets the switch and its failure count (applying a `KillSwitchReset`).
    pub fn reset(&mut self) {
        self.tripped = false;
        self.failures = 0;
        self.provider_errors = 0;
    }

    /// Checks the thresholds against `portfolio`; returns the trip event when the switch
    /// is armed and one is crossed. Recording the event trips it ([`KillSwitch::trip`]).
    pub fn check(&self, portfolio: &Portfolio) -> Option<KillSwitchTripped> {
        let l = &self.limits;
        let armed = l.max_gain.is_some()
            || l.max_loss.is_some()
            || l.max_drawdown.is_some()
            || l.max_consecutive_failures.is_some()
            || l.max_provider_errors.is_some();
        if self.tripped || !armed {
            return None;
        }
        let start = portfolio.starting_equity;
        let equity = portfolio.equity();
        let change = match equity.checked_sub(start).and_then(|d| d.checked_div(start)) {
            _ if start <= Decimal::ZERO => Decimal::ZERO,
            Some(change) => change,
            None if equity < start => Decimal::MIN,
            None => Decimal::MAX,
        };
        let provider_errors = l.max_provider_errors.filter(|&limit| self.provider_errors >= limit);
        let trip = if let Some(limit) = l.max_gain.filter(|&limit| change >= limit) {
            Some((KillTrigger::Gain, change, limit))
        } else if let Some(limit) = l.max_loss.filter(|&limit| -change >= limit) {
            Some((KillTrigger::Loss, -change, limit))
        } else if let Some(limit) = l.max_drawdown.filter(|&limit| portfolio.drawdown() >= limit) {
            Some((KillTrigger::Drawdown, portfolio.drawdown(), limit))
        } else if let Some(limit) = provider_errors {
            Some((KillTrigger::Failures, Decimal::from(self.provider_errors), Decimal::from(limit)))
        } else {
            l.max_consecutive_failures
                .filter(|&limit| self.failures >= limit)
                .map(|limit| (KillTrigger::Failures, Decimal::from(self.failures), Decimal::from(limit)))
        };
        let (trigger, value, limit) = trip?;
        let value = value.round_dp(6);
        let what = match provider_errors {
            Some(_) => "provider errors in a row".to_string(),
            None => format!("{trigger:?}").to_lowercase(),
        };
        let reason = Arc::from(format!("{what} {value} reached limit {limit}").as_str());
        Some(KillSwitchTripped { trigger, value, limit, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Liquidity, OrderFilled, Side};
    use crate::ids::{ClientOrderId, FillId};
    use rust_decimal_macros::dec;

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn a_model_call_of_any_request_count_is_one_entry_and_leaves_the_window_whole() {
        let limits = RiskLimits { max_llm_calls_per_window: Some(10), ..RiskLimits::default() };
        let mut engine = RiskEngine::new(limits);
        // A stored ModelCalled may say anything: u32::MAX requests must not allocate them.
        engine.on_model_call(TimestampNs::from_nanos(0), u32::MAX, Decimal::ZERO);
        engine.on_model_call(TimestampNs::from_nanos(SEC), 3, Decimal::ZERO);
        assert_eq!(engine.llm_requests.len(), 2);
        let refused = engine.llm_guard(TimestampNs::from_nanos(2 * SEC)).expect("over the limit");
        assert_eq!(refused.checks[0].value, Decimal::from(u32::MAX));
        // A minute on, the first call left the window: 3 requests, under the limit.
        assert!(engine.llm_guard(TimestampNs::from_nanos(60 * SEC + 1)).is_none());
    }

    fn decision(action: Action, size_pct: Decimal, confidence: Decimal) -> Decision {
        Decision::new(action, size_pct, confidence, Arc::from(""))
    }

    struct Case {
        limits: RiskLimits,
        size_pct: Decimal,
        confidence: Decimal,
        price: Decimal,
        previous: Option<Decimal>,
        age_ns: i64,
        bracket: Bracket,
    }

    impl Default for Case {
        fn default() -> Self {
            Case {
                limits: RiskLimits::default(),
                size_pct: dec!(0.5),
                confidence: dec!(1),
                price: dec!(100),
                previous: None,
                age_ns: 0,
                bracket: Bracket::default(),
            }
        }
    }

    /// Judges a long on a flat 10,000 account and returns (approved, the check's value).
    fn judge(case: Case, id: RiskCheckId) -> (bool, Decimal) {
        let spy = InstrumentId::new("SPY").unwrap();
        let portfolio = Portfolio::new(dec!(10000));
        let mut engine = RiskEngine::new(case.limits);
        engine.on_tick(TimestampNs::from_nanos(0), portfolio.equity());
        let d = decision(Action::Long, case.size_pct, case.confidence);
        let judgement = engine.judge(&RiskInput {
            decision: &d,
            instrument: &spy,
            price: Some(case.price),
            previous_price: case.previous,
            tick_ts: TimestampNs::from_nanos(0),
            now: TimestampNs::from_nanos(case.age_ns),
            portfolio: &portfolio,
            kill_switch_tripped: false,
            bracket: &case.bracket,
        });
        let check = judgement.checks.iter().find(|c| c.id == id).expect("the check ran");
        assert_eq!(check.passed, judgement.approved, "{id:?} decides this verdict");
        (judgement.approved, check.value)
    }

    #[test]
    fn each_check_approves_at_its_limit_and_denies_beyond_it() {
        use RiskCheckId::*;
        let l = RiskLimits::default;
        // (label, check, case at the limit, case just beyond it)
        let cases: Vec<(&str, RiskCheckId, Case, Case)> = vec![
            (
                "TC0 staleness",
                PriceStaleness,
                Case {
                    limits: RiskLimits { max_price_age_ns: Some(5 * SEC), ..l() },
                    age_ns: 5 * SEC,
                    ..Case::default()
                },
                Case {
                    limits: RiskLimits { max_price_age_ns: Some(5 * SEC), ..l() },
                    age_ns: 5 * SEC + 1,
                    ..Case::default()
                },
            ),
            (
                "TC1 confidence",
                MinConfidence,
                Case {
                    limits: RiskLimits { min_confidence: Some(dec!(0.6)), ..l() },
                    confidence: dec!(0.6),
                    ..Case::default()
                },
                Case {
                    limits: RiskLimits { min_confidence: Some(dec!(0.6)), ..l() },
                    confidence: dec!(0.59),
                    ..Case::default()
                },
            ),
            (
                "TC2 position pct",
                MaxPositionPct,
                Case { limits: RiskLimits { max_position_pct: Some(dec!(0.5)), ..l() }, ..Case::default() },
                Case {
                    limits: RiskLimits { max_position_pct: Some(dec!(0.5)), ..l() },
                    size_pct: dec!(0.5001),
                    ..Case::default()
                },
            ),
            (
                "TC3 position value",
                MaxPositionValue,
                Case { limits: RiskLimits { max_position_value: Some(dec!(5000)), ..l() }, ..Case::default() },
                Case { limits: RiskLimits { max_position_value: Some(dec!(4999.99)), ..l() }, ..Case::default() },
            ),
            (
                "TC4 min position value",
                MinPositionValue,
                Case { limits: RiskLimits { min_position_value: Some(dec!(5000)), ..l() }, ..Case::default() },
                Case { limits: RiskLimits { min_position_value: Some(dec!(5000.01)), ..l() }, ..Case::default() },
            ),
            (
                "TC5 gross leverage",
                MaxGrossLeverage,
                Case { limits: RiskLimits { max_gross_leverage: Some(dec!(0.5)), ..l() }, ..Case::default() },
                Case { limits: RiskLimits { max_gross_leverage: Some(dec!(0.49)), ..l() }, ..Case::default() },
            ),
            (
                "TC6 open positions",
                MaxOpenPositions,
                Case { limits: RiskLimits { max_open_positions: Some(1), ..l() }, ..Case::default() },
                Case { limits: RiskLimits { max_open_positions: Some(0), ..l() }, ..Case::default() },
            ),
            (
                "TC7 order notional",
                MaxOrderNotional,
                Case { limits: RiskLimits { max_order_notional: Some(dec!(5000)), ..l() }, ..Case::default() },
                Case { limits: RiskLimits { max_order_notional: Some(dec!(4999)), ..l() }, ..Case::default() },
            ),
            (
                "TC8 order qty",
                MaxOrderQty,
                Case { limits: RiskLimits { max_order_qty: Some(dec!(50)), ..l() }, ..Case::default() },
                Case { limits: RiskLimits { max_order_qty: Some(dec!(49.9)), ..l() }, ..Case::default() },
            ),
            (
                "TC9 price collar",
                PriceCollar,
                Case {
                    limits: RiskLimits { price_collar_bps: Some(dec!(100)), ..l() },
                    previous: Some(dec!(100)),
                    price: dec!(101),
                    ..Case::default()
                },
                Case {
                    limits: RiskLimits { price_collar_bps: Some(dec!(100)), ..l() },
                    previous: Some(dec!(100)),
                    price: dec!(101.01),
                    ..Case::default()
                },
            ),
            (
                "TC10 trades per day",
                MaxTradesPerDay,
                Case { limits: RiskLimits { max_trades_per_day: Some(1), ..l() }, ..Case::default() },
                Case { limits: RiskLimits { max_trades_per_day: Some(0), ..l() }, ..Case::default() },
            ),
            (
                "TC11 decisions per window",
                MaxDecisionsPerWindow,
                Case { limits: RiskLimits { max_decisions_per_window: Some(1), ..l() }, ..Case::default() },
                Case { limits: RiskLimits { max_decisions_per_window: Some(0), ..l() }, ..Case::default() },
            ),
            (
                "TC12 orders per window",
                MaxOrdersPerWindow,
                Case { limits: RiskLimits { max_orders_per_window: Some(1), ..l() }, ..Case::default() },
                Case { limits: RiskLimits { max_orders_per_window: Some(0), ..l() }, ..Case::default() },
            ),
            (
                "TC13 exit levels: a long's stop below the price, its target above",
                ExitLevels,
                Case { bracket: stop_target(dec!(99.99), dec!(100.01)), ..Case::default() },
                Case { bracket: stop_target(dec!(100), dec!(100.01)), ..Case::default() },
            ),
            (
                "TC14 stop required",
                StopLossRequired,
                Case {
                    limits: RiskLimits { require_stop_loss: true, ..l() },
                    bracket: Bracket { trailing_stop_pct: Some(dec!(0.03)), ..Bracket::default() },
                    ..Case::default()
                },
                Case {
                    limits: RiskLimits { require_stop_loss: true, ..l() },
                    bracket: Bracket { take_profit: Some(dec!(110)), ..Bracket::default() },
                    ..Case::default()
                },
            ),
            (
                // Half the equity 2% from its stop risks 1% of it.
                "TC15 loss at the stop",
                MaxLossAtStop,
                Case {
                    limits: RiskLimits { max_loss_at_stop: Some(dec!(0.01)), ..l() },
                    bracket: stop_target(dec!(98), dec!(110)),
                    ..Case::default()
                },
                Case {
                    limits: RiskLimits { max_loss_at_stop: Some(dec!(0.01)), ..l() },
                    bracket: stop_target(dec!(97.99), dec!(110)),
                    ..Case::default()
                },
            ),
        ];
        for (label, id, at, beyond) in cases {
            assert!(judge(at, id).0, "{label}: at the limit must approve");
            assert!(!judge(beyond, id).0, "{label}: beyond the limit must deny");
        }
    }

    fn stop_target(stop: Decimal, target: Decimal) -> Bracket {
        Bracket { stop_loss: Some(stop), take_profit: Some(target), trailing_stop_pct: None }
    }

    fn fill(side: Side, qty: Decimal, price: Decimal) -> OrderFilled {
        OrderFilled {
            client_order_id: ClientOrderId::new("o").unwrap(),
            fill_id: FillId::new(1),
            instrument: InstrumentId::new("SPY").unwrap(),
            side,
            qty,
            price,
            fee: Decimal::ZERO,
            liquidity: Liquidity::Taker,
        }
    }

    #[test]
    fn daily_loss_cooldown_and_duplicates_use_their_counters() {
        let spy = InstrumentId::new("SPY").unwrap();
        let limits = RiskLimits {
            daily_loss_cap: Some(dec!(0.1)),
            cooldown_ns: Some(10 * SEC),
            block_duplicate_orders: true,
            ..RiskLimits::default()
        };
        let mut engine = RiskEngine::new(limits);
        let mut portfolio = Portfolio::new(dec!(1000));
        portfolio.apply_fill(&fill(Side::Buy, dec!(5), dec!(100))).unwrap();
        engine.on_tick(TimestampNs::from_nanos(0), portfolio.equity());
        let long = decision(Action::Long, dec!(0.1), dec!(1));
        let judge = |engine: &mut RiskEngine, at: i64, portfolio: &Portfolio| {
            engine.judge(&RiskInput {
                decision: &long,
                instrument: &spy,
                price: Some(dec!(100)),
                previous_price: None,
                tick_ts: TimestampNs::from_nanos(at),
                now: TimestampNs::from_nanos(at),
                portfolio,
                kill_switch_tripped: false,
                bracket: &Bracket::default(),
            })
        };
        // TC0: first order approved; record it.
        assert!(judge(&mut engine, 0, &portfolio).approved);
        engine.on_order(TimestampNs::from_nanos(0), &long);
        // TC1: inside the cooldown, and a duplicate: denied, both checks failing.
        let j = judge(&mut engine, 5 * SEC, &portfolio);
        let failed: Vec<_> = j.checks.iter().filter(|c| !c.passed).map(|c| c.id).collect();
        assert_eq!(failed, [RiskCheckId::Cooldown, RiskCheckId::DuplicateOrder]);
        // TC2: after the cooldown and the window, but 10% down on the day: the loss cap denies.
        portfolio.mark(&spy, dec!(80)).unwrap(); // equity 1000 - 100 = 900: exactly 10% down
        let j = judge(&mut engine, 120 * SEC, &portfolio);
        let failed: Vec<_> = j.checks.iter().filter(|c| !c.passed).map(|c| c.id).collect();
        assert_eq!(failed, [RiskCheckId::DailyLossCap]);
    }

    #[test]
    fn hold_needs_no_checks_close_needs_a_position_and_kill_switch_blocks_opens() {
        let spy = InstrumentId::new("SPY").unwrap();
        let portfolio = Portfolio::new(dec!(1000));
        let mut engine = RiskEngine::new(RiskLimits::default());
        let mut judge = |action, tripped| {
            let d = decision(action, dec!(0.5), dec!(1));
            engine.judge(&RiskInput {
                decision: &d,
                instrument: &spy,
                price: Some(dec!(100)),
                previous_price: None,
                tick_ts: TimestampNs::from_nanos(0),
                now: TimestampNs::from_nanos(0),
                portfolio: &portfolio,
                kill_switch_tripped: tripped,
                bracket: &Bracket::default(),
            })
        };
        let hold = judge(Action::Hold, false);
        assert!(hold.approved && hold.checks.is_empty());
        let close = judge(Action::Close, false);
        assert!(!close.approved);
        assert_eq!(close.checks[0].id, RiskCheckId::PositionExists);
        let blocked = judge(Action::Long, true);
        assert!(!blocked.approved);
        assert!(blocked.reason.starts_with("kill_switch"), "{}", blocked.reason);
    }

    #[test]
    fn price_validity_always_runs() {
        let spy = InstrumentId::new("SPY").unwrap();
        let portfolio = Portfolio::new(dec!(1000));
        let mut engine = RiskEngine::new(RiskLimits::default());
        let d = decision(Action::Long, dec!(0.5), dec!(1));
        for (label, price, approved) in
            [("TC0 zero", Some(dec!(0)), false), ("TC1 none", None, false), ("TC2 positive", Some(dec!(0.01)), true)]
        {
            let j = engine.judge(&RiskInput {
                decision: &d,
                instrument: &spy,
                price,
                previous_price: None,
                tick_ts: TimestampNs::from_nanos(0),
                now: TimestampNs::from_nanos(0),
                portfolio: &portfolio,
                kill_switch_tripped: false,
                bracket: &Bracket::default(),
            });
            assert_eq!(j.approved, approved, "{label}");
        }
    }

    #[test]
    fn kill_switch_trips_once_on_drawdown_and_stays_tripped() {
        let spy = InstrumentId::new("SPY").unwrap();
        let mut portfolio = Portfolio::new(dec!(1000));
        portfolio.apply_fill(&fill(Side::Buy, dec!(10), dec!(100))).unwrap();
        let mut switch =
            KillSwitch::new(KillSwitchLimits { max_drawdown: Some(dec!(0.2)), ..Default::default() }, false);
        portfolio.mark(&spy, dec!(81)).unwrap(); // equity 810: 19% down
        assert!(switch.check(&portfolio).is_none());
        portfolio.mark(&spy, dec!(80)).unwrap(); // 20%: trips
        let trip = switch.check(&portfolio).expect("trips at the threshold");
        assert_eq!((trip.trigger, trip.value, trip.limit), (KillTrigger::Drawdown, dec!(0.2), dec!(0.2)));
        // Checking changes nothing; recording the trip trips it.
        assert!(!switch.is_tripped());
        switch.trip();
        portfolio.mark(&spy, dec!(70)).unwrap();
        assert!(switch.check(&portfolio).is_none(), "trips once");
        assert!(switch.is_tripped());
        // TC: a reset re-arms it.
        switch.reset();
        assert!(switch.check(&portfolio).is_some());
    }

    #[test]
    fn provider_errors_in_a_row_trip_the_switch_and_any_other_decision_resets_the_count() {
        let limits = KillSwitchLimits { max_provider_errors: Some(3), ..KillSwitchLimits::default() };
        let mut switch = KillSwitch::new(limits, false);
        let portfolio = Portfolio::new(dec!(10000));
        // TC0: two errors, a good decision, two errors: never three in a row.
        for failed in [true, true, false, true, true] {
            switch.on_decision(failed);
            assert!(switch.check(&portfolio).is_none());
        }
        // TC1: the third in a row trips it, the count and the limit recorded.
        switch.on_decision(true);
        let trip = switch.check(&portfolio).expect("three provider errors in a row");
        assert_eq!((trip.trigger, trip.value, trip.limit), (KillTrigger::Failures, dec!(3), dec!(3)));
        assert_eq!(&*trip.reason, "provider errors in a row 3 reached limit 3");
        // TC2: rejected orders (the other failure count) do not count here.
        let mut other =
            KillSwitch::new(KillSwitchLimits { max_provider_errors: Some(1), ..KillSwitchLimits::default() }, false);
        other.on_outcome(true);
        assert!(other.check(&portfolio).is_none());
    }
}
