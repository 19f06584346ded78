//! The `openai` provider against a scripted chat-completions server on loopback,
//! answering with real-shaped responses from `fixtures/llm/openai/`.

#[path = "../../tests/e2e/chat_server.rs"]
mod chat_server;

use std::time::{Duration, Instant};

use chat_server::{fixture_body, ChatServer, Reply};
use ledger_adapters::llm::agent::AgentSettings;
use ledger_adapters::llm::openai::{OpenAiProvider, OpenAiSettings};
use ledger_adapters::llm::tools::Tool;
use ledger_adapters::llm::ApiKey;
use ledger_core::decision::{DecisionInput, DecisionProvider, ProviderAnswer, WARMING_UP};
use ledger_core::event::{Action, ParseStatus};
use ledger_core::ids::InstrumentId;
use ledger_core::time::TimestampNs;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const KEY: &str = "sk-test-not-a-real-key-0123456789";

fn settings(base_url: &str) -> OpenAiSettings {
    OpenAiSettings {
        base_url: base_url.to_string(),
        model: "gpt-4o-mini".into(),
        temperature: Some(dec!(0.2)),
        seed: Some(7),
        max_tokens: Some(200),
        timeout: Duration::from_secs(5),
        max_retries: 2,
        retry_backoff: Duration::from_millis(10),
    }
}

fn provider(settings: OpenAiSettings) -> OpenAiProvider {
    // The mock servers are on loopback: never through a proxy the machine configures
    // (reqwest reads HTTP_PROXY and friends when the client is built).
    std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
    std::env::set_var("no_proxy", "127.0.0.1,localhost");
    OpenAiProvider::new(settings, AgentSettings::default(), ApiKey::new(KEY)).unwrap()
}

/// Feeds 49 rising closes (the warm-up, no calls), then asks on the 50th.
fn decide_once(provider: &mut OpenAiProvider) -> ProviderAnswer {
    let spy = InstrumentId::new("SPY").unwrap();
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
            context: None,
        };
        let answer = provider.decide(&input);
        if i < 50 {
            assert_eq!(answer.decision.reason.as_ref(), WARMING_UP, "tick {i} is warm-up");
            assert!(answer.prompt.is_empty());
        }
        last = Some(answer);
    }
    last.unwrap()
}

fn assert_no_key(answer: &ProviderAnswer) {
    let status = format!("{:?}", answer.parse_status);
    for (what, text) in [("prompt", &*answer.prompt), ("raw output", &*answer.raw_output), ("status", &status)] {
        assert!(!text.contains(KEY), "the key leaked into the {what}: {text}");
    }
}

#[test]
fn a_plain_json_answer_is_the_decision_with_the_request_and_usage_recorded() {
    let server = ChatServer::start(vec![Reply::fixture("plain")]);
    let mut provider = provider(settings(&server.base_url()));
    let answer = decide_once(&mut provider);
    assert_eq!(answer.parse_status, ParseStatus::Ok);
    assert_eq!((answer.decision.action, answer.decision.size_pct), (Action::Long, dec!(0.5)));
    assert_eq!(
        (answer.decision.terms().stop_loss, answer.decision.terms().take_profit),
        (Some(dec!(95.5)), Some(dec!(120)))
    );
    assert_eq!((answer.tokens_in, answer.tokens_out), (612, 58));
    assert_eq!(&*answer.raw_output, fixture_body("plain"));
    assert!(answer.latency_us > 0);
    // One request, after the warm-up: the body is the recorded prompt, the key only in the header.
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, &*answer.prompt);
    assert!(received[0].head.starts_with("POST /v1/chat/completions "), "{}", received[0].head);
    assert!(received[0]
        .head
        .to_ascii_lowercase()
        .contains(&format!("authorization: bearer {}", KEY.to_ascii_lowercase())));
    let request: serde_json::Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(request["model"], "gpt-4o-mini");
    assert_eq!(
        (request["temperature"].as_f64(), request["seed"].as_u64(), request["max_tokens"].as_u64()),
        (Some(0.2), Some(7), Some(200))
    );
    let user = request["messages"][1]["content"].as_str().unwrap();
    for expected in [
        "Instrument: SPY",
        "Last price: 150",
        "EMA(20): ",
        "EMA(50): ",
        "RSI(14): 100.00",
        "Trend: up",
        "Position: flat",
        "Equity: 100000",
    ] {
        assert!(user.contains(expected), "{expected:?} missing from the prompt:\n{user}");
    }
    assert!(request["messages"][0]["content"].as_str().unwrap().contains("\"trailing_stop_pct\""));
    assert_no_key(&answer);
}

#[test]
fn model_outputs_are_held_to_the_contract() {
    let cases = [
        // TC0: JSON in a code fence (DeepSeek).
        ("fenced", Action::Close, None),
        // TC1: prose around the JSON (Ollama).
        ("prose", Action::Short, None),
        // TC2: a refusal: hold, the refusal recorded.
        ("refusal", Action::Hold, Some("the model refused: I'm sorry")),
        // TC3: output cut at max_tokens: hold, the cut named.
        ("truncated", Action::Hold, Some("finish_reason \"length\"")),
    ];
    for (fixture, action, invalid) in cases {
        let server = ChatServer::start(vec![Reply::fixture(fixture)]);
        let answer = decide_once(&mut provider(settings(&server.base_url())));
        assert_eq!(answer.decision.action, action, "{fixture}");
        match (invalid, &answer.parse_status) {
            (None, ParseStatus::Ok) => {}
            (Some(expected), ParseStatus::Invalid(why)) => assert!(why.contains(expected), "{fixture}: {why}"),
            (_, status) => panic!("{fixture}: unexpected {status:?}"),
        }
        assert_eq!(&*answer.raw_output, fixture_body(fixture), "{fixture}");
    }
}

#[test]
fn server_errors_and_rate_limits_are_retried_within_the_budget() {
    // TC0: a 500, then an answer: the answer, after two requests.
    let server = ChatServer::start(vec![Reply::status(500, &fixture_body("server-error")), Reply::fixture("plain")]);
    let answer = decide_once(&mut provider(settings(&server.base_url())));
    assert_eq!((answer.decision.action, answer.parse_status), (Action::Long, ParseStatus::Ok));
    assert_eq!(server.received().len(), 2);

    // TC1: a 429 with Retry-After, then an answer.
    let limited = Reply::status(429, &fixture_body("rate-limited")).header("Retry-After: 0");
    let server = ChatServer::start(vec![limited, Reply::fixture("fenced")]);
    let answer = decide_once(&mut provider(settings(&server.base_url())));
    assert_eq!(answer.decision.action, Action::Close);
    assert_eq!(server.received().len(), 2);

    // TC2: 500 every time: hold after 1 + max_retries attempts, the server's message kept.
    let server = ChatServer::start(vec![Reply::status(500, &fixture_body("server-error"))]);
    let answer = decide_once(&mut provider(settings(&server.base_url())));
    assert_eq!(answer.decision.action, Action::Hold);
    let ParseStatus::ProviderError(why) = &answer.parse_status else { panic!("{:?}", answer.parse_status) };
    let endpoint = format!("POST {}/chat/completions: HTTP 500: The server had an error", server.base_url());
    assert!(why.starts_with(&endpoint) && why.ends_with("(after 3 attempts)"), "{why}");
    assert_eq!(server.received().len(), 3);
    assert_eq!(&*answer.raw_output, fixture_body("server-error"));

    // TC3: a 400 is not retried.
    let server = ChatServer::start(vec![Reply::status(400, r#"{"error":{"message":"bad model"}}"#)]);
    let answer = decide_once(&mut provider(settings(&server.base_url())));
    assert!(matches!(&answer.parse_status, ParseStatus::ProviderError(why) if why.ends_with("HTTP 400: bad model")));
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_slow_server_times_out_into_a_hold_within_the_budget() {
    let slow = Reply::fixture("plain").after(Duration::from_millis(1500));
    let server = ChatServer::start(vec![slow]);
    let mut provider = provider(OpenAiSettings { timeout: Duration::from_millis(300), ..settings(&server.base_url()) });
    let started = Instant::now();
    let answer = decide_once(&mut provider);
    let took = started.elapsed();
    assert_eq!(answer.decision.action, Action::Hold);
    assert!(
        matches!(&answer.parse_status, ParseStatus::ProviderError(why) if why.contains("timed out after 300ms")),
        "{:?}",
        answer.parse_status
    );
    assert!(took < Duration::from_millis(1200), "the timeout was not kept: {took:?}");
    assert!(answer.latency_us >= 300_000, "latency {} us", answer.latency_us);
}

#[test]
fn a_refused_connection_and_a_malformed_body_become_holds() {
    // TC0: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let answer = decide_once(&mut provider(OpenAiSettings { max_retries: 1, ..settings(&base) }));
    assert_eq!(answer.decision.action, Action::Hold);
    let ParseStatus::ProviderError(why) = &answer.parse_status else { panic!("{:?}", answer.parse_status) };
    assert!(why.starts_with(&format!("POST {base}/chat/completions: cannot connect")), "{why}");
    assert!(why.ends_with("(after 2 attempts)"), "{why}");

    // TC1: a 200 that is not a chat completion (a proxy's HTML page).
    let server = ChatServer::start(vec![Reply::ok("<html><body>Bad Gateway</body></html>")]);
    let answer = decide_once(&mut provider(settings(&server.base_url())));
    assert!(
        matches!(&answer.parse_status, ParseStatus::ProviderError(why) if why.contains("malformed response body")),
        "{:?}",
        answer.parse_status
    );
    assert_eq!(&*answer.raw_output, "<html><body>Bad Gateway</body></html>");

    // TC2: a completion without choices.
    let server = ChatServer::start(vec![Reply::ok(r#"{"id":"x","object":"chat.completion","choices":[]}"#)]);
    let answer = decide_once(&mut provider(settings(&server.base_url())));
    assert!(
        matches!(&answer.parse_status, ParseStatus::ProviderError(why) if why.ends_with("the response holds no choices"))
    );
}

#[test]
fn a_key_the_server_echoes_is_scrubbed_from_the_record() {
    let server = ChatServer::start(vec![Reply::status(401, &fixture_body("invalid-key"))]);
    let mut provider = provider(settings(&server.base_url()));
    let answer = decide_once(&mut provider);
    let ParseStatus::ProviderError(why) = &answer.parse_status else { panic!("{:?}", answer.parse_status) };
    assert!(why.contains("HTTP 401: Incorrect API key provided: ***."), "{why}");
    assert!(answer.raw_output.contains("Incorrect API key provided: ***."));
    assert_no_key(&answer);
    assert!(!format!("{provider:?}").contains(KEY));
}

#[test]
fn base_urls_are_checked_and_never_carry_credentials() {
    let cases = [
        ("TC0 not a URL", "localhost:11434", "base_url"),
        ("TC1 another scheme", "ftp://example.com/v1", "not an http:// or https:// URL"),
        ("TC2 credentials", "https://user:secret@example.com/v1", "credentials in the URL are not allowed"),
    ];
    for (label, url, expected) in cases {
        let error = OpenAiProvider::new(settings(url), AgentSettings::default(), None).unwrap_err().to_string();
        assert!(error.contains(expected), "{label}: {error}");
        assert!(!error.contains("secret"), "{label}: {error}");
    }
}

#[test]
fn the_indicators_survive_a_session_snapshot() {
    let server = ChatServer::start(vec![Reply::fixture("plain")]);
    let spy = InstrumentId::new("SPY").unwrap();
    let mut first = provider(settings(&server.base_url()));
    for i in 1..=49 {
        let input = DecisionInput {
            ts: TimestampNs::from_nanos(i),
            instrument: &spy,
            price: Decimal::from(100 + i),
            bar: None,
            quote: None,
            position_qty: Decimal::ZERO,
            equity: dec!(1),
            context: None,
        };
        first.decide(&input);
    }
    let state = first.save_state().unwrap();
    let mut resumed = provider(settings(&server.base_url()));
    resumed.restore_state(&state).unwrap();
    let input = DecisionInput {
        ts: TimestampNs::from_nanos(50),
        instrument: &spy,
        price: dec!(150),
        bar: None,
        quote: None,
        position_qty: Decimal::ZERO,
        equity: dec!(1),
        context: None,
    };
    // Warm after the restore: the 50th close asks the model.
    assert_eq!(resumed.decide(&input).decision.action, Action::Long);
    assert!(resumed.restore_state(&[9, 9]).is_err());
}

#[test]
fn function_calls_are_answered_as_tool_messages_then_the_model_decides() {
    let server = ChatServer::start(vec![Reply::fixture("tool-calls"), Reply::fixture("plain")]);
    let agent = AgentSettings {
        tools: vec![Tool::GetRecentBars, Tool::CheckRisk],
        max_tool_rounds: 2,
        ..AgentSettings::default()
    };
    let mut provider = OpenAiProvider::new(settings(&server.base_url()), agent, ApiKey::new(KEY)).unwrap();
    let answer = decide_once(&mut provider);
    assert_eq!((answer.decision.action, &answer.parse_status), (Action::Long, &ParseStatus::Ok));
    let record = answer.record.as_ref().unwrap();
    let calls: Vec<(&str, &str)> = record.tool_calls.iter().map(|c| (&*c.name, &*c.arguments)).collect();
    // Arguments recorded canonical: keys sorted, no spaces.
    assert_eq!(calls, [("get_recent_bars", r#"{"count":3}"#), ("check_risk", r#"{"action":"long","size_pct":0.5}"#)]);
    // The last 3 of the prices seen, oldest first (ticks 48, 49, 50 at 148, 149, 150).
    let bars: serde_json::Value = serde_json::from_str(&record.tool_calls[0].result).unwrap();
    let prices: Vec<&str> = bars["bars"].as_array().unwrap().iter().map(|b| b["price"].as_str().unwrap()).collect();
    assert_eq!(prices, ["148", "149", "150"]);
    // Without the engine's context (this test has none) the dry run says so, as a tool error.
    assert_eq!(&*record.tool_calls[1].result, r#"{"error":"the risk engine is not available here"}"#);

    let received = server.received();
    assert_eq!(received.len(), 2);
    let first: serde_json::Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(first["tools"][0]["type"], "function");
    assert_eq!(first["tools"][0]["function"]["name"], "get_recent_bars");
    let second: serde_json::Value = serde_json::from_str(&received[1].body).unwrap();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5, "system, user, the assistant's calls, two tool answers");
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_Qx8mZ2vT5nLp3kR7wY1sB4dF");
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_Qx8mZ2vT5nLp3kR7wY1sB4dF");
    assert_eq!(messages[4]["tool_call_id"], "call_Hj6fK9pM2xV4nB8qT1wZ3cL5");
    assert_eq!(received[1].body, &*answer.prompt);
}
