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
//! With `tools`, the model is offered them as functions (`tools: [{type: "function",
//! function: {name, description, parameters}}]`); its `tool_calls` are answered with
//! `{role: "tool", tool_call_id, content}` messages, up to `max_tool_rounds` rounds
//! ([`super::agent`]).
//!
//! Failures never stop a run: a timeout, a refused connection, HTTP 429 and 5xx (retried
//! with exponential backoff while the call's time budget, `timeout`, lasts), any other
//! HTTP error and a malformed body are answered `hold` with the reason in
//! [`ParseStatus::ProviderError`]. A model's refusal and output that breaks the
//! contract (truncated at `max_tokens`, prose without JSON) are
//! [`ParseStatus::Invalid`], as for any provider. Ticks before the indicators are warm
//! (49 bars) hold without a call. With a [`ResponseCache`], a request already answered
//! is answered from it, with the recorded body (or failure) and latency.

use std::time::Duration;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::agent::{AgentSettings, Conversation, Dialect, LlmProvider, Stop, ToolUse, Turn};
use super::http::{Auth, Endpoint, RetryPolicy};
use super::{ApiKey, LlmError};

pub use super::http::MAX_BODY_BYTES;

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
    /// Time budget of one request: every attempt and every wait between attempts.
    pub timeout: Duration,
    /// Attempts after the first, for a refused connection, HTTP 429 or 5xx.
    pub max_retries: u32,
    /// Wait before the first retry; doubled before each next one (a `Retry-After` in
    /// seconds from the server is taken instead, up to 30 s).
    pub retry_backoff: Duration,
}

/// An OpenAI-compatible chat-completions model as a decision provider.
pub type OpenAiProvider = LlmProvider<OpenAi>;

/// The chat-completions dialect.
#[derive(Debug)]
pub struct OpenAi {
    model: String,
    temperature: Option<f64>,
    seed: Option<u64>,
    max_tokens: Option<u32>,
    /// The `tools` array, written once.
    tools: Vec<Value>,
}

impl LlmProvider<OpenAi> {
    /// A provider for `settings` and `agent`, sending `key` (if any) as a bearer token.
    ///
    /// # Errors
    /// [`LlmError::BaseUrl`] when the base URL is not `http://` or `https://`;
    /// [`LlmError::Client`] when the HTTP client cannot be built.
    pub fn new(settings: OpenAiSettings, agent: AgentSettings, key: Option<ApiKey>) -> Result<Self, LlmError> {
        let policy = RetryPolicy {
            timeout: settings.timeout,
            max_retries: settings.max_retries,
            retry_backoff: settings.retry_backoff,
        };
        let endpoint = Endpoint::new("openai", &settings.base_url, "/chat/completions", Auth::Bearer, policy, key)?;
        let mut params = Vec::new();
        if let Some(max_tokens) = settings.max_tokens {
            params.push(("max_tokens", max_tokens.to_string()));
        }
        if let Some(seed) = settings.seed {
            params.push(("seed", seed.to_string()));
        }
        if let Some(temperature) = settings.temperature {
            params.push(("temperature", temperature.to_string()));
        }
        let tools = agent
            .tools
            .iter()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.name(), "description": tool.description(), "parameters": tool.input_schema()}})
            })
            .collect();
        let dialect = OpenAi {
            model: settings.model.clone(),
            temperature: settings.temperature.and_then(|t| t.to_f64()),
            seed: settings.seed,
            max_tokens: settings.max_tokens,
            tools,
        };
        Ok(LlmProvider::build("openai", &settings.model, params, dialect, endpoint, agent))
    }
}

/// The request body, fields in a fixed order so that the same request is the same
/// bytes (and the same `prompt_sha256`) on every run.
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    tools: &'a [Value],
}

#[derive(Serialize)]
#[serde(untagged)]
enum Message<'a> {
    Text { role: &'a str, content: &'a str },
    ToolResult { role: &'a str, tool_call_id: &'a str, content: &'a str },
    Assistant(&'a Value),
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
    #[serde(default)]
    tool_calls: Vec<ToolCall>,
}

#[derive(Deserialize, Serialize)]
struct ToolCall {
    id: String,
    #[serde(rename = "type", default = "function")]
    kind: String,
    function: FunctionCall,
}

fn function() -> String {
    "function".into()
}

#[derive(Deserialize, Serialize)]
struct FunctionCall {
    name: String,
    /// JSON text, as the API sends it.
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl Dialect for OpenAi {
    fn request(&self, conversation: &Conversation<'_>) -> String {
        let mut messages = vec![
            Message::Text { role: "system", content: conversation.system },
            Message::Text { role: "user", content: conversation.user },
        ];
        for round in conversation.rounds {
            messages.push(Message::Assistant(&round.assistant));
            for (id, result) in &round.results {
                messages.push(Message::ToolResult { role: "tool", tool_call_id: id, content: result });
            }
        }
        let request = ChatRequest {
            model: &self.model,
            messages,
            temperature: self.temperature,
            seed: self.seed,
            max_tokens: self.max_tokens,
            tools: &self.tools,
        };
        // Serializing plain data to JSON cannot fail.
        serde_json::to_string(&request).unwrap_or_default()
    }

    fn read(&self, body: &str) -> Result<Turn, String> {
        let response: ChatResponse = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let (tokens_in, tokens_out) = response.usage.map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        let choice = response.choices.into_iter().next().ok_or("the response holds no choices")?;
        let stop = match (choice.message.refusal.filter(|r| !r.trim().is_empty()), choice.finish_reason.as_deref()) {
            (Some(refusal), _) => Stop::Refused(refusal),
            (None, Some("length")) => Stop::Cut("finish_reason \"length\""),
            (None, _) => Stop::Done,
        };
        let calls = choice
            .message
            .tool_calls
            .iter()
            .map(|call| ToolUse {
                id: call.id.clone(),
                name: call.function.name.clone(),
                arguments: serde_json::from_str(&call.function.arguments).map_err(|_| call.function.arguments.clone()),
            })
            .collect();
        let text = choice.message.content.unwrap_or_default();
        let assistant = match choice.message.tool_calls.is_empty() {
            true => json!({"role": "assistant", "content": text}),
            false => json!({"role": "assistant", "content": Value::Null, "tool_calls": choice.message.tool_calls}),
        };
        Ok(Turn { text, calls, stop, tokens_in, tokens_out, assistant })
    }
}
