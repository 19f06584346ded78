//! `ledger run`: paper trading on a played-back feed, with the same data and strategy
//! flags as `ledger replay`. Each cycle runs at the wall clock's time, recorded in its
//! events, so the run replays identically. Durable events are published on the
//! in-process bus (fills, rejections and kill-switch trips are logged as they happen).
//! Ctrl-C or SIGTERM stops after the current cycle and records `RunStopped { reason:
//! "interrupted" }`; a second signal stops at once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use ledger_adapters::bus::InProcessBus;
use ledger_core::event::{Payload, RunMode};
use ledger_projections::report::ReportFold;
use ledger_projections::Folds;

use crate::args::RunArgs;
use crate::commands::report;
use crate::config::Settings;
use crate::describe;
use crate::pipeline::{self, Session};
use crate::store::Ledger;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &RunArgs) -> Result<Outcome> {
    if !(args.speed.is_finite() && args.speed >= 0.0) {
        anyhow::bail!("--speed {}: must be finite and >= 0 (0 = as fast as possible, 1 = the data's pace)", args.speed);
    }
    let settings = Settings::resolve(&args.session)?;
    let data = pipeline::market_data(&settings)?;
    let provider = pipeline::provider(&settings)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // SIGINT, SIGTERM (what systemd and docker send) and SIGHUP stop after the current
    // cycle with `RunStopped`; a second signal stops at once (appends are atomic, so the
    // ledger still verifies; only what was not yet flushed is lost).
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    })
    .context("installing the signal handler")?;
    let mut ledger = Ledger::open(data_dir, pipeline::durability(&settings.ledger))?;
    let run_id = ledger.runs.next_run_id();
    let session = Session {
        run_id,
        mode: RunMode::Paper,
        speed: args.speed,
        source: &data.source,
        instruments: data.instruments.clone(),
        parent: None,
        stop: Some(&stop),
        kill_switch_tripped: ledger.kill_switch.is_tripped(),
    };
    // The in-process bus: a subscriber reports what a trader watches for as it happens.
    let mut bus = InProcessBus::new();
    let events = bus.subscribe();
    let watcher = std::thread::spawn(move || {
        for event in events {
            if matches!(
                event.payload,
                Payload::OrderFilled(_) | Payload::OrderRejected(_) | Payload::KillSwitchTripped(_)
            ) {
                tracing::info!(seq = %event.header.seq, "{} {}", event.payload.kind(), describe::summary(&event));
            }
        }
    });
    let mut report = ReportFold::new(run_id);
    let mut feed = data.feed.at_wall_clock();
    let Ledger { log, runs, kill_switch, .. } = &mut ledger;
    let mut folds = Folds::new().with(runs).with(kill_switch).with(&mut report);
    let result = pipeline::execute(log, &mut folds, &settings, &mut feed, provider, &session, Some(&mut bus));
    drop(folds);
    drop(bus);
    let _ = watcher.join(); // the watcher only logs; its end changes nothing
    result?;
    ledger.save_folds()?;
    report::print(&report.report(), false)?;
    Ok(Outcome::Ok)
}
