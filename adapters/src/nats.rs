//! NATS JetStream: the ledger's events published to a stream, and read back from it.
//!
//! # The stream is a replica of the whole ledger
//! One stream (default [`DEFAULT_STREAM`]) holds one ledger, from seq 1, in order, so
//! that the stream's own sequence *is* the ledger's seq. That is what makes publishing
//! exact: every message carries `Nats-Expected-Last-Sequence: seq - 1`, so the server
//! refuses a message that would land after a gap or a second time (the first guard),
//! and `Nats-Msg-Id: <ledger_id>:<seq>` lets it drop a repeat inside its duplicate
//! window (the second). After any failure the publisher asks the stream where it is
//! ([`NatsLink::position`]: its last message, checked against the ledger's record by
//! hash) and goes on from there. A consumer checks the hash chain from the records
//! themselves: each message carries the record's stored bytes.
//!
//! # Messages
//! Subject `ledger.<run_id>.<event_kind>`; headers `Nats-Msg-Id`, `Ledger-Seq`,
//! `Ledger-Hash`, `Ledger-Prev-Hash` (hex), `Content-Type: application/json`; payload
//! the JSON [`WireEvent`]: the header fields with nanosecond times, the payload as
//! `ledger events --json` shows it (decimals as strings), and `record`, the stored
//! record's bytes in base64, from which the hash is recomputed
//! (docs/operations.md).
//!
//! # Threads
//! [`NatsLink`] owns a small tokio runtime (one worker) and offers blocking calls, so
//! the rest of the ledger stays synchronous and `core` knows nothing of tokio.

use std::ops::ControlFlow;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use base64::Engine as _;
use futures_util::StreamExt;
use ledger_core::chain::Hash32;
use ledger_core::codec;
use ledger_core::event::{Envelope, Payload};
use ledger_core::ids::Seq;
use ledger_core::log::{Head, LogError, RecordSource};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The stream's name unless another is given.
pub const DEFAULT_STREAM: &str = "LEDGER";
/// Most publishes awaiting their acknowledgement at once (async-nats stops sending
/// after about 5,000 unawaited acks; the window is awaited well before that).
pub const ACK_WINDOW: usize = 1_000;
/// Events a follower folds between two checkpoints at most (its consumer lets five
/// times as many wait for their acknowledgement).
pub const CHECKPOINT_EVENTS: usize = 10_000;
/// The stream's duplicate window: how long the server remembers a `Nats-Msg-Id`.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a reader of the stream waits for a cluster to answer again (a leader
/// election after a node is lost) before it gives up.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long one request or acknowledgement is awaited.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Environment variable naming a NATS credentials file (`.creds`).
pub const CREDS_ENV: &str = "LEDGER_NATS_CREDS";
/// Environment variable holding a NATS token.
pub const TOKEN_ENV: &str = "LEDGER_NATS_TOKEN";
/// Environment variable naming a PEM file of CA certificates to trust for TLS, beside
/// the system's (a private CA, a self-signed server).
pub const CA_ENV: &str = "LEDGER_NATS_CA";

/// What went wrong talking to NATS or checking what it holds. Every variant names the
/// server (its URL without credentials) and, where there is one, the seq.
#[derive(Debug, Error)]
pub enum NatsError {
    /// The connection or a request failed: a retry may succeed.
    #[error("NATS at {url}: {what}: {message}")]
    Unavailable {
        /// The server.
        url: String,
        /// What was being done.
        what: String,
        /// What the client said.
        message: String,
    },
    /// The URL or the credentials cannot be used: no retry mends it.
    #[error("NATS at {url}: {message}")]
    Config {
        /// The server(s), as given (without credentials).
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The stream's configuration does not fit the ledger.
    #[error("NATS at {url}: stream {stream}: {message}")]
    Stream {
        /// The server.
        url: String,
        /// The stream.
        stream: String,
        /// What is wrong.
        message: String,
    },
    /// A message does not check out against the chain or the ledger: a gap, a bad
    /// link, a changed record, another ledger's message.
    #[error("NATS at {url}: stream {stream}: seq {seq}: {message}")]
    Chain {
        /// The server.
        url: String,
        /// The stream.
        stream: String,
        /// The ledger seq where it does not check out.
        seq: Seq,
        /// What is wrong.
        message: String,
    },
    /// Reading the local ledger failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl NatsError {
    /// Whether a later retry may succeed (the server or the network was down).
    pub fn is_transient(&self) -> bool {
        matches!(self, NatsError::Unavailable { .. })
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URL(s), comma-separated: `nats://host:4222`, `tls://host:4222` (TLS
    /// required), with optional `user:password@`.
    pub url: String,
    /// The stream's name.
    pub stream: String,
    /// Replicas of the stream when it is created (1, or 3 on a cluster).
    pub replicas: usize,
    /// A credentials file (from [`CREDS_ENV`]).
    pub creds_file: Option<std::path::PathBuf>,
    /// A token (from [`TOKEN_ENV`]); never printed.
    pub token: Option<String>,
    /// CA certificates to trust for TLS (from [`CA_ENV`]).
    pub ca_file: Option<std::path::PathBuf>,
}

impl NatsOptions {
    /// Options for `url` and `stream`, with credentials from the environment
    /// ([`CREDS_ENV`], [`TOKEN_ENV`], [`CA_ENV`]).
    pub fn from_env(url: &str, stream: &str, replicas: usize) -> Self {
        NatsOptions {
            url: url.to_string(),
            stream: stream.to_string(),
            replicas: replicas.max(1),
            creds_file: std::env::var_os(CREDS_ENV).filter(|v| !v.is_empty()).map(Into::into),
            token: std::env::var(TOKEN_ENV).ok().filter(|v| !v.is_empty()),
            ca_file: std::env::var_os(CA_ENV).filter(|v| !v.is_empty()).map(Into::into),
        }
    }

    /// Checks what can be checked before connecting: every URL parses and the
    /// credentials file, if any, is readable.
    ///
    /// # Errors
    /// [`NatsError::Config`] naming the URL or the file.
    pub fn validate(&self) -> Result<(), NatsError> {
        let config = |message: String| NatsError::Config { url: self.display_url(), message };
        for one in self.url.split(',') {
            one.trim().parse::<async_nats::ServerAddr>().map_err(|e| {
                config(format!("{:?} is not a NATS URL: {e}", NatsOptions::from_env(one, "", 1).display_url()))
            })?;
        }
        if let Some(path) = &self.creds_file {
            std::fs::metadata(path)
                .map_err(|e| config(format!("the credentials file {} ({CREDS_ENV}): {e}", path.display())))?;
        }
        if let Some(path) = &self.ca_file {
            std::fs::metadata(path)
                .map_err(|e| config(format!("the CA certificates {} ({CA_ENV}): {e}", path.display())))?;
        }
        Ok(())
    }

    /// The URL without a user or password, for messages and logs.
    pub fn display_url(&self) -> String {
        self.url
            .split(',')
            .map(|one| match (one.find("://"), one.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &one[..scheme + 3], &one[at + 1..]),
                (None, Some(at)) => one[at + 1..].to_string(),
                _ => one.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One event as published: the JSON payload of a message. Times are UTC nanoseconds,
/// hashes hex, `payload` as `ledger events --json` prints it, `record` the stored
/// record in base64 (`hash = SHA-256(record[0] || prev_hash || seq as 8 bytes
/// big-endian || record[1..len-32])` for formats 2 and 3; see docs/operations.md).
#[derive(Debug, Serialize)]
pub struct WireEvent<'a> {
    /// The ledger the event belongs to.
    pub ledger_id: &'a str,
    /// Position in the ledger, from 1.
    pub seq: u64,
    /// The run.
    pub run_id: u64,
    /// The cycle inside the run.
    pub cycle_id: u64,
    /// The event that caused this one.
    pub causation_seq: Option<u64>,
    /// Source time, UTC ns.
    pub ts_event_ns: i64,
    /// Recording time, UTC ns.
    pub ts_recorded_ns: i64,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// The previous event's hash, hex.
    pub prev_hash: String,
    /// This event's hash, hex.
    pub hash: String,
    /// The payload's kind, as in the subject.
    pub kind: &'static str,
    /// The fact.
    pub payload: &'a Payload,
    /// The stored record, base64 (standard alphabet, padded).
    pub record: String,
}

/// The part of a message a consumer needs: the stored record.
#[derive(Debug, Deserialize)]
struct WireRecord {
    record: String,
}

/// One event read back from the stream: its seq and stored record bytes, checked
/// against the chain, and decoded.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    /// The ledger's id, from `Nats-Msg-Id`.
    pub ledger_id: String,
    /// The stored record.
    pub record: Vec<u8>,
    /// The event.
    pub event: Envelope,
}

/// The subject of `event`: `ledger.<run_id>.<event_kind>`.
pub fn subject(event: &Envelope) -> String {
    format!("ledger.{}.{}", event.header.run_id, event.payload.kind())
}

/// A connection to NATS and the ledger's stream on it. See the module docs.
pub struct NatsLink {
    runtime: tokio::runtime::Runtime,
    client: async_nats::Client,
    js: jetstream::Context,
    options: NatsOptions,
    url: String,
}

/// Tells whether a [`NatsLink`]'s client is connected now (it reconnects by itself).
#[derive(Clone)]
pub struct ConnectionWatch(async_nats::Client);

impl ConnectionWatch {
    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        self.0.connection_state() == async_nats::connection::State::Connected
    }
}

/// A message ready to go: its ledger seq, subject, headers and JSON payload.
pub struct Outgoing {
    /// The event's seq.
    pub seq: Seq,
    /// `ledger.<run_id>.<event_kind>`.
    pub subject: String,
    /// `Nats-Msg-Id`, `Ledger-Seq`, `Ledger-Hash`, `Ledger-Prev-Hash`, `Content-Type`.
    pub headers: HeaderMap,
    /// The [`WireEvent`] as JSON.
    pub payload: Vec<u8>,
}

impl NatsLink {
    /// Connects to `options.url`. With `wait`, a server that is not up yet is waited
    /// for in the background (calls fail until it is reached, then succeed); without,
    /// an unreachable server is an error at once.
    ///
    /// # Errors
    /// [`NatsError::Unavailable`] naming the URL.
    pub fn connect(options: &NatsOptions, wait: bool) -> Result<NatsLink, NatsError> {
        let url = options.display_url();
        let unavailable =
            |what: &str, message: String| NatsError::Unavailable { url: url.clone(), what: what.to_string(), message };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ledger-nats")
            .enable_all()
            .build()
            .map_err(|e| unavailable("starting the NATS runtime", e.to_string()))?;
        let client = runtime.block_on(async {
            let mut connect = async_nats::ConnectOptions::new()
                .name("ledger")
                .connection_timeout(REQUEST_TIMEOUT)
                .request_timeout(Some(REQUEST_TIMEOUT))
                .max_reconnects(None)
                .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1_000)));
            if let Some(path) = &options.creds_file {
                connect = connect
                    .credentials_file(path)
                    .await
                    .map_err(|e| unavailable("reading the credentials file", format!("{}: {e}", path.display())))?;
            }
            if let Some(token) = &options.token {
                connect = connect.token(token.clone());
            }
            if options.url.split(',').any(|u| u.trim_start().starts_with("tls://")) {
                connect = connect.require_tls(true);
            }
            if let Some(path) = &options.ca_file {
                connect = connect.add_root_certificates(path.clone());
            }
            if wait {
                connect = connect.retry_on_initial_connect();
            }
            let servers: Vec<String> = options.url.split(',').map(|s| s.trim().to_string()).collect();
            let addresses = servers
                .iter()
                .map(|s| s.parse::<async_nats::ServerAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| unavailable("reading the URL", e.to_string()))?;
            connect.connect(addresses).await.map_err(|e| unavailable("connecting", e.to_string()))
        })?;
        // The context starts its acknowledgement task on the runtime.
        let _entered = runtime.enter();
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .max_ack_inflight(ACK_WINDOW * 2)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(NatsLink { runtime, client, js, options: options.clone(), url })
    }

    /// The server's URL without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.options.stream
    }

    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        self.watch().is_connected()
    }

    /// A handle that tells whether the client is connected, from any thread.
    pub fn watch(&self) -> ConnectionWatch {
        ConnectionWatch(self.client.clone())
    }

    fn unavailable(&self, what: impl Into<String>, error: impl std::fmt::Display) -> NatsError {
        NatsError::Unavailable { url: self.url.clone(), what: what.into(), message: error.to_string() }
    }

    /// A failure to open the stream: "no such stream" is for the user to mend, anything
    /// else may pass.
    fn open_error(&self, name: &str, error: jetstream::context::GetStreamError) -> NatsError {
        use jetstream::context::GetStreamErrorKind as Kind;
        match error.kind() {
            Kind::JetStream(js) if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND => {
                self.stream_error(format!("there is no stream {name} on this server"))
            }
            _ => self.unavailable(format!("opening stream {name}"), error),
        }
    }

    fn stream_error(&self, message: impl Into<String>) -> NatsError {
        NatsError::Stream { url: self.url.clone(), stream: self.options.stream.clone(), message: message.into() }
    }

    fn chain_error(&self, seq: Seq, message: impl Into<String>) -> NatsError {
        NatsError::Chain { url: self.url.clone(), stream: self.options.stream.clone(), seq, message: message.into() }
    }

    /// Creates the stream (subjects `ledger.>`, file storage, the duplicate window,
    /// the configured replicas), or checks the one there: its subjects must be
    /// `ledger.>` and its storage file.
    ///
    /// # Errors
    /// [`NatsError::Stream`] for a stream that does not fit; [`NatsError::Unavailable`].
    pub fn ensure_stream(&self) -> Result<(), NatsError> {
        let name = self.options.stream.clone();
        let config = stream::Config {
            name: name.clone(),
            subjects: vec!["ledger.>".to_string()],
            storage: stream::StorageType::File,
            num_replicas: self.options.replicas,
            duplicate_window: DUPLICATE_WINDOW,
            allow_direct: true,
            ..Default::default()
        };
        let info = self.runtime.block_on(async {
            let mut stream = self.js.get_or_create_stream(config).await.map_err(|e| {
                use jetstream::context::CreateStreamErrorKind as Kind;
                use jetstream::ErrorCode;
                match e.kind() {
                    // What no retry mends: the configuration is refused.
                    Kind::EmptyStreamName | Kind::InvalidStreamName => self.stream_error(e.to_string()),
                    Kind::JetStream(js)
                        if [ErrorCode::STREAM_SUBJECT_OVERLAP, ErrorCode::STREAM_NAME_EXIST]
                            .contains(&js.error_code()) =>
                    {
                        self.stream_error(format!(
                            "{e} (a server holds one ledger's stream on subjects ledger.>; use another server or account)"
                        ))
                    }
                    _ => self.unavailable(format!("creating or opening stream {name}"), e),
                }
            })?;
            stream.info().await.map(|i| i.config.clone()).map_err(|e| self.unavailable(format!("stream {name}"), e))
        })?;
        if info.subjects != ["ledger.>"] {
            return Err(self.stream_error(format!(
                "its subjects are {:?}, not [\"ledger.>\"]: it is not a ledger's stream",
                info.subjects
            )));
        }
        if info.storage != stream::StorageType::File {
            return Err(self.stream_error("its storage is memory, not file"));
        }
        Ok(())
    }

    /// The stream's last message, if any: `(stream seq, ledger id, Ledger-Hash)`.
    fn last_message(&self) -> Result<Option<(u64, String, Hash32)>, NatsError> {
        let name = self.options.stream.clone();
        self.runtime.block_on(async {
            let mut stream =
                self.js.get_stream(&name).await.map_err(|e| self.unavailable(format!("opening stream {name}"), e))?;
            let state = stream.info().await.map_err(|e| self.unavailable(format!("stream {name}"), e))?.state.clone();
            if state.last_sequence == 0 {
                return Ok(None);
            }
            if state.first_sequence != 1 || state.messages != state.last_sequence {
                return Err(self.stream_error(format!(
                    "it holds {} messages from seq {} to {}: a ledger's stream holds every event from seq 1 (was it purged or limited?)",
                    state.messages, state.first_sequence, state.last_sequence
                )));
            }
            let message = stream
                .get_raw_message(state.last_sequence)
                .await
                .map_err(|e| self.unavailable(format!("reading message {} of stream {name}", state.last_sequence), e))?;
            let seq = Seq::new(state.last_sequence);
            let (ledger_id, hash) = self.check_headers(seq, &message.headers)?;
            Ok(Some((state.last_sequence, ledger_id, hash)))
        })
    }

    fn check_headers(&self, seq: Seq, headers: &HeaderMap) -> Result<(String, Hash32), NatsError> {
        self.place().check_headers(seq, headers)
    }

    fn place(&self) -> Place {
        Place { url: self.url.clone(), stream: self.options.stream.clone() }
    }

    /// How far the stream holds the ledger `ledger_id` read through `source`: the last
    /// seq it holds (0 when empty), checked against the ledger's record there by hash.
    ///
    /// # Errors
    /// [`NatsError::Chain`] when the stream holds another ledger, more than this ledger
    /// holds, or a record that differs; [`NatsError::Unavailable`].
    pub fn position(&self, ledger_id: &str, source: &dyn RecordSource) -> Result<Seq, NatsError> {
        let Some((last, their_id, their_hash)) = self.last_message()? else { return Ok(Seq::ZERO) };
        let seq = Seq::new(last);
        if their_id != ledger_id {
            return Err(self.chain_error(
                seq,
                format!("the stream holds ledger {their_id}, not this ledger ({ledger_id}): use another --nats-stream"),
            ));
        }
        let mut ours = None;
        source.visit_records(seq, &mut |at, bytes| {
            if at == seq {
                ours = codec::frame(bytes).ok().map(|f| f.stored_hash);
            }
            ControlFlow::Break(())
        })?;
        match ours {
            None => Err(self.chain_error(
                seq,
                "the stream holds this ledger beyond its head: the ledger lost records (restore it with `ledger restore --from-nats`)",
            )),
            Some(hash) if hash != their_hash => {
                Err(self.chain_error(seq, format!("the stream's record has hash {their_hash}, the ledger's {hash}")))
            }
            Some(_) => Ok(seq),
        }
    }

    /// Publishes the events `from..=through` of `source` (the ledger `ledger_id`) in
    /// order, at most [`ACK_WINDOW`] awaiting their acks at once, calling `acked` with
    /// the last acknowledged seq after each window. `from` must be the seq after the
    /// stream's [`NatsLink::position`]. Returns the last seq acknowledged.
    ///
    /// # Errors
    /// The first failure: what was acknowledged before it stays acknowledged (and was
    /// reported to `acked`); ask [`NatsLink::position`] before going on.
    pub fn publish_range(
        &self,
        ledger_id: &str,
        source: &dyn RecordSource,
        from: Seq,
        through: Seq,
        acked: &mut dyn FnMut(Seq),
    ) -> Result<Seq, NatsError> {
        let mut next = from.max(Seq::new(1));
        let mut last_acked = Seq::new(next.get() - 1);
        let mut prev = previous_hash(source, next)?;
        // The acks of the window sent last, awaited on the runtime while this thread
        // reads and encodes the next window (never more than one window in flight).
        let mut awaiting: Option<tokio::task::JoinHandle<(Seq, Option<NatsError>)>> = None;
        loop {
            let mut window = Vec::with_capacity(ACK_WINDOW);
            if next <= through {
                prev = read_window(ledger_id, source, next, through, prev, &mut window)?;
            }
            if let Some(handle) = awaiting.take() {
                let (reached, failure) =
                    self.runtime.block_on(handle).map_err(|e| self.unavailable("awaiting acknowledgements", e))?;
                if reached > last_acked {
                    last_acked = reached;
                    acked(last_acked);
                }
                if let Some(failure) = failure {
                    return Err(failure);
                }
            }
            let Some(last) = window.last().map(|m| m.seq) else { break };
            next = last.next();
            awaiting = Some(self.send_window(window, last_acked));
        }
        Ok(last_acked)
    }

    /// Sends the window, then awaits its acks in order on the runtime: the task returns
    /// the last acknowledged seq and the first failure, if any.
    fn send_window(
        &self,
        window: Vec<Outgoing>,
        mut last_acked: Seq,
    ) -> tokio::task::JoinHandle<(Seq, Option<NatsError>)> {
        let place = self.place();
        let (sent, refused) = self.runtime.block_on(async {
            let mut sent = Vec::with_capacity(window.len());
            for message in window {
                let seq = message.seq;
                let publish = jetstream::message::PublishMessage::build()
                    .payload(message.payload.into())
                    .headers(message.headers)
                    .expected_last_sequence(seq.get() - 1);
                match self.js.send_publish(message.subject.clone(), publish).await {
                    Ok(ack) => sent.push((seq, message.subject, ack)),
                    Err(e) => {
                        let failure = self.unavailable(format!("publishing seq {seq} to {}", message.subject), e);
                        return (sent, Some(failure));
                    }
                }
            }
            (sent, None)
        });
        let url = self.url.clone();
        self.runtime.spawn(async move {
            // Awaited in order: the first that fails ends the window (those after it
            // were refused by the server for their expected last sequence, or are
            // found by `position` when they were stored).
            for (seq, subject, ack) in sent {
                match ack.await {
                    Ok(ack) if ack.sequence == seq.get() => last_acked = seq,
                    Ok(ack) => {
                        let message = format!("the stream stored it as its message {} ({subject})", ack.sequence);
                        return (last_acked, Some(place.chain_error(seq, message)));
                    }
                    Err(e) => {
                        let what = format!("publishing seq {seq} to {subject}");
                        let failure = NatsError::Unavailable { url, what, message: e.to_string() };
                        return (last_acked, Some(failure));
                    }
                }
            }
            (last_acked, refused)
        })
    }

    /// Reads the stream from its first message to its last (as it is when the read
    /// starts), checking the chain from seq 1, and calls `visit` with each event.
    ///
    /// # Errors
    /// [`NatsError::Chain`] naming the first seq that does not check out; transport
    /// errors.
    pub fn read_all(&self, visit: &mut dyn FnMut(StreamEvent) -> Result<(), NatsError>) -> Result<Seq, NatsError> {
        let name = self.options.stream.clone();
        self.runtime.block_on(async {
            // A cluster that just lost a node elects new leaders for a few seconds: the
            // reader waits for them (up to PATIENCE) rather than fail at the first timeout.
            let started = std::time::Instant::now();
            let (last, mut messages) = loop {
                let attempt = async {
                    let mut stream = self.js.get_stream(&name).await.map_err(|e| self.open_error(&name, e))?;
                    let info = stream.info().await.map_err(|e| self.unavailable(format!("stream {name}"), e))?;
                    let last = info.state.last_sequence;
                    if last == 0 {
                        return Ok((0, None));
                    }
                    let consumer = stream
                        .create_consumer(consumer::pull::OrderedConfig::default())
                        .await
                        .map_err(|e| self.unavailable(format!("reading stream {name}"), e))?;
                    let messages =
                        consumer.messages().await.map_err(|e| self.unavailable(format!("reading stream {name}"), e))?;
                    Ok::<_, NatsError>((last, Some(messages)))
                };
                match attempt.await {
                    Ok((last, Some(messages))) => break (last, messages),
                    Ok((_, None)) => return Ok(Seq::ZERO),
                    Err(error) if error.is_transient() && started.elapsed() < PATIENCE => {
                        tracing::info!(%error, "the stream does not answer yet; retrying");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(error) => return Err(error),
                }
            };
            let mut checker = ChainCheck::new(self.place(), Seq::ZERO, Hash32::ZERO);
            let mut progress = std::time::Instant::now();
            while checker.covers.get() < last {
                let next = tokio::time::timeout(REQUEST_TIMEOUT, messages.next()).await;
                let message = match next {
                    Ok(Some(Ok(message))) => message,
                    // The ordered consumer makes itself again after a missed heartbeat or a
                    // gap; only a reader that makes no progress for PATIENCE gives up.
                    Ok(Some(Err(_))) | Err(_) if progress.elapsed() < PATIENCE => continue,
                    Ok(Some(Err(e))) => return Err(self.unavailable(format!("reading stream {name}"), e)),
                    Ok(None) | Err(_) => {
                        return Err(self.unavailable(
                            format!("reading stream {name}"),
                            format!("no message after seq {} of {last}", checker.covers),
                        ))
                    }
                };
                progress = std::time::Instant::now();
                let event = checker.check(&message)?;
                visit(event)?;
            }
            Ok(checker.covers)
        })
    }

    /// Follows the stream with the durable pull consumer `durable` (acknowledging all up
    /// to a message at once), after `folded` (the last event folded already, its seq
    /// `covers`): the consumer is created at `covers + 1` when it is not there or its
    /// acknowledgements disagree with `covers` (see the body). Events at or before
    /// `covers` are skipped; the next must be `covers + 1` and chain from its hash. `visit` is called with each event;
    /// `checkpoint` after a pause or every [`CHECKPOINT_EVENTS`] events: once it
    /// returns, the events so far are acknowledged. Stops when `visit` or `checkpoint`
    /// says so, when `stop` is set, or after `idle` without a message.
    ///
    /// # Errors
    /// [`NatsError::Chain`] naming the first seq that does not check out (a gap, a bad
    /// link); transport errors.
    pub fn follow(
        &self,
        durable: &str,
        folded: Head,
        idle: Option<Duration>,
        stop: &std::sync::atomic::AtomicBool,
        visit: &mut dyn FnMut(StreamEvent) -> Result<ControlFlow<()>, NatsError>,
        checkpoint: &mut dyn FnMut() -> Result<ControlFlow<()>, NatsError>,
    ) -> Result<(), NatsError> {
        let name = self.options.stream.clone();
        let (covers, hash) = (folded.seq, folded.hash);
        self.runtime.block_on(async {
            // A follower may start before the ledger publishes: it waits for the stream.
            let mut told = false;
            let stream = loop {
                use jetstream::context::GetStreamErrorKind as Kind;
                match self.js.get_stream(&name).await {
                    Ok(stream) => break stream,
                    Err(e) if matches!(e.kind(), Kind::JetStream(js) if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {
                        if !told {
                            tracing::info!(stream = %name, url = %self.url, "waiting for the stream to be created");
                            told = true;
                        }
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return Ok(());
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(self.unavailable(format!("opening stream {name}"), e)),
                }
            };
            let deliver_policy = match covers.get() {
                0 => consumer::DeliverPolicy::All,
                covered => consumer::DeliverPolicy::ByStartSequence { start_sequence: covered + 1 },
            };
            let config = consumer::pull::Config {
                durable_name: Some(durable.to_string()),
                ack_policy: consumer::AckPolicy::All,
                deliver_policy,
                max_ack_pending: (CHECKPOINT_EVENTS * 5) as i64,
                ..Default::default()
            };
            // The follower's saved state is what it has folded, and it acknowledges only
            // what is saved: a consumer whose acknowledgements are elsewhere (messages
            // delivered to a process that stopped, which the server would redeliver only
            // after its ack wait, or a state file older than the consumer) is made again
            // from the state's next seq.
            if let Ok(mut existing) = stream.get_consumer::<consumer::pull::Config>(durable).await {
                let info = existing
                    .info()
                    .await
                    .map_err(|e| self.unavailable(format!("reading consumer {durable} on stream {name}"), e))?;
                let (floor, delivered) = (info.ack_floor.stream_sequence, info.delivered.stream_sequence);
                if floor != covers.get() || delivered != floor {
                    tracing::info!(durable, acked = floor, delivered, covers = %covers, "repositioning the consumer at the projection's state");
                    stream
                        .delete_consumer(durable)
                        .await
                        .map_err(|e| self.unavailable(format!("repositioning consumer {durable} on stream {name}"), e))?;
                }
            }
            let consumer: consumer::PullConsumer = stream
                .get_or_create_consumer(durable, config)
                .await
                .map_err(|e| self.unavailable(format!("opening consumer {durable} on stream {name}"), e))?;
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(ACK_WINDOW)
                .heartbeat(Duration::from_secs(1))
                .expires(Duration::from_secs(5))
                .messages()
                .await
                .map_err(|e| self.unavailable(format!("following consumer {durable}"), e))?;
            let mut checker = ChainCheck::new(self.place(), covers, hash);
            let mut unacked: Option<jetstream::Message> = None;
            let mut since_checkpoint = 0usize;
            let mut last_message = std::time::Instant::now();
            let pause = Duration::from_millis(50);
            loop {
                let next = tokio::time::timeout(pause, messages.next()).await;
                let message = match next {
                    Ok(Some(Ok(message))) => Some(message),
                    Ok(Some(Err(e))) => {
                        tracing::warn!(error = %e, "following consumer {durable}: retrying");
                        None
                    }
                    Ok(None) => {
                        return Err(self.unavailable(format!("following consumer {durable}"), "the stream ended"))
                    }
                    Err(_) => None,
                };
                let mut stop = stop.load(std::sync::atomic::Ordering::Relaxed);
                let arrived = message.is_some();
                if let (false, Some(message)) = (stop, message) {
                    last_message = std::time::Instant::now();
                    let seq = message_seq(&message);
                    if seq.is_some_and(|s| s <= checker.covers) {
                        unacked = Some(message);
                        continue;
                    }
                    let event = checker.check(&message)?;
                    unacked = Some(message);
                    since_checkpoint += 1;
                    stop = visit(event)?.is_break();
                }
                let quiet = !arrived;
                if stop || (quiet && unacked.is_some()) || since_checkpoint >= CHECKPOINT_EVENTS {
                    let done = checkpoint()?.is_break();
                    if let Some(message) = unacked.take() {
                        message.double_ack().await.map_err(|e| {
                            self.unavailable(
                                format!("acknowledging through seq {} on consumer {durable}", checker.covers),
                                e,
                            )
                        })?;
                    }
                    since_checkpoint = 0;
                    if stop || done {
                        return Ok(());
                    }
                }
                if unacked.is_none() && idle.is_some_and(|idle| last_message.elapsed() >= idle) {
                    return Ok(());
                }
            }
        })
    }
}

/// The ledger seq a message's `Ledger-Seq` header names.
fn message_seq(message: &jetstream::Message) -> Option<Seq> {
    let value = message.headers.as_ref()?.get("Ledger-Seq")?;
    value.as_str().parse::<u64>().ok().map(Seq::new)
}

/// Where messages come from, for the errors that name it.
#[derive(Debug, Clone)]
struct Place {
    url: String,
    stream: String,
}

impl Place {
    fn chain_error(&self, seq: Seq, message: impl Into<String>) -> NatsError {
        NatsError::Chain { url: self.url.clone(), stream: self.stream.clone(), seq, message: message.into() }
    }

    /// Reads the ledger id and hash of the message at `seq` from its headers, checking
    /// that `Ledger-Seq` and `Nats-Msg-Id` name `seq`.
    fn check_headers(&self, seq: Seq, headers: &HeaderMap) -> Result<(String, Hash32), NatsError> {
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        let ledger_seq = header("Ledger-Seq").and_then(|s| s.parse::<u64>().ok());
        if ledger_seq != Some(seq.get()) {
            return Err(self.chain_error(
                seq,
                format!("its Ledger-Seq header is {ledger_seq:?}: the stream is out of step with the ledger"),
            ));
        }
        let msg_id = header("Nats-Msg-Id").unwrap_or_default();
        let Some((ledger_id, id_seq)) = msg_id.rsplit_once(':') else {
            return Err(self.chain_error(seq, format!("its Nats-Msg-Id {msg_id:?} is not <ledger_id>:<seq>")));
        };
        if id_seq != seq.to_string() {
            return Err(self.chain_error(seq, format!("its Nats-Msg-Id {msg_id:?} names another seq")));
        }
        let hash = header("Ledger-Hash")
            .and_then(|h| Hash32::from_hex(&h).ok())
            .ok_or_else(|| self.chain_error(seq, "it has no readable Ledger-Hash header"))?;
        Ok((ledger_id.to_string(), hash))
    }
}

/// Checks messages read from the stream: each the next seq, its record chained from
/// the one before, its headers agreeing with its record.
struct ChainCheck {
    place: Place,
    covers: Seq,
    hash: Hash32,
}

impl ChainCheck {
    fn new(place: Place, covers: Seq, hash: Hash32) -> Self {
        ChainCheck { place, covers, hash }
    }

    fn check(&mut self, message: &async_nats::Message) -> Result<StreamEvent, NatsError> {
        let expected = self.covers.next();
        let empty = HeaderMap::new();
        let headers = message.headers.as_ref().unwrap_or(&empty);
        let seq = message_seq_of(headers)
            .ok_or_else(|| self.place.chain_error(expected, "a message without a Ledger-Seq header"))?;
        if seq != expected {
            return Err(self.place.chain_error(expected, format!("missing: the next message is seq {seq}")));
        }
        let (ledger_id, header_hash) = self.place.check_headers(seq, headers)?;
        let wire: WireRecord = serde_json::from_slice(&message.payload)
            .map_err(|e| self.place.chain_error(seq, format!("the payload is not a ledger event: {e}")))?;
        let record = base64::engine::general_purpose::STANDARD
            .decode(wire.record.as_bytes())
            .map_err(|e| self.place.chain_error(seq, format!("its record is not base64: {e}")))?;
        let frame = codec::frame(&record).map_err(|e| self.place.chain_error(seq, e.to_string()))?;
        let linked = frame.stored_prev_hash.is_none_or(|stored| stored == self.hash);
        if !linked || frame.computed_hash(seq, &self.hash) != frame.stored_hash {
            return Err(self.place.chain_error(
                seq,
                format!("the record does not match its hash (changed, or not chained from seq {})", self.covers),
            ));
        }
        if header_hash != frame.stored_hash {
            return Err(self.place.chain_error(seq, "its Ledger-Hash header differs from its record's hash"));
        }
        let event =
            codec::decode_record(seq, &self.hash, &record).map_err(|e| self.place.chain_error(seq, e.to_string()))?;
        self.covers = seq;
        self.hash = frame.stored_hash;
        Ok(StreamEvent { ledger_id, record, event })
    }
}

fn message_seq_of(headers: &HeaderMap) -> Option<Seq> {
    headers.get("Ledger-Seq")?.as_str().parse::<u64>().ok().map(Seq::new)
}

/// The stored hash of the record before `seq` (zero before seq 1).
fn previous_hash(source: &dyn RecordSource, seq: Seq) -> Result<Hash32, NatsError> {
    if seq.get() <= 1 {
        return Ok(Hash32::ZERO);
    }
    let before = Seq::new(seq.get() - 1);
    let mut hash = None;
    let mut failure = None;
    source.visit_records(before, &mut |at, bytes| {
        match codec::frame(bytes) {
            Ok(frame) if at == before => hash = Some(frame.stored_hash),
            Ok(_) => {}
            Err(error) => failure = Some(LogError::Codec { seq: at, error }),
        }
        ControlFlow::Break(())
    })?;
    if let Some(failure) = failure {
        return Err(failure.into());
    }
    hash.ok_or_else(|| NatsError::Log(LogError::Gap { expected: before, found: seq }))
}

/// Reads up to [`ACK_WINDOW`] records from `from` (at most through `through`), checks
/// each against the chain from `prev`, and turns them into messages; returns the last
/// record's hash.
fn read_window(
    ledger_id: &str,
    source: &dyn RecordSource,
    from: Seq,
    through: Seq,
    mut prev: Hash32,
    out: &mut Vec<Outgoing>,
) -> Result<Hash32, NatsError> {
    let mut failure: Option<NatsError> = None;
    let mut expected = from;
    source.visit_records(from, &mut |seq, bytes| {
        if seq > through || out.len() >= ACK_WINDOW {
            return ControlFlow::Break(());
        }
        if seq != expected {
            failure = Some(LogError::Gap { expected, found: seq }.into());
            return ControlFlow::Break(());
        }
        expected = seq.next();
        match outgoing(ledger_id, seq, &prev, bytes) {
            Ok((message, hash)) => {
                out.push(message);
                prev = hash;
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    failure.map_or(Ok(prev), Err)
}

/// The message of the record `bytes` at `seq` of the ledger `ledger_id` (chained from
/// `prev`), and the record's hash.
///
/// # Errors
/// The record does not check out against the chain or does not decode.
pub fn outgoing(ledger_id: &str, seq: Seq, prev: &Hash32, bytes: &[u8]) -> Result<(Outgoing, Hash32), NatsError> {
    let frame = codec::frame(bytes).map_err(|error| LogError::Codec { seq, error })?;
    let linked = frame.stored_prev_hash.is_none_or(|stored| stored == *prev);
    if !linked || frame.computed_hash(seq, prev) != frame.stored_hash {
        return Err(LogError::HashMismatch { seq }.into());
    }
    let event = codec::decode_record(seq, prev, bytes).map_err(|error| LogError::Codec { seq, error })?;
    let (subject, payload) = encode(ledger_id, &event, bytes).map_err(|error| LogError::Codec { seq, error })?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{ledger_id}:{seq}").as_str());
    headers.insert("Ledger-Seq", seq.to_string().as_str());
    headers.insert("Ledger-Hash", frame.stored_hash.to_hex().as_str());
    headers.insert("Ledger-Prev-Hash", prev.to_hex().as_str());
    headers.insert("Content-Type", "application/json");
    Ok((Outgoing { seq, subject, headers, payload }, frame.stored_hash))
}

/// The subject and JSON payload ([`WireEvent`]) of `event`, whose stored record is
/// `record`.
///
/// # Errors
/// [`codec::CodecError::Encode`] if the payload does not serialize.
pub fn encode(ledger_id: &str, event: &Envelope, record: &[u8]) -> Result<(String, Vec<u8>), codec::CodecError> {
    let h = &event.header;
    let wire = WireEvent {
        ledger_id,
        seq: h.seq.get(),
        run_id: h.run_id.get(),
        cycle_id: h.cycle_id.get(),
        causation_seq: h.causation_seq.map(Seq::get),
        ts_event_ns: h.ts_event.nanos(),
        ts_recorded_ns: h.ts_recorded.nanos(),
        schema_version: h.schema_version,
        prev_hash: h.prev_hash.to_hex(),
        hash: h.hash.to_hex(),
        kind: event.payload.kind(),
        payload: &event.payload,
        record: base64::engine::general_purpose::STANDARD.encode(record),
    };
    let payload = serde_json::to_vec(&wire).map_err(|e| codec::CodecError::Encode(e.to_string()))?;
    Ok((subject(event), payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::event::{EventDraft, RunStopped};
    use ledger_core::ids::{CycleId, RunId};
    use ledger_core::log::{EventLog, MemLog};
    use ledger_core::time::TimestampNs;

    #[test]
    fn display_url_leaves_credentials_out() {
        let cases = [
            // TC0: nothing to hide.
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            // TC1: user and password.
            ("nats://alice:s3cret@nats.internal:4222", "nats://nats.internal:4222"),
            // TC2: a token without a scheme, and a second server.
            ("tok@a:4222,tls://b:4222", "a:4222,tls://b:4222"),
        ];
        for (url, shown) in cases {
            assert_eq!(NatsOptions::from_env(url, DEFAULT_STREAM, 1).display_url(), shown, "{url}");
        }
    }

    fn ledger(n: usize) -> MemLog {
        let mut log = MemLog::new();
        let drafts = (0..n)
            .map(|i| EventDraft {
                run_id: RunId::new(2),
                cycle_id: CycleId::new(i as u64),
                causation_seq: None,
                ts_event: TimestampNs::from_nanos(1_000 + i as i64),
                ts_recorded: TimestampNs::from_nanos(2_000 + i as i64),
                payload: Payload::RunStopped(RunStopped { reason: "x".into(), skipped_rows: 0 }),
            })
            .collect();
        log.append(&mut { drafts }).unwrap();
        log
    }

    #[test]
    fn a_message_carries_its_record_and_the_chain_checks_out_from_it() {
        let log = ledger(3);
        let mut window = Vec::new();
        let head = read_window("abc", &log, Seq::new(1), Seq::new(3), Hash32::ZERO, &mut window).unwrap();
        assert_eq!(head, log.head().hash);
        assert_eq!(window.iter().map(|m| m.seq.get()).collect::<Vec<_>>(), [1, 2, 3]);
        let second = &window[1];
        assert_eq!(second.subject, "ledger.2.RunStopped");
        assert_eq!(second.headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("abc:2"));
        let json: serde_json::Value = serde_json::from_slice(&second.payload).unwrap();
        assert_eq!(json["ts_recorded_ns"], 2_001);
        assert_eq!(json["payload"]["RunStopped"]["reason"], "x");
        // The record in the message recomputes the hash from the previous one.
        let record = base64::engine::general_purpose::STANDARD.decode(json["record"].as_str().unwrap()).unwrap();
        let prev = Hash32::from_hex(json["prev_hash"].as_str().unwrap()).unwrap();
        let frame = codec::frame(&record).unwrap();
        assert_eq!(frame.computed_hash(Seq::new(2), &prev).to_hex(), json["hash"]);
        // TC1: a window chained from the wrong hash is refused, naming the seq.
        let mut again = Vec::new();
        let refused = read_window("abc", &log, Seq::new(2), Seq::new(3), Hash32::ZERO, &mut again);
        assert!(matches!(refused, Err(NatsError::Log(LogError::HashMismatch { seq })) if seq == Seq::new(2)));
        // TC2: a window stops at `through` and at the first missing seq's predecessor.
        let mut short = Vec::new();
        read_window("abc", &log, Seq::new(1), Seq::new(2), Hash32::ZERO, &mut short).unwrap();
        assert_eq!(short.len(), 2);
        assert_eq!(previous_hash(&log, Seq::new(3)).unwrap(), frame.stored_hash);
    }

    fn message(out: &Outgoing) -> async_nats::Message {
        async_nats::Message {
            subject: out.subject.as_str().into(),
            reply: None,
            payload: out.payload.clone().into(),
            headers: Some(out.headers.clone()),
            status: None,
            description: None,
            length: out.payload.len(),
        }
    }

    #[test]
    fn a_follower_refuses_a_gap_or_a_bad_link_naming_the_seq() {
        let log = ledger(4);
        let mut window = Vec::new();
        read_window("abc", &log, Seq::new(1), Seq::new(4), Hash32::ZERO, &mut window).unwrap();
        let place = || Place { url: "nats://x".into(), stream: "LEDGER".into() };
        let seq_of = |result: Result<StreamEvent, NatsError>| match result {
            Err(NatsError::Chain { seq, message, .. }) => (seq.get(), message),
            other => panic!("expected a chain error, got {other:?}"),
        };
        // TC0: in order, every message checks out and decodes to its event.
        let mut check = ChainCheck::new(place(), Seq::ZERO, Hash32::ZERO);
        for out in &window {
            let event = check.check(&message(out)).unwrap();
            assert_eq!(event.event.header.seq, out.seq);
            assert_eq!(event.ledger_id, "abc");
        }
        assert_eq!(check.hash, log.head().hash);
        // TC1: a gap: seq 3 after seq 1.
        let mut check = ChainCheck::new(place(), Seq::ZERO, Hash32::ZERO);
        check.check(&message(&window[0])).unwrap();
        let (seq, text) = seq_of(check.check(&message(&window[2])));
        assert_eq!((seq, text.as_str()), (2, "missing: the next message is seq 3"));
        // TC2: a bad link: seq 2 followed from another hash than seq 1's.
        let mut check = ChainCheck::new(place(), Seq::new(1), Hash32::digest(b"not seq 1"));
        assert_eq!(seq_of(check.check(&message(&window[1]))).0, 2);
        // TC3: a changed byte in the record (JSON rewritten with it).
        let mut json: serde_json::Value = serde_json::from_slice(&window[0].payload).unwrap();
        let engine = base64::engine::general_purpose::STANDARD;
        let mut record = engine.decode(json["record"].as_str().unwrap()).unwrap();
        record[3] ^= 1;
        json["record"] = engine.encode(&record).into();
        let changed = Outgoing { payload: serde_json::to_vec(&json).unwrap(), ..read_one(&log) };
        let (seq, text) = seq_of(ChainCheck::new(place(), Seq::ZERO, Hash32::ZERO).check(&message(&changed)));
        assert_eq!(seq, 1);
        assert!(text.contains("does not match its hash"), "{text}");
        // TC4: a Ledger-Hash header that is not the record's.
        let mut forged = read_one(&log);
        forged.headers.insert("Ledger-Hash", Hash32::digest(b"x").to_hex().as_str());
        let (_, text) = seq_of(ChainCheck::new(place(), Seq::ZERO, Hash32::ZERO).check(&message(&forged)));
        assert!(text.contains("Ledger-Hash"), "{text}");
    }

    fn read_one(log: &MemLog) -> Outgoing {
        let mut window = Vec::new();
        read_window("abc", log, Seq::new(1), Seq::new(1), Hash32::ZERO, &mut window).unwrap();
        window.remove(0)
    }
}
