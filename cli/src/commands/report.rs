//! `ledger report`: the performance statistics of one run, folded from its events as
//! they stream from the ledger (memory does not grow with the run).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};
use ledger_core::ids::RunId;
use ledger_projections::fold_range;
use ledger_projections::report::{Report, ReportFold};

use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

pub fn run(data_dir: &Path, run: u64, json: bool) -> Result<Outcome> {
    let ledger = Ledger::open_existing(data_dir)?;
    let run = RunId::new(run);
    let Some(range) = ledger.runs.get(run).map(|r| r.range()) else {
        bail!("no run {run} in the ledger (see `ledger runs`)");
    };
    let mut fold = ReportFold::new(run);
    fold_range(&ledger.log, range.first, range.last, &mut fold)?;
    print(&fold.report(), json)?;
    Ok(Outcome::Ok)
}

/// Prints `report` as a table (its text escaped for the terminal) or as JSON (exact).
pub fn print(report: &Report, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    let value = serde_json::to_value(report)?;
    let mut table = describe::table(["metric", "value"]);
    if let serde_json::Value::Object(fields) = value {
        for (key, value) in fields.into_iter().filter(|(key, _)| key != "open_positions") {
            let shown = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            table.add_row([describe::safe(&key).into_owned(), describe::safe(&shown).into_owned()]);
        }
    }
    writeln!(out, "{table}")?;
    if report.open_positions.is_empty() {
        return Ok(());
    }
    let mut open = describe::table(["open position", "qty", "avg price", "mark", "unrealized P&L"]);
    for p in &report.open_positions {
        open.add_row([
            describe::safe(p.instrument.as_str()).into_owned(),
            p.qty.to_string(),
            p.avg_price.round_dp(8).to_string(),
            p.mark.to_string(),
            p.unrealized_pnl.to_string(),
        ]);
    }
    writeln!(out, "{open}")?;
    Ok(())
}
