//! Binance spot market data through the real binary: a loopback websocket server
//! replays a slice of a real capture of Binance's combined stream
//! (`fixtures/binance/btcusdt-rawfeed-20240808-first4000.gz`, the first 4,000 lines of
//! `shared/data/hftbacktest_binance_spot_BTCUSDT_rawfeed_20240808.gz`) and `ledger run`
//! records it in shadow mode (`trading_enabled = false`: nothing is sent).

use ledger_adapters::binance::mock::{read_capture, Connection, ReplayServer};
use serde_json::Value;

use crate::harness::{workspace_root, Ledger};

const CAPTURE: &str = "fixtures/binance/btcusdt-rawfeed-20240808-first4000.gz";

fn capture() -> Vec<String> {
    read_capture(&workspace_root().join(CAPTURE)).expect("the capture fixture reads")
}

fn events(ledger: &Ledger) -> Vec<Value> {
    ledger.ok(&["events", "--run", "1", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn payloads<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter_map(|e| e["payload"].get(kind)).collect()
}

/// A config reading the replay server at `url`, with `extra` lines in `[binance]`.
fn config(ledger: &Ledger, url: &str, extra: &str) -> std::path::PathBuf {
    let path = ledger.dir.path().join("binance.toml");
    let text = format!(
        "[binance]\nsymbols = [\"BTCUSDT\"]\nstreams = [\"trade\", \"bookTicker\"]\nws_url = \"{url}\"\n{extra}\n\
         [provider]\nkind = \"rules\"\nstrategy = \"sma-cross\"\nparams = {{ fast = 20, slow = 60 }}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The trade ids of the capture's messages in `range`, in order.
fn trade_ids(messages: &[String]) -> Vec<u64> {
    messages
        .iter()
        .filter(|m| m.contains("@trade\""))
        .map(|m| serde_json::from_str::<Value>(m).unwrap()["data"]["t"].as_u64().unwrap())
        .collect()
}

fn ticks_in(messages: &[String]) -> usize {
    messages.iter().filter(|m| m.contains("@trade\"") || m.contains("@bookTicker\"")).count()
}

#[test]
fn the_replayed_capture_is_recorded_tick_for_tick_with_exchange_times_and_exact_decimals() {
    let messages = capture();
    let expected_ticks = ticks_in(&messages);
    let plan = vec![Connection { messages: 0..messages.len(), close_frame: true }];
    let server = ReplayServer::start(messages.clone(), plan, 0).unwrap();
    let ledger = Ledger::new();
    let config = config(&ledger, &server.url(), "max_reconnects = 0");
    let run = ledger.run(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    server.join();
    let events = events(&ledger);

    let started = &payloads(&events, "RunStarted")[0];
    assert!(started["data_source"].as_str().unwrap().starts_with("binance testnet ws://127.0.0.1:"), "{started}");
    let ticks: Vec<&Value> = events.iter().filter(|e| e["payload"].get("MarketTick").is_some()).collect();
    assert_eq!(ticks.len(), expected_ticks, "one tick per trade and bookTicker message; depth is not read");

    // The capture's first trade: {"E":1723161255343,"t":3735683259,"p":"61837.63000000",
    // "q":"0.02000000","m":true}: the exchange's event time, the digits as sent, the
    // seller the aggressor (the buyer was the maker).
    let first_trade = ticks.iter().find(|e| e["payload"]["MarketTick"]["data"].get("Trade").is_some()).unwrap();
    assert_eq!(first_trade["header"]["ts_event"], "2024-08-08T23:54:15.343000Z");
    let trade = &first_trade["payload"]["MarketTick"]["data"]["Trade"];
    assert_eq!((trade["price"].as_str(), trade["size"].as_str()), (Some("61837.63000000"), Some("0.02000000")));
    assert_eq!(trade["aggressor"], "Sell");
    // The quote after it carries no event time: it takes the trade's.
    let index = ticks.iter().position(|e| std::ptr::eq(*e, *first_trade)).unwrap();
    let quote = ticks[index + 1];
    assert_eq!(quote["header"]["ts_event"], "2024-08-08T23:54:15.343000Z");
    assert_eq!(quote["payload"]["MarketTick"]["data"]["Quote"]["ask_size"], "1.60520000");
    // Before the first trade, quotes take the local receive time (the replay's: now).
    let times: Vec<&str> = ticks[index..].iter().map(|e| e["header"]["ts_event"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "the exchange's times never go back in the capture");

    // The capture has no gap; the server's close ends the feed (max_reconnects = 0),
    // on the record.
    let notices = payloads(&events, "VenueNotice");
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["kind"], "disconnected");
    let detail = notices[0]["detail"].as_str().unwrap();
    assert!(detail.contains("1000 end of replay") && detail.contains("giving up after 1"), "{detail}");
    assert_eq!(payloads(&events, "RunStopped")[0]["reason"], "end of data");
    // Shadow mode: the strategy's orders fill on the paper venue at the live quotes.
    assert_eq!(started["venue"], "paper");
    let fills = payloads(&events, "OrderFilled");
    assert!(!fills.is_empty(), "the sma-cross 20/60 crosses in the slice");
}

#[test]
fn a_lost_connection_is_made_again_and_the_trades_missed_meanwhile_are_a_recorded_gap() {
    let messages = capture();
    // The first connection drops after 1,000 messages without a close frame; the
    // second starts 500 messages later, as if they went by during the outage.
    let plan = vec![
        Connection { messages: 0..1000, close_frame: false },
        Connection { messages: 1500..messages.len(), close_frame: true },
    ];
    let missed: Vec<u64> = trade_ids(&messages[1000..1500]);
    let before = *trade_ids(&messages[..1000]).last().unwrap();
    let expected_ticks = ticks_in(&messages[..1000]) + ticks_in(&messages[1500..]);
    let server = ReplayServer::start(messages.clone(), plan, 0).unwrap();
    let ledger = Ledger::new();
    let config = config(&ledger, &server.url(), "max_reconnects = 1\nreconnect_backoff = \"10ms\"");
    let run = ledger.run(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    server.join();
    let events = events(&ledger);

    let ticks = events.iter().filter(|e| e["payload"].get("MarketTick").is_some()).count();
    assert_eq!(ticks, expected_ticks);
    let notices = payloads(&events, "VenueNotice");
    let kinds: Vec<&str> = notices.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    // Dropped, connected again, the gap, closed by the server, and the server gone:
    // two failures in a row is past max_reconnects = 1.
    assert_eq!(kinds, ["disconnected", "reconnected", "feed_gap", "disconnected", "disconnected"], "{notices:?}");
    assert!(notices[4]["detail"].as_str().unwrap().ends_with("giving up after 2 failure(s) in a row"));
    let gap = notices[2];
    assert_eq!(gap["stream"], "btcusdt@trade");
    assert_eq!(gap["value"].as_u64().unwrap(), missed.len() as u64);
    assert_eq!(
        gap["detail"].as_str().unwrap(),
        format!("trade ids {}..={} missed", before + 1, missed.last().unwrap())
    );
    // Notices are recorded outside any cycle.
    let gap_event = events.iter().find(|e| e["payload"].get("VenueNotice") == Some(gap)).unwrap();
    assert_eq!(gap_event["header"]["cycle_id"], 0);
}

#[test]
fn live_mode_needs_the_live_flag_and_bad_sections_are_refused_by_key() {
    let ledger = Ledger::new();
    let config = config(&ledger, "ws://127.0.0.1:9", "mode = \"live\"");
    let run = ledger.run(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("binance.mode = \"live\" trades real money: pass --live"), "{}", run.stderr);

    let config = config_with(&ledger, "[binance]\nstreams = [\"depth\"]\n");
    let run = ledger.run(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("binance.streams: \"depth\" is not a stream this feed reads"), "{}", run.stderr);

    let config = config_with(&ledger, "[binance]\nsymbol = \"BTCUSDT\"\n");
    let run = ledger.run(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("binance.symbol"), "{}", run.stderr);
}

fn config_with(ledger: &Ledger, text: &str) -> std::path::PathBuf {
    let path = ledger.dir.path().join("other.toml");
    std::fs::write(&path, text).unwrap();
    path
}
