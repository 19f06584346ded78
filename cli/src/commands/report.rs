//! `ledger report`: the performance statistics of one run, folded from its events as
//! they stream from the ledger (memory does not grow with the run).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ledger_core::ids::RunId;
use ledger_core::log::RecordSource;
use ledger_projections::counterfactual::{self, CycleOutcomes};
use ledger_projections::decisions::DecisionAt;
use ledger_projections::page::{Page, PageFold};
use ledger_projections::report::{Report, ReportFold};
use ledger_projections::runs::RunsFold;
use ledger_projections::{fold_range, Folds};

use crate::args::ReportArgs;
use crate::describe;
use crate::html;
use crate::store::Ledger;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &ReportArgs) -> Result<Outcome> {
    let ledger = Ledger::open_existing(data_dir)?;
    if !args.compare.is_empty() {
        return compare(&ledger, &args.compare, args.html.as_deref());
    }
    let run = RunId::new(args.run.context("--run ID: the run to report")?);
    let Some(range) = ledger.runs.get(run).map(|r| r.range()) else {
        bail!("no run {run} in the ledger (see `ledger runs`)");
    };
    if let Some(path) = &args.html {
        let page = write_html(&ledger.log, &ledger.runs, run, path)?;
        print(&page.report, args.json)?;
        return Ok(Outcome::Ok);
    }
    let mut fold = ReportFold::new(run);
    fold_range(&ledger.log, range.first, range.last, &mut fold)?;
    print(&fold.report(), args.json)?;
    Ok(Outcome::Ok)
}

/// Folds run `run`'s page from `source` (its range from `runs`).
///
/// # Errors
/// No such run; a record that does not read back.
pub fn page(source: &dyn RecordSource, runs: &RunsFold, run: RunId) -> Result<Page> {
    let Some(range) = runs.get(run).map(|r| r.range()) else {
        bail!("no run {run} in the ledger (see `ledger runs`)");
    };
    let mut fold = PageFold::of_run(run);
    fold_range(source, range.first, range.last, &mut fold)?;
    Ok(fold.finish())
}

/// Writes run `run`'s visual report to `path` (saying so on stderr) and returns its page.
///
/// # Errors
/// As [`page`]; the file cannot be written.
pub fn write_html(source: &dyn RecordSource, runs: &RunsFold, run: RunId, path: &Path) -> Result<Page> {
    let page = page(source, runs, run)?;
    write_page(run, &page, path)?;
    Ok(page)
}

/// Writes `page` (run `run`'s) to `path` as the visual report, saying so on stderr.
///
/// # Errors
/// The file cannot be written.
pub fn write_page(run: RunId, page: &Page, path: &Path) -> Result<()> {
    let text = html::run_page(run.get(), page)?;
    html::write(path, &text)?;
    eprintln!("visual report of run {run}: {} ({} bytes)", describe::path(path), text.len());
    Ok(())
}

/// `ledger report --compare A B ...`: the runs' pages side by side, and where each run's
/// decisions first differ from the first run's.
fn compare(ledger: &Ledger, runs: &[u64], path: Option<&Path>) -> Result<Outcome> {
    let path = path.context("--compare writes a page: add --html FILE")?;
    let mut trails = Vec::new();
    let mut compared = Vec::new();
    for &id in runs {
        let run = RunId::new(id);
        let Some(range) = ledger.runs.get(run).map(|r| r.range()) else {
            bail!("no run {run} in the ledger (see `ledger runs`)");
        };
        // One pass for the run's page and its cycles' outcomes.
        let (mut fold, mut outcomes) = (PageFold::of_run(run), CycleOutcomes::new(run));
        fold_range(&ledger.log, range.first, range.last, &mut Folds::new().with(&mut fold).with(&mut outcomes))?;
        trails.push(outcomes);
        compared.push(html::CompareRun { run: id, page: fold.finish(), differs: None });
    }
    for i in 1..compared.len() {
        let Some(cycle) = counterfactual::compare(&trails[0], &trails[i]).first_decision else { continue };
        let shown = |id: u64| -> Result<_> {
            let run = RunId::new(id);
            let range = ledger.runs.get(run).map(|r| r.range()).context("the run left the index")?;
            let mut at = DecisionAt::new(run, cycle);
            fold_range(&ledger.log, range.first, range.last, &mut at)?;
            Ok(at.shown)
        };
        compared[i].differs = Some((cycle, shown(compared[i].run)?, shown(compared[0].run)?));
    }
    let text = html::compare_page(&compared)?;
    html::write(path, &text)?;
    eprintln!(
        "runs {} compared: {} ({} bytes)",
        runs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
        describe::path(path),
        text.len()
    );
    Ok(Outcome::Ok)
}

/// Prints `report` as a table (its text escaped for the terminal), labelled with
/// backtesting.py's names, or as JSON (exact; snake-case keys, money as strings, `null`
/// where a statistic is undefined).
pub fn print(report: &Report, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut table = describe::table(["metric", "value"]);
    for (label, value) in rows(report) {
        table.add_row([label.to_string(), describe::safe(&value).into_owned()]);
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

/// The table's rows: backtesting.py's names and order (`_stats.compute_stats`), with
/// this report's own statistics beside the ones they differ from.
pub(crate) fn rows(r: &Report) -> Vec<(&'static str, String)> {
    let money = |d: &rust_decimal::Decimal| d.to_string();
    vec![
        ("Start", r.start.clone()),
        ("End", r.end.clone()),
        ("Duration", timedelta(r.duration_days)),
        ("Ticks", r.ticks.to_string()),
        ("Exposure Time [%]", number(r.exposure_time_pct)),
        ("Equity Start [$]", money(&r.equity_start)),
        ("Equity Final [$]", money(&r.equity_final)),
        ("Equity Peak [$]", money(&r.equity_peak)),
        ("Cash [$]", money(&r.cash)),
        ("Commissions [$]", money(&r.commissions)),
        ("Total Fees [$]", money(&r.total_fees)),
        ("Return [%]", number(r.return_pct)),
        ("Buy & Hold Return [%]", number(r.buy_and_hold_return_pct)),
        ("Return (Ann.) [%]", number(r.return_ann_pct)),
        ("Volatility (Ann.) [%]", number(r.volatility_ann_pct)),
        ("CAGR [%]", number(r.cagr_pct)),
        ("Sharpe Ratio", number(r.sharpe_ratio)),
        ("Sortino Ratio", number(r.sortino_ratio)),
        ("Calmar Ratio", number(r.calmar_ratio)),
        ("Alpha [%]", number(r.alpha_pct)),
        ("Beta", number(r.beta)),
        ("Max. Drawdown [%]", number(r.max_drawdown_pct)),
        ("Avg. Drawdown [%]", number(r.avg_drawdown_pct)),
        ("Max. Drawdown Duration", timedelta(r.max_drawdown_duration_days)),
        ("Avg. Drawdown Duration", timedelta(r.avg_drawdown_duration_days)),
        ("# Trades", r.trades.to_string()),
        ("Win Rate [%]", number(r.win_rate_pct)),
        ("Best Trade [%]", number(r.best_trade_pct)),
        ("Worst Trade [%]", number(r.worst_trade_pct)),
        ("Avg. Trade [%]", number(r.avg_trade_pct)),
        ("Max. Trade Duration", timedelta(r.max_trade_duration_days)),
        ("Avg. Trade Duration", timedelta(r.avg_trade_duration_days)),
        ("Profit Factor", number(r.profit_factor)),
        ("Profit Factor (P&L)", number(r.profit_factor_pnl)),
        ("Expectancy [%]", number(r.expectancy_pct)),
        ("Avg. Trade P&L [$]", r.avg_trade_pnl.as_ref().map_or_else(|| "NaN".to_string(), money)),
        ("SQN", number(r.sqn)),
        ("Kelly Criterion", number(r.kelly_criterion)),
        ("Periods per Year", number(r.periods_per_year)),
    ]
}

/// A statistic to 5 decimal places (pandas' display precision in backtesting.py's
/// table), trailing zeros dropped; `NaN`, `inf`, `-inf` as such.
pub(crate) fn number(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let text = format!("{x:.5}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// A duration in days as pandas prints a `Timedelta`: `584 days 00:00:00`,
/// `0 days 06:35:00` (fractions of a second, if any, to the microsecond).
fn timedelta(days: f64) -> String {
    if !days.is_finite() {
        return "NaN".into();
    }
    let micros = (days * 86_400_000_000.0).round() as i64;
    let (whole_days, rest) = (micros.div_euclid(86_400_000_000), micros.rem_euclid(86_400_000_000));
    let (h, m, s, us) = (rest / 3_600_000_000, rest / 60_000_000 % 60, rest / 1_000_000 % 60, rest % 1_000_000);
    if us == 0 {
        format!("{whole_days} days {h:02}:{m:02}:{s:02}")
    } else {
        format!("{whole_days} days {h:02}:{m:02}:{s:02}.{us:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_read_as_backtesting_py_prints_them() {
        // TC0: 5 places, trailing zeros dropped; undefined and infinite by name.
        assert_eq!(number(45.667), "45.667");
        assert_eq!(number(0.123456789), "0.12346");
        assert_eq!((number(f64::NAN), number(f64::INFINITY), number(-0.0)), ("NaN".into(), "inf".into(), "0".into()));
        // TC1: durations as Timedeltas.
        assert_eq!(timedelta(584.0), "584 days 00:00:00");
        assert_eq!(timedelta(0.25 + 1.0 / 1440.0), "0 days 06:01:00");
        assert_eq!(timedelta(f64::NAN), "NaN");
    }
}
