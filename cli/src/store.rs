//! The ledger in the data directory, with the folds every command needs: the runs
//! index and the kill-switch state. They are kept as snapshots in the ledger's
//! `snapshots` tree, with the seq they cover, and caught up from the events after it
//! when the ledger is opened: opening reads a snapshot and a tail, not the whole log.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ledger_adapters::sled_log::{Durability, SledLog};
use ledger_core::codec;
use ledger_core::ids::RunId;
use ledger_core::ids::Seq;
use ledger_core::log::{EventLog, LogError};
use ledger_core::runner::SessionState;
use ledger_projections::kill_switch::KillSwitchFold;
use ledger_projections::report::ReportFold;
use ledger_projections::runs::RunsFold;
use ledger_projections::{fold_log, Fold, Folds};
use serde::de::DeserializeOwned;

use crate::{control, describe};

/// An open ledger and its folds, caught up with its head.
pub struct Ledger {
    /// The event log.
    pub log: SledLog,
    /// The runs index.
    pub runs: RunsFold,
    /// The operator's kill switch.
    pub kill_switch: KillSwitchFold,
    /// The highest seq a snapshot covers beyond the log's head, if any: snapshots are
    /// written after the events they cover, so records were cut off the tail.
    pub snapshot_beyond_head: Option<Seq>,
}

impl Ledger {
    /// Opens an existing ledger; a missing directory is an error rather than a new,
    /// empty ledger, so a mistyped `--data-dir` is noticed.
    ///
    /// # Errors
    /// No ledger there, a storage error, or damage met while catching the folds up.
    pub fn open_existing(data_dir: &Path) -> Result<Ledger> {
        if !SledLog::exists(data_dir) {
            bail!("no ledger at {} (set --data-dir or LEDGER_DATA_DIR)", describe::path(data_dir));
        }
        Ledger::open(data_dir, Durability::Strict)
    }

    /// Opens the ledger in `data_dir`, creating it if it does not exist yet.
    ///
    /// # Errors
    /// A storage error, or damage met while catching the folds up.
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Ledger> {
        let mut ledger = Ledger::open_snapshots(data_dir, durability)?;
        if ledger.runs.covers().min(ledger.kill_switch.covers()) < ledger.log.head().seq {
            fold_log(&ledger.log, &mut Folds::new().with(&mut ledger.runs).with(&mut ledger.kill_switch))
                .with_context(|| format!("reading the ledger at {}", describe::path(data_dir)))?;
        }
        Ok(ledger)
    }

    /// Opens an existing ledger with its folds as their snapshots left them, not caught
    /// up with the events after them: for `ledger verify`, which reads every event
    /// itself (and must name damage, not stop at it).
    ///
    /// # Errors
    /// No ledger there, or a storage error.
    pub fn open_snapshots_only(data_dir: &Path) -> Result<Ledger> {
        if !SledLog::exists(data_dir) {
            bail!("no ledger at {} (set --data-dir or LEDGER_DATA_DIR)", describe::path(data_dir));
        }
        Ledger::open_snapshots(data_dir, Durability::Strict)
    }

    fn open_snapshots(data_dir: &Path, durability: Durability) -> Result<Ledger> {
        let log = SledLog::open(data_dir, durability).map_err(|error| match error {
            // A running session holds the lock: say so, and what to use instead.
            LogError::Locked { .. } => control::locked(data_dir, error),
            error => anyhow::Error::new(error).context(format!("opening ledger at {}", describe::path(data_dir))),
        })?;
        let head = log.head().seq;
        // Snapshot names carry the version of their fold's layout: an older layout is
        // read and upcast where the fold knows how, else ignored and the fold rebuilt.
        let runs = match log.snapshot(RunsFold::SNAPSHOT)? {
            Some(bytes) => decoded(RunsFold::SNAPSHOT, RunsFold::from_snapshot(RunsFold::SNAPSHOT, &bytes)),
            None => match log.snapshot(RunsFold::SNAPSHOT_V1)? {
                Some(bytes) => decoded(RunsFold::SNAPSHOT_V1, RunsFold::from_snapshot(RunsFold::SNAPSHOT_V1, &bytes)),
                None => None,
            },
        };
        let kill_switch: Option<KillSwitchFold> = load(&log, KillSwitchFold::SNAPSHOT)?;
        let covered = [runs.as_ref().map(Fold::covers), kill_switch.as_ref().map(Fold::covers)];
        let snapshot_beyond_head = covered.into_iter().flatten().filter(|&covers| covers > head).max();
        // A snapshot ahead of the log (records cut off the tail) is not trusted.
        Ok(Ledger {
            log,
            runs: runs.filter(|f| f.covers() <= head).unwrap_or_default(),
            kill_switch: kill_switch.filter(|f| f.covers() <= head).unwrap_or_default(),
            snapshot_beyond_head,
        })
    }

    /// Writes the folds' snapshots (after the events they cover are appended).
    ///
    /// # Errors
    /// A storage error.
    pub fn save_folds(&mut self) -> Result<()> {
        let folds: [&dyn Fold; 2] = [&self.runs, &self.kill_switch];
        for fold in folds {
            if let Some((name, bytes)) = fold.snapshot().context("encoding a snapshot")? {
                self.log.put_snapshot(&name, &bytes)?;
            }
        }
        Ok(())
    }

    /// The latest session snapshot of run `run` (what a resumed run and `ledger
    /// rebuild` start from), if one is stored, readable, and not beyond the head.
    ///
    /// # Errors
    /// A storage error.
    pub fn session_state(&self, run: RunId) -> Result<Option<SessionState>> {
        let state: Option<SessionState> = load(&self.log, &SessionState::name(run))?;
        Ok(state.filter(|s| s.covers <= self.log.head().seq))
    }
}

impl Ledger {
    /// The latest report fold snapshot of run `run`, if one is stored and readable (it
    /// may trail the log: fold the events after [`Fold::covers`]).
    ///
    /// # Errors
    /// A storage error.
    pub fn report_state(&self, run: RunId) -> Result<Option<ReportFold>> {
        let report: Option<ReportFold> = load(&self.log, &ReportFold::snapshot_name(run))?;
        Ok(report.filter(|r| r.covers() <= self.log.head().seq))
    }
}

fn load<T: DeserializeOwned>(log: &SledLog, name: &str) -> Result<Option<T>> {
    let Some(bytes) = log.snapshot(name)? else { return Ok(None) };
    Ok(decoded(name, codec::decode_meta(&bytes)))
}

/// A decoded snapshot, or `None` (with a warning) when this build cannot read it: it is
/// then rebuilt from the log, never trusted.
fn decoded<T>(name: &str, value: Result<T, codec::CodecError>) -> Option<T> {
    match value {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(%error, snapshot = name, "snapshot unreadable; rebuilding it from the log");
            None
        }
    }
}
