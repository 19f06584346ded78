//! The in-process bus, the embedded default for publishing: every subscriber gets its own
//! copy of each published event on a channel, in order.

use std::sync::mpsc::{self, Receiver, Sender};

use ledger_core::bus::{BusError, EventBus};
use ledger_core::event::Envelope;

/// Broadcasts events to in-process subscribers.
#[derive(Debug, Default)]
pub struct InProcessBus {
    subscribers: Vec<Sender<Envelope>>,
}

impl InProcessBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new subscriber: receives every event published from now on, in order.
    pub fn subscribe(&mut self) -> Receiver<Envelope> {
        let (sender, receiver) = mpsc::channel();
        self.subscribers.push(sender);
        receiver
    }
}

impl EventBus for InProcessBus {
    fn publish(&mut self, event: &Envelope) -> Result<(), BusError> {
        // A subscriber that hung up has left; the others still get the event.
        self.subscribers.retain(|subscriber| subscriber.send(event.clone()).is_ok());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::bus::Outbox;
    use ledger_core::event::{EventDraft, Payload, RunStopped};
    use ledger_core::ids::{CycleId, RunId};
    use ledger_core::log::{EventLog, MemLog};
    use ledger_core::time::TimestampNs;

    #[test]
    fn every_subscriber_gets_every_event_in_order() {
        let mut log = MemLog::new();
        let draft = EventDraft {
            run_id: RunId::new(1),
            cycle_id: CycleId::new(0),
            causation_seq: None,
            ts_event: TimestampNs::from_nanos(0),
            ts_recorded: TimestampNs::from_nanos(0),
            payload: Payload::RunStopped(RunStopped { reason: "x".into(), skipped_rows: 0 }),
        };
        log.append(&mut vec![draft; 3]).unwrap();
        let mut bus = InProcessBus::new();
        let (a, b) = (bus.subscribe(), bus.subscribe());
        drop(b); // one subscriber leaves
        let c = bus.subscribe();
        Outbox::default().forward(&log, log.durable_seq(), &mut bus).unwrap();
        for receiver in [a, c] {
            let seqs: Vec<u64> = receiver.try_iter().map(|e| e.header.seq.get()).collect();
            assert_eq!(seqs, [1, 2, 3]);
        }
    }
}
