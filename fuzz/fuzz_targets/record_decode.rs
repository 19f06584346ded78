//! Arbitrary bytes as a stored record and as a segment of records
//! (`ledger_core::codec`): `frame`, `decode_record` at a few seqs, `segment_records`,
//! and each record's hash. No panic; a decoded record names the seq it was decoded at.
#![no_main]

use ledger_core::chain::Hash32;
use ledger_core::codec::{decode_record, frame, segment_records};
use ledger_core::ids::Seq;
use libfuzzer_sys::fuzz_target;

/// Seqs to decode at: the first, small, and the largest (causation distances and
/// v1 headers are relative to it).
const SEQS: [u64; 4] = [1, 2, 1_000_000, u64::MAX];

fn decode_all(record: &[u8]) {
    if let Ok(frame) = frame(record) {
        let _ = frame.computed_hash(Seq::new(1), &Hash32::ZERO);
    }
    for seq in SEQS {
        if let Ok(envelope) = decode_record(Seq::new(seq), &Hash32::ZERO, record) {
            assert_eq!(envelope.header.seq, Seq::new(seq), "decoded at one seq, named another");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    decode_all(data);
    for record in segment_records(data).take(64).flatten() {
        decode_all(record);
    }
});
