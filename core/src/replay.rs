//! Replaying a recorded run: its ticks and decisions go through the pipeline again, and
//! the events derived from them are compared with the original, field by field.

use std::collections::VecDeque;

use serde_json::Value;

use crate::decision::{DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo};
use crate::engine::Tick;
use crate::event::{Envelope, Payload};
use crate::ids::Seq;

/// The ticks and provider answers of a recorded run, in cycle order.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The run's ticks.
    pub ticks: Vec<Tick>,
    /// The provider as the run recorded it.
    pub info: ProviderInfo,
    /// One answer per tick.
    pub answers: VecDeque<ProviderAnswer>,
}

impl Recording {
    /// Extracts ticks and decisions from a run's events (in seq order).
    pub fn from_events(events: &[Envelope]) -> Recording {
        let mut ticks = Vec::new();
        let mut answers = VecDeque::new();
        let mut info = ProviderInfo { provider: "recorded".into(), model: "".into(), params: "".into() };
        for event in events {
            match &event.payload {
                Payload::MarketTick(tick) => {
                    ticks.push(Tick { ts: event.header.ts_event, instrument: tick.instrument, data: tick.data.clone() })
                }
                Payload::DecisionMade(made) => {
                    info = ProviderInfo {
                        provider: made.provider.clone(),
                        model: made.model.clone(),
                        params: made.params.clone(),
                    };
                    answers.push_back(ProviderAnswer {
                        decision: made.parsed.clone(),
                        parse_status: made.parse_status.clone(),
                        prompt: made.prompt.clone(),
                        raw_output: made.raw_output.clone(),
                        latency_us: made.latency_us,
                        tokens_in: made.tokens_in,
                        tokens_out: made.tokens_out,
                    });
                }
                _ => {}
            }
        }
        Recording { ticks, info, answers }
    }
}

/// A provider that answers with a recording's decisions, in order; makes no model calls.
#[derive(Debug, Clone)]
pub struct RecordedProvider {
    info: ProviderInfo,
    answers: VecDeque<ProviderAnswer>,
}

impl RecordedProvider {
    /// A provider replaying `answers` as `info`.
    pub fn new(info: ProviderInfo, answers: VecDeque<ProviderAnswer>) -> Self {
        RecordedProvider { info, answers }
    }
}

impl DecisionProvider for RecordedProvider {
    fn info(&self) -> ProviderInfo {
        self.info.clone()
    }

    fn decide(&mut self, _input: &DecisionInput<'_>) -> ProviderAnswer {
        self.answers.pop_front().unwrap_or_else(|| ProviderAnswer {
            decision: crate::decision::hold("recording exhausted".into()),
            parse_status: crate::event::ParseStatus::ProviderError("no recorded decision for this tick".into()),
            prompt: "".into(),
            raw_output: "".into(),
            latency_us: 0,
            tokens_in: 0,
            tokens_out: 0,
        })
    }
}

/// The first place two runs differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// Position among the compared events (0-based).
    pub index: usize,
    /// The original's seq, if it has an event there.
    pub original_seq: Option<Seq>,
    /// The replay's seq, if it has an event there.
    pub replayed_seq: Option<Seq>,
    /// The cycle of the original event (or the replayed one).
    pub cycle: u64,
    /// `(field path, original value, replayed value)` for every differing field.
    pub fields: Vec<(String, String, String)>,
}

/// Compares the derived events of two runs: everything but `RunStarted` and
/// `RunStopped`, on cycle, source time, kind, payload and causation (relative to the run's
/// first seq). Returns the first divergence, or `None` when they match.
pub fn compare_runs(original: &[Envelope], replayed: &[Envelope]) -> Option<Divergence> {
    let derived = |events: &[Envelope]| -> Vec<(Value, Seq, u64)> {
        let base = events.first().map_or(0, |e| e.header.seq.get());
        events
            .iter()
            .filter(|e| !matches!(e.payload, Payload::RunStarted(_) | Payload::RunStopped(_)))
            .map(|e| {
                let h = &e.header;
                let view = serde_json::json!({
                    "cycle_id": h.cycle_id.get(),
                    "ts_event": h.ts_event,
                    "causation_offset": h.causation_seq.map(|c| c.get() as i64 - base as i64),
                    "payload": comparable(&e.payload),
                });
                (view, h.seq, h.cycle_id.get())
            })
            .collect()
    };
    let (a, b) = (derived(original), derived(replayed));
    for index in 0..a.len().max(b.len()) {
        let (left, right) = (a.get(index), b.get(index));
        let (lv, rv) = (left.map(|x| &x.0), right.map(|x| &x.0));
        if lv == rv {
            continue;
        }
        let mut fields = Vec::new();
        diff("", lv.unwrap_or(&Value::Null), rv.unwrap_or(&Value::Null), &mut fields);
        return Some(Divergence {
            index,
            original_seq: left.map(|x| x.1),
            replayed_seq: right.map(|x| x.1),
            cycle: left.or(right).map_or(0, |x| x.2),
            fields,
        });
    }
    None
}

/// The payload as JSON, without what names the run: client order ids lose their
/// `r<run>-` prefix and verdicts their absolute decision seq (linked through
/// `causation_offset` instead).
fn comparable(payload: &Payload) -> Value {
    let mut value = serde_json::to_value(payload).unwrap_or(Value::Null);
    if let Some(Value::Object(fields)) = value.as_object_mut().and_then(|o| o.values_mut().next()) {
        if let Some(Value::String(id)) = fields.get_mut("client_order_id") {
            if let Some((_, per_run)) = id.split_once('-') {
                *id = per_run.to_string();
            }
        }
    }
    if let Payload::RiskVerdict(_) = payload {
        if let Some(v) = value.pointer_mut("/RiskVerdict/decision_seq") {
            *v = Value::Null; // linked through causation_offset already
        }
    }
    value
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let (l, r) = (x.get(key).unwrap_or(&Value::Null), y.get(key).unwrap_or(&Value::Null));
                if l != r {
                    diff(&format!("{path}/{key}"), l, r, out);
                }
            }
        }
        _ if a != b => out.push((if path.is_empty() { "/".into() } else { path.into() }, a.to_string(), b.to_string())),
        _ => {}
    }
}
