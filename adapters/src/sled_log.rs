//! The persistent event log on sled.
//!
//! Trees: `events` (the seq of a segment's first record, big-endian, to the segment: the
//! records of one append, see [`ledger_core::codec`]; big-endian keys make sled append at
//! the tail), `meta` (the head seq written down at each flush, and the ledger's id),
//! `outbox` (the last seq a NATS stream acknowledged, see [`OutboxMark`]), and `snapshots` (the
//! projections' folds, each under its name with the seq it covers, written by whoever
//! owns the fold). The events tree is the source of truth: the head is recovered from
//! its last record on open. An append is one sled insert, so it is stored whole or not
//! at all. Derived state (the runs index, the kill switch) is not the log's business:
//! it lives in folds (`ledger-projections`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
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

/// The `meta` key of the ledger's id: made once, when the ledger is created (or, for a
/// ledger of an earlier build, when it is first asked for), and kept: it names the
/// ledger's messages on NATS (`Nats-Msg-Id: <ledger_id>:<seq>`).
const META_LEDGER_ID: &[u8] = b"ledger_id";

/// The `outbox` key of the last seq a NATS stream acknowledged.
const OUTBOX_ACKED: &[u8] = b"acked";

/// The file beside sled's, in the data directory, where every flush writes down the head
/// it made durable ([`HeadFile`]).
pub const HEAD_FILE: &str = "ledger.head";

/// The head written down outside sled's log at every flush: sled recovers a *prefix* of
/// its log, so a `db` file cut short (a damaged disk, a copy interrupted, a backup of an
/// older state) reads as a shorter, intact ledger, its own `meta` head and snapshots cut
/// with it. This file is written after sled's flush returns, so it never claims more than
/// was durable; a log that ends before the seq it names has lost records. 80 bytes:
/// `LDGHEAD1`, the seq (big-endian), the head hash, and SHA-256 of those 48 bytes; one
/// in-place write, within one disk sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadFile {
    /// The last durable seq at the flush.
    pub seq: Seq,
    /// Its record's hash.
    pub hash: Hash32,
}

impl HeadFile {
    const MAGIC: &'static [u8; 8] = b"LDGHEAD1";

    fn encode(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[..8].copy_from_slice(Self::MAGIC);
        out[8..16].copy_from_slice(&self.seq.get().to_be_bytes());
        out[16..48].copy_from_slice(self.hash.as_bytes());
        let check = Hash32::digest(&out[..48]);
        out[48..].copy_from_slice(check.as_bytes());
        out
    }

    /// Reads the head file of the ledger in `dir`: `None` when there is none (a ledger
    /// of an earlier build) or it does not check out (then it is not trusted, and the
    /// next flush writes it again).
    pub fn read(dir: &Path) -> Option<HeadFile> {
        let bytes = std::fs::read(dir.join(HEAD_FILE)).ok()?;
        let ok = bytes.len() == 80
            && &bytes[..8] == Self::MAGIC
            && Hash32::digest(&bytes[..48]).as_bytes()[..] == bytes[48..];
        if !ok {
            tracing::warn!(dir = %dir.display(), "the ledger's head file does not check out; it is written again at the next flush");
            return None;
        }
        let seq = Seq::new(u64::from_be_bytes(bytes[8..16].try_into().ok()?));
        let hash = Hash32::from_bytes(bytes[16..48].try_into().ok()?);
        Some(HeadFile { seq, hash })
    }

    fn write(&self, dir: &Path) -> Result<(), LogError> {
        use std::os::unix::fs::FileExt;
        let path = dir.join(HEAD_FILE);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LogError::storage(format!("writing {}", path.display()), e))?;
        file.write_all_at(&self.encode(), 0).map_err(|e| LogError::storage(format!("writing {}", path.display()), e))
    }
}

/// sled's page cache. Its default (1 GiB) is sized for a database server; the ledger
/// appends at the tail and reads ranges once, so a small cache costs no speed and keeps
/// a ten-million-bar backtest in a few hundred megabytes.
const CACHE_BYTES: u64 = 64 << 20;

/// A hash-chained event log in a sled database directory. One process at a time.
///
/// # Memory
/// sled 0.34 evicts from its page cache only once a cache shard has queued 64 page
/// accesses, and it has 256 shards: a ledger of large segments (a few thousand keys per
/// million bars) never gets there, so every page read or written stays in memory
/// (measured: 2.6 GB of resident memory to verify ten million bars, whatever
/// `cache_capacity` says). The log therefore reopens its sled database after every
/// [`REOPEN_BYTES`] read or written, at a point where everything is flushed: the
/// reopen takes about 3 ms and drops the cache, and memory stays flat.
pub struct SledLog {
    path: PathBuf,
    store: Arc<Store>,
    head: Head,
    durable: Seq,
    durability: Durability,
    unflushed_since: Option<Instant>,
    unflushed_events: u64,
    /// The head written down at the last flush.
    recorded_head: Seq,
    /// The first bad record found in the last segment when the log was opened (and what
    /// its decoding said, if it did not decode: a format from a newer build reads as
    /// that): appends after it would chain onto data the chain does not vouch for.
    damaged_tail: Option<(Seq, Option<codec::CodecError>)>,
    encoder: BatchEncoder,
}

/// Bytes read or written between two reopens of the sled database (see [`SledLog`]).
pub const REOPEN_BYTES: u64 = 32 << 20;

/// The open sled database, shared by the log and its readers, and reopened in place.
struct Store {
    path: PathBuf,
    handles: RwLock<Option<Handles>>,
    /// Segment bytes read or written since the database was last opened.
    touched: AtomicU64,
    /// Whether an insert is waiting for a flush (the database is then not reopened).
    unflushed: AtomicBool,
    /// Bytes between reopens ([`REOPEN_BYTES`] unless set by [`SledLog::reopen_every`]).
    reopen_bytes: AtomicU64,
    /// Whether a write or flush failed (a full disk, an I/O error). sled 0.34 cannot be
    /// flushed after some of its failed writes (see [`Store::write`]): nothing more is
    /// written, flushed or reopened, and the database is not closed but left to the
    /// process's exit.
    failed: AtomicBool,
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.failed.load(Ordering::Acquire) {
            // sled's trees flush when dropped, and after a failed blob write that flush
            // waits forever: the database is leaked instead (what was flushed before
            // the failure is on disk; the rest is lost either way).
            if let Some(handles) = self.handles.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
                std::mem::forget(handles);
            }
        }
    }
}

/// One opening of the database and its trees.
struct Handles {
    db: sled::Db,
    events: sled::Tree,
    meta: sled::Tree,
    snapshots: sled::Tree,
    outbox: sled::Tree,
}

impl Handles {
    fn open(path: &Path) -> Result<Handles, LogError> {
        guarded(|| format!("opening {}", path.display()), || Handles::open_unguarded(path))
    }

    fn open_unguarded(path: &Path) -> Result<Handles, LogError> {
        let db = open_db(path)?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| sled_error(format!("opening tree {name}"), e));
        let (events, meta, snapshots, outbox) = (tree("events")?, tree("meta")?, tree("snapshots")?, tree("outbox")?);
        Ok(Handles { db, events, meta, snapshots, outbox })
    }
}

impl Store {
    /// Runs `f` with the open handles; a panic inside sled becomes a storage error.
    fn with<T>(&self, f: impl FnOnce(&Handles) -> Result<T, LogError>) -> Result<T, LogError> {
        let guard = self.handles.read().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(handles) => guarded(|| format!("reading or writing {}", self.path.display()), || f(handles)),
            None => {
                Err(LogError::WriterStopped(format!("the ledger at {} could not be reopened", self.path.display())))
            }
        }
    }

    /// Runs a write or flush with the open handles. Its failure is sticky: sled 0.34
    /// leaves a failed write of a large value (a blob file, over 128 KiB) reserved in its
    /// log buffer, and every flush after it (its own on close included) waits forever.
    /// So after one failure every write is refused at once, with the data directory.
    fn write<T>(&self, f: impl FnOnce(&Handles) -> Result<T, LogError>) -> Result<T, LogError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(LogError::WriterStopped(format!(
                "an earlier write to the ledger at {} failed; nothing more is written",
                self.path.display()
            )));
        }
        let result = self.with(f);
        if result.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        result
    }

    /// Counts `bytes` read or written.
    fn touch(&self, bytes: usize) {
        self.touched.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Reopens the database when [`REOPEN_BYTES`] have been read or written since it was
    /// opened and nothing written waits for a flush. Any thread may call it: it waits
    /// until no read or write is inside the database.
    fn reopen_if_due(&self) -> Result<(), LogError> {
        let due = || {
            self.touched.load(Ordering::Relaxed) >= self.reopen_bytes.load(Ordering::Relaxed)
                && !self.failed.load(Ordering::Acquire)
        };
        if !due() {
            return Ok(());
        }
        let mut guard = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock: an insert sets it inside `with`, before releasing it.
        if self.unflushed.load(Ordering::Acquire) || !due() {
            return Ok(());
        }
        // Close first: sled holds the directory's lock until its last handle is gone.
        drop(guard.take());
        *guard = Some(Handles::open(&self.path)?);
        self.touched.store(0, Ordering::Relaxed);
        Ok(())
    }
}

impl SledLog {
    /// Opens (or creates) the ledger in directory `path`, recovering the head from the
    /// last stored record.
    ///
    /// # Errors
    /// [`LogError::Locked`] if another process has the directory open; storage errors
    /// naming the directory.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, LogError> {
        let handles = Handles::open(path)?;
        let (head, recorded_head) = guarded(
            || format!("reading {}", path.display()),
            || {
                let head = match handles.events.last().map_err(|e| sled_error("reading the last segment", e))? {
                    None => Head::default(),
                    Some((key, segment)) => last_record(key_to_seq(&key)?, &segment),
                };
                let recorded_head = match handles.meta.get(META_HEAD).map_err(|e| sled_error("reading meta", e))? {
                    Some(bytes) => codec::decode_meta::<Seq>(&bytes)
                        .map_err(|source| LogError::Codec { seq: Seq::ZERO, error: source })?,
                    None => Seq::ZERO,
                };
                // The head file outside sled's log catches a log cut short with its meta.
                let anchored = HeadFile::read(path).map_or(Seq::ZERO, |file| file.seq);
                Ok((head, recorded_head.max(anchored)))
            },
        )?;
        let store = Store {
            path: path.to_path_buf(),
            handles: RwLock::new(Some(handles)),
            touched: AtomicU64::new(0),
            unflushed: AtomicBool::new(false),
            reopen_bytes: AtomicU64::new(REOPEN_BYTES),
            failed: AtomicBool::new(false),
        };
        let mut log = SledLog {
            path: path.to_path_buf(),
            store: Arc::new(store),
            head,
            durable: head.seq,
            durability,
            unflushed_since: None,
            unflushed_events: 0,
            recorded_head,
            damaged_tail: None,
            encoder: BatchEncoder::default(),
        };
        log.damaged_tail = log.check_tail()?;
        if head.seq == Seq::ZERO {
            // A new ledger gets its id at creation.
            log.ledger_id()?;
        }
        Ok(log)
    }

    /// The ledger's id (32 hex digits), made and stored in `meta` the first time it is
    /// asked for (at creation for ledgers of this build).
    ///
    /// # Errors
    /// Storage errors.
    pub fn ledger_id(&mut self) -> Result<String, LogError> {
        let stored = self.store.with(|h| {
            let bytes = h.meta.get(META_LEDGER_ID).map_err(|e| sled_error("reading the ledger id", e))?;
            Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
        })?;
        if let Some(id) = stored {
            return Ok(id);
        }
        // Unique enough: the time, the process, the place and the head, hashed.
        let seed = format!(
            "{:?} {} {} {}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default(),
            std::process::id(),
            self.path.display(),
            self.head.hash
        );
        let id = Hash32::digest(seed.as_bytes()).to_hex()[..32].to_string();
        self.set_ledger_id(&id)?;
        Ok(id)
    }

    /// Stores `id` as the ledger's id (a ledger restored from a stream keeps the id it
    /// had there), durable with the next flush.
    ///
    /// # Errors
    /// Storage errors.
    pub fn set_ledger_id(&mut self, id: &str) -> Result<(), LogError> {
        self.store.write(|h| {
            h.meta.insert(META_LEDGER_ID, id.as_bytes()).map_err(|e| sled_error("writing the ledger id", e))?;
            self.store.unflushed.store(true, Ordering::Release);
            Ok(())
        })?;
        if self.durable == self.head.seq {
            self.flush()?;
        }
        Ok(())
    }

    /// A handle that records the last seq a NATS stream acknowledged, from another
    /// thread while this log appends.
    pub fn outbox_mark(&self) -> OutboxMark {
        OutboxMark { store: Arc::clone(&self.store) }
    }

    /// Appends records as they were stored by another ledger (read back from a NATS
    /// stream: [`crate::nats`]), as one segment after the head: each must chain from the
    /// one before (hash and link) and decode. They are flushed as the durability says.
    ///
    /// # Errors
    /// [`LogError::HashMismatch`] or [`LogError::Codec`] naming the first record that
    /// does not check out (nothing of the batch is stored); storage errors.
    pub fn append_stored(&mut self, records: &[Vec<u8>]) -> Result<AppendReceipt, LogError> {
        let first = self.head.seq.next();
        let mut head = self.head;
        let mut segment = Vec::with_capacity(records.iter().map(|r| r.len() + 4).sum());
        for record in records {
            let seq = head.seq.next();
            let frame = codec::frame(record).map_err(|error| LogError::Codec { seq, error })?;
            let linked = frame.stored_prev_hash.is_none_or(|stored| stored == head.hash);
            if !linked || frame.computed_hash(seq, &head.hash) != frame.stored_hash {
                return Err(LogError::HashMismatch { seq });
            }
            codec::decode_record(seq, &head.hash, record).map_err(|error| LogError::Codec { seq, error })?;
            let len = u32::try_from(record.len())
                .map_err(|_| LogError::Codec { seq, error: codec::CodecError::Truncated { len: record.len() } })?;
            segment.extend_from_slice(&len.to_le_bytes());
            segment.extend_from_slice(record);
            head = Head { seq, hash: frame.stored_hash };
        }
        if records.is_empty() {
            return Ok(AppendReceipt { first, last: self.head.seq, durable_through: self.durable });
        }
        self.store.write(|h| {
            h.events.insert(first.to_key(), segment.as_slice()).map_err(|e| {
                sled_error(format!("appending seq {first}..={} to the ledger at {}", head.seq, self.path.display()), e)
            })?;
            self.store.unflushed.store(true, Ordering::Release);
            Ok(())
        })?;
        self.store.touch(segment.len());
        self.head = head;
        self.unflushed_events += records.len() as u64;
        self.unflushed_since.get_or_insert_with(Instant::now);
        if self.durability == Durability::Strict || self.unflushed_events >= 10_000 {
            self.flush()?;
        }
        Ok(AppendReceipt { first, last: head.seq, durable_through: self.durable })
    }

    /// Checks the records of the last segment (hash and link, from the stored
    /// predecessor): the ones the next append chains onto. Returns the first bad seq and
    /// the decoding error there, if that was it.
    fn check_tail(&self) -> Result<Option<(Seq, Option<codec::CodecError>)>, LogError> {
        let last_key = self.store.with(|h| {
            let last = h.events.last().map_err(|e| sled_error("reading the last segment", e))?;
            last.map(|(key, _)| key_to_seq(&key)).transpose()
        })?;
        let Some(first) = last_key else { return Ok(None) };
        match ledger_core::log::visit_events(self, first, &mut |_| ControlFlow::Continue(())) {
            Ok(()) => Ok(None),
            Err(LogError::HashMismatch { seq }) | Err(LogError::Gap { expected: seq, .. }) => Ok(Some((seq, None))),
            Err(LogError::Codec { seq, error }) => Ok(Some((seq, Some(error)))),
            Err(other) => Err(other),
        }
    }

    /// Reopens the database every `bytes` read or written instead of every
    /// [`REOPEN_BYTES`] (tests use a small figure to exercise reopening on small ledgers).
    pub fn reopen_every(self, bytes: u64) -> Self {
        self.store.reopen_bytes.store(bytes.max(1), Ordering::Relaxed);
        self
    }

    /// Whether `path` holds a sled database (a ledger), without opening or creating it.
    pub fn exists(path: &Path) -> bool {
        path.join("conf").is_file()
    }

    /// The snapshot stored under `name`, if any (bytes as [`SledLog::put_snapshot`]
    /// stored them; the fold that wrote them knows what they mean).
    ///
    /// # Errors
    /// Storage errors.
    pub fn snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        self.store.with(|h| {
            let bytes = h.snapshots.get(name).map_err(|e| sled_error(format!("reading snapshot {name}"), e))?;
            Ok(bytes.map(|b| b.to_vec()))
        })
    }

    fn flush(&mut self) -> Result<Seq, LogError> {
        if self.recorded_head > self.head.seq {
            // Records are missing behind the recorded head: writing the head down again
            // would erase the evidence.
            return Err(LogError::TailMissing { head: self.head.seq, recorded: self.recorded_head });
        }
        let head = codec::encode_meta(&self.head.seq)
            .map_err(|source| LogError::Encode { seq: self.head.seq, error: source })?;
        let path = self.path.display();
        self.store.write(|h| {
            h.meta
                .insert(META_HEAD, head)
                .map_err(|e| sled_error(format!("writing the head to the ledger at {path}"), e))?;
            h.db.flush().map_err(|e| sled_error(format!("flushing the ledger at {path} to disk"), e))?;
            self.store.unflushed.store(false, Ordering::Release);
            Ok(())
        })?;
        // After sled's flush returned: the file never names more than is durable.
        HeadFile { seq: self.head.seq, hash: self.head.hash }.write(&self.path)?;
        self.recorded_head = self.head.seq;
        self.durable = self.head.seq;
        self.unflushed_since = None;
        self.unflushed_events = 0;
        self.store.reopen_if_due()?;
        Ok(self.durable)
    }
}

/// A sled error as a [`LogError::Storage`] with `context`: an I/O error as the system's
/// error ("File too large (os error 27)", "No space left on device (os error 28)"),
/// rather than sled's debug form of it ("IO error: Os { code: 27, ... }").
fn sled_error(context: impl Into<String>, error: sled::Error) -> LogError {
    match error {
        sled::Error::Io(io) => LogError::storage(context, os_error(io)),
        other => LogError::storage(context, other),
    }
}

/// The system error inside `io`. sled 0.34 keeps a failed write's error and hands out
/// copies made with `io::Error::new(kind, format!("{:?}", error))`, whose text is the
/// debug form `Os { code: 27, kind: FileTooLarge, message: "File too large" }`: the code
/// is read back from it.
fn os_error(io: std::io::Error) -> std::io::Error {
    if io.raw_os_error().is_some() {
        return io;
    }
    let text = io.to_string();
    let code = text.strip_prefix("Os { code: ").and_then(|rest| rest.split(',').next()?.parse::<i32>().ok());
    match code {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => io,
    }
}

/// sled 0.34 panics on some damaged or foreign files (a `db` from another database:
/// "tried to serialize Uninitialized") instead of returning an error.
#[derive(Debug, thiserror::Error)]
#[error("sled failed inside: {0} (the data directory's files are damaged or not a ledger's)")]
struct SledPanic(String);

/// Runs a call into sled, turning a panic inside it into [`LogError::Storage`] naming
/// what was being done: no panic from stored data reaches the caller.
fn guarded<T>(what: impl FnOnce() -> String, call: impl FnOnce() -> Result<T, LogError>) -> Result<T, LogError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(LogError::storage(what(), SledPanic(message)))
        }
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
            Err(error) => return Err(sled_error(format!("opening {}", path.display()), error)),
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
        if let Some((seq, decoding)) = &self.damaged_tail {
            return Err(match decoding {
                Some(error) => LogError::Codec { seq: *seq, error: error.clone() },
                None => LogError::HashMismatch { seq: *seq },
            });
        }
        let first = self.head.seq.next();
        if prepared.is_empty() {
            return Ok(AppendReceipt { first, last: self.head.seq, durable_through: self.durable });
        }
        let head = prepared.chain(self.head)?;
        self.store.write(|h| {
            h.events.insert(first.to_key(), prepared.segment()).map_err(|e| {
                let last = first.plus(prepared.len() as u64 - 1);
                sled_error(format!("appending seq {first}..={last} to the ledger at {}", self.path.display()), e)
            })?;
            self.store.unflushed.store(true, Ordering::Release);
            Ok(())
        })?;
        self.store.touch(prepared.segment().len());
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

    /// Stores a fold's snapshot in the `snapshots` tree. sled recovers a prefix of its
    /// writes, so a snapshot is never durable ahead of the events it covers (and one
    /// found ahead of the head is not trusted: see `ledger_cli::store`).
    fn put_snapshot(&mut self, name: &str, bytes: &[u8]) -> Result<(), LogError> {
        self.store.write(|h| {
            h.snapshots.insert(name, bytes).map_err(|e| {
                sled_error(format!("writing snapshot {name} to the ledger at {}", self.path.display()), e)
            })?;
            self.store.unflushed.store(true, Ordering::Release);
            Ok(())
        })
    }

    fn reader(&self) -> Result<Box<dyn RecordSource + Send>, LogError> {
        Ok(Box::new(SledReader { store: Arc::clone(&self.store), recorded_head: Some(self.recorded_head) }))
    }
}

impl RecordSource for SledLog {
    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        visit_store(&self.store, from, visit)
    }

    fn recorded_head(&self) -> Option<Seq> {
        Some(self.recorded_head)
    }
}

/// A reader of a [`SledLog`]'s events tree, for another thread while the log appends
/// (sled's trees are safe to read during inserts; a reader sees whole segments only).
struct SledReader {
    store: Arc<Store>,
    recorded_head: Option<Seq>,
}

impl RecordSource for SledReader {
    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        visit_store(&self.store, from, visit)
    }

    fn recorded_head(&self) -> Option<Seq> {
        self.recorded_head
    }
}

/// Records the last seq a NATS stream acknowledged in the ledger's `outbox` tree (see
/// [`SledLog::outbox_mark`]); usable from the publisher's thread while the log appends.
/// The stream itself is asked where it is when publishing resumes: the mark is what
/// `ledger status` shows, and a lower bound.
#[derive(Clone)]
pub struct OutboxMark {
    store: Arc<Store>,
}

impl OutboxMark {
    /// The last seq acknowledged, as recorded (0: none).
    ///
    /// # Errors
    /// Storage errors.
    pub fn acked(&self) -> Result<Seq, LogError> {
        self.store.with(|h| {
            let bytes = h.outbox.get(OUTBOX_ACKED).map_err(|e| sled_error("reading the outbox", e))?;
            match bytes {
                None => Ok(Seq::ZERO),
                Some(bytes) => codec::decode_meta::<Seq>(&bytes)
                    .map_err(|source| LogError::Codec { seq: Seq::ZERO, error: source }),
            }
        })
    }

    /// Records `seq` as acknowledged and flushes it to disk.
    ///
    /// # Errors
    /// Storage errors.
    pub fn record(&self, seq: Seq) -> Result<(), LogError> {
        let bytes = codec::encode_meta(&seq).map_err(|source| LogError::Encode { seq, error: source })?;
        self.store.write(|h| {
            h.outbox.insert(OUTBOX_ACKED, bytes).map_err(|e| sled_error("writing the outbox", e))?;
            h.outbox.flush().map_err(|e| sled_error("flushing the outbox", e))?;
            Ok(())
        })
    }
}

/// Segments read per hold of the store's lock (between two, the database may reopen).
const SEGMENTS_PER_READ: usize = 64;

/// Visits the records from `from` on, reading [`SEGMENTS_PER_READ`] segments at a time,
/// and reopening the database between reads when it is due.
fn visit_store(store: &Store, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
    let mut next = Some(from);
    while let Some(at) = next {
        // Before each read, so that readers that stop early (cursors) reopen too.
        store.reopen_if_due()?;
        let (done, last) = store.with(|h| read_segments(&h.events, at, store, visit))?;
        if done {
            return Ok(());
        }
        next = last.map(Seq::next);
    }
    Ok(())
}

/// Visits the records from `at` on in up to [`SEGMENTS_PER_READ`] segments, from the
/// one holding `at`. Returns whether the visit is over (the visitor broke, or no record
/// from `at` on is stored) and the seq of the last record visited.
fn read_segments(
    events: &sled::Tree,
    at: Seq,
    store: &Store,
    visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>,
) -> Result<(bool, Option<Seq>), LogError> {
    // Start at the segment holding `at`: the last key at or before it.
    let context = || format!("reading the records from seq {at}");
    let start = match events.range(..=at.to_key()).next_back() {
        Some(entry) => entry.map_err(|e| sled_error(context(), e))?.0,
        None => sled::IVec::from(&at.to_key()[..]),
    };
    let mut last = None;
    for entry in events.range(start..).take(SEGMENTS_PER_READ) {
        let (key, segment) = entry.map_err(|e| sled_error(context(), e))?;
        let first = key_to_seq(&key)?;
        store.touch(segment.len());
        for (index, record) in codec::segment_records(&segment).enumerate() {
            let seq = first.plus(index as u64);
            let record = record.map_err(|source| LogError::Codec { seq, error: source })?;
            if seq < at {
                continue;
            }
            last = Some(seq);
            if visit(seq, record).is_break() {
                return Ok((true, last));
            }
        }
    }
    Ok((last.is_none(), last))
}

impl Drop for SledLog {
    fn drop(&mut self) {
        // After a failed write nothing is flushed (see `Store::write`).
        let failed = self.store.failed.load(Ordering::Acquire);
        if !failed && self.durable < self.head.seq && self.recorded_head <= self.head.seq {
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
        let tree = db.open_tree("events").map_err(|e| sled_error("opening events", e))?;
        Ok((db, tree))
    }
}

#[cfg(test)]
mod tests {
    use super::os_error;
    use std::io::{Error, ErrorKind};

    #[test]
    fn os_error_reads_the_system_error_back_from_sleds_copies() {
        // TC0: a system error stays as it is.
        assert_eq!(os_error(Error::from_raw_os_error(28)).raw_os_error(), Some(28));
        // TC1: sled's copy of a failed write's error (its debug form) gives the code back.
        let copy = Error::new(ErrorKind::FileTooLarge, format!("{:?}", Error::from_raw_os_error(27)));
        assert_eq!(os_error(copy).raw_os_error(), Some(27));
        // TC2: any other error stays as it is.
        assert_eq!(os_error(Error::other("Os { code: x")).to_string(), "Os { code: x");
    }
}

#[cfg(test)]
mod stored_tests {
    use super::*;
    use ledger_core::event::{Payload, RunStopped};
    use ledger_core::ids::{CycleId, RunId};
    use ledger_core::log::MemLog;
    use ledger_core::time::TimestampNs;

    fn records(n: usize) -> (Vec<Vec<u8>>, Head) {
        let mut log = MemLog::new();
        let drafts = (0..n)
            .map(|i| EventDraft {
                run_id: RunId::new(1),
                cycle_id: CycleId::new(i as u64),
                causation_seq: None,
                ts_event: TimestampNs::from_nanos(i as i64),
                ts_recorded: TimestampNs::from_nanos(i as i64),
                payload: Payload::RunStopped(RunStopped { reason: "x".into(), skipped_rows: 0 }),
            })
            .collect();
        log.append(&mut { drafts }).unwrap();
        let mut out = Vec::new();
        log.visit_records(Seq::new(1), &mut |_, r| {
            out.push(r.to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
        (out, log.head())
    }

    #[test]
    fn stored_records_append_byte_for_byte_and_a_bad_one_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (mut records, head) = records(5);
        let mut log = SledLog::open(dir.path(), Durability::Strict).unwrap();
        let id = log.ledger_id().unwrap();
        assert_eq!(id.len(), 32);
        // TC0: the first two, then the rest: the head is the original's.
        log.append_stored(&records[..2]).unwrap();
        // TC1: a changed byte in the next batch refuses it whole, naming its seq.
        let last = records[4].len() - 40;
        records[4][last] ^= 1;
        let refused = log.append_stored(&records[2..]);
        assert!(matches!(refused, Err(LogError::HashMismatch { seq }) if seq == Seq::new(5)), "{refused:?}");
        assert_eq!(log.head().seq, Seq::new(2));
        records[4][last] ^= 1;
        log.append_stored(&records[2..]).unwrap();
        assert_eq!(log.head(), head);
        // TC2: the outbox mark and the id survive a reopen.
        log.outbox_mark().record(Seq::new(4)).unwrap();
        drop(log);
        let mut log = SledLog::open(dir.path(), Durability::Strict).unwrap();
        assert_eq!(log.ledger_id().unwrap(), id);
        assert_eq!(log.outbox_mark().acked().unwrap(), Seq::new(4));
        assert_eq!(log.head(), head);
    }
}
