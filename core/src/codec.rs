//! The bytes of one stored record. This is the only module that knows the encoding, so
//! the codec can be replaced by adding a format version, never by rewriting old records.
//!
//! # Record layout (format version 1)
//! ```text
//! [0]            format version, 1
//! [1..33]        prev_hash: hash of the previous record (32 zero bytes for the first)
//! [33..len-32]   body: bincode 2.0.1, `config::standard()` (little-endian, varint), of
//!                (header fields, payload)
//! [len-32..len]  hash = SHA-256(bytes[0..len-32])
//! ```
//! The hash covers the version byte, the previous hash, the header and the payload, so
//! any changed byte anywhere in a record breaks its hash, and any removed or swapped
//! record breaks the link after it.
//!
//! # Segments
//! Storage keeps the records of one append together as a *segment*: each record
//! preceded by its length as a `u32`, little-endian, stored under the sequence of its
//! first record. One sled key per append instead of one per event is what lets a
//! persisted backtest keep pace with the pipeline (docs/benchmarks.md); the chain and
//! every record inside are unchanged, as in Kafka's record batches.
//!
//! Decimals are stored as one varint `i128`, `mantissa * 32 + scale` (the scale is at
//! most 28): exact, a byte or two for everyday prices, and free of string formatting on
//! the hot path. JSON (any human-readable serde
//! format) shows them as decimal strings.

use bincode::config::{self, Configuration};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chain::Hash32;
use crate::event::{Envelope, EventDraft, Header, Payload, SCHEMA_VERSION};
use crate::ids::{CycleId, RunId, Seq};
use crate::time::TimestampNs;

/// The format version this build writes.
pub const FORMAT_VERSION: u8 = 1;

/// Bytes before the body: version byte and previous hash.
const PREFIX_LEN: usize = 1 + 32;
/// Bytes after the body: the record's own hash.
const HASH_LEN: usize = 32;

/// The one bincode configuration. Changing it means a new [`FORMAT_VERSION`].
const BINCODE: Configuration = config::standard();

/// Why bytes could not be turned into an event, or an event into bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The first byte names a format this build does not know.
    #[error("unknown record format version {found} (this build reads version {FORMAT_VERSION})")]
    UnknownFormatVersion {
        /// The version byte found.
        found: u8,
    },
    /// Too short to hold the prefix and the hash.
    #[error("record is truncated: {len} bytes, at least {} needed", PREFIX_LEN + HASH_LEN + 1)]
    Truncated {
        /// The record's length.
        len: usize,
    },
    /// The body is not a valid bincode (header, payload).
    #[error("record body does not decode: {0}")]
    Body(String),
    /// The body decoded but bytes were left over.
    #[error("record body has {0} trailing bytes")]
    TrailingBytes(usize),
    /// The header names a schema version with no upcaster.
    #[error("schema version {found} is newer than this build reads ({SCHEMA_VERSION})")]
    UnsupportedSchema {
        /// The schema version found.
        found: u16,
    },
    /// Encoding failed (only on a serializer bug: every payload is encodable).
    #[error("record does not encode: {0}")]
    Encode(String),
}

/// The header as stored: everything but the two hashes, which frame the body.
#[derive(Serialize, Deserialize)]
struct StoredHeader {
    seq: Seq,
    run_id: RunId,
    cycle_id: CycleId,
    causation_seq: Option<Seq>,
    ts_event: TimestampNs,
    ts_recorded: TimestampNs,
    schema_version: u16,
}

/// Appends the record for `draft` at `seq`, chained from `prev_hash`, to `out`, and
/// returns its hash. `out` is a reused buffer: nothing else is allocated.
///
/// # Errors
/// [`CodecError::Encode`] only if the serializer fails, which no payload provokes.
pub fn encode_record(
    seq: Seq,
    prev_hash: &Hash32,
    draft: &EventDraft,
    out: &mut Vec<u8>,
) -> Result<Hash32, CodecError> {
    let start = out.len();
    write_unchained(seq, draft, out)?;
    Ok(chain_record(&mut out[start..], prev_hash))
}

/// Appends the record for `draft` to the segment in `out`, behind its length prefix,
/// with its previous hash and its own hash left as zeros for [`chain_record`] to fill.
/// Encoding and chaining are apart so that they can run on different threads: encoding
/// needs only the sequence, chaining needs the previous record.
///
/// # Errors
/// [`CodecError::Encode`] only if the serializer fails, which no payload provokes.
pub fn encode_unchained(seq: Seq, draft: &EventDraft, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let prefix_at = out.len();
    out.extend_from_slice(&[0; 4]);
    write_unchained(seq, draft, out)?;
    let len = u32::try_from(out.len() - prefix_at - 4).map_err(|_| CodecError::Encode("record over 4 GiB".into()))?;
    out[prefix_at..prefix_at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Writes version, a zero previous hash, the body and a zero hash.
fn write_unchained(seq: Seq, draft: &EventDraft, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.push(FORMAT_VERSION);
    out.extend_from_slice(Hash32::ZERO.as_bytes());
    let header = StoredHeader {
        seq,
        run_id: draft.run_id,
        cycle_id: draft.cycle_id,
        causation_seq: draft.causation_seq,
        ts_event: draft.ts_event,
        ts_recorded: draft.ts_recorded,
        schema_version: SCHEMA_VERSION,
    };
    bincode::serde::encode_into_writer((&header, &draft.payload), VecWriter(out), BINCODE)
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    out.extend_from_slice(Hash32::ZERO.as_bytes());
    Ok(())
}

/// Chains a record written by [`encode_unchained`] (without its length prefix): writes
/// `prev_hash` into it, then its hash, which it returns.
///
/// # Panics
/// If `record` is shorter than the two hashes and the version byte, which
/// [`encode_unchained`] never writes (a broken invariant).
pub fn chain_record(record: &mut [u8], prev_hash: &Hash32) -> Hash32 {
    assert!(record.len() > PREFIX_LEN + HASH_LEN, "record too short to chain"); // invariant
    record[1..PREFIX_LEN].copy_from_slice(prev_hash.as_bytes());
    let split = record.len() - HASH_LEN;
    let hash = Hash32::digest(&record[..split]);
    record[split..].copy_from_slice(hash.as_bytes());
    hash
}

/// The records of a segment, in order. A length prefix that runs past the end of the
/// segment yields [`CodecError::Truncated`] and ends the iteration.
pub fn segment_records(segment: &[u8]) -> impl Iterator<Item = Result<&[u8], CodecError>> + '_ {
    let mut rest = segment;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((prefix, tail)) = rest.split_first_chunk::<4>() else {
            let len = rest.len();
            rest = &[];
            return Some(Err(CodecError::Truncated { len }));
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if len > tail.len() {
            rest = &[];
            return Some(Err(CodecError::Truncated { len: tail.len() }));
        }
        let (record, after) = tail.split_at(len);
        rest = after;
        Some(Ok(record))
    })
}

/// Appends bincode's output to a `Vec` directly: bincode's `std::io::Write` adapter
/// costs a call per field, which showed in profiles of the hot path.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// A record split into its frame, without decoding the body.
#[derive(Debug, Clone, Copy)]
pub struct RecordFrame<'a> {
    /// The previous record's hash, as stored.
    pub prev_hash: Hash32,
    /// The stored hash of this record.
    pub stored_hash: Hash32,
    /// The bytes the hash covers (version, prev hash, body).
    pub hashed: &'a [u8],
    /// The encoded (header, payload).
    pub body: &'a [u8],
}

impl RecordFrame<'_> {
    /// Whether the stored hash is the SHA-256 of the hashed bytes.
    pub fn hash_matches(&self) -> bool {
        Hash32::digest(self.hashed) == self.stored_hash
    }
}

/// Splits a record into version, hashes and body, checking only the version and length.
///
/// # Errors
/// [`CodecError::Truncated`] or [`CodecError::UnknownFormatVersion`].
pub fn frame(record: &[u8]) -> Result<RecordFrame<'_>, CodecError> {
    if record.len() <= PREFIX_LEN + HASH_LEN {
        return Err(CodecError::Truncated { len: record.len() });
    }
    if record[0] != FORMAT_VERSION {
        return Err(CodecError::UnknownFormatVersion { found: record[0] });
    }
    let split = record.len() - HASH_LEN;
    let hash_bytes = |bytes: &[u8]| {
        let mut out = [0u8; 32];
        out.copy_from_slice(bytes);
        Hash32::from_bytes(out)
    };
    Ok(RecordFrame {
        prev_hash: hash_bytes(&record[1..PREFIX_LEN]),
        stored_hash: hash_bytes(&record[split..]),
        hashed: &record[..split],
        body: &record[PREFIX_LEN..split],
    })
}

/// Decodes a whole record into an [`Envelope`], upcasting older schema versions.
/// Does not check the hash (see [`RecordFrame::hash_matches`]).
///
/// # Errors
/// Any [`CodecError`] but `Encode`.
pub fn decode_record(record: &[u8]) -> Result<Envelope, CodecError> {
    let frame = frame(record)?;
    let ((stored, payload), used): ((StoredHeader, Payload), usize) =
        bincode::serde::decode_from_slice(frame.body, BINCODE).map_err(|e| CodecError::Body(e.to_string()))?;
    if used != frame.body.len() {
        return Err(CodecError::TrailingBytes(frame.body.len() - used));
    }
    let payload = upcast(stored.schema_version, payload)?;
    Ok(Envelope {
        header: Header {
            seq: stored.seq,
            run_id: stored.run_id,
            cycle_id: stored.cycle_id,
            causation_seq: stored.causation_seq,
            ts_event: stored.ts_event,
            ts_recorded: stored.ts_recorded,
            schema_version: stored.schema_version,
            prev_hash: frame.prev_hash,
            hash: frame.stored_hash,
        },
        payload,
    })
}

/// Brings a payload written under `schema_version` to the current schema.
///
/// Version 1 is the only schema so far. When the schema changes, the old payload type
/// is kept beside an upcaster here, so records written years ago stay readable.
fn upcast(schema_version: u16, payload: Payload) -> Result<Payload, CodecError> {
    match schema_version {
        SCHEMA_VERSION => Ok(payload),
        found => Err(CodecError::UnsupportedSchema { found }),
    }
}

/// Serde for `Decimal` fields: `mantissa * 32 + scale` in binary formats, a string in JSON.
///
/// Use as `#[serde(with = "crate::codec::decimal")]`.
pub mod decimal {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes `value`.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            Serialize::serialize(value, serializer)
        } else {
            // |mantissa| < 2^96 and scale <= 28 < 32: the product fits an i128 exactly.
            (value.mantissa() * 32 + i128::from(value.scale())).serialize(serializer)
        }
    }

    /// Deserializes a value written by [`serialize`].
    ///
    /// # Errors
    /// A scale above 28 or a mantissa beyond 96 bits, or those of the deserializer.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        if deserializer.is_human_readable() {
            <Decimal as Deserialize>::deserialize(deserializer)
        } else {
            let packed = i128::deserialize(deserializer)?;
            let (mantissa, scale) = (packed.div_euclid(32), packed.rem_euclid(32));
            Decimal::try_from_i128_with_scale(mantissa, scale as u32).map_err(serde::de::Error::custom)
        }
    }
}

/// Serde for `Option<Decimal>` fields, in the same forms as [`decimal`].
pub mod decimal_opt {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super::decimal")] Decimal);

    /// Serializes `value`.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(value: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
        value.map(Wrapped).serialize(serializer)
    }

    /// Deserializes a value written by [`serialize`].
    ///
    /// # Errors
    /// As [`super::decimal::deserialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
    }
}

/// Encodes a piece of ledger metadata (the runs index, watermarks) with the same
/// bincode configuration, behind a leading format-version byte.
///
/// # Errors
/// [`CodecError::Encode`] if the serializer fails.
pub fn encode_meta<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, BINCODE).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes metadata written by [`encode_meta`].
///
/// # Errors
/// Unknown version, truncation, or a body that does not decode.
pub fn decode_meta<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Truncated { len: 0 })?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownFormatVersion { found: version });
    }
    let (value, used) =
        bincode::serde::decode_from_slice(body, BINCODE).map_err(|e| CodecError::Body(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::TrailingBytes(body.len() - used));
    }
    Ok(value)
}
