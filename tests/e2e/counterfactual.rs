//! Counterfactual replays: `ledger replay --run ID --risk-config FILE` (the recorded
//! decisions under other risk limits) and `--redecide` (the decisions asked again, of
//! the run's own provider or another), each recorded as a new run and reported beside
//! the original.

use crate::chat_server::{ChatServer, Reply};
use crate::harness::{fixture, Ledger, Run};

const KEY_VAR: &str = "LEDGER_E2E_CF_KEY";

/// The README's SPY backtest (5,849 daily bars, SMA 10/30) recorded as run 1.
fn spy_run() -> Ledger {
    let ledger = Ledger::new();
    ledger.ok(&["replay", "--config", &fixture("spy-backtest.toml")]);
    ledger
}

fn write(ledger: &Ledger, name: &str, text: &str) -> String {
    let path = ledger.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn recorded_decisions_under_tighter_limits_are_reported_beside_the_original() {
    let ledger = spy_run();
    // A 15% drawdown from the peak trips the kill switch and closes the position: the
    // recorded decisions after it are denied.
    let limits = write(&ledger, "tight.toml", "[kill_switch]\nmax_drawdown = \"0.15\"\nclose_positions = true\n");
    let out = ledger.ok(&["replay", "--run", "1", "--risk-config", &limits]);
    let out = out.replace(&limits, "tight.toml");
    insta::assert_snapshot!("risk_config_counterfactual", out);

    // The counterfactual is a run of its own, child of the original, that replays
    // identically in turn.
    let runs = ledger.ok(&["runs", "--json"]);
    let second: serde_json::Value = serde_json::from_str(runs.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["data"], "run 1 with the risk limits of tight.toml".replace("tight.toml", &limits), "{second}");
    let verified = ledger.ok(&["replay", "--run", "2", "--verify"]);
    assert!(verified.starts_with("ok: run 3 reproduces run 2"), "{verified}");
}

#[test]
fn a_risk_config_that_changes_nothing_differs_nowhere_and_a_bad_one_is_refused() {
    let ledger = spy_run();
    let same = write(&ledger, "same.toml", "[risk]\nmax_position_pct = \"1\"\n");
    let half = write(&ledger, "half.toml", "[risk]\nmax_position_pct = \"0.5\"\n");
    let out = ledger.ok(&["replay", "--run", "1", "--risk-config", &half]);
    // Every entry is all-in: under half the equity at most, all are denied.
    assert!(out.contains("verdicts changed: 203 (approved -> denied 203, denied -> approved 0)"), "{out}");
    assert!(out.contains("denied by max_position_pct, 0 orders, 0 fills"), "{out}");
    let out = ledger.ok(&["replay", "--run", "1", "--risk-config", &same]);
    assert!(out.contains("decisions changed: 0 of 5849 cycles; verdicts changed: 0"), "{out}");
    assert!(out.contains("no cycle differs"), "{out}");

    // No section to apply; a value out of range, named with its key and file.
    let empty = write(&ledger, "empty.toml", "[account]\nstarting_cash = \"5\"\n");
    let run = ledger.run(&["replay", "--run", "1", "--risk-config", &empty]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("neither a [risk] nor a [kill_switch] section"), "{}", run.stderr);
    let bad = write(&ledger, "bad.toml", "[risk]\nmax_position_pct = \"-1\"\n");
    let run = ledger.run(&["replay", "--run", "1", "--risk-config", &bad]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("risk.max_position_pct") && run.stderr.contains("bad.toml"), "{}", run.stderr);
    // Nothing was recorded by the refused replays.
    assert_eq!(ledger.ok(&["runs", "--json"]).lines().count(), 3);
}

#[test]
fn redeciding_with_other_rules_counts_the_changed_decisions() {
    let ledger = spy_run();
    let out = ledger.ok(&[
        "replay",
        "--run",
        "1",
        "--redecide",
        "--strategy",
        "sma-cross",
        "--param",
        "fast=20",
        "--param",
        "slow=50",
    ]);
    assert!(out.contains("with its decisions asked again of the rules strategy sma-cross"), "{out}");
    let changed = out.lines().find(|l| l.starts_with("decisions changed: ")).unwrap_or_default();
    let count: u64 = changed["decisions changed: ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(count > 100, "{out}");
    // The same rules as recorded decide the same.
    let out = ledger.ok(&["replay", "--run", "1", "--redecide"]);
    assert!(out.contains("decisions changed: 0 of 5849 cycles") && out.contains("no cycle differs"), "{out}");
}

fn llm_config(ledger: &Ledger, name: &str, server: &ChatServer) -> String {
    let text = format!(
        "[provider]\nkind = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \"{}\"\napi_key_env = \"{KEY_VAR}\"\n\
         temperature = 0.0\nmax_tokens = 300\ntimeout = \"5s\"\nmax_retries = 0\n",
        server.base_url()
    );
    write(ledger, name, &text)
}

fn with_key(ledger: &Ledger, args: &[&str]) -> Run {
    ledger.run_with_key(args, KEY_VAR, "sk-e2e-counterfactual")
}

#[test]
fn an_llm_run_redecided_asks_the_model_again_and_a_cached_redecide_asks_nothing() {
    // Recorded: the model goes long on the first bar it is asked about, then holds
    // (the script's last answer repeats: "plain" is a long).
    let recorded_server = ChatServer::start(vec![Reply::fixture("plain")]);
    let ledger = Ledger::new();
    let config = llm_config(&ledger, "llm.toml", &recorded_server);
    let data = "fixtures/spy-daily-1998-q1.csv";
    let recorded_cache = ledger.dir.path().join("recorded-cache").display().to_string();
    let run = with_key(&ledger, &["replay", "--config", &config, "--data", data, "--llm-cache", &recorded_cache]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(recorded_server.received().len(), 11, "49 warm-up bars of 60 are not asked");

    // Replayed as recorded: no call at all.
    drop(recorded_server);
    let replayed = with_key(&ledger, &["replay", "--run", "1", "--verify"]);
    assert_eq!(replayed.code, 0, "{}\n{}", replayed.stdout, replayed.stderr);
    // Redecided by the run's own provider (its configuration read back from the
    // record), answered by the cache it filled: the same decisions, no call (the
    // server is gone).
    let same =
        with_key(&ledger, &["replay", "--run", "1", "--redecide", "--llm-cache", &recorded_cache, "--llm-cache-only"]);
    assert_eq!(same.code, 0, "{}\n{}", same.stdout, same.stderr);
    assert!(same.stdout.contains("decisions changed: 0 of 60 cycles"), "{}", same.stdout);
    assert!(same.stdout.contains("no cycle differs"), "{}", same.stdout);

    // Redecided by another model server that now says short ("prose"): every asked
    // decision changes, and the P&L follows.
    let other_server = ChatServer::start(vec![Reply::fixture("prose")]);
    let other = llm_config(&ledger, "other.toml", &other_server);
    let cache = ledger.dir.path().join("cache").display().to_string();
    let args = ["replay", "--run", "1", "--redecide", "--config", &other, "--llm-cache", &cache];
    let first = with_key(&ledger, &args);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(other_server.received().len(), 11);
    assert!(first.stdout.contains("asked again of the openai model gpt-4o-mini"), "{}", first.stdout);
    assert!(first.stdout.contains("decisions changed: 11 of 60 cycles"), "{}", first.stdout);
    assert!(first.stdout.contains("first difference: cycle 50 at 1998-03-16"), "{}", first.stdout);

    // Again from the cache: no call, the same counterfactual (but for the run numbers).
    // (Runs: 1 recorded, 2 its --verify replay, 3 the same-provider redecide, 4 and 5 these.)
    let second = with_key(&ledger, &[&args[..], &["--llm-cache-only"]].concat());
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert_eq!(other_server.received().len(), 11, "the cached redecide called the server");
    let body = |s: &str| s.lines().skip(2).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(body(&first.stdout), body(&second.stdout));
}
