//! What a running session shares with its control endpoint ([`crate::control`]): its
//! status, the operator's commands waiting for the next cycle, the seq the ledger is
//! durable through, and a reader of the ledger for `events --follow`.
//!
//! The session loop is the only writer of the ledger: an operator command is queued here,
//! recorded by the loop before its next cycle (made durable), and answered with the seq
//! it was recorded at. Readers never block the loop for longer than a copy of the status.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ledger_core::ids::Seq;
use ledger_core::log::RecordSource;
use ledger_projections::runs::RunSummary;
use serde::{Deserialize, Serialize};

/// An operator's command for the running session. `by` and `reason` are checked
/// ([`crate::commands::kill_switch::operator_text`]) before they get here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum OperatorCommand {
    /// Trip the kill switch: no new positions until it is reset.
    Trip {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// Reset the kill switch.
    Reset {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
}

impl OperatorCommand {
    /// The command as the engine records it.
    pub fn to_engine(&self) -> ledger_core::engine::OperatorCommand {
        use ledger_core::engine::OperatorCommand as Engine;
        match self {
            OperatorCommand::Trip { by, reason } => {
                Engine::Trip { by: by.as_str().into(), reason: reason.as_str().into() }
            }
            OperatorCommand::Reset { by, reason } => {
                Engine::Reset { by: by.as_str().into(), reason: reason.as_str().into() }
            }
        }
    }
}

/// The session's answer to a command: the seq it was recorded at, or why it was not.
pub type CommandReply = Result<Seq, String>;

/// A command waiting for the session loop, with where to send the answer.
pub struct PendingCommand {
    /// The command.
    pub command: OperatorCommand,
    /// Where the loop answers.
    pub reply: Sender<CommandReply>,
}

/// One open position as `ledger status` shows it. Money and quantities are decimal
/// strings (exact), prices in the instrument's quote currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionStatus {
    /// The instrument.
    pub instrument: String,
    /// Signed quantity, instrument units (negative: short).
    pub qty: String,
    /// Average entry price.
    pub avg_price: String,
    /// Last mark price.
    pub mark: String,
    /// Unrealized P&L at the mark, account currency.
    pub unrealized_pnl: String,
}

/// A running session as `ledger status` shows it. Money as decimal strings in the
/// account currency; times UTC nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The run.
    pub run_id: u64,
    /// `Paper`, `Live` or `Replay`.
    pub mode: String,
    /// Process id of the session.
    pub pid: u32,
    /// Wall-clock time the session (this process) started, UTC ns.
    pub started_ns: i64,
    /// Cycles run so far in this run (across restarts).
    pub cycle: u64,
    /// The ledger's last appended seq.
    pub head_seq: u64,
    /// The ledger is durable through this seq.
    pub durable_seq: u64,
    /// Source time of the last tick, UTC ns (0 before the first).
    pub last_tick_ns: i64,
    /// Cycle time (`ts_recorded`) of the last cycle, UTC ns.
    pub last_cycle_ns: i64,
    /// Cash.
    pub cash: String,
    /// Cash plus positions at their marks.
    pub equity: String,
    /// Realized P&L so far.
    pub realized_pnl: String,
    /// Fees paid so far.
    pub fees: String,
    /// Open positions.
    pub positions: Vec<PositionStatus>,
    /// Whether the kill switch is tripped.
    pub kill_switch_tripped: bool,
    /// Orders sent and not yet filled, rejected or canceled.
    pub working_orders: u64,
    /// The NATS outbox (`run --nats`): how far the stream has acknowledged; its lag is
    /// `durable_seq - nats.acked_seq` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<crate::outbox::OutboxStatus>,
}

/// The shared state. See the module docs.
pub struct SessionLink {
    status: Mutex<SessionStatus>,
    runs: Mutex<Vec<RunSummary>>,
    commands: Mutex<VecDeque<PendingCommand>>,
    durable: Mutex<Seq>,
    durable_moved: Condvar,
    reader: Mutex<Box<dyn RecordSource + Send>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Whoever panicked holding it left whole values behind (every write is one assignment).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionLink {
    /// A link for a session whose ledger is read through `reader`, durable through
    /// `durable`.
    pub fn new(reader: Box<dyn RecordSource + Send>, durable: Seq) -> Self {
        SessionLink {
            status: Mutex::new(SessionStatus::default()),
            runs: Mutex::new(Vec::new()),
            commands: Mutex::new(VecDeque::new()),
            durable: Mutex::new(durable),
            durable_moved: Condvar::new(),
            reader: Mutex::new(reader),
        }
    }

    /// The session's status as last published.
    pub fn status(&self) -> SessionStatus {
        lock(&self.status).clone()
    }

    /// Publishes the session's status (the session loop).
    pub fn set_status(&self, status: SessionStatus) {
        *lock(&self.status) = status;
    }

    /// The runs index as last published.
    pub fn runs(&self) -> Vec<RunSummary> {
        lock(&self.runs).clone()
    }

    /// Publishes the runs index (the session loop).
    pub fn set_runs(&self, runs: Vec<RunSummary>) {
        *lock(&self.runs) = runs;
    }

    /// Queues `command` for the session loop; the receiver gets its answer once it is
    /// recorded and durable (or refused).
    pub fn submit(&self, command: OperatorCommand) -> Receiver<CommandReply> {
        let (reply, answer) = mpsc::channel();
        lock(&self.commands).push_back(PendingCommand { command, reply });
        answer
    }

    /// Takes the queued commands, oldest first (the session loop, before each cycle).
    pub fn take_commands(&self) -> Vec<PendingCommand> {
        let mut queue = lock(&self.commands);
        if queue.is_empty() {
            return Vec::new();
        }
        queue.drain(..).collect()
    }

    /// The seq the ledger is durable through.
    pub fn durable(&self) -> Seq {
        *lock(&self.durable)
    }

    /// Publishes a new durable seq and wakes the followers (the session loop, after each
    /// flush).
    pub fn set_durable(&self, seq: Seq) {
        let mut durable = lock(&self.durable);
        if seq > *durable {
            *durable = seq;
            self.durable_moved.notify_all();
        }
    }

    /// Waits up to `timeout` for the ledger to be durable beyond `seq`; returns the
    /// durable seq then (possibly still `seq`).
    pub fn wait_beyond(&self, seq: Seq, timeout: Duration) -> Seq {
        let durable = lock(&self.durable);
        let (durable, _) = self
            .durable_moved
            .wait_timeout_while(durable, timeout, |durable| *durable <= seq)
            .unwrap_or_else(PoisonError::into_inner);
        *durable
    }

    /// Runs `read` with the session's reader of the ledger (one reader at a time).
    pub fn with_reader<T>(&self, read: impl FnOnce(&dyn RecordSource) -> T) -> T {
        let reader = lock(&self.reader);
        read(reader.as_ref())
    }
}
