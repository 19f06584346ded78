//! The runs index: one summary per run (mode, seq range, event count, start and stop),
//! folded from the log. What `ledger runs` shows, and where a command finds a run's
//! events.

use std::collections::BTreeMap;

use ledger_core::event::{EventRef, Payload, RunMode, Text};
use ledger_core::ids::{RunId, Seq};
use ledger_core::replay::RunRange;
use ledger_core::time::TimestampNs;
use serde::{Deserialize, Serialize};

use crate::Fold;

/// One run as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run.
    pub run_id: RunId,
    /// Live, paper or replay (`None` if the run's `RunStarted` is not in the ledger, as
    /// for operator commands, which are recorded under run 0).
    pub mode: Option<RunMode>,
    /// Sequence of the run's first event.
    pub first_seq: Seq,
    /// Sequence of the run's last event so far.
    pub last_seq: Seq,
    /// Events of the run.
    pub event_count: u64,
    /// `ts_recorded` of the run's first event, UTC ns.
    pub started: TimestampNs,
    /// `ts_recorded` of its `RunStopped`, if it has stopped.
    pub stopped: Option<TimestampNs>,
    /// The reason its `RunStopped` gave.
    pub stop_reason: Option<Text>,
}

impl RunSummary {
    /// Where the run's events lie.
    pub fn range(&self) -> RunRange {
        RunRange { run_id: self.run_id, first: self.first_seq, last: self.last_seq }
    }
}

/// The runs index: run id to [`RunSummary`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunsFold {
    runs: BTreeMap<RunId, RunSummary>,
    covers: Seq,
}

impl RunsFold {
    /// One run.
    pub fn get(&self, run: RunId) -> Option<&RunSummary> {
        self.runs.get(&run)
    }

    /// Every run, by id.
    pub fn iter(&self) -> impl Iterator<Item = &RunSummary> {
        self.runs.values()
    }

    /// The id the next run should take: one above the highest so far, from 1.
    pub fn next_run_id(&self) -> RunId {
        RunId::new(self.runs.keys().next_back().map_or(1, |id| id.get() + 1))
    }
}

impl Fold for RunsFold {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.covers = event.seq;
        let info = self.runs.entry(event.run_id).or_insert_with(|| RunSummary {
            run_id: event.run_id,
            mode: None,
            first_seq: event.seq,
            last_seq: event.seq,
            event_count: 0,
            started: event.ts_recorded,
            stopped: None,
            stop_reason: None,
        });
        info.last_seq = event.seq;
        info.event_count += 1;
        match event.payload {
            Payload::RunStarted(started) => info.mode = Some(started.mode),
            Payload::RunStopped(stopped) => {
                info.stopped = Some(event.ts_recorded);
                info.stop_reason = Some(stopped.reason.clone());
            }
            _ => {}
        }
    }

    fn covers(&self) -> Seq {
        self.covers
    }
}
