//! LLM decision providers: a model is asked for each decision over HTTP, and its answer
//! is held to the decision contract by [`ledger_core::decision::parse_decision`].
//!
//! # Layout
//! - [`prompt`]: the market context a model is shown (instrument, prices, EMA 20/50,
//!   RSI 14, trend, position, equity) and the default prompt with the JSON contract.
//! - [`agent`]: what every provider does around its API's dialect: the conversation
//!   with its tool rounds, the answer held to the contract, failures, cost, the record.
//! - [`openai`]: the OpenAI-compatible chat-completions dialect (OpenAI, DeepSeek,
//!   vLLM, Ollama, llama.cpp).
//! - [`anthropic`]: Anthropic's Messages API dialect.
//! - [`tools`]: the read-only tools of a tool-calling agent.
//! - [`http`]: the endpoint: HTTP client, key header, retries within the time budget.
//! - [`cache`]: call outcomes kept by request hash, so a backtest runs again at no cost.
//!
//! What every provider here promises: a failure (timeout, refused connection, HTTP
//! error, malformed body) is answered as `hold` with the reason in
//! [`ledger_core::event::ParseStatus::ProviderError`], never as a panic or a stopped
//! run; the API key is held in an [`ApiKey`], which prints as `***` and is scrubbed
//! from every message a provider records or logs.

pub mod agent;
pub mod anthropic;
pub mod cache;
pub mod http;
pub mod openai;
pub mod prompt;
pub mod tools;

use std::fmt;

/// A secret API key. Its `Debug` shows `***`; it has no `Display` and is never
/// serialized, so it can only reach the outside through [`ApiKey::expose`], which the
/// providers call for the request's `Authorization` header alone.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key, trimmed; `None` when it is empty or blank.
    pub fn new(key: &str) -> Option<ApiKey> {
        let key = key.trim();
        (!key.is_empty()).then(|| ApiKey(key.to_string()))
    }

    /// The key itself, for the request header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced by `***` (a server may echo
    /// the key in an error message).
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// A provider that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The base URL is not an `http://` or `https://` URL.
    #[error("base_url {url:?}: {why}")]
    BaseUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The HTTP client could not be built (TLS roots, ...).
    #[error("building the HTTP client for {url}: {message}")]
    Client {
        /// The endpoint the client was for.
        url: String,
        /// The client's error.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_never_shows_itself() {
        let key = ApiKey::new(" sk-secret-123 ").unwrap();
        // TC0: Debug hides it.
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        // TC1: scrub removes every occurrence.
        assert_eq!(key.scrub("bad key sk-secret-123, sk-secret-123"), "bad key ***, ***");
        // TC2: blank is no key.
        assert!(ApiKey::new("  ").is_none());
    }
}
