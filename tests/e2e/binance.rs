//! Binance spot market data through the real binary: a loopback websocket server
//! replays a slice of a real capture of Binance's combined stream
//! (`fixtures/binance/btcusdt-rawfeed-20240808-first4000.gz`, the first 4,000 lines of
//! `shared/data/hftbacktest_binance_spot_BTCUSDT_rawfeed_20240808.gz`) and `ledger run`
//! records it, in shadow mode (`trading_enabled = false`: nothing is sent) or trading
//! on the loopback REST mock and its user data stream (`RestMock`): partial fills,
//! outages of either stream and their reconciliation, kill -9 and resume.

use ledger_adapters::binance::mock::{read_capture, Connection, OrderScript, ReplayServer, RestMock};
use rust_decimal::Decimal;
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

/// The REST mock quoting the capture's price (61,837.63 USDT), answering orders as
/// `script` says.
fn rest_mock(script: Vec<OrderScript>) -> RestMock {
    RestMock::start(KEY, SECRET, Decimal::new(6_183_763, 2), script).unwrap()
}

/// A config trading on `rest`, its fills pushed over the user data stream at `ws_api` or,
/// without one, polled (`user_stream = false`); `extra` lines added to `[binance]`.
fn trading_config(
    ledger: &Ledger,
    server: &ReplayServer,
    rest: &RestMock,
    ws_api: Option<&str>,
    extra: &str,
) -> std::path::PathBuf {
    let stream = ws_api.map_or_else(|| "user_stream = false".to_string(), |url| format!("ws_api_url = \"{url}\""));
    config(ledger, &server.url(), &format!("trading_enabled = true\nrest_url = \"{}\"\n{stream}\n{extra}", rest.url()))
}

/// `ledger run --config CONFIG` with the API key's variables set.
fn trading_run(ledger: &Ledger, config: &std::path::Path) -> std::process::Command {
    let mut command = ledger.command(&["run", "--config", config.to_str().unwrap()]);
    command.env("BINANCE_API_KEY", KEY).env("BINANCE_API_SECRET", SECRET);
    command
}

/// `ledger replay --run 1 --verify` reproduces run 1.
fn assert_replays(ledger: &Ledger) {
    let verified = ledger.ok(&["replay", "--run", "1", "--verify"]);
    assert!(verified.starts_with("ok: run 2 reproduces run 1"), "{verified}");
}

/// The server's plan for a session killed and started again: the first reads the whole
/// capture of `len` messages, the restarted one its second half.
fn killed_and_restarted(len: usize) -> Vec<Connection> {
    vec![Connection { messages: 0..len, close_frame: true }, Connection { messages: 2000..len, close_frame: true }]
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

const KEY: &str = "e2e-key-6a1f0c";
const SECRET: &str = "e2e-secret-93be47d2";

#[test]
fn orders_go_to_the_rest_mock_signed_and_its_fills_refusals_and_rate_limit_are_recorded() {
    let messages = capture();
    let plan = vec![Connection { messages: 0..messages.len(), close_frame: true }];
    let server = ReplayServer::start(messages, plan, 0).unwrap();
    let script = vec![
        OrderScript::Fill,
        OrderScript::InsufficientBalance,
        OrderScript::FilterFailure,
        OrderScript::RateLimited(600),
    ];
    let rest = rest_mock(script);
    // Left working at the exchange: one by an earlier run of a ledger, one by hand.
    rest.add_open_order("r7-3");
    rest.add_open_order("web_5f3a1c");
    let ledger = Ledger::new();
    let config = trading_config(&ledger, &server, &rest, None, "max_reconnects = 0");
    let output = trading_run(&ledger, &config).env("RUST_LOG", "debug").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    server.join();
    let events = events(&ledger);

    let started = payloads(&events, "RunStarted")[0];
    assert_eq!((started["venue"].as_str(), started["mode"].as_str()), (Some("binance"), Some("Live")));
    let notices = payloads(&events, "VenueNotice");
    assert_eq!(
        (notices[0]["kind"].as_str(), notices[0]["stream"].as_str()),
        (Some("clock_offset"), Some("/api/v3/time"))
    );
    // At start, what the exchange holds is on the record: the earlier run's open order
    // (not the one placed by hand), and the balances of BTC and USDT.
    let reconciled: Vec<&str> =
        notices.iter().filter(|n| n["kind"] == "reconciliation").map(|n| n["detail"].as_str().unwrap()).collect();
    assert_eq!(reconciled.len(), 3, "{reconciled:?}");
    assert!(
        reconciled[0].starts_with("open order r7-3 (BUY 0.001 LIMIT, 0 executed) is at the exchange"),
        "{reconciled:?}"
    );
    assert_eq!(
        reconciled[1..],
        ["balance BTC: free 1.00000000, locked 0.00000000", "balance USDT: free 100000.00000000, locked 0.00000000"]
    );

    let taken = rest.taken();
    let posts: Vec<_> = taken.iter().filter(|r| r.method == "POST").collect();
    let orders = payloads(&events, "OrderSubmitted");
    assert!(orders.len() > 4, "the slice makes more orders than the script has answers: {}", orders.len());
    // The rate limit's Retry-After (600 s) holds every later order back: four were sent.
    assert_eq!(posts.len(), 4, "{posts:#?}");
    let sent: Vec<String> = posts
        .iter()
        .map(|post| {
            assert!(
                post.query.contains("type=MARKET") && post.query.contains("newOrderRespType=FULL"),
                "{}",
                post.query
            );
            assert!(post.query.contains("&recvWindow=5000&signature="), "{}", post.query);
            assert!(post.head.to_ascii_lowercase().contains(&format!("x-mbx-apikey: {KEY}")), "{}", post.head);
            let id = post.query.split('&').find_map(|p| p.strip_prefix("newClientOrderId=")).unwrap();
            assert!(orders.iter().any(|o| o["client_order_id"] == id), "{id} is one of our client order ids");
            id.to_string()
        })
        .collect();
    assert_eq!(posts[0].status, 200, "the mock checked the signature and the timestamp");

    let about = |kind: &str, id: &str| -> Vec<&Value> {
        payloads(&events, kind).into_iter().filter(|p| p["client_order_id"] == id).collect()
    };
    // The first order: accepted, filled in two parts, each with its trade id and the
    // commission charged in USDT as its fee.
    assert_eq!(about("OrderAccepted", &sent[0]).len(), 1);
    let fills = about("OrderFilled", &sent[0]);
    assert_eq!(fills.len(), 2, "{fills:?}");
    assert_eq!(fills[0]["price"], "61837.63");
    assert_eq!(fills[1]["price"], "61837.64");
    let qty: Decimal = fills[0]["qty"].as_str().unwrap().parse().unwrap();
    let fee: Decimal = fills[0]["fee"].as_str().unwrap().parse().unwrap();
    assert_eq!(fee, (qty * Decimal::new(6_183_763, 2) * Decimal::new(1, 3)).round_dp(8));
    assert!(fills[0]["fill_id"].as_u64().unwrap() > 900_000);
    // Refusals name Binance's code and message; the rate limit its wait.
    let reason = |id: &str| about("OrderRejected", id)[0]["reason"].as_str().unwrap().to_string();
    assert!(reason(&sent[1]).contains("binance -2010: Account has insufficient balance"), "{}", reason(&sent[1]));
    assert!(reason(&sent[2]).contains("binance -1013: Filter failure: NOTIONAL"), "{}", reason(&sent[2]));
    assert!(reason(&sent[3]).contains("rate limited (HTTP 429)"), "{}", reason(&sent[3]));
    // Orders never sent: an exchange filter violated before sending (a short sale sized
    // to nothing), then every order during the Retry-After wait.
    let unsent: Vec<String> = orders
        .iter()
        .map(|o| o["client_order_id"].as_str().unwrap().to_string())
        .filter(|id| !sent.contains(id))
        .map(|id| reason(&id))
        .collect();
    assert!(unsent.iter().any(|r| r.contains("LOT_SIZE: quantity 0 is below minQty 0.00001")), "{unsent:?}");
    assert!(unsent.last().unwrap().contains("rate limited (HTTP 429): no request for"), "{unsent:?}");

    // The recorded venue reports drive the replay: it reproduces the run without
    // reaching the exchange (the mock takes no more requests).
    let before = rest.taken().len();
    assert_replays(&ledger);
    assert_eq!(rest.taken().len(), before);

    // Neither the key nor the secret is anywhere on the record or in the log.
    let all = ledger.ok(&["events", "--json"]);
    for secret in [KEY, SECRET] {
        assert!(!all.contains(secret), "{secret} is in the events");
        assert!(!stderr.contains(secret), "{secret} is in stderr");
    }
}

#[test]
fn trading_needs_its_key_variables_named_not_their_values() {
    let ledger = Ledger::new();
    let config = config(&ledger, "ws://127.0.0.1:9", "trading_enabled = true\napi_key_env = \"E2E_NO_SUCH_KEY\"");
    let run = ledger.run(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("binance.api_key_env: the environment variable E2E_NO_SUCH_KEY is not set"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_order_whose_answer_is_lost_is_queried_never_sent_again_and_its_fills_are_recorded() {
    let messages = capture();
    let plan = vec![Connection { messages: 0..messages.len(), close_frame: true }];
    let server = ReplayServer::start(messages, plan, 0).unwrap();
    // The first order reaches the exchange and fills, but its answer is lost; the
    // second is lost on the way there.
    let script = vec![OrderScript::NoAnswer, OrderScript::Lost];
    let rest = rest_mock(script);
    let ledger = Ledger::new();
    let config = trading_config(&ledger, &server, &rest, None, "max_reconnects = 0\npoll_interval = \"1ms\"");
    let output = trading_run(&ledger, &config).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    server.join();
    let events = events(&ledger);
    let orders = payloads(&events, "OrderSubmitted");
    let id = |n: usize| orders[n]["client_order_id"].as_str().unwrap().to_string();
    let about = |kind: &str, id: &str| -> Vec<&Value> {
        payloads(&events, kind).into_iter().filter(|p| p["client_order_id"] == id).collect()
    };
    let taken = rest.taken();
    let posts_of = |id: &str| {
        taken.iter().filter(|r| r.method == "POST" && r.query.contains(&format!("newClientOrderId={id}&"))).count()
    };
    // Each sent once, whatever became of the answer.
    assert_eq!((posts_of(&id(0)), posts_of(&id(1))), (1, 1));
    // The first: queried, then accepted and its two fills taken from the trade history.
    assert_eq!(about("OrderAccepted", &id(0)).len(), 1);
    let fills = about("OrderFilled", &id(0));
    assert_eq!(fills.len(), 2, "{fills:?}");
    assert_eq!((fills[0]["price"].as_str(), fills[1]["price"].as_str()), (Some("61837.63"), Some("61837.64")));
    // The second: the exchange does not have it, so it is rejected, not sent again.
    let rejected = about("OrderRejected", &id(1));
    assert!(rejected[0]["reason"].as_str().unwrap().contains("-2013"), "{rejected:?}");
    let notices = payloads(&events, "VenueNotice");
    let lost = notices.iter().filter(|n| n["detail"].as_str().unwrap().contains("querying it by its client order id"));
    assert_eq!(lost.count(), 2, "{notices:?}");
    assert_replays(&ledger);
}

#[test]
fn a_partly_filled_entry_stays_open_its_fills_are_caused_by_it_and_its_exits_cover_all_it_filled() {
    let messages = capture();
    let plan = vec![Connection { messages: 0..messages.len(), close_frame: true }];
    let server = ReplayServer::start(messages, plan, 0).unwrap();
    // Market orders fill in two parts; commission is charged in BNB at 500 USDT.
    let rest = rest_mock(vec![OrderScript::Fill]);
    rest.charge_commission_in("BNB", Decimal::new(500, 0));
    let ledger = Ledger::new();
    let config = trading_config(&ledger, &server, &rest, None, "max_reconnects = 0");
    let text = std::fs::read_to_string(&config).unwrap() + "[exits]\nstop_loss_pct = 0.02\n";
    std::fs::write(&config, text).unwrap();
    let output = trading_run(&ledger, &config).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    server.join();
    let events = events(&ledger);
    let with = |kind: &str, id: &str| -> Vec<&Value> {
        events.iter().filter(|e| e["payload"].get(kind).is_some_and(|p| p["client_order_id"] == id)).collect()
    };
    let entry = events.iter().find(|e| e["payload"].get("OrderSubmitted").is_some()).unwrap();
    let entry_id = entry["payload"]["OrderSubmitted"]["client_order_id"].as_str().unwrap();
    let entry_seq = &entry["header"]["seq"];

    // Both fills are booked against the entry (caused by it), the first a partial one.
    let fills = with("OrderFilled", entry_id);
    assert_eq!(fills.len(), 2, "{fills:?}");
    for fill in &fills {
        assert_eq!(&fill["header"]["causation_seq"], entry_seq, "{fill}");
    }
    let qty = |e: &Value| -> Decimal { e["payload"]["OrderFilled"]["qty"].as_str().unwrap().parse().unwrap() };
    let total = qty(fills[0]) + qty(fills[1]);

    // Commission in BNB: valued at BNBUSDT's price, the amount and asset on the record.
    let fee: Decimal = fills[0]["payload"]["OrderFilled"]["fee"].as_str().unwrap().parse().unwrap();
    let price = Decimal::new(6_183_763, 2);
    let bnb = (qty(fills[0]) * price * Decimal::new(1, 3) / Decimal::new(500, 0)).round_dp(8);
    assert_eq!(fee, bnb * Decimal::new(500, 0));
    let notices = payloads(&events, "VenueNotice");
    let commission: Vec<&str> =
        notices.iter().filter(|n| n["kind"] == "commission").map(|n| n["detail"].as_str().unwrap()).collect();
    assert!(
        commission[0].contains(&format!("commission {bnb} BNB at 500 USDT (BNBUSDT): booked as a fee of {fee} USDT")),
        "{commission:?}"
    );

    // The first fill placed a stop-loss for its part; the second canceled it and placed
    // one for the whole filled quantity, each caused by its fill.
    let exits: Vec<&Value> =
        events.iter().filter(|e| e["payload"]["OrderSubmitted"]["protects"]["entry"] == entry_id).collect();
    assert_eq!(exits.len(), 2, "{exits:?}");
    let units =
        |e: &Value| -> Decimal { e["payload"]["OrderSubmitted"]["qty"]["Units"].as_str().unwrap().parse().unwrap() };
    assert_eq!((units(exits[0]), units(exits[1])), (qty(fills[0]), total));
    assert_eq!(exits[0]["header"]["causation_seq"], fills[0]["header"]["seq"]);
    assert_eq!(exits[1]["header"]["causation_seq"], fills[1]["header"]["seq"]);
    let first_exit = exits[0]["payload"]["OrderSubmitted"]["client_order_id"].as_str().unwrap();
    let canceled = with("OrderCanceled", first_exit);
    assert!(canceled[0]["payload"]["OrderCanceled"]["reason"].as_str().unwrap().starts_with("resized"), "{canceled:?}");
    // Sent as STOP_LOSS on the tick size, for the whole quantity.
    let taken = rest.taken();
    let stop_posts: Vec<_> =
        taken.iter().filter(|r| r.method == "POST" && r.query.contains("type=STOP_LOSS")).collect();
    assert!(stop_posts[1].query.contains(&format!("quantity={}&", total.normalize())), "{}", stop_posts[1].query);

    assert_replays(&ledger);
}

#[test]
fn fills_come_over_the_user_data_stream_and_one_made_while_it_was_cut_is_recorded_once_after_it_reconnects() {
    let messages = capture();
    let plan = vec![Connection { messages: 0..messages.len(), close_frame: true }];
    let server = ReplayServer::start(messages, plan, 0).unwrap();
    // The first order is answered NEW and fills at once, its fills pushed only over the
    // user data stream; the second fills while the stream is cut (its reports lost).
    let script = vec![OrderScript::FillLater, OrderScript::FillDuringOutage];
    let rest = rest_mock(script);
    let ws_api = rest.serve_user_stream().unwrap();
    let ledger = Ledger::new();
    // Polled at most hourly: what the run learns, it learns from the stream and from
    // the reconciliation after its reconnect.
    let extra = "max_reconnects = 0\nreconnect_backoff = \"10ms\"\npoll_interval = \"1h\"";
    let config = trading_config(&ledger, &server, &rest, Some(&ws_api), extra);
    let output = trading_run(&ledger, &config).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    server.join();
    let events = events(&ledger);
    let submitted: Vec<&Value> = events.iter().filter(|e| e["payload"].get("OrderSubmitted").is_some()).collect();
    let id = |n: usize| submitted[n]["payload"]["OrderSubmitted"]["client_order_id"].as_str().unwrap().to_string();
    let fills_of = |id: &str| -> Vec<&Value> {
        events.iter().filter(|e| e["payload"]["OrderFilled"]["client_order_id"] == id).collect()
    };
    let taken = rest.taken();
    let queries_of = |id: &str| {
        taken.iter().filter(|r| r.method == "GET" && r.query.contains(&format!("origClientOrderId={id}&"))).count()
    };

    // The first: both fills from the stream, caused by the order; never queried.
    let first = fills_of(&id(0));
    assert_eq!(first.len(), 2, "{first:?}");
    for fill in &first {
        assert_eq!(fill["header"]["causation_seq"], submitted[0]["header"]["seq"]);
    }
    assert_eq!(queries_of(&id(0)), 0, "the stream was up: no polling");

    // The second: filled while the stream was cut; after the reconnect the order is
    // queried (the hourly polling never came round) and its fills taken from the trade
    // history, each once.
    let second = fills_of(&id(1));
    let trade_ids: Vec<u64> = second.iter().map(|f| f["payload"]["OrderFilled"]["fill_id"].as_u64().unwrap()).collect();
    assert_eq!(trade_ids.len(), 2, "{second:?}");
    assert_ne!(trade_ids[0], trade_ids[1]);
    assert!(queries_of(&id(1)) >= 1);
    let notices = payloads(&events, "VenueNotice");
    let on_stream: Vec<&str> =
        notices.iter().filter(|n| n["stream"] == "userDataStream").map(|n| n["kind"].as_str().unwrap()).collect();
    assert!(on_stream.contains(&"disconnected") && on_stream.ends_with(&["reconnected"]), "{on_stream:?}");
    // After the reconnect, what the exchange holds is recorded again, and agrees with
    // the balances at start moved by the fills recorded.
    let balances = notices.iter().filter(|n| n["detail"].as_str().unwrap().starts_with("balance BTC: "));
    assert_eq!(balances.count(), 2, "at start and after the reconnect");
    assert!(!notices.iter().any(|n| n["detail"].as_str().unwrap().contains("differs")), "{notices:?}");
    // Each order sent once.
    for n in 0..2 {
        let posts =
            taken.iter().filter(|r| r.method == "POST" && r.query.contains(&format!("newClientOrderId={}&", id(n))));
        assert_eq!(posts.count(), 1);
    }

    assert_replays(&ledger);
}

#[test]
fn killed_with_an_order_in_flight_the_run_resumes_adopts_the_order_and_never_sends_it_again() {
    let messages = capture();
    let plan = killed_and_restarted(messages.len());
    let server = ReplayServer::start(messages, plan, 0).unwrap();
    // The first order reaches the exchange and fills; its answer never comes.
    let rest = rest_mock(vec![OrderScript::Hang]);
    let ws_api = rest.serve_user_stream().unwrap();
    let ledger = Ledger::new();
    let extra = "max_reconnects = 0\nreconnect_backoff = \"10ms\"";
    let config = trading_config(&ledger, &server, &rest, Some(&ws_api), extra);
    let session = || trading_run(&ledger, &config);
    let mut child = session().stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let in_flight = loop {
        if let Some(post) = rest.taken().into_iter().find(|r| r.method == "POST") {
            break post;
        }
        assert!(child.try_wait().unwrap().is_none(), "the session ended before sending an order");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(in_flight.status, 1, "held without an answer");
    child.kill().unwrap(); // SIGKILL, with the order in flight
    child.wait().unwrap();
    let id = in_flight.query.split('&').find_map(|p| p.strip_prefix("newClientOrderId=")).unwrap().to_string();

    let output = session().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    server.join();
    let events = events(&ledger);

    // One run, resumed once.
    assert_eq!(payloads(&events, "RunStarted").len(), 1);
    assert_eq!(payloads(&events, "RunResumed").len(), 1);
    assert!(events.iter().all(|e| e["header"]["run_id"] == 1));
    // The order in flight: sent once, adopted, accepted once, filled in its two parts
    // once each, each fill caused by it.
    let taken = rest.taken();
    let posts = taken.iter().filter(|r| r.method == "POST" && r.query.contains(&format!("newClientOrderId={id}&")));
    assert_eq!(posts.count(), 1, "never sent again");
    let submitted = events.iter().find(|e| e["payload"]["OrderSubmitted"]["client_order_id"] == id.as_str()).unwrap();
    let about = |kind: &str| -> Vec<&Value> {
        events.iter().filter(|e| e["payload"][kind]["client_order_id"] == id.as_str()).collect()
    };
    assert_eq!(about("OrderAccepted").len(), 1);
    let fills = about("OrderFilled");
    assert_eq!(fills.len(), 2, "{fills:?}");
    for fill in &fills {
        assert_eq!(fill["header"]["causation_seq"], submitted["header"]["seq"]);
    }
    let notices = payloads(&events, "VenueNotice");
    assert!(
        notices
            .iter()
            .any(|n| n["detail"].as_str().unwrap().starts_with(&format!("adopted {id} (sent before the restart"))),
        "{notices:?}"
    );
    // No fill anywhere in the run is recorded twice.
    let mut fill_ids: Vec<u64> =
        payloads(&events, "OrderFilled").iter().map(|f| f["fill_id"].as_u64().unwrap()).collect();
    let all = fill_ids.len();
    fill_ids.sort_unstable();
    fill_ids.dedup();
    assert_eq!(fill_ids.len(), all);
    assert!(payloads(&events, "OrderSubmitted").len() > 1, "the resumed session went on trading");

    assert_replays(&ledger);
}

#[test]
fn killed_between_two_fills_of_an_order_the_fill_made_while_down_is_recorded_once_on_resume() {
    let messages = capture();
    let plan = killed_and_restarted(messages.len());
    let server = ReplayServer::start(messages, plan, 0).unwrap();
    // The first order fills in part; the second is in flight when the session is
    // killed; the first fills the rest while no session runs.
    let script = vec![OrderScript::PartFill, OrderScript::Hang];
    let rest = rest_mock(script);
    let ws_api = rest.serve_user_stream().unwrap();
    let ledger = Ledger::new();
    let extra = "max_reconnects = 0\nreconnect_backoff = \"10ms\"";
    let config = trading_config(&ledger, &server, &rest, Some(&ws_api), extra);
    let session = || trading_run(&ledger, &config);
    let mut child = session().stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let posts = loop {
        let posts: Vec<_> = rest.taken().into_iter().filter(|r| r.method == "POST").collect();
        if posts.len() == 2 {
            break posts;
        }
        assert!(child.try_wait().unwrap().is_none(), "the session ended before sending two orders");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let id_of = |post: &ledger_adapters::binance::mock::TakenRequest| {
        post.query.split('&').find_map(|p| p.strip_prefix("newClientOrderId=")).unwrap().to_string()
    };
    let (first, second) = (id_of(&posts[0]), id_of(&posts[1]));
    assert!(rest.complete_order(&first));

    let output = session().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    server.join();
    let events = events(&ledger);
    assert_eq!(payloads(&events, "RunResumed").len(), 1);
    let fills_of = |id: &str| -> Vec<&Value> {
        events.iter().filter(|e| e["payload"]["OrderFilled"]["client_order_id"] == id).collect()
    };
    // The first order: its first fill before the kill, the rest after the resume, once.
    let fills = fills_of(&first);
    assert_eq!(fills.len(), 2, "{fills:?}");
    let resumed = events.iter().position(|e| e["payload"].get("RunResumed").is_some()).unwrap();
    let second_fill = events.iter().rposition(|e| e["payload"]["OrderFilled"]["client_order_id"] == first).unwrap();
    assert!(second_fill > resumed);
    let notices = payloads(&events, "VenueNotice");
    assert!(
        notices.iter().any(|n| n["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("adopted {first} (its record ends with a fill"))),
        "{notices:?}"
    );
    // The second: in flight at the kill, adopted, filled once.
    assert_eq!(fills_of(&second).len(), 2);
    let taken = rest.taken();
    for id in [&first, &second] {
        let posts = taken.iter().filter(|r| r.method == "POST" && r.query.contains(&format!("newClientOrderId={id}&")));
        assert_eq!(posts.count(), 1, "{id} sent once");
    }
    let mut fill_ids: Vec<u64> =
        payloads(&events, "OrderFilled").iter().map(|f| f["fill_id"].as_u64().unwrap()).collect();
    let all = fill_ids.len();
    fill_ids.sort_unstable();
    fill_ids.dedup();
    assert_eq!(fill_ids.len(), all, "no fill recorded twice");

    assert_replays(&ledger);
}

#[test]
fn after_the_market_stream_reconnects_the_venue_reconciles() {
    let messages = capture();
    let plan = vec![
        Connection { messages: 0..1000, close_frame: false },
        Connection { messages: 1500..messages.len(), close_frame: true },
    ];
    let server = ReplayServer::start(messages, plan, 0).unwrap();
    let rest = rest_mock(Vec::new());
    // Half a BTC arrives behind the run's back after it started.
    rest.shift_balance_after_first_read("BTC", Decimal::new(5, 1));
    let ledger = Ledger::new();
    let extra = "max_reconnects = 1\nreconnect_backoff = \"10ms\"";
    let config = trading_config(&ledger, &server, &rest, None, extra);
    let output = trading_run(&ledger, &config).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    server.join();
    let events = events(&ledger);
    let notice_at = |pred: &dyn Fn(&Value) -> bool| -> Vec<usize> {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["payload"].get("VenueNotice").is_some_and(pred))
            .map(|(i, _)| i)
            .collect()
    };
    let reconnected = notice_at(&|n| n["kind"] == "reconnected");
    let balances = notice_at(&|n| n["detail"].as_str().unwrap().starts_with("balance BTC: "));
    assert_eq!(reconnected.len(), 1);
    assert_eq!(balances.len(), 2, "at start and after the reconnect");
    assert!(balances[0] < reconnected[0] && reconnected[0] < balances[1]);
    let account_reads = rest.taken().iter().filter(|r| r.path == "/api/v3/account").count();
    assert_eq!(account_reads, 2);
    // Compared with the balance at start moved by the fills recorded: BTC differs by
    // the half BTC, USDT does not.
    let differs: Vec<&str> = payloads(&events, "VenueNotice")
        .iter()
        .map(|n| n["detail"].as_str().unwrap())
        .filter(|d| d.contains("differs"))
        .collect();
    assert_eq!(differs.len(), 1, "{differs:?}");
    assert!(
        differs[0].starts_with("balance BTC differs from the ledger's") && differs[0].ends_with("(difference 0.5)"),
        "{differs:?}"
    );
}
