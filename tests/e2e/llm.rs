//! The `openai` provider end to end: a backtest whose decisions come from a scripted
//! chat-completions server on loopback (answers, a retried 500, a refusal, a cut
//! answer, a timeout), every call on the record, and the API key nowhere in the
//! ledger's events or the output.

use std::time::Duration;

use crate::chat_server::{fixture_body, ChatServer, Reply};
use crate::harness::{Ledger, Run};

const KEY_VAR: &str = "LEDGER_E2E_LLM_KEY";
const KEY: &str = "sk-e2e-secret-4f9a0c1d2b3e";

/// A config for the `openai` provider at `server`, written in the ledger's temp dir.
fn config(ledger: &Ledger, server: &ChatServer) -> String {
    let path = ledger.dir.path().join("llm.toml");
    let text = format!(
        "[provider]\nkind = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \"{}\"\napi_key_env = \"{KEY_VAR}\"\n\
         temperature = 0.0\nseed = 7\nmax_tokens = 300\ntimeout = \"700ms\"\nmax_retries = 2\nretry_backoff = \"10ms\"\n",
        server.base_url()
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn run_with_key(ledger: &Ledger, args: &[&str]) -> Run {
    ledger.run_with_key(args, KEY_VAR, KEY)
}

#[test]
fn an_openai_backtest_records_every_call_survives_failures_and_never_shows_the_key() {
    let slow = Reply::fixture("plain").after(Duration::from_millis(2000));
    let server = ChatServer::start(vec![
        Reply::fixture("plain"),                           // decision 1: long
        Reply::status(500, &fixture_body("server-error")), // decision 2: a 500, retried ...
        Reply::fixture("fenced"),                          // ... then close
        Reply::fixture("refusal"),                         // decision 3: refused
        Reply::fixture("truncated"),                       // decision 4: cut at max_tokens
        slow,                                              // decision 5: timed out
        Reply::fixture("prose"),                           // decisions 6..: short
    ]);
    let ledger = Ledger::new();
    let config = config(&ledger, &server);
    let args = ["replay", "--config", &config, "--data", "fixtures/spy-daily-1998-q1.csv"];
    let replay = run_with_key(&ledger, &args);
    assert_eq!(replay.code, 0, "replay failed:\n{}\n{}", replay.stdout, replay.stderr);

    let events = ledger.ok(&["events", "--json"]);
    let events: Vec<serde_json::Value> = events.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let started = events.iter().find(|e| e["payload"]["RunStarted"].is_object()).expect("a RunStarted");
    assert_eq!(started["payload"]["RunStarted"]["provider"], "openai", "{started}");
    let decisions: Vec<&serde_json::Value> = events.iter().filter_map(|e| e["payload"].get("DecisionMade")).collect();
    assert_eq!(decisions.len(), 60, "one decision per bar");
    // 49 warm-up holds without a call, then one call per bar.
    let asked: Vec<&&serde_json::Value> = decisions.iter().filter(|d| d["prompt"] != "").collect();
    assert_eq!(asked.len(), 11);
    assert!(decisions[..49].iter().all(|d| d["parsed"]["reason"] == "warming up"));
    let outcome = |d: &serde_json::Value| {
        let status = match &d["parse_status"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default(),
        };
        (d["parsed"]["action"].as_str().unwrap_or_default().to_string(), status)
    };
    let expected = [
        ("long", "Ok"),
        ("close", "Ok"),
        ("hold", "Invalid"),
        ("hold", "Invalid"),
        ("hold", "ProviderError"),
        ("short", "Ok"),
    ];
    for (n, (action, status)) in expected.iter().enumerate() {
        assert_eq!(outcome(asked[n]), (action.to_string(), status.to_string()), "decision {n}: {}", asked[n]);
    }
    assert!(asked[5..].iter().all(|d| outcome(d).0 == "short"));
    // What was recorded: the request as sent (the server got the same bytes), the
    // response body, the tokens, the failures' reasons.
    let received = server.received();
    assert_eq!(received.len(), 12, "11 decisions and one retry");
    assert!(received.iter().any(|r| asked[0]["prompt"] == r.body.as_str()));
    assert!(asked[0]["prompt"].as_str().unwrap().contains("EMA(20): "));
    assert_eq!(asked[0]["raw_output"], fixture_body("plain").as_str());
    assert_eq!((asked[0]["tokens_in"].as_u64(), asked[0]["tokens_out"].as_u64()), (Some(612), Some(58)));
    assert!(asked[0]["prompt_sha256"].is_string());
    let reason = |d: &serde_json::Value| d["parse_status"].as_object().and_then(|o| o.values().next()).cloned();
    assert!(reason(asked[2]).unwrap().as_str().unwrap().contains("the model refused"));
    assert!(reason(asked[3]).unwrap().as_str().unwrap().contains("finish_reason \"length\""));
    assert!(reason(asked[4]).unwrap().as_str().unwrap().contains("timed out after 700ms"));
    // The model's long was traded.
    let all = serde_json::to_string(&events).unwrap();
    assert!(all.contains("\"OrderFilled\""), "no fill in the run");

    // The key is in no event, and not in anything the binary printed.
    for (what, text) in [("events", all.as_str()), ("stdout", &replay.stdout), ("stderr", &replay.stderr)] {
        assert!(!text.contains(KEY), "the API key leaked into {what}");
    }
    // ... though it was sent, as a bearer token.
    assert!(received.iter().all(|r| r.head.contains(KEY)));
    // The run warned of the failed call on stderr, naming the endpoint.
    assert!(
        replay.stderr.contains(&format!("{}/chat/completions: timed out after 700ms", server.base_url())),
        "{}",
        replay.stderr
    );
}

#[test]
fn an_unset_key_variable_is_a_configuration_error_naming_the_variable() {
    let server = ChatServer::start(vec![Reply::fixture("plain")]);
    let ledger = Ledger::new();
    let config = config(&ledger, &server);
    let run = ledger.run(&["replay", "--in-memory", "--config", &config, "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("provider.api_key_env") && run.stderr.contains(KEY_VAR), "{}", run.stderr);
    assert!(server.received().is_empty(), "no call without the key");
}

#[test]
fn a_cached_llm_backtest_runs_again_without_a_call_and_records_the_same_events() {
    let server = ChatServer::start(vec![
        Reply::fixture("plain"),
        Reply::status(503, &fixture_body("server-error")), // retried, then ...
        Reply::fixture("fenced"),
        Reply::fixture("prose"),
    ]);
    let ledger = Ledger::new();
    let config = config(&ledger, &server);
    let cache = ledger.dir.path().join("llm-cache").display().to_string();
    let data = "fixtures/spy-daily-1998-q1.csv";
    // First run: 11 decisions asked (one retried), each outcome kept.
    let first = run_with_key(&ledger, &["replay", "--config", &config, "--data", data, "--llm-cache", &cache]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(server.received().len(), 12);
    // Second run, cache only: no call, and the same events but for the run's id.
    let second = run_with_key(
        &ledger,
        &["replay", "--config", &config, "--data", data, "--llm-cache", &cache, "--llm-cache-only"],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(server.received().len(), 12, "the cached run called the server");
    // Payloads as text, with the run's number taken out of order ids (`r1-7`).
    let payloads = |run: &str| -> Vec<String> {
        let events = ledger.ok(&["events", "--run", run, "--json"]);
        let prefix = format!("r{run}-");
        events
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["payload"].to_string().replace(&prefix, "rN-")
            })
            .collect()
    };
    let (one, two) = (payloads("1"), payloads("2"));
    assert!(one.len() > 60);
    assert_eq!(one.len(), two.len());
    if let Some(n) = (0..one.len()).find(|&n| one[n] != two[n]) {
        panic!("the cached run recorded other events, from event {n}:\n{}\n{}", one[n], two[n]);
    }
    assert_eq!(first.stdout, second.stdout, "the reports differ");

    // Another temperature is another request: cache-only holds it without a call and fails.
    let other = config.replace(".toml", "-hot.toml");
    std::fs::write(&other, std::fs::read_to_string(&config).unwrap().replace("temperature = 0.0", "temperature = 0.7"))
        .unwrap();
    let missed = run_with_key(
        &ledger,
        &["replay", "--in-memory", "--config", &other, "--data", data, "--llm-cache", &cache, "--llm-cache-only"],
    );
    assert_eq!(missed.code, 2, "{}\n{}", missed.stdout, missed.stderr);
    assert!(missed.stderr.contains("--llm-cache-only: 11 request(s) not in the cache"), "{}", missed.stderr);
    assert_eq!(server.received().len(), 12, "a cache-only miss called the server");
    for text in [&first.stderr, &second.stderr, &missed.stderr] {
        assert!(!text.contains(KEY));
    }
    // The cache holds no key either.
    for entry in walk(std::path::Path::new(&cache)) {
        assert!(!std::fs::read_to_string(&entry).unwrap().contains(KEY), "{}", entry.display());
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => files.extend(walk(&path)),
            false => files.push(path),
        }
    }
    files
}

#[test]
fn a_paper_run_decides_with_the_openai_provider() {
    let server = ChatServer::start(vec![Reply::fixture("plain"), Reply::fixture("fenced")]);
    let ledger = Ledger::new();
    let config = config(&ledger, &server);
    let run = run_with_key(
        &ledger,
        &["run", "--speed", "0", "--config", &config, "--data", "fixtures/spy-daily-1998-q1.csv"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(server.received().len(), 11, "one call per bar after the warm-up");
    let events = ledger.ok(&["events", "--json"]);
    let asked: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["payload"].get("DecisionMade").cloned())
        .filter(|d| d["prompt"] != "")
        .collect();
    let actions: Vec<&str> = asked.iter().map(|d| d["parsed"]["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(actions, ["long"].into_iter().chain(["close"; 10]).collect::<Vec<_>>());
    assert!(asked.iter().all(|d| d["latency_us"].as_u64().is_some_and(|us| us > 0)));
    assert!(!events.contains(KEY) && !run.stderr.contains(KEY) && !run.stdout.contains(KEY));
    ledger.ok(&["verify"]);
}

#[test]
fn provider_failures_in_a_row_trip_the_kill_switch_and_the_run_goes_on() {
    let server = ChatServer::start(vec![Reply::status(503, &fixture_body("server-error"))]);
    let ledger = Ledger::new();
    let config = config(&ledger, &server);
    let text = std::fs::read_to_string(&config).unwrap().replace("max_retries = 2", "max_retries = 0");
    std::fs::write(&config, format!("{text}\n[kill_switch]\nmax_consecutive_failures = 3\n")).unwrap();
    let run = run_with_key(&ledger, &["replay", "--config", &config, "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Every bar after the warm-up was asked (the run did not stop), one attempt each.
    assert_eq!(server.received().len(), 11);
    let events: Vec<serde_json::Value> =
        ledger.ok(&["events", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let trips: Vec<&serde_json::Value> = events.iter().filter_map(|e| e["payload"].get("KillSwitchTripped")).collect();
    assert_eq!(trips.len(), 1, "{trips:?}");
    assert_eq!(trips[0]["trigger"], "failures", "{}", trips[0]);
}

/// A config for a tool-calling `anthropic` agent at `server`, with `extra` TOML after it.
fn agent_config(ledger: &Ledger, server: &ChatServer, extra: &str) -> String {
    let path = ledger.dir.path().join("agent.toml");
    let text = format!(
        "[provider]\nkind = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\nbase_url = \"{}\"\napi_key_env = \"{KEY_VAR}\"\n\
         max_tokens = 400\ntemperature = 0.0\ntimeout = \"2s\"\nmax_retries = 1\nretry_backoff = \"10ms\"\n\
         tools = [\"get_quote\", \"get_portfolio\", \"get_technicals\", \"get_recent_bars\", \"check_risk\"]\n\
         max_tool_rounds = 3\nprice_per_mtok_in = 3\nprice_per_mtok_out = 15\n{extra}",
        server.base_url()
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The events of the ledger, as JSON.
fn events(ledger: &Ledger, run: &str) -> Vec<serde_json::Value> {
    ledger.ok(&["events", "--run", run, "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The events of `kind`, with their headers.
fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["payload"].get(kind).is_some()).collect()
}

#[test]
fn a_tool_calling_anthropic_agent_is_recorded_and_replayed_from_the_record_without_a_call() {
    let server = ChatServer::start(vec![
        Reply::fixture("anthropic/tool-use-context"), // decision 1: two tools ...
        Reply::fixture("anthropic/tool-use-risk"),    // ... a dry run of the risk engine ...
        Reply::fixture("anthropic/plain"),            // ... then long
        Reply::fixture("anthropic/fenced"),           // decisions 2..11: close
    ]);
    let ledger = Ledger::new();
    let config = agent_config(&ledger, &server, "");
    let data = "fixtures/spy-daily-1998-q1.csv";
    let output = ledger
        .command(&["replay", "--config", &config, "--data", data])
        .env(KEY_VAR, KEY)
        .env("RUST_LOG", "debug")
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(server.received().len(), 13, "3 requests for the first decision, then one per bar");

    let run = events(&ledger, "1");
    let started = &of_kind(&run, "RunStarted")[0]["payload"]["RunStarted"];
    assert_eq!(
        (started["provider"].as_str(), started["model"].as_str()),
        (Some("anthropic"), Some("claude-sonnet-4-5"))
    );
    assert!(started["params"].as_str().unwrap().contains("max_tool_rounds=3"), "{started}");
    // The tool calls follow their decision, each caused by it, in the order made.
    let decision = of_kind(&run, "DecisionMade").into_iter().find(|e| e["payload"]["DecisionMade"]["prompt"] != "");
    let decision = decision.expect("an asked decision");
    assert_eq!(decision["payload"]["DecisionMade"]["parsed"]["action"], "long");
    let tools = of_kind(&run, "ToolCalled");
    let names: Vec<&str> = tools.iter().map(|e| e["payload"]["ToolCalled"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_technicals", "get_portfolio", "check_risk"]);
    let seq = decision["header"]["seq"].as_u64().unwrap();
    for (n, tool) in tools.iter().enumerate() {
        assert_eq!(tool["header"]["causation_seq"].as_u64(), Some(seq), "{tool}");
        assert_eq!(tool["header"]["seq"].as_u64(), Some(seq + 1 + n as u64), "{tool}");
    }
    // The dry run saw the engine's state: no limit configured, so the long would pass.
    let risk: serde_json::Value =
        serde_json::from_str(tools[2]["payload"]["ToolCalled"]["result"].as_str().unwrap()).unwrap();
    assert_eq!(risk["approved"], true, "{risk}");
    // One ModelCalled per asked decision: requests, status and cost.
    let calls = of_kind(&run, "ModelCalled");
    assert_eq!(calls.len(), 11);
    let first = &calls[0]["payload"]["ModelCalled"];
    assert_eq!((first["requests"].as_u64(), first["http_status"].as_u64()), (Some(3), Some(200)));
    // (1204 + 1530 + 731) x 3 / 1e6 + (88 + 61 + 64) x 15 / 1e6.
    assert_eq!(first["cost_usd"], "0.01359");
    assert_eq!(calls[1]["payload"]["ModelCalled"]["cost_usd"], "0.002721");
    assert!(first["indicators"].as_str().unwrap().contains("trend=up"), "{first}");
    assert!(!of_kind(&run, "OrderFilled").is_empty(), "the agent's long was traded");

    // Replayed from the record: the same events, the tool calls included, and no call
    // (the key is not even set).
    let verified = ledger.run(&["replay", "--run", "1", "--verify"]);
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
    assert_eq!(server.received().len(), 13, "the replay called the server");
    let replayed = events(&ledger, "2");
    let payloads = |events: &[serde_json::Value], kind: &str| -> Vec<String> {
        of_kind(events, kind).iter().map(|e| e["payload"].to_string()).collect()
    };
    for kind in ["ToolCalled", "ModelCalled", "DecisionMade"] {
        assert_eq!(payloads(&run, kind), payloads(&replayed, kind), "{kind}");
    }

    // The key is nowhere: events, the debug log, an audit export, the stored ledger
    // (events and snapshots) ...
    let export = ledger.dir.path().join("export");
    ledger.ok(&["audit", "export", "--run", "1", "--out", export.to_str().unwrap()]);
    // The audit trail shows the agent's conversation in the decision's row: the tool
    // calls in order, the model call, the indicator values the model saw; and the
    // export verifies.
    let rows = std::fs::read_to_string(export.join("rows.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = rows.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let asked = rows.iter().find(|r| r["tool_calls"].is_array()).expect("a row with tool calls");
    let names: Vec<&str> =
        asked["tool_calls"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_technicals", "get_portfolio", "check_risk"], "{asked}");
    assert_eq!(asked["tool_calls"][0]["seq"].as_u64(), Some(seq + 1), "{asked}");
    assert_eq!(
        (asked["model_call"]["requests"].as_u64(), asked["model_call"]["cost_usd"].as_str()),
        (Some(3), Some("0.01359"))
    );
    assert!(asked["indicators"].as_str().unwrap().contains("trend=up"), "{asked}");
    assert_eq!(asked["action"], "long");
    assert_eq!(rows.iter().filter(|r| r["model_call"].is_object()).count(), 11);
    let verified = ledger.run(&["audit", "verify", export.to_str().unwrap()]);
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
    let all_events = ledger.ok(&["events", "--json"]);
    assert!(stderr.contains("DEBUG"), "a debug log was written");
    for (what, text) in [("events", all_events.as_str()), ("the debug log", stderr.as_str())] {
        assert!(!text.contains(KEY), "the API key leaked into {what}");
    }
    let holds = |bytes: &[u8], text: &str| bytes.windows(text.len()).any(|w| w == text.as_bytes());
    let mut seen_in_store = false;
    for file in walk(&export).into_iter().chain(walk(&ledger.data_dir())) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!holds(&bytes, KEY), "the API key is in {}", file.display());
        // The scan reads the stored text: the recorded conversation is found in it.
        seen_in_store |= holds(&bytes, "toolu_01A09q90qw90lq917835lq9");
    }
    assert!(seen_in_store, "the scan did not see the recorded requests");
    // ... though every request carried it, in x-api-key.
    assert!(server.received().iter().all(|r| r.head.contains(&format!("x-api-key: {KEY}"))));
}

#[test]
fn a_key_an_error_echoes_is_scrubbed_and_provider_errors_in_a_row_trip_the_kill_switch() {
    // The API answers 401 quoting the key it was sent (some gateways do).
    let echo =
        format!(r#"{{"type":"error","error":{{"type":"authentication_error","message":"invalid x-api-key {KEY}"}}}}"#);
    let server = ChatServer::start(vec![Reply::status(401, &echo)]);
    let ledger = Ledger::new();
    let config = agent_config(&ledger, &server, "\n[kill_switch]\nmax_provider_errors = 4\n");
    let run = run_with_key(&ledger, &["replay", "--config", &config, "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(server.received().len(), 11, "a 401 is not retried; the run went on");
    let events = events(&ledger, "1");
    let errors: Vec<&str> = of_kind(&events, "ModelCalled")
        .iter()
        .map(|e| e["payload"]["ModelCalled"]["error"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 11);
    assert!(errors[0].ends_with("HTTP 401: invalid x-api-key ***"), "{}", errors[0]);
    let trips = of_kind(&events, "KillSwitchTripped");
    assert_eq!(trips.len(), 1);
    let trip = &trips[0]["payload"]["KillSwitchTripped"];
    assert_eq!(
        (trip["trigger"].as_str(), trip["reason"].as_str()),
        (Some("failures"), Some("provider errors in a row 4 reached limit 4"))
    );
    let text = ledger.ok(&["events", "--json"]);
    for (what, text) in [("events", text.as_str()), ("stderr", run.stderr.as_str()), ("stdout", run.stdout.as_str())] {
        assert!(!text.contains(KEY), "the API key leaked into {what}");
    }
}

#[test]
fn agent_settings_are_checked_at_load_and_a_template_error_names_its_file_and_line() {
    let server = ChatServer::start(vec![Reply::fixture("anthropic/plain")]);
    let ledger = Ledger::new();
    let template = ledger.dir.path().join("prompt.j2");
    std::fs::write(&template, "Instrument {{ instrument }}\n{% if %}\n").unwrap();
    let extra = "prompt_template = \"prompt.j2\"\n";
    let config = agent_config(&ledger, &server, extra);
    let path = ledger.dir.path().join("bad.toml");
    std::fs::write(
        &path,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("max_tool_rounds = 3", "max_tool_rounds = 0")
            .replace("\"check_risk\"]", "\"check_risk\", \"place_order\"]"),
    )
    .unwrap();
    let run = run_with_key(
        &ledger,
        &["replay", "--in-memory", "--config", path.to_str().unwrap(), "--data", "fixtures/spy-daily-1998-q1.csv"],
    );
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let shown = format!("{}:2: syntax error", template.display());
    for expected in
        ["provider.tools[5] = \"place_order\": not a tool", "provider.max_tool_rounds = 0: must be in [1, 20]", &shown]
    {
        assert!(run.stderr.contains(expected), "{expected:?} missing from:\n{}", run.stderr);
    }
    assert!(server.received().is_empty());
}

#[test]
fn the_anthropic_example_config_runs_with_its_prompt_template() {
    let server = ChatServer::start(vec![Reply::fixture("anthropic/fenced")]);
    let ledger = Ledger::new();
    let output = ledger
        .command(&[
            "replay",
            "--in-memory",
            "--config",
            "fixtures/llm-anthropic.example.toml",
            "--data",
            "fixtures/spy-daily-1998-q1.csv",
        ])
        .env("ANTHROPIC_API_KEY", KEY)
        .env("LEDGER_PROVIDER__BASE_URL", server.base_url())
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let received = server.received();
    assert_eq!(received.len(), 11);
    let request: serde_json::Value = serde_json::from_str(&received[0].body).unwrap();
    let user = request["messages"][0]["content"].as_str().unwrap();
    // The template's own line, then the default message it wraps.
    assert!(user.starts_with("You trade SPY on daily bars"), "{user}");
    assert!(user.contains("EMA(50): ") && user.contains("Decide now"), "{user}");
    assert_eq!(request["tools"].as_array().map(Vec::len), Some(5));
}

#[test]
fn a_paper_run_of_the_agent_fills_the_cache_and_a_cached_run_asks_nothing_and_records_the_same() {
    let server = ChatServer::start(vec![
        Reply::fixture("anthropic/tool-use-context"),
        Reply::fixture("anthropic/plain"),
        Reply::fixture("anthropic/prose"),
    ]);
    let ledger = Ledger::new();
    let config = agent_config(&ledger, &server, "");
    let cache = ledger.dir.path().join("llm-cache").display().to_string();
    let data = "fixtures/spy-daily-1998-q1.csv";
    let first =
        run_with_key(&ledger, &["run", "--speed", "0", "--config", &config, "--data", data, "--llm-cache", &cache]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(server.received().len(), 12, "two requests for the first decision, one per bar after");
    let second = run_with_key(
        &ledger,
        &["replay", "--config", &config, "--data", data, "--llm-cache", &cache, "--llm-cache-only"],
    );
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert_eq!(server.received().len(), 12, "the cached run called the server");
    // The tool answers were the same (the same state at the same cycles), so every
    // request was found: the same decisions, tool calls and model calls.
    let (one, two) = (events(&ledger, "1"), events(&ledger, "2"));
    for kind in ["DecisionMade", "ToolCalled", "ModelCalled"] {
        let payloads = |events: &[serde_json::Value]| -> Vec<String> {
            of_kind(events, kind).iter().map(|e| e["payload"].to_string()).collect()
        };
        assert_eq!(payloads(&one), payloads(&two), "{kind}");
    }
    assert_eq!(of_kind(&one, "ToolCalled").len(), 2);
}
