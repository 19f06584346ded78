//! One LLM server's endpoint, shared by every provider here: the HTTP client (reqwest),
//! the key's header, retries with exponential backoff inside the call's time budget,
//! the response cache, and key scrubbing.
//!
//! A timeout, a refused connection, HTTP 429 and 5xx (Anthropic's 529 "overloaded"
//! included) are retried while the budget lasts (a `Retry-After` in seconds is
//! honoured, up to 30 s); any other HTTP error is not. An error body's
//! `{"error": {"message": ...}}` (the shape of OpenAI's and Anthropic's errors) is
//! quoted in the reason. Reasons name the endpoint, never the key.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;

use super::cache::{CachedCall, ResponseCache};
use super::{ApiKey, LlmError};

/// The largest response body read, bytes; a longer one is a provider error.
pub const MAX_BODY_BYTES: u64 = 1 << 20;

/// Longest wait between two attempts, whatever `Retry-After` asks.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a provider retries within its time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Time budget of one request: every attempt and every wait between attempts.
    pub timeout: Duration,
    /// Attempts after the first, for a refused connection, HTTP 429 or 5xx.
    pub max_retries: u32,
    /// Wait before the first retry; doubled before each next one (a `Retry-After` in
    /// seconds from the server is taken instead, up to 30 s).
    pub retry_backoff: Duration,
}

/// How the key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// `Authorization: Bearer KEY` (OpenAI-compatible servers).
    Bearer,
    /// `x-api-key: KEY` and `anthropic-version: VERSION` (Anthropic).
    AnthropicKey {
        /// The API version header's value.
        version: &'static str,
    },
}

/// A call that did not give a 2xx body.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What happened, naming the endpoint; never the key.
    pub reason: String,
    /// The error body, when the server sent one.
    pub body: String,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// Whether another attempt may succeed.
    retryable: bool,
    /// A wait the server asked for (`Retry-After`).
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(reason: String, retryable: bool) -> Failure {
        Failure { reason, body: String::new(), status: None, retryable, retry_after: None }
    }
}

/// One request's outcome: the 2xx body or the failure, the last HTTP status, and the
/// wall time with retries (as recorded, when served from the cache), microseconds.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub outcome: Result<String, Failure>,
    pub status: Option<u16>,
    pub latency_us: u64,
}

/// An error response's `{"error": {"message": ...}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

/// A provider's server endpoint.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The provider kind, part of every cache key (`openai`, `anthropic`).
    provider: &'static str,
    /// The base URL, trimmed of its last `/`.
    base: String,
    /// `{base}{path}`.
    url: String,
    client: Client,
    key: Option<ApiKey>,
    auth: Auth,
    policy: RetryPolicy,
    cache: Option<ResponseCache>,
}

impl Endpoint {
    /// The endpoint `{base_url}{path}` of `provider`.
    ///
    /// # Errors
    /// [`LlmError::BaseUrl`] when the base URL is not `http://` or `https://`, or holds
    /// credentials; [`LlmError::Client`] when the HTTP client cannot be built.
    pub fn new(
        provider: &'static str,
        base_url: &str,
        path: &str,
        auth: Auth,
        policy: RetryPolicy,
        key: Option<ApiKey>,
    ) -> Result<Endpoint, LlmError> {
        let base = base_url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(base)
            .map_err(|e| LlmError::BaseUrl { url: base_url.to_string(), why: e.to_string() })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::BaseUrl { url: base_url.to_string(), why: "not an http:// or https:// URL".into() });
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // Credentials in the URL would be recorded with it: keys come from the environment.
            return Err(LlmError::BaseUrl {
                url: "(not shown: it holds credentials)".into(),
                why: "credentials in the URL are not allowed: name the key's variable in api_key_env".into(),
            });
        }
        let url = format!("{base}{path}");
        let client = Client::builder()
            .connect_timeout(policy.timeout)
            .build()
            .map_err(|e| LlmError::Client { url: url.clone(), message: e.to_string() })?;
        Ok(Endpoint { provider, base: base.to_string(), url, client, key, auth, policy, cache: None })
    }

    /// The base URL as used (no trailing `/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The retry policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Answers from `cache` when it holds a request, and keeps every new outcome there.
    pub fn set_cache(&mut self, cache: ResponseCache) {
        self.cache = Some(cache);
    }

    /// `text` without the key.
    pub fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(key) => key.scrub(text),
            None => text.to_string(),
        }
    }

    /// The outcome of POSTing `body`: from the cache when it holds the request, else
    /// from the server (and then kept in the cache). In cache-only mode a miss makes
    /// no call: it is a failure naming the request's key.
    pub fn exchange(&self, body: &str) -> Exchange {
        let Some(cache) = &self.cache else {
            return self.timed_call(body);
        };
        let key = ResponseCache::key(self.provider, &self.url, body);
        match cache.get(&key) {
            Ok(Some(hit)) => {
                let outcome = match (hit.body, hit.failure) {
                    (Some(text), _) => Ok(text),
                    (None, reason) => Err(Failure {
                        body: hit.error_body,
                        status: hit.http_status,
                        ..Failure::new(reason.unwrap_or_default(), false)
                    }),
                };
                return Exchange { outcome, status: hit.http_status, latency_us: hit.latency_us };
            }
            Ok(None) if cache.only() => {
                cache.miss(&key);
                let reason = format!(
                    "no cached response for request {key} in {} (--llm-cache-only makes no call)",
                    cache.dir().display()
                );
                return Exchange { outcome: Err(Failure::new(reason, false)), status: None, latency_us: 0 };
            }
            Ok(None) => {}
            Err(error) => tracing::warn!("{error}; asking the server"),
        }
        let exchange = self.timed_call(body);
        let kept = match &exchange.outcome {
            Ok(text) => CachedCall {
                body: Some(text.clone()),
                failure: None,
                error_body: String::new(),
                latency_us: exchange.latency_us,
                http_status: exchange.status,
            },
            Err(failure) => CachedCall {
                body: None,
                failure: Some(self.scrub(&failure.reason)),
                error_body: self.scrub(&failure.body),
                latency_us: exchange.latency_us,
                http_status: exchange.status,
            },
        };
        if let Err(error) = cache.put(&key, &kept) {
            tracing::warn!("{error}");
        }
        exchange
    }

    /// [`Self::call`] and its wall time.
    fn timed_call(&self, body: &str) -> Exchange {
        let started = Instant::now();
        let outcome = self.call(body);
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let status = match &outcome {
            Ok((_, status)) => Some(*status),
            Err(failure) => failure.status,
        };
        Exchange { outcome: outcome.map(|(text, _)| text), status, latency_us }
    }

    /// Sends `body`, retrying what may pass on a later attempt while the time budget
    /// lasts; returns the 2xx body and its status.
    fn call(&self, body: &str) -> Result<(String, u16), Failure> {
        let deadline = Instant::now() + self.policy.timeout;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let failure = match self.attempt(body, remaining) {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            let tried = match attempt {
                1 => String::new(),
                n => format!(" (after {n} attempts)"),
            };
            if !failure.retryable || attempt > self.policy.max_retries {
                return Err(Failure { reason: format!("{}{tried}", failure.reason), ..failure });
            }
            let backoff = self.policy.retry_backoff.saturating_mul(1 << (attempt - 1).min(16));
            let wait = failure.retry_after.unwrap_or(backoff).min(MAX_BACKOFF);
            if Instant::now() + wait >= deadline {
                let reason =
                    format!("{}{tried}; no time left to retry within {:?}", failure.reason, self.policy.timeout);
                return Err(Failure { reason, ..failure });
            }
            tracing::debug!(endpoint = %self.url, attempt, "retrying: {}", self.scrub(&failure.reason));
            std::thread::sleep(wait);
        }
    }

    /// The request with the key's headers (marked sensitive, so reqwest never prints them).
    fn authorized(&self, mut request: RequestBuilder) -> RequestBuilder {
        if let Auth::AnthropicKey { version } = self.auth {
            request = request.header("anthropic-version", HeaderValue::from_static(version));
        }
        let Some(key) = &self.key else { return request };
        match self.auth {
            Auth::Bearer => request.bearer_auth(key.expose()),
            Auth::AnthropicKey { .. } => match HeaderValue::from_str(key.expose()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request.header("x-api-key", value)
                }
                // A key with bytes a header cannot hold is sent as none: the server says 401.
                Err(_) => request,
            },
        }
    }

    /// One request with `remaining` of the budget.
    fn attempt(&self, body: &str, remaining: Duration) -> Result<(String, u16), Failure> {
        let timed_out = || Failure::new(format!("POST {}: timed out after {:?}", self.url, self.policy.timeout), false);
        if remaining.is_zero() {
            return Err(timed_out());
        }
        let request = self
            .client
            .post(&self.url)
            .timeout(remaining)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_owned());
        let response = match self.authorized(request).send() {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Err(timed_out()),
            Err(e) if e.is_connect() => {
                return Err(Failure::new(format!("POST {}: cannot connect: {}", self.url, cause(&e)), true))
            }
            Err(e) => return Err(Failure::new(format!("POST {}: {}", self.url, cause(&e)), false)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = Vec::new();
        let read = response.take(MAX_BODY_BYTES + 1).read_to_end(&mut bytes);
        let with_status = |reason: String| Failure { status: Some(status.as_u16()), ..Failure::new(reason, false) };
        if let Err(e) = read {
            let what = match e.kind() {
                std::io::ErrorKind::TimedOut => format!("timed out after {:?}", self.policy.timeout),
                _ => format!("reading the response: {e}"),
            };
            return Err(with_status(format!("POST {}: HTTP {}, {what}", self.url, status.as_u16())));
        }
        if bytes.len() as u64 > MAX_BODY_BYTES {
            return Err(with_status(format!("POST {}: response body over {MAX_BODY_BYTES} bytes", self.url)));
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_success() {
            return Ok((text, status.as_u16()));
        }
        let detail = serde_json::from_str::<ErrorBody>(&text).map(|b| b.error.message).unwrap_or_default();
        let detail = match detail.is_empty() {
            true => String::new(),
            false => format!(": {}", excerpt(&detail)),
        };
        Err(Failure {
            reason: format!("POST {}: HTTP {}{detail}", self.url, status.as_u16()),
            body: text,
            status: Some(status.as_u16()),
            retryable: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
            retry_after,
        })
    }
}

/// The innermost cause of a client error, which says what went wrong (refused,
/// DNS, TLS) without reqwest's wrapping; the URL is named by the caller.
fn cause(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// At most 300 characters of a server's message, on one line.
pub(crate) fn excerpt(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match one_line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}
