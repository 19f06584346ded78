//! A log whose appends run on a second thread, so that encoding, hashing and storing a
//! batch overlap with the engine computing the next cycles (two cores, two stages).
//!
//! The background log is the single writer of the log it wraps: it knows the next
//! sequence without waiting, checks `expected_head` itself, encodes the batch on the
//! caller's thread ([`BatchEncoder::prepare`]) and hands drafts and encoding to the writer
//! thread by moving them (no copy); the writer chains, hashes and stores. The two halves
//! of the work are about equal, which is what makes two cores pay. A bounded queue keeps the engine at most
//! [`QUEUE_BATCHES`] batches ahead. Reads, `head`, `sync` and `durable_seq` first wait
//! until every queued batch is stored. A write that fails is reported by the next call,
//! and no later batch is written after it.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use ledger_core::event::EventDraft;
use ledger_core::ids::Seq;
use ledger_core::log::{AppendReceipt, BatchEncoder, EventLog, Head, LogError, PreparedAppend, RecordSource};

/// A batch on its way to the writer and back: drafts and their prepared encoding.
type Work = (Vec<EventDraft>, BatchEncoder);

/// Batches that may wait for the writer before `append` blocks.
pub const QUEUE_BATCHES: usize = 4;

/// What the writer thread shares with the engine's thread.
struct Shared<L> {
    log: Mutex<L>,
    /// Batches queued but not yet stored, and the first write error.
    state: Mutex<WriterState>,
    settled: Condvar,
}

#[derive(Default)]
struct WriterState {
    in_flight: usize,
    failure: Option<String>,
    /// The wrapped log's durable seq after the last stored batch.
    durable: Seq,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on the writer thread is a broken invariant; the state it guarded is still
    // the best account of what was written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An [`EventLog`] that appends on a writer thread. See the module docs.
pub struct BackgroundLog<L: PreparedAppend + Send + 'static> {
    shared: Arc<Shared<L>>,
    queue: Option<SyncSender<Work>>,
    recycled: Receiver<Work>,
    writer: Option<JoinHandle<()>>,
    next_head: Seq,
}

impl<L: PreparedAppend + Send + 'static> BackgroundLog<L> {
    /// Wraps `log`, starting its writer thread.
    pub fn new(log: L) -> Self {
        let next_head = log.head().seq;
        let state = WriterState { durable: log.durable_seq(), ..WriterState::default() };
        let shared = Arc::new(Shared { log: Mutex::new(log), state: Mutex::new(state), settled: Condvar::new() });
        let (queue, batches) = mpsc::sync_channel::<Work>(QUEUE_BATCHES);
        let (give_back, recycled) = mpsc::channel();
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                for (batch, mut encoder) in batches {
                    let failed = lock(&writer_shared.state).failure.is_some();
                    if !failed {
                        let result = lock(&writer_shared.log).append_prepared(&mut encoder);
                        let mut state = lock(&writer_shared.state);
                        match result {
                            Ok(receipt) => state.durable = receipt.durable_through,
                            Err(error) => state.failure = Some(error.to_string()),
                        }
                    }
                    // The drafts go back whole and are dropped on the engine's thread: their
                    // shared strings' reference counts then never bounce between cores.
                    let _ = give_back.send((batch, encoder)); // the engine may have gone: nothing to recycle for
                    let mut state = lock(&writer_shared.state);
                    state.in_flight -= 1;
                    writer_shared.settled.notify_all();
                }
            })
            .ok();
        BackgroundLog { shared, queue: writer.as_ref().map(|_| queue), recycled, writer, next_head }
    }

    /// Stops the writer after every queued batch is stored and returns the wrapped log.
    ///
    /// # Errors
    /// [`LogError::WriterStopped`] if a queued write failed (the log keeps everything
    /// stored before the failure, and is dropped, flushing it).
    pub fn into_inner(mut self) -> Result<L, LogError> {
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join(); // a panic there is reported below as a missing log
        }
        let shared = Arc::clone(&self.shared);
        drop(self);
        let shared = Arc::try_unwrap(shared)
            .map_err(|_| LogError::WriterStopped("the writer thread still holds the log".into()))?;
        if let Some(failure) = shared.state.into_inner().unwrap_or_else(PoisonError::into_inner).failure {
            return Err(LogError::WriterStopped(failure));
        }
        Ok(shared.log.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until every queued batch is stored; reports a failed write.
    fn settle(&self) -> Result<MutexGuard<'_, L>, LogError> {
        let mut state = lock(&self.shared.state);
        while state.in_flight > 0 {
            state = self.shared.settled.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if let Some(failure) = &state.failure {
            return Err(LogError::WriterStopped(failure.clone()));
        }
        drop(state);
        Ok(lock(&self.shared.log))
    }
}

impl<L: PreparedAppend + Send + 'static> EventLog for BackgroundLog<L> {
    fn append(&mut self, batch: &mut Vec<EventDraft>) -> Result<AppendReceipt, LogError> {
        let Some(queue) = &self.queue else {
            return Err(LogError::WriterStopped("the writer thread could not be started".into()));
        };
        if let Some(failure) = &lock(&self.shared.state).failure {
            return Err(LogError::WriterStopped(failure.clone()));
        }
        let first = self.next_head.next();
        let (spare, mut encoder) = match self.recycled.try_recv() {
            Ok((mut spare, encoder)) => {
                spare.clear();
                (spare, encoder)
            }
            Err(_) => (Vec::with_capacity(batch.capacity()), BatchEncoder::default()),
        };
        encoder.prepare(first, batch)?;
        let last = self.next_head.plus(batch.len() as u64);
        let drafts = std::mem::replace(batch, spare);
        lock(&self.shared.state).in_flight += 1;
        if let Err(mpsc::SendError((drafts, _))) = queue.send((drafts, encoder)) {
            lock(&self.shared.state).in_flight -= 1;
            *batch = drafts;
            return Err(LogError::WriterStopped("the writer thread stopped".into()));
        }
        self.next_head = last;
        let durable_through = lock(&self.shared.state).durable;
        Ok(AppendReceipt { first, last, durable_through })
    }

    fn head(&self) -> Head {
        match self.settle() {
            Ok(log) => log.head(),
            // The head of what was stored; the failure is reported by the next append.
            Err(_) => lock(&self.shared.log).head(),
        }
    }

    fn durable_seq(&self) -> Seq {
        lock(&self.shared.state).durable
    }

    fn sync(&mut self) -> Result<Seq, LogError> {
        let durable = self.settle()?.sync()?;
        lock(&self.shared.state).durable = durable;
        Ok(durable)
    }

    fn reader(&self) -> Result<Box<dyn RecordSource + Send>, LogError> {
        lock(&self.shared.log).reader()
    }

    /// Waits for the queued batches (a snapshot is written after the events it covers),
    /// then writes it on this thread: snapshots are rare, the stall is short.
    fn put_snapshot(&mut self, name: &str, bytes: &[u8]) -> Result<(), LogError> {
        self.settle()?.put_snapshot(name, bytes)
    }
}

impl<L: PreparedAppend + Send + 'static> Drop for BackgroundLog<L> {
    /// Closes the queue and waits for the writer, so nothing queued is lost.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::event::{Payload, RunStopped};
    use ledger_core::ids::{CycleId, RunId};
    use ledger_core::log::MemLog;
    use ledger_core::log::RecordSource;
    use ledger_core::time::TimestampNs;
    use ledger_core::verify::{verify, Verdict};

    fn drafts(n: usize) -> Vec<EventDraft> {
        (0..n)
            .map(|i| EventDraft {
                run_id: RunId::new(1),
                cycle_id: CycleId::new(i as u64),
                causation_seq: None,
                ts_event: TimestampNs::from_nanos(i as i64),
                ts_recorded: TimestampNs::from_nanos(i as i64),
                payload: Payload::RunStopped(RunStopped { reason: "x".into(), skipped_rows: 0 }),
            })
            .collect()
    }

    #[test]
    fn background_appends_equal_direct_appends_byte_for_byte() {
        let mut direct = MemLog::new();
        let mut background = BackgroundLog::new(MemLog::new());
        for chunk in drafts(1000).chunks(7) {
            direct.append(&mut chunk.to_vec()).unwrap();
            let mut owned = chunk.to_vec();
            let receipt = background.append(&mut owned).unwrap();
            assert!(owned.is_empty());
            assert_eq!(receipt.last, direct.head().seq);
        }
        assert_eq!(background.head(), direct.head());
        let reader = background.reader().unwrap();
        assert!(matches!(verify(&*reader).unwrap(), Verdict::Intact { records: 1000, .. }));
        let stored = background.into_inner().unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        stored
            .visit_records(Seq::new(1), &mut |_, r| {
                a.extend_from_slice(r);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        direct
            .visit_records(Seq::new(1), &mut |_, r| {
                b.extend_from_slice(r);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_batch_that_does_not_encode_is_refused_whole() {
        // An event whose causation is not before it cannot be encoded: the append fails
        // on the caller's thread, before anything is queued.
        let mut background = BackgroundLog::new(MemLog::new());
        background.append(&mut drafts(3)).unwrap();
        let mut bad = drafts(1);
        bad[0].causation_seq = Some(Seq::new(10));
        assert!(matches!(background.append(&mut bad), Err(LogError::Encode { .. })));
        assert_eq!(bad.len(), 1, "a refused batch is left as it was");
        assert_eq!(background.head().seq, Seq::new(3));
    }
}
