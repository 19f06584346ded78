//! The event log against raw sled, in one run (so ratios compare like with like):
//! - append throughput, batch sizes 1, 64 and 1,024, strict and group durability, beside
//!   raw sled inserts of the same bytes flushed on the same schedule, two ways: the same
//!   segments under the same keys (`raw_sled_segment`: sled's own cost for what we store)
//!   and one key per record in one sled batch (`raw_sled_record`: the naive layout);
//! - read throughput (decode every event) beside raw sled iteration of the same tree;
//! - `verify` throughput (contiguity, chain, hash and decode of every record).
//!
//! Events are real: SPY daily bars with their decision and verdict, 3 events per bar.
//! Run: `cargo bench -p ledger-adapters --bench ledger_log`.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ledger_adapters::market_data::{read_ticks, ReadOptions};
use ledger_adapters::sled_log::{Durability, SledLog};
use ledger_core::event::*;
use ledger_core::ids::{CycleId, InstrumentId, RunId, Seq};
use ledger_core::log::{visit_events, EventLog, MemLog, RecordSource};
use ledger_core::verify::{verify, Verdict};
use rust_decimal::Decimal;

const GROUP: Durability = Durability::Group { max_events: 10_000, max_delay: Duration::from_millis(50) };

/// Tick, decision and verdict drafts for the SPY fixture: 17,547 events.
fn drafts() -> Vec<EventDraft> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/spy-daily-1998-2021.csv");
    let options = ReadOptions::new(InstrumentId::new("SPY").unwrap());
    let ticks = read_ticks(&path, &options).unwrap();
    let mut out = Vec::new();
    for (i, tick) in ticks.iter().enumerate() {
        let draft = |payload| EventDraft {
            run_id: RunId::new(1),
            cycle_id: CycleId::new(i as u64 + 1),
            causation_seq: None,
            ts_event: tick.ts,
            ts_recorded: tick.ts,
            payload,
        };
        out.push(draft(Payload::MarketTick(MarketTick { instrument: tick.instrument, data: tick.data.clone() })));
        out.push(draft(Payload::DecisionMade(DecisionMade {
            prompt_sha256: None,
            prompt: "".into(),
            raw_output: "".into(),
            parsed: Decision::new(Action::Hold, Decimal::ZERO, Decimal::ZERO, "no signal".into()),
            parse_status: ParseStatus::Ok,
            latency_us: 0,
            tokens_in: 0,
            tokens_out: 0,
        })));
        out.push(draft(Payload::RiskVerdict(RiskVerdict { approved: true, checks: Vec::new(), reason: "".into() })));
    }
    out
}

/// The record bytes the ledger would store for `drafts`, keyed by seq.
fn records(drafts: &[EventDraft]) -> Vec<([u8; 8], Vec<u8>)> {
    let mut log = MemLog::new();
    log.append(&mut drafts.to_vec()).unwrap();
    let mut out = Vec::new();
    log.visit_records(Seq::new(1), &mut |seq, bytes| {
        out.push((seq.to_key(), bytes.to_vec()));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    out
}

fn raw_tree(dir: &Path) -> (sled::Db, sled::Tree) {
    // sled releases a closed database's file lock from background threads: retry briefly.
    let mut tries = 0;
    let db = loop {
        match sled::Config::new().path(dir).flush_every_ms(None).open() {
            Ok(db) => break db,
            Err(_) if tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("{error}"),
        }
    };
    let tree = db.open_tree("events").unwrap();
    (db, tree)
}

fn append(c: &mut Criterion) {
    let drafts = drafts();
    let records = records(&drafts);
    let mut group = c.benchmark_group("append");
    group.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_millis(500));
    for (mode, durability) in [("strict", Durability::Strict), ("group", GROUP)] {
        for batch in [1usize, 64, 1024] {
            // Strict batch-1 flushes per event: measure fewer events so a sample ends.
            let events =
                if matches!(durability, Durability::Strict) { (batch * 64).min(drafts.len()) } else { drafts.len() };
            group.throughput(Throughput::Elements(events as u64));
            group.bench_with_input(BenchmarkId::new(format!("ledger_{mode}"), batch), &batch, |b, &batch| {
                b.iter_batched(
                    || tempfile::tempdir().unwrap(),
                    |dir| {
                        let mut log = SledLog::open(dir.path(), durability).unwrap();
                        for chunk in drafts[..events].chunks(batch) {
                            log.append(&mut chunk.to_vec()).unwrap();
                        }
                        log.sync().unwrap();
                        dir
                    },
                    BatchSize::PerIteration,
                )
            });
            for layout in ["segment", "record"] {
                group.bench_with_input(
                    BenchmarkId::new(format!("raw_sled_{layout}_{mode}"), batch),
                    &batch,
                    |b, &batch| {
                        b.iter_batched(
                            || tempfile::tempdir().unwrap(),
                            |dir| {
                                let (db, tree) = raw_tree(dir.path());
                                let mut unflushed = 0;
                                let mut segment = Vec::new();
                                for chunk in records[..events].chunks(batch) {
                                    if layout == "segment" {
                                        segment.clear();
                                        for (_, bytes) in chunk {
                                            segment.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                                            segment.extend_from_slice(bytes);
                                        }
                                        tree.insert(&chunk[0].0[..], &segment[..]).unwrap();
                                    } else {
                                        let mut sled_batch = sled::Batch::default();
                                        for (key, bytes) in chunk {
                                            sled_batch.insert(&key[..], &bytes[..]);
                                        }
                                        tree.apply_batch(sled_batch).unwrap();
                                    }
                                    unflushed += chunk.len();
                                    if matches!(durability, Durability::Strict) || unflushed >= 10_000 {
                                        db.flush().unwrap();
                                        unflushed = 0;
                                    }
                                }
                                db.flush().unwrap();
                                dir
                            },
                            BatchSize::PerIteration,
                        )
                    },
                );
            }
        }
    }
    group.finish();
}

fn read_and_verify(c: &mut Criterion) {
    let drafts = drafts();
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledLog::open(dir.path(), GROUP).unwrap();
        for chunk in drafts.chunks(1024) {
            log.append(&mut chunk.to_vec()).unwrap();
        }
    }
    let mut group = c.benchmark_group("read");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(drafts.len() as u64));
    {
        // Baseline: sled alone walking the same tree and touching every byte.
        let (_db, tree) = raw_tree(dir.path());
        group.bench_function("raw_sled_iter", |b| {
            b.iter(|| tree.iter().map(|e| e.unwrap().1.iter().map(|&b| b as usize).sum::<usize>()).sum::<usize>())
        });
    }
    let log = SledLog::open(dir.path(), Durability::Strict).unwrap();
    group.bench_function("ledger_decode_all", |b| {
        b.iter(|| {
            let mut n = 0u64;
            visit_events(&log, Seq::new(1), &mut |_| {
                n += 1;
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(n as usize, drafts.len());
        })
    });
    group.bench_function("verify", |b| b.iter(|| assert!(matches!(verify(&log).unwrap(), Verdict::Intact { .. }))));
    group.finish();
}

criterion_group!(benches, append, read_and_verify);
criterion_main!(benches);
