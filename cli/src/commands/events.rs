//! `ledger events`: events as a readable table, or one JSON object per line.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{bail, Result};
use ledger_core::event::Envelope;
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::EventLog;

use crate::args::EventsArgs;
use crate::describe;
use crate::store;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &EventsArgs) -> Result<Outcome> {
    let log = store::open_existing(data_dir)?;
    let limit = args.limit.unwrap_or(usize::MAX);
    let from = Seq::new(args.from);
    let mut selected = Vec::new();
    let mut keep = |event: Envelope| {
        if event.header.seq >= from {
            selected.push(event);
        }
        if selected.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    match args.run {
        Some(run) => {
            let run = RunId::new(run);
            if log.runs().get(run).is_none() {
                bail!("no run {run} in the ledger (see `ledger runs`)");
            }
            log.visit_run(run, &mut keep)?
        }
        None => log.visit_events(from, &mut keep)?,
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    if args.json {
        for event in &selected {
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
        }
    } else {
        let mut table = describe::table(["seq", "run", "cycle", "ts_event", "kind", "summary", "hash"]);
        for event in &selected {
            let h = &event.header;
            table.add_row([
                h.seq.to_string(),
                h.run_id.to_string(),
                h.cycle_id.to_string(),
                h.ts_event.to_rfc3339(),
                event.payload.kind().to_string(),
                describe::summary(&event.payload),
                h.hash.short(),
            ]);
        }
        writeln!(out, "{table}")?;
    }
    out.flush()?;
    Ok(Outcome::Ok)
}
