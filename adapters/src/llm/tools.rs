//! The read-only tools of a tool-calling agent, answered from the pipeline's own state
//! at the cycle (the tick, the account, the indicators, the recent bars the provider
//! has seen, and a dry run of the risk engine): nothing a tool answers changes the
//! pipeline, and nothing leaves the process. Orders come only from the final decision.
//!
//! Arguments are recorded as canonical JSON (keys sorted, no spaces) and answers as
//! JSON text with sorted keys, decimals as strings, so the same cycle records the same
//! `ToolCalled` events on every run.

use std::collections::VecDeque;

use ledger_core::decision::{parse_decision, DecisionInput};
use ledger_core::event::{Bar, ParseStatus};
use ledger_core::time::TimestampNs;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::prompt::{Levels, EMA_FAST, EMA_SLOW, RSI_LEN};

/// Most bars `get_recent_bars` returns (and the provider keeps).
pub const MAX_RECENT_BARS: usize = 50;

/// Bars `get_recent_bars` returns when the model asks for no count.
const DEFAULT_RECENT_BARS: u64 = 10;

/// A tool an agent may be given (`tools = [...]` in `[provider]`, by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    /// `get_quote`: the tick: time, last price, the bar or bid/ask.
    GetQuote,
    /// `get_portfolio`: cash, equity, realized P&L, fees, drawdown, positions.
    GetPortfolio,
    /// `get_technicals`: EMA 20, EMA 50, RSI 14 and the trend.
    GetTechnicals,
    /// `get_recent_bars`: the last `count` bars (or prices) seen, oldest first.
    GetRecentBars,
    /// `check_risk`: the risk engine's verdict on a proposed decision, as a dry run.
    CheckRisk,
}

/// Every tool, in name order of the documentation.
pub const ALL_TOOLS: [Tool; 5] =
    [Tool::GetQuote, Tool::GetPortfolio, Tool::GetTechnicals, Tool::GetRecentBars, Tool::CheckRisk];

impl Tool {
    /// The tool's name, as the model calls it.
    pub fn name(self) -> &'static str {
        match self {
            Tool::GetQuote => "get_quote",
            Tool::GetPortfolio => "get_portfolio",
            Tool::GetTechnicals => "get_technicals",
            Tool::GetRecentBars => "get_recent_bars",
            Tool::CheckRisk => "check_risk",
        }
    }

    /// The tool of `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Tool> {
        ALL_TOOLS.into_iter().find(|tool| tool.name() == name)
    }

    /// What the model is told the tool does.
    pub fn description(self) -> &'static str {
        match self {
            Tool::GetQuote => "The latest tick of the instrument: time (UTC), last price, the bar (open, high, low, close, volume) or bid and ask.",
            Tool::GetPortfolio => "The account now: cash, equity, realized P&L, fees, drawdown, and each open position (signed quantity, average price, mark, unrealized P&L).",
            Tool::GetTechnicals => "Indicators of the closes so far: EMA 20, EMA 50, RSI 14, and the trend (up when EMA 20 is above EMA 50).",
            Tool::GetRecentBars => "The most recent bars seen (or prices, for quote and trade data), oldest first, the current one last.",
            Tool::CheckRisk => "Asks the risk engine, without placing anything, whether a decision would pass: every check with its value and limit. Takes the decision's fields.",
        }
    }

    /// The JSON schema of the tool's arguments.
    pub fn input_schema(self) -> Value {
        match self {
            Tool::GetQuote | Tool::GetPortfolio | Tool::GetTechnicals => json!({"type": "object", "properties": {}}),
            Tool::GetRecentBars => json!({
                "type": "object",
                "properties": {"count": {"type": "integer", "minimum": 1, "maximum": MAX_RECENT_BARS,
                    "description": "How many bars, the latest last (default 10)."}}
            }),
            Tool::CheckRisk => json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["long", "short", "close", "hold"]},
                    "size_pct": {"type": "number", "minimum": 0, "maximum": 1},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "stop_loss": {"type": ["number", "null"]},
                    "take_profit": {"type": ["number", "null"]},
                    "trailing_stop_pct": {"type": ["number", "null"]},
                    "limit_price": {"type": ["number", "null"]}
                },
                "required": ["action", "size_pct"]
            }),
        }
    }
}

/// One tick as `get_recent_bars` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenTick {
    /// Source time, UTC ns.
    pub ts: TimestampNs,
    /// Reference price.
    pub price: Decimal,
    /// The bar, when the tick was one.
    pub bar: Option<Bar>,
}

/// What the tools read at one cycle.
pub(crate) struct Desk<'a> {
    pub input: &'a DecisionInput<'a>,
    pub levels: &'a Levels,
    pub recent: &'a VecDeque<SeenTick>,
}

/// A tool call's arguments as canonical JSON text, and the answer: JSON text, or an
/// error the model can read (an unknown or ungiven tool, bad arguments).
pub(crate) fn answer(
    given: &[Tool],
    name: &str,
    arguments: &Result<Value, String>,
    desk: &Desk<'_>,
) -> (String, String) {
    let canonical = match arguments {
        Ok(value) => sorted(value).to_string(),
        Err(raw) => raw.clone(),
    };
    let result = match (Tool::from_name(name).filter(|tool| given.contains(tool)), arguments) {
        (None, _) => error(&format!("no tool named {name:?} is available")),
        (Some(_), Err(_)) => error("the arguments are not a JSON object"),
        (Some(tool), Ok(value)) => match value.as_object() {
            None => error("the arguments are not a JSON object"),
            Some(args) => run(tool, args, desk),
        },
    };
    (canonical, sorted(&result).to_string())
}

/// `value` with every object's keys in sorted order (serde_json keeps insertion order
/// when a crate of the build enables its `preserve_order` feature).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn error(message: &str) -> Value {
    json!({ "error": message })
}

fn text(value: impl ToString) -> Value {
    Value::String(value.to_string())
}

fn run(tool: Tool, args: &Map<String, Value>, desk: &Desk<'_>) -> Value {
    let input = desk.input;
    match tool {
        Tool::GetQuote => {
            let mut quote = json!({
                "instrument": input.instrument.as_str(),
                "time": input.ts.to_rfc3339(),
                "last_price": text(input.price),
            });
            if let Some(bar) = input.bar {
                quote["bar"] = bar_json(bar);
            }
            if let Some(q) = input.quote {
                quote["bid"] = text(q.bid);
                quote["ask"] = text(q.ask);
            }
            quote
        }
        Tool::GetPortfolio => match input.context {
            None => error("the portfolio is not available here"),
            Some(context) => {
                let p = context.portfolio();
                let positions: Vec<Value> = p
                    .positions
                    .iter()
                    .map(|(id, pos)| {
                        json!({
                            "instrument": id.as_str(), "qty": text(pos.qty), "avg_price": text(pos.avg_price),
                            "mark": text(pos.mark), "unrealized_pnl": text(pos.unrealized()),
                        })
                    })
                    .collect();
                json!({
                    "cash": text(p.cash), "equity": text(p.equity()), "realized_pnl": text(p.realized_pnl),
                    "fees": text(p.fees), "drawdown": text(p.drawdown()), "positions": positions,
                })
            }
        },
        Tool::GetTechnicals => json!({
            format!("ema{EMA_FAST}"): desk.levels.shown.ema_fast,
            format!("ema{EMA_SLOW}"): desk.levels.shown.ema_slow,
            format!("rsi{RSI_LEN}"): desk.levels.shown.rsi,
            "trend": desk.levels.trend(),
        }),
        Tool::GetRecentBars => {
            let count = match args.get("count") {
                None | Some(Value::Null) => DEFAULT_RECENT_BARS,
                Some(value) => match value.as_u64() {
                    Some(n) if (1..=MAX_RECENT_BARS as u64).contains(&n) => n,
                    _ => return error(&format!("count must be an integer in 1..={MAX_RECENT_BARS}")),
                },
            };
            let skip = desk.recent.len().saturating_sub(count as usize);
            let bars: Vec<Value> = desk
                .recent
                .iter()
                .skip(skip)
                .map(|seen| {
                    let mut row = match &seen.bar {
                        Some(bar) => bar_json(bar),
                        None => json!({ "price": text(seen.price) }),
                    };
                    row["time"] = Value::String(seen.ts.to_rfc3339());
                    row
                })
                .collect();
            json!({ "bars": bars })
        }
        Tool::CheckRisk => check_risk(args, input),
    }
}

fn bar_json(bar: &Bar) -> Value {
    let mut row =
        json!({"open": text(bar.open), "high": text(bar.high), "low": text(bar.low), "close": text(bar.close)});
    if let Some(volume) = bar.volume {
        row["volume"] = text(volume);
    }
    row
}

/// The proposed decision held to the decision contract (confidence 1 and an empty
/// reason when left out), then judged by a dry run of the risk engine.
fn check_risk(args: &Map<String, Value>, input: &DecisionInput<'_>) -> Value {
    let Some(context) = input.context else { return error("the risk engine is not available here") };
    let mut proposed = args.clone();
    proposed.entry("confidence").or_insert(json!(1));
    proposed.entry("reason").or_insert(json!(""));
    let (decision, status) = parse_decision(&Value::Object(proposed).to_string());
    if let ParseStatus::Invalid(why) = status {
        return error(&format!("not a valid decision: {why}"));
    }
    let judgement = context.check_risk(&decision);
    let checks: Vec<Value> = judgement
        .checks
        .iter()
        .map(|c| {
            let id = serde_json::to_value(c.id).unwrap_or(Value::Null);
            json!({"check": id, "value": text(c.value), "limit": text(c.limit), "passed": c.passed})
        })
        .collect();
    json!({ "approved": judgement.approved, "reason": &*judgement.reason, "checks": checks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_answers_are_recorded_with_sorted_keys() {
        let spy = ledger_core::ids::InstrumentId::new("SPY").unwrap();
        let input = DecisionInput {
            ts: TimestampNs::from_nanos(0),
            instrument: &spy,
            price: Decimal::ONE_HUNDRED,
            bar: None,
            quote: None,
            position_qty: Decimal::ZERO,
            equity: Decimal::ONE_HUNDRED,
            context: None,
        };
        let levels = Levels::new(1.0, 2.0, 3.0);
        let recent = VecDeque::new();
        let desk = Desk { input: &input, levels: &levels, recent: &recent };
        // The model wrote its keys out of order, nested too.
        let arguments: Value = serde_json::from_str(r#"{"z": 1, "a": {"y": 2, "b": 3}}"#).unwrap();
        let (canonical, result) = answer(&[Tool::GetQuote], "get_quote", &Ok(arguments), &desk);
        assert_eq!(canonical, r#"{"a":{"b":3,"y":2},"z":1}"#);
        assert_eq!(result, r#"{"instrument":"SPY","last_price":"100","time":"1970-01-01T00:00:00.000000Z"}"#);
        // Arguments that are not JSON are kept as sent, and answered with an error.
        let (canonical, result) = answer(&[Tool::GetQuote], "get_quote", &Err("{oops".into()), &desk);
        assert_eq!(
            (canonical.as_str(), result.as_str()),
            ("{oops", r#"{"error":"the arguments are not a JSON object"}"#)
        );
    }
}
