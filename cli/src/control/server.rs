//! The session's side of the control endpoint: a Unix socket served on its own threads
//! (one accepting, one per connection), answering from a [`SessionLink`].
//!
//! Nothing here blocks the session loop: status and runs are copies, commands are queued
//! on the link, and events are read through the link's reader in bounded chunks, whose
//! lock is never held while writing to a client (a slow client must not hold up another
//! follower, nor the loop's own reads).

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ledger_core::event::Envelope;
use ledger_core::ids::Seq;
use ledger_core::log::{visit_events, LogError};
use serde::Deserialize;

use super::{EventsEnd, EventsRequest, Request, Response, MAX_REQUEST_BYTES, SOCKET_FILE, TOKEN_FILE};
use crate::commands::kill_switch::{operator_text, MAX_BY_CHARS, MAX_REASON_CHARS};
use crate::describe;
use crate::session_link::{CommandReply, OperatorCommand, SessionLink};

/// How often waiting threads look at the stop flag (and followers at their client).
const POLL: Duration = Duration::from_millis(500);
/// How long a command may wait for the session loop to record it.
const COMMAND_PATIENCE: Duration = Duration::from_secs(10);
/// A client that takes no data for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection with no request for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once; more are answered with an error and closed.
const MAX_CONNECTIONS: usize = 64;
/// Events sent per hold of the reader's lock.
const EVENTS_PER_READ: usize = 1000;
/// Records looked at per hold of the reader's lock (with a run filter most may be skipped).
const RECORDS_PER_READ: usize = 8192;
/// How long a stopping server waits for its connections to end by themselves (followers
/// send their `end` line) before it shuts them down.
const DRAIN: Duration = Duration::from_millis(1500);

/// The control endpoint of a running session. Serves until dropped; dropping it stops
/// accepting, ends the connections (followers get their `end` line) and removes the socket
/// and token files.
pub struct Server {
    running: Option<Running>,
}

struct Running {
    socket: OwnedFile,
    token: OwnedFile,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// What the threads share.
struct Shared {
    link: Arc<SessionLink>,
    token: String,
    stop: AtomicBool,
    /// Open connections, by number, each a handle to shut it down when stopping.
    connections: Mutex<Vec<(u64, UnixStream)>>,
    /// Signalled when a connection ends.
    ended: Condvar,
    next_id: AtomicU64,
}

/// A file this server made, removed on drop only if it is still the same file (a later
/// session may own the path by then).
struct OwnedFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl OwnedFile {
    fn of(path: &Path) -> io::Result<OwnedFile> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(OwnedFile { path: path.to_path_buf(), dev: meta.dev(), ino: meta.ino() })
    }

    fn remove(&self) {
        let same = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if same {
            if let Err(error) = std::fs::remove_file(&self.path) {
                tracing::warn!(%error, path = %describe::path(&self.path), "control endpoint: removing a file");
            }
        }
    }
}

impl Server {
    /// Starts serving `link` on `<data_dir>/control.sock`, with a new token in
    /// `<data_dir>/control.token` (both mode 0600; the token is written first). Call it
    /// once the ledger is open: the sled lock is what makes the path this session's, and
    /// a socket or token left there by a killed session is removed first.
    ///
    /// A data directory whose socket path is too long for a Unix socket (about 108
    /// bytes) does not stop the session: a warning is logged and the returned server
    /// serves nothing ([`Server::is_serving`] is false; no files are written).
    ///
    /// # Errors
    /// The token or socket cannot be written, bound or given its permissions, or a thread
    /// cannot be started. Nothing is left behind.
    pub fn start(data_dir: &Path, link: Arc<SessionLink>) -> Result<Server> {
        let socket_path = data_dir.join(SOCKET_FILE);
        let address = match SocketAddr::from_pathname(&socket_path) {
            Ok(address) => address,
            Err(error) => {
                tracing::warn!(
                    path = %describe::path(&socket_path),
                    %error,
                    "no control endpoint for this session: the socket path is too long for a Unix socket; `ledger status`, `ledger kill-switch` and `ledger events --follow` cannot reach it (use a shorter --data-dir)"
                );
                return Ok(Server { running: None });
            }
        };
        remove_stale(&socket_path)?;
        let token_path = data_dir.join(TOKEN_FILE);
        let token = new_token()?;
        let token_file = write_token(&token_path, &token)?;
        let started = bind(&address, &socket_path).and_then(|listener| {
            let socket = OwnedFile::of(&socket_path)
                .with_context(|| format!("reading back {}", describe::path(&socket_path)))?;
            Ok((listener, socket))
        });
        let (listener, socket) = match started {
            Ok(started) => started,
            Err(error) => {
                token_file.remove();
                return Err(error);
            }
        };
        let shared = Arc::new(Shared {
            link,
            token,
            stop: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
            ended: Condvar::new(),
            next_id: AtomicU64::new(0),
        });
        let accepting = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("control-accept".into())
            .spawn(move || accept_loop(&listener, &accepting))
            .context("starting the control endpoint's thread");
        let accept = match accept {
            Ok(accept) => accept,
            Err(error) => {
                socket.remove();
                token_file.remove();
                return Err(error);
            }
        };
        tracing::debug!(socket = %describe::path(&socket_path), "control endpoint listening");
        Ok(Server { running: Some(Running { socket, token: token_file, shared, accept: Some(accept) }) })
    }

    /// Whether this server serves anything (false when the socket path was too long).
    pub fn is_serving(&self) -> bool {
        self.running.is_some()
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn connections(&self) -> usize {
        self.running.as_ref().map_or(0, |running| running.shared.lock_connections().len())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut running) = self.running.take() else { return };
        let shared = &running.shared;
        shared.stop.store(true, Ordering::SeqCst);
        // The accept thread is blocked in accept(): a connection of our own wakes it, and
        // it sees the flag. If that fails (the file was removed under us) it is left.
        let woke = UnixStream::connect(&running.socket.path).is_ok();
        if let (true, Some(accept)) = (woke, running.accept.take()) {
            let _ = accept.join();
        }
        running.socket.remove();
        running.token.remove();
        // Followers notice the flag within POLL and send their `end` line; whatever is
        // still open after DRAIN (a client not reading) is shut down.
        if !shared.wait_connections(DRAIN) {
            for (_, stream) in shared.lock_connections().iter() {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            shared.wait_connections(DRAIN);
        }
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, Vec<(u64, UnixStream)>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits up to `timeout` for every connection to end; whether they did.
    fn wait_connections(&self, timeout: Duration) -> bool {
        let connections = self.lock_connections();
        let (connections, _) = self
            .ended
            .wait_timeout_while(connections, timeout, |open| !open.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        connections.is_empty()
    }

    /// Registers a new connection; `None` when there are too many.
    fn register(&self, stream: &UnixStream) -> Option<u64> {
        let mut connections = self.lock_connections();
        if connections.len() >= MAX_CONNECTIONS {
            return None;
        }
        let handle = stream.try_clone().ok()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        connections.push((id, handle));
        Some(id)
    }

    fn unregister(&self, id: u64) {
        self.lock_connections().retain(|(open, _)| *open != id);
        self.ended.notify_all();
    }
}

/// Removes what a killed session left at `path` (the socket; whatever else is there
/// that is not a directory, since only the session holding the sled lock may use it).
fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            anyhow::bail!(
                "{} is a directory: remove it to let the session serve its control socket",
                describe::path(path)
            )
        }
        Ok(_) => {
            tracing::info!(path = %describe::path(path), "removing the control socket a previous session left");
            std::fs::remove_file(path).with_context(|| format!("removing the stale {}", describe::path(path)))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("looking at {}", describe::path(path))),
    }
}

/// 32 bytes from the system's random source, as 64 lowercase hex digits.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("reading /dev/urandom for the control token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `token` to a new file at `path`, mode 0600 from its creation (a file already
/// there, a previous session's, is removed first; `create_new` follows no symlink).
fn write_token(path: &Path, token: &str) -> Result<OwnedFile> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("removing the stale {}", describe::path(path))),
    }
    let written =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).and_then(|mut file| {
            // The mode was narrowed by the umask at most; make it exactly owner read-write.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(token.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        });
    written.with_context(|| format!("writing the control token {}", describe::path(path)))?;
    OwnedFile::of(path).with_context(|| format!("reading back {}", describe::path(path)))
}

fn bind(address: &SocketAddr, path: &Path) -> Result<UnixListener> {
    let listener = UnixListener::bind_addr(address)
        .with_context(|| format!("binding the control socket {}", describe::path(path)))?;
    if let Err(error) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        let _ = std::fs::remove_file(path);
        return Err(error).with_context(|| format!("making {} owner-only", describe::path(path)));
    }
    Ok(listener)
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        match stream {
            Ok(stream) => open_connection(stream, shared),
            Err(error) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(%error, "control endpoint: accepting a connection failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn open_connection(mut stream: UnixStream, shared: &Arc<Shared>) {
    let Some(id) = shared.register(&stream) else {
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = write_line(&mut stream, &Response::Error(format!("too many connections (at most {MAX_CONNECTIONS})")));
        return;
    };
    let serving = Arc::clone(shared);
    let spawned = std::thread::Builder::new().name("control-conn".into()).spawn(move || {
        if let Err(error) = serve(stream, &serving) {
            tracing::debug!(%error, "control connection ended");
        }
        serving.unregister(id);
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "control endpoint: starting a connection's thread failed");
        shared.unregister(id);
    }
}

/// A request line as first read: the token is checked before the request is looked at.
#[derive(Deserialize)]
struct Unchecked {
    token: Option<String>,
    request: Option<serde_json::Value>,
}

/// One connection: requests one after the other until the client closes, the session
/// stops, or a line is refused.
fn serve(stream: UnixStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut conn = Conn { reader: BufReader::new(stream.try_clone()?), writer: BufWriter::new(stream) };
    loop {
        let line = match conn.read_request(shared)? {
            Line::Request(line) => line,
            Line::Closed => return Ok(()),
            Line::TooLong => {
                return conn.send(&Response::Error(format!("request line longer than {MAX_REQUEST_BYTES} bytes")));
            }
        };
        let unchecked: Unchecked = match serde_json::from_slice(&line) {
            Ok(unchecked) => unchecked,
            Err(error) => return conn.send(&Response::Error(format!("malformed request line: {error}"))),
        };
        if !unchecked.token.as_deref().is_some_and(|token| same_token(token, &shared.token)) {
            return conn.send(&Response::Error("refused: wrong or missing token".into()));
        }
        let request = match unchecked.request.map(serde_json::from_value::<Request>) {
            Some(Ok(request)) => request,
            Some(Err(error)) => {
                conn.send(&Response::Error(format!("bad request: {error}")))?;
                continue;
            }
            None => {
                conn.send(&Response::Error("bad request: no `request`".into()))?;
                continue;
            }
        };
        match request {
            Request::Status => conn.send(&Response::Status(Box::new(shared.link.status())))?,
            Request::Runs => conn.send(&Response::Runs(shared.link.runs()))?,
            Request::KillSwitch(command) => conn.send(&kill_switch(shared, command))?,
            Request::Events(events) => conn.events(shared, events)?,
        }
    }
}

/// Compares in time that does not depend on where the first difference is.
fn same_token(given: &str, token: &str) -> bool {
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// Queues an operator command and waits for the session loop to record it.
fn kill_switch(shared: &Shared, command: OperatorCommand) -> Response {
    let checked = match command {
        OperatorCommand::Trip { by, reason } => {
            checked_text(&by, &reason).map(|(by, reason)| OperatorCommand::Trip { by, reason })
        }
        OperatorCommand::Reset { by, reason } => {
            checked_text(&by, &reason).map(|(by, reason)| OperatorCommand::Reset { by, reason })
        }
    };
    match checked {
        Ok(command) => wait_reply(shared, &shared.link.submit(command)),
        Err(error) => Response::Error(error.to_string()),
    }
}

/// `by` and `reason` as `ledger kill-switch` checks them: they are stored forever.
fn checked_text(by: &str, reason: &str) -> Result<(String, String)> {
    Ok((operator_text("--by", by, MAX_BY_CHARS)?, operator_text("--reason", reason, MAX_REASON_CHARS)?))
}

fn wait_reply(shared: &Shared, answer: &Receiver<CommandReply>) -> Response {
    let deadline = Instant::now() + COMMAND_PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Response::Error(format!(
                "the session did not record the command within {} s; it may still do so: see `ledger kill-switch status`",
                COMMAND_PATIENCE.as_secs()
            ));
        }
        match answer.recv_timeout(left.min(POLL)) {
            Ok(Ok(seq)) => return Response::Recorded(seq),
            Ok(Err(reason)) => return Response::Refused(reason),
            Err(RecvTimeoutError::Timeout) if shared.stopping() => {
                return Response::Error("the session is stopping; the command was not confirmed".into());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Response::Error("the session dropped the command without answering".into());
            }
        }
    }
}

enum Line {
    Request(Vec<u8>),
    Closed,
    TooLong,
}

struct Conn {
    reader: BufReader<UnixStream>,
    writer: BufWriter<UnixStream>,
}

impl Conn {
    /// The next request line (without its newline), waiting in POLL steps so that a
    /// stopping server is noticed; `Closed` at the client's end, when the server stops,
    /// or after IDLE_TIMEOUT without a request.
    fn read_request(&mut self, shared: &Shared) -> io::Result<Line> {
        let mut line = Vec::new();
        let started = Instant::now();
        loop {
            if shared.stopping() || started.elapsed() >= IDLE_TIMEOUT {
                return Ok(Line::Closed);
            }
            let room = (MAX_REQUEST_BYTES - line.len()) as u64;
            match (&mut self.reader).take(room).read_until(b'\n', &mut line) {
                Ok(0) if line.is_empty() => return Ok(Line::Closed),
                Ok(_) if line.last() == Some(&b'\n') => {
                    line.pop();
                    return Ok(Line::Request(line));
                }
                Ok(_) if line.len() >= MAX_REQUEST_BYTES => return Ok(Line::TooLong),
                // The client closed in the middle of a line: nothing to answer.
                Ok(0) => return Ok(Line::Closed),
                Ok(_) => {}
                Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(error) => return Err(error),
            }
        }
    }

    fn send(&mut self, response: &Response) -> io::Result<()> {
        write_line(&mut self.writer, response)?;
        self.writer.flush()
    }

    /// Whether the client has gone: a read that finds the end of its stream. Data it sent
    /// stays buffered for the next request.
    fn client_gone(&mut self) -> bool {
        let stream = self.reader.get_ref();
        if stream.set_read_timeout(Some(Duration::from_millis(1))).is_err() {
            return true;
        }
        let gone = match self.reader.fill_buf() {
            Ok(buffered) => buffered.is_empty(),
            Err(error) => !matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
        };
        gone || self.reader.get_ref().set_read_timeout(Some(POLL)).is_err()
    }

    /// Streams durable events as [`EventsRequest`] asks: in chunks read under the reader's
    /// lock and written after it is released; with `follow`, waiting for more.
    fn events(&mut self, shared: &Shared, request: EventsRequest) -> io::Result<()> {
        let link = &shared.link;
        let mut next = request.from.max(Seq::new(1));
        let mut last = Seq::new(u64::MAX);
        if let Some(run) = request.run {
            let Some(info) = link.runs().into_iter().find(|info| info.run_id == run) else {
                return self.send(&Response::Error(format!("no run {run} in the ledger (see `ledger runs`)")));
            };
            next = next.max(info.first_seq);
            if !request.follow {
                last = info.last_seq;
            }
        }
        let mut left = request.limit.unwrap_or(u64::MAX);
        let end = |next, session_ended| Response::End(EventsEnd { next, session_ended });
        loop {
            let durable = link.durable();
            let upto = durable.min(last);
            while next <= upto && left > 0 {
                if shared.stopping() {
                    return self.send(&end(next, true));
                }
                let chunk = read_chunk(link, next, upto, request.run, left);
                let (events, after) = match chunk {
                    Ok(chunk) => chunk,
                    Err(error) => return self.send(&Response::Error(error.to_string())),
                };
                if after == next {
                    break; // not readable yet, though durable: try again after a pause
                }
                next = after;
                left -= events.len() as u64;
                for event in events {
                    write_line(&mut self.writer, &Response::Event(Box::new(event)))?;
                }
                self.writer.flush()?;
            }
            if left == 0 || next > last || !request.follow {
                return self.send(&end(next, false));
            }
            if shared.stopping() {
                return self.send(&end(next, true));
            }
            if self.client_gone() {
                return Ok(());
            }
            if next <= upto {
                std::thread::sleep(POLL);
            } else {
                link.wait_beyond(Seq::new(next.get() - 1), POLL);
            }
        }
    }
}

/// Reads the events `next..=upto` of `run` (every run when `None`), at most
/// [`EVENTS_PER_READ`] of them and `left`, looking at no more than [`RECORDS_PER_READ`]
/// records, under one hold of the reader's lock. Returns them and the seq to read next.
fn read_chunk(
    link: &SessionLink,
    next: Seq,
    upto: Seq,
    run: Option<ledger_core::ids::RunId>,
    left: u64,
) -> Result<(Vec<Envelope>, Seq), LogError> {
    let want = EVENTS_PER_READ.min(usize::try_from(left).unwrap_or(usize::MAX));
    link.with_reader(|reader| {
        let mut events = Vec::new();
        let (mut after, mut looked) = (next, 0usize);
        visit_events(reader, next, &mut |event| {
            let seq = event.header.seq;
            if seq > upto {
                return std::ops::ControlFlow::Break(());
            }
            after = seq.next();
            looked += 1;
            if run.is_none_or(|run| run == event.header.run_id) {
                events.push(event);
            }
            if events.len() >= want || looked >= RECORDS_PER_READ {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })?;
        Ok((events, after))
    })
}

fn write_line(out: &mut impl Write, response: &Response) -> io::Result<()> {
    serde_json::to_writer(&mut *out, response)?;
    out.write_all(b"\n")
}
