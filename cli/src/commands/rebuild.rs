//! `ledger rebuild`: a run's account (cash, positions with quantity, average price and
//! mark, realized and unrealized P&L, fees, equity, peak and drawdown) rebuilt from the
//! run's latest session snapshot and the events after it (or, with `--from-scratch`,
//! from all its events), checked as they are read, in memory that does not grow with
//! the run. What a restart or an operator sees of a session after a crash.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};
use ledger_core::event::Envelope;
use ledger_core::ids::RunId;
use ledger_core::verify::{verify_range, Verdict};
use ledger_projections::portfolio::PortfolioFold;
use ledger_projections::Fold;
use serde_json::json;

use crate::args::RebuildArgs;
use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &RebuildArgs) -> Result<Outcome> {
    let ledger = Ledger::open_existing(data_dir)?;
    let run = match args.run {
        Some(run) => RunId::new(run),
        // The latest run that is a session (run 0 holds operator commands).
        None => match ledger.runs.iter().filter(|r| r.mode.is_some()).map(|r| r.run_id).max() {
            Some(run) => run,
            None => bail!("the ledger holds no run yet"),
        },
    };
    let Some(range) = ledger.runs.get(run).map(|r| r.range()) else {
        bail!("no run {run} in the ledger (see `ledger runs`)");
    };
    let snapshot = match args.from_scratch {
        true => None,
        false => ledger.session_state(run)?.filter(|s| s.covers >= range.first && s.covers <= range.last),
    };
    let (mut fold, start) = match &snapshot {
        Some(state) => {
            (PortfolioFold::resume(run, state.engine.portfolio().clone(), state.covers), state.covers.next())
        }
        None => (PortfolioFold::new(run), range.first),
    };
    // Checked as `verify` checks, on its worker threads: hashes and decoding in parallel.
    let mut apply = |event: &Envelope| fold.apply(&event.as_ref());
    if let Verdict::Broken(failure) = verify_range(&ledger.log, start, range.last, Some(&mut apply))? {
        bail!(
            "the record at seq {} of run {run}: {} (`ledger verify` checks the whole ledger)",
            failure.seq,
            failure.problem
        );
    }
    let snapshot_seq = snapshot.map_or(0, |s| s.covers.get());
    let p = fold.portfolio();
    let mut out = std::io::stdout().lock();
    if args.json {
        let positions: Vec<_> = p
            .positions
            .iter()
            .map(|(id, pos)| {
                json!({"instrument": id, "qty": pos.qty.to_string(), "avg_price": pos.avg_price.to_string(),
                       "mark": pos.mark.to_string(), "unrealized_pnl": pos.unrealized().to_string()})
            })
            .collect();
        let value = json!({
            "run_id": run.get(), "covers_seq": range.last.get(), "snapshot_seq": snapshot_seq,
            "cash": p.cash.to_string(),
            "positions": positions, "realized_pnl": p.realized_pnl.to_string(),
            "unrealized_pnl": p.unrealized_pnl().to_string(), "fees": p.fees.to_string(),
            "equity": p.equity().to_string(), "peak_equity": p.peak_equity.to_string(),
            "max_drawdown": p.max_drawdown.to_string(),
        });
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    let mut table = describe::table(["account", "value"]);
    let rows = [
        ("run", run.to_string()),
        ("through seq", range.last.to_string()),
        (
            "from",
            if snapshot_seq == 0 { "the run's events".to_string() } else { format!("snapshot at seq {snapshot_seq}") },
        ),
        ("cash", p.cash.round_dp(2).to_string()),
        ("realized P&L", p.realized_pnl.round_dp(2).to_string()),
        ("unrealized P&L", p.unrealized_pnl().round_dp(2).to_string()),
        ("fees", p.fees.round_dp(2).to_string()),
        ("equity", p.equity().round_dp(2).to_string()),
        ("peak equity", p.peak_equity.round_dp(2).to_string()),
        ("max drawdown", p.max_drawdown.round_dp(6).to_string()),
    ];
    for (name, value) in rows {
        table.add_row([name.to_string(), value]);
    }
    writeln!(out, "{table}")?;
    if !p.positions.is_empty() {
        let mut positions = describe::table(["position", "qty", "avg price", "mark", "unrealized P&L"]);
        for (id, pos) in &p.positions {
            positions.add_row([
                describe::safe(id.as_str()).into_owned(),
                pos.qty.to_string(),
                pos.avg_price.round_dp(8).to_string(),
                pos.mark.to_string(),
                pos.unrealized().round_dp(2).to_string(),
            ]);
        }
        writeln!(out, "{positions}")?;
    }
    Ok(Outcome::Ok)
}
