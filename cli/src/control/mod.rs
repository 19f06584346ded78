//! The local control endpoint of a running session, and its client.
//!
//! A session (`ledger run`) holds sled's exclusive lock on the data directory, so no other
//! process can open the ledger while it runs. The session serves what the other commands
//! need over a Unix socket in the data directory instead:
//!
//! - `<data_dir>/control.sock`: the socket, mode 0600.
//! - `<data_dir>/control.token`: 32 random bytes as 64 hex digits, mode 0600, written
//!   before the socket is bound. Every request carries it, so only who can read the file
//!   (its owner) can talk to the session, whatever the socket's permissions were for the
//!   moment between `bind` and `chmod`.
//!
//! Both are removed when the session ends. A killed session leaves them behind: the next
//! session removes them before it binds (it holds the sled lock, so the path is its own),
//! and a client that finds the socket refusing connections takes it for what it is: no
//! session running.
//!
//! # Protocol
//!
//! A client sends one request per line, a JSON object ([`RequestLine`]): `{"token":
//! "<64 hex digits>", "request": {"type": "status"}}`; the session answers with JSON lines
//! ([`Response`], externally tagged): `{"status": {...}}`, `{"error": "..."}`. A
//! connection may carry several requests, one after the other. A line is at most
//! [`MAX_REQUEST_BYTES`]; a longer one, a line that is not JSON, or a wrong or missing
//! token gets an `error` line and the connection is closed. A request the session does
//! not understand gets an `error` line and the connection stays open.
//!
//! | request | answer |
//! |---|---|
//! | `{"type": "status"}` | `{"status": SessionStatus}` |
//! | `{"type": "runs"}` | `{"runs": [RunSummary, ...]}` |
//! | `{"type": "kill_switch", "command": "trip"\|"reset", "by": ..., "reason": ...}` | `{"recorded": SEQ}`, `{"refused": "why"}` or `{"error": "..."}` |
//! | `{"type": "events", "from": SEQ, "run": ID?, "limit": N?, "follow": BOOL}` | `{"event": Envelope}` lines, then `{"end": {"next": SEQ, "session_ended": BOOL}}` |
//!
//! Events are sent once they are durable, each checked against the hash chain as it is
//! read. With `follow` the stream goes on as the session makes more events durable, until
//! the limit is reached (`end` with `session_ended: false`), the session stops (`end`
//! with `session_ended: true`: read on from the ledger itself, from `next`) or the client
//! goes away. A damaged record ends the stream with an `error` line naming its seq.
//!
//! # Layout
//!
//! - [`server`]: the session's side, [`Server`], on its own threads.
//! - [`client`]: the commands' side, [`Client`].
//! - here: the protocol's types, the file names, and [`locked`], the one place that turns
//!   sled's "locked by another process" into "a session is running".

pub mod client;
pub mod server;

use std::fmt;
use std::path::Path;

use ledger_core::event::Envelope;
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::LogError;
use ledger_projections::runs::RunSummary;
use serde::{Deserialize, Serialize};

use crate::describe;
use crate::session_link::{OperatorCommand, SessionStatus};

pub use client::Client;
pub use server::Server;

/// The socket's file name in the data directory.
pub const SOCKET_FILE: &str = "control.sock";
/// The token's file name in the data directory.
pub const TOKEN_FILE: &str = "control.token";
/// Longest request line, bytes (the newline included).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// One request line: the token from [`TOKEN_FILE`] and what is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    /// The session's token, 64 hex digits.
    pub token: String,
    /// What is asked.
    pub request: Request,
}

/// What a client can ask a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// The session's status: answered with [`Response::Status`].
    Status,
    /// The runs index as the session last published it: [`Response::Runs`].
    Runs,
    /// Trip or reset the kill switch: [`Response::Recorded`] once the session has recorded
    /// the event and made it durable, [`Response::Refused`] if it would not.
    KillSwitch(OperatorCommand),
    /// Durable events: [`Response::Event`] lines, then [`Response::End`].
    Events(EventsRequest),
}

/// Which events, and whether to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsRequest {
    /// First seq (values below 1 read from 1).
    pub from: Seq,
    /// Only this run's events.
    #[serde(default)]
    pub run: Option<RunId>,
    /// At most this many events in all.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Go on as more events become durable.
    #[serde(default)]
    pub follow: bool,
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The session's status.
    Status(Box<SessionStatus>),
    /// The runs index.
    Runs(Vec<RunSummary>),
    /// The command was recorded at this seq, and is durable.
    Recorded(Seq),
    /// The session would not do it (e.g. the kill switch is already tripped).
    Refused(String),
    /// One durable event.
    Event(Box<Envelope>),
    /// The end of an events answer.
    End(EventsEnd),
    /// The request failed, or was refused before it was read (token, malformed line).
    Error(String),
}

/// How an events answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsEnd {
    /// The next seq to read: every event before it was sent or skipped by the filter.
    pub next: Seq,
    /// The session is stopping: more events may follow, read from the ledger itself. When
    /// false the request is done (its range or limit is exhausted).
    pub session_ended: bool,
}

/// A command met the data directory held by a running session.
#[derive(Debug)]
pub struct SessionRunning {
    /// The data directory, terminal-safe.
    pub dir: String,
    /// The session's run.
    pub run: u64,
    /// The session's process.
    pub pid: u32,
}

impl fmt::Display for SessionRunning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a session is running on {} (run {}, pid {}): stop it first (`ledger kill-switch trip` or SIGTERM), or use `ledger status` / `ledger events --follow`",
            self.dir, self.run, self.pid
        )
    }
}

impl std::error::Error for SessionRunning {}

/// The error to report when opening the ledger in `data_dir` met `error` (the lock held
/// by another process): [`SessionRunning`] naming the run and pid when a session answers
/// on the control socket, else `error` as it was, with the directory named.
pub fn locked(data_dir: &Path, error: LogError) -> anyhow::Error {
    let status = Client::connect(data_dir).and_then(|mut client| client.status().ok());
    match status {
        Some(status) => SessionRunning { dir: describe::path(data_dir), run: status.run_id, pid: status.pid }.into(),
        None => anyhow::Error::new(error).context(format!("opening ledger at {}", describe::path(data_dir))),
    }
}

/// Whether `error` is the data directory held by another process (a session, or any
/// other command), as [`locked`] reports it.
pub fn is_locked(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<SessionRunning>() || matches!(cause.downcast_ref::<LogError>(), Some(LogError::Locked { .. }))
    })
}

#[cfg(test)]
mod tests;
