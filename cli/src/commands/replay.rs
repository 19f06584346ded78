//! `ledger replay`: a backtest on historic data (`--data`), or a recorded run fed through
//! the pipeline again (`--run`), optionally checked event by event (`--verify`).

use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ledger_adapters::background::BackgroundLog;
use ledger_core::feed::Tick;
use ledger_core::event::{Envelope, Payload};
use ledger_core::ids::RunId;
use ledger_core::log::{EventLog, MemLog};
use ledger_core::replay::{compare_runs, RecordedProvider, Recording};

use crate::args::ReplayArgs;
use crate::commands::report;
use crate::config::Config;
use crate::pipeline::{self, Session};
use crate::store;
use crate::Outcome;

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
    if let Some(offset) = &args.utc_offset {
        config.data.utc_offset = Some(offset.clone());
    }
    if let Some(cash) = args.cash {
        config.account.starting_cash = cash;
    }
    match args.run {
        Some(run) => replay_recorded(data_dir, RunId::new(run), args.verify),
        None if args.verify => bail!("--verify needs --run ID (the run to reproduce)"),
        None => backtest(data_dir, &config, args.in_memory, args.repeat.max(1)),
    }
}

fn backtest(data_dir: &Path, config: &Config, in_memory: bool, repeat: usize) -> Result<Outcome> {
    let (ticks, source) = pipeline::ticks(config)?;
    let ticks = repeated(ticks, repeat);
    let provider = pipeline::provider(config)?;
    // A backtest runs as fast as it can: the ledger writes on a second thread while the
    // engine computes the next cycles.
    if in_memory {
        let mut log = BackgroundLog::new(MemLog::new());
        let run = pipeline::execute(&mut log, config, &ticks, provider, &Session::backtest(&source), None)?;
        return print_report(&log, run, false);
    }
    let mut log = BackgroundLog::new(store::open_or_create(data_dir, pipeline::durability(&config.ledger)?)?);
    let run = pipeline::execute(&mut log, config, &ticks, provider, &Session::backtest(&source), None)?;
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
        out.extend(
            ticks.iter().map(|t| Tick {
                ts: ledger_core::time::TimestampNs::from_nanos(t.ts.nanos() + copy * span),
                ..t.clone()
            }),
        );
    }
    out
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

fn replay_recorded(data_dir: &Path, parent: RunId, verify: bool) -> Result<Outcome> {
    let mut log = store::open_existing(data_dir)?;
    let original = run_events(&log, parent)?;
    let recording = Recording::from_events(&original);
    let replay_config = original_config(&original)?;
    let provider = Box::new(RecordedProvider::new(recording.info.clone(), recording.answers.clone()));
    let source = format!("run {parent}");
    // The kill switch starts as it was when the original run started.
    let kill_switch_tripped = match original.first().map(|e| &e.payload) {
        Some(Payload::RunStarted(started)) => started.kill_switch_tripped,
        _ => false,
    };
    let session = Session { parent: Some(parent), kill_switch_tripped, ..Session::backtest(&source) };
    let run = pipeline::execute(&mut log, &replay_config, &recording.ticks, provider, &session, None)
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

/// The configuration the original run recorded (so the same venue, risk and account
/// settings apply), checked against its hash.
fn original_config(original: &[Envelope]) -> Result<Config> {
    match original.first().map(|e| &e.payload) {
        Some(Payload::RunStarted(started)) => Config::from_recorded(&started.config, &started.config_hash),
        _ => bail!("the run has no RunStarted event to take its configuration from"),
    }
}
