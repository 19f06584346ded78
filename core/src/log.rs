//! The [`EventLog`] trait, the checked reading of events, and the in-memory logs.
//!
//! A log owns `next_seq` and the head hash. An append takes a batch of
//! [`EventDraft`]s, gives them the next gapless sequences, encodes and chains them once
//! into a reused buffer ([`BatchEncoder`]) and stores those same bytes atomically.
//! Reading is apart from writing: every log hands out a [`RecordSource`] that reads
//! while the log appends (the outbox, reports and exports run beside a live run), and
//! [`visit_events`] decodes a range from any source, checking every record's hash and
//! its link to the one before, so nothing is shown or folded that the chain does not
//! vouch for. The sled log lives in `ledger-adapters`.

use std::ops::ControlFlow;
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chain::Hash32;
use crate::codec::{self, CodecError};
use crate::event::{Envelope, EventDraft};
use crate::ids::Seq;

/// What can go wrong reading or writing a log. [`LogError::is_data_damage`] tells the
/// problems in stored data (a run stops; `ledger verify` names the seq) from failures
/// of the storage itself.
#[derive(Debug, Error)]
pub enum LogError {
    /// A stored record could not be framed or decoded.
    #[error("seq {seq}: {error}")]
    Codec {
        /// The record's sequence.
        seq: Seq,
        /// What the codec said (in the message, so not also a source).
        error: CodecError,
    },
    /// A stored record's hash does not match its bytes chained from the record before.
    #[error("seq {seq}: the record does not match its hash (changed, or not chained from seq {})", seq.get().saturating_sub(1))]
    HashMismatch {
        /// The record's sequence.
        seq: Seq,
    },
    /// A stored record is missing: the next one found has another sequence.
    #[error("seq {expected}: missing; the next stored record is seq {found}")]
    Gap {
        /// The sequence that should have come next.
        expected: Seq,
        /// The sequence found instead.
        found: Seq,
    },
    /// An event could not be encoded.
    #[error("encoding event {seq}: {error}")]
    Encode {
        /// The sequence it would have had.
        seq: Seq,
        /// What the codec said (in the message, so not also a source).
        error: CodecError,
    },
    /// The ledger wrote down a later head than its last record: records were cut off
    /// the tail. Appending would hide that, so it is refused.
    #[error("records after seq {head} are missing (the ledger recorded its head at {recorded}); run `ledger verify`")]
    TailMissing {
        /// The last stored record.
        head: Seq,
        /// The head the ledger wrote down at its last flush.
        recorded: Seq,
    },
    /// Another process holds the data directory.
    #[error("ledger at {path} is locked by another process")]
    Locked {
        /// The data directory.
        path: String,
    },
    /// The storage below failed (I/O, sled), with its own error as the source.
    #[error("storage: {context}")]
    Storage {
        /// What the log was doing.
        context: String,
        /// The storage's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The log's writer stopped after an earlier failure; nothing more is appended.
    #[error("the ledger's writer stopped after an earlier failure: {0}")]
    WriterStopped(String),
}

impl LogError {
    /// Whether this is damage in stored data (a bad record, a gap, a cut tail), which no
    /// retry mends: the run stops and `ledger verify` names where it starts. Everything
    /// else is a failure of the storage or the process (I/O, a lock, a stopped writer):
    /// also fatal for the append that met it, but the data already written is intact.
    pub fn is_data_damage(&self) -> bool {
        matches!(
            self,
            LogError::Codec { .. }
                | LogError::HashMismatch { .. }
                | LogError::Gap { .. }
                | LogError::TailMissing { .. }
        )
    }

    /// A storage error with its context.
    pub fn storage(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        LogError::Storage { context: context.into(), source: Box::new(source) }
    }
}

/// The last event of a ledger: its sequence and hash. `Seq::ZERO` and [`Hash32::ZERO`] for
/// an empty ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Head {
    /// Sequence of the last event (0 when empty).
    pub seq: Seq,
    /// Hash of the last event (zero when empty).
    pub hash: Hash32,
}

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReceipt {
    /// Sequence of the batch's first event.
    pub first: Seq,
    /// Sequence of the batch's last event: the new head (for an empty batch, the head).
    pub last: Seq,
    /// Every event up to this sequence is durable (flushed). In `group` durability this
    /// may trail `last`; nothing beyond it may be reported as recorded.
    pub durable_through: Seq,
}

/// Stored records, read in sequence order. Every log hands one out
/// ([`EventLog::reader`]) that reads while the log appends.
pub trait RecordSource {
    /// Calls `visit` with each stored record's sequence and bytes, in order, from
    /// `from` (inclusive) until the end or until `visit` breaks. Records are not checked
    /// here (see [`visit_events`]).
    ///
    /// # Errors
    /// Storage errors; [`LogError::Codec`] for a segment whose framing is cut.
    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError>;

    /// The head sequence the storage wrote down at its last flush, when it keeps one.
    /// A recorded head beyond the last record means records were cut off the tail.
    fn recorded_head(&self) -> Option<Seq> {
        None
    }
}

/// An append-only, hash-chained event log: append, head, sync, and a reader.
///
/// Implementations own the head: sequences are gapless from 1, a batch is stored
/// atomically (all of it or none), and the head is recovered when a stored log is opened.
pub trait EventLog {
    /// Appends the drafts in `batch` as one atomic unit after the current head, taking
    /// them: on success `batch` is left empty with its capacity. An empty batch writes
    /// nothing and returns the current head.
    ///
    /// # Errors
    /// Storage or encoding errors. On error nothing of the batch is stored, the head is
    /// unchanged and `batch` is left as it was.
    fn append(&mut self, batch: &mut Vec<EventDraft>) -> Result<AppendReceipt, LogError>;

    /// The last appended event's sequence and hash.
    fn head(&self) -> Head;

    /// Every event up to this sequence is durable.
    fn durable_seq(&self) -> Seq;

    /// Makes every appended event durable and returns the durable sequence.
    ///
    /// # Errors
    /// Storage errors.
    fn sync(&mut self) -> Result<Seq, LogError>;

    /// A reader of this log's stored records, usable from another thread while this log
    /// appends; it sees every append completed before each of its reads starts.
    ///
    /// # Errors
    /// Storage errors.
    fn reader(&self) -> Result<Box<dyn RecordSource + Send>, LogError>;

    /// Stores a projection's snapshot under `name`, replacing the one before, after
    /// every append made so far (durable with the next [`EventLog::sync`]). A snapshot
    /// says itself which seq it covers. Logs that keep no snapshots drop it.
    ///
    /// # Errors
    /// Storage errors.
    fn put_snapshot(&mut self, name: &str, bytes: &[u8]) -> Result<(), LogError> {
        let _ = (name, bytes);
        Ok(())
    }
}

/// A log that stores segments made by a [`BatchEncoder`], and can store one that was
/// encoded elsewhere: a writer thread chains and stores what the engine's thread encoded
/// (`ledger_adapters::background`), so each half runs on its own core.
pub trait PreparedAppend: EventLog {
    /// Chains and stores `prepared`, a batch encoded for the seqs after the head
    /// ([`BatchEncoder::prepare`]), without encoding again.
    ///
    /// # Errors
    /// As [`EventLog::append`]; [`LogError::WriterStopped`] if `prepared` was made for
    /// another position.
    fn append_prepared(&mut self, prepared: &mut BatchEncoder) -> Result<AppendReceipt, LogError>;
}

/// [`EventLog::append`] for a [`PreparedAppend`] log with its own encoder.
fn append_with<L: PreparedAppend>(
    log: &mut L,
    encoder: impl Fn(&mut L) -> &mut BatchEncoder,
    batch: &mut Vec<EventDraft>,
) -> Result<AppendReceipt, LogError> {
    let first = log.head().seq.next();
    let mut prepared = std::mem::take(encoder(log));
    let receipt = prepared.prepare(first, batch).and_then(|()| log.append_prepared(&mut prepared));
    *encoder(log) = prepared;
    if receipt.is_ok() {
        batch.clear();
    }
    receipt
}

/// Calls `visit` with each event from `from` (inclusive), decoded and checked: each
/// record's hash must match its bytes chained from the record before (the first record
/// of the range is chained from its stored predecessor), and sequences must be gapless.
///
/// # Errors
/// Storage errors; [`LogError::HashMismatch`], [`LogError::Gap`] or [`LogError::Codec`]
/// naming the first record that fails.
pub fn visit_events(
    source: &dyn RecordSource,
    from: Seq,
    visit: &mut dyn FnMut(Envelope) -> ControlFlow<()>,
) -> Result<(), LogError> {
    let from = from.max(Seq::new(1));
    let start = Seq::new(from.get() - 1).max(Seq::new(1));
    let mut prev: Option<Hash32> = (from == Seq::new(1)).then_some(Hash32::ZERO);
    let mut expected = start;
    let mut failure = None;
    source.visit_records(start, &mut |seq, bytes| {
        if seq != expected {
            failure = Some(LogError::Gap { expected, found: seq });
            return ControlFlow::Break(());
        }
        expected = seq.next();
        let frame = match codec::frame(bytes) {
            Ok(frame) => frame,
            Err(source) => {
                failure = Some(LogError::Codec { seq, error: source });
                return ControlFlow::Break(());
            }
        };
        let Some(prev_hash) = prev else {
            // The stored predecessor of the range: its hash is the first link.
            prev = Some(frame.stored_hash);
            return ControlFlow::Continue(());
        };
        let linked = frame.stored_prev_hash.is_none_or(|stored| stored == prev_hash);
        if !linked || frame.computed_hash(seq, &prev_hash) != frame.stored_hash {
            failure = Some(LogError::HashMismatch { seq });
            return ControlFlow::Break(());
        }
        prev = Some(frame.stored_hash);
        match codec::decode_record(seq, &prev_hash, bytes) {
            Ok(event) => visit(event),
            Err(source) => {
                failure = Some(LogError::Codec { seq, error: source });
                ControlFlow::Break(())
            }
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// Encodes batches: gives drafts their sequences, chains them from a head, and writes
/// each record once, framed, into a reused buffer that is the batch's segment (see
/// [`crate::codec`]). The logs' shared machinery, in two phases so that encoding and
/// chaining can run on different threads.
#[derive(Debug, Default)]
pub struct BatchEncoder {
    segment: Vec<u8>,
    /// `(start, end)` of each record inside `segment`, without its length prefix.
    spans: Vec<(usize, usize)>,
    first: Seq,
}

impl BatchEncoder {
    /// First phase: encodes `batch` as the events from `first` on, leaving the hashes for
    /// [`BatchEncoder::chain`]. Needs no previous record, so it can run ahead of the log
    /// on another thread. Replaces whatever the encoder held before.
    ///
    /// # Errors
    /// [`LogError::Encode`] naming the draft that cannot be encoded.
    pub fn prepare(&mut self, first: Seq, batch: &[EventDraft]) -> Result<(), LogError> {
        self.segment.clear();
        self.spans.clear();
        self.first = first;
        for (offset, draft) in batch.iter().enumerate() {
            let seq = first.plus(offset as u64);
            let start = self.segment.len() + 4;
            codec::encode_unchained(seq, draft, &mut self.segment)
                .map_err(|source| LogError::Encode { seq, error: source })?;
            self.spans.push((start, self.segment.len()));
        }
        Ok(())
    }

    /// Second phase: chains the prepared records from `head` and returns the head after
    /// them.
    ///
    /// # Errors
    /// [`LogError::WriterStopped`] if the records were prepared for another position (a
    /// broken invariant of the single writer).
    pub fn chain(&mut self, head: Head) -> Result<Head, LogError> {
        if self.first != head.seq.next() {
            return Err(LogError::WriterStopped(format!(
                "a batch prepared for seq {} met the head at {}",
                self.first, head.seq
            )));
        }
        let mut head = head;
        for &(start, end) in &self.spans {
            let seq = head.seq.next();
            let hash = codec::chain_record(&mut self.segment[start..end], seq, &head.hash);
            head = Head { seq, hash };
        }
        Ok(head)
    }

    /// Sequence of the batch's first record.
    pub fn first_seq(&self) -> Seq {
        self.first
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The whole batch as one stored segment.
    pub fn segment(&self) -> &[u8] {
        &self.segment
    }
}

/// Size of one [`MemLog`] chunk (a larger segment gets a chunk of its own size).
const MEM_CHUNK: usize = 4 << 20;

/// The stored part of a [`MemLog`], shared with its readers.
#[derive(Debug, Default)]
struct MemStore {
    /// Storage; every chunk but the last is full.
    chunks: Vec<Vec<u8>>,
    /// `(seq of the first record, chunk, start, end)` of each segment, in order.
    segments: Vec<(Seq, usize, usize, usize)>,
    /// Snapshots by name.
    snapshots: std::collections::BTreeMap<String, Vec<u8>>,
}

impl MemStore {
    fn store(&mut self, first: Seq, segment: &[u8]) {
        let fits = self.chunks.last().is_some_and(|c| c.capacity() - c.len() >= segment.len());
        if !fits {
            self.chunks.push(Vec::with_capacity(MEM_CHUNK.max(segment.len())));
        }
        let index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[index];
        let start = chunk.len();
        chunk.extend_from_slice(segment);
        self.segments.push((first, index, start, chunk.len()));
    }
}

/// An in-memory [`EventLog`]. By default it keeps every record: segments are copied into
/// fixed-size chunks (a full chunk is never reallocated or moved), so appending costs no
/// allocation per event and no re-copying as the log grows; used by tests and by replays
/// that compare runs. [`MemLog::head_only`] keeps none: sequences, hashes and the head
/// are exactly those a stored log would have, in memory that does not grow with the run
/// (what `ledger replay --in-memory` appends to; its report comes from folds fed as the
/// events are appended, since nothing can be read back).
#[derive(Debug)]
pub struct MemLog {
    /// The records, when they are kept.
    store: Option<Arc<RwLock<MemStore>>>,
    head: Head,
    encoder: BatchEncoder,
}

impl Default for MemLog {
    fn default() -> Self {
        MemLog { store: Some(Arc::default()), head: Head::default(), encoder: BatchEncoder::default() }
    }
}

impl MemLog {
    /// An empty log that keeps its records.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log that chains every event and keeps none.
    pub fn head_only() -> Self {
        MemLog { store: None, ..Self::default() }
    }

    /// The snapshot stored under `name` (none in a head-only log).
    pub fn snapshot(&self, name: &str) -> Option<Vec<u8>> {
        let store = self.store.as_ref()?.read().unwrap_or_else(PoisonError::into_inner);
        store.snapshots.get(name).cloned()
    }

    /// Bytes of all stored segments (0 for a head-only log).
    pub fn byte_len(&self) -> usize {
        self.store.as_ref().map_or(0, |store| {
            let store = store.read().unwrap_or_else(PoisonError::into_inner);
            store.segments.iter().map(|&(_, _, start, end)| end - start).sum()
        })
    }
}

impl PreparedAppend for MemLog {
    fn append_prepared(&mut self, prepared: &mut BatchEncoder) -> Result<AppendReceipt, LogError> {
        let first = self.head.seq.next();
        if prepared.is_empty() {
            return Ok(AppendReceipt { first, last: self.head.seq, durable_through: self.head.seq });
        }
        let head = prepared.chain(self.head)?;
        if let Some(store) = &self.store {
            store.write().unwrap_or_else(PoisonError::into_inner).store(first, prepared.segment());
        }
        self.head = head;
        Ok(AppendReceipt { first, last: head.seq, durable_through: head.seq })
    }
}

impl EventLog for MemLog {
    fn append(&mut self, batch: &mut Vec<EventDraft>) -> Result<AppendReceipt, LogError> {
        append_with(self, |log| &mut log.encoder, batch)
    }

    fn head(&self) -> Head {
        self.head
    }

    fn durable_seq(&self) -> Seq {
        self.head.seq
    }

    fn sync(&mut self) -> Result<Seq, LogError> {
        Ok(self.head.seq)
    }

    fn reader(&self) -> Result<Box<dyn RecordSource + Send>, LogError> {
        Ok(Box::new(MemReader(self.store.clone())))
    }

    fn put_snapshot(&mut self, name: &str, bytes: &[u8]) -> Result<(), LogError> {
        if let Some(store) = &self.store {
            store.write().unwrap_or_else(PoisonError::into_inner).snapshots.insert(name.to_string(), bytes.to_vec());
        }
        Ok(())
    }
}

impl RecordSource for MemLog {
    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        MemReader(self.store.clone()).visit_records(from, visit)
    }
}

/// A reader of a [`MemLog`] (of a head-only one: no records).
struct MemReader(Option<Arc<RwLock<MemStore>>>);

impl RecordSource for MemReader {
    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        let Some(store) = &self.0 else { return Ok(()) };
        let store = store.read().unwrap_or_else(PoisonError::into_inner);
        // The segment holding `from`: the last one starting at or before it.
        let start = store.segments.partition_point(|(first, ..)| *first <= from).saturating_sub(1);
        for &(first, chunk, begin, end) in &store.segments[start..] {
            for (index, record) in codec::segment_records(&store.chunks[chunk][begin..end]).enumerate() {
                let seq = first.plus(index as u64);
                let record = record.map_err(|source| LogError::Codec { seq, error: source })?;
                if seq >= from && visit(seq, record).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// A log that numbers what it is given and keeps, encodes and hashes none of it: for
/// runs that exist only in the folds fed as they go (`ledger sweep`, where thousands of
/// backtests are ranked by their reports and dropped). Its head carries no hash; what
/// needs the chain's bytes (`replay --in-memory`'s head) uses [`MemLog::head_only`].
#[derive(Debug, Default)]
pub struct DiscardLog {
    head: Seq,
}

impl EventLog for DiscardLog {
    fn append(&mut self, batch: &mut Vec<EventDraft>) -> Result<AppendReceipt, LogError> {
        let first = self.head.next();
        self.head = self.head.plus(batch.len() as u64);
        batch.clear();
        Ok(AppendReceipt { first, last: self.head, durable_through: self.head })
    }

    fn head(&self) -> Head {
        Head { seq: self.head, hash: Hash32::ZERO }
    }

    fn durable_seq(&self) -> Seq {
        self.head
    }

    fn sync(&mut self) -> Result<Seq, LogError> {
        Ok(self.head)
    }

    fn reader(&self) -> Result<Box<dyn RecordSource + Send>, LogError> {
        Ok(Box::new(MemReader(None)))
    }
}

/// Events read in bounded chunks, pulled one at a time: a range of any size is walked
/// in memory that does not grow with it, and no lock is held between chunks, so the
/// same log can be appended to while a cursor walks it. Every chunk is read with
/// [`visit_events`], so every event is checked.
pub struct EventCursor<'a> {
    source: &'a dyn RecordSource,
    next: Seq,
    last: Seq,
    buffer: std::collections::VecDeque<Envelope>,
}

/// Events read per chunk by an [`EventCursor`].
const CURSOR_CHUNK: usize = 4096;

impl<'a> EventCursor<'a> {
    /// A cursor over the events `first..=last` of `source`.
    pub fn new(source: &'a dyn RecordSource, first: Seq, last: Seq) -> Self {
        EventCursor { source, next: first, last, buffer: std::collections::VecDeque::with_capacity(CURSOR_CHUNK) }
    }

    /// The next event, or `None` after `last` (or at the end of the log).
    ///
    /// # Errors
    /// As [`visit_events`].
    pub fn next_event(&mut self) -> Result<Option<Envelope>, LogError> {
        if self.buffer.is_empty() && self.next <= self.last {
            let (last, buffer) = (self.last, &mut self.buffer);
            visit_events(self.source, self.next, &mut |event| {
                if event.header.seq > last {
                    return ControlFlow::Break(());
                }
                buffer.push_back(event);
                if buffer.len() >= CURSOR_CHUNK {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            self.next = match self.buffer.back() {
                Some(event) => event.header.seq.next(),
                None => self.last.next(),
            };
        }
        Ok(self.buffer.pop_front())
    }
}
