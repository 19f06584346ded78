//! The `script` decision provider: decisions from a JSONL file, one per line, keyed by
//! tick time: `{"ts": "2013-10-08T13:30:00Z", "action": "long", "size_pct": 0.5,
//! "confidence": 0.9, "reason": "..."}`. Each line is held to the decision contract by
//! the same parser as model output, so a bad line becomes a recorded `hold`. Ticks with
//! no line hold.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ledger_core::decision::{hold, parse_decision, DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo};
use ledger_core::event::{ParseStatus, Text};
use ledger_core::time::TimestampNs;

use crate::market_data::{parse_time, DataError};

/// Decisions read from a file, by tick time (UTC ns).
#[derive(Debug, Clone)]
pub struct ScriptProvider {
    file: Text,
    lines: BTreeMap<TimestampNs, Text>,
    no_line: Text,
    empty: Text,
}

impl ScriptProvider {
    /// Reads the script at `path`.
    ///
    /// # Errors
    /// Unreadable file, a line that is not a JSON object, or a missing or unreadable
    /// `ts`, named by line.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
        let mut lines = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| DataError::Row {
                path: path.to_path_buf(),
                line: index as u64 + 1,
                column: "ts".into(),
                message,
            };
            let value: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let ts = match value.get("ts") {
                Some(serde_json::Value::String(s)) => parse_time(s),
                Some(serde_json::Value::Number(n)) => parse_time(&n.to_string()),
                _ => None,
            }
            .ok_or_else(|| bad("missing or unreadable `ts`".into()))?;
            lines.insert(ts, Arc::from(line));
        }
        Ok(ScriptProvider {
            file: Arc::from(path.display().to_string().as_str()),
            lines,
            no_line: Arc::from("no scripted decision for this tick"),
            empty: Arc::from(""),
        })
    }
}

impl DecisionProvider for ScriptProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo { provider: Arc::from("script"), model: self.file.clone(), params: self.empty.clone() }
    }

    /// Decisions are keyed by tick time: nothing to save.
    fn save_state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn decide(&mut self, input: &DecisionInput<'_>) -> ProviderAnswer {
        let (decision, parse_status, raw_output) = match self.lines.get(&input.ts) {
            Some(line) => {
                let (decision, status) = parse_decision(line);
                (decision, status, line.clone())
            }
            None => (hold(self.no_line.clone()), ParseStatus::Ok, self.empty.clone()),
        };
        ProviderAnswer {
            decision,
            parse_status,
            prompt: self.empty.clone(),
            raw_output,
            latency_us: 0,
            tokens_in: 0,
            tokens_out: 0,
            record: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::event::Action;
    use ledger_core::ids::InstrumentId;
    use rust_decimal::Decimal;
    use std::io::Write;

    #[test]
    fn scripted_lines_are_held_to_the_contract_by_tick_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(
            file,
            r#"{{"ts": "2020-01-02", "action": "long", "size_pct": 0.5, "confidence": 0.9, "reason": "breakout"}}"#
        )
        .unwrap();
        writeln!(
            file,
            r#"{{"ts": "2020-01-03", "action": "moon", "size_pct": 0.5, "confidence": 0.9, "reason": "?"}}"#
        )
        .unwrap();
        let mut provider = ScriptProvider::open(&path).unwrap();
        let spy = InstrumentId::new("SPY").unwrap();
        let mut decide = |day: &str| {
            let ts = parse_time(day).unwrap();
            let input = DecisionInput {
                ts,
                instrument: &spy,
                price: Decimal::ONE,
                bar: None,
                quote: None,
                position_qty: Decimal::ZERO,
                equity: Decimal::ZERO,
                context: None,
            };
            provider.decide(&input)
        };
        // TC0: a valid line is the decision, its text recorded as the raw output.
        let long = decide("2020-01-02");
        assert_eq!((long.decision.action, long.parse_status.clone()), (Action::Long, ParseStatus::Ok));
        assert!(long.raw_output.contains("breakout"));
        // TC1: an invalid line becomes hold with the failure recorded.
        let bad = decide("2020-01-03");
        assert_eq!(bad.decision.action, Action::Hold);
        assert!(matches!(&bad.parse_status, ParseStatus::Invalid(why) if why.contains("unknown action")));
        // TC2: no line for the tick: hold.
        assert_eq!(decide("2020-01-06").decision.action, Action::Hold);
    }

    #[test]
    fn a_line_without_a_time_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        std::fs::write(&path, "{\"ts\": \"2020-01-02\", \"action\": \"hold\"}\n{\"action\": \"long\"}\n").unwrap();
        let error = ScriptProvider::open(&path).unwrap_err().to_string();
        assert!(error.contains("decisions.jsonl:2: column ts: missing or unreadable `ts`"), "{error}");
    }
}
