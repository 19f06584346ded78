//! [`BinanceFeed`]: Binance's combined websocket stream as a [`MarketFeed`].
//!
//! A thread of its own holds the connection (tokio-tungstenite on a one-thread tokio
//! runtime) and hands the text messages over a bounded channel in batches (those ready
//! together, stamped with one read of the local clock); the feed decodes them on the
//! caller's thread ([`StreamDecoder`]). A lost
//! connection is made again after a backoff that doubles up to a ceiling; a connection
//! older than the planned age (Binance cuts them at 24 hours) is closed and made again
//! at once. Every loss, reconnection and gap is a [`VenueNotice`] for the run to record.

use std::convert::Infallible;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use ledger_core::event::{NoticeKind, VenueNotice};
use ledger_core::feed::{MarketFeed, Tick};
use ledger_core::ids::InstrumentId;
use ledger_core::time::{Clock, TimestampNs};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::stream::{StreamDecoder, VENUE};
use crate::clock::WallClock;

/// Where and how the feed connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSettings {
    /// The websocket base URL, e.g. `wss://stream.testnet.binance.vision` (the feed
    /// connects to `<base>/stream?streams=<a>/<b>/...`).
    pub ws_url: String,
    /// The instruments (Binance symbols, `BTCUSDT`).
    pub instruments: Vec<InstrumentId>,
    /// Stream kinds per symbol: `trade`, `bookTicker`, `kline_1m`, ...
    pub streams: Vec<String>,
    /// Failed connections in a row after which the feed ends (`None`: it never gives
    /// up). 0: the feed ends when its first connection ends.
    pub max_reconnects: Option<u32>,
    /// The first wait before connecting again; it doubles after each failure.
    pub backoff_initial: Duration,
    /// The longest wait before connecting again.
    pub backoff_max: Duration,
    /// Age at which a connection is closed and made again at once (Binance closes
    /// connections at 24 hours).
    pub max_connection_age: Duration,
}

impl FeedSettings {
    /// The combined stream's URL: `<ws_url>/stream?streams=btcusdt@trade/...`.
    pub fn url(&self) -> String {
        let names: Vec<String> = self
            .instruments
            .iter()
            .flat_map(|i| self.streams.iter().map(move |s| format!("{}@{s}", i.as_str().to_ascii_lowercase())))
            .collect();
        format!("{}/stream?streams={}", self.ws_url.trim_end_matches('/'), names.join("/"))
    }
}

/// What the connection thread hands the feed.
enum Incoming {
    /// Text messages that were ready together, with their local receive time (UTC ns,
    /// read once when the first of them came).
    Messages(Vec<Utf8Bytes>, TimestampNs),
    /// A connection lost or made again, seen at that time.
    Notice(VenueNotice, TimestampNs),
    /// The feed gave up (see [`FeedSettings::max_reconnects`]).
    End,
}

/// Hand-overs (batches of up to [`BATCH`] messages, or notices) held between the
/// connection and the decoder before the connection waits: enough to ride out a slow
/// cycle, few enough that the messages' buffers are reused rather than the heap grown
/// by a whole backlog.
const CHANNEL_CAPACITY: usize = 64;

/// Binance's market data as ticks in arrival order (see the module docs). Messages that
/// do not decode, gaps and connection losses are not errors: they are kept as notices
/// ([`BinanceFeed::take_notices`]) and the feed goes on.
pub struct BinanceFeed {
    incoming: Receiver<Incoming>,
    /// Messages received and not decoded yet, and the time they were received.
    pending: std::vec::IntoIter<Utf8Bytes>,
    received: TimestampNs,
    decoder: StreamDecoder,
    notices: Vec<(VenueNotice, TimestampNs)>,
}

impl BinanceFeed {
    /// Starts the connection thread for `settings`; the first connection is made there.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn connect(settings: FeedSettings) -> std::io::Result<Self> {
        let (sender, incoming) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let decoder = StreamDecoder::new(&settings.instruments);
        std::thread::Builder::new().name("binance-feed".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(hold_connection(settings, sender)),
                Err(error) => {
                    let notice = notice(NoticeKind::Disconnected, "", 0, format!("no runtime: {error}"));
                    let _ = sender.send(Incoming::Notice(notice, WallClock.now()));
                    let _ = sender.send(Incoming::End);
                }
            }
        })?;
        let pending = Vec::new().into_iter();
        Ok(BinanceFeed { incoming, pending, received: TimestampNs::from_nanos(0), decoder, notices: Vec::new() })
    }

    /// The notices seen since the last call, in order, with the local time each was
    /// seen (UTC ns): gaps, dropped messages, connections lost and made again.
    pub fn take_notices(&mut self) -> Vec<(VenueNotice, TimestampNs)> {
        std::mem::take(&mut self.notices)
    }

    /// Messages decoded so far (ticks or not).
    pub fn messages(&self) -> u64 {
        self.decoder.messages()
    }
}

impl MarketFeed for BinanceFeed {
    type Error = Infallible;

    /// The next tick, waiting for it; `None` once the feed has given up reconnecting.
    fn next_tick(&mut self) -> Result<Option<Tick>, Infallible> {
        loop {
            let Some(text) = self.pending.next() else {
                match self.incoming.recv() {
                    Ok(Incoming::Messages(batch, received)) => {
                        (self.pending, self.received) = (batch.into_iter(), received)
                    }
                    Ok(Incoming::Notice(notice, at)) => self.notices.push((notice, at)),
                    Ok(Incoming::End) | Err(_) => return Ok(None),
                }
                continue;
            };
            let received = self.received;
            match self.decoder.decode(&text, received) {
                Ok(decoded) => {
                    if let Some(notice) = decoded.notice {
                        self.notices.push((notice, received));
                    }
                    if let Some(tick) = decoded.tick {
                        return Ok(Some(tick));
                    }
                }
                Err(error) => {
                    let detail = format!("dropped: {error}");
                    self.notices.push((notice(NoticeKind::Unreadable, "", 0, detail), received));
                }
            }
        }
    }
}

/// A notice from the feed about `stream`.
fn notice(kind: NoticeKind, stream: &str, value: i64, detail: String) -> VenueNotice {
    VenueNotice { venue: Arc::from(VENUE), kind, stream: Arc::from(stream), value, detail: Arc::from(detail.as_str()) }
}

/// Why a connection ended.
enum Ended {
    /// It reached its planned age: made again at once.
    Planned,
    /// The server closed it or it failed, with the reason.
    Lost(String),
    /// The feed was dropped: nobody listens any more.
    Unwanted,
}

/// Connects, reads and reconnects until the feed is dropped or gives up.
async fn hold_connection(settings: FeedSettings, sender: SyncSender<Incoming>) {
    let url = settings.url();
    let (mut failures, mut backoff, mut connected_before) = (0u32, settings.backoff_initial, false);
    loop {
        let reason = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((socket, _)) => {
                if connected_before {
                    let detail = format!("connected again to {url}");
                    let _ = sender.send(Incoming::Notice(
                        notice(NoticeKind::Reconnected, "", i64::from(failures), detail),
                        WallClock.now(),
                    ));
                }
                connected_before = true;
                (failures, backoff) = (0, settings.backoff_initial);
                match read(socket, &sender, settings.max_connection_age).await {
                    Ended::Unwanted => return,
                    Ended::Planned => {
                        let detail = "planned reconnect: the connection reached its maximum age".to_string();
                        let lost = notice(NoticeKind::Disconnected, "", 0, detail);
                        if sender.send(Incoming::Notice(lost, WallClock.now())).is_err() {
                            return;
                        }
                        continue;
                    }
                    Ended::Lost(reason) => reason,
                }
            }
            Err(error) => format!("cannot connect: {error}"),
        };
        failures = failures.saturating_add(1);
        let give_up = settings.max_reconnects.is_some_and(|max| failures > max);
        let detail = match give_up {
            true => format!("{reason}; giving up after {failures} failure(s) in a row"),
            false => format!("{reason}; connecting again in {} ms", backoff.as_millis()),
        };
        let lost = notice(NoticeKind::Disconnected, "", i64::from(failures), detail);
        if sender.send(Incoming::Notice(lost, WallClock.now())).is_err() || give_up {
            let _ = sender.send(Incoming::End);
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(settings.backoff_max);
    }
}

/// Most messages handed over at once.
const BATCH: usize = 1024;

/// Reads `socket` until it ends, handing its text messages to `sender`: each message
/// with the messages already waiting behind it, in one batch (one hand-over and one
/// clock read, not one per message).
async fn read<S>(mut socket: S, sender: &SyncSender<Incoming>, max_age: Duration) -> Ended
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::sleep(max_age);
    tokio::pin!(deadline);
    loop {
        let next = tokio::select! {
            next = socket.next() => next,
            () = &mut deadline => return Ended::Planned,
        };
        let received = WallClock.now();
        let mut batch = Vec::new();
        let mut ended = take(next, &mut batch);
        while ended.is_none() && batch.len() < BATCH {
            match socket.next().now_or_never() {
                Some(next) => ended = take(next, &mut batch),
                None => break,
            }
        }
        // A full channel waits here: the connection is read no faster than the run
        // takes the ticks.
        if !batch.is_empty() && sender.send(Incoming::Messages(batch, received)).is_err() {
            return Ended::Unwanted;
        }
        if let Some(ended) = ended {
            return ended;
        }
    }
}

/// Adds `next`'s text to `batch`; returns how the connection ended, if it did.
fn take(
    next: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    batch: &mut Vec<Utf8Bytes>,
) -> Option<Ended> {
    match next {
        Some(Ok(Message::Text(text))) => {
            batch.push(text);
            None
        }
        Some(Ok(Message::Close(frame))) => {
            let why = frame.map_or_else(|| "no reason".to_string(), |f| format!("{} {}", f.code, f.reason));
            Some(Ended::Lost(format!("the server closed the connection ({why})")))
        }
        // Pings are answered by tungstenite; binary frames are not Binance's.
        Some(Ok(_)) => None,
        Some(Err(error)) => Some(Ended::Lost(format!("connection failed: {error}"))),
        None => Some(Ended::Lost("the connection ended".to_string())),
    }
}
