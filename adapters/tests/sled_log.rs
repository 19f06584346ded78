//! The sled log: gapless sequences across reopen, durability, snapshots, locking, reads
//! beside a writer, and `verify` and checked reads catching any tampering at the right
//! sequence.

use std::ops::ControlFlow;

use ledger_adapters::sled_log::{raw, Durability, SledLog};
use ledger_core::event::*;
use ledger_core::ids::{CycleId, InstrumentId, RunId, Seq};
use ledger_core::log::{visit_events, EventLog, LogError};
use ledger_core::time::TimestampNs;
use ledger_core::verify::{verify, verify_range, Problem, Verdict};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn tick(run: u64, n: i64) -> EventDraft {
    let price = Decimal::new(10_000 + n, 2);
    EventDraft {
        run_id: RunId::new(run),
        cycle_id: CycleId::new(n as u64),
        causation_seq: None,
        ts_event: TimestampNs::from_nanos(n * 1_000_000_000),
        ts_recorded: TimestampNs::from_nanos(n * 1_000_000_000),
        payload: Payload::MarketTick(MarketTick {
            instrument: InstrumentId::new("SPY").unwrap(),
            data: TickData::Trade(Trade { price, size: Decimal::ONE, aggressor: None }),
        }),
    }
}

/// The seqs of up to `limit` events from `from`, read checked.
fn read_seqs(log: &SledLog, from: u64, limit: usize) -> Result<Vec<u64>, LogError> {
    let mut seqs = Vec::new();
    visit_events(log, Seq::new(from), &mut |e| {
        seqs.push(e.header.seq.get());
        if seqs.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(seqs)
}

fn ticks(run: u64, range: std::ops::Range<i64>) -> Vec<EventDraft> {
    range.map(|n| tick(run, n)).collect()
}

fn stop(run: u64) -> EventDraft {
    EventDraft {
        payload: Payload::RunStopped(RunStopped { reason: "end of data".into(), skipped_rows: 0 }),
        ..tick(run, 99)
    }
}

#[test]
fn reopen_keeps_head_and_sequences_stay_gapless() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let mut log = SledLog::open(dir.path(), Durability::Strict).unwrap();
        let receipt = log.append(&mut ticks(1, 0..3)).unwrap();
        assert_eq!((receipt.first, receipt.last, receipt.durable_through), (Seq::new(1), Seq::new(3), Seq::new(3)));
        log.head()
    };
    let mut log = SledLog::open(dir.path(), Durability::Strict).unwrap();
    assert_eq!(log.head(), head);
    let receipt = log.append(&mut ticks(1, 3..5)).unwrap();
    assert_eq!((receipt.first, receipt.last), (Seq::new(4), Seq::new(5)));
    assert_eq!(read_seqs(&log, 1, 100).unwrap(), [1, 2, 3, 4, 5]);
    assert!(matches!(verify(&log).unwrap(), Verdict::Intact { records: 5, .. }));
}

#[test]
fn group_durability_acknowledges_only_flushed_events() {
    let dir = tempfile::tempdir().unwrap();
    let group = Durability::Group { max_events: 4, max_delay: std::time::Duration::from_secs(3600) };
    let mut log = SledLog::open(dir.path(), group).unwrap();
    // TC0: below the event threshold nothing is durable yet.
    assert_eq!(log.append(&mut ticks(1, 0..3)).unwrap().durable_through, Seq::ZERO);
    // TC1: crossing it flushes everything appended so far.
    assert_eq!(log.append(&mut ticks(1, 3..4)).unwrap().durable_through, Seq::new(4));
    // TC2: sync flushes the rest.
    log.append(&mut ticks(1, 4..5)).unwrap();
    assert_eq!(log.durable_seq(), Seq::new(4));
    assert_eq!(log.sync().unwrap(), Seq::new(5));
}

#[test]
fn a_reader_reads_while_the_log_appends_and_snapshots_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledLog::open(dir.path(), Durability::GROUP_DEFAULT).unwrap();
        log.append(&mut ticks(1, 0..4)).unwrap();
        let reader = log.reader().unwrap();
        let writer = std::thread::scope(|scope| {
            let appends = scope.spawn(|| {
                for n in 0..50 {
                    log.append(&mut ticks(1, 4 + n..5 + n)).unwrap();
                }
            });
            // Every read sees a chained prefix of the log, whatever the writer is doing.
            while !appends.is_finished() {
                let seqs = read_seqs_from(&*reader);
                assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
            }
            appends.join()
        });
        writer.unwrap();
        assert_eq!(read_seqs_from(&*reader).len(), 54);
        log.put_snapshot("runs", b"state at 54").unwrap();
        log.append(&mut vec![stop(1)]).unwrap();
    }
    let log = SledLog::open(dir.path(), Durability::Strict).unwrap();
    assert_eq!(log.snapshot("runs").unwrap().as_deref(), Some(&b"state at 54"[..]));
    assert_eq!(log.snapshot("other").unwrap(), None);
    assert_eq!(log.head().seq, Seq::new(55));
}

/// The database is closed and reopened under readers and a writer (every 2 KiB here,
/// every 32 MiB by default): appends, reads from another thread, snapshots and verify
/// all carry on across reopens.
#[test]
fn reopening_the_database_under_readers_and_a_writer_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let group = Durability::Group { max_events: 5, max_delay: std::time::Duration::from_secs(3600) };
    let mut log = SledLog::open(dir.path(), group).unwrap().reopen_every(2048);
    let reader = log.reader().unwrap();
    std::thread::scope(|scope| {
        let appends = scope.spawn(|| {
            for n in 0..300 {
                log.append(&mut ticks(1, n..n + 1)).unwrap();
                if n % 50 == 0 {
                    log.put_snapshot("runs", format!("at {n}").as_bytes()).unwrap();
                }
            }
            log.sync().unwrap();
        });
        while !appends.is_finished() {
            let seqs = read_seqs_from(&*reader);
            assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        }
        appends.join().unwrap();
    });
    assert_eq!(read_seqs_from(&*reader).len(), 300);
    assert!(matches!(verify(&log).unwrap(), Verdict::Intact { records: 300, .. }));
    assert_eq!(log.snapshot("runs").unwrap().as_deref(), Some(&b"at 250"[..]));
    drop(reader);
    drop(log);
    let log = SledLog::open(dir.path(), Durability::Strict).unwrap();
    assert_eq!(log.head().seq, Seq::new(300));
}

fn read_seqs_from(source: &dyn ledger_core::log::RecordSource) -> Vec<u64> {
    let mut seqs = Vec::new();
    visit_events(source, Seq::new(1), &mut |e| {
        seqs.push(e.header.seq.get());
        ControlFlow::Continue(())
    })
    .unwrap();
    seqs
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledLog::open(dir.path(), Durability::Strict).unwrap();
    let second = SledLog::open(dir.path(), Durability::Strict);
    assert!(matches!(second, Err(LogError::Locked { .. })), "{:?}", second.err());
}

/// Builds a closed ledger of `n` events, appended 3 at a time (so segments of 3
/// records under keys 1, 4, 7, ...), and returns its directory.
fn ledger_of(n: i64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SledLog::open(dir.path(), Durability::GROUP_DEFAULT).unwrap();
    for chunk in ticks(1, 0..n).chunks(3) {
        log.append(&mut chunk.to_vec()).unwrap();
    }
    dir
}

/// Every stored segment: the seq of its first record and its bytes.
fn segments(dir: &tempfile::TempDir) -> Vec<(u64, Vec<u8>)> {
    let (_db, events) = raw::events_tree(dir.path()).unwrap();
    events
        .iter()
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (u64::from_be_bytes(key.as_ref().try_into().unwrap()), value.to_vec())
        })
        .collect()
}

/// The seq of the record whose bytes (length prefix included) hold `offset`.
fn seq_at(first: u64, segment: &[u8], offset: usize) -> u64 {
    let (mut start, mut index) = (0usize, 0u64);
    loop {
        let len = u32::from_le_bytes(segment[start..start + 4].try_into().unwrap()) as usize;
        if offset < start + 4 + len {
            return first + index;
        }
        start += 4 + len;
        index += 1;
    }
}

fn rewrite(dir: &tempfile::TempDir, change: impl FnOnce(&sled::Tree)) {
    let (_db, events) = raw::events_tree(dir.path()).unwrap();
    change(&events);
    events.flush().unwrap();
}

/// A ledger of `n` events with one byte of one segment changed (`xor`); returns it and
/// the seq of the record holding that byte.
fn ledger_with_a_flipped_byte(
    n: i64,
    pick: prop::sample::Index,
    byte: prop::sample::Index,
    xor: u8,
) -> (tempfile::TempDir, u64) {
    let dir = ledger_of(n);
    let all = segments(&dir);
    let (first, mut segment) = all[pick.index(all.len())].clone();
    let at = byte.index(segment.len());
    let victim = seq_at(first, &segment, at);
    segment[at] ^= xor;
    rewrite(&dir, |events| {
        events.insert(first.to_be_bytes(), segment).unwrap();
    });
    (dir, victim)
}

fn verdict_of(dir: &tempfile::TempDir) -> Verdict {
    verify(&SledLog::open(dir.path(), Durability::Strict).unwrap()).unwrap()
}

fn broken_at(verdict: Verdict) -> (u64, Problem) {
    match verdict {
        Verdict::Broken(failure) => (failure.seq.get(), failure.problem),
        intact => panic!("tampering went unnoticed: {intact:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// A range checked on its own (what `rebuild` reads) names a changed byte inside it
    /// at the record holding it, and one after it does not concern it: it is intact and
    /// hands over exactly its events. (A range after the change may or may not be
    /// readable: a changed length prefix unframes the rest of its segment.)
    #[test]
    fn a_range_is_checked_as_the_whole_ledger_is(
        n in 2i64..12, pick in any::<prop::sample::Index>(), byte in any::<prop::sample::Index>(), xor in 1u8..,
        from in any::<prop::sample::Index>(), to in any::<prop::sample::Index>(),
    ) {
        let (dir, victim) = ledger_with_a_flipped_byte(n, pick, byte, xor);
        let log = SledLog::open(dir.path(), Durability::Strict).unwrap();
        let head = log.head().seq.get().max(victim);
        let (a, b) = (from.index(head as usize) as u64 + 1, to.index(head as usize) as u64 + 1);
        let (first, last) = (a.min(b), a.max(b));
        let mut seen = Vec::new();
        let mut keep = |e: &ledger_core::event::Envelope| seen.push(e.header.seq.get());
        let verdict = verify_range(&log, Seq::new(first), Seq::new(last), Some(&mut keep)).unwrap();
        if victim >= first && victim <= last {
            prop_assert_eq!(broken_at(verdict).0, victim);
        } else if last < victim {
            prop_assert!(matches!(verdict, Verdict::Intact { records, .. } if records == last - first + 1), "{verdict:?}");
            prop_assert_eq!(seen, (first..=last).collect::<Vec<_>>());
        }
    }

    #[test]
    fn changing_any_byte_fails_verify_at_the_record_holding_it(
        n in 2i64..12, pick in any::<prop::sample::Index>(), byte in any::<prop::sample::Index>(), xor in 1u8..
    ) {
        let (dir, victim) = ledger_with_a_flipped_byte(n, pick, byte, xor);
        let (seq, _) = broken_at(verdict_of(&dir));
        prop_assert_eq!(seq, victim);
    }

    #[test]
    fn deleting_any_segment_fails_verify_at_its_first_seq(n in 2i64..12, pick in any::<prop::sample::Index>()) {
        let dir = ledger_of(n);
        let all = segments(&dir);
        let victim = all[pick.index(all.len())].0;
        rewrite(&dir, |events| {
            events.remove(victim.to_be_bytes()).unwrap();
        });
        let (seq, problem) = broken_at(verdict_of(&dir));
        prop_assert_eq!(seq, victim);
        prop_assert!(matches!(problem, Problem::Gap { .. } | Problem::MissingTail { .. }), "{:?}", problem);
    }

    #[test]
    fn swapping_two_segments_fails_verify_at_the_first(n in 4i64..12, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let dir = ledger_of(n);
        let all = segments(&dir);
        let (a, b) = (&all[a.index(all.len())], &all[b.index(all.len())]);
        prop_assume!(a.0 != b.0);
        rewrite(&dir, |events| {
            events.insert(a.0.to_be_bytes(), b.1.clone()).unwrap();
            events.insert(b.0.to_be_bytes(), a.1.clone()).unwrap();
        });
        let (seq, _) = broken_at(verdict_of(&dir));
        prop_assert_eq!(seq, a.0.min(b.0));
    }
}

#[test]
fn a_cut_tail_is_reported_and_blocks_appends() {
    let dir = ledger_of(5); // segments at 1 (seqs 1-3) and 4 (seqs 4-5)
    rewrite(&dir, |events| {
        events.remove(4u64.to_be_bytes()).unwrap();
    });
    let mut log = SledLog::open(dir.path(), Durability::Strict).unwrap();
    let (seq, problem) = broken_at(verify(&log).unwrap());
    assert_eq!((seq, problem), (4, Problem::MissingTail { recorded_head: Seq::new(5) }));
    assert!(matches!(log.append(&mut ticks(1, 9..10)), Err(LogError::TailMissing { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Reads check what they show: a changed byte anywhere makes every read that covers
    /// it fail, naming the record (not only `verify`).
    #[test]
    fn reads_refuse_a_changed_record(n in 2i64..10, pick in any::<prop::sample::Index>(), byte in any::<prop::sample::Index>(), xor in 1u8..) {
        let (dir, victim) = ledger_with_a_flipped_byte(n, pick, byte, xor);
        let log = SledLog::open(dir.path(), Durability::Strict).unwrap();
        let error = read_seqs(&log, 1, usize::MAX).unwrap_err();
        let named = match error {
            LogError::HashMismatch { seq } | LogError::Gap { expected: seq, .. } | LogError::Codec { seq, .. } => seq.get(),
            other => panic!("unexpected {other:?}"),
        };
        prop_assert_eq!(named, victim);
    }
}

#[test]
fn reads_start_inside_a_segment() {
    let dir = ledger_of(10);
    let log = SledLog::open(dir.path(), Durability::Strict).unwrap();
    assert_eq!(read_seqs(&log, 5, 3).unwrap(), [5, 6, 7]);
}
