//! `ledger replay`: a backtest on historic data (`--data`), or a recorded run fed through
//! the pipeline again (`--run`), optionally checked event by event (`--verify`).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::decision::DecisionProvider;
use ledger_core::engine::{Engine, RunSpec, Tick};
use ledger_core::event::{Envelope, Payload, RunMode};
use ledger_core::ids::RunId;
use ledger_core::log::{EventLog, MemLog};
use ledger_core::replay::{compare_runs, RecordedProvider, Recording};
use ledger_core::risk::{KillSwitch, RiskEngine};
use ledger_core::time::SimulatedClock;
use ledger_core::venue::PaperVenue;

use crate::args::ReplayArgs;
use crate::commands::report;
use crate::config::Config;
use crate::pipeline;
use crate::store;
use crate::Outcome;

/// Ticks above which a progress bar is worth drawing (on a terminal only).
const PROGRESS_MIN_TICKS: usize = 200_000;

pub fn run(data_dir: &Path, args: &ReplayArgs) -> Result<Outcome> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(strategy) = &args.strategy {
        config.strategy.name = strategy.clone();
    }
    config.set_params(&args.param)?;
    if let Some(data) = &args.data {
        config.data.file = Some(data.clone());
    }
    if let Some(instrument) = &args.instrument {
        config.data.instrument = Some(instrument.clone());
    }
    config.data.sort |= args.sort;
    if let Some(cash) = args.cash {
        config.account.starting_cash = cash;
    }
    match args.run {
        Some(run) => replay_recorded(data_dir, &config, RunId::new(run), args.verify),
        None if args.verify => bail!("--verify needs --run ID (the run to reproduce)"),
        None => backtest(data_dir, &config, args.in_memory, args.repeat.max(1)),
    }
}

fn backtest(data_dir: &Path, config: &Config, in_memory: bool, repeat: usize) -> Result<Outcome> {
    let (ticks, source) = pipeline::ticks(config)?;
    let ticks = repeated(ticks, repeat);
    let provider = pipeline::provider(config)?;
    if in_memory {
        let mut log = MemLog::new();
        let run = execute(&mut log, config, &ticks, provider, &source, None)?;
        return print_report(&log, run, false);
    }
    let mut log = store::open_or_create(data_dir, pipeline::durability(&config.ledger)?)?;
    let run = execute(&mut log, config, &ticks, provider, &source, None)?;
    print_report(&log, run, false)
}

/// Repeats a tick series `times` times, shifting each copy past the previous one, for
/// throughput measurements on more bars than a file holds.
fn repeated(ticks: Vec<Tick>, times: usize) -> Vec<Tick> {
    if times <= 1 || ticks.is_empty() {
        return ticks;
    }
    let span = ticks[ticks.len() - 1].ts.nanos() - ticks[0].ts.nanos() + 60_000_000_000;
    let mut out = Vec::with_capacity(ticks.len() * times);
    for copy in 0..times as i64 {
        out.extend(ticks.iter().map(|t| Tick {
            ts: ledger_core::time::TimestampNs::from_nanos(t.ts.nanos() + copy * span),
            ..t.clone()
        }));
    }
    out
}

/// Runs `ticks` through a fresh engine on `log`; returns the new run's id.
pub fn execute<L: EventLog>(
    log: &mut L,
    config: &Config,
    ticks: &[Tick],
    provider: Box<dyn DecisionProvider>,
    source: &str,
    parent: Option<RunId>,
) -> Result<RunId> {
    let run_id = log.runs().next_run_id();
    let clock = SimulatedClock::new(ticks.first().map(|t| t.ts).unwrap_or_default());
    let spec = RunSpec {
        run_id,
        mode: RunMode::Replay,
        config_hash: config.hash(),
        software_version: Arc::from(env!("CARGO_PKG_VERSION")),
        instruments: ticks
            .first()
            .map(|t| vec![t.instrument])
            .unwrap_or_default(),
        data_source: Arc::from(source),
        parent_run: parent,
        starting_cash: config.account.starting_cash,
        cycles_per_append: config.ledger.cycles_per_append,
        kill_switch_tripped: false,
    };
    let venue = Box::new(PaperVenue::new(config.venue.clone()));
    let risk = RiskEngine::new(config.risk.clone());
    let kill = KillSwitch::new(config.kill_switch.clone(), false);
    let mut engine = Engine::start(log, &clock, spec, provider, risk, kill, venue)?;
    let progress = progress_bar(ticks.len());
    for (i, tick) in ticks.iter().enumerate() {
        clock.set(tick.ts);
        engine.on_tick(tick)?;
        if i % 4096 == 0 {
            progress.set_position(i as u64);
        }
    }
    progress.finish_and_clear();
    engine.stop("end of data")?;
    tracing::info!(run = %run_id, ticks = ticks.len(), "replay finished");
    Ok(run_id)
}

fn progress_bar(len: usize) -> ProgressBar {
    if len < PROGRESS_MIN_TICKS {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} replay [{bar:40}] {pos}/{len} ticks ({per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

fn print_report(log: &dyn EventLog, run: RunId, json: bool) -> Result<Outcome> {
    let events = run_events(log, run)?;
    report::print(&events, json)?;
    Ok(Outcome::Ok)
}

/// Every event of `run`, in order.
pub fn run_events(log: &dyn EventLog, run: RunId) -> Result<Vec<Envelope>> {
    if log.runs().get(run).is_none() {
        bail!("no run {run} in the ledger (see `ledger runs`)");
    }
    let mut events = Vec::new();
    log.visit_run(run, &mut |e| {
        events.push(e);
        ControlFlow::Continue(())
    })?;
    Ok(events)
}

fn replay_recorded(
    data_dir: &Path,
    config: &Config,
    parent: RunId,
    verify: bool,
) -> Result<Outcome> {
    let mut log = store::open_existing(data_dir)?;
    let original = run_events(&log, parent)?;
    let recording = Recording::from_events(&original);
    let replay_config = original_config(config, &original);
    let provider = Box::new(RecordedProvider::new(
        recording.info.clone(),
        recording.answers.clone(),
    ));
    let source = format!("run {parent}");
    let run = execute(
        &mut log,
        &replay_config,
        &recording.ticks,
        provider,
        &source,
        Some(parent),
    )
    .with_context(|| format!("replaying run {parent}"))?;
    let replayed = run_events(&log, run)?;
    if !verify {
        report::print(&replayed, false)?;
        return Ok(Outcome::Ok);
    }
    match compare_runs(&original, &replayed) {
        None => {
            let derived = original.len().saturating_sub(2);
            println!("ok: run {run} reproduces run {parent}: {derived} derived events identical");
            Ok(Outcome::Ok)
        }
        Some(d) => {
            println!(
                "DIVERGED at cycle {} (original seq {}, replay seq {}):",
                d.cycle,
                d.original_seq.map_or("-".into(), |s| s.to_string()),
                d.replayed_seq.map_or("-".into(), |s| s.to_string())
            );
            for (field, was, now) in &d.fields {
                println!("  {field}: original {was}, replay {now}");
            }
            Ok(Outcome::CheckFailed)
        }
    }
}

/// The configuration to replay with: the given one, whose hash must match the original
/// run's (so the same venue and risk settings apply), or a warning if it does not.
fn original_config(config: &Config, original: &[Envelope]) -> Config {
    if let Some(Payload::RunStarted(started)) = original.first().map(|e| &e.payload) {
        if started.config_hash != config.hash() {
            tracing::warn!(
                "the configuration differs from the original run's (config hash {} vs {}): pass the same --config to reproduce it",
                config.hash().short(),
                started.config_hash.short()
            );
        }
        let mut config = config.clone();
        config.account.starting_cash = started.starting_cash;
        return config;
    }
    config.clone()
}
