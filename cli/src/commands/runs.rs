//! `ledger runs`: one row per run from the runs index (stop reasons escaped for the
//! terminal: they are stored text). While a session runs, the index it last published.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use ledger_projections::runs::RunSummary;

use crate::commands::{access, Access};
use crate::describe;
use crate::Outcome;

pub fn run(data_dir: &Path) -> Result<Outcome> {
    let table = match access(data_dir)? {
        Access::Session(mut session) => table(session.runs()?.iter()),
        Access::Ledger(ledger) => table(ledger.runs.iter()),
    };
    writeln!(std::io::stdout(), "{table}")?;
    Ok(Outcome::Ok)
}

fn table<'a>(runs: impl Iterator<Item = &'a RunSummary>) -> comfy_table::Table {
    let mut table = describe::table(["run", "mode", "first seq", "last seq", "events", "started", "stopped"]);
    for info in runs {
        table.add_row([
            info.run_id.to_string(),
            info.mode.map_or_else(|| "operator".to_string(), |m| format!("{m:?}")),
            info.first_seq.to_string(),
            info.last_seq.to_string(),
            info.event_count.to_string(),
            info.started.to_rfc3339(),
            match (&info.stopped, &info.stop_reason) {
                (Some(at), Some(reason)) => format!("{} ({})", at.to_rfc3339(), describe::safe(reason)),
                _ => "-".to_string(),
            },
        ]);
    }
    table
}
