//! The `anthropic` provider against a scripted Messages API server on loopback,
//! answering with real-shaped responses from `fixtures/llm/anthropic/`: plain answers,
//! contract breaches, errors with retries, and a tool-calling agent's rounds answered
//! from the cycle's context.

#[path = "../../tests/e2e/chat_server.rs"]
mod chat_server;

use std::time::Duration;

use chat_server::{fixture_body, ChatServer, Reply};
use ledger_adapters::llm::agent::AgentSettings;
use ledger_adapters::llm::anthropic::{AnthropicProvider, AnthropicSettings};
use ledger_adapters::llm::tools::Tool;
use ledger_adapters::llm::ApiKey;
use ledger_core::decision::{CycleContext, DecisionInput, DecisionProvider, ProviderAnswer};
use ledger_core::event::{Action, Bracket, Decision, ParseStatus};
use ledger_core::ids::InstrumentId;
use ledger_core::portfolio::Portfolio;
use ledger_core::risk::{Judgement, RiskEngine, RiskInput, RiskLimits};
use ledger_core::time::TimestampNs;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const KEY: &str = "sk-ant-test-not-a-real-key-9876543210";

fn settings(base_url: &str) -> AnthropicSettings {
    AnthropicSettings {
        base_url: base_url.to_string(),
        model: "claude-sonnet-4-5".into(),
        max_tokens: 400,
        temperature: Some(dec!(0.1)),
        timeout: Duration::from_secs(5),
        max_retries: 2,
        retry_backoff: Duration::from_millis(10),
    }
}

fn provider(settings: AnthropicSettings, agent: AgentSettings) -> AnthropicProvider {
    // The mock servers are on loopback: never through a proxy the machine configures.
    std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
    std::env::set_var("no_proxy", "127.0.0.1,localhost");
    AnthropicProvider::new(settings, agent, ApiKey::new(KEY)).unwrap()
}

/// A cycle's context: a flat 100,000 account and a risk engine allowing at most 30%
/// of equity per position.
#[derive(Debug)]
struct Desk {
    portfolio: Portfolio,
    spy: InstrumentId,
}

impl CycleContext for Desk {
    fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    fn check_risk(&self, decision: &Decision) -> Judgement {
        let limits = RiskLimits { max_position_pct: Some(dec!(0.3)), ..RiskLimits::default() };
        RiskEngine::new(limits).judge(&RiskInput {
            decision,
            instrument: &self.spy,
            price: Some(dec!(150)),
            previous_price: None,
            tick_ts: TimestampNs::from_nanos(50),
            now: TimestampNs::from_nanos(50),
            portfolio: &self.portfolio,
            kill_switch_tripped: false,
            bracket: &Bracket::default(),
        })
    }
}

/// Feeds 49 rising closes (the warm-up, no calls), then asks on the 50th.
fn decide_once(provider: &mut AnthropicProvider) -> ProviderAnswer {
    let spy = InstrumentId::new("SPY").unwrap();
    let desk = Desk { portfolio: Portfolio::new(dec!(100000)), spy };
    let mut last = None;
    for i in 1..=50 {
        let input = DecisionInput {
            ts: TimestampNs::from_nanos(i),
            instrument: &spy,
            price: Decimal::from(100 + i),
            bar: None,
            quote: None,
            position_qty: Decimal::ZERO,
            equity: dec!(100000),
            context: Some(&desk),
        };
        last = Some(provider.decide(&input));
    }
    last.unwrap()
}

fn assert_no_key(answer: &ProviderAnswer) {
    let record = format!("{:?}", answer);
    assert!(!record.contains(KEY), "the key leaked into the answer: {record}");
}

#[test]
fn a_plain_answer_is_the_decision_with_the_messages_request_usage_and_cost_recorded() {
    let server = ChatServer::start(vec![Reply::fixture("anthropic/plain")]);
    let agent = AgentSettings {
        price_per_mtok_in: Some(dec!(3)),
        price_per_mtok_out: Some(dec!(15)),
        ..AgentSettings::default()
    };
    let mut provider = provider(settings(&server.base_url()), agent);
    let answer = decide_once(&mut provider);
    assert_eq!(answer.parse_status, ParseStatus::Ok);
    assert_eq!((answer.decision.action, answer.decision.size_pct), (Action::Long, dec!(0.4)));
    assert_eq!(answer.decision.terms().stop_loss, Some(dec!(95)));
    assert_eq!((answer.tokens_in, answer.tokens_out), (731, 64));
    assert_eq!(&*answer.raw_output, fixture_body("anthropic/plain"));
    let record = answer.record.as_ref().expect("a model call is recorded");
    assert!(record.tool_calls.is_empty());
    assert_eq!((record.call.requests, record.call.http_status), (1, Some(200)));
    // 731 x 3 / 1e6 + 64 x 15 / 1e6 = 0.002193 + 0.00096.
    assert_eq!(record.call.cost_usd, dec!(0.003153));
    assert!(record.call.indicators.starts_with("ema20="), "{}", record.call.indicators);
    assert!(record.call.error.is_empty());

    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, &*answer.prompt);
    let head = received[0].head.to_ascii_lowercase();
    assert!(head.starts_with("post /v1/messages "), "{head}");
    assert!(head.contains(&format!("x-api-key: {}", KEY.to_ascii_lowercase())), "{head}");
    assert!(head.contains("anthropic-version: 2023-06-01"), "{head}");
    assert!(!head.contains("authorization"), "{head}");
    let request: serde_json::Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!((request["model"].as_str(), request["max_tokens"].as_u64()), (Some("claude-sonnet-4-5"), Some(400)));
    assert_eq!(request["temperature"].as_f64(), Some(0.1));
    assert!(request["system"].as_str().unwrap().contains("\"trailing_stop_pct\""));
    assert!(request.get("tools").is_none(), "no tools were given");
    assert_eq!(request["messages"][0]["role"], "user");
    assert!(request["messages"][0]["content"].as_str().unwrap().contains("Instrument: SPY"));
    assert_no_key(&answer);
}

#[test]
fn answers_are_held_to_the_contract() {
    let cases = [
        // TC0: JSON in a code fence.
        ("anthropic/fenced", Action::Close, None),
        // TC1: prose around the JSON.
        ("anthropic/prose", Action::Short, None),
        // TC2: stop_reason "refusal": hold, the refusal named.
        ("anthropic/refusal", Action::Hold, Some("the model refused: stop_reason \"refusal\"")),
        // TC3: cut at max_tokens: hold, the cut named.
        ("anthropic/truncated", Action::Hold, Some("stop_reason \"max_tokens\"")),
    ];
    for (fixture, action, invalid) in cases {
        let server = ChatServer::start(vec![Reply::fixture(fixture)]);
        let answer = decide_once(&mut provider(settings(&server.base_url()), AgentSettings::default()));
        assert_eq!(answer.decision.action, action, "{fixture}");
        match (invalid, &answer.parse_status) {
            (None, ParseStatus::Ok) => {}
            (Some(expected), ParseStatus::Invalid(why)) => assert!(why.contains(expected), "{fixture}: {why}"),
            (_, status) => panic!("{fixture}: unexpected {status:?}"),
        }
    }
}

#[test]
fn overloaded_and_rate_limited_answers_are_retried_and_a_bad_key_is_not() {
    // TC0: a 529 (overloaded), then an answer: two requests, the last status recorded.
    let server = ChatServer::start(vec![
        Reply::status(529, &fixture_body("anthropic/overloaded")),
        Reply::fixture("anthropic/plain"),
    ]);
    let answer = decide_once(&mut provider(settings(&server.base_url()), AgentSettings::default()));
    assert_eq!((answer.decision.action, &answer.parse_status), (Action::Long, &ParseStatus::Ok));
    assert_eq!(server.received().len(), 2);
    assert_eq!(answer.record.as_ref().unwrap().call.http_status, Some(200));

    // TC1: a 429 with Retry-After, then an answer.
    let limited = Reply::status(429, &fixture_body("anthropic/rate-limited")).header("Retry-After: 0");
    let server = ChatServer::start(vec![limited, Reply::fixture("anthropic/fenced")]);
    let answer = decide_once(&mut provider(settings(&server.base_url()), AgentSettings::default()));
    assert_eq!(answer.decision.action, Action::Close);
    assert_eq!(server.received().len(), 2);

    // TC2: 529 every time: hold after 1 + max_retries attempts, the API's message kept.
    let server = ChatServer::start(vec![Reply::status(529, &fixture_body("anthropic/overloaded"))]);
    let answer = decide_once(&mut provider(settings(&server.base_url()), AgentSettings::default()));
    let ParseStatus::ProviderError(why) = &answer.parse_status else { panic!("{:?}", answer.parse_status) };
    let expected = format!("POST {}/messages: HTTP 529: Overloaded (after 3 attempts)", server.base_url());
    assert_eq!(&**why, expected);
    assert_eq!(server.received().len(), 3);
    let call = &answer.record.as_ref().unwrap().call;
    assert_eq!((call.http_status, &*call.error), (Some(529), expected.as_str()));

    // TC3: a 401 is not retried.
    let server = ChatServer::start(vec![Reply::status(401, &fixture_body("anthropic/invalid-key"))]);
    let answer = decide_once(&mut provider(settings(&server.base_url()), AgentSettings::default()));
    assert!(
        matches!(&answer.parse_status, ParseStatus::ProviderError(why) if why.ends_with("HTTP 401: invalid x-api-key")),
        "{:?}",
        answer.parse_status
    );
    assert_eq!(server.received().len(), 1);
    assert_no_key(&answer);
}

fn agent(max_tool_rounds: u32) -> AgentSettings {
    AgentSettings {
        tools: vec![Tool::GetTechnicals, Tool::GetPortfolio, Tool::CheckRisk],
        max_tool_rounds,
        ..AgentSettings::default()
    }
}

#[test]
fn a_tool_calling_agent_gets_its_tools_answered_from_the_cycle_then_decides() {
    let server = ChatServer::start(vec![
        Reply::fixture("anthropic/tool-use-context"),
        Reply::fixture("anthropic/tool-use-risk"),
        Reply::fixture("anthropic/plain"),
    ]);
    let answer = decide_once(&mut provider(settings(&server.base_url()), agent(3)));
    assert_eq!((answer.decision.action, &answer.parse_status), (Action::Long, &ParseStatus::Ok));
    // Tokens are the sum over the three requests.
    assert_eq!((answer.tokens_in, answer.tokens_out), (1204 + 1530 + 731, 88 + 61 + 64));
    let record = answer.record.as_ref().unwrap();
    assert_eq!(record.call.requests, 3);
    let calls: Vec<(u32, &str, &str)> = record.tool_calls.iter().map(|c| (c.round, &*c.name, &*c.arguments)).collect();
    assert_eq!(
        calls,
        [
            (1, "get_technicals", "{}"),
            (1, "get_portfolio", "{}"),
            (2, "check_risk", r#"{"action":"long","size_pct":0.4,"stop_loss":95}"#)
        ]
    );
    let technicals: serde_json::Value = serde_json::from_str(&record.tool_calls[0].result).unwrap();
    assert_eq!(technicals["trend"], "up");
    let portfolio: serde_json::Value = serde_json::from_str(&record.tool_calls[1].result).unwrap();
    assert_eq!(
        (portfolio["equity"].as_str(), portfolio["positions"].as_array().map(Vec::len)),
        (Some("100000"), Some(0))
    );
    // The dry run: 40% of equity against a 30% limit is refused, the check named.
    let risk: serde_json::Value = serde_json::from_str(&record.tool_calls[2].result).unwrap();
    assert_eq!(risk["approved"], false, "{risk}");
    assert!(risk["reason"].as_str().unwrap().starts_with("max_position_pct: value 0.4"), "{risk}");

    // The requests: tools offered; the second sends back the model's tool_use blocks and
    // one tool_result per call, with their ids; the last (the recorded prompt) holds it all.
    let received = server.received();
    assert_eq!(received.len(), 3);
    let first: serde_json::Value = serde_json::from_str(&received[0].body).unwrap();
    let names: Vec<&str> = first["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_technicals", "get_portfolio", "check_risk"]);
    assert!(first["system"].as_str().unwrap().contains("You may call the tools"));
    let second: serde_json::Value = serde_json::from_str(&received[1].body).unwrap();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"][1]["id"], "toolu_01A09q90qw90lq917835lq9");
    let results = messages[2]["content"].as_array().unwrap();
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(results[1]["tool_use_id"], "toolu_01B7pXy3kLmN5qR8sT2vW4z");
    assert_eq!(results[0]["content"].as_str(), Some(&*record.tool_calls[0].result));
    assert_eq!(received[2].body, &*answer.prompt);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer.prompt).unwrap()["messages"].as_array().unwrap().len(),
        5
    );
    assert_no_key(&answer);
}

#[test]
fn an_agent_still_calling_tools_after_its_rounds_holds_with_the_reason() {
    let server = ChatServer::start(vec![
        Reply::fixture("anthropic/tool-use-context"),
        Reply::fixture("anthropic/tool-use-risk"),
    ]);
    let answer = decide_once(&mut provider(settings(&server.base_url()), agent(1)));
    assert_eq!(answer.decision.action, Action::Hold);
    assert!(
        matches!(&answer.parse_status, ParseStatus::Invalid(why) if why.contains("max_tool_rounds = 1")),
        "{:?}",
        answer.parse_status
    );
    // One round answered (two calls), then the second request's tool use is not.
    let record = answer.record.as_ref().unwrap();
    assert_eq!((record.call.requests, record.tool_calls.len()), (2, 2));
    assert_eq!(server.received().len(), 2);
}

#[test]
fn a_tool_not_given_is_answered_with_an_error_not_a_call() {
    // The model asks for get_portfolio and get_technicals; only check_risk is given.
    let server =
        ChatServer::start(vec![Reply::fixture("anthropic/tool-use-context"), Reply::fixture("anthropic/plain")]);
    let agent = AgentSettings { tools: vec![Tool::CheckRisk], max_tool_rounds: 2, ..AgentSettings::default() };
    let answer = decide_once(&mut provider(settings(&server.base_url()), agent));
    assert_eq!(answer.decision.action, Action::Long);
    let record = answer.record.as_ref().unwrap();
    assert_eq!(&*record.tool_calls[0].result, r#"{"error":"no tool named \"get_technicals\" is available"}"#);
}

#[test]
fn a_slow_answer_times_out_and_a_malformed_body_is_a_provider_error() {
    // TC0: slower than the budget: hold, the timeout named, no status.
    let slow = Reply::fixture("anthropic/plain").after(Duration::from_millis(1500));
    let server = ChatServer::start(vec![slow]);
    let tight = AnthropicSettings { timeout: Duration::from_millis(300), ..settings(&server.base_url()) };
    let answer = decide_once(&mut provider(tight, AgentSettings::default()));
    assert_eq!(answer.decision.action, Action::Hold);
    assert!(
        matches!(&answer.parse_status, ParseStatus::ProviderError(why) if why.contains("timed out after 300ms")),
        "{:?}",
        answer.parse_status
    );
    assert_eq!(answer.record.as_ref().unwrap().call.http_status, None);

    // TC1: a 200 whose body is not a Messages response: hold, the body kept as received.
    let server = ChatServer::start(vec![Reply::ok(r#"{"content": "not blocks"}"#)]);
    let answer = decide_once(&mut provider(settings(&server.base_url()), AgentSettings::default()));
    let ParseStatus::ProviderError(why) = &answer.parse_status else { panic!("{:?}", answer.parse_status) };
    assert!(why.starts_with(&format!("POST {}/messages: malformed response body: ", server.base_url())), "{why}");
    assert_eq!(&*answer.raw_output, r#"{"content": "not blocks"}"#);
    assert_eq!(answer.record.as_ref().unwrap().call.http_status, Some(200));
}
