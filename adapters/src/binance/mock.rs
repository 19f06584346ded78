//! Loopback stand-ins for Binance, for tests and benchmarks (no test reaches the
//! internet): [`ReplayServer`], a websocket server that replays a recorded combined
//! stream as fast as the client reads it.
//!
//! Plain threads and tungstenite's blocking API: one connection at a time, as a test
//! needs, with nothing to schedule.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

/// Reads a capture of the combined stream: one message a line, each `<local receive
/// time ns> <JSON>` (hftbacktest's raw feed; gzip when the name ends in `.gz`).
/// Returns the JSON messages in order.
///
/// # Errors
/// The file cannot be read, or a line has no space after its time.
pub fn read_capture(path: &Path) -> std::io::Result<Vec<String>> {
    let file = std::fs::File::open(path)?;
    let reader: Box<dyn BufRead> = match path.extension().is_some_and(|e| e == "gz") {
        true => Box::new(BufReader::new(flate2::read::GzDecoder::new(file))),
        false => Box::new(BufReader::new(file)),
    };
    let mut messages = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Some((_, json)) = line.split_once(' ') else {
            let reason = format!("{} line {}: expected `<time ns> <json>`", path.display(), index + 1);
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, reason));
        };
        messages.push(json.to_string());
    }
    Ok(messages)
}

/// How one connection is served: the messages it sends, and how it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The capture's messages sent on it, by index.
    pub messages: Range<usize>,
    /// Closed with a close frame (normal closure) after them; otherwise the TCP
    /// connection is dropped without one (a lost connection).
    pub close_frame: bool,
}

/// A websocket server on loopback that serves a capture's messages over a planned
/// sequence of connections, then stops listening (so a client's next connection is
/// refused).
pub struct ReplayServer {
    addr: SocketAddr,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl ReplayServer {
    /// Serves `messages` as `plan` says on `127.0.0.1:<port>` (0: any free port).
    ///
    /// # Errors
    /// The port cannot be bound.
    pub fn start(messages: Vec<String>, plan: Vec<Connection>, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let sent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&sent);
        let thread = std::thread::spawn(move || {
            for connection in plan {
                let Ok((stream, _)) = listener.accept() else { return };
                // Nagle off: a replay is many small frames.
                let _ = stream.set_nodelay(true);
                let Ok(mut socket) = tungstenite::accept(stream) else { continue };
                for message in messages.get(connection.messages.clone()).unwrap_or_default() {
                    if socket.write(Message::text(message.as_str())).is_err() {
                        break;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                if connection.close_frame {
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "end of replay".into() };
                    let _ = socket.close(Some(frame));
                    // Until the client answers the close (or goes).
                    while socket.read().is_ok() {}
                } else {
                    let _ = socket.flush();
                }
            }
        });
        Ok(ReplayServer { addr, sent, thread: Some(thread) })
    }

    /// The websocket base URL to configure: `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Messages written so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until every planned connection was served.
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
