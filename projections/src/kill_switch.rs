//! The operator's kill switch, folded from the log: tripped by the last trip, cleared by
//! the last reset, in scope. Paper and live sessions share the operator's switch (their
//! trips, and the operator's own commands, count); a backtest's trips stay inside that
//! backtest and never block a later session.

use std::collections::BTreeSet;

use ledger_core::codec::CodecError;
use ledger_core::event::{EventRef, Payload, RunMode};
use ledger_core::ids::{RunId, Seq};
use serde::{Deserialize, Serialize};

use crate::Fold;

/// The kill-switch state a new paper or live session starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitchFold {
    tripped: bool,
    /// Seq of the trip or reset that set the state (0: never set).
    since: Seq,
    /// Runs whose trips stay inside them (replays: backtests and re-runs).
    simulated: BTreeSet<RunId>,
    covers: Seq,
}

impl KillSwitchFold {
    /// The snapshot's name (`1`: the layout of this state).
    pub const SNAPSHOT: &'static str = "kill_switch/1";

    /// Whether the operator's switch is tripped.
    pub fn is_tripped(&self) -> bool {
        self.tripped
    }

    /// The seq of the trip or reset that set the state (0 when it was never touched).
    pub fn since(&self) -> Seq {
        self.since
    }
}

impl Fold for KillSwitchFold {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.covers = event.seq;
        let in_scope = !self.simulated.contains(&event.run_id);
        match event.payload {
            Payload::RunStarted(started) if started.mode == RunMode::Replay => {
                self.simulated.insert(event.run_id);
            }
            Payload::KillSwitchTripped(_) if in_scope => (self.tripped, self.since) = (true, event.seq),
            Payload::KillSwitchReset(_) if in_scope => (self.tripped, self.since) = (false, event.seq),
            _ => {}
        }
    }

    fn covers(&self) -> Seq {
        self.covers
    }

    fn snapshot(&self) -> Result<Option<(String, Vec<u8>)>, CodecError> {
        crate::snapshot_of(KillSwitchFold::SNAPSHOT.into(), self)
    }
}
