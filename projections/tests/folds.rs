//! The folds against the engine and against themselves: a fold fed live by the runner
//! equals the same fold over the stored log, equals the account the engine ends with,
//! and a fold restored from a snapshot and caught up equals the full fold. Plus the
//! runs index and the kill switch's scope, case by case.

use std::collections::VecDeque;

use ledger_core::codec::{decode_meta, encode_meta};
use ledger_core::decision::{DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo};
use ledger_core::engine::RunSpec;
use ledger_core::event::*;
use ledger_core::exits::ExitPolicy;
use ledger_core::feed::Tick;
use ledger_core::ids::{CycleId, InstrumentId, RunId, Seq};
use ledger_core::log::{EventLog, MemLog};
use ledger_core::portfolio::Portfolio;
use ledger_core::risk::{KillSwitch, KillSwitchLimits, RiskEngine, RiskLimits};
use ledger_core::runner::{Observer, RunParts, Runner, SessionState};
use ledger_core::strategy::{RuleSizing, SmaCross};
use ledger_core::time::TimestampNs;
use ledger_core::venue::{FillModel, PaperConfig, PaperVenue};
use ledger_projections::kill_switch::KillSwitchFold;
use ledger_projections::portfolio::PortfolioFold;
use ledger_projections::report::ReportFold;
use ledger_projections::runs::RunsFold;
use ledger_projections::{fold_log, fold_range, Fold, Folds};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::de::DeserializeOwned;
use serde::Serialize;

const DAY: i64 = 86_400_000_000_000;

fn inst(s: &str) -> InstrumentId {
    InstrumentId::new(s).unwrap()
}

// ---- a set of folds, fed live or over the stored log ----

/// Every fold kind: the runs index, the kill switch, and the account and report of
/// runs 1 and 2.
#[derive(Clone)]
struct Set {
    runs: RunsFold,
    kill: KillSwitchFold,
    portfolios: [PortfolioFold; 2],
    reports: [ReportFold; 2],
}

impl Set {
    fn new() -> Self {
        let (one, two) = (RunId::new(1), RunId::new(2));
        Set {
            runs: RunsFold::default(),
            kill: KillSwitchFold::default(),
            portfolios: [PortfolioFold::new(one), PortfolioFold::new(two)],
            reports: [ReportFold::new(one), ReportFold::new(two)],
        }
    }

    fn each(&mut self) -> Vec<&mut dyn Fold> {
        let [p1, p2] = &mut self.portfolios;
        let [r1, r2] = &mut self.reports;
        vec![&mut self.runs, &mut self.kill, p1, p2, r1, r2]
    }

    /// The folds as the runner's observer (the form the CLI uses).
    fn folds(&mut self) -> Folds<'_> {
        let [p1, p2] = &mut self.portfolios;
        let [r1, r2] = &mut self.reports;
        Folds::new().with(p1).with(r1).with(&mut self.runs).with(&mut self.kill).with(p2).with(r2)
    }

    /// Every fold's snapshot, written and read back as the store does.
    fn through_snapshots(&self) -> Self {
        Set {
            runs: round_trip(&self.runs),
            kill: round_trip(&self.kill),
            portfolios: [round_trip(&self.portfolios[0]), round_trip(&self.portfolios[1])],
            reports: [round_trip(&self.reports[0]), round_trip(&self.reports[1])],
        }
    }
}

fn round_trip<T: Serialize + DeserializeOwned>(fold: &T) -> T {
    decode_meta(&encode_meta(fold).unwrap()).unwrap()
}

fn report_json(fold: &ReportFold) -> String {
    serde_json::to_string(&fold.report()).unwrap()
}

/// Asserts two sets hold the same state, fold by fold.
fn assert_same(label: &str, a: &Set, b: &Set) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.runs, &b.runs, "{}: runs", label);
    prop_assert_eq!(&a.kill, &b.kill, "{}: kill switch", label);
    for i in 0..2 {
        prop_assert_eq!(&a.portfolios[i], &b.portfolios[i], "{}: portfolio of run {}", label, i + 1);
        prop_assert_eq!(report_json(&a.reports[i]), report_json(&b.reports[i]), "{}: report of run {}", label, i + 1);
        // The whole state, not only what the report shows.
        let (x, y) = (encode_meta(&a.reports[i]).unwrap(), encode_meta(&b.reports[i]).unwrap());
        prop_assert!(x == y, "{}: report fold state of run {}", label, i + 1);
    }
    Ok(())
}

// ---- runs driven through the real runner ----

/// A fixed action and size per tick (hold after the script ends).
struct Scripted(VecDeque<(Action, Decimal)>);

impl DecisionProvider for Scripted {
    fn info(&self) -> ProviderInfo {
        ProviderInfo { provider: "test".into(), model: "scripted".into(), params: "".into() }
    }

    fn decide(&mut self, _input: &DecisionInput<'_>) -> ProviderAnswer {
        let (action, size_pct) = self.0.pop_front().unwrap_or((Action::Hold, Decimal::ZERO));
        ProviderAnswer {
            decision: Decision::new(action, size_pct, Decimal::ONE, "script".into()),
            parse_status: ParseStatus::Ok,
            prompt: "".into(),
            raw_output: "".into(),
            latency_us: 0,
            tokens_in: 0,
            tokens_out: 0,
            record: None,
        }
    }

    /// The script left, so a session snapshot can be taken (its account is what the
    /// rebuild below starts from).
    fn save_state(&self) -> Option<Vec<u8>> {
        Some(self.0.len().to_be_bytes().to_vec())
    }
}

/// Who decides in a generated run.
#[derive(Debug, Clone)]
enum Decider {
    Sma { short: bool },
    Script(Vec<(Action, Decimal)>),
}

impl Decider {
    fn provider(&self) -> Box<dyn DecisionProvider> {
        match self {
            Decider::Sma { short } => {
                Box::new(SmaCross::new(2, 5, RuleSizing { size_pct: dec!(0.5), allow_short: *short }))
            }
            Decider::Script(actions) => Box::new(Scripted(actions.iter().copied().collect())),
        }
    }
}

/// One generated run: its mode, bars, decider, venue, kill switch and batching.
#[derive(Debug, Clone)]
struct RunCase {
    paper: bool,
    /// (open, close) in cents, second instrument?, how far the wall clock runs ahead.
    bars: Vec<(u32, u32, bool, i64)>,
    decider: Decider,
    venue: PaperConfig,
    kill: KillSwitchLimits,
    /// Protective exits on every entry (stops and targets that fill on the bars'
    /// highs and lows, trailing stops amended as they go).
    exits: ExitPolicy,
    cycles_per_append: usize,
    cash: Decimal,
}

impl RunCase {
    fn mode(&self) -> RunMode {
        if self.paper {
            RunMode::Paper
        } else {
            RunMode::Replay
        }
    }

    /// Each bar's tick (days from `first_day`) and its cycle's time.
    fn cycles(&self, first_day: i64) -> Vec<(Tick, TimestampNs)> {
        self.bars
            .iter()
            .enumerate()
            .map(|(i, &(open, close, second, lag))| {
                let (open, close) = (Decimal::new(i64::from(open), 2), Decimal::new(i64::from(close), 2));
                let ts = TimestampNs::from_nanos((first_day + i as i64) * DAY);
                let data = TickData::Bar(Bar {
                    open,
                    high: open.max(close),
                    low: open.min(close),
                    close,
                    volume: None,
                    interval_ns: DAY,
                });
                let instrument = if second { inst("QQQ") } else { inst("SPY") };
                let now = if self.paper { TimestampNs::from_nanos(ts.nanos() + lag) } else { ts };
                (Tick { ts, instrument, data }, now)
            })
            .collect()
    }

    /// Runs this case as run `run_id` of `log` with `observer` fed live; returns the
    /// account the engine ends with.
    fn go(
        &self,
        log: &mut MemLog,
        observer: &mut dyn Observer,
        run_id: RunId,
        first_day: i64,
        tripped: bool,
    ) -> Portfolio {
        let cycles = self.cycles(first_day);
        let start = cycles.first().map_or(TimestampNs::from_nanos(first_day * DAY), |(_, now)| *now);
        let parts = RunParts {
            spec: RunSpec {
                run_id,
                mode: self.mode(),
                config: "{}".into(),
                software_version: "test".into(),
                instruments: vec![inst("SPY"), inst("QQQ")],
                data_source: "generated".into(),
                parent_run: None,
                starting_cash: self.cash,
                venue: "paper".into(),
                exits: self.exits.clone(),
            },
            provider: self.decider.provider(),
            risk: RiskEngine::new(RiskLimits::default()),
            kill: KillSwitch::new(self.kill.clone(), tripped),
            venue: Box::new(PaperVenue::new(self.venue.clone())),
        };
        // Session snapshots every few events, so rebuilds can start from them.
        let runner = Runner::start(log, observer, parts, start, self.cycles_per_append).unwrap();
        let mut runner = runner.with_snapshots(SNAPSHOT_EVERY);
        let mut last = start;
        for (tick, now) in &cycles {
            runner.on_tick(tick, *now).unwrap();
            last = *now;
        }
        runner.stop("end of data", 0, last).unwrap()
    }
}

/// Events between session snapshots in the generated runs.
const SNAPSHOT_EVERY: u64 = 7;

/// An operator's command between the runs, under run 0.
#[derive(Debug, Clone, Copy)]
enum Operator {
    Nothing,
    Trip,
    Reset,
}

fn operator_event(log: &mut MemLog, set: &mut Set, command: Operator, day: i64) {
    let payload = match command {
        Operator::Nothing => return,
        Operator::Trip => Payload::KillSwitchTripped(KillSwitchTripped {
            trigger: KillTrigger::Command,
            value: Decimal::ONE,
            limit: Decimal::ONE,
            reason: "tripped by test".into(),
        }),
        Operator::Reset => Payload::KillSwitchReset(KillSwitchReset { by: "test".into(), reason: "reset".into() }),
    };
    let ts = TimestampNs::from_nanos(day * DAY);
    let draft = EventDraft {
        run_id: RunId::new(0),
        cycle_id: CycleId::new(0),
        causation_seq: None,
        ts_event: ts,
        ts_recorded: ts,
        payload,
    };
    let first = log.head().seq.next();
    set.folds().observe(first, std::slice::from_ref(&draft));
    log.append(&mut vec![draft]).unwrap();
}

fn any_action() -> impl Strategy<Value = (Action, Decimal)> {
    (prop_oneof![Just(Action::Long), Just(Action::Short), Just(Action::Close), Just(Action::Hold)], 1u32..=100)
        .prop_map(|(action, pct)| (action, Decimal::new(i64::from(pct), 2)))
}

fn any_run() -> impl Strategy<Value = RunCase> {
    let decider = prop_oneof![
        any::<bool>().prop_map(|short| Decider::Sma { short }),
        proptest::collection::vec(any_action(), 0..60).prop_map(Decider::Script),
    ];
    let venue = (0u32..=50, 0usize..4, any::<bool>(), 0u32..=3).prop_map(|(bps, lot, close, min)| PaperConfig {
        fill_model: if close { FillModel::Close } else { FillModel::NextOpen },
        commission_rate: Decimal::new(i64::from(bps), 4),
        commission_min: Decimal::from(min),
        lot_size: [dec!(1), dec!(0.5), dec!(0.001), dec!(10)][lot],
        ..PaperConfig::default()
    });
    let kill = (proptest::option::of(1u32..30), any::<bool>()).prop_map(|(dd, close_positions)| KillSwitchLimits {
        max_drawdown: dd.map(|dd| Decimal::new(i64::from(dd), 2)),
        close_positions,
        ..KillSwitchLimits::default()
    });
    let pct =
        |most: u32| proptest::option::weighted(0.3, 1..most).prop_map(|p| p.map(|p| Decimal::new(i64::from(p), 2)));
    let exits = (pct(10), pct(20), pct(10)).prop_map(|(stop_loss_pct, take_profit_pct, trailing_stop_pct)| {
        ExitPolicy { stop_loss_pct, take_profit_pct, trailing_stop_pct }
    });
    (
        any::<bool>(),
        proptest::collection::vec((500u32..2_000, 500u32..2_000, proptest::bool::weighted(0.3), 0i64..DAY), 1..60),
        decider,
        venue,
        kill,
        exits,
        1usize..8,
        prop_oneof![Just(dec!(1000)), Just(dec!(100000)), Just(dec!(12345.67))],
    )
        .prop_map(|(paper, bars, decider, venue, kill, exits, cycles_per_append, cash)| RunCase {
            paper,
            bars,
            decider,
            venue,
            kill,
            exits,
            cycles_per_append,
            cash,
        })
}

fn any_operator() -> impl Strategy<Value = Operator> {
    prop_oneof![Just(Operator::Nothing), Just(Operator::Trip), Just(Operator::Reset)]
}

/// A ledger of two generated runs, each after an operator's command, with the folds
/// fed live as the runner appended.
struct Driven {
    log: MemLog,
    live: Set,
    /// The account each run's engine ended with.
    finals: Vec<Portfolio>,
    /// Each run's first and last seq.
    ranges: Vec<(Seq, Seq)>,
}

fn drive(runs: &[RunCase], operators: &[Operator]) -> Driven {
    let mut log = MemLog::new();
    let mut live = Set::new();
    let (mut finals, mut ranges) = (Vec::new(), Vec::new());
    for (i, (run, operator)) in runs.iter().zip(operators).enumerate() {
        let first_day = 1_000 * i as i64;
        operator_event(&mut log, &mut live, *operator, first_day - 1);
        let run_id = live.runs.next_run_id();
        assert_eq!(run_id, RunId::new(i as u64 + 1));
        // A paper session takes the operator's switch; a backtest starts armed.
        let tripped = run.paper && live.kill.is_tripped();
        let first = log.head().seq.next();
        let mut observer = live.folds();
        finals.push(run.go(&mut log, &mut observer, run_id, first_day, tripped));
        drop(observer);
        ranges.push((first, log.head().seq));
    }
    Driven { log, live, finals, ranges }
}

/// The folds over the stored log, from scratch.
fn stored(log: &MemLog) -> Set {
    let mut stored = Set::new();
    fold_log(log, &mut stored.folds()).unwrap();
    stored
}

/// Every fold fed the stored events `1..=k` (one of the log's seqs, picked by `cut`).
fn folded_until(log: &MemLog, cut: proptest::sample::Index) -> Result<Set, TestCaseError> {
    let k = Seq::new(cut.index(log.head().seq.get() as usize) as u64 + 1);
    let mut partial = Set::new();
    for fold in partial.each() {
        fold_range(log, Seq::new(1), k, fold).unwrap();
        prop_assert_eq!(fold.covers(), k);
    }
    Ok(partial)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Two runs (paper or backtest, any bars, strategy, costs, lots, kill switch and
    /// batching) with an operator's command before each: the folds fed live by the
    /// runner equal the folds over the stored log, and each run's account equals the
    /// one its engine ended with; folds caught up from any seq equal the full folds.
    #[test]
    fn a_fold_fed_live_equals_the_fold_over_the_stored_log_and_the_engine(
        runs in proptest::collection::vec(any_run(), 2),
        operators in proptest::collection::vec(any_operator(), 2),
        cut in any::<proptest::sample::Index>(),
    ) {
        let Driven { log, mut live, finals, ranges } = drive(&runs, &operators);
        let head = log.head().seq;

        // TC0: live == the stored log folded from scratch.
        let stored = stored(&log);
        assert_same("live vs stored", &live, &stored)?;

        // TC1: each run's account == the engine's final account; the runs index knows
        // where each run lies and how it stopped.
        for (i, final_portfolio) in finals.iter().enumerate() {
            prop_assert_eq!(live.portfolios[i].portfolio(), final_portfolio);
            prop_assert_eq!(live.reports[i].portfolio(), final_portfolio);
            prop_assert_eq!(live.reports[i].report().equity_final, final_portfolio.equity().round_dp(2));
            let summary = live.runs.get(RunId::new(i as u64 + 1)).expect("run in the index");
            prop_assert_eq!((summary.first_seq, summary.last_seq), ranges[i]);
            prop_assert_eq!(summary.mode, Some(runs[i].mode()));
            prop_assert_eq!(summary.stop_reason.as_deref(), Some("end of data"));
        }
        prop_assert_eq!(live.runs.next_run_id(), RunId::new(3));
        for fold in live.each() {
            prop_assert_eq!(fold.covers(), head);
        }

        // TC2: folds stopped at any seq and caught up with fold_log (which skips what
        // they cover) == the full folds; the runs index and the kill switch (the folds
        // the CLI keeps as snapshots) go through their snapshot bytes on the way.
        let partial = folded_until(&log, cut)?;
        let mut restored = Set { runs: round_trip(&partial.runs), kill: round_trip(&partial.kill), ..partial };
        fold_log(&log, &mut restored.folds()).unwrap();
        assert_same("caught up vs full", &restored, &stored)?;

        // TC3: a run's account rebuilt from its latest session snapshot (the engine's
        // account, through its bytes) and the events after it == the full fold.
        for (i, &(first, last)) in ranges.iter().enumerate() {
            let run = RunId::new(i as u64 + 1);
            // A run whose appends never spanned a snapshot's events has none (the stop
            // stores the folds' only): it is rebuilt from its start, as TC1 checks.
            let Some(bytes) = log.snapshot(&SessionState::name(run)) else { continue };
            let state: SessionState = decode_meta(&bytes).unwrap();
            prop_assert!(state.covers >= first && state.covers <= last);
            let mut rebuilt = PortfolioFold::resume(run, state.engine.portfolio().clone(), state.covers);
            fold_range(&log, state.covers.next(), last, &mut rebuilt).unwrap();
            prop_assert_eq!(rebuilt.portfolio(), live.portfolios[i].portfolio());
        }
    }

    /// Every fold's state is plain data whose snapshot is its bytes: folds snapshotted
    /// at any seq with `encode_meta`, read back with `decode_meta` and caught up equal
    /// the full folds.
    #[test]
    fn a_fold_restored_from_its_snapshot_and_caught_up_equals_the_full_fold(
        runs in proptest::collection::vec(any_run(), 2),
        operators in proptest::collection::vec(any_operator(), 2),
        cut in any::<proptest::sample::Index>(),
    ) {
        let Driven { log, .. } = drive(&runs, &operators);
        let partial = folded_until(&log, cut)?;
        let mut restored = partial.through_snapshots();
        fold_log(&log, &mut restored.folds()).unwrap();
        assert_same("restored vs full", &restored, &stored(&log))?;
    }
}

// ---- the runs index and the kill switch, case by case ----

fn started(mode: RunMode) -> Payload {
    Payload::RunStarted(Box::new(RunStarted {
        mode,
        config_hash: ledger_core::chain::Hash32::ZERO,
        config: "{}".into(),
        software_version: "test".into(),
        venue: "paper".into(),
        instruments: vec![inst("SPY")],
        provider: "test".into(),
        model: "test".into(),
        params: "".into(),
        parent_run: None,
        data_source: "test".into(),
        starting_cash: dec!(1000),
        kill_switch_tripped: false,
    }))
}

fn tick() -> Payload {
    let price = dec!(100);
    let bar = Bar { open: price, high: price, low: price, close: price, volume: None, interval_ns: DAY };
    Payload::MarketTick(MarketTick { instrument: inst("SPY"), data: TickData::Bar(bar) })
}

fn stopped(reason: &str) -> Payload {
    Payload::RunStopped(RunStopped { reason: reason.into(), skipped_rows: 0 })
}

fn trip() -> Payload {
    Payload::KillSwitchTripped(KillSwitchTripped {
        trigger: KillTrigger::Drawdown,
        value: dec!(0.3),
        limit: dec!(0.2),
        reason: "drawdown".into(),
    })
}

fn reset() -> Payload {
    Payload::KillSwitchReset(KillSwitchReset { by: "ops".into(), reason: "reviewed".into() })
}

/// Applies `payload` as the event `seq` of `run`, recorded at seq * 1000 ns.
fn apply_at(fold: &mut dyn Fold, seq: u64, run: u64, payload: &Payload) {
    let ts = TimestampNs::from_nanos(seq as i64 * 1000);
    fold.apply(&EventRef {
        seq: Seq::new(seq),
        run_id: RunId::new(run),
        cycle_id: CycleId::new(0),
        causation_seq: None,
        ts_event: ts,
        ts_recorded: ts,
        payload,
    });
}

/// Events as `(run, payload)`, applied as seqs 1, 2, ...
type Events = Vec<(u64, Payload)>;

fn apply_all(fold: &mut dyn Fold, events: &[(u64, Payload)]) {
    for (i, (run, payload)) in events.iter().enumerate() {
        apply_at(fold, i as u64 + 1, *run, payload);
    }
}

#[test]
fn the_runs_index_keeps_interleaved_runs_apart() {
    // TC0: an empty ledger: the first run is 1.
    let fold = RunsFold::default();
    assert_eq!(fold.next_run_id(), RunId::new(1));
    assert!(fold.get(RunId::new(1)).is_none());

    // TC1: only operator commands (run 0): still run 1 next, and run 0 has no mode.
    let mut fold = RunsFold::default();
    apply_all(&mut fold, &[(0, trip()), (0, reset())]);
    assert_eq!(fold.next_run_id(), RunId::new(1));
    let operator = fold.get(RunId::new(0)).unwrap();
    assert_eq!(
        (operator.mode, operator.first_seq, operator.last_seq, operator.event_count),
        (None, Seq::new(1), Seq::new(2), 2)
    );

    // TC2: a paper run (never stopped) and a backtest interleaved, with an operator
    // command between them.
    let events = [
        (1, started(RunMode::Paper)),  // 1
        (1, tick()),                   // 2
        (2, started(RunMode::Replay)), // 3
        (1, tick()),                   // 4
        (2, tick()),                   // 5
        (0, trip()),                   // 6
        (2, stopped("end of data")),   // 7
        (1, tick()),                   // 8
    ];
    let mut fold = RunsFold::default();
    apply_all(&mut fold, &events);
    assert_eq!(fold.next_run_id(), RunId::new(3));
    assert_eq!(fold.covers(), Seq::new(8));
    let one = fold.get(RunId::new(1)).unwrap();
    assert_eq!(
        (one.mode, one.event_count, one.stopped, one.stop_reason.clone()),
        (Some(RunMode::Paper), 4, None, None)
    );
    assert_eq!((one.range().first, one.range().last), (Seq::new(1), Seq::new(8)));
    assert_eq!(one.started, TimestampNs::from_nanos(1000));
    let two = fold.get(RunId::new(2)).unwrap();
    assert_eq!((two.mode, two.event_count), (Some(RunMode::Replay), 3));
    assert_eq!((two.range().first, two.range().last), (Seq::new(3), Seq::new(7)));
    assert_eq!((two.started, two.stopped), (TimestampNs::from_nanos(3000), Some(TimestampNs::from_nanos(7000))));
    assert_eq!(two.stop_reason.as_deref(), Some("end of data"));
    assert_eq!(fold.iter().map(|r| r.run_id.get()).collect::<Vec<_>>(), [0, 1, 2]);
    // The snapshot form holds all of it.
    assert_eq!(round_trip(&fold), fold);
}

#[test]
fn a_backtests_trips_stay_inside_it_and_everything_else_sets_the_operators_switch() {
    // (label, events, tripped, since)
    let cases: Vec<(&str, Events, bool, u64)> = vec![
        ("TC0: a trip in a backtest (replay) run", vec![(1, started(RunMode::Replay)), (1, trip())], false, 0),
        ("TC1: a trip in a paper run", vec![(1, started(RunMode::Paper)), (1, trip())], true, 2),
        ("TC2: a trip in a live run", vec![(1, started(RunMode::Live)), (1, trip())], true, 2),
        ("TC3: the operator's trip (run 0)", vec![(0, trip())], true, 1),
        (
            "TC4: a paper trip, then the operator's reset",
            vec![(1, started(RunMode::Paper)), (1, trip()), (0, reset())],
            false,
            3,
        ),
        (
            "TC5: the operator's trip survives a backtest's trip and reset",
            vec![(0, trip()), (1, started(RunMode::Replay)), (1, trip()), (1, reset())],
            true,
            1,
        ),
        (
            "TC6: interleaved: the backtest's trip is passed over, the paper run's counts",
            vec![(1, started(RunMode::Replay)), (2, started(RunMode::Paper)), (1, trip()), (2, tick()), (2, trip())],
            true,
            5,
        ),
        ("TC7: a reset after the operator's trip clears it", vec![(0, trip()), (0, reset())], false, 2),
    ];
    for (label, events, tripped, since) in cases {
        let mut fold = KillSwitchFold::default();
        apply_all(&mut fold, &events);
        assert_eq!((fold.is_tripped(), fold.since()), (tripped, Seq::new(since)), "{label}");
        assert_eq!(fold.covers(), Seq::new(events.len() as u64), "{label}");
        // A fold restored from its snapshot keeps the scope: a later trip of the same
        // backtest still does not count.
        let mut restored: KillSwitchFold = round_trip(&fold);
        assert_eq!(restored, fold, "{label}");
        let replay_run = events.iter().find(|(_, p)| matches!(p, Payload::RunStarted(s) if s.mode == RunMode::Replay));
        if let Some((run, _)) = replay_run {
            apply_at(&mut restored, events.len() as u64 + 1, *run, &trip());
            assert_eq!((restored.is_tripped(), restored.since()), (tripped, Seq::new(since)), "{label}: after restore");
        }
    }
}
