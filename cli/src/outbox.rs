//! The NATS outbox of a running session (`run --nats`, `replay --nats`): a thread that
//! forwards the ledger's durable events to the stream in seq order, following the
//! durable seq the session loop reports ([`NatsOutbox::durable`]).
//!
//! The session never waits for it: while NATS is down the ledger goes on and the
//! thread retries; when NATS returns it asks the stream where it is
//! ([`NatsLink::position`]) and catches up. Every acknowledged window is recorded in
//! the ledger's `outbox` tree ([`OutboxMark`]), which `ledger status` shows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger_adapters::nats::{ConnectionWatch, NatsLink, NatsOptions, ACK_WINDOW};
use ledger_adapters::sled_log::OutboxMark;
use ledger_core::ids::Seq;
use ledger_core::log::RecordSource;
use serde::{Deserialize, Serialize};

/// The outbox as `ledger status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// The server, without credentials.
    pub url: String,
    /// The stream.
    pub stream: String,
    /// The last seq the stream acknowledged.
    pub acked_seq: u64,
    /// Whether the last attempt reached the stream.
    pub connected: bool,
    /// The last failure, if the last attempt failed.
    pub error: Option<String>,
}

/// What the session and the outbox thread share.
struct Shared {
    durable: Mutex<Seq>,
    moved: Condvar,
    stopping: AtomicBool,
    status: Mutex<OutboxStatus>,
    /// The client's connection, once there is one.
    connection: Mutex<Option<ConnectionWatch>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write under these locks is one assignment: a panic leaves whole values.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The outbox thread of a session. See the module docs.
pub struct NatsOutbox {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// How long the outbox gathers durable events before it publishes a window that is
/// not full.
pub const LINGER: Duration = Duration::from_millis(2);

/// Longest wait between two attempts while NATS is down.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl NatsOutbox {
    /// Starts forwarding the ledger `ledger_id`, read through `reader`, to the stream of
    /// `options`; the ledger is durable through `durable` now.
    pub fn start(
        options: NatsOptions,
        ledger_id: String,
        reader: Box<dyn RecordSource + Send>,
        mark: OutboxMark,
        durable: Seq,
    ) -> NatsOutbox {
        let acked = mark.acked().unwrap_or(Seq::ZERO);
        let status = OutboxStatus {
            url: options.display_url(),
            stream: options.stream.clone(),
            acked_seq: acked.get(),
            connected: false,
            error: None,
        };
        let shared = Arc::new(Shared {
            durable: Mutex::new(durable),
            moved: Condvar::new(),
            stopping: AtomicBool::new(false),
            status: Mutex::new(status),
            connection: Mutex::new(None),
        });
        let worker = Worker { shared: Arc::clone(&shared), options, ledger_id, reader, mark, acked };
        let thread = std::thread::Builder::new().name("ledger-outbox".into()).spawn(move || worker.run());
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(error) => {
                lock(&shared.status).error = Some(format!("the outbox thread could not be started: {error}"));
                None
            }
        };
        NatsOutbox { shared, thread }
    }

    /// The ledger is durable through `seq`: the thread may publish up to it.
    pub fn durable(&self, seq: Seq) {
        let mut durable = lock(&self.shared.durable);
        if seq > *durable {
            *durable = seq;
            self.shared.moved.notify_all();
        }
    }

    /// The outbox's state now (`connected` as the client is now: an outage shows before
    /// the publishes it stops have timed out).
    pub fn status(&self) -> OutboxStatus {
        let mut status = lock(&self.shared.status).clone();
        if let Some(watch) = lock(&self.shared.connection).as_ref() {
            status.connected &= watch.is_connected();
        }
        status
    }

    /// The session is over, durable through `durable`: waits up to `patience` for the
    /// stream to acknowledge everything, stops the thread and returns the final state.
    pub fn finish(mut self, durable: Seq, patience: Duration) -> OutboxStatus {
        self.durable(durable);
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            let status = self.status();
            if status.acked_seq >= durable.get() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        self.status()
    }

    fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.moved.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join(); // a panic there is a bug; the ledger is unaffected
        }
    }
}

impl Drop for NatsOutbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread's side.
struct Worker {
    shared: Arc<Shared>,
    options: NatsOptions,
    ledger_id: String,
    reader: Box<dyn RecordSource + Send>,
    mark: OutboxMark,
    acked: Seq,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// Waits (up to `timeout`) until the ledger is durable beyond the acked seq, or the
    /// session stops; returns the durable seq.
    fn wait_for_work(&self, timeout: Duration) -> Seq {
        let durable = lock(&self.shared.durable);
        let (durable, _) = self
            .shared
            .moved
            .wait_timeout_while(durable, timeout, |d| *d <= self.acked && !self.stopping())
            .unwrap_or_else(PoisonError::into_inner);
        *durable
    }

    fn failed(&self, error: &dyn std::fmt::Display, backoff: &mut Duration) {
        let text = error.to_string();
        let mut status = lock(&self.shared.status);
        if status.error.as_deref() != Some(text.as_str()) {
            tracing::warn!(error = %text, "NATS outbox: publishing waits (trading goes on)");
        }
        status.connected = false;
        status.error = Some(text);
        drop(status);
        // Sleep in slices so that a stop is seen.
        let until = Instant::now() + *backoff;
        while Instant::now() < until && !self.stopping() {
            std::thread::sleep(Duration::from_millis(20));
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }

    fn record(&mut self, seq: Seq) {
        self.acked = seq;
        if let Err(error) = self.mark.record(seq) {
            tracing::warn!(%error, "NATS outbox: recording the acknowledged seq {seq} in the ledger failed");
        }
    }

    fn run(mut self) {
        let mut link: Option<NatsLink> = None;
        let mut positioned = false;
        let mut backoff = Duration::from_millis(50);
        loop {
            let durable = self.wait_for_work(Duration::from_millis(100));
            if self.stopping() {
                // `finish` has waited as long as the session would for the stream.
                break;
            }
            let Some(nats) = link.as_ref() else {
                match NatsLink::connect(&self.options, true) {
                    Ok(connected) => {
                        *lock(&self.shared.connection) = Some(connected.watch());
                        link = Some(connected);
                    }
                    Err(error) => self.failed(&error, &mut backoff),
                }
                continue;
            };
            if !positioned {
                match nats.ensure_stream().and_then(|()| nats.position(&self.ledger_id, &*self.reader)) {
                    Ok(position) => {
                        self.record(position);
                        positioned = true;
                        let mut status = lock(&self.shared.status);
                        (status.acked_seq, status.connected, status.error) = (position.get(), true, None);
                    }
                    Err(error) if error.is_transient() => self.failed(&error, &mut backoff),
                    Err(error) => {
                        // The stream is not this ledger's replica: nothing is published.
                        tracing::error!(%error, "NATS outbox: stopped; the ledger goes on without it");
                        lock(&self.shared.status).error = Some(error.to_string());
                        return;
                    }
                }
                continue;
            }
            if durable <= self.acked {
                continue;
            }
            // A paced session makes a few events durable every cycle: gathering them for
            // a moment (Kafka's linger) sends fewer, fuller windows and wakes this thread
            // and the client's far less often, for a few milliseconds of lag.
            let durable = if durable.get() - self.acked.get() < ACK_WINDOW as u64 && !self.stopping() {
                std::thread::sleep(LINGER);
                *lock(&self.shared.durable)
            } else {
                durable
            };
            let shared = Arc::clone(&self.shared);
            let result = nats.publish_range(&self.ledger_id, &*self.reader, self.acked.next(), durable, &mut |seq| {
                lock(&shared.status).acked_seq = seq.get();
            });
            let reached = Seq::new(lock(&self.shared.status).acked_seq);
            match result {
                Ok(last) => {
                    self.record(last);
                    backoff = Duration::from_millis(50);
                    let mut status = lock(&self.shared.status);
                    (status.connected, status.error) = (true, None);
                }
                Err(error) => {
                    if reached > self.acked {
                        self.record(reached);
                    }
                    positioned = false;
                    if !error.is_transient() {
                        tracing::error!(%error, "NATS outbox: stopped; the ledger goes on without it");
                        lock(&self.shared.status).error = Some(error.to_string());
                        return;
                    }
                    self.failed(&error, &mut backoff);
                }
            }
        }
    }
}
