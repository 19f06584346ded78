//! Replaying a recorded run: its ticks, their recorded times and its decisions go
//! through the pipeline again, and the events derived from them are compared with the
//! original, field by field. Both are read from the log as streams, in bounded memory.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde_json::Value;

use crate::decision::{CallRecord, DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo};
use crate::event::{Envelope, ParseStatus, Payload, RunStarted};
use crate::feed::Tick;
use crate::ids::{ClientOrderId, RunId, Seq};
use crate::log::{EventCursor, LogError, RecordSource};
use crate::recorded_venue::RecordedVenue;
use crate::time::TimestampNs;

/// Where a run's events lie in the ledger (its events are in `first..=last`, among
/// other runs' events that may interleave).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRange {
    /// The run.
    pub run_id: RunId,
    /// Sequence of its first event.
    pub first: Seq,
    /// Sequence of its last event.
    pub last: Seq,
}

/// A recorded run read back as cycles: each tick with the time its cycle recorded, and
/// (through the paired [`RecordedProvider`]) the decision it got.
pub struct RecordedRun<'a> {
    cursor: EventCursor<'a>,
    run: RunId,
    slot: Rc<RefCell<Option<ProviderAnswer>>>,
    /// Operator commands met before the next cycle's tick, with their recorded times.
    commands: Vec<(Payload, TimestampNs)>,
    /// A cycle read one event too far: its tick, recorded time and cycle, met while
    /// reading the previous cycle's model-call record.
    pending: Option<(Tick, TimestampNs, crate::ids::CycleId)>,
    /// Cycles handed out so far (the recorded venue's clock).
    cycles: Rc<Cell<u64>>,
    /// The recorded reports of a run on a live venue, until taken.
    venue: Option<RecordedVenue>,
}

impl<'a> RecordedRun<'a> {
    /// Opens run `range` of `source`; returns its `RunStarted`, the cycles, and the
    /// provider that answers with the recorded decisions.
    ///
    /// # Errors
    /// Reading fails, or the run's first event is not its `RunStarted`.
    pub fn open(
        source: &'a dyn RecordSource,
        range: RunRange,
    ) -> Result<(RunStarted, RecordedRun<'a>, RecordedProvider), LogError> {
        let mut cursor = EventCursor::new(source, range.first, range.last);
        let started = match cursor.next_event()? {
            Some(Envelope { payload: Payload::RunStarted(started), .. }) => *started,
            _ => {
                return Err(LogError::Codec {
                    seq: range.first,
                    error: crate::codec::CodecError::Body(format!(
                        "run {} does not begin with RunStarted",
                        range.run_id
                    )),
                })
            }
        };
        let slot = Rc::new(RefCell::new(None));
        let info = ProviderInfo {
            provider: started.provider.clone(),
            model: started.model.clone(),
            params: started.params.clone(),
        };
        let provider = RecordedProvider { info, slot: Rc::clone(&slot) };
        let cycles = Rc::new(Cell::new(0));
        // A live venue's fills are not simulated again: its recorded reports are replayed.
        let venue = match started.venue.as_ref() {
            "paper" => None,
            name => Some(RecordedVenue::read(source, range, name, Rc::clone(&cycles))?),
        };
        let run = RecordedRun { cursor, run: range.run_id, slot, commands: Vec::new(), pending: None, cycles, venue };
        Ok((started, run, provider))
    }

    /// The next cycle's tick and recorded time; its decision is handed to the provider,
    /// with the tool calls and the model call recorded after it (`ToolCalled`,
    /// `ModelCalled`: the provider re-emits them, answering no tool). `None` after the
    /// run's last cycle.
    ///
    /// # Errors
    /// As [`EventCursor::next_event`].
    pub fn next_cycle(&mut self) -> Result<Option<(Tick, TimestampNs)>, LogError> {
        let mut tick = self.pending.take();
        // The decision found, waiting for its model-call record (which follows it).
        let mut found: Option<(ProviderAnswer, Tick, TimestampNs, crate::ids::CycleId)> = None;
        let mut tool_calls = Vec::new();
        while let Some(event) = self.cursor.next_event()? {
            // The run's own commands, and the operator's made while it was down.
            let operator = event.header.run_id == self.run || event.header.run_id.get() == 0;
            if operator && event.payload.is_operator_command(event.header.cycle_id) {
                self.commands.push((event.payload, event.header.ts_recorded));
                continue;
            }
            if event.header.run_id != self.run {
                continue;
            }
            let cycle = event.header.cycle_id;
            match (event.payload, &mut found) {
                (Payload::ToolCalled(call), Some((_, _, _, at))) if *at == cycle => tool_calls.push(call),
                (Payload::ModelCalled(call), Some((answer, _, _, at))) if *at == cycle => {
                    let tool_calls = std::mem::take(&mut tool_calls);
                    answer.record = Some(Box::new(CallRecord { tool_calls, call }));
                }
                (Payload::MarketTick(market), _) => {
                    let data = Tick { ts: event.header.ts_event, instrument: market.instrument, data: market.data };
                    if found.is_some() {
                        self.pending = Some((data, event.header.ts_recorded, cycle));
                        break;
                    }
                    tick = Some((data, event.header.ts_recorded, cycle));
                }
                (Payload::DecisionMade(made), None) => {
                    let Some((data, now, at)) = tick.take() else { continue };
                    if at != cycle {
                        continue;
                    }
                    found = Some((ProviderAnswer::from(made), data, now, at));
                }
                // The verdict ends what a decision's record may hold.
                (Payload::RiskVerdict(_), Some((_, _, _, at))) if *at == cycle => break,
                _ => {}
            }
        }
        Ok(found.map(|(answer, data, now, _)| {
            *self.slot.borrow_mut() = Some(answer);
            self.cycles.set(self.cycles.get() + 1);
            (data, now)
        }))
    }

    /// The operator's commands the recorded run took before the cycle [`next_cycle`]
    /// returned last (run them before it), with their recorded times.
    ///
    /// [`next_cycle`]: RecordedRun::next_cycle
    pub fn take_commands(&mut self) -> Vec<(Payload, TimestampNs)> {
        std::mem::take(&mut self.commands)
    }

    /// For a run on a live venue (any but `paper`), the venue that plays its recorded
    /// reports back ([`RecordedVenue`]); `None` for a paper run, or once taken.
    pub fn take_venue(&mut self) -> Option<RecordedVenue> {
        self.venue.take()
    }
}

/// A provider that answers with a recorded run's decisions, cycle by cycle, as its
/// [`RecordedRun`] reads them; makes no model calls.
pub struct RecordedProvider {
    info: ProviderInfo,
    slot: Rc<RefCell<Option<ProviderAnswer>>>,
}

impl DecisionProvider for RecordedProvider {
    fn info(&self) -> ProviderInfo {
        self.info.clone()
    }

    /// The recorded decisions are in the log: nothing to save (a session snapshot of a
    /// replay then still holds its account, for `ledger rebuild`).
    fn save_state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn decide(&mut self, _input: &DecisionInput<'_>) -> ProviderAnswer {
        self.slot.borrow_mut().take().unwrap_or_else(|| ProviderAnswer {
            parse_status: ParseStatus::ProviderError("no recorded decision for this tick".into()),
            ..ProviderAnswer::unasked(crate::decision::hold("recording exhausted".into()), "".into())
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

/// Compares the derived events of two runs read from `source`: everything but
/// `RunStarted`, `RunStopped`, `RunResumed` (a run resumed after a crash derived the
/// same events as one that was not), `VenueNotice` (input from a live venue, like ticks) and operator commands (input, like ticks; a replay
/// makes them at the same points, see [`RecordedRun::take_commands`]), on cycle, source time, kind, payload and causation
/// (as a position among the run's derived events); client order ids without their
/// `r<run>-` prefix. Returns the first
/// divergence, or `None` when they match. Streams both runs.
///
/// # Errors
/// Reading either run fails.
pub fn compare_runs(
    source: &dyn RecordSource,
    original: RunRange,
    replayed: RunRange,
) -> Result<Option<Divergence>, LogError> {
    let mut a = DerivedEvents::new(source, original);
    let mut b = DerivedEvents::new(source, replayed);
    let mut index = 0;
    loop {
        let (left, right) = (a.next()?, b.next()?);
        if left.is_none() && right.is_none() {
            return Ok(None);
        }
        let same = match (&left, &right) {
            (Some(l), Some(r)) => l.same_as(r),
            _ => false,
        };
        if !same {
            let view = |d: &Option<Derived>| d.as_ref().map_or(Value::Null, Derived::view);
            let mut fields = Vec::new();
            diff("", &view(&left), &view(&right), &mut fields);
            return Ok(Some(Divergence {
                index,
                original_seq: left.as_ref().map(|d| d.seq),
                replayed_seq: right.as_ref().map(|d| d.seq),
                cycle: left.as_ref().or(right.as_ref()).map_or(0, |d| d.cycle),
                fields,
            }));
        }
        index += 1;
    }
}

/// A run's derived events, normalised so that two runs compare on what they derived.
struct DerivedEvents<'a> {
    cursor: EventCursor<'a>,
    range: RunRange,
    /// Seqs in the range that are not derived events (few: the run's start, resumes,
    /// other runs' events), so a seq's position among derived events is known.
    passed_over: Vec<Seq>,
}

/// One derived event, without what names its run.
struct Derived {
    seq: Seq,
    cycle: u64,
    ts_event: TimestampNs,
    /// The cause's position among the run's derived events.
    causation_offset: Option<i64>,
    payload: Payload,
}

impl<'a> DerivedEvents<'a> {
    fn new(source: &'a dyn RecordSource, range: RunRange) -> Self {
        DerivedEvents { cursor: EventCursor::new(source, range.first, range.last), range, passed_over: Vec::new() }
    }

    /// The position of `seq` among the derived events so far.
    fn position(&self, seq: Seq) -> i64 {
        let before = self.passed_over.partition_point(|s| *s < seq);
        seq.get() as i64 - self.range.first.get() as i64 - before as i64
    }

    fn next(&mut self) -> Result<Option<Derived>, LogError> {
        while let Some(event) = self.cursor.next_event()? {
            let h = &event.header;
            let derived = h.run_id == self.range.run_id
                && !matches!(
                    event.payload,
                    Payload::RunStarted(_) | Payload::RunStopped(_) | Payload::RunResumed(_) | Payload::VenueNotice(_)
                )
                && !event.payload.is_operator_command(h.cycle_id);
            if !derived {
                self.passed_over.push(h.seq);
                continue;
            }
            let mut payload = event.payload;
            strip_run_prefix(&mut payload);
            return Ok(Some(Derived {
                seq: h.seq,
                cycle: h.cycle_id.get(),
                ts_event: h.ts_event,
                causation_offset: h.causation_seq.map(|c| self.position(c)),
                payload,
            }));
        }
        Ok(None)
    }
}

impl Derived {
    fn same_as(&self, other: &Derived) -> bool {
        self.cycle == other.cycle
            && self.ts_event == other.ts_event
            && self.causation_offset == other.causation_offset
            && self.payload == other.payload
    }

    fn view(&self) -> Value {
        serde_json::json!({
            "cycle_id": self.cycle,
            "ts_event": self.ts_event,
            "causation_offset": self.causation_offset,
            "payload": serde_json::to_value(&self.payload).unwrap_or(Value::Null),
        })
    }
}

/// Replaces the client order ids `r<run>-<n>` of a payload (its order's, and the entry
/// a protective exit protects) by their per-run part `<n>`.
fn strip_run_prefix(payload: &mut Payload) {
    let strip = |id: &mut ClientOrderId| {
        if let Some(stripped) = id.as_str().split_once('-').and_then(|(_, n)| ClientOrderId::new(n).ok()) {
            *id = stripped;
        }
    };
    match payload {
        Payload::OrderSubmitted(p) => {
            strip(&mut p.client_order_id);
            if let Some(exit) = &mut p.protects {
                strip(&mut exit.entry);
            }
        }
        Payload::OrderAccepted(p) => strip(&mut p.client_order_id),
        Payload::OrderRejected(p) => strip(&mut p.client_order_id),
        Payload::OrderCanceled(p) => {
            strip(&mut p.client_order_id);
            // A reduce-only order canceled after another filled names that one.
            let words: Vec<&str> = p.reason.split(' ').map(per_run_part).collect();
            p.reason = words.join(" ").into();
        }
        Payload::OrderFilled(p) => strip(&mut p.client_order_id),
        Payload::OrderAmended(p) => strip(&mut p.client_order_id),
        _ => {}
    }
}

/// `<n>` for a word `r<run>-<n>` (a client order id), else the word.
fn per_run_part(word: &str) -> &str {
    let id = word.strip_prefix('r').and_then(|rest| rest.split_once('-'));
    match id {
        Some((run, n)) if !run.is_empty() && run.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => word,
    }
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
