//! `ledger-projections`: the folds of the event log into the views people and the
//! pipeline read.
//!
//! Every projection is a [`Fold`]: it applies events in sequence order, knows the last
//! seq it covers, and its state is plain serializable data (a snapshot is its bytes).
//! The runner feeds the folds live, batch by batch as it appends ([`Folds`]); a command
//! folds the stored log the same way ([`fold_log`]); both see the same [`EventRef`]s, so
//! a fold fed live equals the fold over the stored log.
//!
//! # Layout
//! - [`runs`]: the runs index (one summary per run).
//! - [`kill_switch`]: the operator's kill-switch state, scoped (a backtest's trips stay in it).
//! - [`portfolio`]: one run's account: cash, positions, P&L, drawdown.
//! - [`report`]: one run's performance statistics, in memory that does not grow with it.
//! - [`trades`]: one run's round-trip trades and equity curve, row by row.
//! - [`counterfactual`]: two runs of the same ticks compared cycle by cycle.
//! - [`audit`]: one run's audit trail, a row per cycle and per run or operator event,
//!   and the row hash chain of an export.
//! - [`downsample`]: a long series in a bounded number of points, extremes kept (charts).
//! - [`page`]: what the visual report of one run shows: drawn series, markers, the
//!   audit rows explaining each trade.
//! - [`decisions`]: a run's decisions cycle by cycle, and where two runs part.
//! - [`merkle`]: RFC 9162 Merkle tree heads and consistency proofs over records.
//! - [`note`]: signed checkpoints (C2SP signed notes, Ed25519).
#![forbid(unsafe_code)]

pub mod audit;
pub mod counterfactual;
pub mod decisions;
pub mod downsample;
pub mod kill_switch;
pub mod merkle;
pub mod note;
pub mod page;
pub mod portfolio;
pub mod report;
pub mod runs;
pub mod trades;

use std::ops::ControlFlow;

use ledger_core::codec::{self, CodecError};
use ledger_core::event::{EventDraft, EventRef};
use ledger_core::ids::Seq;
use ledger_core::log::{self, LogError, RecordSource};
use ledger_core::runner::Observer;

/// A projection of the log. Events are applied in sequence order, each once; an event
/// at or below [`Fold::covers`] has already been applied and is skipped by the helpers
/// here, so a fold restored from a snapshot can be fed from any earlier seq.
pub trait Fold {
    /// Applies one event.
    fn apply(&mut self, event: &EventRef<'_>);

    /// The last seq applied (0: none).
    fn covers(&self) -> Seq;

    /// The fold's snapshot: its name (which carries the version of the state's layout,
    /// e.g. `runs/2`) and its state encoded ([`codec::encode_meta`]); `None` for a fold
    /// that is not kept.
    ///
    /// # Errors
    /// A state that does not encode.
    fn snapshot(&self) -> Result<Option<(String, Vec<u8>)>, CodecError> {
        Ok(None)
    }
}

/// Encodes a fold's state as its snapshot `name`.
fn snapshot_of<T: serde::Serialize>(name: String, state: &T) -> Result<Option<(String, Vec<u8>)>, CodecError> {
    Ok(Some((name, codec::encode_meta(state)?)))
}

/// Several folds fed together, as the runner's [`Observer`] or over the stored log.
#[derive(Default)]
pub struct Folds<'a>(Vec<&'a mut (dyn Fold + Send)>);

impl<'a> Folds<'a> {
    /// No folds yet.
    pub fn new() -> Self {
        Folds(Vec::new())
    }

    /// Adds a fold.
    pub fn with(mut self, fold: &'a mut (dyn Fold + Send)) -> Self {
        self.0.push(fold);
        self
    }

    /// Applies `event` to every fold that has not covered it yet.
    pub fn apply(&mut self, event: &EventRef<'_>) {
        for fold in self.0.iter_mut() {
            if event.seq > fold.covers() {
                fold.apply(event);
            }
        }
    }

    /// The lowest seq every fold covers.
    pub fn covers(&self) -> Seq {
        self.0.iter().map(|f| f.covers()).min().unwrap_or(Seq::ZERO)
    }
}

/// Several folds fed as one, so one pass over the log feeds them all ([`fold_range`]).
impl Fold for Folds<'_> {
    fn apply(&mut self, event: &EventRef<'_>) {
        Folds::apply(self, event);
    }

    fn covers(&self) -> Seq {
        Folds::covers(self)
    }
}

impl Observer for Folds<'_> {
    fn observe(&mut self, first: Seq, events: &[EventDraft]) {
        for (offset, draft) in events.iter().enumerate() {
            self.apply(&draft.at(first.plus(offset as u64)));
        }
    }

    fn snapshots(&self) -> Result<Vec<(String, Vec<u8>)>, CodecError> {
        let mut out = Vec::new();
        for fold in &self.0 {
            out.extend(fold.snapshot()?);
        }
        Ok(out)
    }
}

/// Feeds `folds` every stored event they do not cover yet, read checked from `source`
/// ([`log::visit_events`]). Memory does not grow with the log.
///
/// # Errors
/// As [`log::visit_events`].
pub fn fold_log(source: &dyn RecordSource, folds: &mut Folds<'_>) -> Result<(), LogError> {
    let from = folds.covers().next();
    log::visit_events(source, from, &mut |event| {
        folds.apply(&event.as_ref());
        ControlFlow::Continue(())
    })
}

/// Feeds `fold` the stored events `first..=last` (one run's range), read checked from
/// `source`. Memory does not grow with the range.
///
/// # Errors
/// As [`log::visit_events`].
pub fn fold_range(source: &dyn RecordSource, first: Seq, last: Seq, fold: &mut dyn Fold) -> Result<(), LogError> {
    log::visit_events(source, first, &mut |event| {
        if event.header.seq > last {
            return ControlFlow::Break(());
        }
        if event.header.seq > fold.covers() {
            fold.apply(&event.as_ref());
        }
        ControlFlow::Continue(())
    })
}
