//! `ledger events`: events as a readable table, or one JSON object per line, streamed
//! from the ledger as they are read (tables are printed in blocks of
//! [`TABLE_ROWS`] rows, so memory does not grow with the output).

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{bail, Result};
use ledger_core::event::Envelope;
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::visit_events;

use crate::args::EventsArgs;
use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

/// Rows per printed table block.
const TABLE_ROWS: usize = 1000;

pub fn run(data_dir: &Path, args: &EventsArgs) -> Result<Outcome> {
    let ledger = Ledger::open_existing(data_dir)?;
    let limit = args.limit.unwrap_or(usize::MAX);
    let (run, from, last) = match args.run {
        Some(run) => {
            let run = RunId::new(run);
            let Some(info) = ledger.runs.get(run) else {
                bail!("no run {run} in the ledger (see `ledger runs`)");
            };
            (Some(run), info.first_seq.max(Seq::new(args.from)), info.last_seq)
        }
        None => (None, Seq::new(args.from), Seq::new(u64::MAX)),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut rows: Vec<Envelope> = Vec::new();
    let mut shown = 0usize;
    let mut failure = None;
    if limit > 0 {
        visit_events(&ledger.log, from, &mut |event| {
            if event.header.seq > last {
                return ControlFlow::Break(());
            }
            if run.is_some_and(|r| r != event.header.run_id) {
                return ControlFlow::Continue(());
            }
            let written = if args.json {
                serde_json::to_writer(&mut out, &event)
                    .map_err(anyhow::Error::from)
                    .and_then(|()| Ok(out.write_all(b"\n")?))
            } else {
                rows.push(event);
                if rows.len() >= TABLE_ROWS {
                    write_table(&mut out, &mut rows)
                } else {
                    Ok(())
                }
            };
            if let Err(error) = written {
                failure = Some(error);
                return ControlFlow::Break(());
            }
            shown += 1;
            if shown >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
    }
    if let Some(error) = failure {
        return Err(error);
    }
    if !args.json && (!rows.is_empty() || shown == 0) {
        write_table(&mut out, &mut rows)?;
    }
    out.flush()?;
    Ok(Outcome::Ok)
}

/// Prints `rows` as one table and empties it.
fn write_table(out: &mut impl Write, rows: &mut Vec<Envelope>) -> Result<()> {
    let mut table = describe::table(["seq", "run", "cycle", "ts_event", "kind", "summary", "hash"]);
    for event in rows.drain(..) {
        let h = &event.header;
        table.add_row([
            h.seq.to_string(),
            h.run_id.to_string(),
            h.cycle_id.to_string(),
            h.ts_event.to_rfc3339(),
            event.payload.kind().to_string(),
            describe::summary(&event),
            h.hash.short(),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
