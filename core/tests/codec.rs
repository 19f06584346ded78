//! The codec: every payload kind survives encode/decode, the JSON form people read is
//! pinned by snapshots, and unknown formats are errors, never panics.

mod support;

use ledger_core::chain::Hash32;
use ledger_core::codec::{chain_record, decode_record, encode_unchained, frame, CodecError, FORMAT_VERSION};
use ledger_core::event::{Envelope, EventDraft};
use ledger_core::ids::Seq;
use proptest::prelude::*;
use support::*;

/// One chained record, without its segment length prefix.
fn encode(seq: Seq, prev: &Hash32, draft: &EventDraft) -> Result<(Vec<u8>, Hash32), CodecError> {
    let mut buf = Vec::new();
    encode_unchained(seq, draft, &mut buf)?;
    let mut record = buf.split_off(4);
    let hash = chain_record(&mut record, seq, prev);
    Ok((record, hash))
}

fn round_trip(seq: Seq, prev: Hash32, draft: &EventDraft) -> (Vec<u8>, Envelope) {
    let (buf, hash) = encode(seq, &prev, draft).unwrap();
    let event = decode_record(seq, &prev, &buf).unwrap();
    assert_eq!(event.header.hash, hash);
    assert_eq!(frame(&buf).unwrap().computed_hash(seq, &prev), hash);
    (buf, event)
}

proptest! {
    #[test]
    fn every_payload_kind_round_trips(draft in any_draft(), seq in 1u64.., prev in any::<[u8; 32]>()) {
        let prev = Hash32::from_bytes(prev);
        // A causation must be an earlier event, and both times must fit one i64 apart.
        let encodable = draft.causation_seq.is_none_or(|c| c.get() < seq)
            && draft.ts_recorded.nanos().checked_sub(draft.ts_event.nanos()).is_some();
        if !encodable {
            prop_assert!(matches!(encode(Seq::new(seq), &prev, &draft), Err(CodecError::Encode(_))));
            return Ok(());
        }
        let (_, event) = round_trip(Seq::new(seq), prev, &draft);
        prop_assert_eq!(&event.payload, &draft.payload);
        prop_assert_eq!(event.header.seq, Seq::new(seq));
        prop_assert_eq!(event.header.run_id, draft.run_id);
        prop_assert_eq!(event.header.cycle_id, draft.cycle_id);
        prop_assert_eq!(event.header.causation_seq, draft.causation_seq);
        prop_assert_eq!(event.header.ts_event, draft.ts_event);
        prop_assert_eq!(event.header.ts_recorded, draft.ts_recorded);
        prop_assert_eq!(event.header.prev_hash, prev);
    }

    #[test]
    fn encoding_is_deterministic(draft in any_draft()) {
        let mut draft = draft;
        draft.causation_seq = None;
        draft.ts_recorded = draft.ts_event;
        let (a, _) = round_trip(Seq::new(1), Hash32::ZERO, &draft);
        let (b, _) = round_trip(Seq::new(1), Hash32::ZERO, &draft.clone());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), seq in any::<u64>()) {
        let _ = decode_record(Seq::new(seq), &Hash32::ZERO, &bytes);
    }

    /// A record is bound to its place: the same bytes at another seq, or after another
    /// record, do not carry their hash.
    #[test]
    fn a_record_moved_or_relinked_breaks_its_hash(draft in any_draft(), seq in 2u64..1_000_000, other in 1u64..1_000_000, prev in any::<[u8; 32]>()) {
        let mut draft = draft;
        draft.causation_seq = None;
        draft.ts_recorded = draft.ts_event;
        let prev = Hash32::from_bytes(prev);
        let (record, hash) = encode(Seq::new(seq), &prev, &draft).unwrap();
        let framed = frame(&record).unwrap();
        prop_assume!(other != seq && prev != Hash32::ZERO);
        prop_assert_ne!(framed.computed_hash(Seq::new(other), &prev), hash);
        prop_assert_ne!(framed.computed_hash(Seq::new(seq), &Hash32::ZERO), hash);
    }
}

#[test]
fn every_kind_round_trips_by_example() {
    for (i, payload) in one_of_each().into_iter().enumerate() {
        let draft = draft(1, i as u64, 1_000 + i as i64, payload);
        let (_, event) = round_trip(Seq::new(i as u64 + 1), Hash32::ZERO, &draft);
        assert_eq!(event.payload, draft.payload, "case {i}");
    }
}

#[test]
fn unknown_format_version_is_a_clear_error() {
    let (mut buf, _) = encode(Seq::new(1), &Hash32::ZERO, &draft(1, 0, 0, one_of_each().remove(1))).unwrap();
    buf[0] = FORMAT_VERSION + 1;
    let error = decode_record(Seq::new(1), &Hash32::ZERO, &buf).unwrap_err();
    assert_eq!(error, CodecError::UnknownFormatVersion { found: FORMAT_VERSION + 1 });
    assert_eq!(error.to_string(), "unknown record format version 4 (this build reads versions 1 to 3)");
}

#[test]
fn truncated_record_is_an_error() {
    assert_eq!(decode_record(Seq::new(1), &Hash32::ZERO, &[1; 10]), Err(CodecError::Truncated { len: 10 }));
    assert_eq!(decode_record(Seq::new(1), &Hash32::ZERO, &[]), Err(CodecError::Truncated { len: 0 }));
}

#[test]
fn json_form_of_each_kind() {
    let mut prev = Hash32::ZERO;
    let mut lines = Vec::new();
    for (i, payload) in one_of_each().into_iter().enumerate() {
        let ts = 1_381_239_000_000_000_000 + i as i64 * 1_000_000;
        let mut draft = draft(1, i as u64, ts, payload);
        draft.causation_seq = (i > 0).then(|| Seq::new(i as u64));
        let (_, event) = round_trip(Seq::new(i as u64 + 1), prev, &draft);
        prev = event.header.hash;
        let json = serde_json::to_string_pretty(&event).unwrap();
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event, "JSON round trip of case {i}");
        lines.push(json);
    }
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn extreme_decimals_round_trip() {
    use ledger_core::event::{MarketTick, Payload, TickData, Trade};
    use rust_decimal::Decimal;
    let extremes =
        [Decimal::MAX, Decimal::MIN, Decimal::new(1, 28), Decimal::new(-1, 28), Decimal::ZERO, -Decimal::ONE];
    for price in extremes {
        let payload = Payload::MarketTick(MarketTick {
            instrument: inst("X"),
            data: TickData::Trade(Trade { price, size: price, aggressor: None }),
        });
        let draft = draft(1, 1, 0, payload);
        let (_, event) = round_trip(Seq::new(1), Hash32::ZERO, &draft);
        assert_eq!(event.payload, draft.payload, "{price}");
    }
}

/// Inputs the `record_decode` fuzz target found (fuzz/known-crashes/record_decode/): a
/// damaged length in a record made bincode allocate it (an abort, or a capacity
/// overflow panic). Decoding them is now an error, never an allocation.
#[test]
fn fuzz_found_lengths_past_the_record_are_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/known-crashes/record_decode");
    for name in ["string-length-past-the-record", "segment-capacity-overflow"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        for seq in [1u64, 2, 1 << 40] {
            let _ = decode_record(Seq::new(seq), &Hash32::ZERO, &bytes);
        }
        for record in ledger_core::codec::segment_records(&bytes).flatten() {
            assert!(decode_record(Seq::new(2), &Hash32::ZERO, record).is_err(), "{name}");
        }
    }
}
