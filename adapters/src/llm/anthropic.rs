//! The `anthropic` decision provider: Anthropic's Messages API (`POST
//! {base_url}/messages`, the key in `x-api-key`, `anthropic-version: 2023-06-01`), one
//! request per tick (more with tools), answered with the decision contract in JSON.
//!
//! The request: `model`, `max_tokens` (the API requires it), `system` (the contract),
//! `messages` (the market context as the user's message), `temperature` when set, and
//! with tools `tools: [{name, description, input_schema}]`. The response's text blocks
//! are the answer; its `tool_use` blocks are answered with a user message of
//! `tool_result` blocks, up to `max_tool_rounds` rounds ([`super::agent`]).
//! `stop_reason` `max_tokens` marks a cut answer, `refusal` a refusal (both `hold`,
//! [`ParseStatus::Invalid`](ledger_core::event::ParseStatus::Invalid)); `usage`
//! gives `input_tokens` and `output_tokens`. HTTP 429, 529 (overloaded) and other 5xx
//! are retried with backoff inside the time budget, like every provider here
//! ([`super::http`]).

use std::time::Duration;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::agent::{AgentSettings, Conversation, Dialect, LlmProvider, Stop, ToolUse, Turn};
use super::http::{Auth, Endpoint, RetryPolicy};
use super::{ApiKey, LlmError};

/// The `anthropic-version` header sent.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How an `anthropic` provider calls the API.
#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicSettings {
    /// The API's base URL (`https://api.anthropic.com/v1`); requests go to
    /// `{base_url}/messages`.
    pub base_url: String,
    /// The model name (`claude-sonnet-4-5`, ...).
    pub model: String,
    /// Most output tokens of one response (the API requires it).
    pub max_tokens: u32,
    /// Sampling temperature (0..1); `None` leaves the API's default.
    pub temperature: Option<Decimal>,
    /// Time budget of one request: every attempt and every wait between attempts.
    pub timeout: Duration,
    /// Attempts after the first, for a refused connection, HTTP 429, 529 or 5xx.
    pub max_retries: u32,
    /// Wait before the first retry; doubled before each next one (a `Retry-After` in
    /// seconds is taken instead, up to 30 s).
    pub retry_backoff: Duration,
}

/// An Anthropic model as a decision provider.
pub type AnthropicProvider = LlmProvider<Anthropic>;

/// The Messages API dialect.
#[derive(Debug)]
pub struct Anthropic {
    model: String,
    max_tokens: u32,
    temperature: Option<f64>,
    /// The `tools` array, written once.
    tools: Vec<Value>,
}

impl LlmProvider<Anthropic> {
    /// A provider for `settings` and `agent`, sending `key` in `x-api-key`.
    ///
    /// # Errors
    /// [`LlmError::BaseUrl`] when the base URL is not `http://` or `https://`;
    /// [`LlmError::Client`] when the HTTP client cannot be built.
    pub fn new(settings: AnthropicSettings, agent: AgentSettings, key: Option<ApiKey>) -> Result<Self, LlmError> {
        let policy = RetryPolicy {
            timeout: settings.timeout,
            max_retries: settings.max_retries,
            retry_backoff: settings.retry_backoff,
        };
        let auth = Auth::AnthropicKey { version: ANTHROPIC_VERSION };
        let endpoint = Endpoint::new("anthropic", &settings.base_url, "/messages", auth, policy, key)?;
        let mut params = vec![("max_tokens", settings.max_tokens.to_string())];
        if let Some(temperature) = settings.temperature {
            params.push(("temperature", temperature.to_string()));
        }
        let tools = agent
            .tools
            .iter()
            .map(|tool| json!({"name": tool.name(), "description": tool.description(), "input_schema": tool.input_schema()}))
            .collect();
        let dialect = Anthropic {
            model: settings.model.clone(),
            max_tokens: settings.max_tokens,
            temperature: settings.temperature.and_then(|t| t.to_f64()),
            tools,
        };
        Ok(LlmProvider::build("anthropic", &settings.model, params, dialect, endpoint, agent))
    }
}

/// The request body, fields in a fixed order.
#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    system: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    tools: &'a [Value],
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: Content<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(&'a str),
    Blocks(&'a Value),
    Results(Vec<ToolResult<'a>>),
}

#[derive(Serialize)]
struct ToolResult<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    tool_use_id: &'a str,
    content: &'a str,
}

/// The parts of a Messages response read here; others are ignored.
#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
}

impl Dialect for Anthropic {
    fn request(&self, conversation: &Conversation<'_>) -> String {
        let mut messages = vec![Message { role: "user", content: Content::Text(conversation.user) }];
        for round in conversation.rounds {
            messages.push(Message { role: "assistant", content: Content::Blocks(&round.assistant) });
            let results = round
                .results
                .iter()
                .map(|(id, result)| ToolResult { kind: "tool_result", tool_use_id: id, content: result })
                .collect();
            messages.push(Message { role: "user", content: Content::Results(results) });
        }
        let request = MessagesRequest {
            model: &self.model,
            max_tokens: self.max_tokens,
            system: conversation.system,
            messages,
            temperature: self.temperature,
            tools: &self.tools,
        };
        // Serializing plain data to JSON cannot fail.
        serde_json::to_string(&request).unwrap_or_default()
    }

    fn read(&self, body: &str) -> Result<Turn, String> {
        let response: MessagesResponse = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let (tokens_in, tokens_out) = response.usage.map_or((0, 0), |u| (u.input_tokens, u.output_tokens));
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in &response.content {
            match block["type"].as_str() {
                Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
                Some("tool_use") => calls.push(ToolUse {
                    id: block["id"].as_str().unwrap_or_default().to_string(),
                    name: block["name"].as_str().unwrap_or_default().to_string(),
                    arguments: Ok(block.get("input").cloned().unwrap_or_else(|| json!({}))),
                }),
                _ => {}
            }
        }
        let stop = match response.stop_reason.as_deref() {
            Some("refusal") => Stop::Refused(match text.trim().is_empty() {
                true => "stop_reason \"refusal\"".to_string(),
                false => text.clone(),
            }),
            Some("max_tokens") => Stop::Cut("stop_reason \"max_tokens\""),
            _ => Stop::Done,
        };
        if response.content.is_empty() && !matches!(stop, Stop::Refused(_)) {
            return Err("the response holds no content".into());
        }
        Ok(Turn { text, calls, stop, tokens_in, tokens_out, assistant: Value::Array(response.content) })
    }
}
