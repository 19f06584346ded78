//! Protective exits as an agent asks for them: decisions (a script, held to the decision
//! contract as model output is) carrying a stop-loss, a take-profit, a trailing stop and
//! a limit entry, run by the real binary on real SPY bars; the triggers recorded and
//! linked to their entries, the trades naming why they closed, the risk check refusing
//! a stop on the wrong side, and the run reproduced by `replay --verify`.

use serde_json::Value;

use crate::harness::Ledger;

/// An agent's decisions on SPY, January 1998 (the fixture's bars in comments).
const DECISIONS: &str = r#"{"ts":"1998-01-05","action":"long","size_pct":0.5,"confidence":0.8,"reason":"breakout","stop_loss":95.5,"take_profit":99}
{"ts":"1998-01-12","action":"long","size_pct":0.5,"confidence":0.8,"reason":"dip","limit_price":94.5,"trailing_stop_pct":0.02}
{"ts":"1998-01-27","action":"long","size_pct":0.5,"confidence":0.8,"reason":"late","stop_loss":99}
{"ts":"1998-01-28","action":"long","size_pct":0.5,"confidence":0.8,"reason":"bad","stop_loss":"ninety"}
"#;

fn events(ledger: &Ledger) -> Vec<Value> {
    ledger.ok(&["events", "--run", "1", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The payload of `kind` in `event`, if it is one.
fn payload<'a>(event: &'a Value, kind: &str) -> Option<&'a Value> {
    event["payload"].get(kind)
}

#[test]
fn an_agents_stops_targets_trailing_stops_and_limit_entries_trade_and_replay() {
    let ledger = Ledger::new();
    let script = ledger.dir.path().join("decisions.jsonl");
    std::fs::write(&script, DECISIONS).unwrap();
    let file = format!("file={}", script.display());
    let data = "fixtures/spy-daily-1998-q1.csv";
    ledger.ok(&["replay", "--data", data, "--strategy", "script", "--param", &file, "--cash", "10000"]);
    let events = events(&ledger);

    // TC0: the first entry (01-06 open 97.25, 51 units of half the equity) carries its
    // bracket; its exits are placed on the fill, caused by it, tied to it.
    let orders: Vec<&Value> = events.iter().filter_map(|e| payload(e, "OrderSubmitted")).collect();
    assert_eq!(orders[0]["bracket"]["stop_loss"], "95.5");
    assert_eq!(orders[0]["bracket"]["take_profit"], "99");
    let exits: Vec<(&str, &str, &str)> = orders
        .iter()
        .filter(|o| !o["protects"].is_null())
        .map(|o| {
            let level = if o["stop_price"].is_null() { &o["limit_price"] } else { &o["stop_price"] };
            // Externally tagged, as every enum of the JSON form: "stop_loss", or
            // {"trailing_stop": "<pct>"} for the one kind that carries a value.
            let kind = &o["protects"]["kind"];
            let kind = kind.as_str().or_else(|| kind.as_object()?.keys().next().map(String::as_str)).unwrap();
            (kind, o["protects"]["entry"].as_str().unwrap(), level.as_str().unwrap())
        })
        .collect();
    assert_eq!(
        exits,
        [("stop_loss", "r1-1", "95.5"), ("take_profit", "r1-1", "99"), ("trailing_stop", "r1-4", "92.61")]
    );

    // TC1: 01-07's low (95.22) reaches the stop: filled at 95.5, the target canceled
    // with it. The limit entry (94.5) fills on 01-13 (low 94.22, open 94.63) at 94.5;
    // its trailing stop follows the highs and fills at 96.04 on 01-22 (low 95.88).
    let fills: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| payload(e, "OrderFilled"))
        .map(|f| (f["client_order_id"].as_str().unwrap(), f["price"].as_str().unwrap()))
        .collect();
    assert_eq!(fills, [("r1-1", "97.2500"), ("r1-2", "95.5"), ("r1-4", "94.5"), ("r1-5", "96.04")]);
    let canceled: Vec<&str> =
        events.iter().filter_map(|e| payload(e, "OrderCanceled")).map(|c| c["reason"].as_str().unwrap()).collect();
    assert_eq!(canceled, ["one-cancels-other: stop_loss r1-2 filled"]);
    let amended: Vec<&str> =
        events.iter().filter_map(|e| payload(e, "OrderAmended")).map(|a| a["stop_price"].as_str().unwrap()).collect();
    assert_eq!(amended.last(), Some(&"96.04"), "trailed to 2% under 01-20's high of 98: {amended:?}");
    // The stop's fill is caused by the stop order, which the entry's fill caused.
    let seq_of = |kind: &str, id: &str| {
        events.iter().find(|e| payload(e, kind).is_some_and(|p| p["client_order_id"] == id)).unwrap()
    };
    let stop_fill = seq_of("OrderFilled", "r1-2");
    let stop_order = seq_of("OrderSubmitted", "r1-2");
    assert_eq!(stop_fill["header"]["causation_seq"], stop_order["header"]["seq"]);
    assert_eq!(stop_order["header"]["causation_seq"], seq_of("OrderFilled", "r1-1")["header"]["seq"]);

    // TC2: a stop above a long's price is refused by the risk check; a stop that is not
    // a number breaks the contract and is recorded as a hold.
    let denied: Vec<&str> = events
        .iter()
        .filter_map(|e| payload(e, "RiskVerdict"))
        .filter(|v| v["approved"] == false)
        .map(|v| v["reason"].as_str().unwrap())
        .collect();
    assert_eq!(denied, ["exit_levels: value 1 against limit 0"]);
    assert!(events.iter().filter_map(|e| payload(e, "DecisionMade")).any(|d| d["parse_status"]
        .get("Invalid")
        .is_some_and(|why| why.as_str().unwrap().contains("`stop_loss` must be a number"))));

    // TC3: the trades say why each closed, as a quant reads them.
    let trades = ledger.ok(&["report", "--run", "1", "--trades"]);
    insta::assert_snapshot!("exit_trades", trades);

    // TC4: the run reproduces, and the chain holds.
    let replay = ledger.run(&["replay", "--run", "1", "--verify"]);
    assert_eq!(replay.code, 0, "{}{}", replay.stdout, replay.stderr);
    assert!(ledger.ok(&["verify"]).starts_with("ok: "));
}

#[test]
fn exit_settings_out_of_range_are_refused_by_name() {
    let ledger = Ledger::new();
    let data = "fixtures/spy-daily-1998-q1.csv";
    let run = ledger.run(&["replay", "--data", data, "--stop-loss-pct", "1.5"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("exits.stop_loss_pct") && run.stderr.contains("must be in (0, 1)"), "{}", run.stderr);
    let run = ledger.run(&["replay", "--data", data, "--take-profit-pct=-0.05"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("exits.take_profit_pct"), "{}", run.stderr);
}
