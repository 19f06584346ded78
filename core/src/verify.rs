//! The whole-ledger check behind `ledger verify`: every record is read once, in order,
//! and must have the next sequence, decode, link to the previous hash and carry its own.

use std::fmt;
use std::ops::ControlFlow;

use crate::chain::Hash32;
use crate::codec::{self, CodecError};
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
/// format-1 records, the stored previous hash and header seq). Stops at the first
/// problem. Memory does not grow with the ledger.
///
/// # Errors
/// Only storage errors; problems in the data are a [`Verdict::Broken`].
pub fn verify(log: &dyn RecordSource) -> Result<Verdict, LogError> {
    let mut expected = Seq::new(1);
    let mut prev = Hash32::ZERO;
    let mut failure = None;
    let visited = log.visit_records(Seq::new(1), &mut |key, bytes| match check(key, bytes, expected, &prev) {
        Ok(hash) => {
            prev = hash;
            expected = expected.next();
            ControlFlow::Continue(())
        }
        Err((seq, problem)) => {
            failure = Some(Failure { seq, problem, good_records: expected.get() - 1 });
            ControlFlow::Break(())
        }
    });
    match visited {
        // A record the storage could not even frame is a problem in the data.
        Err(LogError::Codec { seq, source }) if failure.is_none() => {
            let problem = if seq == expected { Problem::Undecodable(source) } else { Problem::Gap { found: seq } };
            failure = Some(Failure { seq: expected, problem, good_records: expected.get() - 1 });
        }
        other => other?,
    }
    let records = expected.get() - 1;
    if failure.is_none() {
        if let Some(recorded_head) = log.recorded_head().filter(|&head| head.get() > records) {
            let problem = Problem::MissingTail { recorded_head };
            failure = Some(Failure { seq: expected, problem, good_records: records });
        }
    }
    Ok(match failure {
        Some(failure) => Verdict::Broken(failure),
        None => Verdict::Intact { records, head: Head { seq: Seq::new(records), hash: prev } },
    })
}

fn check(key: Seq, bytes: &[u8], expected: Seq, prev: &Hash32) -> Result<Hash32, (Seq, Problem)> {
    if key != expected {
        return Err((expected, Problem::Gap { found: key }));
    }
    let frame = codec::frame(bytes).map_err(|e| (key, Problem::Undecodable(e)))?;
    let computed = frame.computed_hash(key, prev);
    if computed != frame.stored_hash {
        return Err((key, Problem::HashMismatch { computed, stored: frame.stored_hash }));
    }
    if let Some(stored) = frame.stored_prev_hash.filter(|stored| stored != prev) {
        return Err((key, Problem::BrokenLink { expected: *prev, stored }));
    }
    codec::decode_record(key, prev, bytes).map_err(|e| (key, Problem::Undecodable(e)))?;
    Ok(computed)
}
