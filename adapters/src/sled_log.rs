//! The persistent event log on sled.
//!
//! Trees: `events` (the seq of a segment's first record, big-endian, to the segment: the
//! records of one append, see [`ledger_core::codec`]; big-endian keys make sled append at
//! the tail), `meta` (the head seq written down at each flush), and `snapshots` (the
//! projections' folds, each under its name with the seq it covers, written by whoever
//! owns the fold). The events tree is the source of truth: the head is recovered from
//! its last record on open. An append is one sled insert, so it is stored whole or not
//! at all. Derived state (the runs index, the kill switch) is not the log's business:
//! it lives in folds (`ledger-projections`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ledger_core::chain::Hash32;
use ledger_core::codec;
use ledger_core::event::EventDraft;
use ledger_core::ids::Seq;
use ledger_core::log::{AppendReceipt, BatchEncoder, EventLog, Head, LogError, PreparedAppend, RecordSource};

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

/// The `meta` key of the head seq written down at the last flush (its name is from
/// format 1, when the runs index lived here and covered the same seq).
const META_HEAD: &[u8] = b"runs_indexed_through";

/// sled's page cache. Its default (1 GiB) is sized for a database server; the ledger
/// appends at the tail and reads ranges once, so a small cache costs no speed and keeps
/// a ten-million-bar backtest in a few hundred megabytes.
const CACHE_BYTES: u64 = 64 << 20;

/// A hash-chained event log in a sled database directory. One process at a time.
pub struct SledLog {
    path: PathBuf,
    db: sled::Db,
    events: sled::Tree,
    meta: sled::Tree,
    snapshots: sled::Tree,
    head: Head,
    durable: Seq,
    durability: Durability,
    unflushed_since: Option<Instant>,
    unflushed_events: u64,
    /// The head written down at the last flush.
    recorded_head: Seq,
    encoder: BatchEncoder,
}

impl SledLog {
    /// Opens (or creates) the ledger in directory `path`, recovering the head from the
    /// last stored record.
    ///
    /// # Errors
    /// [`LogError::Locked`] if another process has the directory open; storage errors
    /// naming the directory.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, LogError> {
        let db = open_db(path)?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| LogError::storage(format!("opening tree {name}"), e));
        let (events, meta, snapshots) = (tree("events")?, tree("meta")?, tree("snapshots")?);
        let head = match events.last().map_err(|e| LogError::storage("reading the last segment", e))? {
            None => Head::default(),
            Some((key, segment)) => last_record(key_to_seq(&key)?, &segment),
        };
        let recorded_head = match meta.get(META_HEAD).map_err(|e| LogError::storage("reading meta", e))? {
            Some(bytes) => {
                codec::decode_meta::<Seq>(&bytes).map_err(|source| LogError::Codec { seq: Seq::ZERO, source })?
            }
            None => Seq::ZERO,
        };
        Ok(SledLog {
            path: path.to_path_buf(),
            db,
            events,
            meta,
            snapshots,
            head,
            durable: head.seq,
            durability,
            unflushed_since: None,
            unflushed_events: 0,
            recorded_head,
            encoder: BatchEncoder::default(),
        })
    }

    /// Whether `path` holds a sled database (a ledger), without opening or creating it.
    pub fn exists(path: &Path) -> bool {
        path.join("conf").is_file()
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The snapshot stored under `name`, if any (bytes as [`SledLog::put_snapshot`]
    /// stored them; the fold that wrote them knows what they mean).
    ///
    /// # Errors
    /// Storage errors.
    pub fn snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        let bytes = self.snapshots.get(name).map_err(|e| LogError::storage(format!("reading snapshot {name}"), e))?;
        Ok(bytes.map(|b| b.to_vec()))
    }

    /// Stores a fold's snapshot under `name`, replacing the previous one. Durable with
    /// the next flush; a snapshot may trail the log (the fold catches up from the seq it
    /// covers) but must never run ahead of it, so write it after the events it covers.
    ///
    /// # Errors
    /// Storage errors.
    pub fn put_snapshot(&mut self, name: &str, bytes: &[u8]) -> Result<(), LogError> {
        self.snapshots.insert(name, bytes).map_err(|e| LogError::storage(format!("writing snapshot {name}"), e))?;
        Ok(())
    }

    fn flush(&mut self) -> Result<Seq, LogError> {
        let head =
            codec::encode_meta(&self.head.seq).map_err(|source| LogError::Encode { seq: self.head.seq, source })?;
        self.meta.insert(META_HEAD, head).map_err(|e| LogError::storage("writing meta", e))?;
        self.db.flush().map_err(|e| LogError::storage(format!("flushing {}", self.path.display()), e))?;
        self.recorded_head = self.head.seq;
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
        match sled::Config::new().path(path).cache_capacity(CACHE_BYTES).flush_every_ms(None).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_PATIENCE {
                    return Err(LogError::Locked { path: path.display().to_string() });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => return Err(LogError::storage(format!("opening {}", path.display()), error)),
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

/// An events-tree key that is not 8 bytes: the tree holds something a ledger did not write.
#[derive(Debug, thiserror::Error)]
#[error("events tree key of {0} bytes, expected 8")]
struct BadKey(usize);

fn key_to_seq(key: &[u8]) -> Result<Seq, LogError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| LogError::storage("reading the events tree", BadKey(key.len())))?;
    Ok(Seq::new(u64::from_be_bytes(bytes)))
}

impl PreparedAppend for SledLog {
    fn append_prepared(&mut self, prepared: &mut BatchEncoder) -> Result<AppendReceipt, LogError> {
        if self.recorded_head > self.head.seq {
            return Err(LogError::TailMissing { head: self.head.seq, recorded: self.recorded_head });
        }
        let first = self.head.seq.next();
        if prepared.is_empty() {
            return Ok(AppendReceipt { first, last: self.head.seq, durable_through: self.durable });
        }
        let head = prepared.chain(self.head)?;
        self.events.insert(first.to_key(), prepared.segment()).map_err(|e| LogError::storage("appending", e))?;
        self.head = head;
        self.unflushed_events += prepared.len() as u64;
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
}

impl EventLog for SledLog {
    fn append(&mut self, batch: &mut Vec<EventDraft>) -> Result<AppendReceipt, LogError> {
        let first = self.head.seq.next();
        let mut prepared = std::mem::take(&mut self.encoder);
        let receipt = prepared.prepare(first, batch).and_then(|()| self.append_prepared(&mut prepared));
        self.encoder = prepared;
        if receipt.is_ok() {
            batch.clear();
        }
        receipt
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

    fn reader(&self) -> Result<Box<dyn RecordSource + Send>, LogError> {
        Ok(Box::new(SledReader { events: self.events.clone(), recorded_head: Some(self.recorded_head) }))
    }
}

impl RecordSource for SledLog {
    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        visit_tree(&self.events, from, visit)
    }

    fn recorded_head(&self) -> Option<Seq> {
        Some(self.recorded_head)
    }
}

/// A reader of a [`SledLog`]'s events tree, for another thread while the log appends
/// (sled's trees are safe to read during inserts; a reader sees whole segments only).
struct SledReader {
    events: sled::Tree,
    recorded_head: Option<Seq>,
}

impl RecordSource for SledReader {
    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        visit_tree(&self.events, from, visit)
    }

    fn recorded_head(&self) -> Option<Seq> {
        self.recorded_head
    }
}

fn visit_tree(
    events: &sled::Tree,
    from: Seq,
    visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>,
) -> Result<(), LogError> {
    // Start at the segment holding `from`: the last key at or before it.
    let start = match events.range(..=from.to_key()).next_back() {
        Some(entry) => entry.map_err(|e| LogError::storage("reading records", e))?.0,
        None => sled::IVec::from(&from.to_key()[..]),
    };
    for entry in events.range(start..) {
        let (key, segment) = entry.map_err(|e| LogError::storage("reading records", e))?;
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
        let tree = db.open_tree("events").map_err(|e| LogError::storage("opening events", e))?;
        Ok((db, tree))
    }
}
