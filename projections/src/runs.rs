//! The runs index: one summary per run (mode, seq range, event count, start and stop),
//! folded from the log. What `ledger runs` shows, and where a command finds a run's
//! events.

use std::collections::BTreeMap;

use ledger_core::codec::{self, CodecError};
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
    /// Times the run was resumed after an interruption (`RunResumed` events).
    pub resumes: u32,
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
    /// The snapshot's name (`2`: the layout of this state; `runs/1` is read and upcast).
    pub const SNAPSHOT: &'static str = "runs/2";
    /// The name layout 1 was stored under.
    pub const SNAPSHOT_V1: &'static str = "runs/1";

    /// Decodes a snapshot stored under `name` ([`RunsFold::SNAPSHOT`] or
    /// [`RunsFold::SNAPSHOT_V1`]).
    ///
    /// # Errors
    /// An unknown name, or bytes that do not decode as that layout.
    pub fn from_snapshot(name: &str, bytes: &[u8]) -> Result<RunsFold, CodecError> {
        match name {
            RunsFold::SNAPSHOT => codec::decode_meta(bytes),
            RunsFold::SNAPSHOT_V1 => codec::decode_meta::<v1::RunsFold>(bytes).map(RunsFold::from),
            other => Err(CodecError::Body(format!("no runs index layout named {other}"))),
        }
    }

    /// The latest run with a `RunStarted` that has not stopped (paper or live: a
    /// session killed before its `RunStopped`), if the latest session run is one.
    pub fn interrupted(&self) -> Option<&RunSummary> {
        self.runs
            .values()
            .rev()
            .find(|r| matches!(r.mode, Some(RunMode::Paper | RunMode::Live)))
            .filter(|r| r.stopped.is_none())
    }

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
            resumes: 0,
        });
        info.last_seq = event.seq;
        info.event_count += 1;
        match event.payload {
            Payload::RunStarted(started) => info.mode = Some(started.mode),
            Payload::RunStopped(stopped) => {
                info.stopped = Some(event.ts_recorded);
                info.stop_reason = Some(stopped.reason.clone());
            }
            Payload::RunResumed(_) => info.resumes = info.resumes.saturating_add(1),
            _ => {}
        }
    }

    fn covers(&self) -> Seq {
        self.covers
    }

    fn snapshot(&self) -> Result<Option<(String, Vec<u8>)>, CodecError> {
        crate::snapshot_of(RunsFold::SNAPSHOT.into(), self)
    }
}

/// Layout 1 of the runs index snapshot (`runs/1`, written before runs could resume),
/// read and upcast: a ledger of that time holds no `RunResumed`, so every run's
/// `resumes` is 0.
mod v1 {
    use super::*;

    #[derive(Deserialize)]
    struct RunSummary {
        run_id: RunId,
        mode: Option<RunMode>,
        first_seq: Seq,
        last_seq: Seq,
        event_count: u64,
        started: TimestampNs,
        stopped: Option<TimestampNs>,
        stop_reason: Option<Text>,
    }

    #[derive(Deserialize)]
    pub(super) struct RunsFold {
        runs: BTreeMap<RunId, RunSummary>,
        covers: Seq,
    }

    impl From<RunsFold> for super::RunsFold {
        fn from(old: RunsFold) -> Self {
            let runs = old
                .runs
                .into_iter()
                .map(|(id, r)| {
                    let summary = super::RunSummary {
                        run_id: r.run_id,
                        mode: r.mode,
                        first_seq: r.first_seq,
                        last_seq: r.last_seq,
                        event_count: r.event_count,
                        started: r.started,
                        stopped: r.stopped,
                        stop_reason: r.stop_reason,
                        resumes: 0,
                    };
                    (id, summary)
                })
                .collect();
            super::RunsFold { runs, covers: old.covers }
        }
    }
}
