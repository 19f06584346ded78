//! `ledger publish`: backfill a ledger into its NATS stream. The stream is a replica of
//! the ledger from seq 1, so publishing goes on from where the stream is (asked, and
//! checked by hash): run twice, it adds nothing.

use std::path::Path;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_adapters::nats::{NatsLink, NatsOptions};
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::EventLog;

use crate::args::PublishArgs;
use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &PublishArgs) -> Result<Outcome> {
    let mut ledger = Ledger::open_existing(data_dir)?;
    let through = match args.run {
        None => ledger.log.head().seq,
        Some(run) => match ledger.runs.get(RunId::new(run)) {
            Some(info) => info.last_seq,
            None => bail!("no run {run} in the ledger (see `ledger runs`)"),
        },
    };
    let options = NatsOptions::from_env(&args.nats, &args.stream.nats_stream, args.stream.nats_replicas);
    let ledger_id = ledger.log.ledger_id()?;
    let link = NatsLink::connect(&options, false)?;
    link.ensure_stream()?;
    let reader = ledger.log.reader()?;
    let position = link.position(&ledger_id, &*reader)?;
    let mark = ledger.log.outbox_mark();
    let (url, stream) = (link.url().to_string(), link.stream_name().to_string());
    if position >= through {
        mark.record(position)?;
        println!("nothing to publish: stream {stream} at {url} holds seq 1..={position} of ledger {ledger_id}");
        return Ok(Outcome::Ok);
    }
    let bar = ProgressBar::new(through.get() - position.get());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, {eta})") {
        bar.set_style(style);
    }
    let started = std::time::Instant::now();
    let result = link.publish_range(&ledger_id, &*reader, position.next(), through, &mut |seq: Seq| {
        bar.set_position(seq.get() - position.get());
        if let Err(error) = mark.record(seq) {
            tracing::warn!(%error, "recording the acknowledged seq {seq} in the ledger failed");
        }
    });
    bar.finish_and_clear();
    let last = result?;
    let seconds = started.elapsed().as_secs_f64();
    let count = last.get() - position.get();
    println!(
        "published seq {}..={last} ({count} events, {:.0} events/s) to stream {} at {}; it holds seq 1..={last} of ledger {ledger_id}",
        position.next(),
        count as f64 / seconds.max(1e-9),
        describe::safe(&stream),
        describe::safe(&url)
    );
    Ok(Outcome::Ok)
}
