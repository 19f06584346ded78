//! Writes starting inputs for the `record_decode` target: real records, as the ledger
//! stores them, from the events of `fixtures/ledger-v1.events.jsonl` encoded by this
//! build (format 2): single records and segments of a few.
//!
//! `cargo run --example seeds -- OUT_DIR` (from `fuzz/`; a plain build, not a fuzz one).

use std::path::PathBuf;

use ledger_core::chain::Hash32;
use ledger_core::codec::{chain_record, encode_unchained};
use ledger_core::event::{Envelope, EventDraft};
use ledger_core::ids::Seq;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: seeds OUT_DIR")?);
    std::fs::create_dir_all(&out)?;
    let events = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/ledger-v1.events.jsonl"))?;
    let mut prev = Hash32::ZERO;
    let mut segment = Vec::new();
    let mut written = 0;
    // Events whose schema-1 JSON today's payloads do not read (RunStarted lacks its
    // provider) are left out.
    let envelopes = events.lines().filter_map(|line| serde_json::from_str::<Envelope>(line).ok());
    for (i, envelope) in envelopes.enumerate() {
        let header = &envelope.header;
        let draft = EventDraft {
            run_id: header.run_id,
            cycle_id: header.cycle_id,
            causation_seq: header.causation_seq,
            ts_event: header.ts_event,
            ts_recorded: header.ts_recorded,
            payload: envelope.payload,
        };
        let seq: Seq = header.seq;
        let start = segment.len();
        encode_unchained(seq, &draft, &mut segment)?;
        // The record follows its 4-byte length prefix.
        prev = chain_record(&mut segment[start + 4..], seq, &prev);
        // One file per kind of event seen first, and a segment every few records.
        let kind = draft.payload.kind();
        let single = out.join(format!("record-{kind}"));
        if !single.exists() {
            std::fs::write(&single, &segment[start + 4..])?;
            written += 1;
        }
        if (i + 1) % 5 == 0 {
            std::fs::write(out.join(format!("segment-{:03}", i + 1)), &segment)?;
            segment.clear();
            written += 1;
        }
        if i >= 60 {
            break;
        }
    }
    println!("{written} seeds in {}", out.display());
    Ok(())
}
