//! The audit fold on hand-made events (named cases) and the canonical form of rows.

use std::sync::Arc;

use canon_json::CanonJsonSerialize;
use ledger_core::event::*;
use ledger_core::ids::{ClientOrderId, CycleId, FillId, InstrumentId, RunId, Seq};
use proptest::prelude::*;
use rust_decimal_macros::dec;

use super::*;

/// Events of run 1 (and of the operator, run 0), numbered from seq 1.
struct Events(Vec<(u64, u64, Option<u64>, Payload)>);

impl Events {
    fn push(&mut self, run: u64, cycle: u64, cause: Option<u64>, payload: Payload) -> u64 {
        self.0.push((run, cycle, cause, payload));
        self.0.len() as u64
    }

    /// The rows the fold makes of them, after feeding `from` onwards to a fold resumed
    /// from the state before `from` (1: from the start).
    fn rows_from(&self, from: u64) -> Vec<AuditRow> {
        let mut fold = AuditFold::new(RunId::new(1));
        for (i, (run, cycle, cause, payload)) in self.0.iter().enumerate() {
            let seq = i as u64 + 1;
            if seq == from {
                fold.take_rows().for_each(drop);
                fold = AuditFold::resume(fold.state().clone());
            }
            let ts = TimestampNs::from_nanos(1_700_000_000_000_000_000 + seq as i64 * 1_000_000_001);
            fold.apply(&EventRef {
                seq: Seq::new(seq),
                run_id: RunId::new(*run),
                cycle_id: CycleId::new(*cycle),
                causation_seq: cause.map(Seq::new),
                ts_event: ts,
                ts_recorded: ts,
                payload,
            });
        }
        fold.finish();
        fold.take_rows().collect()
    }
}

fn spy() -> InstrumentId {
    InstrumentId::new("SPY").expect("an id")
}

fn text(s: &str) -> Text {
    Arc::from(s)
}

fn started() -> Payload {
    Payload::RunStarted(Box::new(RunStarted {
        mode: RunMode::Paper,
        config_hash: ledger_core::chain::Hash32::digest(b"config"),
        config: text("{}"),
        software_version: text("0.1.0"),
        venue: text("paper"),
        instruments: vec![spy()],
        provider: text("script"),
        model: text("script"),
        params: text("file=d.jsonl"),
        parent_run: None,
        data_source: text("d.csv"),
        starting_cash: dec!(1000),
        kill_switch_tripped: false,
    }))
}

fn tick(close: Decimal) -> Payload {
    Payload::MarketTick(MarketTick {
        instrument: spy(),
        data: TickData::Bar(Bar {
            open: close,
            high: close,
            low: close,
            close,
            volume: None,
            interval_ns: 60_000_000_000,
        }),
    })
}

fn decision(action: Action, confidence: Decimal, reason: &str) -> Payload {
    Payload::DecisionMade(DecisionMade {
        prompt_sha256: None,
        prompt: text(""),
        raw_output: text(""),
        parsed: Decision::new(action, dec!(0.5), confidence, text(reason)),
        parse_status: ParseStatus::Ok,
        latency_us: 0,
        tokens_in: 0,
        tokens_out: 0,
    })
}

fn verdict(approved: bool, reason: &str) -> Payload {
    Payload::RiskVerdict(RiskVerdict {
        approved,
        checks: vec![RiskCheck {
            id: RiskCheckId::MinConfidence,
            value: dec!(0.1),
            limit: dec!(0.5),
            passed: approved,
        }],
        reason: text(reason),
    })
}

fn order(id: &str, side: Side, qty: Decimal) -> Payload {
    Payload::OrderSubmitted(OrderSubmitted {
        client_order_id: ClientOrderId::new(id).expect("an id"),
        instrument: spy(),
        side,
        qty: OrderQty::Units(qty),
        order_type: OrderType::Market,
        limit_price: None,
        tif: TimeInForce::Gtc,
        stop_price: None,
        reduce_only: false,
        protects: None,
        bracket: None,
    })
}

fn fill(id: &str, side: Side, qty: Decimal, price: Decimal) -> Payload {
    Payload::OrderFilled(OrderFilled {
        client_order_id: ClientOrderId::new(id).expect("an id"),
        fill_id: FillId::new(7),
        instrument: spy(),
        side,
        qty,
        price,
        fee: dec!(0.01),
        liquidity: Liquidity::Taker,
    })
}

/// A run with a hold, a denied decision, an approved one whose order fills on the next
/// tick, an in-cycle kill-switch trip that closes the position, and an operator reset.
fn scenario() -> Events {
    let mut e = Events(Vec::new());
    e.push(1, 0, None, started());
    // Cycle 1: hold (approved without checks).
    let t = e.push(1, 1, None, tick(dec!(10)));
    let d = e.push(1, 1, Some(t), decision(Action::Hold, dec!(0), "warming up"));
    e.push(1, 1, Some(d), Payload::RiskVerdict(RiskVerdict { approved: true, checks: vec![], reason: text("") }));
    // Cycle 2: denied.
    let t = e.push(1, 2, None, tick(dec!(11)));
    let d = e.push(1, 2, Some(t), decision(Action::Long, dec!(0.1), "weak signal"));
    e.push(1, 2, Some(d), verdict(false, "min_confidence: value 0.1 against limit 0.5"));
    // Cycle 3: approved, an order for 10 units.
    let t = e.push(1, 3, None, tick(dec!(12)));
    let d = e.push(1, 3, Some(t), decision(Action::Long, dec!(0.9), "breakout"));
    let v = e.push(1, 3, Some(d), verdict(true, ""));
    let o = e.push(1, 3, Some(v), order("r1-1", Side::Buy, dec!(10)));
    // Cycle 4: the order fills at this tick's open (recorded in cycle 3, the order's).
    let t = e.push(1, 4, None, tick(dec!(8)));
    e.push(1, 3, Some(o), fill("r1-1", Side::Buy, dec!(10), dec!(12)));
    let trip = e.push(
        1,
        4,
        Some(t),
        Payload::KillSwitchTripped(KillSwitchTripped {
            trigger: KillTrigger::Drawdown,
            value: dec!(0.12),
            limit: dec!(0.1),
            reason: text("drawdown 0.12 reached limit 0.1"),
        }),
    );
    e.push(1, 4, Some(trip), order("r1-2", Side::Sell, dec!(10)));
    // The operator resets the switch (run 0, outside any cycle).
    e.push(0, 0, None, Payload::KillSwitchReset(KillSwitchReset { by: text("alice"), reason: text("reviewed") }));
    e
}

#[test]
fn each_kind_of_cycle_is_one_row_with_its_reasons() {
    let rows = scenario().rows_from(1);
    let kinds: Vec<(&str, &str)> = rows.iter().map(|r| (&*r.row_kind, &*r.event)).collect();
    assert_eq!(
        kinds,
        [
            ("run", "RunStarted"),
            ("cycle", ""),
            ("cycle", ""),
            ("cycle", ""),
            ("cycle", ""),
            ("operator", "KillSwitchReset")
        ]
    );
    // TC0: a hold is approved without checks.
    assert_eq!((&*rows[1].action, &*rows[1].verdict), ("hold", "approved"));
    assert_eq!(&*rows[1].decision_reason, "warming up");
    assert!(rows[1].checks.is_empty());
    // TC1: a denial carries its reason and the failed check.
    assert_eq!(&*rows[2].verdict, "denied");
    assert_eq!(&*rows[2].verdict_reason, "min_confidence: value 0.1 against limit 0.5");
    assert_eq!(rows[2].checks[0].id, "min_confidence");
    assert!(!rows[2].checks[0].passed);
    assert!(rows[2].orders.is_empty());
    // TC2: an approved order follows its verdict; its fill, recorded after the next tick,
    // is in that tick's row and names the order.
    assert_eq!(rows[3].orders[0].origin, "verdict");
    assert_eq!(rows[3].orders[0].cause_seq, Some(rows[3].verdict_seq));
    assert_eq!(rows[3].orders[0].status, "submitted");
    assert_eq!(rows[4].fills[0].client_order_id, "r1-1");
    let text = |d: Option<Dec>| d.map(|d| d.to_string()).unwrap_or_default();
    let fill = &rows[4].fills[0];
    assert_eq!((fill.order_filled_qty.to_string(), fill.order_avg_price.to_string()), ("10".into(), "12".into()));
    assert_eq!((text(rows[4].position_before), text(rows[4].position_after)), ("0".into(), "10".into()));
    assert_eq!((text(rows[4].cash_before), text(rows[4].cash_after)), ("1000".into(), "879.99".into()));
    // TC3: the trip is in its cycle's row, with its reason, and causes the closing order.
    let trip = rows[4].kill_switch.as_ref().expect("the trip");
    assert_eq!((trip.trigger.as_str(), trip.reason.as_str()), ("drawdown", "drawdown 0.12 reached limit 0.1"));
    assert_eq!(rows[4].orders[0].origin, "kill_switch");
    // TC4: the operator's reset is a row of its own with who and why.
    assert_eq!((rows[5].by.as_str(), rows[5].why.as_str(), rows[5].run_id), ("alice", "reviewed", 0));
    // Every event is in exactly one row.
    let seqs: Vec<u64> = rows.iter().flat_map(|r| r.event_seqs.iter().copied()).collect();
    assert_eq!(seqs, (1..=scenario().0.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_fold_resumed_at_a_row_boundary_gives_the_same_rows() {
    let events = scenario();
    let all = events.rows_from(1);
    // Row openers: each row's first seq.
    for row in &all[1..] {
        let later = events.rows_from(row.first_seq);
        let expected: Vec<&AuditRow> = all.iter().filter(|r| r.first_seq >= row.first_seq).collect();
        assert_eq!(later.iter().collect::<Vec<_>>(), expected, "resumed at seq {}", row.first_seq);
    }
}

#[test]
fn columns_are_the_row_fields_in_the_documented_order() {
    let mut rows = scenario().rows_from(1);
    // A row with every optional field set, so no field is left out.
    let mut row = rows.remove(4);
    row.detail = Some(Detail { venue: Some("paper".into()), ..Detail::default() });
    (row.by, row.why, row.event, row.prompt, row.prompt_sha256, row.raw_output, row.parse_error) =
        ("a".into(), "b".into(), "c".into(), "d".into(), "e".into(), "f".into(), "g".into());
    (row.verdict_reason, row.verdict, row.action, row.size_pct) =
        ("h".into(), "i".into(), "j".into(), Some(Dec(dec!(1))));
    (row.confidence, row.decision_reason, row.parse_status) = (Some(Dec(dec!(1))), "m".into(), "n".into());
    row.decision_terms = Some(TermsView { stop_loss: Some(Dec(dec!(9))), ..TermsView::default() });
    row.checks.push(CheckView { id: "x".into(), value: Dec(dec!(1)), limit: Dec(dec!(2)), passed: true });
    row.order_updates.push(OrderUpdate {
        client_order_id: "o".into(),
        seq: 1,
        status: "accepted".into(),
        reason: "".into(),
        stop_price: None,
    });
    row.indicators = "ema20=1".into();
    row.model_call = Some(ModelCallView {
        cost_usd: Dec(dec!(0.01)),
        error: "".into(),
        http_status: Some(200),
        requests: 1,
        seq: 2,
    });
    row.tool_calls.push(ToolCallView {
        arguments: "{}".into(),
        name: "get_quote".into(),
        result: "{}".into(),
        round: 1,
        seq: 3,
    });
    row.prev_row_hash = "0".repeat(64);
    let serde_json::Value::Object(fields) = serde_json::to_value(&row).expect("a row serializes") else {
        panic!("a row is an object")
    };
    let mut names: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).filter(|n| *n != "row_hash").collect();
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    keys.sort_unstable();
    assert_eq!(names, keys);
}

fn any_text() -> impl Strategy<Value = String> {
    // ASCII, controls, quotes, backslashes, non-ASCII and astral characters.
    proptest::collection::vec(
        prop_oneof![any::<char>(), Just('"'), Just('\\'), Just('\u{7f}'), Just('\u{1f}'), Just('\u{2028}')],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    /// The hand-written timestamps are chrono's RFC 3339 with nanoseconds, over the
    /// whole `i64` range.
    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds(nanos in any::<i64>()) {
        let ts = TimestampNs::from_nanos(nanos);
        let text = rfc3339_nanos(ts);
        prop_assert_eq!(&text, &ts.to_datetime().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
        // And they read back.
        prop_assert_eq!(parse_rfc3339_nanos(&text), Some(ts));
    }

    /// The invariant `RowChain::link` rests on: serde_json's compact form of a row is its
    /// RFC 8785 canonical form, whatever its text holds.
    #[test]
    fn compact_json_of_a_row_is_canonical(a in any_text(), b in any_text(), c in any_text(), n in any::<u32>()) {
        let mut rows = scenario().rows_from(1);
        let mut row = rows.remove(4);
        (row.decision_reason, row.why, row.by) = (Text::from(a.as_str()), b, c.clone());
        row.latency_us = u64::from(n);
        row.fills[0].fill_id = a;
        row.detail = Some(Detail { data_source: Some(c), cycles: Some(u64::from(n)), ..Detail::default() });
        let compact = serde_json::to_vec(&row).expect("serializes");
        let canonical = row.to_canon_json_vec().expect("canonicalizes");
        prop_assert_eq!(String::from_utf8_lossy(&compact), String::from_utf8_lossy(&canonical));
    }
}

#[test]
fn only_real_times_in_the_exact_form_read_back() {
    for bad in [
        "1998-02-30T00:00:00.000000000Z",
        "1998-01-02T00:00:00.000000000+",
        "1998-01-02T00:00:00Z",
        "1998-13-01T00:00:00.000000000Z",
        "x998-01-02T00:00:00.000000000Z",
    ] {
        assert_eq!(parse_rfc3339_nanos(bad), None, "{bad}");
    }
}

#[test]
fn the_row_chain_links_and_hashes_canonical_json() {
    let mut rows = scenario().rows_from(1);
    let mut chain = RowChain::new();
    let (first, hash1) = chain.link(&mut rows[0]).map(|(c, h)| (c.to_vec(), h)).expect("links");
    assert_eq!(rows[0].prev_row_hash, "0".repeat(64));
    assert_eq!(hash1, Hash32::digest(&first));
    chain.link(&mut rows[1]).expect("links");
    assert_eq!(rows[1].prev_row_hash, hash1.to_hex());
    // The JSONL line is the canonical JSON with row_hash last, and parses back to it.
    let mut line = Vec::new();
    write_jsonl_line(&first, &hash1, &mut line).expect("writes");
    let mut parsed: serde_json::Value = serde_json::from_slice(&line).expect("a JSON line");
    assert_eq!(parsed["row_hash"], hash1.to_hex());
    parsed.as_object_mut().expect("an object").remove("row_hash");
    assert_eq!(canonical(&parsed).expect("canonicalizes"), first);
}

/// The CSV cells by the format's rules from the row's JSON (the reference for
/// `AuditRow::csv_cells`).
fn cells_by_the_rules(row: &AuditRow, hash: &Hash32) -> Vec<String> {
    let serde_json::Value::Object(mut fields) = serde_json::to_value(row).expect("serializes") else {
        panic!("a row is an object")
    };
    fields.insert("row_hash".into(), hash.to_hex().into());
    COLUMNS
        .iter()
        .map(|(name, kind)| match (fields.get(*name), kind) {
            (None, _) => String::new(),
            (Some(serde_json::Value::String(text)), ColumnType::String) => text.clone(),
            (Some(serde_json::Value::Number(n)), ColumnType::Integer) => n.to_string(),
            (Some(value), ColumnType::Json) => {
                String::from_utf8(value.to_canon_json_vec().expect("canonical")).expect("UTF-8")
            }
            (Some(value), kind) => panic!("{name} holds {value} in a {} column", kind.name()),
        })
        .collect()
}

#[test]
fn csv_cells_follow_the_format_rules() {
    let mut chain = RowChain::new();
    for mut row in scenario().rows_from(1) {
        let (_, hash) = chain.link(&mut row).expect("links");
        assert_eq!(row.csv_cells(&hash).expect("cells"), cells_by_the_rules(&row, &hash), "row {}", row.first_seq);
    }
}

proptest! {
    /// A row's decimals are written as `Decimal`'s `Display` writes them: every place of
    /// the scale, the sign of a negative (zero included), 0 to 28 places, up to 96 bits.
    #[test]
    fn decimal_text_is_what_display_writes(lo in any::<u32>(), mid in any::<u32>(), hi in any::<u32>(),
                                            negative in any::<bool>(), scale in 0u32..=28, width in 0usize..3) {
        let hi = if width == 0 { 0 } else { hi };
        let mid = if width == 0 && lo % 2 == 0 { 0 } else { mid };
        let value = Decimal::from_parts(lo, mid, hi, negative, scale);
        let mut out = [0; DECIMAL_TEXT];
        prop_assert_eq!(decimal_text(value, &mut out), value.to_string());
        prop_assert_eq!(Dec(value).to_string(), value.to_string());
    }
}

#[test]
fn decimal_text_of_zeros_and_extremes() {
    for value in [
        Decimal::ZERO,
        Decimal::new(0, 5),
        -Decimal::new(0, 2),
        Decimal::MAX,
        Decimal::MIN,
        Decimal::new(1, 28),
        Decimal::new(-1, 28),
    ] {
        assert_eq!(decimal_text(value, &mut [0; DECIMAL_TEXT]), value.to_string());
    }
}
