//! [`UserStream`]: Binance's user data stream, what becomes of our orders as the
//! exchange pushes it, over the websocket API's `userDataStream.subscribe.signature`.
//!
//! Why the websocket API and not a listen key: Binance announced the listen-key
//! endpoints (`POST/PUT/DELETE /api/v3/userDataStream`) deprecated on spot on
//! 2025-04-01 and removed them from its documentation on 2025-10-24 (still served until
//! a retirement date); the spot testnet serves the websocket API's subscription at
//! `wss://ws-api.testnet.binance.vision/ws-api/v3` today, and a signed subscription
//! needs no keepalive (a listen key needs a PUT every 30 minutes and expires after 60).
//!
//! A thread of its own holds the connection (tokio-tungstenite on a one-thread tokio
//! runtime, as the market data feed): it subscribes, signing `apiKey` and `timestamp`
//! with HMAC-SHA256, then hands each `executionReport` and `outboundAccountPosition`
//! over a channel, read with [`UserStream::try_next`]. A lost connection is made again
//! after a backoff that doubles up to a ceiling; [`UserEvent::Down`] and
//! [`UserEvent::Up`] say when (the venue polls while it is down and reconciles when it
//! is up again).

use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use super::rest::{sign, Credentials};
use crate::clock::WallClock;
use ledger_core::time::Clock;

/// The websocket API's address on the testnet.
pub const TESTNET_WS_API: &str = "wss://ws-api.testnet.binance.vision/ws-api/v3";
/// The websocket API's address on the real exchange.
pub const LIVE_WS_API: &str = "wss://ws-api.binance.com:443/ws-api/v3";

/// What the user data stream says.
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    /// Subscribed (`reconnect`: after a lost connection).
    Up {
        /// Whether this follows a lost connection.
        reconnect: bool,
    },
    /// The connection was lost, with the reason; it is made again after the backoff.
    Down(String),
    /// An order's execution report. (Boxed: the largest variant.)
    Execution(Box<ExecutionReport>),
    /// Balances changed (`outboundAccountPosition`): asset, free, locked, as sent.
    Balances(Vec<(String, String, String)>),
    /// A message that could not be read, with the reason.
    Unreadable(String),
    /// An event not used (`balanceUpdate`, `listStatus`, ...), by its kind.
    Other(String),
}

/// `executionReport`, the fields used (Binance's one-letter names).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExecutionReport {
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Client order id (for a cancellation, the cancel request's own).
    #[serde(rename = "c")]
    pub client_order_id: String,
    /// The canceled order's client order id (empty unless canceled).
    #[serde(rename = "C", default)]
    pub orig_client_order_id: String,
    /// Execution type: `NEW`, `TRADE`, `CANCELED`, `EXPIRED`, `REJECTED`, ...
    #[serde(rename = "x")]
    pub execution_type: String,
    /// Order status: `NEW`, `PARTIALLY_FILLED`, `FILLED`, `CANCELED`, `EXPIRED`, ...
    #[serde(rename = "X")]
    pub status: String,
    /// Rejection reason (`NONE` when none).
    #[serde(rename = "r", default)]
    pub reject_reason: String,
    /// Last executed quantity, base units (decimal string).
    #[serde(rename = "l")]
    pub last_qty: String,
    /// Last executed price, quote currency (decimal string).
    #[serde(rename = "L")]
    pub last_price: String,
    /// Commission of this execution (decimal string).
    #[serde(rename = "n")]
    pub commission: String,
    /// Commission asset (`null` without a trade).
    #[serde(rename = "N", default)]
    pub commission_asset: Option<String>,
    /// Trade id (-1 without a trade).
    #[serde(rename = "t")]
    pub trade_id: i64,
    /// Whether the trade made liquidity.
    #[serde(rename = "m", default)]
    pub is_maker: bool,
}

impl ExecutionReport {
    /// The order it is about: the canceled order's id for a cancellation, else `c`.
    pub fn order_id(&self) -> &str {
        if self.orig_client_order_id.is_empty() {
            &self.client_order_id
        } else {
            &self.orig_client_order_id
        }
    }
}

/// How the stream connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStreamSettings {
    /// The websocket API's URL (`wss://ws-api.testnet.binance.vision/ws-api/v3`).
    pub url: String,
    /// First wait before connecting again, doubled after each failure.
    pub backoff_initial: Duration,
    /// Longest wait before connecting again.
    pub backoff_max: Duration,
    /// Server time minus local time, ms (signs the subscription's timestamp).
    pub offset_ms: i64,
}

/// The user data stream's receiving end (see the module docs).
pub struct UserStream {
    events: Receiver<UserEvent>,
}

impl UserStream {
    /// Starts the stream's thread.
    ///
    /// # Errors
    /// The thread cannot start.
    pub fn connect(settings: UserStreamSettings, credentials: Credentials) -> std::io::Result<Self> {
        let (sender, events) = mpsc::channel();
        std::thread::Builder::new().name("binance-user-stream".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(hold(settings, credentials, sender)),
                Err(error) => {
                    let _ = sender.send(UserEvent::Down(format!("no runtime: {error}")));
                }
            }
        })?;
        Ok(UserStream { events })
    }

    /// The next event already received, if any (never waits).
    pub fn try_next(&self) -> Option<UserEvent> {
        self.events.try_recv().ok()
    }
}

/// Connects, subscribes and reads until the receiving end is dropped.
async fn hold(settings: UserStreamSettings, credentials: Credentials, sender: Sender<UserEvent>) {
    let (mut backoff, mut connected_before) = (settings.backoff_initial, false);
    loop {
        let reason = match session(&settings, &credentials, &sender, connected_before).await {
            Ok(Session::Unwanted) => return,
            Ok(Session::Ended(reason)) => {
                connected_before = true;
                backoff = settings.backoff_initial;
                reason
            }
            Err(reason) => reason,
        };
        let detail = format!("{reason}; connecting again in {} ms", backoff.as_millis());
        if sender.send(UserEvent::Down(detail)).is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(settings.backoff_max);
    }
}

/// How a subscribed session ended.
enum Session {
    /// The connection was lost or closed, with the reason.
    Ended(String),
    /// Nobody reads the events any more.
    Unwanted,
}

/// The websocket API's answer to a request, the fields used.
#[derive(Deserialize)]
struct Answer {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// A pushed event: `{"subscriptionId":0,"event":{...}}`.
#[derive(Deserialize)]
struct Pushed {
    event: serde_json::Value,
}

/// `outboundAccountPosition`'s balances.
#[derive(Deserialize)]
struct Position {
    #[serde(rename = "B")]
    balances: Vec<PositionBalance>,
}

#[derive(Deserialize)]
struct PositionBalance {
    #[serde(rename = "a")]
    asset: String,
    #[serde(rename = "f")]
    free: String,
    #[serde(rename = "l")]
    locked: String,
}

/// One connection: subscribe, then read. `Err` when it never got subscribed.
async fn session(
    settings: &UserStreamSettings,
    credentials: &Credentials,
    sender: &Sender<UserEvent>,
    reconnect: bool,
) -> Result<Session, String> {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(settings.url.as_str()).await.map_err(|e| format!("cannot connect: {e}"))?;
    let timestamp = WallClock.now().nanos() / 1_000_000 + settings.offset_ms;
    // Parameters signed in alphabetical order of their names.
    let payload = format!("apiKey={}&timestamp={timestamp}", credentials.key());
    let signature = sign(credentials.secret(), &payload);
    let request = serde_json::json!({
        "id": "subscribe",
        "method": "userDataStream.subscribe.signature",
        "params": { "apiKey": credentials.key(), "timestamp": timestamp, "signature": signature },
    });
    socket.send(Message::text(request.to_string())).await.map_err(|e| format!("subscribing: {e}"))?;
    let mut subscribed = false;
    loop {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                return ended(subscribed, format!("closed by the server ({why})"));
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => return ended(subscribed, format!("lost: {error}")),
            None => return ended(subscribed, "lost: the connection closed".into()),
        };
        let event = if !subscribed {
            match serde_json::from_str::<Answer>(&text) {
                Ok(answer) if answer.status == 200 => {
                    subscribed = true;
                    UserEvent::Up { reconnect }
                }
                Ok(answer) => {
                    let error = answer.error.map(|e| e.to_string()).unwrap_or_default();
                    return Err(format!("subscription refused: HTTP {} {error}", answer.status));
                }
                Err(error) => return Err(format!("subscription answer unreadable: {error}")),
            }
        } else {
            read_event(&text)
        };
        if sender.send(event).is_err() {
            return Ok(Session::Unwanted);
        }
    }
}

fn ended(subscribed: bool, reason: String) -> Result<Session, String> {
    if subscribed {
        Ok(Session::Ended(reason))
    } else {
        Err(reason)
    }
}

/// A pushed message as an event.
fn read_event(text: &str) -> UserEvent {
    let pushed: Pushed = match serde_json::from_str(text) {
        Ok(pushed) => pushed,
        Err(error) => return UserEvent::Unreadable(format!("user data stream: {error}")),
    };
    let kind = pushed.event.get("e").and_then(|e| e.as_str()).unwrap_or("").to_string();
    let read = match kind.as_str() {
        "executionReport" => serde_json::from_value(pushed.event).map(|r| UserEvent::Execution(Box::new(r))),
        "outboundAccountPosition" => serde_json::from_value::<Position>(pushed.event)
            .map(|p| UserEvent::Balances(p.balances.into_iter().map(|b| (b.asset, b.free, b.locked)).collect())),
        // Other events (balanceUpdate, listStatus, eventStreamTerminated) are not used.
        _ => return UserEvent::Other(kind),
    };
    read.unwrap_or_else(|error| UserEvent::Unreadable(format!("{kind}: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binance's documented `executionReport` example (spot user data stream), a trade.
    #[test]
    fn an_execution_report_reads_as_binance_sends_it() {
        let text = r#"{"subscriptionId":0,"event":{"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"mUvoqJxFIILMdfAW5iGSOW","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":4293153,"l":"0.50000000","z":"0.50000000","L":"0.10264410","n":"0.00005000","N":"BNB","T":1499405658657,"t":77,"I":8641984,"w":false,"m":true,"M":false,"O":1499405658657,"Z":"0.05132205","Y":"0.05132205","Q":"0.00000000","W":1499405658657,"V":"NONE"}}"#;
        let UserEvent::Execution(report) = read_event(text) else { panic!("{:?}", read_event(text)) };
        assert_eq!(report.order_id(), "mUvoqJxFIILMdfAW5iGSOW");
        assert_eq!((report.execution_type.as_str(), report.status.as_str()), ("TRADE", "PARTIALLY_FILLED"));
        assert_eq!((report.last_qty.as_str(), report.last_price.as_str()), ("0.50000000", "0.10264410"));
        assert_eq!((report.commission.as_str(), report.commission_asset.as_deref()), ("0.00005000", Some("BNB")));
        assert_eq!((report.trade_id, report.is_maker), (77, true));
        let canceled = text.replace(r#""C":"""#, r#""C":"r1-4""#);
        let UserEvent::Execution(report) = read_event(&canceled) else { panic!() };
        assert_eq!(report.order_id(), "r1-4");
        assert!(matches!(read_event("{not json"), UserEvent::Unreadable(_)));
    }
}
