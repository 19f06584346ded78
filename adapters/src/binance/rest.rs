//! Binance spot's REST API, as the venue uses it: the server's time, a symbol's exchange
//! filters, and signed requests (HMAC-SHA256 of the query string with the API secret,
//! `timestamp` on the server's clock and `recvWindow`), with rate limits respected:
//! a 429 or 418 holds every request back for the `Retry-After` it names, and the
//! request weight used (`X-MBX-USED-WEIGHT-1M`) is kept so that orders stop short of
//! the limit.
//!
//! The API key and secret are held in [`Credentials`], whose `Debug` shows neither;
//! neither is ever logged or put into an error.

use std::fmt;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use ledger_core::time::{Clock, TimestampNs};
use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::Sha256;
use thiserror::Error;

use crate::clock::WallClock;

/// The API key and secret. `Debug` prints neither.
#[derive(Clone)]
pub struct Credentials {
    key: String,
    secret: String,
}

impl Credentials {
    /// Credentials from the key and the secret.
    pub fn new(key: String, secret: String) -> Self {
        Credentials { key, secret }
    }

    /// The API key (sent as `X-MBX-APIKEY` or `apiKey`; never log it).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The secret (signs; never sent, never log it).
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// The hex HMAC-SHA256 of `payload` under `secret`: Binance's `signature` parameter.
pub fn sign(secret: &str, payload: &str) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// What a request to Binance came to, when not what was asked.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RestError {
    /// Binance refused the request: its error code (`-2010`, `-1013`, ...) and message.
    #[error("binance {code}: {msg} (HTTP {status})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Binance's error code.
        code: i64,
        /// Binance's message.
        msg: String,
    },
    /// Rate limited (HTTP 429, or 418 once banned): no request is made before the wait
    /// is over.
    #[error("rate limited (HTTP {status}): no request for {wait_s} s (Retry-After)")]
    RateLimited {
        /// 429 or 418.
        status: u16,
        /// Seconds to wait.
        wait_s: u64,
    },
    /// The request weight used this minute is at the limit set: no order is sent
    /// before the minute is over.
    #[error("request weight {used} of the {limit} allowed per minute is used: holding orders back")]
    WeightExhausted {
        /// Weight used (`X-MBX-USED-WEIGHT-1M`).
        used: u64,
        /// The limit the venue keeps under.
        limit: u64,
    },
    /// No answer, or one that does not read.
    #[error("{0}")]
    Transport(String),
}

/// A symbol's exchange filters (from `exchangeInfo`), applied to an order before it is
/// sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SymbolFilters {
    /// PRICE_FILTER: lowest price (0: none).
    pub min_price: Decimal,
    /// PRICE_FILTER: highest price (0: none).
    pub max_price: Decimal,
    /// PRICE_FILTER: prices are multiples of it (0: any).
    pub tick_size: Decimal,
    /// LOT_SIZE: lowest quantity.
    pub min_qty: Decimal,
    /// LOT_SIZE: highest quantity (0: none).
    pub max_qty: Decimal,
    /// LOT_SIZE: quantities are multiples of it (0: any).
    pub step_size: Decimal,
    /// MIN_NOTIONAL or NOTIONAL: lowest price x quantity, quote currency (0: none).
    pub min_notional: Decimal,
    /// NOTIONAL: highest price x quantity (0: none).
    pub max_notional: Decimal,
    /// The symbol's base asset (`BTC`).
    pub base_asset: String,
    /// The symbol's quote asset (`USDT`).
    pub quote_asset: String,
}

impl SymbolFilters {
    /// `qty` rounded down to the step size.
    pub fn floor_qty(&self, qty: Decimal) -> Decimal {
        ledger_core::sizing::floor_lot(qty, self.step_size)
    }

    /// `price` moved onto the tick size: down for a buy, up for a sell (unchanged
    /// without a tick size).
    pub fn round_price(&self, price: Decimal, buy: bool) -> Decimal {
        if self.tick_size <= Decimal::ZERO {
            return price;
        }
        let ticks = price.checked_div(self.tick_size).unwrap_or(Decimal::ZERO);
        let whole = if buy { ticks.floor() } else { ticks.ceil() };
        whole.checked_mul(self.tick_size).unwrap_or(price)
    }

    /// Checks a quantity already on the step against LOT_SIZE.
    ///
    /// # Errors
    /// The filter violated, named, with the values.
    pub fn check_qty(&self, qty: Decimal) -> Result<(), String> {
        if qty < self.min_qty || qty <= Decimal::ZERO {
            return Err(format!("LOT_SIZE: quantity {qty} is below minQty {}", self.min_qty));
        }
        if self.max_qty > Decimal::ZERO && qty > self.max_qty {
            return Err(format!("LOT_SIZE: quantity {qty} is above maxQty {}", self.max_qty));
        }
        Ok(())
    }

    /// Checks a price against PRICE_FILTER.
    ///
    /// # Errors
    /// The filter violated, named, with the values.
    pub fn check_price(&self, price: Decimal) -> Result<(), String> {
        if price < self.min_price || price <= Decimal::ZERO {
            return Err(format!("PRICE_FILTER: price {price} is below minPrice {}", self.min_price));
        }
        if self.max_price > Decimal::ZERO && price > self.max_price {
            return Err(format!("PRICE_FILTER: price {price} is above maxPrice {}", self.max_price));
        }
        if self.tick_size > Decimal::ZERO && !(price % self.tick_size).is_zero() {
            return Err(format!("PRICE_FILTER: price {price} is not a multiple of tickSize {}", self.tick_size));
        }
        Ok(())
    }

    /// Checks `qty x price` against MIN_NOTIONAL / NOTIONAL.
    ///
    /// # Errors
    /// The filter violated, named, with the values.
    pub fn check_notional(&self, qty: Decimal, price: Decimal) -> Result<(), String> {
        let notional = qty.checked_mul(price).ok_or_else(|| format!("NOTIONAL: {qty} x {price} is out of range"))?;
        if notional < self.min_notional {
            return Err(format!("NOTIONAL: {qty} x {price} = {notional} is below minNotional {}", self.min_notional));
        }
        if self.max_notional > Decimal::ZERO && notional > self.max_notional {
            return Err(format!("NOTIONAL: {qty} x {price} = {notional} is above maxNotional {}", self.max_notional));
        }
        Ok(())
    }
}

/// The REST client: one base URL, the credentials, the server's clock offset and the
/// rate-limit state.
pub struct RestClient {
    http: Client,
    base: String,
    credentials: Credentials,
    recv_window_ms: u64,
    /// Server time minus local time, ms.
    offset_ms: i64,
    /// No request before this instant (after a 429/418).
    hold_until: Option<Instant>,
    /// The request weight used this minute, as last reported.
    used_weight: u64,
    /// Orders are held back once the weight used reaches this.
    weight_limit: u64,
}

/// Binance's error body.
#[derive(Deserialize)]
struct ErrorBody {
    code: i64,
    msg: String,
}

impl RestClient {
    /// A client of `base` (`https://testnet.binance.vision`), signing with
    /// `credentials`, `recvWindow` `recv_window_ms`, holding orders back once the
    /// minute's request weight reaches `weight_limit`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(
        base: &str,
        credentials: Credentials,
        recv_window_ms: u64,
        weight_limit: u64,
    ) -> Result<Self, RestError> {
        let http = Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| RestError::Transport(format!("http client: {e}")))?;
        Ok(RestClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            credentials,
            recv_window_ms,
            offset_ms: 0,
            hold_until: None,
            used_weight: 0,
            weight_limit,
        })
    }

    /// Measures the server's clock against ours (`GET /api/v3/time`, taking the middle
    /// of the round trip as the server's moment) and signs with it from now on. Returns
    /// the offset, server minus local, ms.
    ///
    /// # Errors
    /// The request failed.
    pub fn measure_offset(&mut self) -> Result<i64, RestError> {
        #[derive(Deserialize)]
        struct Time {
            #[serde(rename = "serverTime")]
            server_time: i64,
        }
        let before = WallClock.now();
        let time: Time = self.request(Method::GET, "/api/v3/time", String::new(), false)?;
        let after = WallClock.now();
        let middle_ms = (before.nanos() / 2 + after.nanos() / 2) / 1_000_000;
        self.offset_ms = time.server_time - middle_ms;
        Ok(self.offset_ms)
    }

    /// The exchange filters of `symbol` (`GET /api/v3/exchangeInfo?symbol=`).
    ///
    /// # Errors
    /// The request failed, the symbol is not listed, or a filter value is not a decimal.
    pub fn filters(&mut self, symbol: &str) -> Result<SymbolFilters, RestError> {
        let info: ExchangeInfo =
            self.request(Method::GET, "/api/v3/exchangeInfo", format!("symbol={symbol}"), false)?;
        let listed = info
            .symbols
            .into_iter()
            .find(|s| s.symbol == symbol)
            .ok_or_else(|| RestError::Transport(format!("exchangeInfo does not list {symbol}")))?;
        let mut filters = SymbolFilters {
            base_asset: listed.base_asset,
            quote_asset: listed.quote_asset,
            ..SymbolFilters::default()
        };
        let dec = |value: &Option<String>, name: &str| -> Result<Decimal, RestError> {
            match value {
                None => Ok(Decimal::ZERO),
                Some(text) => Decimal::from_str_exact(text)
                    .map_err(|e| RestError::Transport(format!("exchangeInfo {symbol} {name} {text:?}: {e}"))),
            }
        };
        for f in &listed.filters {
            match f.filter_type.as_str() {
                "PRICE_FILTER" => {
                    filters.min_price = dec(&f.min_price, "minPrice")?;
                    filters.max_price = dec(&f.max_price, "maxPrice")?;
                    filters.tick_size = dec(&f.tick_size, "tickSize")?;
                }
                "LOT_SIZE" => {
                    filters.min_qty = dec(&f.min_qty, "minQty")?;
                    filters.max_qty = dec(&f.max_qty, "maxQty")?;
                    filters.step_size = dec(&f.step_size, "stepSize")?;
                }
                "MIN_NOTIONAL" | "NOTIONAL" => {
                    filters.min_notional = filters.min_notional.max(dec(&f.min_notional, "minNotional")?);
                    filters.max_notional = dec(&f.max_notional, "maxNotional")?;
                }
                _ => {}
            }
        }
        Ok(filters)
    }

    /// The last price of `symbol` (`GET /api/v3/ticker/price?symbol=`), quote currency.
    ///
    /// # Errors
    /// The request failed, or the price is not a decimal.
    pub fn price(&mut self, symbol: &str) -> Result<Decimal, RestError> {
        #[derive(Deserialize)]
        struct Ticker {
            price: String,
        }
        let ticker: Ticker = self.request(Method::GET, "/api/v3/ticker/price", format!("symbol={symbol}"), false)?;
        Decimal::from_str_exact(&ticker.price)
            .map_err(|e| RestError::Transport(format!("ticker/price {symbol} {:?}: {e}", ticker.price)))
    }

    /// The weight used this minute, as Binance last reported it.
    pub fn used_weight(&self) -> u64 {
        self.used_weight
    }

    /// Whether an order may be sent now: no `Retry-After` wait running, and the weight
    /// used below the limit kept.
    ///
    /// # Errors
    /// [`RestError::RateLimited`] or [`RestError::WeightExhausted`].
    pub fn may_send_order(&self) -> Result<(), RestError> {
        self.check_hold()?;
        if self.used_weight >= self.weight_limit {
            return Err(RestError::WeightExhausted { used: self.used_weight, limit: self.weight_limit });
        }
        Ok(())
    }

    fn check_hold(&self) -> Result<(), RestError> {
        match self.hold_until.map(|until| until.saturating_duration_since(Instant::now())) {
            Some(left) if !left.is_zero() => Err(RestError::RateLimited { status: 429, wait_s: left.as_secs().max(1) }),
            _ => Ok(()),
        }
    }

    /// A signed request: `params` (a query string, without `timestamp`), then
    /// `timestamp` on the server's clock, `recvWindow` and the `signature` of it all.
    ///
    /// # Errors
    /// As [`RestClient::request`].
    pub fn signed<T: for<'de> Deserialize<'de>>(
        &mut self,
        method: Method,
        path: &str,
        params: &str,
    ) -> Result<T, RestError> {
        let timestamp = WallClock.now().nanos() / 1_000_000 + self.offset_ms;
        let sep = if params.is_empty() { "" } else { "&" };
        let query = format!("{params}{sep}timestamp={timestamp}&recvWindow={}", self.recv_window_ms);
        let signature = sign(&self.credentials.secret, &query);
        self.request(method, path, format!("{query}&signature={signature}"), true)
    }

    /// One request; the query in the URL (Binance reads it there for every method).
    fn request<T: for<'de> Deserialize<'de>>(
        &mut self,
        method: Method,
        path: &str,
        query: String,
        with_key: bool,
    ) -> Result<T, RestError> {
        self.check_hold()?;
        let url =
            if query.is_empty() { format!("{}{path}", self.base) } else { format!("{}{path}?{query}", self.base) };
        let mut request = self.http.request(method, &url);
        if with_key {
            let mut key = HeaderValue::from_str(&self.credentials.key)
                .map_err(|_| RestError::Transport("the API key is not a valid header value".into()))?;
            key.set_sensitive(true);
            request = request.header("X-MBX-APIKEY", key);
        }
        // The error names the path only: the URL holds the signature.
        let response = request.send().map_err(|e| RestError::Transport(format!("{path}: {}", e.without_url())))?;
        self.read(path, response)
    }

    fn read<T: for<'de> Deserialize<'de>>(&mut self, path: &str, response: Response) -> Result<T, RestError> {
        let status = response.status();
        let header_u64 = |name: &str| -> Option<u64> {
            response.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
        };
        if let Some(used) = header_u64("x-mbx-used-weight-1m") {
            self.used_weight = used;
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 418 {
            let wait_s = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(60);
            self.hold_until = Some(Instant::now() + Duration::from_secs(wait_s));
            return Err(RestError::RateLimited { status: status.as_u16(), wait_s });
        }
        let body = response.text().map_err(|e| RestError::Transport(format!("{path}: {}", e.without_url())))?;
        if !status.is_success() {
            return Err(match serde_json::from_str::<ErrorBody>(&body) {
                Ok(e) => RestError::Refused { status: status.as_u16(), code: e.code, msg: e.msg },
                Err(_) => RestError::Transport(format!("{path}: HTTP {status}: {}", first_line(&body))),
            });
        }
        serde_json::from_str(&body).map_err(|e| RestError::Transport(format!("{path}: unreadable answer: {e}")))
    }

    /// Server time minus local time, ms, as last measured.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// The server's time now, ms, as this client reckons it.
    pub fn server_now(&self) -> TimestampNs {
        TimestampNs::from_nanos(WallClock.now().nanos().saturating_add(self.offset_ms.saturating_mul(1_000_000)))
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    line.get(..200).unwrap_or(line)
}

#[derive(Deserialize)]
struct ExchangeInfo {
    symbols: Vec<ListedSymbol>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedSymbol {
    symbol: String,
    base_asset: String,
    quote_asset: String,
    filters: Vec<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    filter_type: String,
    min_price: Option<String>,
    max_price: Option<String>,
    tick_size: Option<String>,
    min_qty: Option<String>,
    max_qty: Option<String>,
    step_size: Option<String>,
    min_notional: Option<String>,
    max_notional: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    /// The worked example of Binance's API documentation ("SIGNED endpoint examples
    /// for POST /api/v3/order", HMAC-SHA256).
    #[test]
    fn signs_as_binances_documented_example() {
        let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
        let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(sign(secret, query), "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71");
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let shown = format!("{:?}", Credentials::new("the-key".into(), "the-secret".into()));
        assert!(!shown.contains("the-key") && !shown.contains("the-secret"), "{shown}");
    }

    #[test]
    fn filters_name_themselves_when_violated() {
        let f = SymbolFilters {
            min_price: dec!(0.01),
            max_price: dec!(1000000),
            tick_size: dec!(0.01),
            min_qty: dec!(0.00001),
            max_qty: dec!(9000),
            step_size: dec!(0.00001),
            min_notional: dec!(5),
            ..SymbolFilters::default()
        };
        assert_eq!(f.floor_qty(dec!(0.123456789)), dec!(0.12345));
        assert_eq!(f.check_qty(dec!(0)).unwrap_err(), "LOT_SIZE: quantity 0 is below minQty 0.00001");
        assert_eq!(f.check_qty(dec!(9001)).unwrap_err(), "LOT_SIZE: quantity 9001 is above maxQty 9000");
        assert_eq!(
            f.check_price(dec!(100.005)).unwrap_err(),
            "PRICE_FILTER: price 100.005 is not a multiple of tickSize 0.01"
        );
        assert!(f.check_price(dec!(61837.63)).is_ok());
        assert_eq!(
            f.check_notional(dec!(0.00005), dec!(61837.63)).unwrap_err(),
            "NOTIONAL: 0.00005 x 61837.63 = 3.0918815 is below minNotional 5"
        );
        assert!(f.check_notional(dec!(0.0001), dec!(61837.63)).is_ok());
        // Onto the tick, against the order: a buy's down, a sell's up.
        assert_eq!(f.round_price(dec!(60600.8774), true), dec!(60600.87));
        assert_eq!(f.round_price(dec!(60600.8774), false), dec!(60600.88));
        assert_eq!(f.round_price(dec!(60600.88), false), dec!(60600.88));
    }
}
