//! `ledger run`: paper trading on a played-back feed. Durable events are published on the
//! in-process bus (fills, rejections and kill-switch trips are logged as they happen).
//! Ctrl-C stops after the current cycle and records `RunStopped { reason: "interrupted" }`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use ledger_adapters::bus::InProcessBus;
use ledger_core::event::{Payload, RunMode};

use crate::args::RunArgs;
use crate::commands::replay::run_events;
use crate::commands::report;
use crate::config::Config;
use crate::describe;
use crate::pipeline::{self, Session};
use crate::store;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &RunArgs) -> Result<Outcome> {
    if !(args.speed.is_finite() && args.speed >= 0.0) {
        anyhow::bail!("--speed {} must be 0 (as fast as possible) or a positive factor", args.speed);
    }
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(data) = &args.data {
        config.data.file = Some(data.clone());
    }
    let (ticks, source) = pipeline::ticks(&config)?;
    let provider = pipeline::provider(&config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)).context("installing the Ctrl-C handler")?;
    let mut log = store::open_or_create(data_dir, pipeline::durability(&config.ledger)?)?;
    let kill_switch_tripped = pipeline::kill_switch_tripped(&log)?;
    let session = Session {
        kill_switch_tripped,
        mode: RunMode::Paper,
        speed: args.speed,
        source: &source,
        parent: None,
        stop: Some(&stop),
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
                tracing::info!(seq = %event.header.seq, "{} {}", event.payload.kind(), describe::summary(&event.payload));
            }
        }
    });
    let run = pipeline::execute(&mut log, &config, &ticks, provider, &session, Some(&mut bus));
    drop(bus);
    let _ = watcher.join(); // the watcher only logs; its end changes nothing
    let run = run?;
    report::print(&run_events(&log, run)?, false)?;
    Ok(Outcome::Ok)
}
