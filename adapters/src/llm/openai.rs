//! The `openai` decision provider: one chat-completions request per tick to any
//! OpenAI-compatible server (OpenAI, DeepSeek, vLLM, Ollama, llama.cpp), answered
//! with the decision contract in JSON.
//!
//! What is recorded in the cycle's `DecisionMade`:
//! - `prompt`: the request body exactly as sent (model, messages, temperature, seed,
//!   max tokens; never a header, so never the key), so `prompt_sha256` is the hash of
//!   the request and the message shows the indicator values the model saw;
//! - `raw_output`: the response body as received (or the error body);
//! - `latency_us`: wall time of the whole call, retries included; `tokens_in` and
//!   `tokens_out` from the response's `usage`.
//!
//! Failures never stop a run: a timeout, a refused connection, HTTP 429 and 5xx (retried
//! with exponential backoff while the call's time budget, `timeout`, lasts), any other
//! HTTP error and a malformed body are answered `hold` with the reason in
//! [`ParseStatus::ProviderError`]. A model's refusal and output that breaks the
//! contract (truncated at `max_tokens`, prose without JSON) are
//! [`ParseStatus::Invalid`], as for any provider. Ticks before the indicators are warm
//! (49 bars) hold without a call. With a [`ResponseCache`], a request already answered
//! is answered from it, with the recorded body (or failure) and latency.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_core::codec::{self, CodecError};
use ledger_core::decision::{
    hold, parse_decision, DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo, WARMING_UP,
};
use ledger_core::event::{ParseStatus, Text};
use reqwest::blocking::Client;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::cache::{CachedCall, ResponseCache};
use super::prompt::{self, Indicators, SYSTEM_PROMPT};
use super::{ApiKey, LlmError};

/// The largest response body read, bytes; a longer one is a provider error.
pub const MAX_BODY_BYTES: u64 = 1 << 20;

/// Longest wait between two attempts, whatever `Retry-After` asks.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How an `openai` provider calls its server.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiSettings {
    /// The server's base URL, up to and including the API version
    /// (`https://api.openai.com/v1`, `http://localhost:11434/v1`); the request goes to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    /// The model name, as the server knows it.
    pub model: String,
    /// Sampling temperature (0..2); `None` leaves the server's default.
    pub temperature: Option<Decimal>,
    /// Sampling seed, for servers that honour it; `None` sends none.
    pub seed: Option<u64>,
    /// Most completion tokens; `None` leaves the server's default.
    pub max_tokens: Option<u32>,
    /// Time budget of one decision: every attempt and every wait between attempts.
    pub timeout: Duration,
    /// Attempts after the first, for a refused connection, HTTP 429 or 5xx.
    pub max_retries: u32,
    /// Wait before the first retry; doubled before each next one (a `Retry-After` in
    /// seconds from the server is taken instead, up to 30 s).
    pub retry_backoff: Duration,
}

/// An OpenAI-compatible chat-completions model as a [`DecisionProvider`].
#[derive(Debug)]
pub struct OpenAiProvider {
    settings: OpenAiSettings,
    /// `{base_url}/chat/completions`.
    endpoint: String,
    key: Option<ApiKey>,
    client: Client,
    indicators: Indicators,
    info: ProviderInfo,
    /// The `reason` of holds, shared between cycles.
    warming_up: Text,
    failed: Text,
    cache: Option<ResponseCache>,
}

/// The request body, fields in a fixed order so that the same request is the same
/// bytes (and the same `prompt_sha256`) on every run.
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message<'a>; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

/// The parts of a chat-completions response read here; others are ignored.
#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
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

/// A call that did not give a 2xx body.
struct Failure {
    /// What happened, naming the endpoint; never the key.
    reason: String,
    /// The error body, when the server sent one.
    body: String,
    /// Whether another attempt may succeed.
    retryable: bool,
    /// A wait the server asked for (`Retry-After`).
    retry_after: Option<Duration>,
}

impl OpenAiProvider {
    /// A provider for `settings`, sending `key` (if any) as a bearer token.
    ///
    /// # Errors
    /// [`LlmError::BaseUrl`] when the base URL is not `http://` or `https://`;
    /// [`LlmError::Client`] when the HTTP client cannot be built.
    pub fn new(settings: OpenAiSettings, key: Option<ApiKey>) -> Result<Self, LlmError> {
        let base = settings.base_url.trim().trim_end_matches('/');
        let url = reqwest::Url::parse(base)
            .map_err(|e| LlmError::BaseUrl { url: settings.base_url.clone(), why: e.to_string() })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LlmError::BaseUrl {
                url: settings.base_url.clone(),
                why: "not an http:// or https:// URL".into(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Credentials in the URL would be recorded with it: keys come from the environment.
            return Err(LlmError::BaseUrl {
                url: "(not shown: it holds credentials)".into(),
                why: "credentials in the URL are not allowed: name the key's variable in api_key_env".into(),
            });
        }
        let endpoint = format!("{base}/chat/completions");
        let client = Client::builder()
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| LlmError::Client { url: endpoint.clone(), message: e.to_string() })?;
        let info = ProviderInfo {
            provider: Arc::from("openai"),
            model: Arc::from(settings.model.as_str()),
            params: Arc::from(params(&settings, base).as_str()),
        };
        Ok(OpenAiProvider {
            settings,
            endpoint,
            key,
            client,
            indicators: Indicators::default(),
            info,
            warming_up: Arc::from(WARMING_UP),
            failed: Arc::from("provider error"),
            cache: None,
        })
    }

    /// This provider answering from `cache` when it holds the request, and keeping
    /// every new call's outcome there; in cache-only mode a miss makes no call.
    pub fn with_cache(mut self, cache: ResponseCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The call's outcome and latency: from the cache when it holds the request, else
    /// from the server (and then kept in the cache).
    fn outcome(&self, body: &str) -> (Result<String, Failure>, u64) {
        let Some(cache) = &self.cache else {
            return self.timed_call(body);
        };
        let key = ResponseCache::key("openai", &self.endpoint, body);
        match cache.get(&key) {
            Ok(Some(hit)) => {
                let outcome = match (hit.body, hit.failure) {
                    (Some(text), _) => Ok(text),
                    (None, reason) => Err(Failure {
                        reason: reason.unwrap_or_default(),
                        body: hit.error_body,
                        retryable: false,
                        retry_after: None,
                    }),
                };
                return (outcome, hit.latency_us);
            }
            Ok(None) if cache.only() => {
                cache.miss(&key);
                let reason = format!(
                    "no cached response for request {key} in {} (--llm-cache-only makes no call)",
                    cache.dir().display()
                );
                return (Err(Failure { reason, body: String::new(), retryable: false, retry_after: None }), 0);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!("{error}; asking the server"),
        }
        let (outcome, latency_us) = self.timed_call(body);
        let kept = match &outcome {
            Ok(text) => CachedCall { body: Some(text.clone()), failure: None, error_body: String::new(), latency_us },
            Err(failure) => CachedCall {
                body: None,
                failure: Some(self.scrub(&failure.reason)),
                error_body: self.scrub(&failure.body),
                latency_us,
            },
        };
        if let Err(error) = cache.put(&key, &kept) {
            tracing::warn!("{error}");
        }
        (outcome, latency_us)
    }

    /// [`Self::call`] and its wall time, microseconds.
    fn timed_call(&self, body: &str) -> (Result<String, Failure>, u64) {
        let started = Instant::now();
        let outcome = self.call(body);
        (outcome, u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// The request body for one user message.
    fn request(&self, user: &str) -> String {
        let request = ChatRequest {
            model: &self.settings.model,
            messages: [Message { role: "system", content: SYSTEM_PROMPT }, Message { role: "user", content: user }],
            temperature: self.settings.temperature.and_then(|t| t.to_f64()),
            seed: self.settings.seed,
            max_tokens: self.settings.max_tokens,
        };
        // Serializing plain data to JSON cannot fail.
        serde_json::to_string(&request).unwrap_or_default()
    }

    /// Sends `body`, retrying what may pass on a later attempt while the time budget
    /// lasts; returns the 2xx body.
    fn call(&self, body: &str) -> Result<String, Failure> {
        let start = Instant::now();
        let deadline = start + self.settings.timeout;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let failure = match self.attempt(body, remaining) {
                Ok(text) => return Ok(text),
                Err(failure) => failure,
            };
            let tried = match attempt {
                1 => String::new(),
                n => format!(" (after {n} attempts)"),
            };
            if !failure.retryable || attempt > self.settings.max_retries {
                return Err(Failure { reason: format!("{}{tried}", failure.reason), ..failure });
            }
            let backoff = self.settings.retry_backoff.saturating_mul(1 << (attempt - 1).min(16));
            let wait = failure.retry_after.unwrap_or(backoff).min(MAX_BACKOFF);
            if Instant::now() + wait >= deadline {
                let reason =
                    format!("{}{tried}; no time left to retry within {:?}", failure.reason, self.settings.timeout);
                return Err(Failure { reason, ..failure });
            }
            tracing::debug!(endpoint = %self.endpoint, attempt, "retrying: {}", self.scrub(&failure.reason));
            std::thread::sleep(wait);
        }
    }

    /// One request with `remaining` of the budget.
    fn attempt(&self, body: &str, remaining: Duration) -> Result<String, Failure> {
        let failure =
            |reason: String, retryable: bool| Failure { reason, body: String::new(), retryable, retry_after: None };
        if remaining.is_zero() {
            return Err(failure(format!("POST {}: timed out after {:?}", self.endpoint, self.settings.timeout), false));
        }
        let mut request = self
            .client
            .post(&self.endpoint)
            .timeout(remaining)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_owned());
        if let Some(key) = &self.key {
            // bearer_auth marks the header sensitive, so reqwest never prints it.
            request = request.bearer_auth(key.expose());
        }
        let response = match request.send() {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Err(failure(
                    format!("POST {}: timed out after {:?}", self.endpoint, self.settings.timeout),
                    false,
                ))
            }
            Err(e) if e.is_connect() => {
                return Err(failure(format!("POST {}: cannot connect: {}", self.endpoint, cause(&e)), true))
            }
            Err(e) => return Err(failure(format!("POST {}: {}", self.endpoint, cause(&e)), false)),
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
        if let Err(e) = read {
            let what = match e.kind() {
                std::io::ErrorKind::TimedOut => format!("timed out after {:?}", self.settings.timeout),
                _ => format!("reading the response: {e}"),
            };
            return Err(failure(format!("POST {}: HTTP {}, {what}", self.endpoint, status.as_u16()), false));
        }
        if bytes.len() as u64 > MAX_BODY_BYTES {
            return Err(failure(format!("POST {}: response body over {MAX_BODY_BYTES} bytes", self.endpoint), false));
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_success() {
            return Ok(text);
        }
        let detail = serde_json::from_str::<ErrorBody>(&text).map(|b| b.error.message).unwrap_or_default();
        let detail = match detail.is_empty() {
            true => String::new(),
            false => format!(": {}", excerpt(&detail)),
        };
        let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        Err(Failure {
            reason: format!("POST {}: HTTP {}{detail}", self.endpoint, status.as_u16()),
            body: text,
            retryable,
            retry_after,
        })
    }

    /// `text` without the key.
    fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(key) => key.scrub(text),
            None => text.to_string(),
        }
    }

    /// The answer to a 2xx `body`.
    fn interpret(&self, body: &str) -> (ledger_core::event::Decision, ParseStatus, u32, u32) {
        let response: ChatResponse = match serde_json::from_str(body) {
            Ok(response) => response,
            Err(e) => {
                let why = format!("POST {}: malformed response body: {e}", self.endpoint);
                return (hold(self.failed.clone()), ParseStatus::ProviderError(Arc::from(why.as_str())), 0, 0);
            }
        };
        let (tokens_in, tokens_out) = response.usage.map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        let Some(choice) = response.choices.into_iter().next() else {
            let why = format!("POST {}: the response holds no choices", self.endpoint);
            return (
                hold(self.failed.clone()),
                ParseStatus::ProviderError(Arc::from(why.as_str())),
                tokens_in,
                tokens_out,
            );
        };
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.trim().is_empty()) {
            let why = format!("the model refused: {}", excerpt(&refusal));
            let decision = hold(Arc::from("the model refused"));
            return (decision, ParseStatus::Invalid(Arc::from(why.as_str())), tokens_in, tokens_out);
        }
        let content = choice.message.content.unwrap_or_default();
        let (decision, status) = parse_decision(&content);
        let status = match (status, choice.finish_reason.as_deref()) {
            (ParseStatus::Invalid(why), Some("length")) => {
                let why = format!("output cut at max_tokens (finish_reason \"length\"): {why}");
                ParseStatus::Invalid(Arc::from(why.as_str()))
            }
            (status, _) => status,
        };
        (decision, status, tokens_in, tokens_out)
    }
}

impl DecisionProvider for OpenAiProvider {
    fn info(&self) -> ProviderInfo {
        self.info.clone()
    }

    fn decide(&mut self, input: &DecisionInput<'_>) -> ProviderAnswer {
        let close = input.bar.map_or(input.price, |bar| bar.close);
        let Some(levels) = self.indicators.push(close) else {
            return ProviderAnswer {
                decision: hold(self.warming_up.clone()),
                parse_status: ParseStatus::Ok,
                prompt: Arc::from(""),
                raw_output: Arc::from(""),
                latency_us: 0,
                tokens_in: 0,
                tokens_out: 0,
            };
        };
        let body = self.request(&prompt::user_message(input, &levels));
        let (outcome, latency_us) = self.outcome(&body);
        let (decision, parse_status, raw_output, tokens_in, tokens_out) = match outcome {
            Ok(text) => {
                let (decision, status, tokens_in, tokens_out) = self.interpret(&text);
                (decision, status, text, tokens_in, tokens_out)
            }
            Err(failure) => {
                let reason = self.scrub(&failure.reason);
                (hold(self.failed.clone()), ParseStatus::ProviderError(Arc::from(reason.as_str())), failure.body, 0, 0)
            }
        };
        if let ParseStatus::ProviderError(why) = &parse_status {
            tracing::warn!(provider = "openai", "holding: {why}");
        }
        ProviderAnswer {
            decision,
            parse_status,
            prompt: Arc::from(body.as_str()),
            raw_output: Arc::from(self.scrub(&raw_output).as_str()),
            latency_us,
            tokens_in,
            tokens_out,
        }
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        codec::encode_meta(&self.indicators).ok()
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), CodecError> {
        self.indicators = codec::decode_meta(state)?;
        Ok(())
    }
}

/// The provider's parameters as recorded in `RunStarted`: `k=v` sorted by key.
fn params(settings: &OpenAiSettings, base: &str) -> String {
    let mut out = format!("base_url={base} max_retries={}", settings.max_retries);
    if let Some(max_tokens) = settings.max_tokens {
        out.push_str(&format!(" max_tokens={max_tokens}"));
    }
    out.push_str(&format!(" retry_backoff={:?}", settings.retry_backoff));
    if let Some(seed) = settings.seed {
        out.push_str(&format!(" seed={seed}"));
    }
    if let Some(temperature) = settings.temperature {
        out.push_str(&format!(" temperature={temperature}"));
    }
    out.push_str(&format!(" timeout={:?}", settings.timeout));
    out
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
fn excerpt(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match one_line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}
