//! Publishing: the [`EventBus`] trait and the [`Outbox`] that feeds a bus from the log.
//!
//! The log is the source of truth and buses are fed from it, never the other way round:
//! the outbox forwards durable events in sequence order, remembers the last one it
//! published, and so never reorders, drops or repeats one.

use std::ops::ControlFlow;

use thiserror::Error;

use crate::event::Envelope;
use crate::ids::Seq;
use crate::log::{self, LogError, RecordSource};

/// Why an event could not be published.
#[derive(Debug, Error)]
pub enum BusError {
    /// The bus refused or failed; the event stays in the outbox.
    #[error("publishing seq {seq}: {message}")]
    Publish {
        /// The event that was not published.
        seq: Seq,
        /// What the bus said.
        message: String,
    },
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Somewhere events are published: in-process subscribers, NATS JetStream, ...
pub trait EventBus {
    /// Publishes one event. Called in sequence order, each durable event once.
    ///
    /// # Errors
    /// The bus could not take the event; the outbox retries it next time.
    fn publish(&mut self, event: &Envelope) -> Result<(), BusError>;
}

/// Forwards a log's durable events to a bus, in order, each once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outbox {
    published: Seq,
}

impl Outbox {
    /// An outbox that has published everything up to `published` (0: nothing yet).
    pub fn new(published: Seq) -> Self {
        Outbox { published }
    }

    /// The last sequence published.
    pub fn published(&self) -> Seq {
        self.published
    }

    /// Publishes every event of `source` after the last published one up to `durable`
    /// (the log's durable seq: nothing not yet durable is published); returns how many.
    /// Events are read checked ([`log::visit_events`]).
    ///
    /// # Errors
    /// The first bus or log failure; what was published before it stays published.
    pub fn forward(
        &mut self,
        source: &dyn RecordSource,
        durable: Seq,
        bus: &mut dyn EventBus,
    ) -> Result<usize, BusError> {
        if durable <= self.published {
            return Ok(0);
        }
        let mut count = 0;
        let mut failure = None;
        log::visit_events(source, self.published.next(), &mut |event| {
            if event.header.seq > durable {
                return ControlFlow::Break(());
            }
            match bus.publish(&event) {
                Ok(()) => {
                    self.published = event.header.seq;
                    count += 1;
                    ControlFlow::Continue(())
                }
                Err(error) => {
                    failure = Some(error);
                    ControlFlow::Break(())
                }
            }
        })?;
        failure.map_or(Ok(count), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventDraft, Payload, RunStopped};
    use crate::ids::{CycleId, RunId};
    use crate::log::{EventLog, MemLog};
    use crate::time::TimestampNs;

    struct Recorder {
        seqs: Vec<u64>,
        fail_at: Option<u64>,
    }

    impl EventBus for Recorder {
        fn publish(&mut self, event: &Envelope) -> Result<(), BusError> {
            let seq = event.header.seq;
            if self.fail_at == Some(seq.get()) {
                self.fail_at = None;
                return Err(BusError::Publish { seq, message: "down".into() });
            }
            self.seqs.push(seq.get());
            Ok(())
        }
    }

    fn drafts(n: usize) -> Vec<EventDraft> {
        let draft = EventDraft {
            run_id: RunId::new(1),
            cycle_id: CycleId::new(0),
            causation_seq: None,
            ts_event: TimestampNs::from_nanos(0),
            ts_recorded: TimestampNs::from_nanos(0),
            payload: Payload::RunStopped(RunStopped { reason: "x".into(), skipped_rows: 0 }),
        };
        vec![draft; n]
    }

    #[test]
    fn forwards_in_order_once_and_resumes_after_a_failure() {
        let mut log = MemLog::new();
        let mut bus = Recorder { seqs: Vec::new(), fail_at: Some(4) };
        let mut outbox = Outbox::default();
        log.append(&mut drafts(5)).unwrap();
        // TC0: the bus fails at seq 4: 1..=3 are published, 4 stays in the outbox.
        assert!(outbox.forward(&log, log.durable_seq(), &mut bus).is_err());
        assert_eq!(outbox.published(), Seq::new(3));
        // TC1: the next forward resumes at 4; nothing is repeated.
        assert_eq!(outbox.forward(&log, log.durable_seq(), &mut bus).unwrap(), 2);
        log.append(&mut drafts(2)).unwrap();
        // TC2: nothing beyond the durable seq goes out.
        assert_eq!(outbox.forward(&log, Seq::new(6), &mut bus).unwrap(), 1);
        assert_eq!(outbox.forward(&log, log.durable_seq(), &mut bus).unwrap(), 1);
        assert_eq!(bus.seqs, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(outbox.forward(&log, log.durable_seq(), &mut bus).unwrap(), 0);
    }
}
