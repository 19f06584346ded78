//! The [`EventLog`] trait, its shared machinery and [`MemLog`], the in-memory log.
//!
//! A log owns `next_seq` and the head hash. Appends take a batch of [`EventDraft`]s,
//! give them the next gapless sequences, chain and encode them once into a reused buffer,
//! and store those same bytes atomically. The sled log lives in `ledger-adapters`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chain::Hash32;
use crate::codec::{self, CodecError};
use crate::event::{Envelope, EventDraft, Payload, RunMode, Text};
use crate::ids::{RunId, Seq};
use crate::time::TimestampNs;

/// What can go wrong reading or writing a log.
#[derive(Debug, Error)]
pub enum LogError {
    /// An append named an expected head that another writer has moved past.
    #[error("head moved: expected head seq {expected}, ledger is at {actual}")]
    HeadMoved {
        /// The head the writer expected.
        expected: Seq,
        /// The head the ledger has.
        actual: Seq,
    },
    /// A stored record could not be decoded.
    #[error("seq {seq}: {source}")]
    Codec {
        /// The record's key.
        seq: Seq,
        /// What the codec said.
        source: CodecError,
    },
    /// An event could not be encoded.
    #[error("encoding event {seq}: {source}")]
    Encode {
        /// The sequence it would have had.
        seq: Seq,
        /// What the codec said.
        source: CodecError,
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
    /// The storage below failed (I/O, sled).
    #[error("storage: {0}")]
    Storage(String),
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
    /// may trail `head.seq`; nothing beyond it may be reported as recorded.
    pub durable_through: Seq,
}

/// One run as the `runs` index knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run.
    pub run_id: RunId,
    /// Live, paper or replay (`None` if the run's `RunStarted` is not in the ledger).
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

/// The `runs` index: run id to [`RunInfo`], kept by every log as events are appended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunIndex {
    runs: BTreeMap<RunId, RunInfo>,
}

impl RunIndex {
    /// Records that an event of `run`, recorded at `ts_recorded`, got sequence `seq`.
    /// Returns the run's updated entry.
    pub fn observe(&mut self, seq: Seq, run: RunId, ts_recorded: TimestampNs, payload: &Payload) -> &RunInfo {
        let info = self.runs.entry(run).or_insert_with(|| RunInfo {
            run_id: run,
            mode: None,
            first_seq: seq,
            last_seq: seq,
            event_count: 0,
            started: ts_recorded,
            stopped: None,
            stop_reason: None,
        });
        info.last_seq = seq;
        info.event_count += 1;
        match payload {
            Payload::RunStarted(started) => info.mode = Some(started.mode),
            Payload::RunStopped(stopped) => {
                info.stopped = Some(ts_recorded);
                info.stop_reason = Some(stopped.reason.clone());
            }
            _ => {}
        }
        info
    }

    /// Records a batch whose first event got sequence `first`.
    pub fn observe_batch(&mut self, first: Seq, batch: &[EventDraft]) {
        for (offset, draft) in batch.iter().enumerate() {
            self.observe(first.plus(offset as u64), draft.run_id, draft.ts_recorded, &draft.payload);
        }
    }

    /// One run.
    pub fn get(&self, run: RunId) -> Option<&RunInfo> {
        self.runs.get(&run)
    }

    /// Every run, by id.
    pub fn iter(&self) -> impl Iterator<Item = &RunInfo> {
        self.runs.values()
    }

    /// The id the next run should take: one above the highest so far, from 1.
    pub fn next_run_id(&self) -> RunId {
        RunId::new(self.runs.keys().next_back().map_or(1, |id| id.get() + 1))
    }

    /// Replaces one run's entry (used when loading a persisted index).
    pub fn insert(&mut self, info: RunInfo) {
        self.runs.insert(info.run_id, info);
    }
}

/// Encodes batches: gives drafts their sequences, chains them from a head, and writes
/// each record once, framed, into a reused buffer that is the batch's segment (see
/// [`crate::codec`]).
#[derive(Debug, Default)]
pub struct BatchEncoder {
    segment: Vec<u8>,
    /// `(start, end)` of each record inside `segment`, without its length prefix.
    spans: Vec<(usize, usize)>,
    first: Seq,
}

impl BatchEncoder {
    /// Encodes `batch` as the events after `head` and returns the head after them.
    /// Replaces whatever the encoder held before.
    ///
    /// # Errors
    /// [`LogError::Encode`] if a payload cannot be encoded (a serializer bug).
    pub fn encode(&mut self, head: Head, batch: &[EventDraft]) -> Result<Head, LogError> {
        self.prepare(head.seq.next(), batch)?;
        self.chain(head)
    }

    /// First phase of [`BatchEncoder::encode`]: encodes `batch` as the events from `first`
    /// on, leaving the hashes for [`BatchEncoder::chain`]. Needs no previous record, so it
    /// can run ahead of the log on another thread.
    ///
    /// # Errors
    /// [`LogError::Encode`] if a payload cannot be encoded (a serializer bug).
    pub fn prepare(&mut self, first: Seq, batch: &[EventDraft]) -> Result<(), LogError> {
        self.segment.clear();
        self.spans.clear();
        self.first = first;
        for (offset, draft) in batch.iter().enumerate() {
            let seq = first.plus(offset as u64);
            let start = self.segment.len() + 4;
            codec::encode_unchained(seq, draft, &mut self.segment)
                .map_err(|source| LogError::Encode { seq, source })?;
            self.spans.push((start, self.segment.len()));
        }
        Ok(())
    }

    /// Second phase: chains the prepared records from `head` and returns the head after
    /// them.
    ///
    /// # Errors
    /// [`LogError::HeadMoved`] if the records were prepared for another position.
    pub fn chain(&mut self, head: Head) -> Result<Head, LogError> {
        if self.first != head.seq.next() {
            return Err(LogError::HeadMoved {
                expected: Seq::new(self.first.get().saturating_sub(1)),
                actual: head.seq,
            });
        }
        let mut head = head;
        for &(start, end) in &self.spans {
            let hash = codec::chain_record(&mut self.segment[start..end], &head.hash);
            head = Head { seq: head.seq.next(), hash };
        }
        Ok(head)
    }

    /// Sequence of the batch's first record.
    pub fn first_seq(&self) -> Seq {
        self.first
    }

    /// The whole batch as one stored segment.
    pub fn segment(&self) -> &[u8] {
        &self.segment
    }

    /// The encoded records with their sequences, in order.
    pub fn records(&self) -> impl Iterator<Item = (Seq, &[u8])> + '_ {
        self.spans.iter().enumerate().map(|(i, &(start, end))| (self.first.plus(i as u64), &self.segment[start..end]))
    }
}

/// An append-only, hash-chained event log.
///
/// Implementations own the head: sequences are gapless from 1, a batch is stored
/// atomically (all of it or none), and the head is recovered when a stored log is opened.
pub trait EventLog {
    /// Appends `batch` as one atomic unit after the current head.
    ///
    /// With `expected_head`, the append is refused unless the head is still that
    /// sequence (optimistic concurrency between writers). An empty batch writes nothing
    /// and returns the current head.
    ///
    /// # Errors
    /// [`LogError::HeadMoved`] when `expected_head` is stale; storage or encoding errors.
    /// On error nothing of the batch is stored and the head is unchanged.
    fn append(&mut self, batch: &[EventDraft], expected_head: Option<Seq>) -> Result<AppendReceipt, LogError>;

    /// As [`EventLog::append`], taking the batch's drafts: on success `batch` is left
    /// empty with its capacity, ready for the next cycle. A log that hands the work to
    /// another thread moves the drafts instead of copying them.
    ///
    /// # Errors
    /// As [`EventLog::append`]; on error `batch` is left as it was.
    fn append_owned(
        &mut self,
        batch: &mut Vec<EventDraft>,
        expected_head: Option<Seq>,
    ) -> Result<AppendReceipt, LogError> {
        let receipt = self.append(batch, expected_head)?;
        batch.clear();
        Ok(receipt)
    }

    /// Appends `batch`, whose records `prepared` already holds encoded by
    /// [`BatchEncoder::prepare`] for the sequences after the current head, but not yet
    /// chained. A log that stores segments chains and stores them without encoding again;
    /// the default encodes anew.
    ///
    /// # Errors
    /// As [`EventLog::append`]; [`LogError::HeadMoved`] if `prepared` was made for
    /// another position.
    fn append_prepared(
        &mut self,
        prepared: &mut BatchEncoder,
        batch: &[EventDraft],
    ) -> Result<AppendReceipt, LogError> {
        let expected = Seq::new(prepared.first_seq().get().saturating_sub(1));
        self.append(batch, Some(expected))
    }

    /// The last event's sequence and hash.
    fn head(&self) -> Head;

    /// Every event up to this sequence is durable.
    fn durable_seq(&self) -> Seq;

    /// Makes every appended event durable and returns the durable sequence.
    ///
    /// # Errors
    /// Storage errors.
    fn sync(&mut self) -> Result<Seq, LogError>;

    /// Calls `visit` with each stored record's key and bytes, in sequence order, from
    /// `from` (inclusive) until the end or until `visit` breaks.
    ///
    /// # Errors
    /// Storage errors. Decoding is the visitor's business.
    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError>;

    /// The `runs` index.
    fn runs(&self) -> &RunIndex;

    /// The head sequence the storage wrote down at its last flush, when it keeps one.
    /// A stored head beyond the last record means records were cut off the tail.
    fn recorded_head(&self) -> Option<Seq> {
        None
    }

    /// Decoded events from `from` (inclusive), at most `limit` of them.
    ///
    /// # Errors
    /// Storage errors, or [`LogError::Codec`] naming the first record that does not decode.
    fn read(&self, from: Seq, limit: usize) -> Result<Vec<Envelope>, LogError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.visit_events(from, &mut |event| {
            out.push(event);
            if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// Calls `visit` with each decoded event from `from` (inclusive).
    ///
    /// # Errors
    /// Storage errors, or [`LogError::Codec`] naming the first record that does not decode.
    fn visit_events(&self, from: Seq, visit: &mut dyn FnMut(Envelope) -> ControlFlow<()>) -> Result<(), LogError> {
        let mut failure = None;
        self.visit_records(from, &mut |seq, bytes| match codec::decode_record(bytes) {
            Ok(event) => visit(event),
            Err(source) => {
                failure = Some(LogError::Codec { seq, source });
                ControlFlow::Break(())
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// Calls `visit` with each event of `run`, in order. Reads only the run's own
    /// sequence range, from the `runs` index.
    ///
    /// # Errors
    /// As [`EventLog::visit_events`]. An unknown run visits nothing.
    fn visit_run(&self, run: RunId, visit: &mut dyn FnMut(Envelope) -> ControlFlow<()>) -> Result<(), LogError> {
        let Some(info) = self.runs().get(run).cloned() else {
            return Ok(());
        };
        self.visit_events(info.first_seq, &mut |event| {
            if event.header.seq > info.last_seq {
                return ControlFlow::Break(());
            }
            if event.header.run_id == run {
                visit(event)
            } else {
                ControlFlow::Continue(())
            }
        })
    }
}

/// An in-memory [`EventLog`]. Segments are copied into fixed-size chunks (a full chunk is
/// never reallocated or moved), so appending costs no allocation per event and no
/// re-copying as the log grows. Used by tests and by backtests that need no persistence.
#[derive(Debug, Default)]
pub struct MemLog {
    /// Storage; every chunk but the last is full.
    chunks: Vec<Vec<u8>>,
    /// `(seq of the first record, chunk, start, end)` of each segment, in order.
    segments: Vec<(Seq, usize, usize, usize)>,
    head: Head,
    runs: RunIndex,
    encoder: BatchEncoder,
}

/// Size of one [`MemLog`] chunk (a larger segment gets a chunk of its own size).
const MEM_CHUNK: usize = 4 << 20;

impl MemLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of all stored segments.
    pub fn byte_len(&self) -> usize {
        self.segments.iter().map(|&(_, _, start, end)| end - start).sum()
    }

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

impl EventLog for MemLog {
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
        let first = self.head.seq.next();
        if batch.is_empty() {
            return Ok(AppendReceipt { first, last: self.head.seq, durable_through: self.head.seq });
        }
        let head = prepared.chain(self.head)?;
        self.runs.observe_batch(first, batch);
        self.store(first, prepared.segment());
        self.head = head;
        Ok(AppendReceipt { first, last: head.seq, durable_through: head.seq })
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

    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        // The segment holding `from`: the last one starting at or before it.
        let start = self.segments.partition_point(|(first, ..)| *first <= from).saturating_sub(1);
        for &(first, chunk, begin, end) in &self.segments[start..] {
            for (index, record) in codec::segment_records(&self.chunks[chunk][begin..end]).enumerate() {
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
}
