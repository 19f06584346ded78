//! The bytes of one stored record. This is the only module that knows the encoding, so
//! the codec can be replaced by adding a format version, never by rewriting old records.
//!
//! # Record layout, format version 3 (written by this build)
//! ```text
//! [0]            format version, 3
//! [1..len-32]    body: bincode 2.0.1, `config::standard()` (little-endian, varint), of
//!                (header, payload); the header holds run, cycle, causation as a distance
//!                back from the record's own seq, source time ([`nanos`]: whole seconds
//!                take 5 bytes), and recording time as a difference from the source time
//! [len-32..len]  hash = SHA-256(version || prev_hash || seq as 8 bytes big-endian || body)
//! ```
//! Nothing is stored that the reader already knows: the seq is the record's position
//! (the segment's key plus its index), the previous hash is the previous record's stored
//! hash, and the payload schema is the format's (format 3 carries schema 3, format 2
//! schema 2: a new schema takes a new format byte). The seq and previous hash are still covered by the hash, so
//! any changed byte, and any removed, swapped or moved record, breaks the hash of the
//! record where it happens.
//!
//! # Format version 1 (read, never written)
//! ```text
//! [0] 1 | [1..33] prev_hash | [33..len-32] body (seq in the header) | [len-32..] SHA-256(bytes[0..len-32])
//! ```
//! Its payloads are schema 1 and are upcast to the current schema on read ([`v1`]).
//!
//! # Format version 2 (read, never written)
//! The layout of format 3, with schema-2 payloads, upcast on read ([`v2`]).
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
//! the hot path. JSON (any human-readable serde format) shows them as decimal strings.

use bincode::config::{self, Configuration, LittleEndian, Varint};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::chain::Hash32;
use crate::event::{Envelope, EventDraft, Header, Payload, SCHEMA_VERSION};
use crate::ids::{CycleId, RunId, Seq};
use crate::time::TimestampNs;

/// The format version this build writes.
pub const FORMAT_VERSION: u8 = 3;
/// The first format, still read.
const FORMAT_V1: u8 = 1;
/// The second format (schema 2), still read.
const FORMAT_V2: u8 = 2;

/// Bytes after the body: the record's own hash.
const HASH_LEN: usize = 32;
/// Bytes before a version-1 body: version byte and previous hash.
const V1_PREFIX_LEN: usize = 1 + 32;

/// Most bytes one record or metadata value may claim while it is decoded.
///
/// bincode allocates a string or list for the length a record claims before reading it,
/// so a damaged length (say 2^60) would abort the process on allocation; found by
/// fuzzing `record_decode`. With a limit it is an error instead. No record comes close:
/// the largest payloads are LLM prompts and answers.
pub const DECODE_LIMIT: usize = 16 << 20;

/// The one bincode configuration: `standard()` (little-endian, varint) with the
/// [`DECODE_LIMIT`], which changes no encoded byte. Changing the encoding means a new
/// [`FORMAT_VERSION`].
const BINCODE: Configuration<LittleEndian, Varint, config::Limit<DECODE_LIMIT>> =
    config::standard().with_limit::<DECODE_LIMIT>();

/// Why bytes could not be turned into an event, or an event into bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The first byte names a format this build does not know.
    #[error("unknown record format version {found} (this build reads versions 1 to {FORMAT_VERSION})")]
    UnknownFormatVersion {
        /// The version byte found.
        found: u8,
    },
    /// Too short to hold the version, a body and the hash.
    #[error("record is truncated: {len} bytes")]
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
    #[error("schema version {found} is not one this build reads (1 to {SCHEMA_VERSION})")]
    UnsupportedSchema {
        /// The schema version found.
        found: u16,
    },
    /// A version-1 record's header names another seq than its position.
    #[error("the record's header says seq {in_header}")]
    SeqMismatch {
        /// The seq written in the header.
        in_header: Seq,
    },
    /// The event cannot be encoded: its causation is not an earlier event, its times
    /// are too far apart for one `i64`, or the serializer failed.
    #[error("record does not encode: {0}")]
    Encode(String),
}

/// The header as formats 2 and 3 store it: what the position and the previous record do not
/// already say.
#[derive(Serialize, Deserialize)]
struct StoredHeader {
    run_id: RunId,
    cycle_id: CycleId,
    /// `seq - causation_seq`; 0 when there is no causation.
    causation_back: u64,
    #[serde(with = "nanos")]
    ts_event: i64,
    /// `ts_recorded - ts_event`, nanoseconds (0 in backtests, where both are data time).
    recorded_after_event_ns: i64,
}

/// Appends the record for `draft` to the segment in `out`, behind its length prefix,
/// with its hash left as zeros for [`chain_record`] to fill. Encoding and chaining are
/// apart so that they can run on different threads: encoding needs only the sequence,
/// chaining needs the previous record.
///
/// # Errors
/// [`CodecError::Encode`] when the causation is not an earlier seq or the times are
/// more than `i64` nanoseconds apart.
pub fn encode_unchained(seq: Seq, draft: &EventDraft, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let causation_back = match draft.causation_seq {
        None => 0,
        Some(cause) if cause < seq => seq.get() - cause.get(),
        Some(cause) => return Err(CodecError::Encode(format!("causation seq {cause} is not before seq {seq}"))),
    };
    let recorded_after_event_ns = draft
        .ts_recorded
        .nanos()
        .checked_sub(draft.ts_event.nanos())
        .ok_or_else(|| CodecError::Encode("ts_recorded and ts_event are too far apart".into()))?;
    let header = StoredHeader {
        run_id: draft.run_id,
        cycle_id: draft.cycle_id,
        causation_back,
        ts_event: draft.ts_event.nanos(),
        recorded_after_event_ns,
    };
    let prefix_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(FORMAT_VERSION);
    let encoded = bincode::serde::encode_into_writer((&header, &draft.payload), VecWriter(out), BINCODE);
    if let Err(error) = encoded {
        out.truncate(prefix_at);
        return Err(CodecError::Encode(error.to_string()));
    }
    out.extend_from_slice(Hash32::ZERO.as_bytes());
    let Ok(len) = u32::try_from(out.len() - prefix_at - 4) else {
        out.truncate(prefix_at);
        return Err(CodecError::Encode("record over 4 GiB".into()));
    };
    out[prefix_at..prefix_at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Chains a record written by [`encode_unchained`] (without its length prefix)
/// as the record at `seq` after `prev_hash`: computes its hash, writes it into the
/// record's last 32 bytes and returns it.
///
/// # Panics
/// If `record` is shorter than the version byte and the hash, which
/// [`encode_unchained`] never writes (a broken invariant).
pub fn chain_record(record: &mut [u8], seq: Seq, prev_hash: &Hash32) -> Hash32 {
    assert!(record.len() > 1 + HASH_LEN, "record too short to chain"); // invariant
    let split = record.len() - HASH_LEN;
    let hash = hash_v2(record[0], prev_hash, seq, &record[1..split]);
    record[split..].copy_from_slice(hash.as_bytes());
    hash
}

fn hash_v2(version: u8, prev_hash: &Hash32, seq: Seq, body: &[u8]) -> Hash32 {
    let digest = Sha256::new()
        .chain_update([version])
        .chain_update(prev_hash.as_bytes())
        .chain_update(seq.get().to_be_bytes())
        .chain_update(body)
        .finalize();
    Hash32::from_bytes(digest.into())
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
    /// The format version byte.
    pub version: u8,
    /// The previous record's hash, as a version-1 record stores it (`None` in later
    /// formats, which do not store it).
    pub stored_prev_hash: Option<Hash32>,
    /// The stored hash of this record.
    pub stored_hash: Hash32,
    /// The encoded (header, payload).
    pub body: &'a [u8],
    /// Version 1: the bytes its hash covers.
    hashed_v1: &'a [u8],
}

impl RecordFrame<'_> {
    /// The hash this record must carry as the record at `seq` after one hashed
    /// `prev_hash`. For a version-1 record, whose bytes hold its own previous hash, the
    /// link is [`RecordFrame::stored_prev_hash`]'s to check.
    pub fn computed_hash(&self, seq: Seq, prev_hash: &Hash32) -> Hash32 {
        match self.version {
            FORMAT_V1 => Hash32::digest(self.hashed_v1),
            version => hash_v2(version, prev_hash, seq, self.body),
        }
    }
}

/// Splits a record into version, body and hashes, checking only the version and length.
///
/// # Errors
/// [`CodecError::Truncated`] or [`CodecError::UnknownFormatVersion`].
pub fn frame(record: &[u8]) -> Result<RecordFrame<'_>, CodecError> {
    let hash_bytes = |bytes: &[u8]| {
        let mut out = [0u8; 32];
        out.copy_from_slice(bytes);
        Hash32::from_bytes(out)
    };
    let version = *record.first().ok_or(CodecError::Truncated { len: 0 })?;
    let prefix = match version {
        FORMAT_V1 => V1_PREFIX_LEN,
        FORMAT_V2 | FORMAT_VERSION => 1,
        found => return Err(CodecError::UnknownFormatVersion { found }),
    };
    if record.len() <= prefix + HASH_LEN {
        return Err(CodecError::Truncated { len: record.len() });
    }
    let split = record.len() - HASH_LEN;
    Ok(RecordFrame {
        version,
        stored_prev_hash: (version == FORMAT_V1).then(|| hash_bytes(&record[1..V1_PREFIX_LEN])),
        stored_hash: hash_bytes(&record[split..]),
        body: &record[prefix..split],
        hashed_v1: &record[..split],
    })
}

/// Decodes the record at `seq`, whose predecessor hashed `prev_hash`, into an
/// [`Envelope`], upcasting older formats and schemas. Does not check the hash (see
/// [`RecordFrame::computed_hash`]); the envelope's `prev_hash` is the stored one for
/// version-1 records and `prev_hash` otherwise.
///
/// # Errors
/// Any [`CodecError`] but `Encode`.
pub fn decode_record(seq: Seq, prev_hash: &Hash32, record: &[u8]) -> Result<Envelope, CodecError> {
    let frame = frame(record)?;
    let (stored, payload): (StoredHeader, Payload) = match frame.version {
        FORMAT_V1 => return v1::decode(seq, &frame),
        FORMAT_V2 => {
            let (stored, payload): (StoredHeader, v2::Payload) = decode_body(frame.body)?;
            (stored, v2::upcast(payload))
        }
        _ => decode_body(frame.body)?,
    };
    let causation_seq = match stored.causation_back {
        0 => None,
        back => Some(Seq::new(seq.get().checked_sub(back).ok_or_else(|| {
            CodecError::Body(format!("causation {back} records back from seq {seq} is before the ledger"))
        })?)),
    };
    let ts_recorded = stored
        .ts_event
        .checked_add(stored.recorded_after_event_ns)
        .ok_or_else(|| CodecError::Body("ts_recorded out of range".into()))?;
    Ok(Envelope {
        header: Header {
            seq,
            run_id: stored.run_id,
            cycle_id: stored.cycle_id,
            causation_seq,
            ts_event: TimestampNs::from_nanos(stored.ts_event),
            ts_recorded: TimestampNs::from_nanos(ts_recorded),
            // Format 2 carries schema 2, format 3 the current schema.
            schema_version: if frame.version == FORMAT_V2 { 2 } else { SCHEMA_VERSION },
            prev_hash: *prev_hash,
            hash: frame.stored_hash,
        },
        payload,
    })
}

fn decode_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, used): (T, usize) =
        bincode::serde::decode_from_slice(body, BINCODE).map_err(|e| CodecError::Body(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::TrailingBytes(body.len() - used));
    }
    Ok(value)
}

/// Format 1 and schema 1: the types as they were stored, and their upcast.
///
/// Schema 1 carried the provider, model and parameters in every `DecisionMade` and one
/// `decision_provider` text (`provider:model params`) in `RunStarted`; schema 2 keeps
/// them once, in `RunStarted`, stores a bar's interval packed ([`super::nanos`]), and
/// drops a verdict's `decision_seq` (its `causation_seq` names the same decision); a
/// run's stop counts the market data rows skipped (none in schema 1).
/// Every other payload is unchanged, so its current type decodes it.
pub mod v1 {
    use super::*;
    use crate::event::{self, *};
    use crate::ids::Seq;

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

    #[derive(Serialize, Deserialize)]
    struct RunStarted {
        mode: RunMode,
        config_hash: Hash32,
        config: Text,
        software_version: Text,
        venue: Text,
        instruments: Vec<crate::ids::InstrumentId>,
        decision_provider: Text,
        parent_run: Option<RunId>,
        data_source: Text,
        #[serde(with = "super::decimal")]
        starting_cash: rust_decimal::Decimal,
        kill_switch_tripped: bool,
    }

    #[derive(Serialize, Deserialize)]
    struct DecisionMade {
        provider: Text,
        model: Text,
        params: Text,
        prompt_sha256: Option<Hash32>,
        prompt: Text,
        raw_output: Text,
        parsed: super::v2::Decision,
        parse_status: ParseStatus,
        latency_us: u64,
        tokens_in: u32,
        tokens_out: u32,
    }

    #[derive(Serialize, Deserialize)]
    struct MarketTick {
        instrument: crate::ids::InstrumentId,
        data: TickData,
    }

    #[derive(Serialize, Deserialize)]
    enum TickData {
        Bar(Bar),
        Trade(event::Trade),
        Quote(event::Quote),
    }

    /// Schema 1 stored a bar's interval as a plain varint.
    #[derive(Serialize, Deserialize)]
    struct Bar {
        #[serde(with = "super::decimal")]
        open: rust_decimal::Decimal,
        #[serde(with = "super::decimal")]
        high: rust_decimal::Decimal,
        #[serde(with = "super::decimal")]
        low: rust_decimal::Decimal,
        #[serde(with = "super::decimal")]
        close: rust_decimal::Decimal,
        #[serde(with = "super::decimal_opt")]
        volume: Option<rust_decimal::Decimal>,
        interval_ns: i64,
    }

    #[derive(Serialize, Deserialize)]
    struct RunStopped {
        reason: Text,
    }

    /// Schema 1 named the decision a verdict judges, which is always its cause.
    #[derive(Serialize, Deserialize)]
    struct RiskVerdict {
        decision_seq: Seq,
        approved: bool,
        checks: Vec<event::RiskCheck>,
        reason: Text,
    }

    /// The schema-1 payload enum: same variants, same order.
    #[derive(Serialize, Deserialize)]
    enum Payload {
        RunStarted(RunStarted),
        RunStopped(RunStopped),
        MarketTick(MarketTick),
        DecisionMade(DecisionMade),
        RiskVerdict(RiskVerdict),
        OrderSubmitted(super::v2::OrderSubmitted),
        OrderAccepted(event::OrderAccepted),
        OrderRejected(event::OrderRejected),
        OrderCanceled(event::OrderCanceled),
        OrderFilled(event::OrderFilled),
        KillSwitchTripped(event::KillSwitchTripped),
        KillSwitchReset(event::KillSwitchReset),
        RiskLimitsChanged(event::RiskLimitsChanged),
    }

    pub(super) fn decode(seq: Seq, frame: &RecordFrame<'_>) -> Result<Envelope, CodecError> {
        let (stored, payload): (StoredHeader, Payload) = decode_body(frame.body)?;
        if stored.seq != seq {
            return Err(CodecError::SeqMismatch { in_header: stored.seq });
        }
        if stored.schema_version != 1 {
            return Err(CodecError::UnsupportedSchema { found: stored.schema_version });
        }
        Ok(Envelope {
            header: Header {
                seq,
                run_id: stored.run_id,
                cycle_id: stored.cycle_id,
                causation_seq: stored.causation_seq,
                ts_event: stored.ts_event,
                ts_recorded: stored.ts_recorded,
                schema_version: stored.schema_version,
                prev_hash: frame.stored_prev_hash.unwrap_or(Hash32::ZERO),
                hash: frame.stored_hash,
            },
            payload: upcast(payload),
        })
    }

    /// Schema 1 to schema 2: `decision_provider` (`provider:model params`) is split into
    /// its parts; a decision's own copies of them are dropped (they were the run's).
    fn upcast(payload: Payload) -> event::Payload {
        use event::Payload as P;
        match payload {
            Payload::RunStarted(s) => {
                let (provider, rest) = s.decision_provider.split_once(':').unwrap_or(("", &s.decision_provider));
                let (model, params) = rest.split_once(' ').unwrap_or((rest, ""));
                P::RunStarted(Box::new(event::RunStarted {
                    mode: s.mode,
                    config_hash: s.config_hash,
                    config: s.config,
                    software_version: s.software_version,
                    venue: s.venue,
                    instruments: s.instruments,
                    provider: provider.into(),
                    model: model.into(),
                    params: params.into(),
                    parent_run: s.parent_run,
                    data_source: s.data_source,
                    starting_cash: s.starting_cash,
                    kill_switch_tripped: s.kill_switch_tripped,
                }))
            }
            Payload::DecisionMade(d) => P::DecisionMade(event::DecisionMade {
                prompt_sha256: d.prompt_sha256,
                prompt: d.prompt,
                raw_output: d.raw_output,
                parsed: d.parsed.upcast(),
                parse_status: d.parse_status,
                latency_us: d.latency_us,
                tokens_in: d.tokens_in,
                tokens_out: d.tokens_out,
            }),
            Payload::RunStopped(p) => P::RunStopped(event::RunStopped { reason: p.reason, skipped_rows: 0 }),
            Payload::MarketTick(MarketTick { instrument, data }) => P::MarketTick(event::MarketTick {
                instrument,
                data: match data {
                    TickData::Bar(b) => event::TickData::Bar(event::Bar {
                        open: b.open,
                        high: b.high,
                        low: b.low,
                        close: b.close,
                        volume: b.volume,
                        interval_ns: b.interval_ns,
                    }),
                    TickData::Trade(t) => event::TickData::Trade(t),
                    TickData::Quote(q) => event::TickData::Quote(q),
                },
            }),
            Payload::RiskVerdict(v) => {
                P::RiskVerdict(event::RiskVerdict { approved: v.approved, checks: v.checks, reason: v.reason })
            }
            Payload::OrderSubmitted(p) => P::OrderSubmitted(p.upcast()),
            Payload::OrderAccepted(p) => P::OrderAccepted(p),
            Payload::OrderRejected(p) => P::OrderRejected(p),
            Payload::OrderCanceled(p) => P::OrderCanceled(p),
            Payload::OrderFilled(p) => P::OrderFilled(p),
            Payload::KillSwitchTripped(p) => P::KillSwitchTripped(p),
            Payload::KillSwitchReset(p) => P::KillSwitchReset(p),
            Payload::RiskLimitsChanged(p) => P::RiskLimitsChanged(p),
        }
    }
}

/// Format 2 and schema 2: the types schema 3 changed, and their upcast.
///
/// Schema 3 gave a decision its [`event::OrderTerms`] and an order its stop price and
/// [`event::Protection`]; a schema-2 decision has no terms, a schema-2 order neither
/// (it was a market order or a plain limit order). Every other payload is unchanged.
pub mod v2 {
    use super::*;
    use crate::event::{self, *};
    use crate::ids::{ClientOrderId, InstrumentId};

    /// A schema-2 decision: no terms.
    #[derive(Serialize, Deserialize)]
    pub(super) struct Decision {
        action: Action,
        #[serde(with = "super::decimal")]
        size_pct: rust_decimal::Decimal,
        #[serde(with = "super::decimal")]
        confidence: rust_decimal::Decimal,
        reason: Text,
    }

    impl Decision {
        pub(super) fn upcast(self) -> event::Decision {
            event::Decision::new(self.action, self.size_pct, self.confidence, self.reason)
        }
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct DecisionMade {
        prompt_sha256: Option<Hash32>,
        prompt: Text,
        raw_output: Text,
        parsed: Decision,
        parse_status: ParseStatus,
        latency_us: u64,
        tokens_in: u32,
        tokens_out: u32,
    }

    /// A schema-2 order: no stop price, no protection.
    #[derive(Serialize, Deserialize)]
    pub(super) struct OrderSubmitted {
        client_order_id: ClientOrderId,
        instrument: InstrumentId,
        side: Side,
        qty: OrderQty,
        order_type: OrderType,
        #[serde(with = "super::decimal_opt")]
        limit_price: Option<rust_decimal::Decimal>,
        tif: TimeInForce,
    }

    impl OrderSubmitted {
        pub(super) fn upcast(self) -> event::OrderSubmitted {
            event::OrderSubmitted {
                client_order_id: self.client_order_id,
                instrument: self.instrument,
                side: self.side,
                qty: self.qty,
                order_type: self.order_type,
                limit_price: self.limit_price,
                tif: self.tif,
                stop_price: None,
                reduce_only: false,
                protects: None,
                bracket: None,
            }
        }
    }

    /// The schema-2 payload enum: same variants, same order.
    #[derive(Serialize, Deserialize)]
    pub(super) enum Payload {
        RunStarted(Box<event::RunStarted>),
        RunStopped(event::RunStopped),
        MarketTick(event::MarketTick),
        DecisionMade(DecisionMade),
        RiskVerdict(event::RiskVerdict),
        OrderSubmitted(OrderSubmitted),
        OrderAccepted(event::OrderAccepted),
        OrderRejected(event::OrderRejected),
        OrderCanceled(event::OrderCanceled),
        OrderFilled(event::OrderFilled),
        KillSwitchTripped(event::KillSwitchTripped),
        KillSwitchReset(event::KillSwitchReset),
        RiskLimitsChanged(event::RiskLimitsChanged),
        RunResumed(event::RunResumed),
    }

    /// Schema 2 to schema 3: decisions and orders without terms.
    pub(super) fn upcast(payload: Payload) -> event::Payload {
        use event::Payload as P;
        match payload {
            Payload::RunStarted(p) => P::RunStarted(p),
            Payload::RunStopped(p) => P::RunStopped(p),
            Payload::MarketTick(p) => P::MarketTick(p),
            Payload::DecisionMade(d) => P::DecisionMade(event::DecisionMade {
                prompt_sha256: d.prompt_sha256,
                prompt: d.prompt,
                raw_output: d.raw_output,
                parsed: d.parsed.upcast(),
                parse_status: d.parse_status,
                latency_us: d.latency_us,
                tokens_in: d.tokens_in,
                tokens_out: d.tokens_out,
            }),
            Payload::RiskVerdict(p) => P::RiskVerdict(p),
            Payload::OrderSubmitted(p) => P::OrderSubmitted(p.upcast()),
            Payload::OrderAccepted(p) => P::OrderAccepted(p),
            Payload::OrderRejected(p) => P::OrderRejected(p),
            Payload::OrderCanceled(p) => P::OrderCanceled(p),
            Payload::OrderFilled(p) => P::OrderFilled(p),
            Payload::KillSwitchTripped(p) => P::KillSwitchTripped(p),
            Payload::KillSwitchReset(p) => P::KillSwitchReset(p),
            Payload::RiskLimitsChanged(p) => P::RiskLimitsChanged(p),
            Payload::RunResumed(p) => P::RunResumed(p),
        }
    }
}

/// Serde for `i64` nanoseconds (times and durations) that are often whole seconds: in
/// binary formats one varint, `seconds * 2 + 1` for a non-negative whole number of
/// seconds (5 bytes for any time before 2038, 1 byte for a minute), else
/// `zigzag(nanoseconds) * 2`; a plain number in JSON.
///
/// Use as `#[serde(with = "crate::codec::nanos")]`.
pub mod nanos {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    const PER_SECOND: i64 = 1_000_000_000;

    /// Serializes `value`.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return value.serialize(serializer);
        }
        let ns = *value;
        let packed: u128 = if ns >= 0 && ns % PER_SECOND == 0 {
            u128::from((ns / PER_SECOND) as u64) * 2 + 1
        } else {
            let zigzag = ((ns << 1) ^ (ns >> 63)) as u64;
            u128::from(zigzag) * 2
        };
        packed.serialize(serializer)
    }

    /// Deserializes a value written by [`serialize`].
    ///
    /// # Errors
    /// A packed value outside the `i64` nanosecond range, or those of the deserializer.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        if deserializer.is_human_readable() {
            return i64::deserialize(deserializer);
        }
        let packed = u128::deserialize(deserializer)?;
        let out_of_range = || serde::de::Error::custom(format!("packed nanoseconds {packed} out of range"));
        let half = u64::try_from(packed >> 1).map_err(|_| out_of_range())?;
        if packed & 1 == 1 {
            i64::try_from(half).ok().and_then(|s| s.checked_mul(PER_SECOND)).ok_or_else(out_of_range)
        } else {
            Ok(((half >> 1) as i64) ^ -((half & 1) as i64))
        }
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

/// A `Decimal` in the forms of [`decimal`], for places a `with` attribute cannot reach
/// (inside tuples and collections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exact(#[serde(with = "decimal")] pub rust_decimal::Decimal);

/// Serde for `VecDeque<Decimal>` fields, each in the forms of [`decimal`].
pub mod decimal_deque {
    use std::collections::VecDeque;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Exact;

    /// Serializes `values`.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(values: &VecDeque<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter().map(|d| Exact(*d)))
    }

    /// Deserializes values written by [`serialize`].
    ///
    /// # Errors
    /// As [`super::decimal::deserialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<VecDeque<Decimal>, D::Error> {
        Ok(Vec::<Exact>::deserialize(deserializer)?.into_iter().map(|e| e.0).collect())
    }
}

/// Serde for `BTreeMap<K, Decimal>` fields, each value in the forms of [`decimal`].
pub mod decimal_map {
    use std::collections::BTreeMap;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Exact;

    /// Serializes `map`.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<K: Serialize, S: Serializer>(
        map: &BTreeMap<K, Decimal>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(map.iter().map(|(k, v)| (k, Exact(*v))))
    }

    /// Deserializes a map written by [`serialize`].
    ///
    /// # Errors
    /// As [`super::decimal::deserialize`].
    pub fn deserialize<'de, K: Deserialize<'de> + Ord, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<K, Decimal>, D::Error> {
        Ok(BTreeMap::<K, Exact>::deserialize(deserializer)?.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}

/// Serde for `Option<Decimal>` fields, in the same forms as [`decimal`].
pub mod decimal_opt {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Exact as Wrapped;

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

/// The format version of metadata values (heads, snapshots), apart from records'.
const META_VERSION: u8 = 1;

/// Encodes a piece of ledger metadata (the runs index, watermarks) with the same
/// bincode configuration, behind a leading format-version byte.
///
/// # Errors
/// [`CodecError::Encode`] if the serializer fails.
pub fn encode_meta<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![META_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, BINCODE).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes metadata written by [`encode_meta`].
///
/// # Errors
/// Unknown version, truncation, or a body that does not decode.
pub fn decode_meta<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Truncated { len: 0 })?;
    if version != META_VERSION {
        return Err(CodecError::UnknownFormatVersion { found: version });
    }
    decode_body(body)
}
