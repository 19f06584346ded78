//! Tick-to-order-sent latency of `ledger run` on Binance, on loopback
//! (`scripts/bench/binance-latency.sh`). One process serves both sides of the venue on
//! one monotonic clock:
//!
//! - `binance_latency serve CAPTURE INTERVAL_US OUT_DIR`: a websocket server replaying
//!   CAPTURE's combined-stream messages once (one every INTERVAL_US microseconds, 0:
//!   flat out), stamping each message just before it is written, and a minimal Binance
//!   spot REST endpoint (tiny_http) stamping each `POST /api/v3/order` as it arrives
//!   (market orders fill at once at the last trade price sent). The replay starts once
//!   the file `OUT_DIR/go` exists (the session is up). Prints the websocket
//!   URL, then the REST URL, one a line; writes `OUT_DIR/orders.tsv` (client order id,
//!   arrival ns) as orders come and `OUT_DIR/sent.tsv` (message index, send ns) once
//!   the replay is done; serves REST until killed.
//! - `binance_latency report CAPTURE SYMBOL EVENTS_JSONL OUT_DIR`: joins each recorded
//!   `OrderSubmitted` through its causation chain to the `MarketTick` that caused it,
//!   that tick to the capture's message that carried it (the k-th tick of the run is
//!   the k-th `<symbol>@trade` or `<symbol>@bookTicker` message), and its client order
//!   id to the order's arrival; prints the latencies' percentiles in microseconds, the
//!   decision provider's recorded `latency_us` taken out.
//!
//! The arrival stamp is taken when tiny_http hands the parsed request over (after its
//! connection thread read the head), so the figure is an upper bound by that hand-over.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_adapters::binance::mock::read_capture;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve", capture, interval_us, out] => serve(Path::new(capture), interval_us.parse()?, Path::new(out)),
        ["report", capture, symbol, events, out] => {
            report(Path::new(capture), symbol, Path::new(events), Path::new(out))
        }
        _ => {
            Err("usage: binance_latency serve CAPTURE INTERVAL_US OUT_DIR | report CAPTURE SYMBOL EVENTS_JSONL OUT_DIR"
                .into())
        }
    }
}

/// Nanoseconds since `epoch` (the process's one monotonic clock).
fn since(epoch: Instant) -> u128 {
    epoch.elapsed().as_nanos()
}

/// The wall clock, UTC ns (to set a send against the cycle times the ledger records).
fn wall_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

/// The `"p"` of a `@trade` message, if it is one.
fn trade_price(message: &str) -> Option<String> {
    if !message.contains("@trade\"") {
        return None;
    }
    let start = message.find("\"p\":\"")? + 5;
    let len = message[start..].find('"')?;
    Some(message[start..start + len].to_string())
}

fn serve(capture: &Path, interval_us: u64, out: &Path) -> Result<(), Error> {
    let messages = read_capture(capture)?;
    let prices: Arc<Vec<Option<String>>> = Arc::new(messages.iter().map(|m| trade_price(m)).collect());
    let last_trade = Arc::new(AtomicUsize::new(usize::MAX));
    let epoch = Instant::now();
    let ws = TcpListener::bind(("127.0.0.1", 0))?;
    let rest = tiny_http::Server::http("127.0.0.1:0").map_err(|e| format!("the REST endpoint: {e}"))?;
    let rest_url = match rest.server_addr().to_ip() {
        Some(addr) => format!("http://{addr}"),
        None => return Err("the REST endpoint has no IP address".into()),
    };
    println!("ws://{}", ws.local_addr()?);
    println!("{rest_url}");
    std::io::stdout().flush()?;
    let orders = std::fs::File::create(out.join("orders.tsv"))?;
    let (prices_rest, last_rest) = (Arc::clone(&prices), Arc::clone(&last_trade));
    std::thread::spawn(move || answer_rest(&rest, epoch, orders, &prices_rest, &last_rest));

    let (stream, _) = ws.accept()?;
    stream.set_nodelay(true)?;
    let mut socket = tungstenite::accept(stream)?;
    // The ledger connects its feed before it opens its store: the replay starts when
    // the benchmark says the session is up, so start-up is not counted as latency.
    while !out.join("go").exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut sent = Vec::with_capacity(messages.len());
    let interval = Duration::from_micros(interval_us);
    let start = Instant::now();
    for (index, message) in messages.iter().enumerate() {
        if interval_us > 0 {
            let due = start + interval * u32::try_from(index)?;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if prices[index].is_some() {
            last_trade.store(index, Ordering::Relaxed);
        }
        sent.push((since(epoch), wall_ns()));
        socket.send(Message::text(message.as_str()))?;
    }
    let frame = CloseFrame { code: CloseCode::Normal, reason: "end of replay".into() };
    socket.close(Some(frame))?;
    while socket.read().is_ok() {}
    let mut file = std::io::BufWriter::new(std::fs::File::create(out.join("sent.tsv"))?);
    for (index, (at, wall)) in sent.iter().enumerate() {
        writeln!(file, "{index}\t{at}\t{wall}")?;
    }
    file.flush()?;
    eprintln!("replayed {} messages", messages.len());
    // The REST side goes on until the benchmark kills this process.
    loop {
        std::thread::park();
    }
}

/// `exchangeInfo` for BTCUSDT with Binance's 2024 filters.
const EXCHANGE_INFO: &str = r#"{"timezone":"UTC","serverTime":0,"rateLimits":[],"exchangeFilters":[],"symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","baseAssetPrecision":8,"quoteAsset":"USDT","quotePrecision":8,"orderTypes":["LIMIT","MARKET"],"filters":[{"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},{"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000","stepSize":"0.00001000"},{"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5}]}]}"#;

/// An account holding BTC and USDT.
const ACCOUNT: &str = r#"{"accountType":"SPOT","balances":[{"asset":"BTC","free":"1.00000000","locked":"0.00000000"},{"asset":"USDT","free":"100000.00000000","locked":"0.00000000"}]}"#;

/// Answers the REST requests a Binance session makes (time, exchangeInfo, openOrders,
/// account, orders), stamping each order's arrival into `orders`.
fn answer_rest(
    server: &tiny_http::Server,
    epoch: Instant,
    orders: std::fs::File,
    prices: &[Option<String>],
    last_trade: &AtomicUsize,
) {
    let mut orders = std::io::LineWriter::new(orders);
    let mut next_id = 1u64;
    for request in server.incoming_requests() {
        let arrived = since(epoch);
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let params: HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let (status, body) = match (request.method(), path) {
            (tiny_http::Method::Get, "/api/v3/time") => (200, format!(r#"{{"serverTime":{now_ms}}}"#)),
            (tiny_http::Method::Get, "/api/v3/exchangeInfo") => (200, EXCHANGE_INFO.to_string()),
            (tiny_http::Method::Get, "/api/v3/openOrders" | "/api/v3/myTrades") => (200, "[]".to_string()),
            (tiny_http::Method::Get, "/api/v3/account") => (200, ACCOUNT.to_string()),
            (tiny_http::Method::Post, "/api/v3/order") => {
                let client_id = params.get("newClientOrderId").copied().unwrap_or("");
                let _ = writeln!(orders, "{client_id}\t{arrived}");
                let qty = params.get("quantity").copied().unwrap_or("0");
                let price = prices
                    .get(last_trade.load(Ordering::Relaxed))
                    .and_then(Option::as_deref)
                    .or(params.get("price").copied())
                    .unwrap_or("0");
                let id = next_id;
                next_id += 1;
                let body = format!(
                    r#"{{"symbol":"BTCUSDT","orderId":{id},"clientOrderId":"{client_id}","transactTime":{now_ms},"origQty":"{qty}","executedQty":"{qty}","status":"FILLED","fills":[{{"price":"{price}","qty":"{qty}","commission":"0","commissionAsset":"USDT","tradeId":{id}}}]}}"#
                );
                (200, body)
            }
            _ => (404, r#"{"code":-1000,"msg":"not in this endpoint"}"#.to_string()),
        };
        let mut response = tiny_http::Response::from_string(body).with_status_code(status);
        for (name, value) in [("Content-Type", "application/json"), ("X-MBX-USED-WEIGHT-1M", "1")] {
            if let Ok(header) = tiny_http::Header::from_bytes(name, value) {
                response.add_header(header);
            }
        }
        let _ = request.respond(response);
    }
}

/// Reads `OUT_DIR/<name>` as `key<TAB>ns[<TAB>wall ns]` lines.
fn read_stamps(path: PathBuf) -> Result<HashMap<String, (u128, i128)>, Error> {
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut stamps = HashMap::new();
    for (line_no, line) in text.lines().enumerate() {
        let mut fields = line.split('\t');
        let (Some(key), Some(ns)) = (fields.next(), fields.next()) else {
            return Err(format!("{} line {}: expected `key<TAB>ns`", path.display(), line_no + 1).into());
        };
        let wall = fields.next().map_or(Ok(0), str::parse)?;
        stamps.insert(key.to_string(), (ns.parse()?, wall));
    }
    Ok(stamps)
}

fn report(capture: &Path, symbol: &str, events: &Path, out: &Path) -> Result<(), Error> {
    let messages = read_capture(capture)?;
    let symbol = symbol.to_ascii_lowercase();
    let (trade, book) = (format!("\"{symbol}@trade\""), format!("\"{symbol}@bookTicker\""));
    // The capture's messages that become ticks, in order.
    let tick_messages: Vec<usize> =
        (0..messages.len()).filter(|&i| messages[i].contains(&trade) || messages[i].contains(&book)).collect();
    let sent = read_stamps(out.join("sent.tsv"))?;
    let arrived = read_stamps(out.join("orders.tsv"))?;

    let text = std::fs::read_to_string(events).map_err(|e| format!("{}: {e}", events.display()))?;
    let mut by_seq: HashMap<u64, serde_json::Value> = HashMap::new();
    let mut tick_ordinal: HashMap<u64, usize> = HashMap::new();
    let mut tick_seqs = Vec::new();
    let mut submitted = Vec::new();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line)?;
        let seq = event["header"]["seq"].as_u64().ok_or("an event without a seq")?;
        if event["payload"].get("MarketTick").is_some() {
            tick_ordinal.insert(seq, tick_seqs.len());
            tick_seqs.push(seq);
        }
        if event["payload"].get("OrderSubmitted").is_some() {
            submitted.push(seq);
        }
        by_seq.insert(seq, event);
    }
    if tick_ordinal.len() != tick_messages.len() {
        return Err(format!(
            "{} ticks recorded but {} {symbol} trade/bookTicker messages in the capture: the join by order needs them equal",
            tick_ordinal.len(),
            tick_messages.len()
        )
        .into());
    }
    let (mut latencies, mut to_cycle, mut unsent) = (Vec::new(), Vec::new(), 0usize);
    for seq in submitted {
        let order = &by_seq[&seq];
        let client_id = order["payload"]["OrderSubmitted"]["client_order_id"].as_str().ok_or("no client order id")?;
        let Some(&(arrival, _)) = arrived.get(client_id) else {
            unsent += 1; // refused before sending (a filter, the weight budget)
            continue;
        };
        // Up the causation chain to the tick, taking the decision's own time out.
        let (mut cause, mut provider_ns) = (order["header"]["causation_seq"].as_u64(), 0u128);
        let tick = loop {
            let Some(at) = cause else {
                return Err(format!("order {client_id}: no tick in its causation chain").into());
            };
            let event = by_seq.get(&at).ok_or_else(|| format!("order {client_id}: cause {at} not in the run"))?;
            if let Some(decision) = event["payload"].get("DecisionMade") {
                provider_ns += u128::from(decision["latency_us"].as_u64().unwrap_or(0)) * 1000;
            }
            if let Some(&ordinal) = tick_ordinal.get(&at) {
                break ordinal;
            }
            cause = event["header"]["causation_seq"].as_u64();
        };
        let message = tick_messages[tick];
        let (sent_at, sent_wall) =
            sent.get(&message.to_string()).ok_or_else(|| format!("message {message} not stamped"))?;
        latencies.push(arrival.saturating_sub(*sent_at).saturating_sub(provider_ns));
        // The tick's cycle time: the wall clock when the ledger took the decoded tick.
        let tick_seq = tick_seqs[tick];
        let recorded = by_seq[&tick_seq]["header"]["ts_recorded"].as_str().unwrap_or("");
        if let Ok(cycle) = chrono::DateTime::parse_from_rfc3339(recorded) {
            let cycle_ns = i128::from(cycle.timestamp_nanos_opt().unwrap_or(0));
            to_cycle.push(u128::try_from(cycle_ns - sent_wall).unwrap_or(0));
        }
    }
    if latencies.is_empty() {
        return Err("no order reached the REST endpoint".into());
    }
    let (whole, to_cycle) = (percentiles(latencies), percentiles(to_cycle));
    println!(
        "orders {} (not sent {unsent}) p50_us {:.1} p90_us {:.1} p99_us {:.1} max_us {:.1} send_to_cycle_p50_us {:.0} p99_us {:.0}",
        whole.0, whole.1, whole.2, whole.3, whole.4, to_cycle.1, to_cycle.3
    );
    Ok(())
}

/// `(count, p50, p90, p99, max)` of `ns`, in microseconds (nearest rank).
fn percentiles(mut ns: Vec<u128>) -> (usize, f64, f64, f64, f64) {
    ns.sort_unstable();
    let at = |p: f64| {
        let rank = ((p / 100.0) * ns.len() as f64).ceil().max(1.0) as usize;
        ns.get(rank.min(ns.len()).saturating_sub(1)).map_or(f64::NAN, |v| *v as f64 / 1000.0)
    };
    (ns.len(), at(50.0), at(90.0), at(99.0), at(100.0))
}
