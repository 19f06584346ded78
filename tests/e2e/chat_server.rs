//! A scripted LLM server on loopback (OpenAI's chat completions, Anthropic's Messages:
//! it answers whatever is asked with the next scripted reply), for the `openai` and
//! `anthropic` providers' tests (the adapters' tests include this file too): HTTP/1.1, one request
//! per connection, answers served in the order connections arrive from a script whose
//! last answer repeats.
//! It keeps every request (head and body) for the test to inspect.

#![allow(dead_code)] // each including test binary uses its own part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Waited before answering (a slow server).
    pub delay: Duration,
    /// Extra header lines, e.g. `Retry-After: 0`.
    pub headers: Vec<String>,
}

impl Reply {
    /// A 200 with `body`.
    pub fn ok(body: &str) -> Reply {
        Reply::status(200, body)
    }

    /// `status` with `body`.
    pub fn status(status: u16, body: &str) -> Reply {
        Reply { status, body: body.to_string(), delay: Duration::ZERO, headers: Vec::new() }
    }

    /// A 200 with the fixture `fixtures/llm/openai/<name>.json` (or
    /// `fixtures/llm/<name>.json` for a name with a folder, `anthropic/plain`).
    pub fn fixture(name: &str) -> Reply {
        Reply::ok(&fixture_body(name))
    }

    /// This reply after `delay`.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// This reply with a header line.
    pub fn header(mut self, line: &str) -> Reply {
        self.headers.push(line.to_string());
        self
    }
}

/// The text of `fixtures/llm/openai/<name>.json`, or of `fixtures/llm/<name>.json`
/// for a name with a folder (`anthropic/plain`).
pub fn fixture_body(name: &str) -> String {
    let folder = if name.contains('/') { "" } else { "openai" };
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/llm"))
        .join(folder)
        .join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request line and headers.
    pub head: String,
    pub body: String,
}

/// The running server.
pub struct ChatServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl ChatServer {
    /// Starts serving `script` on 127.0.0.1 (a free port).
    pub fn start(script: Vec<Reply>) -> ChatServer {
        assert!(!script.is_empty(), "a script needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let reply = script[n.min(script.len() - 1)].clone();
                let log = Arc::clone(&log);
                // A thread per connection, so a slow answer holds up no other.
                std::thread::spawn(move || serve(stream, &reply, &log));
            }
        });
        ChatServer { port, received }
    }

    /// The base URL to configure: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Reads one request, keeps it in `log` (before answering, so a client that has its
/// answer finds its request there), and answers it.
fn serve(stream: TcpStream, reply: &Reply, log: &Mutex<Vec<Received>>) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    log.lock().ok()?.push(Received { head, body: String::from_utf8_lossy(&body).into_owned() });
    std::thread::sleep(reply.delay);
    let mut response = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for line in &reply.headers {
        response.push_str(line);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&reply.body);
    let mut stream = stream;
    // The client may be gone (it timed out): nothing to do then.
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
    Some(())
}
