//! What every LLM provider does around its server's dialect: the indicators and the
//! warm-up, the prompt, the conversation with its tool rounds, the answer held to the
//! decision contract, failures as `hold`, the cost, and the record of the call.
//!
//! A provider is an [`LlmProvider`] over a [`Dialect`] (how one API writes requests and
//! responses: [`super::openai`], [`super::anthropic`]); the HTTP side (retries, cache,
//! key) is its [`Endpoint`].
//!
//! A decision's record: `DecisionMade.prompt` is the last request body as sent (with
//! tools, the whole conversation: the model's tool calls and the answers they got),
//! `raw_output` the last response body (or error body), `latency_us` and the token
//! counts summed over the requests; then one `ToolCalled` per tool call and a
//! `ModelCalled` (requests, last HTTP status, error, cost, indicator values).
//!
//! Tool rounds: while the model answers with tool calls and fewer than
//! `max_tool_rounds` rounds were answered, the calls are answered ([`super::tools`])
//! and the model asked again; a model still calling tools after that holds, with the
//! reason recorded as [`ParseStatus::Invalid`].

use std::collections::VecDeque;
use std::sync::Arc;

use ledger_core::codec::{self, CodecError};
use ledger_core::decision::{
    hold, parse_decision, CallRecord, DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo, WARMING_UP,
};
use ledger_core::event::{Decision, ModelCalled, ParseStatus, Text, ToolCalled};
use rust_decimal::Decimal;
use serde_json::Value;

use super::cache::ResponseCache;
use super::http::{excerpt, Endpoint};
use super::prompt::{self, Indicators, Levels, PromptTemplate, SYSTEM_PROMPT, TOOLS_NOTE};
use super::tools::{self, Desk, SeenTick, Tool, MAX_RECENT_BARS};

/// One million, the unit of token prices.
const MTOK: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// What an agent adds to a plain model call: tools, their rounds, token prices and
/// the prompt.
#[derive(Debug, Clone, Default)]
pub struct AgentSettings {
    /// The tools the model may call (none: a plain one-request decision).
    pub tools: Vec<Tool>,
    /// Most tool rounds per decision (a round answers every call of one response).
    pub max_tool_rounds: u32,
    /// Price of a million prompt tokens, US dollars (cost 0 when unset).
    pub price_per_mtok_in: Option<Decimal>,
    /// Price of a million completion tokens, US dollars.
    pub price_per_mtok_out: Option<Decimal>,
    /// A template for the user message, replacing the default one.
    pub template: Option<PromptTemplate>,
}

/// The conversation so far, as a dialect writes it into a request.
pub struct Conversation<'a> {
    /// The system message.
    pub system: &'a str,
    /// The user message: the market context.
    pub user: &'a str,
    /// The tool rounds answered so far.
    pub rounds: &'a [Round],
}

/// One tool round: the model's message that called the tools (as the response held
/// it, to be sent back), and each call's id and answer.
pub struct Round {
    /// The model's message, as the response held it.
    pub assistant: Value,
    /// Each call's id and the answer (JSON text).
    pub results: Vec<(String, String)>,
}

/// A tool call read from a response.
pub struct ToolUse {
    /// The call's id, which its answer names.
    pub id: String,
    /// The tool called.
    pub name: String,
    /// The arguments, or their raw text when they are not JSON.
    pub arguments: Result<Value, String>,
}

/// Why the model stopped.
pub enum Stop {
    /// It finished (or called tools).
    Done,
    /// Cut at the token limit.
    Cut(&'static str),
    /// It refused, with what it said.
    Refused(String),
}

/// One response, read.
pub struct Turn {
    /// The text of the answer.
    pub text: String,
    /// The tool calls it makes.
    pub calls: Vec<ToolUse>,
    /// Why the model stopped.
    pub stop: Stop,
    /// Prompt tokens of the request.
    pub tokens_in: u32,
    /// Completion tokens of the response.
    pub tokens_out: u32,
    /// The model's message, as a next request sends it back.
    pub assistant: Value,
}

/// How one API writes requests and reads responses.
pub trait Dialect: std::fmt::Debug {
    /// The request body for `conversation`, its fields in a fixed order (the same
    /// request is the same bytes, the same `prompt_sha256` and cache key, every run).
    fn request(&self, conversation: &Conversation<'_>) -> String;

    /// A 2xx body, read; `Err` names what is malformed.
    fn read(&self, body: &str) -> Result<Turn, String>;
}

/// What the provider keeps between decisions, saved in session snapshots.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    indicators: Indicators,
    recent: VecDeque<SeenTick>,
}

/// A model behind an HTTP API as a [`DecisionProvider`]: the `openai` and `anthropic`
/// providers.
#[derive(Debug)]
pub struct LlmProvider<D> {
    dialect: D,
    endpoint: Endpoint,
    agent: AgentSettings,
    info: ProviderInfo,
    /// The system message: the contract, and with tools the note on them.
    system: String,
    indicators: Indicators,
    /// The ticks seen, for `get_recent_bars` (kept only when that tool is given).
    recent: VecDeque<SeenTick>,
    /// The `reason` of holds, shared between cycles.
    warming_up: Text,
    failed: Text,
}

/// How a decision's conversation ended.
struct Ending {
    decision: Decision,
    status: ParseStatus,
    raw: String,
    error: String,
}

impl<D: Dialect> LlmProvider<D> {
    /// A provider of `kind` (`openai`, `anthropic`) for `model`, its other parameters
    /// recorded as `params` (`k=v` sorted by key, the agent's keys merged in).
    pub(crate) fn build(
        kind: &str,
        model: &str,
        params: Vec<(&'static str, String)>,
        dialect: D,
        endpoint: Endpoint,
        agent: AgentSettings,
    ) -> Self {
        let mut params = params;
        let policy = endpoint.policy();
        params.push(("base_url", endpoint.base().to_string()));
        params.push(("max_retries", policy.max_retries.to_string()));
        params.push(("retry_backoff", format!("{:?}", policy.retry_backoff)));
        params.push(("timeout", format!("{:?}", policy.timeout)));
        if !agent.tools.is_empty() {
            let names: Vec<&str> = agent.tools.iter().map(|t| t.name()).collect();
            params.push(("tools", names.join(",")));
            params.push(("max_tool_rounds", agent.max_tool_rounds.to_string()));
        }
        if let Some(price) = agent.price_per_mtok_in {
            params.push(("price_per_mtok_in", price.to_string()));
        }
        if let Some(price) = agent.price_per_mtok_out {
            params.push(("price_per_mtok_out", price.to_string()));
        }
        if let Some(template) = &agent.template {
            params.push(("prompt_template_sha256", template.sha256().to_string()));
        }
        params.sort();
        let params: Vec<String> = params.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let info = ProviderInfo {
            provider: Arc::from(kind),
            model: Arc::from(model),
            params: Arc::from(params.join(" ").as_str()),
        };
        let system = match agent.tools.is_empty() {
            true => SYSTEM_PROMPT.to_string(),
            false => format!("{SYSTEM_PROMPT}\n{TOOLS_NOTE}"),
        };
        LlmProvider {
            dialect,
            endpoint,
            agent,
            info,
            system,
            indicators: Indicators::default(),
            recent: VecDeque::new(),
            warming_up: Arc::from(WARMING_UP),
            failed: Arc::from("provider error"),
        }
    }

    /// This provider answering from `cache` when it holds the request, and keeping
    /// every new call's outcome there; in cache-only mode a miss makes no call.
    pub fn with_cache(mut self, cache: ResponseCache) -> Self {
        self.endpoint.set_cache(cache);
        self
    }

    /// The cost of `tokens_in` and `tokens_out` at the configured prices, US dollars.
    fn cost(&self, tokens_in: u32, tokens_out: u32) -> Decimal {
        let part = |tokens: u32, price: Option<Decimal>| {
            price.and_then(|p| p.checked_mul(Decimal::from(tokens))).and_then(|c| c.checked_div(MTOK))
        };
        let total = part(tokens_in, self.agent.price_per_mtok_in)
            .unwrap_or_default()
            .checked_add(part(tokens_out, self.agent.price_per_mtok_out).unwrap_or_default())
            .unwrap_or(Decimal::MAX);
        total.normalize()
    }

    /// The decision in the model's final answer.
    fn conclude(&self, turn: Turn) -> (Decision, ParseStatus) {
        if let Stop::Refused(said) = &turn.stop {
            let why = format!("the model refused: {}", excerpt(said));
            return (hold(Arc::from("the model refused")), ParseStatus::Invalid(Arc::from(why.as_str())));
        }
        let (decision, status) = parse_decision(&turn.text);
        let status = match (status, &turn.stop) {
            (ParseStatus::Invalid(why), Stop::Cut(reason)) => {
                let why = format!("output cut at max_tokens ({reason}): {why}");
                ParseStatus::Invalid(Arc::from(why.as_str()))
            }
            (status, _) => status,
        };
        (decision, status)
    }

    /// A provider error: `hold`, the reason scrubbed of the key.
    fn failure(&self, reason: &str, raw: String) -> Ending {
        let reason = self.endpoint.scrub(reason);
        Ending {
            decision: hold(self.failed.clone()),
            status: ParseStatus::ProviderError(Arc::from(reason.as_str())),
            raw,
            error: reason,
        }
    }
}

impl<D: Dialect> DecisionProvider for LlmProvider<D> {
    fn info(&self) -> ProviderInfo {
        self.info.clone()
    }

    fn decide(&mut self, input: &DecisionInput<'_>) -> ProviderAnswer {
        let close = input.bar.map_or(input.price, |bar| bar.close);
        if self.agent.tools.contains(&Tool::GetRecentBars) {
            if self.recent.len() == MAX_RECENT_BARS {
                self.recent.pop_front();
            }
            self.recent.push_back(SeenTick { ts: input.ts, price: input.price, bar: input.bar.cloned() });
        }
        let Some(levels) = self.indicators.push(close) else {
            return ProviderAnswer::unasked(hold(self.warming_up.clone()), Arc::from(""));
        };
        let user = match &self.agent.template {
            None => prompt::user_message(input, &levels),
            Some(template) => match template.render(input, &levels) {
                Ok(text) => text,
                Err(error) => {
                    return self.answer(&levels, String::new(), self.failure(&error, String::new()), Totals::default())
                }
            },
        };
        let mut rounds: Vec<Round> = Vec::new();
        let mut tool_calls = Vec::new();
        let mut totals = Totals::default();
        let desk = Desk { input, levels: &levels, recent: &self.recent };
        let (body, ending) = loop {
            let conversation = Conversation { system: &self.system, user: &user, rounds: &rounds };
            let body = self.dialect.request(&conversation);
            let exchange = self.endpoint.exchange(&body);
            totals.requests += 1;
            totals.latency_us = totals.latency_us.saturating_add(exchange.latency_us);
            totals.status = exchange.status;
            let text = match exchange.outcome {
                Ok(text) => text,
                Err(failure) => break (body, self.failure(&failure.reason, failure.body)),
            };
            let turn = match self.dialect.read(&text) {
                Ok(turn) => turn,
                Err(why) => {
                    let reason = format!("POST {}: malformed response body: {why}", self.endpoint.url());
                    break (body, self.failure(&reason, text));
                }
            };
            totals.tokens_in = totals.tokens_in.saturating_add(turn.tokens_in);
            totals.tokens_out = totals.tokens_out.saturating_add(turn.tokens_out);
            if turn.calls.is_empty() || self.agent.tools.is_empty() {
                let (decision, status) = self.conclude(turn);
                break (body, Ending { decision, status, raw: text, error: String::new() });
            }
            if rounds.len() as u32 >= self.agent.max_tool_rounds {
                let why = format!(
                    "the model still called tools after max_tool_rounds = {} rounds",
                    self.agent.max_tool_rounds
                );
                let ending = Ending {
                    decision: hold(Arc::from("no answer within max_tool_rounds")),
                    status: ParseStatus::Invalid(Arc::from(why.as_str())),
                    raw: text,
                    error: String::new(),
                };
                break (body, ending);
            }
            let round = rounds.len() as u32 + 1;
            let mut results = Vec::with_capacity(turn.calls.len());
            for call in &turn.calls {
                let (arguments, result) = tools::answer(&self.agent.tools, &call.name, &call.arguments, &desk);
                tool_calls.push(ToolCalled {
                    round,
                    name: Arc::from(call.name.as_str()),
                    arguments: Arc::from(arguments.as_str()),
                    result: Arc::from(result.as_str()),
                });
                results.push((call.id.clone(), result));
            }
            rounds.push(Round { assistant: turn.assistant, results });
        };
        if let ParseStatus::ProviderError(why) = &ending.status {
            tracing::warn!(provider = %self.info.provider, "holding: {why}");
        }
        totals.tool_calls = tool_calls;
        self.answer(&levels, body, ending, totals)
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        codec::encode_meta(&SavedState { indicators: self.indicators.clone(), recent: self.recent.clone() }).ok()
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), CodecError> {
        let saved: SavedState = codec::decode_meta(state)?;
        (self.indicators, self.recent) = (saved.indicators, saved.recent);
        Ok(())
    }
}

/// What a decision's requests add up to.
#[derive(Default)]
struct Totals {
    requests: u32,
    latency_us: u64,
    status: Option<u16>,
    tokens_in: u32,
    tokens_out: u32,
    tool_calls: Vec<ToolCalled>,
}

impl<D: Dialect> LlmProvider<D> {
    /// The answer and its record.
    fn answer(&self, levels: &Levels, body: String, ending: Ending, totals: Totals) -> ProviderAnswer {
        let indicators = format!(
            "ema{}={} ema{}={} rsi{}={} trend={}",
            prompt::EMA_FAST,
            levels.shown.ema_fast,
            prompt::EMA_SLOW,
            levels.shown.ema_slow,
            prompt::RSI_LEN,
            levels.shown.rsi,
            levels.trend()
        );
        let call = ModelCalled {
            requests: totals.requests,
            http_status: totals.status,
            error: Arc::from(ending.error.as_str()),
            cost_usd: self.cost(totals.tokens_in, totals.tokens_out),
            indicators: Arc::from(indicators.as_str()),
        };
        ProviderAnswer {
            decision: ending.decision,
            parse_status: ending.status,
            prompt: Arc::from(body.as_str()),
            raw_output: Arc::from(self.endpoint.scrub(&ending.raw).as_str()),
            latency_us: totals.latency_us,
            tokens_in: totals.tokens_in,
            tokens_out: totals.tokens_out,
            record: Some(Box::new(CallRecord { tool_calls: totals.tool_calls, call })),
        }
    }
}
