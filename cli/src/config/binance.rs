//! `[binance]`: a session on Binance spot (its websocket market data; orders when
//! trading is enabled). Secrets are never configuration values: the section names the
//! environment variables that hold the API key and secret.

use serde::{Deserialize, Serialize};

/// Testnet or the real exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinanceMode {
    /// Binance's spot testnet (play money): the default.
    #[default]
    Testnet,
    /// The real exchange: real money. Needs `ledger run --live`.
    Live,
}

/// `[binance]` as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BinanceConfig {
    /// Testnet (default) or live.
    pub mode: BinanceMode,
    /// The symbols traded, as Binance writes them (`BTCUSDT`); each is an instrument.
    pub symbols: Vec<String>,
    /// The streams read for each symbol: `trade`, `bookTicker`, `kline_<interval>`.
    pub streams: Vec<String>,
    /// Whether orders are sent. Off (default): shadow mode, the whole pipeline runs on
    /// the live feed and its orders fill on the paper venue; nothing is sent.
    pub trading_enabled: bool,
    /// The websocket base URL; unset: the mode's (`wss://stream.testnet.binance.vision`
    /// or `wss://stream.binance.com:9443`).
    pub ws_url: Option<String>,
    /// The REST base URL; unset: the mode's (`https://testnet.binance.vision` or
    /// `https://api.binance.com`).
    pub rest_url: Option<String>,
    /// The environment variable holding the API key.
    pub api_key_env: String,
    /// The environment variable holding the API secret.
    pub api_secret_env: String,
    /// Failed connections in a row after which the feed ends and the run stops (unset:
    /// never).
    pub max_reconnects: Option<u32>,
    /// First wait before connecting again, doubled after each failure, nanoseconds (in
    /// a file: `reconnect_backoff = "500ms"`).
    #[serde(alias = "reconnect_backoff_ns", with = "ledger_core::time::duration_ns")]
    pub reconnect_backoff: Option<i64>,
    /// Longest wait before connecting again, nanoseconds (`reconnect_backoff_max = "30s"`).
    #[serde(alias = "reconnect_backoff_max_ns", with = "ledger_core::time::duration_ns")]
    pub reconnect_backoff_max: Option<i64>,
    /// Age at which a connection is closed and made again, nanoseconds (default 23 h;
    /// Binance cuts connections at 24 h).
    #[serde(alias = "max_connection_age_ns", with = "ledger_core::time::duration_ns")]
    pub max_connection_age: Option<i64>,
    /// `recvWindow` of signed requests, ms (Binance's default 5000; at most 60000).
    pub recv_window_ms: u64,
    /// Request weight per minute at which orders are held back (Binance allows 6000).
    pub weight_limit: u64,
    /// How often a working order is queried, nanoseconds (`poll_interval = "1s"`).
    #[serde(alias = "poll_interval_ns", with = "ledger_core::time::duration_ns")]
    pub poll_interval: Option<i64>,
    /// Whether what becomes of orders is taken from the user data stream (the
    /// websocket API's `userDataStream.subscribe.signature`; default on). Off, or while
    /// the stream is down: working orders are polled every `poll_interval`.
    pub user_stream: bool,
    /// The websocket API's URL; unset: the mode's
    /// (`wss://ws-api.testnet.binance.vision/ws-api/v3` or
    /// `wss://ws-api.binance.com:443/ws-api/v3`).
    pub ws_api_url: Option<String>,
}

impl Default for BinanceConfig {
    fn default() -> Self {
        BinanceConfig {
            mode: BinanceMode::Testnet,
            symbols: vec!["BTCUSDT".into()],
            streams: vec!["trade".into(), "bookTicker".into()],
            trading_enabled: false,
            ws_url: None,
            rest_url: None,
            api_key_env: "BINANCE_API_KEY".into(),
            api_secret_env: "BINANCE_API_SECRET".into(),
            max_reconnects: None,
            reconnect_backoff: None,
            reconnect_backoff_max: None,
            max_connection_age: None,
            recv_window_ms: 5000,
            weight_limit: 5000,
            poll_interval: None,
            user_stream: true,
            ws_api_url: None,
        }
    }
}

/// Default first reconnect wait, ns (500 ms).
pub const DEFAULT_BACKOFF_NS: i64 = 500_000_000;
/// Default longest reconnect wait, ns (30 s).
pub const DEFAULT_BACKOFF_MAX_NS: i64 = 30_000_000_000;
/// Default connection age before a planned reconnect, ns (23 h).
pub const DEFAULT_CONNECTION_AGE_NS: i64 = 23 * 3_600_000_000_000;

impl BinanceConfig {
    /// The websocket base URL in force.
    pub fn ws_url(&self) -> &str {
        match (&self.ws_url, self.mode) {
            (Some(url), _) => url,
            (None, BinanceMode::Testnet) => "wss://stream.testnet.binance.vision",
            (None, BinanceMode::Live) => "wss://stream.binance.com:9443",
        }
    }

    /// The websocket API's URL in force (the user data stream's).
    pub fn ws_api_url(&self) -> &str {
        match (&self.ws_api_url, self.mode) {
            (Some(url), _) => url,
            (None, BinanceMode::Testnet) => ledger_adapters::binance::user_stream::TESTNET_WS_API,
            (None, BinanceMode::Live) => ledger_adapters::binance::user_stream::LIVE_WS_API,
        }
    }

    /// The REST base URL in force.
    pub fn rest_url(&self) -> &str {
        match (&self.rest_url, self.mode) {
            (Some(url), _) => url,
            (None, BinanceMode::Testnet) => "https://testnet.binance.vision",
            (None, BinanceMode::Live) => "https://api.binance.com",
        }
    }
}
