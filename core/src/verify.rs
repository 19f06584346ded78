//! The whole-ledger check behind `ledger verify`: every record is read once, in order,
//! and must have the next sequence, decode, link to the previous hash and carry its own.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::mpsc::{self, SyncSender};

use crate::chain::Hash32;
use crate::codec::{self, CodecError};
use crate::event::Envelope;
use crate::ids::Seq;
use crate::log::{Head, LogError, RecordSource};

/// What is wrong at the first bad record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A record is missing: the next stored key is not the next sequence.
    Gap {
        /// The key actually found.
        found: Seq,
    },
    /// The record's bytes do not decode.
    Undecodable(CodecError),
    /// The stored previous hash (format 1 stores it) is not the previous record's hash.
    BrokenLink {
        /// The previous record's actual hash.
        expected: Hash32,
        /// The `prev_hash` stored in this record.
        stored: Hash32,
    },
    /// Records are missing at the end: the ledger wrote down a later head than its last
    /// record.
    MissingTail {
        /// The head the ledger wrote down.
        recorded_head: Seq,
    },
    /// The storage could not read the records from here on (sled reported corruption or
    /// an I/O failure): what it said.
    Unreadable(String),
    /// The stored hash is not the SHA-256 of the record's bytes chained from the previous
    /// record (see [`crate::codec`]): the record, or its link, was changed.
    HashMismatch {
        /// SHA-256 of the bytes as stored.
        computed: Hash32,
        /// The hash stored in the record.
        stored: Hash32,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Gap { found } => {
                write!(f, "missing record: next stored record is seq {found}")
            }
            Problem::Undecodable(error) => write!(f, "does not decode: {error}"),
            Problem::Unreadable(error) => write!(f, "the storage cannot read it: {error}"),
            Problem::MissingTail { recorded_head } => {
                write!(f, "missing records: the ledger recorded its head at seq {recorded_head}")
            }
            Problem::BrokenLink { expected, stored } => write!(
                f,
                "broken chain: prev_hash {} but the previous record hashes to {}",
                stored.short(),
                expected.short()
            ),
            Problem::HashMismatch { computed, stored } => {
                write!(f, "hash mismatch: stored {} but the bytes hash to {}", stored.short(), computed.short())
            }
        }
    }
}

/// The first bad record and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The sequence where the problem shows (for a gap: the missing sequence).
    pub seq: Seq,
    /// What is wrong.
    pub problem: Problem,
    /// Records that checked out before it.
    pub good_records: u64,
}

/// The outcome of a whole-ledger check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record checked out.
    Intact {
        /// Records checked.
        records: u64,
        /// The last record's sequence and hash.
        head: Head,
    },
    /// The first bad record.
    Broken(Failure),
}

/// Checks every record of `log`: contiguous sequences from 1, decodable bodies, stored
/// hash equal to the hash of the bytes chained from the previous record (and, for
/// format-1 records, the stored previous hash and header seq). Reports the first
/// problem. Memory does not grow with the ledger.
///
/// The records are read in order on the calling thread, which checks contiguity and
/// takes each record's link from its predecessor's stored hash; hashing and decoding,
/// most of the work, run on two worker threads in batches of [`BATCH`] records (each
/// record's check needs only its bytes and that link), so a check uses both cores.
///
/// # Errors
/// Only a storage that cannot be read at all (a lock, a writer that stopped); problems
/// in the data, and segments the storage cannot read, are a [`Verdict::Broken`] naming
/// the seq where they start.
pub fn verify(log: &dyn RecordSource) -> Result<Verdict, LogError> {
    verify_with(log, None)
}

/// As [`verify`], also handing every decoded event, in seq order, to `observe` (a fold
/// to check against the ledger's own, for instance); events from the first problem on
/// are not handed over.
///
/// # Errors
/// As [`verify`].
pub fn verify_with(
    log: &dyn RecordSource,
    observe: Option<&mut (dyn FnMut(&Envelope) + Send)>,
) -> Result<Verdict, LogError> {
    verify_range(log, Seq::new(1), Seq::new(u64::MAX), observe)
}

/// As [`verify_with`] for the records `first..=last` only (one run's, for a rebuild that
/// reads at the speed of `verify`): the first record's link is taken from the stored
/// hash of the one before it; the range must be contiguous, and a range that ends
/// before `last` is intact (the head recorded at the last flush is checked only for the
/// whole ledger).
///
/// # Errors
/// As [`verify`].
pub fn verify_range(
    log: &dyn RecordSource,
    first: Seq,
    last: Seq,
    observe: Option<&mut (dyn FnMut(&Envelope) + Send)>,
) -> Result<Verdict, LogError> {
    let whole = first == Seq::new(1) && last == Seq::new(u64::MAX);
    let prev = match first.get().checked_sub(1).filter(|&before| before > 0) {
        None => Hash32::ZERO,
        Some(before) => match stored_hash(log, Seq::new(before))? {
            Ok(hash) => hash,
            Err(problem) => {
                return Ok(Verdict::Broken(Failure { seq: Seq::new(before), problem, good_records: 0 }));
            }
        },
    };
    let keep = observe.is_some();
    std::thread::scope(|scope| {
        // Bounded: workers wait for a slow collector instead of piling results up.
        let (results, collected) = mpsc::sync_channel(2 * WORKERS);
        let workers: Vec<SyncSender<(usize, Batch)>> = (0..WORKERS)
            .map(|_| {
                let (send, receive) = mpsc::sync_channel::<(usize, Batch)>(2);
                let results = results.clone();
                scope.spawn(move || {
                    for (index, batch) in receive {
                        // The receiver outlives every worker: the send cannot fail.
                        let _ = results.send((index, batch.check(keep)));
                    }
                });
                send
            })
            .collect();
        drop(results);
        // The checked batches: put back in order and handed to the observer on a thread
        // of their own (the reading thread is the one that cannot be parallel), or only
        // searched for problems.
        let collector = scope.spawn(move || match observe {
            Some(observe) => {
                let mut ordered = InOrder::default();
                ordered.extend(collected.iter(), observe);
                ordered.problems
            }
            None => collected.iter().filter_map(|(_, result)| result.err()).collect::<Vec<_>>(),
        });
        let mut reading = Reading { expected: first, prev, failure: None, batch: Batch::new(), sent: 0 };
        let visited = log.visit_records(first, &mut |key, bytes| {
            if key > last {
                return ControlFlow::Break(());
            }
            reading.take(key, bytes, &workers)
        });
        let batch = std::mem::replace(&mut reading.batch, Batch::new());
        if !batch.seqs.is_empty() {
            // A worker stops only when its sender is dropped: the send cannot fail.
            let _ = workers[reading.sent % WORKERS].send((reading.sent, batch));
        }
        drop(workers);
        match visited {
            // Framing the segment that holds the range's end met damage after it: not
            // the range's concern.
            Err(LogError::Codec { seq, .. }) if seq > last && reading.expected > last => {}
            // A record the storage could not even frame is a problem in the data.
            Err(LogError::Codec { seq, error: source }) if reading.failure.is_none() => {
                let expected = reading.expected;
                let problem = if seq == expected { Problem::Undecodable(source) } else { Problem::Gap { found: seq } };
                reading.failure = Some((expected, problem));
            }
            // So is a segment the storage cannot read: the damage starts at the next seq.
            Err(error @ (LogError::Storage { .. } | LogError::Gap { .. } | LogError::HashMismatch { .. }))
                if reading.failure.is_none() =>
            {
                let chain = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source());
                let message = chain.map(|e| e.to_string()).collect::<Vec<_>>().join(": ");
                reading.failure = Some((reading.expected, Problem::Unreadable(message)));
            }
            other => other?,
        }
        // The collector ends when every worker has: a panic there is a bug, reported as
        // a problem-free read would be wrong, so it is carried on.
        let problems = collector.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // The first problem in seq order, wherever it was found.
        let failure = problems.into_iter().chain(reading.failure).min_by_key(|(seq, _)| *seq);
        let records = reading.expected.get() - first.get();
        let failure = failure.or_else(|| {
            log.recorded_head()
                .filter(|&head| whole && head.get() > records)
                .map(|recorded_head| (reading.expected, Problem::MissingTail { recorded_head }))
        });
        Ok(match failure {
            Some((seq, problem)) => Verdict::Broken(Failure { seq, problem, good_records: seq.get() - first.get() }),
            None => Verdict::Intact {
                records,
                head: Head { seq: Seq::new(reading.expected.get() - 1), hash: reading.prev },
            },
        })
    })
}

/// The stored hash of the record at `seq`, or the problem that keeps it from being read.
fn stored_hash(log: &dyn RecordSource, seq: Seq) -> Result<Result<Hash32, Problem>, LogError> {
    let mut found = Err(Problem::Gap { found: Seq::new(seq.get().saturating_add(1)) });
    let visited = log.visit_records(seq, &mut |key, bytes| {
        if key == seq {
            found = codec::frame(bytes).map(|frame| frame.stored_hash).map_err(Problem::Undecodable);
        }
        ControlFlow::Break(())
    });
    match visited {
        Ok(()) => Ok(found),
        // Damage in the record, or before it in its segment (which unframes it), keeps
        // it from being read; damage after it (met framing its segment) is not its.
        Err(LogError::Codec { seq: at, error }) if at <= seq => Ok(Err(Problem::Undecodable(error))),
        Err(LogError::Codec { seq: at, .. }) if at > seq => Ok(found),
        Err(error) => Err(error),
    }
}

/// Threads that hash and decode.
const WORKERS: usize = 2;

/// Records per batch handed to a worker.
const BATCH: usize = 4096;

/// The reading side of [`verify`]: contiguity, links, and batches for the workers.
struct Reading {
    expected: Seq,
    /// The stored hash of the last record read.
    prev: Hash32,
    failure: Option<(Seq, Problem)>,
    batch: Batch,
    sent: usize,
}

impl Reading {
    fn take(&mut self, key: Seq, bytes: &[u8], workers: &[SyncSender<(usize, Batch)>]) -> ControlFlow<()> {
        if key != self.expected {
            self.failure = Some((self.expected, Problem::Gap { found: key }));
            return ControlFlow::Break(());
        }
        let stored = match codec::frame(bytes) {
            Ok(frame) => frame.stored_hash,
            Err(error) => {
                self.failure = Some((key, Problem::Undecodable(error)));
                return ControlFlow::Break(());
            }
        };
        self.batch.push(key, self.prev, bytes);
        self.prev = stored;
        self.expected = key.next();
        if self.batch.seqs.len() >= BATCH {
            let batch = std::mem::replace(&mut self.batch, Batch::new());
            if workers[self.sent % WORKERS].send((self.sent, batch)).is_err() {
                return ControlFlow::Break(()); // a worker is gone: a panic there, reported by the scope
            }
            self.sent += 1;
        }
        ControlFlow::Continue(())
    }
}

/// Records to check: their seqs, the stored hash of each one's predecessor, and their
/// bytes, one after another.
struct Batch {
    seqs: Vec<Seq>,
    prevs: Vec<Hash32>,
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            seqs: Vec::with_capacity(BATCH),
            prevs: Vec::with_capacity(BATCH),
            ends: Vec::with_capacity(BATCH),
            bytes: Vec::with_capacity(BATCH * 96),
        }
    }

    fn push(&mut self, seq: Seq, prev: Hash32, record: &[u8]) {
        self.seqs.push(seq);
        self.prevs.push(prev);
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    /// The first problem in the batch, if any; else its events, decoded, if `keep`.
    fn check(self, keep: bool) -> BatchResult {
        let mut start = 0;
        let mut events = Vec::with_capacity(if keep { self.seqs.len() } else { 0 });
        for ((&seq, prev), &end) in self.seqs.iter().zip(&self.prevs).zip(&self.ends) {
            let event = check(seq, &self.bytes[start..end], prev)?;
            if keep {
                events.push(event);
            }
            start = end;
        }
        Ok(events)
    }
}

/// A checked batch: its events (when kept), or its first problem.
type BatchResult = Result<Vec<Envelope>, (Seq, Problem)>;

/// Batch results put back in order for an observer.
#[derive(Default)]
struct InOrder {
    next: usize,
    waiting: std::collections::BTreeMap<usize, BatchResult>,
    problems: Vec<(Seq, Problem)>,
}

impl InOrder {
    /// Takes `results` and hands every event that is next in order to `observe`; after
    /// a batch with a problem, hands nothing more over.
    fn extend(&mut self, results: impl Iterator<Item = (usize, BatchResult)>, observe: &mut dyn FnMut(&Envelope)) {
        for (index, result) in results {
            match result {
                Err(problem) => self.problems.push(problem),
                Ok(events) => {
                    self.waiting.insert(index, Ok(events));
                }
            }
            while self.problems.is_empty() {
                let Some(Ok(events)) = self.waiting.remove(&self.next) else { break };
                self.next += 1;
                events.iter().for_each(&mut *observe);
            }
        }
    }
}

/// Checks one record at `key`, whose predecessor's stored hash is `prev`; returns it
/// decoded.
fn check(key: Seq, bytes: &[u8], prev: &Hash32) -> Result<Envelope, (Seq, Problem)> {
    let frame = codec::frame(bytes).map_err(|e| (key, Problem::Undecodable(e)))?;
    let computed = frame.computed_hash(key, prev);
    if computed != frame.stored_hash {
        return Err((key, Problem::HashMismatch { computed, stored: frame.stored_hash }));
    }
    if let Some(stored) = frame.stored_prev_hash.filter(|stored| stored != prev) {
        return Err((key, Problem::BrokenLink { expected: *prev, stored }));
    }
    codec::decode_record(key, prev, bytes).map_err(|e| (key, Problem::Undecodable(e)))
}
