//! A session on Binance spot: the `[binance]` section turned into the session's feed
//! (the live websocket stream, each cycle at the wall clock's time, its notices
//! recorded), and checked before anything connects.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ledger_adapters::binance::{
    BinanceFeed, BinanceVenue, Credentials, FeedSettings, NoticeBoard, RestClient, UserStream, UserStreamSettings,
};
use ledger_adapters::clock::WallClock;
use ledger_core::event::{NoticeKind, VenueNotice};
use ledger_core::feed::{MarketFeed, Tick};
use ledger_core::ids::InstrumentId;
use ledger_core::time::{Clock, TimestampNs};
use ledger_core::venue::{FillModel, Venue};

use crate::config::{
    BinanceConfig, BinanceMode, Settings, DEFAULT_BACKOFF_MAX_NS, DEFAULT_BACKOFF_NS, DEFAULT_CONNECTION_AGE_NS,
};
use crate::pipeline::Cycles;

/// The live feed's cycles: each tick as it arrives, at the wall clock's time; with the
/// Binance venue when trading is enabled.
pub struct BinanceCycles {
    feed: BinanceFeed,
    venue: Option<BinanceVenue>,
    board: NoticeBoard,
    /// The venue's reconciliation trigger, set when the market data stream reconnects.
    reconcile: Option<Arc<AtomicBool>>,
}

impl Cycles for BinanceCycles {
    fn next_cycle(&mut self) -> Result<Option<(Tick, TimestampNs)>> {
        let Ok(tick) = self.feed.next_tick();
        Ok(tick.map(|tick| (tick, WallClock.now())))
    }

    /// The exchange's stream: a resumed run goes on with its next tick.
    fn is_live(&self) -> bool {
        true
    }

    fn take_venue(&mut self) -> Option<Box<dyn Venue>> {
        self.venue.take().map(|venue| Box::new(venue) as Box<dyn Venue>)
    }

    /// The venue's notices (the clock offset, requests that failed), then the feed's. A
    /// reconnect of the feed has the venue reconcile at its next poll.
    fn take_notices(&mut self) -> Vec<(VenueNotice, TimestampNs)> {
        let mut notices = self.board.lock().map(|mut board| std::mem::take(&mut *board)).unwrap_or_default();
        let feed = self.feed.take_notices();
        if let Some(flag) = &self.reconcile {
            if feed.iter().any(|(n, _)| n.kind == NoticeKind::Reconnected) {
                flag.store(true, Ordering::Relaxed);
            }
        }
        notices.extend(feed);
        notices
    }
}

/// A session's Binance market data: its cycles, provenance and instruments.
pub struct BinanceData {
    /// The ticks.
    pub cycles: BinanceCycles,
    /// Provenance recorded in `RunStarted`: `binance <mode> <url>`.
    pub source: String,
    /// The instruments, one per symbol.
    pub instruments: Vec<InstrumentId>,
}

/// The stream kinds the feed reads.
fn known_stream(kind: &str) -> bool {
    matches!(kind, "trade" | "bookTicker") || kind.strip_prefix("kline_").is_some_and(|i| !i.is_empty())
}

/// Connects the feed `[binance]` configures. When the settings do not name a fill
/// model, the paper venue (shadow mode) fills on quotes when `bookTicker` is read,
/// else on trades, else on bars.
///
/// # Errors
/// No symbol, a symbol that is not an instrument id, an unknown stream kind, a URL
/// that is not `ws://` or `wss://`, data files configured too, or the feed's thread
/// cannot start.
pub fn market_data(settings: &mut Settings, binance: &BinanceConfig) -> Result<BinanceData> {
    if !settings.data.files.is_empty() {
        bail!("[binance] reads the exchange's feed: remove the data files (--data, [data] files)");
    }
    if binance.symbols.is_empty() {
        bail!("binance.symbols: empty; name at least one symbol, e.g. [\"BTCUSDT\"]");
    }
    let instruments = binance
        .symbols
        .iter()
        .map(|s| InstrumentId::new(s).with_context(|| format!("binance.symbols: {s:?} is not an instrument id")))
        .collect::<Result<Vec<_>>>()?;
    if binance.streams.is_empty() {
        bail!("binance.streams: empty; read at least one of \"trade\", \"bookTicker\", \"kline_1m\"");
    }
    if let Some(kind) = binance.streams.iter().find(|k| !known_stream(k)) {
        bail!("binance.streams: {kind:?} is not a stream this feed reads (\"trade\", \"bookTicker\", \"kline_<interval>\")");
    }
    let ws_url = binance.ws_url();
    if !(ws_url.starts_with("ws://") || ws_url.starts_with("wss://")) {
        bail!("binance.ws_url: {ws_url:?} must start with ws:// or wss://");
    }
    if !settings.fill_model_configured {
        settings.venue.fill_model = if binance.streams.iter().any(|s| s == "bookTicker") {
            FillModel::Quote
        } else if binance.streams.iter().any(|s| s == "trade") {
            FillModel::Trade
        } else {
            FillModel::NextOpen
        };
    }
    let nanos = |ns: Option<i64>, default: i64| Duration::from_nanos(u64::try_from(ns.unwrap_or(default)).unwrap_or(0));
    let feed_settings = FeedSettings {
        ws_url: ws_url.to_string(),
        instruments: instruments.clone(),
        streams: binance.streams.clone(),
        max_reconnects: binance.max_reconnects,
        backoff_initial: nanos(binance.reconnect_backoff, DEFAULT_BACKOFF_NS),
        backoff_max: nanos(binance.reconnect_backoff_max, DEFAULT_BACKOFF_MAX_NS),
        max_connection_age: nanos(binance.max_connection_age, DEFAULT_CONNECTION_AGE_NS),
    };
    let source = format!("binance {:?} {}", binance.mode, feed_settings.url()).to_lowercase();
    let board = NoticeBoard::default();
    let venue = match binance.trading_enabled {
        true => Some(venue(binance, &instruments, settings, board.clone())?),
        false => None,
    };
    let reconcile = venue.as_ref().map(BinanceVenue::reconcile_trigger);
    let feed = BinanceFeed::connect(feed_settings).context("starting the binance feed's thread")?;
    Ok(BinanceData { cycles: BinanceCycles { feed, venue, board, reconcile }, source, instruments })
}

/// The value of the environment variable `var` (named by `key` in `[binance]`).
fn secret_from_env(key: &str, var: &str) -> Result<String> {
    // The variable's name only: its value is a secret.
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .with_context(|| format!("binance.{key}: the environment variable {var} is not set or is empty"))
}

/// The Binance venue: its REST client signed with the key and secret from the
/// environment, its clock offset measured and its symbols' filters read.
fn venue(
    binance: &BinanceConfig,
    instruments: &[InstrumentId],
    settings: &Settings,
    board: NoticeBoard,
) -> Result<BinanceVenue> {
    let rest_url = binance.rest_url();
    if !(rest_url.starts_with("http://") || rest_url.starts_with("https://")) {
        bail!("binance.rest_url: {rest_url:?} must start with http:// or https://");
    }
    if !(1..=60_000).contains(&binance.recv_window_ms) {
        bail!("binance.recv_window_ms: {} must be in 1..=60000", binance.recv_window_ms);
    }
    if settings.exits.trailing_stop_pct.is_some() {
        bail!(
            "exits.trailing_stop_pct: Binance spot cannot move a working stop; leave trailing stops off on this venue"
        );
    }
    let credentials = Credentials::new(
        secret_from_env("api_key_env", &binance.api_key_env)?,
        secret_from_env("api_secret_env", &binance.api_secret_env)?,
    );
    let rest = RestClient::new(rest_url, credentials.clone(), binance.recv_window_ms, binance.weight_limit)?;
    let poll = Duration::from_nanos(u64::try_from(binance.poll_interval.unwrap_or(1_000_000_000)).unwrap_or(0));
    let venue = BinanceVenue::connect(rest, instruments, settings.venue.commission_rate, poll, board)
        .with_context(|| format!("binance at {rest_url}"))?;
    if !binance.user_stream {
        return Ok(venue);
    }
    let ws_api_url = binance.ws_api_url();
    if !(ws_api_url.starts_with("ws://") || ws_api_url.starts_with("wss://")) {
        bail!("binance.ws_api_url: {ws_api_url:?} must start with ws:// or wss://");
    }
    let nanos = |ns: Option<i64>, default: i64| Duration::from_nanos(u64::try_from(ns.unwrap_or(default)).unwrap_or(0));
    let stream_settings = UserStreamSettings {
        url: ws_api_url.to_string(),
        backoff_initial: nanos(binance.reconnect_backoff, DEFAULT_BACKOFF_NS),
        backoff_max: nanos(binance.reconnect_backoff_max, DEFAULT_BACKOFF_MAX_NS),
        offset_ms: venue.offset_ms(),
    };
    let stream = UserStream::connect(stream_settings, credentials).context("starting the user data stream's thread")?;
    Ok(venue.with_user_stream(stream))
}

/// Refuses a live session without `--live`, and says plainly what a live one is about
/// to trade (on stderr, before anything connects).
///
/// # Errors
/// `mode = "live"` without `--live`.
pub fn check_mode(binance: &BinanceConfig, live_flag: bool) -> Result<()> {
    if binance.mode != BinanceMode::Live {
        return Ok(());
    }
    if !live_flag {
        bail!("binance.mode = \"live\" trades real money: pass --live to confirm (or use mode = \"testnet\")");
    }
    let orders = if binance.trading_enabled { "SENDS REAL ORDERS" } else { "sends nothing (trading_enabled = false)" };
    eprintln!(
        "LIVE on Binance spot at {}: symbols {}; this session {orders}",
        binance.rest_url(),
        binance.symbols.join(", ")
    );
    Ok(())
}
