//! The commands' side of the control endpoint: connects to a running session's socket
//! with the token from its file, sends requests and reads the answers.
//!
//! Reads wait in short steps ([`Client::recv`] returns [`Received::Nothing`] after one),
//! so a command following events can notice Ctrl-C and print what came in a quiet moment.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ledger_projections::runs::RunSummary;

use super::{EventsRequest, Request, RequestLine, Response, SOCKET_FILE, TOKEN_FILE};
use crate::describe;
use crate::session_link::{CommandReply, OperatorCommand, SessionStatus};

/// How long one [`Client::recv`] waits for a line.
const TICK: Duration = Duration::from_millis(100);
/// How long a status or runs request may take.
const PATIENCE: Duration = Duration::from_secs(15);
/// How long a kill-switch command may take (the session waits up to 10 s for its loop).
const COMMAND_PATIENCE: Duration = Duration::from_secs(20);
/// Longest answer line, bytes: an event is at most 16 MiB encoded; JSON escapes can make
/// its text several times longer.
const MAX_ANSWER_BYTES: usize = 128 << 20;

/// A connection to a running session's control endpoint.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    token: String,
    /// The part of an answer line read so far.
    pending: Vec<u8>,
}

/// What one [`Client::recv`] got.
#[derive(Debug)]
pub enum Received {
    /// An answer line.
    Answer(Response),
    /// No whole line within one short wait; the session is still there.
    Nothing,
    /// The session closed the connection (it ended, or refused the request).
    Closed,
}

impl Client {
    /// Connects to the session serving `data_dir`, if one is running: `None` when there
    /// is no socket or token, the socket refuses connections (a session killed without
    /// removing it), or the path is too long for a socket. A socket or token that cannot
    /// be used for lack of permission is logged as a warning (and `None`).
    pub fn connect(data_dir: &Path) -> Option<Client> {
        let socket = data_dir.join(SOCKET_FILE);
        let address = SocketAddr::from_pathname(&socket).ok()?;
        let token = match std::fs::read_to_string(data_dir.join(TOKEN_FILE)) {
            Ok(token) => token.trim().to_string(),
            Err(error) => {
                if error.kind() == io::ErrorKind::PermissionDenied {
                    tracing::warn!(%error, dir = %describe::path(data_dir), "cannot read the session's control token");
                }
                return None;
            }
        };
        let stream = match UnixStream::connect_addr(&address) {
            Ok(stream) => stream,
            Err(error) => {
                if error.kind() == io::ErrorKind::PermissionDenied {
                    tracing::warn!(%error, socket = %describe::path(&socket), "cannot connect to the session's control socket");
                } else {
                    tracing::debug!(%error, socket = %describe::path(&socket), "no session answers");
                }
                return None;
            }
        };
        stream.set_read_timeout(Some(TICK)).ok()?;
        stream.set_write_timeout(Some(PATIENCE)).ok()?;
        let reader = BufReader::new(stream.try_clone().ok()?);
        Some(Client { reader, writer: stream, token, pending: Vec::new() })
    }

    /// Sends one request line; read its answer with [`Client::recv`].
    ///
    /// # Errors
    /// The connection failed.
    pub fn send(&mut self, request: Request) -> Result<()> {
        let line = RequestLine { token: self.token.clone(), request };
        let mut bytes = serde_json::to_vec(&line).context("encoding a request")?;
        bytes.push(b'\n');
        self.writer.write_all(&bytes).context("sending a request to the session")
    }

    /// Waits a moment (a tenth of a second) for an answer line.
    ///
    /// # Errors
    /// The connection failed other than by closing, or the line is not an answer.
    pub fn recv(&mut self) -> Result<Received> {
        let room = MAX_ANSWER_BYTES.saturating_sub(self.pending.len()) as u64;
        match (&mut self.reader).take(room).read_until(b'\n', &mut self.pending) {
            Ok(_) if self.pending.last() == Some(&b'\n') => {
                let line = std::mem::take(&mut self.pending);
                let answer = serde_json::from_slice(&line).context("reading the session's answer")?;
                Ok(Received::Answer(answer))
            }
            Ok(0) => {
                self.pending.clear();
                Ok(Received::Closed)
            }
            Ok(_) if self.pending.len() >= MAX_ANSWER_BYTES => {
                bail!("the session's answer is longer than {MAX_ANSWER_BYTES} bytes")
            }
            Ok(_) => Ok(Received::Nothing),
            Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Ok(Received::Nothing)
            }
            Err(error) if matches!(error.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => {
                Ok(Received::Closed)
            }
            Err(error) => Err(error).context("reading from the session"),
        }
    }

    /// Sends `request` and waits up to `patience` for its one answer line.
    fn call(&mut self, request: Request, patience: Duration) -> Result<Response> {
        self.send(request)?;
        let deadline = Instant::now() + patience;
        loop {
            match self.recv()? {
                Received::Answer(Response::Error(message)) => return Err(session_error(&message)),
                Received::Answer(answer) => return Ok(answer),
                Received::Closed => bail!("the session closed the connection without answering"),
                Received::Nothing if Instant::now() >= deadline => {
                    bail!("the session did not answer within {} s", patience.as_secs())
                }
                Received::Nothing => {}
            }
        }
    }

    /// The session's status.
    ///
    /// # Errors
    /// The connection failed, the session did not answer in time or answered an error.
    pub fn status(&mut self) -> Result<SessionStatus> {
        match self.call(Request::Status, PATIENCE)? {
            Response::Status(status) => Ok(*status),
            other => Err(unexpected(&other)),
        }
    }

    /// The runs index as the session last published it.
    ///
    /// # Errors
    /// As [`Client::status`].
    pub fn runs(&mut self) -> Result<Vec<RunSummary>> {
        match self.call(Request::Runs, PATIENCE)? {
            Response::Runs(runs) => Ok(runs),
            other => Err(unexpected(&other)),
        }
    }

    /// Has the session record `command`: `Ok(Ok(seq))` once it is recorded and durable at
    /// `seq`, `Ok(Err(why))` if the session refused it.
    ///
    /// # Errors
    /// As [`Client::status`]; a command the session did not confirm in time may still be
    /// recorded later.
    pub fn kill_switch(&mut self, command: OperatorCommand) -> Result<CommandReply> {
        match self.call(Request::KillSwitch(command), COMMAND_PATIENCE)? {
            Response::Recorded(seq) => Ok(Ok(seq)),
            Response::Refused(why) => Ok(Err(why)),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks for events; read them with [`Client::recv`]: [`Response::Event`] lines, then
    /// [`Response::End`] (or [`Response::Error`]).
    ///
    /// # Errors
    /// The connection failed.
    pub fn events(&mut self, request: EventsRequest) -> Result<()> {
        self.send(Request::Events(request))
    }
}

/// The session's own error message, as an error of this command.
pub fn session_error(message: &str) -> anyhow::Error {
    anyhow!("the running session: {message}")
}

/// An answer of the wrong kind.
pub fn unexpected(answer: &Response) -> anyhow::Error {
    let kind = serde_json::to_value(answer)
        .ok()
        .and_then(|value| value.as_object().and_then(|o| o.keys().next().cloned()))
        .unwrap_or_default();
    anyhow!("the session answered with an unexpected `{kind}`")
}
