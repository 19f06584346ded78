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
        let text =
            std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
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
        }
    }
}
