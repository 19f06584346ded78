//! `ledger sweep`: a rule strategy backtested over a grid of parameters, every
//! combination on its own core, in memory (nothing recorded unless `--record`), ranked
//! by a statistic of the report and written out as CSV.
//!
//! The data file is read once and shared; each backtest is the same engine, venue and
//! report fold a `ledger replay --in-memory` runs, its events folded and dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{bail, Context, Result};
use evalexpr::{ContextWithMutableVariables, HashMapContext, Value as ExprValue};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::event::RunMode;
use ledger_core::feed::Tick;
use ledger_core::ids::RunId;
use ledger_core::log::DiscardLog;
use ledger_core::runner::Runner;
use ledger_core::time::TimestampNs;
use ledger_projections::report::{Report, ReportFold};
use ledger_projections::Folds;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::args::{SessionFlags, SweepArgs};
use crate::commands::replay;
use crate::config::{self, ProviderConfig, Settings};
use crate::describe;
use crate::html;
use crate::pipeline::{self, Cycles, Session};
use crate::store::Ledger;
use crate::Outcome;

/// Most combinations one sweep runs.
const MAX_COMBINATIONS: usize = 1_000_000;
/// Rows of the ranked table printed (the CSV has them all).
const SHOWN: usize = 20;

/// Statistics a sweep can rank by: the name on the command line, the report field.
const RANKS: [(&str, &str); 8] = [
    ("sharpe", "sharpe_ratio"),
    ("sortino", "sortino_ratio"),
    ("calmar", "calmar_ratio"),
    ("return", "return_pct"),
    ("equity", "equity_final"),
    ("drawdown", "max_drawdown_pct"),
    ("win-rate", "win_rate_pct"),
    ("profit-factor", "profit_factor"),
];

pub fn run(data_dir: &Path, args: &SweepArgs) -> Result<Outcome> {
    let grid = Grid::parse(&args.session.param)?;
    let constraints = args.constraint.iter().map(|c| c.as_str()).collect::<Vec<_>>();
    let combinations = grid.combinations(&constraints)?;
    let rank_field = rank_field(&args.rank)?;
    // The fixed settings; each combination's parameters are set over them.
    let mut base = Settings::resolve(&SessionFlags { param: Vec::new(), ..args.session.clone() })?;
    let strategy = match &base.provider {
        ProviderConfig::Rules { strategy, .. } => strategy.clone(),
        _ => bail!("a sweep varies a rule strategy's parameters: set --strategy sma-cross or ema-rsi"),
    };
    // Every combination is checked before any runs, so a typo fails at once.
    let mut runs = Vec::with_capacity(combinations.len());
    let mut invalid = 0usize;
    for combination in combinations {
        let settings = with_params(&base, &combination);
        let ProviderConfig::Rules { params, .. } = &settings.provider else { unreachable_provider()? };
        match config::rule_strategy(&strategy, params) {
            Ok(_) => runs.push((combination, settings)),
            Err(error) if is_range_problem(&error) => {
                invalid += 1; // e.g. fast >= slow without a constraint saying so
            }
            Err(error) => return Err(error.into()),
        }
    }
    if runs.is_empty() {
        bail!("no combination of the grid is a valid {strategy} (add ranges, or check --constraint)");
    }
    let ticks = read_ticks(&mut base)?;
    // The fill model the data chose when none was configured (see pipeline::market_data).
    for (_, settings) in &mut runs {
        settings.venue.fill_model = base.venue.fill_model;
    }
    let started = std::time::Instant::now();
    let mut results = if args.record { record(data_dir, &runs, &ticks)? } else { in_memory(&runs, &ticks, args.jobs)? };
    let elapsed = started.elapsed().as_secs_f64();
    results.sort_by(|a, b| rank_value(b, rank_field).total_cmp(&rank_value(a, rank_field)));
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("sweep.csv"));
    write_csv(&out, &grid, &results).with_context(|| format!("writing {}", describe::path(&out)))?;
    print_table(&grid, &results, rank_field)?;
    if let Some(path) = &args.html {
        write_heatmap(path, &grid, &results, rank_field)?;
    }
    let bars = ticks.len() as f64 * results.len() as f64;
    eprintln!(
        "{} backtests of {} bars in {elapsed:.2} s ({:.0} backtests/s, {:.0} bars/s){}; ranked by {rank_field}; all rows in {}",
        results.len(),
        ticks.len(),
        results.len() as f64 / elapsed.max(1e-9),
        bars / elapsed.max(1e-9),
        if invalid > 0 { format!(", {invalid} combinations skipped as invalid") } else { String::new() },
        describe::path(&out)
    );
    Ok(Outcome::Ok)
}

fn unreachable_provider<T>() -> Result<T> {
    bail!("internal: a sweep's settings lost their rule strategy")
}

/// Whether a configuration error is only a parameter out of its range (a combination to
/// skip), not a mistake in the command (an unknown parameter).
fn is_range_problem(error: &config::ConfigError) -> bool {
    !error.to_string().contains("unknown parameter")
}

/// The report field `--rank NAME` ranks by.
fn rank_field(name: &str) -> Result<&'static str> {
    RANKS.iter().find(|(alias, _)| *alias == name).map(|(_, field)| *field).ok_or_else(|| {
        let names: Vec<_> = RANKS.iter().map(|(alias, _)| *alias).collect();
        anyhow::anyhow!("--rank {}: choose one of {}", describe::quoted(name), names.join(", "))
    })
}

/// One backtest's outcome: its parameters and its report as JSON.
struct Backtested {
    params: Vec<(String, String)>,
    report: Value,
}

/// A statistic of a result as a number (money fields are decimal strings); a missing
/// one sorts last.
fn rank_value(result: &Backtested, field: &str) -> f64 {
    match &result.report[field] {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NEG_INFINITY),
        Value::String(s) => s.parse::<f64>().unwrap_or(f64::NEG_INFINITY),
        _ => f64::NEG_INFINITY,
    }
}

/// Writes the heatmap of `rank_field` over the grid's first two parameters to `path`.
fn write_heatmap(path: &Path, grid: &Grid, results: &[Backtested], rank_field: &str) -> Result<()> {
    let names: Vec<String> = grid.names().map(String::from).collect();
    let cells: Vec<html::SweepCell> = results
        .iter()
        .map(|r| html::SweepCell { params: r.params.clone(), value: rank_value(r, rank_field) })
        .collect();
    let text = html::sweep_page(&names, &cells, rank_field)?;
    html::write(path, &text)?;
    eprintln!("heatmap of {rank_field}: {} ({} bytes)", describe::path(path), text.len());
    Ok(())
}

/// The parameter grid: each name with its values, in the order given.
struct Grid {
    axes: Vec<(String, Vec<String>)>,
}

impl Grid {
    /// Parses `--param NAME=SPEC` flags: `a..b` (integers, inclusive), `a..b:step`
    /// (integers or decimals), `v1,v2,...`, or one value.
    fn parse(flags: &[String]) -> Result<Grid> {
        let mut axes: Vec<(String, Vec<String>)> = Vec::new();
        for flag in flags {
            let Some((name, spec)) = flag.split_once('=') else {
                bail!("--param {}: expected NAME=VALUES (a..b, a..b:step, or v1,v2,...)", describe::quoted(flag));
            };
            let (name, spec) = (name.trim(), spec.trim());
            if axes.iter().any(|(n, _)| n == name) {
                bail!("--param {}: given twice", describe::quoted(name));
            }
            let values = values(spec).with_context(|| format!("--param {}", describe::quoted(flag)))?;
            axes.push((name.to_string(), values));
        }
        if axes.is_empty() {
            bail!("a sweep needs at least one --param NAME=VALUES with several values, e.g. --param fast=5..30");
        }
        Ok(Grid { axes })
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.axes.iter().map(|(n, _)| n.as_str())
    }

    /// Every combination that meets the constraints, in grid order.
    fn combinations(&self, constraints: &[&str]) -> Result<Vec<Vec<(String, String)>>> {
        let total = self.axes.iter().try_fold(1usize, |n, (_, v)| n.checked_mul(v.len())).unwrap_or(usize::MAX);
        if total > MAX_COMBINATIONS {
            bail!("the grid has {total} combinations: at most {MAX_COMBINATIONS} (use coarser steps)");
        }
        let mut out = Vec::new();
        let mut index = vec![0usize; self.axes.len()];
        loop {
            let combination: Vec<(String, String)> =
                self.axes.iter().zip(&index).map(|((n, v), &i)| (n.clone(), v[i].clone())).collect();
            if meets(&combination, constraints)? {
                out.push(combination);
            }
            // Odometer: the last axis turns fastest.
            let mut axis = self.axes.len();
            loop {
                if axis == 0 {
                    return Ok(out);
                }
                axis -= 1;
                index[axis] += 1;
                if index[axis] < self.axes[axis].1.len() {
                    break;
                }
                index[axis] = 0;
            }
        }
    }
}

/// The values of one `--param` spec.
fn values(spec: &str) -> Result<Vec<String>> {
    if let Some((range, step)) = spec.split_once("..").map(|(a, rest)| {
        let (b, step) = rest.split_once(':').map_or((rest, None), |(b, s)| (b, Some(s)));
        ((a, b), step)
    }) {
        let parse = |text: &str| {
            text.trim().parse::<Decimal>().map_err(|_| anyhow::anyhow!("{}: not a number", describe::quoted(text)))
        };
        let (from, to) = (parse(range.0)?, parse(range.1)?);
        let step = step.map(parse).transpose()?.unwrap_or(Decimal::ONE);
        if step <= Decimal::ZERO {
            bail!("the step must be > 0");
        }
        if from > to {
            bail!("the range {from}..{to} is empty (from > to)");
        }
        let mut out = Vec::new();
        let mut value = from;
        while value <= to {
            if out.len() >= MAX_COMBINATIONS {
                bail!("more than {MAX_COMBINATIONS} values");
            }
            out.push(value.normalize().to_string());
            value = value.checked_add(step).ok_or_else(|| anyhow::anyhow!("the range overflows"))?;
        }
        return Ok(out);
    }
    let out: Vec<String> = spec.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if out.is_empty() {
        bail!("no values");
    }
    Ok(out)
}

/// Whether `combination` meets every constraint (boolean expressions over the
/// parameters, e.g. `fast < slow`, `slow - fast >= 10`; evaluated by `evalexpr`).
fn meets(combination: &[(String, String)], constraints: &[&str]) -> Result<bool> {
    if constraints.is_empty() {
        return Ok(true);
    }
    let mut context = HashMapContext::<evalexpr::DefaultNumericTypes>::new();
    for (name, value) in combination {
        let value = match value.parse::<f64>() {
            Ok(number) => ExprValue::Float(number),
            Err(_) => match value.as_str() {
                "true" => ExprValue::Boolean(true),
                "false" => ExprValue::Boolean(false),
                other => ExprValue::String(other.to_string()),
            },
        };
        context
            .set_value(name.clone(), value)
            .map_err(|e| anyhow::anyhow!("--param {}: {e}", describe::quoted(name)))?;
    }
    for constraint in constraints {
        let met = evalexpr::eval_boolean_with_context(constraint, &context)
            .map_err(|e| anyhow::anyhow!("--constraint {}: {e}", describe::quoted(constraint)))?;
        if !met {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `base` with the combination's parameters set.
fn with_params(base: &Settings, combination: &[(String, String)]) -> Settings {
    let mut settings = base.clone();
    if let ProviderConfig::Rules { params, .. } = &mut settings.provider {
        let extra: BTreeMap<String, String> = combination.iter().cloned().collect();
        params.extend(extra);
    }
    settings
}

/// The data file's ticks, read once for every backtest.
fn read_ticks(settings: &mut Settings) -> Result<Arc<[Tick]>> {
    let mut data = pipeline::market_data(settings)?;
    let mut ticks = Vec::new();
    while let Some((tick, _)) = data.feed.next_cycle()? {
        ticks.push(tick);
    }
    if ticks.is_empty() {
        bail!("the data holds no ticks");
    }
    Ok(ticks.into())
}

/// Runs every combination in memory on `jobs` threads (default: every core).
fn in_memory(
    runs: &[(Vec<(String, String)>, Settings)],
    ticks: &Arc<[Tick]>,
    jobs: Option<usize>,
) -> Result<Vec<Backtested>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = jobs.unwrap_or(cores).clamp(1, runs.len());
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(runs.len()));
    let failure = Mutex::new(None);
    let progress = progress(runs.len());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((params, settings)) = runs.get(i) else { return };
                match backtest(settings, ticks) {
                    Ok(report) => results
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Backtested { params: params.clone(), report }),
                    Err(error) => {
                        *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
                        next.store(runs.len(), Ordering::Relaxed);
                        return;
                    }
                }
                progress.inc(1);
            });
        }
    });
    progress.finish_and_clear();
    if let Some(error) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(error);
    }
    Ok(results.into_inner().unwrap_or_else(PoisonError::into_inner))
}

/// One backtest in memory: the engine, the paper venue and the report fold, the events
/// numbered and dropped as they are folded (no encoding or hashing: nothing is kept);
/// returns the report as JSON.
fn backtest(settings: &Settings, ticks: &[Tick]) -> Result<Value> {
    let run_id = RunId::new(1);
    let session = session(run_id, "sweep");
    let provider = pipeline::provider(settings, None)?;
    let parts = pipeline::run_parts(settings, &session, provider);
    let mut log = DiscardLog::default();
    let mut report = ReportFold::new(run_id);
    let mut folds = Folds::new().with(&mut report);
    let start = ticks.first().map_or(TimestampNs::from_nanos(0), |t| t.ts);
    let mut runner = Runner::start(&mut log, &mut folds, parts, start, settings.ledger.cycles_per_append)?;
    if settings.venue.close_at_end {
        runner = runner.with_close_at_end();
    }
    for tick in ticks {
        runner.on_tick(tick, tick.ts)?;
    }
    let end = ticks.last().map_or(start, |t| t.ts);
    if settings.venue.close_at_end {
        runner.close_out(end)?;
    }
    runner.stop("end of data", 0, end)?;
    drop(folds);
    Ok(report_json(&report.report()))
}

fn report_json(report: &Report) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

fn session(run_id: RunId, source: &str) -> Session<'_> {
    Session {
        run_id,
        mode: RunMode::Replay,
        speed: 0.0,
        source,
        instruments: Vec::new(),
        parent: None,
        stop: None,
        kill_switch_tripped: false,
        resume: None,
        link: None,
        outbox: None,
    }
}

/// Runs every combination into the ledger, one after the other (one writer), each a
/// recorded backtest as `ledger replay` makes it.
fn record(data_dir: &Path, runs: &[(Vec<(String, String)>, Settings)], ticks: &Arc<[Tick]>) -> Result<Vec<Backtested>> {
    let Some((_, first)) = runs.first() else { return Ok(Vec::new()) };
    let mut ledger = Ledger::open(data_dir, pipeline::durability(&first.ledger))?;
    let source = "sweep".to_string();
    let mut results = Vec::with_capacity(runs.len());
    let progress = progress(runs.len());
    for (params, settings) in runs {
        let provider = pipeline::provider(settings, None)?;
        let mut cycles = TickSlice { ticks, next: 0 };
        let session = |run_id| session(run_id, &source);
        let report;
        (ledger, report) = replay::record_backtest(ledger, settings, &mut cycles, provider, &session)?;
        results.push(Backtested { params: params.clone(), report: report_json(&report.report()) });
        progress.inc(1);
    }
    progress.finish_and_clear();
    ledger.save_folds()?;
    Ok(results)
}

/// A sweep's ticks as cycles at the data's own times.
struct TickSlice<'a> {
    ticks: &'a [Tick],
    next: usize,
}

impl Cycles for TickSlice<'_> {
    fn next_cycle(&mut self) -> Result<Option<(Tick, TimestampNs)>> {
        let tick = self.ticks.get(self.next).cloned();
        self.next += 1;
        Ok(tick.map(|t| {
            let ts = t.ts;
            (t, ts)
        }))
    }
}

fn progress(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} backtests ({per_sec}, {eta} left)") {
        bar.set_style(style);
    }
    bar
}

/// Columns of the table and the CSV beside the parameters: (header, report field).
const COLUMNS: [(&str, &str); 7] = [
    ("return %", "return_pct"),
    ("sharpe", "sharpe_ratio"),
    ("sortino", "sortino_ratio"),
    ("max drawdown %", "max_drawdown_pct"),
    ("trades", "trades"),
    ("win rate %", "win_rate_pct"),
    ("equity final", "equity_final"),
];

/// A report field as text: floats to 4 decimals for the table (`rounded`), exact for
/// the CSV.
fn cell(report: &Value, field: &str, rounded: bool) -> String {
    match &report[field] {
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() && rounded => format!("{x:.4}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn print_table(grid: &Grid, results: &[Backtested], rank_field: &str) -> Result<()> {
    let mut header: Vec<String> = vec!["rank".into()];
    header.extend(grid.names().map(str::to_string));
    header.extend(COLUMNS.iter().map(|(h, _)| h.to_string()));
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::ASCII_MARKDOWN).set_header(header);
    for (rank, result) in results.iter().take(SHOWN).enumerate() {
        let mut row = vec![(rank + 1).to_string()];
        row.extend(result.params.iter().map(|(_, v)| describe::safe(v).into_owned()));
        row.extend(COLUMNS.iter().map(|(_, field)| cell(&result.report, field, true)));
        table.add_row(row);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{table}")?;
    if results.len() > SHOWN {
        writeln!(out, "(top {SHOWN} of {} by {rank_field})", results.len())?;
    }
    Ok(())
}

/// Every result, ranked, as CSV (RFC 4180): the parameters, then every statistic of
/// the report that is a number or a decimal string.
fn write_csv(path: &Path, grid: &Grid, results: &[Backtested]) -> Result<()> {
    let fields: Vec<String> = match results.first().map(|r| &r.report) {
        Some(Value::Object(map)) => {
            // The run id is the same made-up 1 for every in-memory backtest.
            map.iter()
                .filter(|(k, v)| (v.is_number() || v.is_string()) && k.as_str() != "run_id")
                .map(|(k, _)| k.clone())
                .collect()
        }
        _ => Vec::new(),
    };
    let mut writer = csv::Writer::from_path(path)?;
    let mut header: Vec<String> = vec!["rank".into()];
    header.extend(grid.names().map(str::to_string));
    header.extend(fields.iter().cloned());
    writer.write_record(&header)?;
    for (rank, result) in results.iter().enumerate() {
        let mut row = vec![(rank + 1).to_string()];
        row.extend(result.params.iter().map(|(_, v)| v.clone()));
        row.extend(fields.iter().map(|f| cell(&result.report, f, false)));
        writer.write_record(&row)?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_values_ranges_steps_and_lists() {
        // (label, spec, Ok(values) or Err(part of the message))
        type Case<'a> = (&'a str, &'a str, Result<&'a [&'a str], &'a str>);
        let cases: [Case<'_>; 7] = [
            ("TC0: inclusive integer range", "5..8", Ok(&["5", "6", "7", "8"])),
            ("TC1: a step", "20..50:10", Ok(&["20", "30", "40", "50"])),
            ("TC2: decimal step", "0.5..1:0.25", Ok(&["0.5", "0.75", "1"])),
            ("TC3: a list", "true, false", Ok(&["true", "false"])),
            ("TC4: one value", "0.5", Ok(&["0.5"])),
            ("TC5: empty range", "9..3", Err("is empty")),
            ("TC6: zero step", "1..3:0", Err("step must be > 0")),
        ];
        for (label, spec, expected) in cases {
            match (values(spec), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{label}"),
                (Err(error), Err(part)) => assert!(error.to_string().contains(part), "{label}: {error}"),
                (got, want) => panic!("{label}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn combinations_follow_the_grid_and_the_constraints() {
        let grid = Grid::parse(&["fast=1..3".into(), "slow=2..4".into()]).unwrap();
        assert_eq!(grid.combinations(&[]).unwrap().len(), 9);
        let kept = grid.combinations(&["fast < slow", "slow - fast >= 2"]).unwrap();
        let pairs: Vec<(String, String)> = kept.iter().map(|c| (c[0].1.clone(), c[1].1.clone())).collect();
        let want = [("1", "3"), ("1", "4"), ("2", "4")].map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(pairs, want);
        let bad = grid.combinations(&["fast <"]).unwrap_err().to_string();
        assert!(bad.contains("--constraint \"fast <\""), "{bad}");
        let twice = Grid::parse(&["fast=1".into(), "fast=2".into()]).err().unwrap().to_string();
        assert!(twice.contains("given twice"), "{twice}");
        let huge = Grid::parse(&["a=1..2000".into(), "b=1..2000".into()]).unwrap().combinations(&[]);
        assert!(huge.unwrap_err().to_string().contains("at most 1000000"));
    }
}
