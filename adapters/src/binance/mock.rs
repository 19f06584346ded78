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

/// What the REST mock answers to an order, in turn; once the script is used up, it
/// fills every order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderScript {
    /// A market order fills in two parts (at the fill price and one tick above it,
    /// commission 0.1% in the quote asset); a limit or stop order rests (`NEW`).
    Fill,
    /// HTTP 400, `-2010` "Account has insufficient balance for requested action."
    InsufficientBalance,
    /// HTTP 400, `-1013` "Filter failure: NOTIONAL".
    FilterFailure,
    /// HTTP 429 with `Retry-After` of this many seconds.
    RateLimited(u64),
    /// The order is taken and filled as [`OrderScript::Fill`], but the connection is
    /// closed without an answer (the answer lost on the way back).
    NoAnswer,
    /// The connection is closed without an answer and the order is not taken (lost on
    /// the way there).
    Lost,
    /// The order is taken and filled as [`OrderScript::Fill`], and the request is held
    /// without an answer for 30 s (the client is killed meanwhile: an order in flight).
    /// [`TakenRequest::status`] is 1.
    Hang,
    /// The order is answered `NEW` (taken, nothing filled yet) and filled at once as
    /// [`OrderScript::Fill`]: its fills reach the client only over the user data
    /// stream ([`RestMock::serve_user_stream`]) or its queries.
    FillLater,
    /// A market order is answered `PARTIALLY_FILLED` with its first fill; the rest
    /// stays to fill until [`RestMock::complete_order`].
    PartFill,
    /// As [`OrderScript::FillLater`], but the user data stream is cut first (its
    /// connection dropped, the next two connections refused), so the fills' execution
    /// reports are lost: the client finds them in the trade history.
    FillDuringOutage,
}

/// The status [`TakenRequest`] shows for a request held without an answer.
const HANG: u16 = 1;

/// A request the REST mock took, for a test to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenRequest {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// `/api/v3/order`.
    pub path: String,
    /// The query string as sent (signature included).
    pub query: String,
    /// The head's lines (request line and headers), as sent.
    pub head: String,
    /// What the mock answered: the HTTP status.
    pub status: u16,
}

/// An order the REST mock holds.
#[derive(Debug, Clone)]
struct MockOrder {
    order_id: u64,
    status: &'static str,
    executed: rust_decimal::Decimal,
    /// Its trades, as `myTrades` lists them (JSON objects).
    trades: Vec<String>,
    /// A fill still to come ([`OrderScript::PartFill`]): its quantity, its trade (as
    /// `myTrades` lists it) and its execution report.
    rest: Option<(rust_decimal::Decimal, String, String)>,
}

struct RestState {
    key: String,
    secret: String,
    fill_price: rust_decimal::Decimal,
    script: std::collections::VecDeque<OrderScript>,
    taken: Vec<TakenRequest>,
    orders: std::collections::HashMap<String, MockOrder>,
    next_id: u64,
    /// The asset commission is charged in and its price in USDT (`None`: USDT).
    commission_in: Option<(String, rust_decimal::Decimal)>,
    /// The user data stream's events so far (the `event` objects), in order.
    user_events: Vec<String>,
    /// Bumped when the user data stream is cut: a connection of an earlier cut ends.
    cuts: u64,
    /// The account's balances (free; nothing locked), moved by every trade.
    balances: std::collections::BTreeMap<String, rust_decimal::Decimal>,
    /// Reads of `/api/v3/account` so far.
    account_reads: u64,
    /// A change to a balance made after the first account read (behind the client's
    /// back).
    shift_after_first_read: Option<(String, rust_decimal::Decimal)>,
    /// User data stream connections still to refuse.
    refuse_connections: u32,
}

/// A Binance spot REST API stand-in on loopback: `/api/v3/time`, `/api/v3/exchangeInfo`
/// (BTCUSDT with real-shaped filters: tickSize 0.01, stepSize 0.00001, minNotional
/// 5), `/api/v3/ticker/price` (the commission asset's, see
/// [`RestMock::charge_commission_in`]), and the signed `/api/v3/order` (POST, GET,
/// DELETE), `/api/v3/myTrades`, `/api/v3/openOrders` and `/api/v3/account`,
/// answering as Binance does. A signed request is refused unless its API key and its
/// HMAC-SHA256 signature are right (`-2015`, `-1022`) and its timestamp is within its
/// `recvWindow` (`-1021`). HTTP/1.1, one request per connection.
pub struct RestMock {
    addr: SocketAddr,
    state: Arc<std::sync::Mutex<RestState>>,
}

impl RestMock {
    /// A mock expecting `key` and signatures made with `secret`, filling market orders
    /// at `fill_price`, answering orders by `script` in turn.
    ///
    /// # Errors
    /// No loopback port can be bound.
    pub fn start(
        key: &str,
        secret: &str,
        fill_price: rust_decimal::Decimal,
        script: Vec<OrderScript>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(std::sync::Mutex::new(RestState {
            key: key.to_string(),
            secret: secret.to_string(),
            fill_price,
            script: script.into(),
            taken: Vec::new(),
            orders: std::collections::HashMap::new(),
            next_id: 1,
            commission_in: None,
            user_events: Vec::new(),
            cuts: 0,
            refuse_connections: 0,
            balances: [("BTC", rust_decimal::Decimal::ONE), ("USDT", rust_decimal::Decimal::new(100_000, 0))]
                .into_iter()
                .map(|(asset, free)| (asset.to_string(), free))
                .collect(),
            account_reads: 0,
            shift_after_first_read: None,
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve_rest(stream, &shared));
            }
        });
        Ok(RestMock { addr, state })
    }

    /// The base URL to configure: `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Puts a resting limit order with client order id `id` on the book (an order left
    /// working by an earlier session, or placed by hand).
    pub fn add_open_order(&self, id: &str) {
        if let Ok(mut state) = self.state.lock() {
            let order_id = state.next_id;
            state.next_id += 1;
            let order = MockOrder {
                order_id,
                status: "NEW",
                executed: rust_decimal::Decimal::ZERO,
                trades: Vec::new(),
                rest: None,
            };
            state.orders.insert(id.to_string(), order);
        }
    }

    /// Charges commission in `asset` from now on (0.1% of the fill's notional, at
    /// `price` USDT per unit of it), and lists `price` as `<asset>USDT`'s last price
    /// (`/api/v3/ticker/price`), as an account paying fees in BNB.
    pub fn charge_commission_in(&self, asset: &str, price: rust_decimal::Decimal) {
        if let Ok(mut state) = self.state.lock() {
            state.commission_in = Some((asset.to_string(), price));
        }
    }

    /// Serves the websocket API's user data stream on loopback
    /// (`userDataStream.subscribe.signature`, the signature checked): pushes the
    /// `executionReport` of each order taken, fill and cancellation from the moment a
    /// client subscribes. Returns its URL, `ws://127.0.0.1:<port>/ws-api/v3`.
    ///
    /// # Errors
    /// No loopback port can be bound.
    pub fn serve_user_stream(&self) -> std::io::Result<String> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::clone(&self.state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve_user_stream(stream, &shared));
            }
        });
        Ok(format!("ws://{addr}/ws-api/v3"))
    }

    /// Fills the rest of an order answered as [`OrderScript::PartFill`] (its trade in
    /// the history, its execution report pushed); returns whether there was such an
    /// order.
    pub fn complete_order(&self, id: &str) -> bool {
        let Ok(mut state) = self.state.lock() else { return false };
        let Some(order) = state.orders.get_mut(id) else { return false };
        let Some((part, trade, report)) = order.rest.take() else { return false };
        order.executed += part;
        order.status = "FILLED";
        order.trades.push(trade.clone());
        state.user_events.push(report);
        book_trade(&mut state, &trade, false);
        true
    }

    /// Changes the balance of `asset` by `by` after the first account read (a trade
    /// made by hand, a deposit: a difference the client's reconciliation finds).
    pub fn shift_balance_after_first_read(&self, asset: &str, by: rust_decimal::Decimal) {
        if let Ok(mut state) = self.state.lock() {
            state.shift_after_first_read = Some((asset.to_string(), by));
        }
    }

    /// Every request taken so far, in order.
    pub fn taken(&self) -> Vec<TakenRequest> {
        self.state.lock().map(|s| s.taken.clone()).unwrap_or_default()
    }
}

/// Reads one request from `stream`, answers it, and closes the connection.
fn serve_rest(stream: std::net::TcpStream, state: &std::sync::Mutex<RestState>) {
    use std::io::Write;
    let mut reader = BufReader::new(&stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => head.push_str(&line),
        }
    }
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or("").to_string(), words.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let api_key = header("x-mbx-apikey");
    let (status, extra, body) = match state.lock() {
        Ok(mut state) => {
            let answer = answer_rest(&mut state, &method, &path, &query, api_key.as_deref());
            let weight = state.taken.len() + 1;
            state.taken.push(TakenRequest {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                head: head.clone(),
                status: answer.0,
            });
            (answer.0, format!("{}X-MBX-USED-WEIGHT-1M: {weight}\r\n", answer.1), answer.2)
        }
        Err(_) => (500, String::new(), "{}".to_string()),
    };
    if status == HANG {
        // No answer for longer than a client waits; the connection stays open.
        std::thread::sleep(std::time::Duration::from_secs(30));
        return;
    }
    if status == 0 {
        return; // no answer: the connection closes
    }
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
}

/// `(status, extra header lines, body)` for one request.
fn answer_rest(
    state: &mut RestState,
    method: &str,
    path: &str,
    query: &str,
    api_key: Option<&str>,
) -> (u16, String, String) {
    let error =
        |status: u16, code: i64, msg: &str| (status, String::new(), format!(r#"{{"code":{code},"msg":"{msg}"}}"#));
    let now_ms = ledger_core::time::Clock::now(&crate::clock::WallClock).nanos() / 1_000_000;
    match (method, path) {
        ("GET", "/api/v3/time") => return (200, String::new(), format!(r#"{{"serverTime":{now_ms}}}"#)),
        ("GET", "/api/v3/exchangeInfo") => return (200, String::new(), EXCHANGE_INFO.to_string()),
        ("GET", "/api/v3/ticker/price") => {
            let symbol = query.split('&').find_map(|p| p.strip_prefix("symbol=")).unwrap_or("");
            return match &state.commission_in {
                Some((asset, price)) if symbol == format!("{asset}USDT") => {
                    (200, String::new(), format!(r#"{{"symbol":"{symbol}","price":"{price}"}}"#))
                }
                _ => error(400, -1121, "Invalid symbol."),
            };
        }
        (_, "/api/v3/order" | "/api/v3/myTrades" | "/api/v3/openOrders" | "/api/v3/allOrders" | "/api/v3/account") => {}
        _ => return error(404, -1000, "no such endpoint in the mock"),
    }
    if api_key != Some(state.key.as_str()) {
        return error(401, -2015, "Invalid API-key, IP, or permissions for action.");
    }
    let Some((signed, signature)) = query.rsplit_once("&signature=") else {
        return error(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.");
    };
    if super::rest::sign(&state.secret, signed) != signature {
        return error(401, -1022, "Signature for this request is not valid.");
    }
    let params: std::collections::HashMap<&str, &str> = signed.split('&').filter_map(|p| p.split_once('=')).collect();
    let timestamp: i64 = params.get("timestamp").and_then(|t| t.parse().ok()).unwrap_or(0);
    let window: i64 = params.get("recvWindow").and_then(|t| t.parse().ok()).unwrap_or(5000);
    if timestamp > now_ms + 1000 || now_ms - timestamp > window {
        return error(400, -1021, "Timestamp for this request is outside of the recvWindow.");
    }
    let client_id = params.get("newClientOrderId").or(params.get("origClientOrderId")).copied().unwrap_or("");
    match (method, path) {
        ("POST", _) => match state.script.pop_front().unwrap_or(OrderScript::Fill) {
            OrderScript::PartFill => {
                let full = take_order(state, &params, client_id, now_ms);
                let Some(order) = state.orders.get_mut(client_id) else { return error(500, -1000, "mock") };
                let (Some(second), Some(report)) = (order.trades.pop(), state.user_events.pop()) else {
                    return (200, String::new(), full);
                };
                let Some(order) = state.orders.get_mut(client_id) else { return error(500, -1000, "mock") };
                let part: rust_decimal::Decimal = serde_json::from_str::<serde_json::Value>(&second)
                    .ok()
                    .and_then(|t| t["qty"].as_str().and_then(|q| q.parse().ok()))
                    .unwrap_or_default();
                order.executed -= part;
                order.status = "PARTIALLY_FILLED";
                order.rest = Some((part, second.clone(), report));
                let executed = order.executed;
                book_trade(state, &second, true);
                let answer = serde_json::from_str::<serde_json::Value>(&full).ok().map(|mut answer| {
                    answer["status"] = "PARTIALLY_FILLED".into();
                    answer["executedQty"] = executed.to_string().into();
                    if let Some(fills) = answer["fills"].as_array_mut() {
                        fills.truncate(1);
                    }
                    answer.to_string()
                });
                (200, String::new(), answer.unwrap_or(full))
            }
            script @ (OrderScript::FillLater | OrderScript::FillDuringOutage) => {
                if script == OrderScript::FillDuringOutage {
                    state.cuts += 1;
                    state.refuse_connections = 2;
                }
                let full = take_order(state, &params, client_id, now_ms);
                let answer = serde_json::from_str::<serde_json::Value>(&full).ok().map(|mut answer| {
                    answer["status"] = "NEW".into();
                    answer["executedQty"] = "0.00000000".into();
                    answer["fills"] = serde_json::Value::Array(Vec::new());
                    answer.to_string()
                });
                (200, String::new(), answer.unwrap_or(full))
            }
            OrderScript::Lost => (0, String::new(), String::new()),
            OrderScript::NoAnswer => {
                let _ = take_order(state, &params, client_id, now_ms);
                (0, String::new(), String::new())
            }
            OrderScript::Hang => {
                let _ = take_order(state, &params, client_id, now_ms);
                (HANG, String::new(), String::new())
            }
            OrderScript::InsufficientBalance => {
                error(400, -2010, "Account has insufficient balance for requested action.")
            }
            OrderScript::FilterFailure => error(400, -1013, "Filter failure: NOTIONAL"),
            OrderScript::RateLimited(wait) => {
                let (status, _, body) =
                    error(429, -1003, "Too many requests; current limit of IP is 6000 request weight per 1 minute.");
                (status, format!("Retry-After: {wait}\r\n"), body)
            }
            OrderScript::Fill => (200, String::new(), take_order(state, &params, client_id, now_ms)),
        },
        ("DELETE", _) => match state.orders.get_mut(client_id) {
            Some(order) if order.status == "NEW" => {
                order.status = "CANCELED";
                let order_id = order.order_id;
                let report = execution_report(&[
                    ("c", "\"cancel-1\"".into()),
                    ("C", format!("\"{client_id}\"")),
                    ("i", order_id.to_string()),
                    ("x", "\"CANCELED\"".into()),
                    ("X", "\"CANCELED\"".into()),
                ]);
                state.user_events.push(report);
                let Some(order) = state.orders.get(client_id) else { return error(400, -2011, "Unknown order sent.") };
                (
                    200,
                    String::new(),
                    format!(
                        r#"{{"symbol":"BTCUSDT","origClientOrderId":"{client_id}","orderId":{},"executedQty":"0.00000000","status":"CANCELED"}}"#,
                        order.order_id
                    ),
                )
            }
            _ => error(400, -2011, "Unknown order sent."),
        },
        ("GET", "/api/v3/openOrders") => {
            let open: Vec<String> = state
                .orders
                .iter()
                .filter(|(_, o)| o.status == "NEW")
                .map(|(id, o)| {
                    format!(
                        r#"{{"symbol":"BTCUSDT","orderId":{},"clientOrderId":"{id}","price":"0","origQty":"0.001","executedQty":"0","status":"NEW","timeInForce":"GTC","type":"LIMIT","side":"BUY"}}"#,
                        o.order_id
                    )
                })
                .collect();
            (200, String::new(), format!("[{}]", open.join(",")))
        }
        ("GET", "/api/v3/account") => {
            state.account_reads += 1;
            if state.account_reads > 1 {
                if let Some((asset, by)) = state.shift_after_first_read.take() {
                    *state.balances.entry(asset).or_default() += by;
                }
            }
            let balances: Vec<String> = state
                .balances
                .iter()
                .map(|(asset, free)| format!(r#"{{"asset":"{asset}","free":"{free:.8}","locked":"0.00000000"}}"#))
                .collect();
            (200, String::new(), ACCOUNT.replace("BALANCES", &balances.join(",")))
        }
        ("GET", "/api/v3/allOrders") => {
            let mut listed: Vec<(&String, &MockOrder)> = state.orders.iter().collect();
            listed.sort_by_key(|(_, o)| o.order_id);
            let items: Vec<String> = listed
                .iter()
                .map(|(id, o)| {
                    format!(
                        r#"{{"symbol":"BTCUSDT","orderId":{},"clientOrderId":"{id}","executedQty":"{}","status":"{}"}}"#,
                        o.order_id, o.executed, o.status
                    )
                })
                .collect();
            (200, String::new(), format!("[{}]", items.join(",")))
        }
        ("GET", "/api/v3/order") => match state.orders.get(client_id) {
            Some(order) => {
                let body = format!(
                    r#"{{"symbol":"BTCUSDT","clientOrderId":"{client_id}","orderId":{},"executedQty":"{}","status":"{}"}}"#,
                    order.order_id, order.executed, order.status
                );
                (200, String::new(), body)
            }
            None => error(400, -2013, "Order does not exist."),
        },
        ("GET", _) => {
            let order_id: u64 = params.get("orderId").and_then(|id| id.parse().ok()).unwrap_or(0);
            let trades = state.orders.values().find(|o| o.order_id == order_id).map(|o| o.trades.join(","));
            (200, String::new(), format!("[{}]", trades.unwrap_or_default()))
        }
        _ => error(404, -1000, "no such endpoint in the mock"),
    }
}

/// Takes an order as [`OrderScript::Fill`] says; returns the FULL answer.
fn take_order(
    state: &mut RestState,
    params: &std::collections::HashMap<&str, &str>,
    client_id: &str,
    now_ms: i64,
) -> String {
    use rust_decimal::Decimal;
    let order_id = state.next_id;
    state.next_id += 1;
    let qty: Decimal = params.get("quantity").and_then(|q| Decimal::from_str_exact(q).ok()).unwrap_or_default();
    let (kind, side) = (params.get("type").copied().unwrap_or(""), params.get("side").copied().unwrap_or(""));
    let base = format!(
        r#""symbol":"BTCUSDT","orderId":{order_id},"orderListId":-1,"clientOrderId":"{client_id}","transactTime":{now_ms},"origQty":"{qty}","type":"{kind}","side":"{side}","timeInForce":"GTC","workingTime":{now_ms},"selfTradePreventionMode":"EXPIRE_MAKER""#
    );
    let new_report = execution_report(&[
        ("c", format!("\"{client_id}\"")),
        ("S", format!("\"{side}\"")),
        ("o", format!("\"{kind}\"")),
        ("q", format!("\"{qty}\"")),
        ("i", order_id.to_string()),
    ]);
    state.user_events.push(new_report);
    if kind != "MARKET" {
        let order = MockOrder { order_id, status: "NEW", executed: Decimal::ZERO, trades: Vec::new(), rest: None };
        state.orders.insert(client_id.to_string(), order);
        return format!(
            r#"{{{base},"price":"0","executedQty":"0.00000000","cummulativeQuoteQty":"0.00000000","status":"NEW","fills":[]}}"#
        );
    }
    let first = (qty / Decimal::TWO).round_dp_with_strategy(5, rust_decimal::RoundingStrategy::ToZero);
    let parts = [(first, state.fill_price), (qty - first, state.fill_price + Decimal::new(1, 2))];
    let (mut fills, mut trades, mut cumulative) = (Vec::new(), Vec::new(), Decimal::ZERO);
    for (part, price) in parts.into_iter().filter(|(q, _)| *q > Decimal::ZERO) {
        let trade_id = 900_000 + state.next_id;
        state.next_id += 1;
        let fee_usdt = part * price * Decimal::new(1, 3);
        let (commission, asset) = match &state.commission_in {
            Some((asset, asset_price)) => {
                (fee_usdt.checked_div(*asset_price).unwrap_or_default().round_dp(8), asset.as_str())
            }
            None => (fee_usdt.round_dp(8), "USDT"),
        };
        fills.push(format!(
            r#"{{"price":"{price}","qty":"{part}","commission":"{commission}","commissionAsset":"{asset}","tradeId":{trade_id}}}"#
        ));
        cumulative += part;
        let status = if cumulative >= qty { "FILLED" } else { "PARTIALLY_FILLED" };
        let report = execution_report(&[
            ("c", format!("\"{client_id}\"")),
            ("S", format!("\"{side}\"")),
            ("o", format!("\"{kind}\"")),
            ("q", format!("\"{qty}\"")),
            ("i", order_id.to_string()),
            ("x", "\"TRADE\"".into()),
            ("X", format!("\"{status}\"")),
            ("l", format!("\"{part}\"")),
            ("z", format!("\"{cumulative}\"")),
            ("L", format!("\"{price}\"")),
            ("n", format!("\"{commission}\"")),
            ("N", format!("\"{asset}\"")),
            ("t", trade_id.to_string()),
        ]);
        state.user_events.push(report);
        trades.push(format!(
            r#"{{"symbol":"BTCUSDT","id":{trade_id},"orderId":{order_id},"orderListId":-1,"price":"{price}","qty":"{part}","quoteQty":"{}","commission":"{commission}","commissionAsset":"{asset}","time":{now_ms},"isBuyer":{},"isMaker":false,"isBestMatch":true}}"#,
            part * price,
            side == "BUY"
        ));
    }
    for trade in &trades {
        book_trade(state, trade, false);
    }
    let order = MockOrder { order_id, status: "FILLED", executed: qty, trades, rest: None };
    state.orders.insert(client_id.to_string(), order);
    format!(r#"{{{base},"price":"0.00000000","executedQty":"{qty}","status":"FILLED","fills":[{}]}}"#, fills.join(","))
}

/// Moves the account's balances by `trade` (as `myTrades` lists it), or back by it
/// with `undo`.
fn book_trade(state: &mut RestState, trade: &str, undo: bool) {
    use rust_decimal::Decimal;
    let Ok(trade) = serde_json::from_str::<serde_json::Value>(trade) else { return };
    let dec = |name: &str| trade[name].as_str().and_then(|v| Decimal::from_str_exact(v).ok()).unwrap_or_default();
    let (qty, price, commission) = (dec("qty"), dec("price"), dec("commission"));
    let asset = trade["commissionAsset"].as_str().unwrap_or("USDT").to_string();
    let sign = if undo { -Decimal::ONE } else { Decimal::ONE };
    let (btc, usdt) = match trade["isBuyer"].as_bool() {
        Some(true) => (qty, -qty * price),
        _ => (-qty, qty * price),
    };
    for (asset, by) in [("BTC".to_string(), btc), ("USDT".to_string(), usdt), (asset, -commission)] {
        *state.balances.entry(asset).or_default() += sign * by;
    }
}

/// An `executionReport` event for the user data stream: Binance's fields with these
/// `(name, JSON value)` pairs over a `NEW` report's defaults.
fn execution_report(fields: &[(&str, String)]) -> String {
    let mut event = serde_json::json!({
        "e": "executionReport", "E": 1723161255343_i64, "s": "BTCUSDT", "c": "", "S": "BUY", "o": "MARKET",
        "f": "GTC", "q": "0", "p": "0.00000000", "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "",
        "x": "NEW", "X": "NEW", "r": "NONE", "i": 0, "l": "0.00000000", "z": "0.00000000", "L": "0.00000000",
        "n": "0", "N": null, "T": 1723161255343_i64, "t": -1, "w": true, "m": false, "M": false,
    });
    for (name, value) in fields {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(value) {
            event[*name] = value;
        }
    }
    event.to_string()
}

/// Serves one user data stream connection: checks the subscription's signature, then
/// pushes every event made from now on until the stream is cut or the client leaves.
fn serve_user_stream(stream: std::net::TcpStream, state: &std::sync::Mutex<RestState>) {
    let refuse = match state.lock() {
        Ok(mut state) if state.refuse_connections > 0 => {
            state.refuse_connections -= 1;
            true
        }
        Ok(_) => false,
        Err(_) => true,
    };
    if refuse {
        return; // dropped before the handshake: the client cannot connect
    }
    let Ok(mut socket) = tungstenite::accept(stream) else { return };
    let Ok(Message::Text(request)) = socket.read() else { return };
    let request: serde_json::Value = serde_json::from_str(request.as_str()).unwrap_or_default();
    let params = &request["params"];
    let (key, timestamp) = (params["apiKey"].as_str().unwrap_or(""), params["timestamp"].as_i64().unwrap_or(0));
    let (cut, mut sent, answer) = {
        let Ok(state) = state.lock() else { return };
        let signed = format!("apiKey={key}&timestamp={timestamp}");
        let good = request["method"] == "userDataStream.subscribe.signature"
            && key == state.key
            && params["signature"].as_str() == Some(super::rest::sign(&state.secret, &signed).as_str());
        let answer = match good {
            true => r#"{"id":"subscribe","status":200,"result":{"subscriptionId":0}}"#.to_string(),
            false => r#"{"id":"subscribe","status":401,"error":{"code":-1022,"msg":"Signature for this request is not valid."}}"#.to_string(),
        };
        (state.cuts, state.user_events.len(), answer)
    };
    if socket.send(Message::text(answer)).is_err() {
        return;
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let batch: Vec<String> = {
            let Ok(state) = state.lock() else { return };
            if state.cuts != cut {
                return; // cut: the connection drops without a close frame
            }
            let batch = state.user_events[sent..].to_vec();
            sent = state.user_events.len();
            batch
        };
        for event in batch {
            let pushed = format!(r#"{{"subscriptionId":0,"event":{event}}}"#);
            if socket.send(Message::text(pushed)).is_err() {
                return;
            }
        }
    }
}

/// `account` of a testnet account (its `BALANCES` filled in: 1 BTC and 100,000 USDT
/// at start, moved by every trade).
const ACCOUNT: &str = r#"{"makerCommission":0,"takerCommission":0,"buyerCommission":0,"sellerCommission":0,"canTrade":true,"canWithdraw":false,"canDeposit":false,"updateTime":1723161255343,"accountType":"SPOT","balances":[BALANCES],"permissions":["SPOT"]}"#;

/// `exchangeInfo` for BTCUSDT, shaped as Binance's (filters as listed on the spot
/// exchange in 2024).
const EXCHANGE_INFO: &str = r#"{"timezone":"UTC","serverTime":1723161255343,"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}],"exchangeFilters":[],"symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","baseAssetPrecision":8,"quoteAsset":"USDT","quotePrecision":8,"orderTypes":["LIMIT","LIMIT_MAKER","MARKET","STOP_LOSS","STOP_LOSS_LIMIT","TAKE_PROFIT","TAKE_PROFIT_LIMIT"],"filters":[{"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},{"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000","stepSize":"0.00001000"},{"filterType":"ICEBERG_PARTS","limit":10},{"filterType":"MARKET_LOT_SIZE","minQty":"0.00000000","maxQty":"123.45678900","stepSize":"0.00000000"},{"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5}]}]}"#;
