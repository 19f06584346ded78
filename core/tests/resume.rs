//! Resuming an interrupted run: a run killed at any cycles, and resumed each time from
//! its latest session snapshot (or its start) with the recorded tail re-executed, makes
//! exactly the events of the same run uninterrupted (apart from its `RunResumed`
//! records), under any risk configuration, with operator commands on the way.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use ledger_core::codec;
use ledger_core::engine::{OperatorCommand, RunSpec};
use ledger_core::event::*;
use ledger_core::exits::ExitPolicy;
use ledger_core::feed::Tick;
use ledger_core::ids::{InstrumentId, RunId, Seq};
use ledger_core::log::{visit_events, EventLog, MemLog};
use ledger_core::portfolio::Portfolio;
use ledger_core::replay::RunRange;
use ledger_core::risk::{KillSwitch, KillSwitchLimits, RiskEngine, RiskLimits};
use ledger_core::runner::{ResumeFrom, RunError, RunParts, Runner, SessionState};
use ledger_core::strategy::{RuleSizing, SmaCross};
use ledger_core::time::TimestampNs;
use ledger_core::venue::{PaperConfig, PaperVenue};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const DAY: i64 = 86_400_000_000_000;
const RUN: RunId = RunId::new(1);

fn spy() -> InstrumentId {
    InstrumentId::new("SPY").unwrap()
}

/// A daily bar per close (hundredths), opening at the previous close.
fn ticks(closes: &[u32]) -> Vec<Tick> {
    let mut open = Decimal::new(i64::from(closes[0]), 2);
    closes
        .iter()
        .enumerate()
        .map(|(day, &c)| {
            let close = Decimal::new(i64::from(c), 2);
            let bar = Bar { open, high: open.max(close), low: open.min(close), close, volume: None, interval_ns: DAY };
            open = close;
            Tick { ts: TimestampNs::from_nanos(day as i64 * DAY), instrument: spy(), data: TickData::Bar(bar) }
        })
        .collect()
}

/// The settings of the run: built again, the same, at every (re)start.
#[derive(Debug, Clone)]
struct Setup {
    risk: RiskLimits,
    kill: KillSwitchLimits,
    short: bool,
    /// Protective exits: working stops, targets and trailing stops cross the kills.
    exits: ExitPolicy,
    snapshot_every: u64,
    cycles_per_append: usize,
}

impl Setup {
    fn parts(&self) -> RunParts {
        RunParts {
            spec: RunSpec {
                run_id: RUN,
                mode: RunMode::Paper,
                config: "{}".into(),
                software_version: "test".into(),
                instruments: vec![spy()],
                data_source: "test".into(),
                parent_run: None,
                starting_cash: dec!(100000),
                venue: "paper".into(),
                exits: self.exits.clone(),
            },
            provider: Box::new(SmaCross::new(2, 5, RuleSizing { size_pct: dec!(0.5), allow_short: self.short })),
            risk: RiskEngine::new(self.risk.clone()),
            kill: KillSwitch::new(self.kill.clone(), false),
            venue: Box::new(PaperVenue::new(PaperConfig { commission_rate: dec!(0.001), ..PaperConfig::default() })),
        }
    }
}

/// What the operator does before the cycle of tick `n`.
fn command_at(commands: &BTreeMap<usize, bool>, n: usize) -> Option<OperatorCommand> {
    let (by, reason) = ("alice".into(), "test".into());
    commands.get(&n).map(|&trip| {
        if trip {
            OperatorCommand::Trip { by, reason }
        } else {
            OperatorCommand::Reset { by, reason }
        }
    })
}

/// The cycle time of tick `n`: the data's, a little later (a paper session's wall clock).
fn now(tick: &Tick, n: usize) -> TimestampNs {
    TimestampNs::from_nanos(tick.ts.nanos() + (n as i64 % 7) * 1_000_000)
}

/// Runs `ticks[from..to]` on `runner`, with the operator's commands on the way; a
/// command is made (and durable) once, so one made before a kill is not made again.
fn feed<L: EventLog>(
    runner: &mut Runner<'_, L>,
    ticks: &[Tick],
    (from, to): (usize, usize),
    commands: &mut BTreeMap<usize, bool>,
) {
    for (n, tick) in ticks.iter().enumerate().take(to).skip(from) {
        if let Some(command) = command_at(commands, n) {
            runner.on_command(&command, now(tick, n)).unwrap();
            commands.remove(&n);
        }
        runner.on_tick(tick, now(tick, n)).unwrap();
    }
}

/// The run uninterrupted.
fn uninterrupted(setup: &Setup, ticks: &[Tick], commands: &BTreeMap<usize, bool>) -> (MemLog, Portfolio) {
    let mut log = MemLog::new();
    let mut observer = ();
    let runner = Runner::start(&mut log, &mut observer, setup.parts(), ticks[0].ts, setup.cycles_per_append).unwrap();
    let mut runner = runner.with_snapshots(setup.snapshot_every);
    feed(&mut runner, ticks, (0, ticks.len()), &mut commands.clone());
    let last = now(&ticks[ticks.len() - 1], ticks.len() - 1);
    let portfolio = runner.stop("end of data", 0, last).unwrap();
    (log, portfolio)
}

/// The run killed after each tick count in `kills` (what was not appended is lost, as in
/// a kill) and resumed each time. Returns the log, the final account and how each resume
/// started (the snapshot's seq, 0 from the start).
fn interrupted(
    setup: &Setup,
    ticks: &[Tick],
    commands: &BTreeMap<usize, bool>,
    kills: &[usize],
) -> (MemLog, Portfolio, Vec<Seq>) {
    let mut log = MemLog::new();
    let mut observer = ();
    let mut starts = Vec::new();
    let mut commands = commands.clone();
    {
        let runner =
            Runner::start(&mut log, &mut observer, setup.parts(), ticks[0].ts, setup.cycles_per_append).unwrap();
        let mut runner = runner.with_snapshots(setup.snapshot_every);
        feed(&mut runner, ticks, (0, kills[0]), &mut commands);
        // Killed: dropped without stop; pending cycles are lost.
    }
    let mut stops: Vec<usize> = kills[1..].to_vec();
    stops.push(ticks.len());
    let mut portfolio = None;
    for (index, &stop) in stops.iter().enumerate() {
        let from = resume_from(&log);
        let resumed_at = TimestampNs::from_nanos(ticks[0].ts.nanos() - 1);
        let (runner, resumed) =
            Runner::resume(&mut log, &mut observer, setup.parts(), from, resumed_at, setup.cycles_per_append).unwrap();
        starts.push(resumed.snapshot_seq);
        let mut runner = runner.with_snapshots(setup.snapshot_every);
        let done = resumed.cycles as usize;
        feed(&mut runner, ticks, (done, stop.max(done)), &mut commands);
        if index == stops.len() - 1 {
            let last = now(&ticks[ticks.len() - 1], ticks.len() - 1);
            portfolio = Some(runner.stop("end of data", 0, last).unwrap());
        }
    }
    (log, portfolio.unwrap(), starts)
}

/// Run 1 of `log` to resume, from its latest session snapshot (if one covers no more
/// than the log holds), as `ledger run` finds it.
fn resume_from(log: &MemLog) -> ResumeFrom {
    let head = log.head().seq;
    let snapshot = log
        .snapshot(&SessionState::name(RUN))
        .map(|bytes| codec::decode_meta::<SessionState>(&bytes).unwrap())
        .filter(|s| s.covers <= head);
    ResumeFrom { range: RunRange { run_id: RUN, first: Seq::new(1), last: head }, snapshot }
}

/// Events as comparable across the two logs: without `RunResumed`, and with causation
/// as an index into that list.
fn comparable(log: &MemLog) -> Vec<(u64, Option<usize>, TimestampNs, TimestampNs, Payload)> {
    let mut index = BTreeMap::new();
    let mut out = Vec::new();
    visit_events(log, Seq::new(1), &mut |e| {
        if !matches!(e.payload, Payload::RunResumed(_)) {
            index.insert(e.header.seq, out.len());
            let cause = e.header.causation_seq.map(|c| index[&c]);
            out.push((e.header.cycle_id.get(), cause, e.header.ts_event, e.header.ts_recorded, e.payload));
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

fn setups() -> impl Strategy<Value = Setup> {
    (
        proptest::option::of(0u32..5),
        proptest::option::of(0i64..3 * DAY),
        any::<bool>(),
        proptest::option::of(5u32..30).prop_map(|d| d.map(|d| Decimal::new(i64::from(d), 2))),
        any::<bool>(),
        1u64..60,
        1usize..5,
        (proptest::option::of(1i64..5), proptest::option::of(1i64..8), proptest::option::of(1i64..5)),
    )
        .prop_map(|(per_day, cooldown, duplicates, drawdown, short, snapshot_every, cycles_per_append, exits)| {
            Setup {
                risk: RiskLimits {
                    max_trades_per_day: per_day,
                    cooldown_ns: cooldown,
                    block_duplicate_orders: duplicates,
                    daily_loss_cap: Some(dec!(0.02)),
                    ..RiskLimits::default()
                },
                kill: KillSwitchLimits { max_drawdown: drawdown, ..KillSwitchLimits::default() },
                short,
                exits: ExitPolicy {
                    stop_loss_pct: exits.0.map(|p| Decimal::new(p, 2)),
                    take_profit_pct: exits.1.map(|p| Decimal::new(p, 2)),
                    trailing_stop_pct: exits.2.map(|p| Decimal::new(p, 2)),
                },
                snapshot_every,
                cycles_per_append,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_run_killed_anywhere_and_resumed_makes_the_uninterrupted_runs_events(
        closes in proptest::collection::vec(1_000u32..2_000, 12..90),
        setup in setups(),
        kills in proptest::collection::vec(0.0f64..1.0, 1..4),
        commands in proptest::collection::btree_map(0usize..90, any::<bool>(), 0..3),
    ) {
        let ticks = ticks(&closes);
        let mut kills: Vec<usize> = kills.iter().map(|k| 1 + (k * (ticks.len() - 1) as f64) as usize).collect();
        kills.sort_unstable();
        let (reference, expected) = uninterrupted(&setup, &ticks, &commands);
        let (resumed, account, starts) = interrupted(&setup, &ticks, &commands, &kills);
        let (got, want) = (comparable(&resumed), comparable(&reference));
        let first_difference = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
        prop_assert!(
            got.len() == want.len() && first_difference == got.len(),
            "kills {:?}, resumes from {:?}: event {} differs (of {} and {}):\n resumed {:?}\n expected {:?}",
            kills, starts, first_difference, got.len(), want.len(), got.get(first_difference), want.get(first_difference)
        );
        prop_assert_eq!(&account, &expected);
        // With frequent snapshots, the first resume starts from one.
        prop_assert!(setup.snapshot_every > 5 || kills[0] < 10 || starts[0].get() > 0, "{:?}", starts);
    }
}

/// Re-execution that does not reproduce the record (another strategy) is refused,
/// naming the seq.
#[test]
fn resuming_with_another_strategy_is_refused_at_the_first_differing_event() {
    let closes: Vec<u32> = (0..40).map(|i| 1_500 + ((i * 37) % 23) * 10).collect();
    let ticks = ticks(&closes);
    let setup = Setup {
        risk: RiskLimits::default(),
        kill: KillSwitchLimits::default(),
        short: true,
        exits: ExitPolicy::default(),
        snapshot_every: 0,
        cycles_per_append: 1,
    };
    let mut log = MemLog::new();
    let mut observer = ();
    {
        let mut runner = Runner::start(&mut log, &mut observer, setup.parts(), ticks[0].ts, 1).unwrap();
        feed(&mut runner, &ticks, (0, 30), &mut BTreeMap::new());
    }
    let mut other = setup.parts();
    other.provider = Box::new(SmaCross::new(3, 7, RuleSizing { size_pct: dec!(0.5), allow_short: true }));
    let from = ResumeFrom { range: RunRange { run_id: RUN, first: Seq::new(1), last: log.head().seq }, snapshot: None };
    match Runner::resume(&mut log, &mut observer, other, from, ticks[0].ts, 1) {
        Err(RunError::Diverged { run, seq, detail }) => {
            assert_eq!(run, RUN);
            // The parameters are in RunStarted: the first event already differs.
            assert_eq!(seq, Seq::new(1));
            assert!(detail.contains("RunStarted"), "{detail}");
        }
        Err(other) => panic!("expected a divergence, got {other}"),
        Ok(_) => panic!("expected a divergence, the resume went on"),
    }
}

/// A trip the operator makes while the run is down (under run 0) cancels the run's
/// working orders when it resumes, as a trip during the session does: the cancellations
/// are recorded before `RunResumed`, and a later resume re-executes them from the record.
/// A backtest's trip in between does not reach the run.
#[test]
fn a_trip_made_while_the_run_was_down_cancels_its_working_orders_on_resume() {
    let closes: Vec<u32> = (0..60).map(|i| 1_500 + ((i * 37) % 23) * 10).collect();
    let ticks = ticks(&closes);
    let setup = Setup {
        risk: RiskLimits::default(),
        kill: KillSwitchLimits::default(),
        short: true,
        exits: ExitPolicy::default(),
        snapshot_every: 5,
        cycles_per_append: 1,
    };
    let mut log = MemLog::new();
    let mut observer = ();
    // Run until an order is working (next-open fills: submitted on one bar, filled on the next).
    let mut stop_at = None;
    {
        let runner = Runner::start(&mut log, &mut observer, setup.parts(), ticks[0].ts, 1).unwrap();
        let mut runner = runner.with_snapshots(setup.snapshot_every);
        for (n, tick) in ticks.iter().enumerate() {
            runner.on_tick(tick, now(tick, n)).unwrap();
            if runner.engine().open_orders().next().is_some() {
                stop_at = Some(n);
                break;
            }
        }
    }
    assert!(stop_at.is_some(), "the strategy placed no order");
    // While it is down: a backtest's trip (run 2, stays inside it), then the operator's.
    let trip = |run: u64, cycle: u64, trigger: KillTrigger| EventDraft {
        run_id: RunId::new(run),
        cycle_id: ledger_core::ids::CycleId::new(cycle),
        causation_seq: None,
        ts_event: TimestampNs::from_nanos(1),
        ts_recorded: TimestampNs::from_nanos(1),
        payload: Payload::KillSwitchTripped(KillSwitchTripped {
            trigger,
            value: Decimal::ONE,
            limit: Decimal::ONE,
            reason: "test".into(),
        }),
    };
    log.append(&mut vec![trip(2, 3, KillTrigger::Drawdown)]).unwrap();
    log.append(&mut vec![trip(0, 0, KillTrigger::Command)]).unwrap();
    let resume = |log: &mut MemLog| {
        let from = resume_from(log);
        let mut observer = ();
        let (runner, resumed) =
            Runner::resume(log, &mut observer, setup.parts(), from, TimestampNs::from_nanos(2), 1).expect("resumes");
        let tripped = runner.engine().kill_switch_tripped();
        (resumed, tripped)
    };
    let (first, tripped) = resume(&mut log);
    assert!(tripped, "the operator's trip is in force");
    assert!(first.working_orders.is_empty(), "{first:?}");
    let kinds: Vec<&str> = {
        let mut all = Vec::new();
        visit_events(&log, Seq::new(1), &mut |e| {
            all.push(e.payload.kind());
            ControlFlow::Continue(())
        })
        .unwrap();
        all.into_iter().rev().take(2).collect()
    };
    assert_eq!(kinds, ["RunResumed", "OrderCanceled"], "the cancellation comes before RunResumed");
    // Killed again at once and resumed: the record re-executes as it was made.
    let (second, tripped) = resume(&mut log);
    assert!(tripped && second.working_orders.is_empty());
}
