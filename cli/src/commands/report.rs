//! `ledger report`: the performance statistics of one run.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use ledger_core::event::Envelope;
use ledger_core::ids::RunId;
use ledger_projections::report::RunFold;

use crate::commands::replay::run_events;
use crate::describe;
use crate::store;
use crate::Outcome;

pub fn run(data_dir: &Path, run: u64, json: bool) -> Result<Outcome> {
    let log = store::open_existing(data_dir)?;
    let events = run_events(&log, RunId::new(run))?;
    print(&events, json)?;
    Ok(Outcome::Ok)
}

/// Folds `events` and prints the report, as a table or as JSON.
pub fn print(events: &[Envelope], json: bool) -> Result<()> {
    let mut fold = RunFold::default();
    for event in events {
        fold.apply(event);
    }
    let report = fold.report();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    let value = serde_json::to_value(&report)?;
    let mut table = describe::table(["metric", "value"]);
    if let serde_json::Value::Object(fields) = value {
        for (key, value) in fields.into_iter().filter(|(key, _)| key != "open_positions") {
            let shown = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            table.add_row([key, shown]);
        }
    }
    writeln!(out, "{table}")?;
    if !report.open_positions.is_empty() {
        let mut open = describe::table(["open position", "qty", "avg price", "mark", "unrealized P&L"]);
        for p in &report.open_positions {
            open.add_row([
                p.instrument.to_string(),
                p.qty.to_string(),
                p.avg_price.round_dp(8).to_string(),
                p.mark.to_string(),
                p.unrealized_pnl.to_string(),
            ]);
        }
        table = open;
    } else {
        return Ok(());
    }
    writeln!(out, "{table}")?;
    Ok(())
}
