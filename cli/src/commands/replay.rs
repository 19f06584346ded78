//! `ledger replay`: a backtest on historic data (`--data`), or a recorded run fed through
//! the pipeline again (`--run`), optionally checked event by event (`--verify`), or
//! replayed as a counterfactual (`--redecide`, `--risk-config`: see [`counterfactual`]).
//!
//! A backtest folds its report as its events are appended and prints it without
//! reading them back; with `--in-memory` nothing is stored at all. Both run on two
//! cores: the engine on one, encoding, chaining and storing on the other.

use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ledger_adapters::background::BackgroundLog;
use ledger_adapters::nats::{NatsLink, NatsOptions};
use ledger_adapters::sled_log::Durability;
use ledger_core::decision::DecisionProvider;
use ledger_core::event::RunMode;
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::{EventLog, LogError, MemLog, RecordSource};
use ledger_core::replay::{compare_runs, RecordedRun};
use ledger_projections::page::PageFold;
use ledger_projections::report::ReportFold;
use ledger_projections::runs::RunsFold;
use ledger_projections::{fold_log, Folds};

use crate::args::{ReplayArgs, StreamFlags};
use crate::commands::{counterfactual, report, run};
use crate::config::{RecordedSettings, Settings};
use crate::describe;
use crate::pipeline::{self, Session};
use crate::store::Ledger;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &ReplayArgs) -> Result<Outcome> {
    match args.run {
        Some(run) => replay_recorded(data_dir, RunId::new(run), args),
        None if args.verify => bail!("--verify needs --run ID (the run to reproduce)"),
        None => backtest(data_dir, &mut Settings::resolve(&args.session)?, args),
    }
}

fn backtest(data_dir: &Path, settings: &mut Settings, args: &ReplayArgs) -> Result<Outcome> {
    let data = pipeline::market_data(settings)?;
    let settings = &*settings;
    let cache = pipeline::llm_cache(settings)?;
    let provider = pipeline::provider(settings, cache.as_ref())?;
    let mut feed = data.feed;
    let mut ledger = match args.in_memory {
        true => None,
        false => Some(Ledger::open(data_dir, pipeline::durability(&settings.ledger))?),
    };
    let outbox = match (&args.nats, ledger.as_mut()) {
        (Some(url), Some(ledger)) => Some(run::start_outbox(ledger, url, &args.stream)?),
        _ => None,
    };
    let session = |run_id| Session {
        run_id,
        mode: RunMode::Replay,
        speed: 0.0,
        source: &data.source,
        instruments: data.instruments.clone(),
        parent: None,
        stop: None,
        kill_switch_tripped: false,
        resume: None,
        link: None,
        outbox: outbox.as_ref(),
    };
    let Some(ledger) = ledger else {
        let run_id = RunId::new(1);
        let mut report = ReportFold::new(run_id);
        let mut log = BackgroundLog::new(MemLog::head_only());
        // With --html, the page is folded live too: nothing is stored to read it back from.
        let mut page = args.html.as_ref().map(|_| PageFold::of_run(run_id));
        let mut folds = Folds::new().with(&mut report);
        if let Some(page) = page.as_mut() {
            folds = folds.with(page);
        }
        pipeline::execute(&mut log, &mut folds, settings, &mut feed, provider, &session(run_id))?;
        drop(folds);
        if let (Some(page), Some(path)) = (page, &args.html) {
            report::write_page(run_id, &page.finish(), path)?;
        }
        report::print(&report.report(), false)?;
        pipeline::check_llm_cache(cache.as_ref())?;
        return Ok(Outcome::Ok);
    };
    let (mut ledger, report) = record_backtest(ledger, settings, &mut feed, provider, &session)?;
    ledger.save_folds()?;
    if let Some(outbox) = outbox {
        run::finish_outbox(outbox, ledger.log.durable_seq());
    }
    if let Some(path) = &args.html {
        report::write_html(&ledger.log, &ledger.runs, RunId::new(report.report().run_id), path)?;
    }
    report::print(&report.report(), false)?;
    pipeline::check_llm_cache(cache.as_ref())?;
    Ok(Outcome::Ok)
}

/// Records a backtest as the ledger's next run: the cycles through the pipeline on a
/// writer thread, the ledger's folds (runs index, kill switch) fed as it goes. Returns
/// the ledger and the run's report fold.
///
/// # Errors
/// As [`pipeline::execute`]; a writer that failed.
pub fn record_backtest<'s>(
    ledger: Ledger,
    settings: &Settings,
    cycles: &mut dyn pipeline::Cycles,
    provider: Box<dyn ledger_core::decision::DecisionProvider>,
    session: &dyn Fn(RunId) -> Session<'s>,
) -> Result<(Ledger, ReportFold)> {
    let Ledger { log, mut runs, mut kill_switch, .. } = ledger;
    let run_id = runs.next_run_id();
    let mut report = ReportFold::new(run_id);
    let mut log = BackgroundLog::new(log);
    let mut folds = Folds::new().with(&mut runs).with(&mut kill_switch).with(&mut report);
    let result = pipeline::execute(&mut log, &mut folds, settings, cycles, provider, &session(run_id));
    drop(folds);
    let ledger = Ledger { log: log.into_inner()?, runs, kill_switch, snapshot_beyond_head: None };
    result?;
    Ok((ledger, report))
}

fn replay_recorded(data_dir: &Path, parent: RunId, args: &ReplayArgs) -> Result<Outcome> {
    let verify = args.verify;
    let (mut ledger, remote) = match &args.from_nats {
        Some(url) => (Ledger::open(data_dir, Durability::Strict)?, Some(read_stream(url, &args.stream)?)),
        None => (Ledger::open_existing(data_dir)?, None),
    };
    let outbox = match &args.nats {
        Some(url) => Some(run::start_outbox(&mut ledger, url, &args.stream)?),
        None => None,
    };
    let Ledger { mut log, mut runs, mut kill_switch, .. } = ledger;
    let reader: Box<dyn RecordSource> = match remote {
        Some(records) => Box::new(records),
        None => log.reader()?,
    };
    let original = match &args.from_nats {
        Some(url) => {
            let mut remote_runs = RunsFold::default();
            fold_log(&*reader, &mut Folds::new().with(&mut remote_runs))?;
            let Some(range) = remote_runs.get(parent).map(|r| r.range()) else {
                bail!("no run {parent} in the stream {} at {url}", args.stream.nats_stream);
            };
            range
        }
        None => match runs.get(parent).map(|r| r.range()) {
            Some(range) => range,
            None => bail!("no run {parent} in the ledger (see `ledger runs`)"),
        },
    };
    let (started, mut recorded, recorded_provider) = RecordedRun::open(&*reader, original)?;
    let recorded_settings = RecordedSettings::from_recorded(&started.config, &started.config_hash)?;
    let mut settings = Settings {
        account: recorded_settings.account.clone(),
        venue: recorded_settings.venue.clone(),
        risk: recorded_settings.risk.clone(),
        kill_switch: recorded_settings.kill_switch.clone(),
        exits: recorded_settings.exits.clone(),
        ..Settings::resolve(&Default::default())?
    };
    if let Some(file) = &args.risk_config {
        counterfactual::apply_risk_config(&mut settings, file)?;
    }
    let cache = match args.redecide {
        true => {
            counterfactual::choose_provider(&mut settings, &recorded_settings, &args.session)?;
            pipeline::llm_cache(&settings)?
        }
        false => None,
    };
    let provider: Box<dyn DecisionProvider> = match args.redecide {
        true => pipeline::provider(&settings, cache.as_ref())?,
        false => Box::new(recorded_provider),
    };
    let run_id = runs.next_run_id();
    let source = match &args.from_nats {
        Some(url) => format!("run {parent} of NATS stream {} at {}", args.stream.nats_stream, describe::safe(url)),
        None => format!("run {parent}"),
    };
    let change = (args.redecide || args.risk_config.is_some()).then(|| counterfactual::Change::of(args, &settings));
    let source = match &change {
        Some(change) => format!("{source} with {change}"),
        None => source,
    };
    let session = Session {
        run_id,
        mode: RunMode::Replay,
        speed: 0.0,
        source: &source,
        instruments: started.instruments.clone(),
        parent: Some(parent),
        stop: None,
        // The kill switch starts as it was when the original run started.
        kill_switch_tripped: started.kill_switch_tripped,
        resume: None,
        link: None,
        outbox: outbox.as_ref(),
    };
    let mut report = ReportFold::new(run_id);
    let mut folds = Folds::new().with(&mut runs).with(&mut kill_switch).with(&mut report);
    pipeline::execute(&mut log, &mut folds, &settings, &mut recorded, provider, &session)
        .with_context(|| format!("replaying run {parent}"))?;
    drop(folds);
    let replayed = runs.get(run_id).map(|r| r.range()).context("the replay's run is missing from the runs index")?;
    let mut ledger = Ledger { log, runs, kill_switch, snapshot_beyond_head: None };
    ledger.save_folds()?;
    if let Some(outbox) = outbox {
        run::finish_outbox(outbox, ledger.log.durable_seq());
    }
    pipeline::check_llm_cache(cache.as_ref())?;
    if let Some(path) = &args.html {
        report::write_html(&ledger.log, &ledger.runs, run_id, path)?;
    }
    if let Some(change) = &change {
        counterfactual::report(&*reader, original, replayed, &report, change)?;
        return Ok(Outcome::Ok);
    }
    if !verify {
        report::print(&report.report(), false)?;
        return Ok(Outcome::Ok);
    }
    match compare_runs(&*reader, original, replayed)? {
        None => {
            let derived = ledger.runs.get(parent).map_or(0, |r| r.event_count.saturating_sub(2));
            println!("ok: run {run_id} reproduces run {parent}: {derived} derived events identical");
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
                // Recorded values are stored text: escaped for the terminal.
                let (field, was, now) = (describe::safe(field), describe::safe(was), describe::safe(now));
                println!("  {field}: original {was}, replay {now}");
            }
            Ok(Outcome::CheckFailed)
        }
    }
}

/// Reads the whole stream at `url` into memory, checking its chain from seq 1.
///
/// # Errors
/// NATS unreachable, no such stream, or a message that does not check out (named by seq).
fn read_stream(url: &str, stream: &StreamFlags) -> Result<StreamRecords> {
    let options = NatsOptions::from_env(url, &stream.nats_stream, stream.nats_replicas);
    let link = NatsLink::connect(&options, false)?;
    let mut records = Vec::new();
    link.read_all(&mut |event| {
        records.push(event.record);
        Ok(())
    })?;
    tracing::info!(events = records.len(), url = %options.display_url(), "read the stream");
    Ok(StreamRecords { records })
}

/// Records read from a stream, from seq 1, as a [`RecordSource`].
pub struct StreamRecords {
    /// Record `i` is seq `i + 1`.
    records: Vec<Vec<u8>>,
}

impl RecordSource for StreamRecords {
    fn visit_records(&self, from: Seq, visit: &mut dyn FnMut(Seq, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        let start = from.get().max(1) - 1;
        for (index, record) in self.records.iter().enumerate().skip(start as usize) {
            if visit(Seq::new(index as u64 + 1), record).is_break() {
                break;
            }
        }
        Ok(())
    }
}
