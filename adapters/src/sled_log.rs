//! The persistent event log on sled.
//!
//! Trees: `events` (the seq of a segment's first record, big-endian, to the segment: the
//! records of one append, see [`ledger_core::codec`]; big-endian keys make sled append at
//! the tail), `runs` (run id to [`RunInfo`]) and `meta` (the head written down at the
//! last flush, which the runs index covers). The events tree is the source of truth: the
//! head is recovered from its last record on open, and the runs index is caught up from
//! the events after the head it covers. An append is one sled insert, so it is stored
//! whole or not at all.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use ledger_core::chain::Hash32;
use ledger_core::codec;
use ledger_core::event::EventDraft;
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::{AppendReceipt, BatchEncoder, EventLog, Head, LogError, RunIndex, RunInfo};

/// When appended events are flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every append is flushed before it returns.
    Strict,
    /// Appends are flushed once `max_events` are pending or `max_delay` has passed since
    /// the last flush, checked at each append; [`EventLog::sync`] flushes at once.
    /// [`AppendReceipt::durable_through`] says what a flush has covered.
    Group {
        /// Pending events that force a flush.
        max_events: u64,
        /// Age of the oldest unflushed append that forces a flush.
        max_delay: Duration,
    },
}

impl Durability {
    /// Group durability with the defaults: 10,000 events or 50 ms.
    pub const GROUP_DEFAULT: Durability =
        Durability::Group { max_events: 10_000, max_delay: Duration::from_millis(50) };
}

const META_RUNS_THROUGH: &[u8] = b"runs_indexed_through";

/// A hash-chained event log in a sled database directory. One process at a time.
pub struct SledLog {
    db: sled::Db,
    events: sled::Tree,
    runs_tree: sled::Tree,
    meta: sled::Tree,
    head: Head,
    durable: Seq,
    durability: Durability,
    unflushed_since: Option<Instant>,
    unflushed_events: u64,
    runs: RunIndex,
    /// The head written down at the last flush (the runs index covers up to it).
    recorded_head: Seq,
    dirty_runs: Vec<RunId>,
    encoder: BatchEncoder,
}

fn storage(context: &str, error: impl std::fmt::Display) -> LogError {
    LogError::Storage(format!("{context}: {error}"))
}

impl SledLog {
    /// Opens (or creates) the ledger in directory `path`, recovering the head from the
    /// last stored record and catching the runs index up with it.
    ///
    /// # Errors
    /// [`LogError::Locked`] if another process has the directory open; storage errors;
    /// [`LogError::Codec`] if the last record or the stored index does not decode.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, LogError> {
        let db = open_db(path)?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| storage(&format!("opening tree {name}"), e));
        let (events, runs_tree, meta) = (tree("events")?, tree("runs")?, tree("meta")?);

        let head = match events.last().map_err(|e| storage("reading the last segment", e))? {
            None => Head::default(),
            Some((key, segment)) => last_record(key_to_seq(&key)?, &segment),
        };

        let mut log = SledLog {
            db,
            events,
            runs_tree,
            meta,
            head,
            durable: head.seq,
            durability,
            unflushed_since: None,
            unflushed_events: 0,
            runs: RunIndex::default(),
            recorded_head: Seq::ZERO,
            dirty_runs: Vec::new(),
            encoder: BatchEncoder::default(),
        };
        log.load_runs_index()?;
        Ok(log)
    }

    /// Whether `path` holds a sled database (a ledger), without opening or creating it.
    pub fn exists(path: &Path) -> bool {
        path.join("conf").is_file()
    }

    /// Loads the persisted runs index and folds in the events it does not cover yet.
    fn load_runs_index(&mut self) -> Result<(), LogError> {
        for entry in self.runs_tree.iter() {
            let (key, bytes) = entry.map_err(|e| storage("reading the runs index", e))?;
            let info: RunInfo = codec::decode_meta(&bytes)
                .map_err(|source| LogError::Codec { seq: Seq::ZERO, source })
                .map_err(|e| storage(&format!("runs index entry {key:?}"), e))?;
            self.runs.insert(info);
        }
        let covered = match self.meta.get(META_RUNS_THROUGH).map_err(|e| storage("reading meta", e))? {
            Some(bytes) => codec::decode_meta::<Seq>(&bytes).map_err(|e| storage("meta runs_indexed_through", e))?,
            None => Seq::ZERO,
        };
        self.recorded_head = covered;
        if covered < self.head.seq {
            let mut runs = std::mem::take(&mut self.runs);
            let mut touched = Vec::new();
            self.visit_events(covered.next(), &mut |event| {
                let h = &event.header;
                runs.observe(h.seq, h.run_id, h.ts_recorded, &event.payload);
                touched.push(h.run_id);
                ControlFlow::Continue(())
            })?;
            self.runs = runs;
            self.dirty_runs = touched;
            self.dirty_runs.dedup();
            self.persist_runs_index()?;
        }
        Ok(())
    }

    /// Writes the runs index entries changed since the last flush, and the sequence the
    /// index now covers. Not atomic with the events, which is fine: it is derived, and
    /// `open` catches it up.
    fn persist_runs_index(&mut self) -> Result<(), LogError> {
        self.dirty_runs.sort_unstable();
        self.dirty_runs.dedup();
        for run in self.dirty_runs.drain(..) {
            if let Some(info) = self.runs.get(run) {
                let bytes = codec::encode_meta(info).map_err(|e| storage("encoding the runs index", e))?;
                self.runs_tree
                    .insert(run.get().to_be_bytes(), bytes)
                    .map_err(|e| storage("writing the runs index", e))?;
            }
        }
        let covered = codec::encode_meta(&self.head.seq).map_err(|e| storage("encoding meta", e))?;
        self.meta.insert(META_RUNS_THROUGH, covered).map_err(|e| storage("writing meta", e))?;
        self.recorded_head = self.head.seq;
        Ok(())
    }

    fn flush(&mut self) -> Result<Seq, LogError> {
        self.persist_runs_index()?;
        self.db.flush().map_err(|e| storage("flushing", e))?;
        self.durable = self.head.seq;
        self.unflushed_since = None;
        self.unflushed_events = 0;
        Ok(self.durable)
    }
}

/// How long `open` keeps trying while the directory's lock is held: sled releases its
/// file lock from background threads shortly after a database is closed, so a reopen
/// in the same process can briefly find it held. Another process holding it stays
/// locked past this and is reported as [`LogError::Locked`].
const LOCK_PATIENCE: Duration = Duration::from_millis(1_000);

fn open_db(path: &Path) -> Result<sled::Db, LogError> {
    let started = Instant::now();
    loop {
        match sled::Config::new().path(path).flush_every_ms(None).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_PATIENCE {
                    return Err(LogError::Locked { path: path.display().to_string() });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => return Err(storage(&format!("opening {}", path.display()), error)),
        }
    }
}

/// Sequence and hash of the last record of the segment stored under `first`. A damaged
/// tail yields the last good record; `verify` names the damage, and appends are refused
/// because the head written down at the last flush is then ahead of it.
fn last_record(first: Seq, segment: &[u8]) -> Head {
    let mut head = Head { seq: Seq::new(first.get().saturating_sub(1)), hash: Hash32::ZERO };
    for (index, record) in codec::segment_records(segment).enumerate() {
        let Ok(frame) = record.and_then(codec::frame) else { break };
        head = Head { seq: first.plus(index as u64), hash: frame.stored_hash };
    }
    head
}

fn key_to_seq(key: &[u8]) -> Result<Seq, LogError> {
    let bytes: [u8; 8] =
        key.try_into().map_err(|_| storage("events tree", format!("key of {} bytes, expected 8", key.len())))?;
    Ok(Seq::new(u64::from_be_bytes(bytes)))
}

impl EventLog for SledLog {
    fn append(&mut self, batch: &[EventDraft], expected_head: Option<Seq>) -> Result<AppendReceipt, LogError> {
        if let Some(expected) = expected_head {
            if expected != self.head.seq {
                return Err(LogError::HeadMoved { expected, actual: self.head.seq });
            }
        }
        let mut encoder = std::mem::take(&mut self.encoder);
        let prepared = encoder.prepare(self.head.seq.next(), batch);
        let receipt = prepared.and_then(|()| self.append_prepared(&mut encoder, batch));
        self.encoder = encoder;
        receipt
    }

    fn append_prepared(
        &mut self,
        prepared: &mut BatchEncoder,
        batch: &[EventDraft],
    ) -> Result<AppendReceipt, LogError> {
        if self.recorded_head > self.head.seq {
            return Err(LogError::TailMissing { head: self.head.seq, recorded: self.recorded_head });
        }
        let first = self.head.seq.next();
        if batch.is_empty() {
            return Ok(AppendReceipt { first, last: self.head.seq, durable_through: self.durable });
        }
        let head = prepared.chain(self.head)?;
        self.events.insert(first.to_key(), prepared.segment()).map_err(|e| storage("appending", e))?;
        self.head = head;
        for (offset, draft) in batch.iter().enumerate() {
            let info = self.runs.observe(first.plus(offset as u64), draft.run_id, draft.ts_recorded, &draft.payload);
            if self.dirty_runs.last() != Some(&info.run_id) {
                self.dirty_runs.push(info.run_id);
            }
        }
        self.unflushed_events += batch.len() as u64;
        let since = *self.unflushed_since.get_or_insert_with(Instant::now);
        let due = match self.durability {
            Durability::Strict => true,
            Durability::Group { max_events, max_delay } => {
                self.unflushed_events >= max_events || since.elapsed() >= max_delay
            }
        };
        if due {
            self.flush()?;
        }
        Ok(AppendReceipt { first, last: head.seq, durable_through: self.durable })
    }

    fn head(&self) -> Head {
        self.head
    }

    fn durable_seq(&self) -> Seq {
        self.durable
    }

    fn sync(&mut self) -> Result<Seq, LogError> {
        self.flush()
    }

    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        // Start at the segment holding `from`: the last key at or before it.
        let start = match self.events.range(..=from.to_key()).next_back() {
            Some(entry) => entry.map_err(|e| storage("reading records", e))?.0,
            None => sled::IVec::from(&from.to_key()[..]),
        };
        for entry in self.events.range(start..) {
            let (key, segment) = entry.map_err(|e| storage("reading records", e))?;
            let first = key_to_seq(&key)?;
            for (index, record) in codec::segment_records(&segment).enumerate() {
                let seq = first.plus(index as u64);
                let record = record.map_err(|source| LogError::Codec { seq, source })?;
                if seq >= from && visit(seq, record).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn runs(&self) -> &RunIndex {
        &self.runs
    }

    fn recorded_head(&self) -> Option<Seq> {
        Some(self.recorded_head)
    }
}

impl Drop for SledLog {
    fn drop(&mut self) {
        if self.durable < self.head.seq && self.recorded_head <= self.head.seq {
            if let Err(error) = self.flush() {
                tracing::error!(%error, "flushing the ledger on close failed");
            }
        }
    }
}

/// Raw access to the stored records, for tests and tools that must tamper with or
/// inspect bytes below the chain (never used by the pipeline).
pub mod raw {
    use super::*;

    /// Opens the `events` tree of the ledger at `path` directly.
    ///
    /// # Errors
    /// Storage errors, or the lock held by another process.
    pub fn events_tree(path: &Path) -> Result<(sled::Db, sled::Tree), LogError> {
        let db = open_db(path)?;
        let tree = db.open_tree("events").map_err(|e| storage("opening events", e))?;
        Ok((db, tree))
    }
}
