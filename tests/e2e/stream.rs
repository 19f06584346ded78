//! The restructured pipeline end to end: a ledger written by the previous record format,
//! paper runs that replay under a price-age limit, several files merged into one run,
//! the two-stage configuration, the kill switch's scope, broken pipes, and reports read
//! back from the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::harness::{fixture, workspace_root, Ledger};

// ---- helpers ----

/// `ledger events --json ARGS`, one value per line.
fn events(ledger: &Ledger, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "--json"];
    all.extend_from_slice(args);
    ledger.ok(&all).lines().map(|line| serde_json::from_str(line).expect("a JSON event per line")).collect()
}

/// The payload's kind (its one key) and body.
fn payload(event: &Value) -> (&str, &Value) {
    let object = event["payload"].as_object().expect("payload is an object");
    let (kind, body) = object.iter().next().expect("payload has a kind");
    (kind.as_str(), body)
}

fn of_kind<'a>(events: &'a [Value], kind: &'a str) -> impl Iterator<Item = (&'a Value, &'a Value)> + 'a {
    events.iter().filter_map(move |e| {
        let (k, body) = payload(e);
        (k == kind).then_some((e, body))
    })
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// `ledger report --run RUN --json`.
fn report_json(ledger: &Ledger, run: u64) -> Value {
    serde_json::from_str(&ledger.ok(&["report", "--run", &run.to_string(), "--json"])).unwrap()
}

/// The run's `RunStarted` recorded configuration, parsed.
fn recorded_config(ledger: &Ledger, run: u64) -> Value {
    let started = events(ledger, &["--run", &run.to_string(), "--limit", "1"]);
    let (kind, body) = payload(&started[0]);
    assert_eq!(kind, "RunStarted");
    serde_json::from_str(body["config"].as_str().unwrap()).unwrap()
}

// ---- the v1 ledger ----

const V1_EVENTS: usize = 587;
const V1_HEAD: &str = "93b9cb3949ae7a148dd86302e5a4f8b267b067d963a660bd9d38e4184aaf3dfa";

/// A copy of `fixtures/ledger-v1` as the ledger's data dir.
fn v1_ledger() -> Ledger {
    Ledger::from_fixture("ledger-v1")
}

/// A schema-1 payload as schema 2 has it: `DecisionMade` without `provider`, `model`
/// and `params`; `RunStarted`'s `decision_provider` (`provider:model params`) split;
/// `RiskVerdict` without `decision_seq` (its header's causation names the decision);
/// `RunStopped` with `skipped_rows: 0`.
fn upcast(payload: &Value) -> Value {
    let mut payload = payload.clone();
    if let Some(stopped) = payload.get_mut("RunStopped").and_then(Value::as_object_mut) {
        stopped.insert("skipped_rows".into(), 0.into());
    }
    if let Some(verdict) = payload.get_mut("RiskVerdict").and_then(Value::as_object_mut) {
        assert!(verdict.remove("decision_seq").is_some(), "schema 1 RiskVerdict has decision_seq");
    }
    if let Some(made) = payload.get_mut("DecisionMade").and_then(Value::as_object_mut) {
        for field in ["provider", "model", "params"] {
            assert!(made.remove(field).is_some(), "schema 1 DecisionMade has {field}");
        }
        // Schema 3: a decision's order terms, none in older schemas.
        made["parsed"].as_object_mut().expect("a parsed decision").insert("terms".into(), Value::Null);
    }
    if let Some(order) = payload.get_mut("OrderSubmitted").and_then(Value::as_object_mut) {
        // Schema 3: a stop price, reduce-only, protection and bracket, none before.
        order.insert("stop_price".into(), Value::Null);
        order.insert("reduce_only".into(), false.into());
        order.insert("protects".into(), Value::Null);
        order.insert("bracket".into(), Value::Null);
    }
    if let Some(started) = payload.get_mut("RunStarted").and_then(Value::as_object_mut) {
        let text = started.remove("decision_provider").expect("schema 1 RunStarted has decision_provider");
        let (provider, rest) = text.as_str().unwrap().split_once(':').unwrap();
        let (model, params) = rest.split_once(' ').unwrap_or((rest, ""));
        started.insert("provider".into(), provider.into());
        started.insert("model".into(), model.into());
        started.insert("params".into(), params.into());
    }
    payload
}

#[test]
fn the_v1_ledger_verifies_reads_upcast_reports_and_takes_new_appends() {
    let ledger = v1_ledger();

    // Verify: every v1 record's hash and link.
    let verify = ledger.ok(&["verify"]);
    assert_eq!(verify.trim(), format!("ok: {V1_EVENTS} events, seq 1..={V1_EVENTS}, chain intact, head {V1_HEAD}"));

    // Read: the same events as the old code printed, upcast.
    let now = events(&ledger, &[]);
    let then: Vec<Value> = std::fs::read_to_string(workspace_root().join("fixtures/ledger-v1.events.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!((now.len(), then.len()), (V1_EVENTS, V1_EVENTS));
    for (now, then) in now.iter().zip(&then) {
        let seq = &then["header"]["seq"];
        for field in ["seq", "hash", "prev_hash", "run_id", "cycle_id", "causation_seq", "ts_event", "ts_recorded"] {
            assert_eq!(now["header"][field], then["header"][field], "seq {seq}: header.{field}");
        }
        assert_eq!(now["header"]["schema_version"], 1, "seq {seq}: a v1 record keeps its schema version");
        assert_eq!(now["payload"], upcast(&then["payload"]), "seq {seq}: payload");
    }
    // A few kinds field by field.
    // TC0: run 1's RunStarted: the provider text split into its parts.
    let (kind, started) = payload(&now[0]);
    assert_eq!(kind, "RunStarted");
    assert_eq!(
        (&started["provider"], &started["model"], &started["params"]),
        (&"rules".into(), &"sma-cross".into(), &"fast=3 short=true size_pct=1 slow=8".into())
    );
    assert!(started.get("decision_provider").is_none());
    assert_eq!((&started["mode"], &started["starting_cash"]), (&"Replay".into(), &"100000".into()));
    // TC1: a DecisionMade: the run's provider no longer repeated; the decision intact.
    let (_, made) = of_kind(&now, "DecisionMade").find(|(e, _)| e["header"]["seq"] == 30).unwrap();
    assert!(made.get("provider").is_none() && made.get("model").is_none() && made.get("params").is_none());
    assert_eq!(made["parsed"]["action"], "long");
    assert_eq!(made["parsed"]["reason"], "fast SMA crossed above slow SMA");
    assert_eq!(made["parse_status"], "Ok");
    // TC2: run 3's kill-switch trip and run 1's first fill, unchanged.
    let (trip_event, trip) = of_kind(&now, "KillSwitchTripped").next().unwrap();
    assert_eq!((&trip_event["header"]["seq"], &trip_event["header"]["run_id"]), (&442.into(), &3.into()));
    assert_eq!(
        (&trip["trigger"], &trip["value"], &trip["limit"]),
        (&"drawdown".into(), &"0.017332".into(), &"0.01".into())
    );
    let (_, fill) = of_kind(&now, "OrderFilled").next().unwrap();
    assert_eq!(
        (&fill["client_order_id"], &fill["qty"], &fill["price"]),
        (&"r1-1".into(), &"1038".into(), &"96.2500".into())
    );
    // TC3: the operator's reset, under run 0, is the head.
    let last = now.last().unwrap();
    assert_eq!(
        (payload(last).0, &last["header"]["run_id"], &last["header"]["hash"]),
        ("KillSwitchReset", &0.into(), &V1_HEAD.into())
    );

    // Report: run 1 has 9 fills (4 round trips closed, 969 SPY still long), no fees.
    let report = report_json(&ledger, 1);
    assert_eq!((&report["ticks"], &report["trades"]), (&60.into(), &4.into()));
    assert_eq!((&report["equity_start"], &report["total_fees"]), (&"100000".into(), &"0".into()));
    assert_eq!(report["open_positions"][0]["qty"], "969");
    assert!(ledger.ok(&["report", "--run", "1"]).contains("| # Trades "));

    // Append: a new backtest goes after the v1 head, in the current schema.
    ledger.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    let run4 = events(&ledger, &["--run", "4"]);
    assert_eq!(payload(&run4[0]).0, "RunStarted");
    assert_eq!(run4[0]["header"]["seq"], V1_EVENTS + 1);
    assert_eq!(run4[0]["header"]["prev_hash"], V1_HEAD, "the new run is chained onto the v1 head");
    assert!(run4.iter().all(|e| e["header"]["schema_version"] == 3));
    let total = V1_EVENTS + run4.len();
    let verify = ledger.ok(&["verify"]);
    assert!(verify.starts_with(&format!("ok: {total} events, seq 1..={total}, chain intact")), "{verify}");
    // The old records are read as before (not rewritten).
    assert_eq!(events(&ledger, &["--limit", &V1_EVENTS.to_string()]), now);
}

// ---- paper runs replay under a price-age limit ----

#[test]
fn a_paper_run_with_a_price_age_limit_replays_identically() {
    // The first quarter of 1998's SPY bars, re-timed a minute apart around the wall
    // clock: the first half is older than the 2-minute limit when the run's cycles
    // happen, the rest is fresh. Which verdicts fail depends on each cycle's time.
    let ledger = Ledger::new();
    let start = chrono::Utc::now() - chrono::Duration::minutes(30);
    let rows = std::fs::read_to_string(fixture("spy-daily-1998-q1.csv")).unwrap();
    let mut data = String::from("timestamp,open,high,low,close,volume\n");
    for (i, row) in rows.lines().skip(1).enumerate() {
        let (_, prices) = row.split_once(',').unwrap();
        let ts = start + chrono::Duration::minutes(i as i64);
        data.push_str(&format!("{},{prices}\n", ts.format("%Y-%m-%d %H:%M:%S%.6f")));
    }
    write(&ledger.dir.path().join("recent.csv"), &data);
    let config = ledger.dir.path().join("paper.toml");
    write(
        &config,
        "[data]\nfiles = [\"recent.csv\"]\n[provider]\nkind = \"rules\"\nstrategy = \"sma-cross\"\nparams = { fast = 2, slow = 5 }\n[risk]\nmax_price_age = \"2m\"\n",
    );
    ledger.ok(&["run", "--config", config.to_str().unwrap(), "--speed", "0"]);

    let run1 = events(&ledger, &["--run", "1"]);
    // Opening decisions are checked for staleness (holds and closes are not).
    let ages: Vec<(String, bool)> = of_kind(&run1, "RiskVerdict")
        .filter_map(|(e, v)| {
            let check = v["checks"].as_array().unwrap().iter().find(|c| c["id"] == "price_staleness")?;
            assert_eq!(check["limit"], "120000000000");
            Some((e["header"]["ts_event"].as_str().unwrap().to_string(), check["passed"] == true))
        })
        .collect();
    let (fresh, stale): (Vec<_>, Vec<_>) = ages.iter().partition(|(_, passed)| *passed);
    assert!(!stale.is_empty() && !fresh.is_empty(), "stale and fresh opening decisions: {ages:?}");
    // The stale ones are the early ticks: every stale tick comes before every fresh one.
    assert!(stale.iter().map(|t| &t.0).max() < fresh.iter().map(|t| &t.0).min(), "{ages:?}");
    assert!(of_kind(&run1, "OrderSubmitted").count() > 0, "fresh crosses place orders");

    let verified = ledger.run(&["replay", "--run", "1", "--verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let expected = format!("ok: run 2 reproduces run 1: {} derived events identical", run1.len() - 2);
    assert_eq!(verified.stdout.trim(), expected);
}

// ---- several files in one run ----

/// The first 300 SPY daily bars re-timed 7 minutes apart from 23:03:30 on 2021-12-31,
/// inside the BTC-PERP minute bars of `fixtures/btcperp-1m-2022-01.csv`.
fn spy_minutes(dir: &Path) -> String {
    let rows = std::fs::read_to_string(fixture("spy-daily-1998-2021.csv")).unwrap();
    let start = chrono::NaiveDate::from_ymd_opt(2021, 12, 31).unwrap().and_hms_opt(23, 3, 30).unwrap();
    let mut data = String::from("timestamp,open,high,low,close,volume\n");
    for (i, row) in rows.lines().skip(1).take(300).enumerate() {
        let (_, prices) = row.split_once(',').unwrap();
        let ts = start + chrono::Duration::minutes(7 * i as i64);
        data.push_str(&format!("{},{prices}\n", ts.format("%Y-%m-%d %H:%M:%S%.6f")));
    }
    let path = dir.join("spy_minutes.csv");
    write(&path, &data);
    path.display().to_string()
}

/// A backtest of BTC-PERP and the re-timed SPY bars merged into run 1; its events.
fn merged_run() -> (Ledger, Vec<Value>) {
    let ledger = Ledger::new();
    let spy = spy_minutes(ledger.dir.path());
    let args = ["replay", "--data", "fixtures/btcperp-1m-2022-01.csv", "--data", &spy];
    ledger.ok(&[&args[..], &["--strategy", "sma-cross", "--param", "fast=2", "--param", "slow=5"]].concat());
    let run1 = events(&ledger, &["--run", "1"]);
    (ledger, run1)
}

#[test]
fn several_files_merge_by_time_into_one_run() {
    let (_ledger, run1) = merged_run();
    let (_, started) = payload(&run1[0]);
    assert_eq!(started["instruments"], serde_json::json!(["BTCPERP", "SPY"]));
    let source = started["data_source"].as_str().unwrap();
    assert!(source.contains("btcperp-1m-2022-01.csv") && source.contains("spy_minutes.csv"), "{source}");

    let ticks: Vec<(&str, &str)> = of_kind(&run1, "MarketTick")
        .map(|(e, t)| (t["instrument"].as_str().unwrap(), e["header"]["ts_event"].as_str().unwrap()))
        .collect();
    let mut per_instrument = BTreeMap::new();
    for (instrument, _) in &ticks {
        *per_instrument.entry(*instrument).or_insert(0) += 1;
    }
    assert_eq!(per_instrument, BTreeMap::from([("BTCPERP", 10_000), ("SPY", 300)]));
    // RFC 3339 UTC with fixed digits: text order is time order.
    let out_of_order = ticks.windows(2).position(|w| w[0].1 > w[1].1);
    assert_eq!(out_of_order, None, "ticks out of time order at {out_of_order:?}");
    // Interleaved, not one file after the other: BTC bars between the first and last SPY bar.
    let first_spy = ticks.iter().position(|t| t.0 == "SPY").unwrap();
    let last_spy = ticks.iter().rposition(|t| t.0 == "SPY").unwrap();
    assert!(first_spy > 0 && ticks[first_spy..last_spy].iter().filter(|t| t.0 == "BTCPERP").count() > 1000);
    // The instruments share one account: both were traded in the one run.
    let traded: BTreeSet<&str> =
        of_kind(&run1, "OrderSubmitted").map(|(_, o)| o["instrument"].as_str().unwrap()).collect();
    assert_eq!(traded, BTreeSet::from(["BTCPERP", "SPY"]));
}

#[test]

fn each_fill_of_a_merged_run_takes_its_own_instruments_price() {
    let (_ledger, run1) = merged_run();
    // (instrument, ts_event) -> open of that bar.
    let opens: BTreeMap<(String, String), String> = of_kind(&run1, "MarketTick")
        .map(|(e, t)| {
            let key =
                (t["instrument"].as_str().unwrap().to_string(), e["header"]["ts_event"].as_str().unwrap().to_string());
            (key, t["data"]["Bar"]["open"].as_str().unwrap().to_string())
        })
        .collect();
    let fills: Vec<_> = of_kind(&run1, "OrderFilled").collect();
    assert!(!fills.is_empty());
    for (event, fill) in fills {
        // next_open, no slippage: a fill is at the open of a bar of its own instrument.
        let key = (
            fill["instrument"].as_str().unwrap().to_string(),
            event["header"]["ts_event"].as_str().unwrap().to_string(),
        );
        let open = opens.get(&key);
        assert_eq!(
            open.map(String::as_str),
            fill["price"].as_str(),
            "seq {}: {} {} {} filled at {} on {}",
            event["header"]["seq"],
            fill["side"],
            fill["qty"],
            key.0,
            fill["price"],
            key.1
        );
    }
}

// ---- configuration ----

/// The first 60 SPY days, as a data file next to a config in `dir`.
fn config_with_data(dir: &Path, name: &str, toml: &str) -> String {
    let rows = std::fs::read_to_string(fixture("spy-daily-1998-q1.csv")).unwrap();
    write(&dir.join("x.csv"), &rows);
    let config = dir.join(name);
    write(&config, toml);
    config.display().to_string()
}

#[test]
fn the_environment_overrides_the_file_and_a_flag_overrides_both() {
    let ledger = Ledger::new();
    let config = config_with_data(
        ledger.dir.path(),
        "cash.toml",
        "[account]\nstarting_cash = \"20000\"\n[data]\nfiles = [\"x.csv\"]\n",
    );
    // (label, LEDGER_ACCOUNT__STARTING_CASH, --cash, equity_start)
    let cases = [
        ("TC0: the file", None, None, "20000"),
        ("TC1: the environment over the file", Some("5000"), None, "5000"),
        ("TC2: the flag over the environment and the file", Some("5000"), Some("777"), "777"),
        ("TC3: the flag over the file", None, Some("777.5"), "777.5"),
    ];
    for (run, (label, env, flag, expected)) in cases.into_iter().enumerate() {
        let mut args = vec!["replay", "--config", &config];
        if let Some(cash) = flag {
            args.extend(["--cash", cash]);
        }
        let mut command = ledger.command(&args);
        match env {
            Some(cash) => command.env("LEDGER_ACCOUNT__STARTING_CASH", cash),
            None => command.env_remove("LEDGER_ACCOUNT__STARTING_CASH"),
        };
        let output = command.output().unwrap();
        assert!(output.status.success(), "{label}: {}", String::from_utf8_lossy(&output.stderr));
        let run = run as u64 + 1;
        assert_eq!(report_json(&ledger, run)["equity_start"], expected, "{label}");
        assert_eq!(recorded_config(&ledger, run)["account"]["starting_cash"], expected, "{label}: recorded");
    }
}

#[test]
fn a_relative_data_path_in_a_config_resolves_next_to_the_config_file() {
    let ledger = Ledger::new();
    let dir = ledger.dir.path().join("configs");
    let config = config_with_data(&dir, "relative.toml", "[data]\nfiles = [\"x.csv\"]\n");
    assert!(!workspace_root().join("x.csv").exists(), "x.csv must not exist where the binary runs");
    ledger.ok(&["replay", "--config", &config]);
    let first = events(&ledger, &["--run", "1", "--limit", "1"]);
    let (_, started) = payload(&first[0]);
    let next_to_config = dir.join("x.csv").display().to_string();
    assert!(started["data_source"].as_str().unwrap().starts_with(&next_to_config), "{}", started["data_source"]);
    assert_eq!(recorded_config(&ledger, 1)["data"]["files"], serde_json::json!([next_to_config]));
    assert_eq!(started["instruments"], serde_json::json!(["X"]));
    assert_eq!(report_json(&ledger, 1)["ticks"], 60);
}

#[test]
fn durations_written_as_text_are_recorded_in_nanoseconds() {
    let ledger = Ledger::new();
    let config = config_with_data(
        ledger.dir.path(),
        "durations.toml",
        "[data]\nfiles = [\"x.csv\"]\n[risk]\ncooldown = \"5m\"\nmax_price_age = \"90s\"\nrate_window_ns = 7\n[ledger]\ngroup_interval = \"50ms\"\n",
    );
    ledger.ok(&["replay", "--config", &config]);
    let recorded = recorded_config(&ledger, 1);
    // (label, section, key, nanoseconds)
    let cases = [
        ("TC0: cooldown = \"5m\"", "risk", "cooldown_ns", 300_000_000_000u64),
        ("TC1: max_price_age = \"90s\"", "risk", "max_price_age_ns", 90_000_000_000),
        ("TC2: rate_window_ns = 7 (nanoseconds as a number)", "risk", "rate_window_ns", 7),
        ("TC3: group_interval = \"50ms\"", "ledger", "group_interval_ns", 50_000_000),
    ];
    for (label, section, key, nanos) in cases {
        assert_eq!(recorded[section][key], nanos, "{label}");
    }
}

#[test]
fn the_script_strategy_trades_from_a_decisions_file() {
    let ledger = Ledger::new();
    let decisions = ledger.dir.path().join("decisions.jsonl");
    write(
        &decisions,
        concat!(
            "{\"ts\": \"1998-01-05T00:00:00Z\", \"action\": \"long\", \"size_pct\": 0.5, \"confidence\": 0.9, \"reason\": \"test entry\"}\n",
            "{\"ts\": \"1998-01-09T00:00:00Z\", \"action\": \"moon\", \"size_pct\": 0.5, \"confidence\": 0.9, \"reason\": \"bad\"}\n",
            "\n",
            "{\"ts\": \"1998-01-20T00:00:00Z\", \"action\": \"close\", \"size_pct\": 0, \"confidence\": 1, \"reason\": \"test exit\"}\n",
        ),
    );
    let param = format!("file={}", decisions.display());
    ledger.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv", "--strategy", "script", "--param", &param]);
    let run1 = events(&ledger, &[]);
    let (_, started) = payload(&run1[0]);
    assert_eq!((&started["provider"], &started["model"]), (&"script".into(), &decisions.display().to_string().into()));
    // TC0: the long of 01-05 fills at 01-06's open, 97.25: 50,000 / 97.25 -> 514 units;
    // the close of 01-20 fills at 01-21's open, 97.22.
    let fills: Vec<(&Value, &Value, &Value)> =
        of_kind(&run1, "OrderFilled").map(|(_, f)| (&f["side"], &f["qty"], &f["price"])).collect();
    assert_eq!(
        fills,
        [(&"Buy".into(), &"514".into(), &"97.2500".into()), (&"Sell".into(), &"514".into(), &"97.2200".into())]
    );
    // TC1: the decisions are recorded with the script's line as the raw output; a bad
    // line is a recorded hold with its reason; a tick with no line holds.
    let made: BTreeMap<&str, &Value> =
        of_kind(&run1, "DecisionMade").map(|(e, d)| (e["header"]["ts_event"].as_str().unwrap(), d)).collect();
    let on = |day: &str| made[format!("1998-01-{day}T00:00:00.000000Z").as_str()];
    assert_eq!((&on("05")["parsed"]["action"], &on("05")["parsed"]["reason"]), (&"long".into(), &"test entry".into()));
    assert!(on("05")["raw_output"].as_str().unwrap().contains("test entry"));
    assert_eq!(on("09")["parsed"]["action"], "hold");
    assert!(on("09")["parse_status"]["Invalid"].as_str().unwrap().contains("moon"), "{}", on("09"));
    assert_eq!((&on("12")["parsed"]["action"], &on("12")["raw_output"]), (&"hold".into(), &"".into()));
}

#[test]
fn an_unknown_provider_kind_and_a_missing_data_file_are_errors_naming_them() {
    let ledger = Ledger::new();
    let dir = ledger.dir.path();
    let oracle = dir.join("oracle.toml");
    write(&oracle, "[provider]\nkind = \"oracle\"\n");
    let absent = dir.join("absent.toml");
    write(&absent, "[data]\nfiles = [\"absent.csv\"]\n");
    let (oracle, absent) = (oracle.display().to_string(), absent.display().to_string());
    let missing = dir.join("missing.csv").display().to_string();
    let absent_csv = dir.join("absent.csv").display().to_string();
    // (label, args, what stderr must name)
    let cases: [(&str, Vec<&str>, Vec<&str>); 3] = [
        (
            "TC0: an unknown [provider] kind",
            vec!["replay", "--config", &oracle, "--data", "fixtures/spy-daily-1998-q1.csv"],
            vec!["oracle.toml", "provider.kind", "oracle"],
        ),
        ("TC1: a missing --data file", vec!["replay", "--data", &missing], vec![&missing, "No such file"]),
        ("TC2: a missing file named in a config", vec!["run", "--config", &absent, "--speed", "0"], vec![&absent_csv]),
    ];
    for (label, args, named) in cases {
        let run = ledger.run(&args);
        assert_eq!(run.code, 2, "{label}: {}{}", run.stdout, run.stderr);
        for name in named {
            assert!(run.stderr.contains(name), "{label}: stderr should name {name:?}: {}", run.stderr);
        }
        assert!(!ledger.data_dir().exists(), "{label}: nothing should be written");
    }
}

// ---- the kill switch's scope ----

#[test]
fn a_backtests_kill_switch_trip_does_not_block_a_later_paper_run() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("tight.toml");
    write(&config, "[kill_switch]\nmax_drawdown = \"0.0001\"\n");
    let sma = ["--strategy", "sma-cross", "--param", "fast=2", "--param", "slow=5"];
    let backtest =
        [&["replay", "--config", config.to_str().unwrap(), "--data", "fixtures/spy-daily-1998-q1.csv"][..], &sma]
            .concat();
    ledger.ok(&backtest);
    let run1 = events(&ledger, &["--run", "1"]);
    assert_eq!(of_kind(&run1, "KillSwitchTripped").count(), 1, "the backtest's kill switch trips");
    assert_eq!(ledger.ok(&["kill-switch", "status"]).trim(), "kill switch: armed");

    ledger.ok(&[&["run", "--data", "fixtures/spy-daily-1998-q1.csv", "--speed", "0"][..], &sma].concat());
    let run2 = events(&ledger, &["--run", "2"]);
    assert_eq!(payload(&run2[0]).1["kill_switch_tripped"], false);
    assert!(of_kind(&run2, "OrderSubmitted").count() > 0, "the paper run places orders");
    assert!(of_kind(&run2, "RiskVerdict").all(|(_, v)| v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["id"] != "kill_switch" || c["passed"] == true)));
    assert_eq!(ledger.ok(&["kill-switch", "status"]).trim(), "kill switch: armed");
}

// ---- broken pipes ----

#[test]
fn a_reader_that_closes_the_pipe_early_is_not_an_error() {
    // 10,000 bars: megabytes of output, far more than a pipe holds.
    let ledger = Ledger::new();
    ledger.ok(&["replay", "--data", "fixtures/btcperp-1m-2022-01.csv"]);
    // (label, args)
    let cases: [(&str, &[&str]); 3] = [
        ("TC0: events --json | head -1", &["events", "--json"]),
        ("TC1: events (tables) | head -1", &["events"]),
        ("TC2: events --run 1 --json | head -1", &["events", "--run", "1", "--json"]),
    ];
    for (label, args) in cases {
        let mut child = ledger.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "{label}: a first line");
        drop(stdout);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{label}: {stderr}");
        assert!(!stderr.contains("Broken pipe") && !stderr.contains("error:"), "{label}: {stderr}");
    }
}

// ---- reports read back ----

#[test]
fn the_report_of_a_stored_run_is_the_report_the_run_printed() {
    let ledger = Ledger::new();
    let quotes = ledger.dir.path().join("quotes.toml");
    write(&quotes, "[venue]\nfill_model = \"quote\"\nlot_size = \"1000\"\ncommission_rate = \"0.0001\"\n");
    let quotes = quotes.to_str().unwrap();
    // (label, the command that runs and prints its report)
    let cases: [(&str, Vec<&str>); 4] = [
        (
            "TC0: a backtest left with an open position (two tables)",
            vec![
                "replay",
                "--data",
                "fixtures/spy-daily-1998-q1.csv",
                "--strategy",
                "sma-cross",
                "--param",
                "fast=3",
                "--param",
                "slow=8",
            ],
        ),
        ("TC1: the README's backtest", vec!["replay", "--config", "fixtures/spy-backtest.toml"]),
        (
            "TC2: a quotes backtest",
            vec![
                "replay",
                "--data",
                "fixtures/eurusd-quotes-2014-05-08.csv",
                "--config",
                quotes,
                "--strategy",
                "ema-rsi",
            ],
        ),
        ("TC3: a paper run", vec!["run", "--config", "fixtures/ledger.example.toml", "--speed", "0"]),
    ];
    for (run, (label, args)) in cases.into_iter().enumerate() {
        let printed = ledger.ok(&args);
        let stored = ledger.ok(&["report", "--run", &(run + 1).to_string()]);
        assert!(printed.contains("| Equity Final [$] "), "{label}: {printed}");
        assert_eq!(stored, printed, "{label}");
    }
    assert!(ledger.ok(&["report", "--run", "1"]).contains("| open position "), "TC0 ends with a position open");
}

/// `--lenient` skips a bad row instead of refusing the file, and the run's `RunStopped`
/// counts it; without it the same file is refused naming the line.
#[test]
fn lenient_skips_bad_rows_and_the_run_counts_them() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("trade.toml");
    std::fs::write(&config, "[venue]\nfill_model = \"trade\"\n").unwrap();
    let config = config.to_str().unwrap();
    let data = "tests/corpus/market-data/missing-field.csv";
    let strict = ledger.run(&["replay", "--data", data, "--config", config]);
    assert_eq!(strict.code, 2, "{}", strict.stderr);
    assert!(strict.stderr.contains("missing-field.csv:3"), "{}", strict.stderr);
    // The strict run stopped at the bad row, after the rows before it, on the record.
    let runs = ledger.ok(&["runs"]);
    assert!(runs.contains("stopped by bad market data"), "{runs}");
    ledger.ok(&["replay", "--data", data, "--config", config, "--lenient"]);
    let stopped = events(&ledger, &["--run", "2"]).into_iter().find_map(|e| e["payload"].get("RunStopped").cloned());
    assert_eq!(stopped.expect("the run stopped")["skipped_rows"], 1);
}
