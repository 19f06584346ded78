//! The audit trail of one run: one row per cycle joining its tick, decision, risk
//! verdict, orders and fills with the account before and after, and one row per run
//! event (start, stop, resume) and per operator event (kill-switch trips and resets,
//! limit changes), folded from the events in seq order, as `ledger audit export` writes
//! them. docs/audit-format.md describes every field.
//!
//! A row covers the events from the one that opens it up to the next opener: a run's
//! market tick opens a cycle row; a run's event outside any cycle, or an operator's
//! kill-switch or limits event (run 0), is a row of its own. Every other event of the
//! run joins the open row, so each of the run's events (and each operator event in the
//! range) lies in exactly one row: the rows' `event_seqs` are the run's events, complete.
//! A fill recorded after its order's cycle (an order that worked across ticks) is in the
//! row of the tick it happened on, naming its order.
//!
//! Memory holds the open row and the orders still working, never the run. The state
//! between rows ([`AuditState`]) is plain data, so an export of a later range carries it
//! and a verifier folds the same rows from the exported records.
//!
//! Row hashes ([`RowChain`]): SHA-256 over the row's RFC 8785 canonical JSON without
//! `row_hash` (with `prev_row_hash`, the hash of the row before; 64 zeros for the first).

use std::borrow::Cow;
use std::collections::BTreeMap;

use canon_json::CanonJsonSerialize;
use ledger_core::chain::Hash32;
use ledger_core::event::{Action, EventRef, KillSwitchTripped, OrderQty, ParseStatus, Payload, Side, Text, TickData};
use ledger_core::ids::{ClientOrderId, InstrumentId, RunId, Seq};
use ledger_core::portfolio::Portfolio;
use ledger_core::time::TimestampNs;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// For `skip_serializing_if` on shared and borrowed text (`String::is_empty` takes a
/// `&String`).
fn str_is_empty(text: &str) -> bool {
    text.is_empty()
}

/// 64 lowercase hex digits of `hash` (as [`Hash32::to_hex`], without its formatter).
pub fn hex(hash: &Hash32) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for &byte in hash.as_bytes() {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2013-10-08T13:30:00.000000000Z`.
pub fn rfc3339_nanos(ts: TimestampNs) -> String {
    Ts(ts).to_string()
}

/// `ts` as RFC 3339 UTC with nanoseconds, 30 ASCII bytes. By hand rather than through
/// chrono's formatter: three of these per row showed in profiles of an export. Checked
/// against chrono by the tests.
fn rfc3339_bytes(ts: TimestampNs) -> [u8; 30] {
    let nanos = ts.nanos();
    let (secs, sub) = (nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000));
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = [0u8; 30];
    let mut put = |at: usize, width: usize, mut value: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    // i64 nanoseconds span the years 1677 to 2262: always four digits.
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, day_secs / 3600);
    put(14, 2, day_secs / 60 % 60);
    put(17, 2, day_secs % 60);
    put(20, 9, sub);
    for (at, byte) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (29, b'Z')] {
        out[at] = byte;
    }
    out
}

/// Reads back what [`rfc3339_bytes`] writes (and nothing else).
fn parse_rfc3339_nanos(text: &str) -> Option<TimestampNs> {
    let b = text.as_bytes();
    if b.len() != 30 {
        return None;
    }
    let num = |at: usize, width: usize| -> Option<i64> {
        b[at..at + width].iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second, sub) = (num(11, 2)?, num(14, 2)?, num(17, 2)?, num(20, 9)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // A civil date to days (the inverse of the algorithm above).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let ts = TimestampNs::from_nanos(secs.checked_mul(1_000_000_000)?.checked_add(sub)?);
    // A day past the month's end (30 February) comes back another date: refused.
    (rfc3339_bytes(ts) == *b).then_some(ts)
}

/// A time in a row: RFC 3339 UTC with nanoseconds, written straight into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ts(pub TimestampNs);

impl std::fmt::Display for Ts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes are ASCII digits and separators.
        f.write_str(std::str::from_utf8(&rfc3339_bytes(self.0)).map_err(|_| std::fmt::Error)?)
    }
}

impl Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = rfc3339_bytes(self.0);
        serializer.serialize_str(std::str::from_utf8(&bytes).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        parse_rfc3339_nanos(&text)
            .map(Ts)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not RFC 3339 UTC with nanoseconds")))
    }
}

/// One row of the audit trail. Money, prices and quantities are decimal strings (exact,
/// as recorded); times RFC 3339 UTC with nanoseconds. A top-level text, list or
/// optional field that is empty (`""`, `[]`, none) is left out of the row's JSON (an
/// empty cell in CSV): "absent" and "empty" are one thing, so both forms hash alike.
///
/// Invariant: the fields of this struct and of every struct in it are declared in
/// sorted order and hold no floats, so serde_json's compact form of a row is its RFC
/// 8785 canonical form ([`RowChain::link`]; checked against canon-json by the tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// `long`, `short`, `close`, `hold`, or `""` without a decision.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub action: Cow<'static, str>,
    /// Who: the operator of a reset, a limits change or a commanded trip; `""` else.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
    /// Cash after them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_after: Option<Dec>,
    /// Cash before the row's events, account currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_before: Option<Dec>,
    /// Every risk check of the verdict, passes included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckView>,
    /// The provider's confidence, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Dec>,
    /// SHA-256 of the run's effective configuration, 64 hex digits.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub config_hash: Text,
    /// The cycle (tick number within the run); 0 outside cycles.
    pub cycle_id: u64,
    /// The provider's reason.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub decision_reason: Text,
    /// The decision's order terms: `limit_price`, `time_in_force`, `stop_loss`,
    /// `take_profit` (prices), `trailing_stop_pct` (fraction); left out without any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_terms: Option<TermsView>,
    /// The run or operator event's own fields, or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
    /// Cash plus positions at their marks after the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equity_after: Option<Dec>,
    /// For `run` and `operator` rows, the event's kind (`RunStarted`, `KillSwitchReset`,
    /// ...); `""` for cycle rows.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub event: Cow<'static, str>,
    /// Seqs of every event the row covers, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_seqs: Vec<u64>,
    /// Fills recorded in the row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fills: Vec<FillView>,
    /// Seq of the row's first event.
    pub first_seq: u64,
    /// The indicator values an LLM provider showed the model, `name=value` space
    /// separated (`ema20=101.2345 ema50=100.1234 rsi14=55.12 trend=up`), from the
    /// cycle's `ModelCalled`; `""` for rules and for holds made without a call.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub indicators: Text,
    /// The tick's instrument (`""` for rows without a tick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument: Option<InstrumentId>,
    /// A kill-switch trip inside the cycle (equity thresholds, failures), or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_switch: Option<TripView>,
    /// Seq of the row's last event.
    pub last_seq: u64,
    /// Provider latency, microseconds.
    pub latency_us: u64,
    /// `Live`, `Paper` or `Replay`: the exported run's mode.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub mode: Text,
    /// Strategy or model name.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub model: Text,
    /// The model call behind the decision (requests, HTTP status, error, cost), from
    /// the cycle's `ModelCalled`, or null without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_call: Option<ModelCallView>,
    /// Accepted, rejected and canceled reports recorded in the row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_updates: Vec<OrderUpdate>,
    /// Orders submitted in the row, with their status at the row's end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<OrderView>,
    /// Provider parameters, `k=v` sorted by key, space separated.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub params: Text,
    /// What was wrong with the output or the provider, or `""`.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub parse_error: Text,
    /// `ok`, `invalid`, `provider_error`, or `""` without a decision.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub parse_status: Cow<'static, str>,
    /// Signed position after, units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_after: Option<Dec>,
    /// Signed position in `instrument` before, units (`""` without an instrument).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_before: Option<Dec>,
    /// The previous row's `row_hash`; 64 zeros for an export's first row. Set by
    /// [`RowChain`], `""` until then.
    pub prev_row_hash: String,
    /// The tick's reference price (bar close, trade price, quote mid), quote currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Dec>,
    /// The prompt sent (`""` for rules).
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub prompt: Text,
    /// SHA-256 of the prompt, 64 hex digits, or `""`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prompt_sha256: String,
    /// Decision provider kind (`rules`, `script`, `openai`, ...), from the run's start.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub provider: Text,
    /// The provider's raw output (`""` for rules).
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub raw_output: Text,
    /// `cycle` (a tick and what followed it), `run` (start, stop, resume) or `operator`
    /// (kill-switch trip or reset, limits change, outside any cycle).
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub row_kind: Cow<'static, str>,
    /// The row's run (0: the operator's, for commands given while no session ran).
    pub run_id: u64,
    /// Fraction of equity asked for, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_pct: Option<Dec>,
    /// Version of the software that wrote the run.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub software_version: Text,
    /// The tick's fields, or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<TickView>,
    /// `bar`, `trade`, `quote` or `""`.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub tick_kind: Cow<'static, str>,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// The tool calls a tool-calling agent made while deciding, in order (`ToolCalled`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallView>,
    /// Source time of the row's first event (the exchange time of a tick).
    pub ts_event: Ts,
    /// When the ledger recorded the row's first event.
    pub ts_recorded: Ts,
    /// When the ledger recorded the row's last event.
    pub ts_recorded_last: Ts,
    /// `approved`, `denied`, or `""` without a verdict.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub verdict: Cow<'static, str>,
    /// Why a verdict denied (the first failed check), else `""`.
    #[serde(default, skip_serializing_if = "str_is_empty")]
    pub verdict_reason: Text,
    /// Seq of the verdict (0 without one).
    pub verdict_seq: u64,
    /// Why, in words: an operator's reason, a trip's or a stop's reason; `""` else.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
}

/// The fields of a run or operator event that have no column of their own; those an
/// event does not have are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Detail {
    /// `RunResumed`: the ledger's last event before the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<u64>,
    /// `RunResumed`: cycles the run had recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles: Option<u64>,
    /// `RunStarted`: where the market data came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<String>,
    /// `RunStarted`: instruments traded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruments: Option<Vec<String>>,
    /// `RunStarted`, `RunResumed`: whether the kill switch was tripped then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_switch_tripped: Option<bool>,
    /// `RiskLimitsChanged`: SHA-256 of the new limits, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_config_hash: Option<String>,
    /// `RunStarted`: for replays, the run replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run: Option<u64>,
    /// `RunStopped`: market data rows skipped as bad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_rows: Option<u64>,
    /// `RunResumed`: the seq of the snapshot the state came from (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_seq: Option<u64>,
    /// `RunStarted`: cash at the start, account currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_cash: Option<Dec>,
    /// `RunStarted`: the venue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    /// `RunResumed`: orders still working at the venue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_orders: Option<Vec<String>>,
}

impl AuditRow {
    /// The row's CSV cells, in [`COLUMNS`] order, the last (`row_hash`) being `hash`:
    /// text as it is, integers in decimal, lists and objects as their canonical JSON
    /// (serde_json's compact form: see the invariant on [`AuditRow`]), and an absent or
    /// empty value as an empty cell.
    ///
    /// # Errors
    /// Serialization errors (none for rows the fold makes).
    pub fn csv_cells(&self, hash: &Hash32) -> serde_json::Result<Vec<String>> {
        fn json<T: Serialize>(value: &T, absent: bool) -> serde_json::Result<String> {
            if absent {
                Ok(String::new())
            } else {
                serde_json::to_string(value)
            }
        }
        fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
            value.map(|v| v.to_string()).unwrap_or_default()
        }
        Ok(vec![
            self.row_kind.to_string(),
            self.event.to_string(),
            self.run_id.to_string(),
            self.mode.to_string(),
            self.config_hash.to_string(),
            self.software_version.to_string(),
            self.cycle_id.to_string(),
            self.first_seq.to_string(),
            self.last_seq.to_string(),
            json(&self.event_seqs, self.event_seqs.is_empty())?,
            self.ts_event.to_string(),
            self.ts_recorded.to_string(),
            self.ts_recorded_last.to_string(),
            opt(self.instrument),
            self.tick_kind.to_string(),
            opt(self.price),
            json(&self.tick, self.tick.is_none())?,
            self.provider.to_string(),
            self.model.to_string(),
            self.params.to_string(),
            self.prompt_sha256.clone(),
            self.prompt.to_string(),
            self.raw_output.to_string(),
            self.action.to_string(),
            opt(self.size_pct),
            opt(self.confidence),
            self.decision_reason.to_string(),
            json(&self.decision_terms, self.decision_terms.is_none())?,
            self.parse_status.to_string(),
            self.parse_error.to_string(),
            self.latency_us.to_string(),
            self.tokens_in.to_string(),
            self.tokens_out.to_string(),
            self.indicators.to_string(),
            json(&self.model_call, self.model_call.is_none())?,
            json(&self.tool_calls, self.tool_calls.is_empty())?,
            self.verdict.to_string(),
            self.verdict_seq.to_string(),
            self.verdict_reason.to_string(),
            json(&self.checks, self.checks.is_empty())?,
            json(&self.orders, self.orders.is_empty())?,
            json(&self.order_updates, self.order_updates.is_empty())?,
            json(&self.fills, self.fills.is_empty())?,
            json(&self.kill_switch, self.kill_switch.is_none())?,
            self.by.clone(),
            self.why.clone(),
            json(&self.detail, self.detail.is_none())?,
            opt(self.cash_before),
            opt(self.cash_after),
            opt(self.position_before),
            opt(self.position_after),
            opt(self.equity_after),
            self.prev_row_hash.clone(),
            hex(hash),
        ])
    }
}

/// Order terms of a decision, or the exits of an entry order; those not given are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TermsView {
    /// Limit price of the entry, quote currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Dec>,
    /// Stop-loss price, quote currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<Dec>,
    /// Take-profit price, quote currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<Dec>,
    /// Time in force of the entry: `gtc`, `ioc` or `day`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<String>,
    /// Trailing stop distance, a fraction of the best price since entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailing_stop_pct: Option<Dec>,
}

/// A tick's fields; those the tick does not have are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TickView {
    /// Trade: aggressor side, `buy` or `sell`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggressor: Option<String>,
    /// Quote: best ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<Dec>,
    /// Quote: ask quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_size: Option<Dec>,
    /// Quote: best bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid: Option<Dec>,
    /// Quote: bid quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid_size: Option<Dec>,
    /// Bar: last price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<Dec>,
    /// Bar: highest price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Dec>,
    /// Bar: length, nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ns: Option<i64>,
    /// Bar: lowest price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<Dec>,
    /// Bar: first price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<Dec>,
    /// Trade: quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Dec>,
    /// Trade: price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_price: Option<Dec>,
    /// Bar: traded quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Dec>,
}

/// A model's call for a decision (`ModelCalled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCallView {
    /// Cost in US dollars from the configured token prices.
    pub cost_usd: Dec,
    /// The failure, `""` when the call succeeded.
    pub error: Text,
    /// HTTP status of the last response, or null when none came.
    pub http_status: Option<u16>,
    /// HTTP requests the decision took (tool rounds and the final answer).
    pub requests: u32,
    /// Seq of the `ModelCalled` event.
    pub seq: u64,
}

/// One tool call of a tool-calling agent (`ToolCalled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallView {
    /// The model's arguments, canonical JSON text.
    pub arguments: Text,
    /// The tool's name (`get_quote`, `check_risk`, ...).
    pub name: Text,
    /// The answer given to the model, JSON text (or an error message).
    pub result: Text,
    /// The conversation round, from 1.
    pub round: u32,
    /// Seq of the `ToolCalled` event.
    pub seq: u64,
}

/// One risk check of a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    /// The check's id (`max_position_pct`, ...; docs/events.md gives each one's unit).
    pub id: String,
    /// The configured limit.
    pub limit: Dec,
    /// Whether the value is within the limit.
    pub passed: bool,
    /// The measured value.
    pub value: Dec,
}

/// An order submitted in the row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Quantity-weighted fill price by the row's end, or null before any fill.
    pub avg_price: Option<Dec>,
    /// For an entry: the exits placed when it fills (`stop_loss`, `take_profit` prices,
    /// `trailing_stop_pct` fraction), or null.
    pub bracket: Option<TermsView>,
    /// The event that caused it (an approved verdict, a kill-switch trip), if any.
    pub cause_seq: Option<u64>,
    /// Our id for the order.
    pub client_order_id: String,
    /// For a protective exit: `stop_loss`, `take_profit` or `trailing_stop`, or null.
    pub exit_kind: Option<String>,
    /// Units filled by the row's end.
    pub filled_qty: Dec,
    /// The instrument.
    pub instrument: InstrumentId,
    /// Limit price, quote currency, or null.
    pub limit_price: Option<Dec>,
    /// `market` or `limit`.
    pub order_type: String,
    /// What it comes from: `verdict` (the row's verdict), `kill_switch` (the row's trip),
    /// `protective_exit` (an exit of the entry `protects` names), `close_at_end` (no
    /// cause: the end of the data), or `other`.
    pub origin: String,
    /// For a protective exit: the entry order it protects, or null.
    pub protects: Option<String>,
    /// How much: units, account currency or a fraction of the money available.
    pub qty: Dec,
    /// `units`, `notional` or `equity_fraction`.
    pub qty_unit: String,
    /// Why it was rejected or canceled, else `""`.
    pub reason: String,
    /// Whether it may only reduce a position (exits).
    pub reduce_only: bool,
    /// Seq of its `OrderSubmitted`.
    pub seq: u64,
    /// `buy` or `sell`.
    pub side: String,
    /// At the row's end: `submitted`, `accepted`, `partially_filled`, `filled`,
    /// `rejected` or `canceled`.
    pub status: String,
    /// Stop (trigger) price of a stop order, quote currency, or null.
    pub stop_price: Option<Dec>,
    /// `gtc`, `ioc` or `day`.
    pub tif: String,
}

/// An accepted, rejected or canceled report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderUpdate {
    /// The order.
    pub client_order_id: String,
    /// Why (rejected, canceled), else `""`.
    pub reason: String,
    /// Seq of the report.
    pub seq: u64,
    /// `accepted`, `rejected`, `canceled` or `amended` (a trailing stop moved).
    pub status: String,
    /// For `amended`: the new stop price, quote currency, or null.
    pub stop_price: Option<Dec>,
}

/// A fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillView {
    /// The order filled.
    pub client_order_id: String,
    /// Commission, account currency.
    pub fee: Dec,
    /// The venue's fill id.
    pub fill_id: String,
    /// `maker` or `taker`.
    pub liquidity: String,
    /// The order's quantity-weighted fill price so far.
    pub order_avg_price: Dec,
    /// The order's units filled so far, this fill included.
    pub order_filled_qty: Dec,
    /// Fill price, quote currency, slippage included.
    pub price: Dec,
    /// Units filled, positive.
    pub qty: Dec,
    /// Seq of the `OrderFilled`.
    pub seq: u64,
    /// `buy` or `sell`.
    pub side: String,
    /// When it was recorded.
    pub ts_recorded: Ts,
}

/// A kill-switch trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripView {
    /// The threshold, same unit.
    pub limit: Dec,
    /// In words.
    pub reason: String,
    /// Seq of the trip.
    pub seq: u64,
    /// `gain`, `loss`, `drawdown`, `failures` or `command`.
    pub trigger: String,
    /// The measured value (a fraction, or a count of failures).
    pub value: Dec,
}

/// How a CSV cell holds a column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// The text itself.
    String,
    /// A decimal integer.
    Integer,
    /// Canonical JSON (RFC 8785); an empty cell is null.
    Json,
}

impl ColumnType {
    /// The name docs/audit-format.md and the manifest use.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Integer => "integer",
            ColumnType::Json => "json",
        }
    }
}

/// The columns of the CSV form, in order, with how each cell holds its value: every
/// field of [`AuditRow`], then `row_hash`.
pub const COLUMNS: &[(&str, ColumnType)] = &[
    ("row_kind", ColumnType::String),
    ("event", ColumnType::String),
    ("run_id", ColumnType::Integer),
    ("mode", ColumnType::String),
    ("config_hash", ColumnType::String),
    ("software_version", ColumnType::String),
    ("cycle_id", ColumnType::Integer),
    ("first_seq", ColumnType::Integer),
    ("last_seq", ColumnType::Integer),
    ("event_seqs", ColumnType::Json),
    ("ts_event", ColumnType::String),
    ("ts_recorded", ColumnType::String),
    ("ts_recorded_last", ColumnType::String),
    ("instrument", ColumnType::String),
    ("tick_kind", ColumnType::String),
    ("price", ColumnType::String),
    ("tick", ColumnType::Json),
    ("provider", ColumnType::String),
    ("model", ColumnType::String),
    ("params", ColumnType::String),
    ("prompt_sha256", ColumnType::String),
    ("prompt", ColumnType::String),
    ("raw_output", ColumnType::String),
    ("action", ColumnType::String),
    ("size_pct", ColumnType::String),
    ("confidence", ColumnType::String),
    ("decision_reason", ColumnType::String),
    ("decision_terms", ColumnType::Json),
    ("parse_status", ColumnType::String),
    ("parse_error", ColumnType::String),
    ("latency_us", ColumnType::Integer),
    ("tokens_in", ColumnType::Integer),
    ("tokens_out", ColumnType::Integer),
    ("indicators", ColumnType::String),
    ("model_call", ColumnType::Json),
    ("tool_calls", ColumnType::Json),
    ("verdict", ColumnType::String),
    ("verdict_seq", ColumnType::Integer),
    ("verdict_reason", ColumnType::String),
    ("checks", ColumnType::Json),
    ("orders", ColumnType::Json),
    ("order_updates", ColumnType::Json),
    ("fills", ColumnType::Json),
    ("kill_switch", ColumnType::Json),
    ("by", ColumnType::String),
    ("why", ColumnType::String),
    ("detail", ColumnType::Json),
    ("cash_before", ColumnType::String),
    ("cash_after", ColumnType::String),
    ("position_before", ColumnType::String),
    ("position_after", ColumnType::String),
    ("equity_after", ColumnType::String),
    ("prev_row_hash", ColumnType::String),
    ("row_hash", ColumnType::String),
];

/// What the exported run is: from its `RunStarted`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `Live`, `Paper` or `Replay` (`""` before the `RunStarted`).
    pub mode: Text,
    /// SHA-256 of the run's configuration, hex.
    pub config_hash: Text,
    /// Software version that wrote the run.
    pub software_version: Text,
    /// Decision provider kind.
    pub provider: Text,
    /// Strategy or model.
    pub model: Text,
    /// Provider parameters.
    pub params: Text,
}

/// An order still working, as the fold tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingOrder {
    /// Units filled so far.
    pub filled: Decimal,
    /// Sum of fill quantity times price, for the average.
    pub filled_notional: Decimal,
}

/// The fold's state between rows: what a row needs from before it. Serialized into an
/// export's manifest (`start_state`) so a verifier can fold the exported records alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditState {
    /// The run exported.
    pub run: RunId,
    /// From its `RunStarted`.
    pub info: RunInfo,
    /// The run's account (moved by fills, marked by ticks).
    pub portfolio: Portfolio,
    /// Orders submitted and not yet filled, rejected or canceled.
    pub working: BTreeMap<ClientOrderId, WorkingOrder>,
}

impl AuditState {
    /// The state before run `run`'s first event.
    pub fn new(run: RunId) -> Self {
        AuditState { run, info: RunInfo::default(), portfolio: Portfolio::new(Decimal::ZERO), working: BTreeMap::new() }
    }
}

/// The audit rows of one run, folded event by event; closed rows are collected for
/// [`AuditFold::take_rows`]. Serializable (as JSON: rows leave empty fields out) at any
/// event, open row included, for a projection that stops and continues.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditFold {
    state: AuditState,
    open: Option<AuditRow>,
    /// Where each order of the open row sits in its `orders`.
    open_orders: BTreeMap<ClientOrderId, usize>,
    done: Vec<AuditRow>,
}

fn dec(value: Decimal) -> Dec {
    Dec(value)
}

/// A decimal in a row: written as its decimal string (scale kept: `97.3600`) straight
/// into the output, without a `String` between (rows hold a dozen of them).
#[derive(Debug, Clone, Copy)]
pub struct Dec(pub Decimal);

/// Equal when written alike: the same value at the same scale (`1.0` is not `1.00`).
impl PartialEq for Dec {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.0.scale() == other.0.scale()
    }
}

impl Eq for Dec {}

impl std::fmt::Display for Dec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(decimal_text(self.0, &mut [0; DECIMAL_TEXT]))
    }
}

impl Serialize for Dec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(decimal_text(self.0, &mut [0; DECIMAL_TEXT]))
    }
}

/// Bytes [`decimal_text`] needs at most: a sign, 29 digits and a point, or a sign, `0.`
/// and 28 places.
const DECIMAL_TEXT: usize = 32;

/// `value` written as `Decimal`'s `Display` writes it (every place of its scale kept,
/// `-` whenever its sign is negative, zero included), into `out`. By hand, from the
/// mantissa's digits: a dozen per row went through the formatting machinery, a tenth of
/// an export's CPU. Checked against `Display` by the tests.
fn decimal_text(value: Decimal, out: &mut [u8; DECIMAL_TEXT]) -> &str {
    let mut itoa = itoa::Buffer::new();
    let digits = itoa.format(value.mantissa().unsigned_abs()).as_bytes();
    let scale = value.scale() as usize;
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        out[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    if value.is_sign_negative() {
        put(b"-");
    }
    if scale == 0 {
        put(digits);
    } else if digits.len() > scale {
        let (whole, places) = digits.split_at(digits.len() - scale);
        put(whole);
        put(b".");
        put(places);
    } else {
        put(b"0.");
        put(&b"0000000000000000000000000000"[..scale - digits.len()]);
        put(digits);
    }
    // Only ASCII digits, `-` and `.` were written.
    std::str::from_utf8(&out[..len]).unwrap_or_default()
}

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse::<Decimal>().map(Dec).map_err(serde::de::Error::custom)
    }
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// Lower-case snake form of a serde enum name (`MaxPositionPct` -> `max_position_pct`).
fn snake(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn debug_snake(value: &impl std::fmt::Debug) -> String {
    snake(&format!("{value:?}"))
}

fn trip_view(seq: Seq, trip: &KillSwitchTripped) -> TripView {
    TripView {
        seq: seq.get(),
        trigger: debug_snake(&trip.trigger),
        value: dec(trip.value),
        limit: dec(trip.limit),
        reason: trip.reason.to_string(),
    }
}

/// Who gave a commanded trip: the engine writes its reason `tripped by WHO: WHY`.
fn trip_by(reason: &str) -> (String, String) {
    match reason.strip_prefix("tripped by ").and_then(|rest| rest.split_once(": ")) {
        Some((by, why)) => (by.to_string(), why.to_string()),
        None => (String::new(), reason.to_string()),
    }
}

impl AuditFold {
    /// The fold of run `run` from its start.
    pub fn new(run: RunId) -> Self {
        AuditFold::resume(AuditState::new(run))
    }

    /// The fold continued from `state` (taken with [`AuditFold::state`] between rows).
    pub fn resume(state: AuditState) -> Self {
        AuditFold { state, open: None, open_orders: BTreeMap::new(), done: Vec::new() }
    }

    /// The state between rows: valid right before an event for which
    /// [`AuditFold::opens_row`] is true.
    pub fn state(&self) -> &AuditState {
        &self.state
    }

    /// Whether `event` belongs in the trail: the run's own, or an operator's
    /// kill-switch or limits event.
    pub fn is_relevant(&self, event: &EventRef<'_>) -> bool {
        event.run_id == self.state.run
            || (event.run_id.get() == 0
                && matches!(
                    event.payload,
                    Payload::KillSwitchTripped(_) | Payload::KillSwitchReset(_) | Payload::RiskLimitsChanged(_)
                ))
    }

    /// Whether `event` closes the open row and starts a new one: a tick of the run, or
    /// a relevant event outside any cycle.
    pub fn opens_row(&self, event: &EventRef<'_>) -> bool {
        self.is_relevant(event) && (matches!(event.payload, Payload::MarketTick(_)) || event.cycle_id.get() == 0)
    }

    /// Rows closed so far, handed over (oldest first).
    pub fn take_rows(&mut self) -> std::vec::Drain<'_, AuditRow> {
        self.done.drain(..)
    }

    /// Closes the open row (at the end of the events or of the range).
    pub fn finish(&mut self) {
        self.close();
    }

    fn blank_row(&self, event: &EventRef<'_>, row_kind: &'static str, instrument: Option<InstrumentId>) -> AuditRow {
        let info = &self.state.info;
        let position = instrument.map(|i| dec(self.state.portfolio.qty(&i)));
        AuditRow {
            row_kind: Cow::Borrowed(row_kind),
            event: Cow::Borrowed(""),
            run_id: event.run_id.get(),
            mode: info.mode.clone(),
            config_hash: info.config_hash.clone(),
            software_version: info.software_version.clone(),
            cycle_id: event.cycle_id.get(),
            first_seq: event.seq.get(),
            indicators: Text::from(""),
            last_seq: event.seq.get(),
            event_seqs: Vec::new(),
            ts_event: Ts(event.ts_event),
            ts_recorded: Ts(event.ts_recorded),
            ts_recorded_last: Ts(event.ts_recorded),
            instrument,
            tick_kind: Cow::Borrowed(""),
            price: None,
            tick: None,
            provider: info.provider.clone(),
            model: info.model.clone(),
            model_call: None,
            params: info.params.clone(),
            prompt_sha256: String::new(),
            prompt: Text::from(""),
            raw_output: Text::from(""),
            action: Cow::Borrowed(""),
            size_pct: None,
            confidence: None,
            decision_reason: Text::from(""),
            decision_terms: None,
            parse_status: Cow::Borrowed(""),
            parse_error: Text::from(""),
            latency_us: 0,
            tokens_in: 0,
            tokens_out: 0,
            tool_calls: Vec::new(),
            verdict: Cow::Borrowed(""),
            verdict_seq: 0,
            verdict_reason: Text::from(""),
            checks: Vec::new(),
            orders: Vec::new(),
            order_updates: Vec::new(),
            fills: Vec::new(),
            kill_switch: None,
            by: String::new(),
            why: String::new(),
            detail: None,
            cash_before: Some(dec(self.state.portfolio.cash)),
            cash_after: None,
            position_before: position,
            position_after: None,
            equity_after: None,
            prev_row_hash: String::new(),
        }
    }

    fn close(&mut self) {
        let Some(mut row) = self.open.take() else { return };
        self.open_orders.clear();
        let portfolio = &self.state.portfolio;
        row.cash_after = Some(dec(portfolio.cash));
        row.equity_after = Some(dec(portfolio.equity()));
        if let Some(instrument) = row.instrument {
            row.position_after = Some(dec(portfolio.qty(&instrument)));
        }
        self.done.push(row);
    }

    /// Applies one event (events in seq order; others than the run's and the
    /// operator's are passed over).
    pub fn apply(&mut self, event: &EventRef<'_>) {
        if !self.is_relevant(event) {
            return;
        }
        if self.opens_row(event) {
            self.close();
        }
        if event.run_id == self.state.run {
            // The account, by the same rules as the engine's.
            match event.payload {
                Payload::RunStarted(started) => {
                    self.state.portfolio = Portfolio::new(started.starting_cash);
                    self.state.info = RunInfo {
                        mode: format!("{:?}", started.mode).into(),
                        config_hash: started.config_hash.to_hex().into(),
                        software_version: started.software_version.clone(),
                        provider: started.provider.clone(),
                        model: started.model.clone(),
                        params: started.params.clone(),
                    };
                }
                Payload::MarketTick(tick) => {
                    let _ = self.state.portfolio.mark(&tick.instrument, tick.data.reference_price());
                }
                _ => {}
            }
        }
        match event.payload {
            Payload::MarketTick(tick) => {
                let mut row = self.blank_row(event, "cycle", Some(tick.instrument));
                // The position before is the one the tick found (marks move no units).
                row.tick_kind = Cow::Borrowed(match &tick.data {
                    TickData::Bar(_) => "bar",
                    TickData::Trade(_) => "trade",
                    TickData::Quote(_) => "quote",
                });
                row.price = Some(dec(tick.data.reference_price()));
                row.tick = Some(tick_view(&tick.data));
                self.open = Some(row);
            }
            _ if event.cycle_id.get() == 0 => {
                let kind = event.payload.kind();
                let row_kind = match event.payload {
                    Payload::RunStarted(_) | Payload::RunStopped(_) | Payload::RunResumed(_) => "run",
                    Payload::VenueNotice(_) => "venue",
                    _ => "operator",
                };
                let mut row = self.blank_row(event, row_kind, None);
                row.event = Cow::Borrowed(kind);
                self.operator_fields(&mut row, event);
                self.open = Some(row);
            }
            _ => {
                if self.open.is_none() {
                    // A cycle's event without its tick in range (a resumed run's report).
                    self.open = Some(self.blank_row(event, "cycle", None));
                }
                self.cycle_event(event);
            }
        }
        if let Some(row) = self.open.as_mut() {
            row.last_seq = event.seq.get();
            row.event_seqs.push(event.seq.get());
            row.ts_recorded_last = Ts(event.ts_recorded);
        }
    }

    fn operator_fields(&self, row: &mut AuditRow, event: &EventRef<'_>) {
        match event.payload {
            Payload::RunStarted(s) => {
                row.detail = Some(Detail {
                    venue: Some(s.venue.to_string()),
                    instruments: Some(s.instruments.iter().map(|i| i.to_string()).collect()),
                    parent_run: s.parent_run.map(|r| r.get()),
                    data_source: Some(s.data_source.to_string()),
                    starting_cash: Some(dec(s.starting_cash)),
                    kill_switch_tripped: Some(s.kill_switch_tripped),
                    ..Detail::default()
                });
            }
            Payload::RunStopped(s) => {
                row.why = s.reason.to_string();
                row.detail = Some(Detail { skipped_rows: Some(s.skipped_rows), ..Detail::default() });
            }
            Payload::RunResumed(r) => {
                row.detail = Some(Detail {
                    after_seq: Some(r.after_seq.get()),
                    cycles: Some(r.cycles),
                    snapshot_seq: Some(r.snapshot_seq.get()),
                    working_orders: Some(r.working_orders.iter().map(|o| o.to_string()).collect()),
                    kill_switch_tripped: Some(r.kill_switch_tripped),
                    ..Detail::default()
                });
            }
            Payload::KillSwitchTripped(trip) => {
                (row.by, row.why) = trip_by(&trip.reason);
                row.kill_switch = Some(trip_view(event.seq, trip));
            }
            Payload::KillSwitchReset(reset) => {
                (row.by, row.why) = (reset.by.to_string(), reset.reason.to_string());
            }
            Payload::RiskLimitsChanged(change) => {
                (row.by, row.why) = (change.by.to_string(), change.reason.to_string());
                row.detail =
                    Some(Detail { limits_config_hash: Some(change.config_hash.to_hex()), ..Detail::default() });
            }
            Payload::VenueNotice(notice) => {
                (row.by, row.why) =
                    (notice.venue.to_string(), format!("{:?} {}: {}", notice.kind, notice.stream, notice.detail));
            }
            _ => {}
        }
    }

    fn cycle_event(&mut self, event: &EventRef<'_>) {
        let Some(row) = self.open.as_mut() else { return };
        match event.payload {
            Payload::DecisionMade(made) => {
                row.prompt_sha256 = made.prompt_sha256.map(|h| h.to_hex()).unwrap_or_default();
                row.prompt = made.prompt.clone();
                row.raw_output = made.raw_output.clone();
                row.action = Cow::Borrowed(match made.parsed.action {
                    Action::Long => "long",
                    Action::Short => "short",
                    Action::Close => "close",
                    Action::Hold => "hold",
                });
                row.size_pct = Some(dec(made.parsed.size_pct));
                row.confidence = Some(dec(made.parsed.confidence));
                row.decision_reason = made.parsed.reason.clone();
                let terms = made.parsed.terms();
                row.decision_terms = (!terms.is_empty()).then(|| TermsView {
                    limit_price: terms.limit_price.map(dec),
                    stop_loss: terms.stop_loss.map(dec),
                    take_profit: terms.take_profit.map(dec),
                    time_in_force: terms.time_in_force.as_ref().map(debug_snake),
                    trailing_stop_pct: terms.trailing_stop_pct.map(dec),
                });
                (row.parse_status, row.parse_error) = match &made.parse_status {
                    ParseStatus::Ok => (Cow::Borrowed("ok"), Text::from("")),
                    ParseStatus::Invalid(why) => (Cow::Borrowed("invalid"), why.clone()),
                    ParseStatus::ProviderError(why) => (Cow::Borrowed("provider_error"), why.clone()),
                };
                row.latency_us = made.latency_us;
                row.tokens_in = u64::from(made.tokens_in);
                row.tokens_out = u64::from(made.tokens_out);
            }
            Payload::RiskVerdict(verdict) => {
                row.verdict = Cow::Borrowed(if verdict.approved { "approved" } else { "denied" });
                row.verdict_seq = event.seq.get();
                row.verdict_reason = verdict.reason.clone();
                row.checks = verdict
                    .checks
                    .iter()
                    .map(|c| CheckView {
                        id: debug_snake(&c.id),
                        value: dec(c.value),
                        limit: dec(c.limit),
                        passed: c.passed,
                    })
                    .collect();
            }
            Payload::KillSwitchTripped(trip) => row.kill_switch = Some(trip_view(event.seq, trip)),
            Payload::ToolCalled(call) => row.tool_calls.push(ToolCallView {
                arguments: call.arguments.clone(),
                name: call.name.clone(),
                result: call.result.clone(),
                round: call.round,
                seq: event.seq.get(),
            }),
            Payload::ModelCalled(call) => {
                row.indicators = call.indicators.clone();
                row.model_call = Some(ModelCallView {
                    cost_usd: dec(call.cost_usd),
                    error: call.error.clone(),
                    http_status: call.http_status,
                    requests: call.requests,
                    seq: event.seq.get(),
                });
            }
            Payload::OrderSubmitted(order) => {
                let (qty, qty_unit) = match order.qty {
                    OrderQty::Units(q) => (q, "units"),
                    OrderQty::Notional(q) => (q, "notional"),
                    OrderQty::EquityFraction(q) => (q, "equity_fraction"),
                };
                let origin = match event.causation_seq {
                    _ if order.protects.is_some() => "protective_exit",
                    None => "close_at_end",
                    Some(cause) if row.kill_switch.as_ref().is_some_and(|t| t.seq == cause.get()) => "kill_switch",
                    Some(cause) if row.verdict_seq == cause.get() => "verdict",
                    Some(_) => "other",
                };
                self.open_orders.insert(order.client_order_id, row.orders.len());
                row.orders.push(OrderView {
                    client_order_id: order.client_order_id.to_string(),
                    seq: event.seq.get(),
                    cause_seq: event.causation_seq.map(Seq::get),
                    origin: origin.into(),
                    instrument: order.instrument,
                    side: side(order.side).into(),
                    qty: dec(qty),
                    qty_unit: qty_unit.into(),
                    order_type: debug_snake(&order.order_type),
                    limit_price: order.limit_price.map(dec),
                    stop_price: order.stop_price.map(dec),
                    reduce_only: order.reduce_only,
                    protects: order.protects.as_ref().map(|p| p.entry.to_string()),
                    exit_kind: order.protects.as_ref().map(|p| p.kind.name().to_string()),
                    bracket: order.bracket.as_deref().map(|b| TermsView {
                        stop_loss: b.stop_loss.map(dec),
                        take_profit: b.take_profit.map(dec),
                        trailing_stop_pct: b.trailing_stop_pct.map(dec),
                        ..TermsView::default()
                    }),
                    tif: debug_snake(&order.tif),
                    status: "submitted".into(),
                    reason: String::new(),
                    filled_qty: dec(Decimal::ZERO),
                    avg_price: None,
                });
                self.state.working.insert(
                    order.client_order_id,
                    WorkingOrder { filled: Decimal::ZERO, filled_notional: Decimal::ZERO },
                );
            }
            Payload::OrderAccepted(accepted) => {
                self.update(event.seq, accepted.client_order_id, "accepted", "", None);
            }
            Payload::OrderRejected(rejected) => {
                self.update(event.seq, rejected.client_order_id, "rejected", &rejected.reason, None);
            }
            Payload::OrderCanceled(canceled) => {
                self.update(event.seq, canceled.client_order_id, "canceled", &canceled.reason, None);
            }
            Payload::OrderAmended(amended) => {
                let stop = Some(dec(amended.stop_price));
                self.update(event.seq, amended.client_order_id, "amended", &amended.reason, stop);
            }
            Payload::OrderFilled(fill) => {
                if event.run_id == self.state.run {
                    let _ = self.state.portfolio.apply_fill(fill);
                }
                let working = self
                    .state
                    .working
                    .entry(fill.client_order_id)
                    .or_insert(WorkingOrder { filled: Decimal::ZERO, filled_notional: Decimal::ZERO });
                working.filled = working.filled.checked_add(fill.qty).unwrap_or(working.filled);
                working.filled_notional = fill
                    .qty
                    .checked_mul(fill.price)
                    .and_then(|n| working.filled_notional.checked_add(n))
                    .unwrap_or(working.filled_notional);
                let filled = working.filled;
                let avg = working.filled_notional.checked_div(filled).unwrap_or_default();
                let Some(row) = self.open.as_mut() else { return };
                row.fills.push(FillView {
                    fill_id: fill.fill_id.to_string(),
                    client_order_id: fill.client_order_id.to_string(),
                    seq: event.seq.get(),
                    ts_recorded: Ts(event.ts_recorded),
                    side: side(fill.side).into(),
                    qty: dec(fill.qty),
                    price: dec(fill.price),
                    fee: dec(fill.fee),
                    liquidity: debug_snake(&fill.liquidity),
                    order_filled_qty: dec(filled),
                    order_avg_price: dec(avg),
                });
                if let Some(&at) = self.open_orders.get(&fill.client_order_id) {
                    let view = &mut row.orders[at];
                    let total = match view.qty_unit.as_str() {
                        "units" => Some(view.qty.0),
                        _ => None,
                    };
                    view.status = if total.is_some_and(|t| filled < t) { "partially_filled" } else { "filled" }.into();
                    view.filled_qty = dec(filled);
                    view.avg_price = Some(dec(avg));
                }
                // A fill of the whole order (or of a sized-at-fill order) ends it.
                let ends = match self.open_orders.get(&fill.client_order_id) {
                    Some(&at) => row.orders[at].status == "filled",
                    None => true,
                };
                if ends {
                    self.state.working.remove(&fill.client_order_id);
                }
            }
            _ => {}
        }
    }

    fn update(&mut self, seq: Seq, order: ClientOrderId, status: &str, reason: &str, stop_price: Option<Dec>) {
        let Some(row) = self.open.as_mut() else { return };
        row.order_updates.push(OrderUpdate {
            client_order_id: order.to_string(),
            seq: seq.get(),
            status: status.into(),
            reason: reason.into(),
            stop_price,
        });
        let terminal = matches!(status, "rejected" | "canceled");
        if let Some(&at) = self.open_orders.get(&order) {
            let view = &mut row.orders[at];
            if stop_price.is_some() {
                view.stop_price = stop_price;
            } else if !matches!(view.status.as_str(), "filled" | "partially_filled") || terminal {
                view.status = status.into();
                view.reason = reason.into();
            }
        }
        if terminal {
            self.state.working.remove(&order);
        }
    }
}

fn tick_view(data: &TickData) -> TickView {
    match data {
        TickData::Bar(bar) => TickView {
            open: Some(dec(bar.open)),
            high: Some(dec(bar.high)),
            low: Some(dec(bar.low)),
            close: Some(dec(bar.close)),
            volume: bar.volume.map(dec),
            interval_ns: Some(bar.interval_ns),
            ..TickView::default()
        },
        TickData::Trade(trade) => TickView {
            trade_price: Some(dec(trade.price)),
            size: Some(dec(trade.size)),
            aggressor: trade.aggressor.map(|s| side(s).to_string()),
            ..TickView::default()
        },
        TickData::Quote(quote) => TickView {
            bid: Some(dec(quote.bid)),
            ask: Some(dec(quote.ask)),
            bid_size: quote.bid_size.map(dec),
            ask_size: quote.ask_size.map(dec),
            ..TickView::default()
        },
    }
}

/// The row hash chain of an export: each row's canonical JSON line and hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RowChain {
    prev: Hash32,
    /// The last row's canonical JSON (reused).
    #[serde(skip)]
    buffer: Vec<u8>,
}

impl RowChain {
    /// A chain whose first row links to 64 zeros.
    pub fn new() -> Self {
        RowChain::default()
    }

    /// The hash of the last row chained (zeros before any).
    pub fn last(&self) -> Hash32 {
        self.prev
    }

    /// Links `row` to the chain (sets its `prev_row_hash`) and returns its RFC 8785
    /// canonical JSON without `row_hash`, and its `row_hash`: SHA-256 of that JSON.
    ///
    /// # Errors
    /// Serialization errors (none for rows the fold makes).
    pub fn link(&mut self, row: &mut AuditRow) -> std::io::Result<(&[u8], Hash32)> {
        row.prev_row_hash = hex(&self.prev);
        self.buffer.clear();
        serde_json::to_writer(&mut self.buffer, row)?;
        let hash = Hash32::digest(&self.buffer);
        self.prev = hash;
        Ok((&self.buffer, hash))
    }
}

/// The JSON Lines form of a row: its canonical JSON (without `row_hash`) with
/// `"row_hash":"<hex>"` added as the last member, and a newline.
///
/// # Errors
/// The writer's.
pub fn write_jsonl_line(canonical: &[u8], hash: &Hash32, out: &mut impl std::io::Write) -> std::io::Result<()> {
    out.write_all(&canonical[..canonical.len().saturating_sub(1)])?;
    out.write_all(b",\"row_hash\":\"")?;
    out.write_all(hex(hash).as_bytes())?;
    out.write_all(b"\"}\n")
}

/// RFC 8785 canonical JSON of any JSON value (a row read back, for its hash).
///
/// # Errors
/// Serialization errors (none for parsed JSON).
pub fn canonical(value: &serde_json::Value) -> std::io::Result<Vec<u8>> {
    value.to_canon_json_vec()
}

#[cfg(test)]
mod tests;
