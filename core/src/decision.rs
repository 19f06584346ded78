//! Decisions: the provider contract, and the parser that holds every provider's output
//! to it.
//!
//! The contract is JSON `{action: long|short|close|hold, size_pct: 0..1,
//! confidence: 0..1, reason}`, with optional terms for the position a `long` or `short`
//! opens ([`OrderTerms`]): `limit_price` (enter with a limit order), `time_in_force`
//! (`gtc`, `day` or `ioc`), `stop_loss` and `take_profit` (prices), `trailing_stop_pct`
//! (a fraction, 0..1 exclusive); `null` is the same as leaving a term out. Prose around
//! the JSON and code fences are tolerated; anything else that breaks the contract
//! (wrong types, unknown actions, numbers out of range, missing fields) becomes `hold`
//! with the failure recorded.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::event::{Action, Bar, Decision, ModelCalled, OrderTerms, ParseStatus, Quote, Text, TimeInForce, ToolCalled};
use crate::ids::InstrumentId;
use crate::portfolio::Portfolio;
use crate::risk::Judgement;
use crate::time::TimestampNs;

/// The reason of a `hold` a provider answers while its indicators are still warming
/// up (not enough bars yet). Reports read it: backtesting.py's Buy & Hold Return starts
/// at the first bar after the warm-up (`_stats.compute_stats`, `first_trading_bar`),
/// which here is the first decision with another reason.
pub const WARMING_UP: &str = "warming up";

/// What a provider sees when asked for a decision.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    /// Source time of the tick, UTC ns.
    pub ts: TimestampNs,
    /// The instrument.
    pub instrument: &'a InstrumentId,
    /// The reference price of the tick (bar close, trade price or quote mid).
    pub price: Decimal,
    /// The bar, when the tick is one.
    pub bar: Option<&'a Bar>,
    /// The top of book, when the tick is a quote.
    pub quote: Option<&'a Quote>,
    /// Signed units currently held.
    pub position_qty: Decimal,
    /// Account equity before this tick's orders (cash plus positions marked to this
    /// tick), account currency.
    pub equity: Decimal,
    /// The pipeline's state at this cycle, read-only, for providers that look further
    /// (a tool-calling agent's tools); the engine always fills it, at no cost (a few
    /// references), and a provider that does not need it never reads it.
    pub context: Option<&'a dyn CycleContext>,
}

/// The pipeline's state at one cycle, as a provider may read it while deciding: the
/// account, and a dry run of the risk engine. Answers never change the pipeline.
pub trait CycleContext: std::fmt::Debug {
    /// The account before this cycle's orders, marked to this tick.
    fn portfolio(&self) -> &Portfolio;

    /// The verdict the risk engine would give `decision` at this cycle (every check,
    /// value and limit), without counting it toward any rate: a dry run.
    fn check_risk(&self, decision: &Decision) -> Judgement;
}

/// What a model call adds to the record of its decision: the tool calls of an agent
/// and the call's summary, recorded as `ToolCalled` and `ModelCalled` events caused
/// by the cycle's `DecisionMade`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The tool calls, in the order they were made.
    pub tool_calls: Vec<ToolCalled>,
    /// The call's summary.
    pub call: ModelCalled,
}

/// A provider's answer, before it becomes a `DecisionMade` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAnswer {
    /// The decision after parsing.
    pub decision: Decision,
    /// How parsing went.
    pub parse_status: ParseStatus,
    /// The prompt sent, if any.
    pub prompt: Text,
    /// The raw output, if any.
    pub raw_output: Text,
    /// Latency in microseconds (0 when not measured).
    pub latency_us: u64,
    /// Prompt tokens.
    pub tokens_in: u32,
    /// Completion tokens.
    pub tokens_out: u32,
    /// For a model call: its tool calls and summary (`None` for providers that call
    /// no model, and for a model's warm-up holds). Boxed: one pointer for the others.
    pub record: Option<Box<CallRecord>>,
}

impl ProviderAnswer {
    /// An answer made without asking anything (a rule, a warm-up hold, a guard's
    /// refusal): `decision`, parsed `Ok`, with no prompt, output, latency, tokens or call
    /// record. `empty` is the empty text the prompt and output share (a provider keeps
    /// one, so that a tick allocates none).
    pub fn unasked(decision: Decision, empty: Text) -> ProviderAnswer {
        ProviderAnswer {
            decision,
            parse_status: ParseStatus::Ok,
            prompt: empty.clone(),
            raw_output: empty,
            latency_us: 0,
            tokens_in: 0,
            tokens_out: 0,
            record: None,
        }
    }
}

impl From<crate::event::DecisionMade> for ProviderAnswer {
    /// The answer a recorded decision was made from (what a replay hands the engine).
    fn from(made: crate::event::DecisionMade) -> Self {
        ProviderAnswer {
            decision: made.parsed,
            parse_status: made.parse_status,
            prompt: made.prompt,
            raw_output: made.raw_output,
            latency_us: made.latency_us,
            tokens_in: made.tokens_in,
            tokens_out: made.tokens_out,
            record: None,
        }
    }
}

/// Who a provider is, as recorded in every `DecisionMade`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Provider kind: `rules`, `script`, `recorded`, ...
    pub provider: Text,
    /// Strategy or model name.
    pub model: Text,
    /// Parameters, canonical `k=v` sorted by key, space separated.
    pub params: Text,
}

/// A source of decisions: built-in rules, a script, a recording or a model.
pub trait DecisionProvider {
    /// Who this provider is.
    fn info(&self) -> ProviderInfo;

    /// Decides on one tick. Failures are answered as `hold` with the error recorded,
    /// never as an `Err`: a provider timeout must not stop a run.
    fn decide(&mut self, input: &DecisionInput<'_>) -> ProviderAnswer;

    /// The provider's state between decisions (indicator windows, ...), encoded, for a
    /// session snapshot: empty for a provider without state, `None` for one whose state
    /// cannot be saved (a run of it is then resumed by re-executing it from its start).
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Restores what [`DecisionProvider::save_state`] saved, on a provider built from
    /// the same configuration.
    ///
    /// # Errors
    /// Bytes this provider does not read (another provider, another build's layout).
    fn restore_state(&mut self, state: &[u8]) -> Result<(), crate::codec::CodecError> {
        match state.is_empty() {
            true => Ok(()),
            false => Err(crate::codec::CodecError::Body("this provider keeps no state".into())),
        }
    }
}

/// A `hold` with a reason.
pub fn hold(reason: Text) -> Decision {
    Decision::new(Action::Hold, Decimal::ZERO, Decimal::ZERO, reason)
}

/// Parses a provider's raw output against the contract.
///
/// Returns the decision and [`ParseStatus::Ok`], or `hold` and
/// [`ParseStatus::Invalid`] naming what was wrong.
pub fn parse_decision(raw: &str) -> (Decision, ParseStatus) {
    match parse_strict(raw) {
        Ok(decision) => (decision, ParseStatus::Ok),
        Err(why) => {
            let why: Text = Arc::from(why.as_str());
            (hold(Arc::from("unparseable decision")), ParseStatus::Invalid(why))
        }
    }
}

fn parse_strict(raw: &str) -> Result<Decision, String> {
    let json = extract_json_object(raw).ok_or("no JSON object in the output")?;
    let value: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let action = match object.get("action") {
        None => return Err("missing field `action`".into()),
        Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "long" | "buy" => Action::Long,
            "short" | "sell" => Action::Short,
            "close" | "exit" | "flat" => Action::Close,
            "hold" | "none" | "wait" => Action::Hold,
            other => return Err(format!("unknown action {other:?}")),
        },
        Some(other) => return Err(format!("`action` must be a string, got {other}")),
    };
    let number = |name: &str, value: &Value| -> Result<Decimal, String> {
        match value {
            Value::Number(n) => n.to_string().parse::<Decimal>().or_else(|_| {
                n.as_f64()
                    .and_then(|f| Decimal::try_from(f).ok())
                    .ok_or_else(|| format!("`{name}` {n} is not a decimal"))
            }),
            other => Err(format!("`{name}` must be a number, got {other}")),
        }
    };
    let fraction = |name: &str| -> Result<Decimal, String> {
        let value = object.get(name).ok_or_else(|| format!("missing field `{name}`"))?;
        let number = number(name, value)?;
        if number < Decimal::ZERO || number > Decimal::ONE {
            return Err(format!("`{name}` {number} is outside 0..1"));
        }
        Ok(number.normalize())
    };
    // An optional term: absent or null is `None`; otherwise a number inside `valid`.
    let term = |name: &str, valid: fn(Decimal) -> bool, range: &str| -> Result<Option<Decimal>, String> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => {
                let number = number(name, value)?;
                match valid(number) {
                    true => Ok(Some(number.normalize())),
                    false => Err(format!("`{name}` {number} is {range}")),
                }
            }
        }
    };
    let size_pct = fraction("size_pct")?;
    let confidence = fraction("confidence")?;
    let reason = match object.get("reason") {
        None => return Err("missing field `reason`".into()),
        Some(Value::String(text)) => Arc::from(text.as_str()),
        Some(other) => return Err(format!("`reason` must be a string, got {other}")),
    };
    let price = |p: Decimal| p > Decimal::ZERO;
    let time_in_force = match object.get("time_in_force") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(match text.trim().to_ascii_lowercase().as_str() {
            "gtc" => TimeInForce::Gtc,
            "day" => TimeInForce::Day,
            "ioc" => TimeInForce::Ioc,
            other => return Err(format!("unknown time_in_force {other:?} (gtc, day or ioc)")),
        }),
        Some(other) => return Err(format!("`time_in_force` must be a string, got {other}")),
    };
    let terms = OrderTerms {
        limit_price: term("limit_price", price, "not a positive price")?,
        time_in_force,
        stop_loss: term("stop_loss", price, "not a positive price")?,
        take_profit: term("take_profit", price, "not a positive price")?,
        trailing_stop_pct: term("trailing_stop_pct", |p| p > Decimal::ZERO && p < Decimal::ONE, "outside 0..1")?,
    };
    Ok(Decision::new(action, size_pct, confidence, reason).with_terms(terms))
}

/// The outermost `{...}` of the text: tolerates prose and code fences around it.
fn extract_json_object(raw: &str) -> Option<&str> {
    let start = raw.find('{')?;
    let end = raw.rfind('}')?;
    (end > start).then(|| &raw[start..=end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn parsed(raw: &str) -> Result<(Action, Decimal, Decimal, String), String> {
        match parse_decision(raw) {
            (d, ParseStatus::Ok) => Ok((d.action, d.size_pct, d.confidence, d.reason.to_string())),
            (d, ParseStatus::Invalid(why)) => {
                assert_eq!(d.action, Action::Hold, "an invalid output must become hold");
                Err(why.to_string())
            }
            (_, status) => panic!("unexpected {status:?}"),
        }
    }

    #[test]
    fn valid_outputs_parse() {
        let ok = |raw| parsed(raw).unwrap();
        // TC0: bare JSON.
        assert_eq!(
            ok(r#"{"action":"long","size_pct":0.5,"confidence":0.8,"reason":"trend"}"#),
            (Action::Long, dec!(0.5), dec!(0.8), "trend".into())
        );
        // TC1: prose and a code fence around it; action case-insensitive.
        assert_eq!(
            ok("Sure!\n```json\n{\"action\": \"CLOSE\", \"size_pct\": 0, \"confidence\": 1, \"reason\": \"stop\"}\n```\nDone.").0,
            Action::Close
        );
        // TC2: boundaries 0 and 1 are inside the range.
        assert_eq!(ok(r#"{"action":"short","size_pct":1,"confidence":0,"reason":""}"#).1, dec!(1));
    }

    #[test]
    fn order_terms_parse_and_are_checked() {
        let (decision, status) = parse_decision(
            r#"{"action":"long","size_pct":0.5,"confidence":0.8,"reason":"breakout","limit_price":101.5,
                "time_in_force":"DAY","stop_loss":98,"take_profit":110.25,"trailing_stop_pct":0.03}"#,
        );
        assert_eq!(status, ParseStatus::Ok);
        let expected = OrderTerms {
            limit_price: Some(dec!(101.5)),
            time_in_force: Some(TimeInForce::Day),
            stop_loss: Some(dec!(98)),
            take_profit: Some(dec!(110.25)),
            trailing_stop_pct: Some(dec!(0.03)),
        };
        assert_eq!(decision.terms(), &expected);
        // null is the same as leaving a term out.
        let (decision, _) =
            parse_decision(r#"{"action":"long","size_pct":1,"confidence":1,"reason":"x","stop_loss":null}"#);
        assert!(decision.terms.is_none());
        let cases = [
            ("TC0 negative stop", r#""stop_loss":-1"#, "not a positive price"),
            ("TC1 trailing of 1", r#""trailing_stop_pct":1"#, "outside 0..1"),
            ("TC2 unknown tif", r#""time_in_force":"fok""#, "unknown time_in_force"),
            ("TC3 price as text", r#""take_profit":"110""#, "must be a number"),
        ];
        for (label, term, expected) in cases {
            let raw = format!(r#"{{"action":"long","size_pct":1,"confidence":1,"reason":"x",{term}}}"#);
            let why = parsed(&raw).expect_err(label);
            assert!(why.contains(expected), "{label}: {why:?} should mention {expected:?}");
        }
    }

    #[test]
    fn contract_breaches_become_hold_with_the_failure_named() {
        let cases = [
            ("TC0 no json", "I think we should buy.", "no JSON object"),
            ("TC1 broken json", "{\"action\": \"long\",", "no JSON object"),
            (
                "TC2 unknown action",
                r#"{"action":"moon","size_pct":0.1,"confidence":0.5,"reason":"x"}"#,
                "unknown action",
            ),
            (
                "TC3 wrong type",
                r#"{"action":"long","size_pct":"half","confidence":0.5,"reason":"x"}"#,
                "must be a number",
            ),
            ("TC4 above range", r#"{"action":"long","size_pct":1.01,"confidence":0.5,"reason":"x"}"#, "outside 0..1"),
            ("TC5 below range", r#"{"action":"long","size_pct":0.1,"confidence":-0.1,"reason":"x"}"#, "outside 0..1"),
            ("TC6 missing field", r#"{"action":"long","size_pct":0.1,"reason":"x"}"#, "missing field `confidence`"),
            ("TC7 not an object", "{}", "missing field `action`"),
            (
                "TC8 action not string",
                r#"{"action":1,"size_pct":0.1,"confidence":0.1,"reason":"x"}"#,
                "must be a string",
            ),
        ];
        for (label, raw, expected) in cases {
            let why = parsed(raw).expect_err(label);
            assert!(why.contains(expected), "{label}: {why:?} should mention {expected:?}");
        }
    }
}
