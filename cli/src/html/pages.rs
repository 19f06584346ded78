//! The three pages (a run, runs compared, a sweep) as askama templates filled from the
//! folded page data: tables rendered here (escaped), charts as plotly figure JSON, and
//! the data the page's script needs for the decision panel.

use askama::Template;
use ledger_projections::decisions::DecisionShown;
use ledger_projections::page::{Card, Marker, Page, ProviderInfo};
use ledger_projections::report::Report;
use ledger_projections::trades::TradeRow;
use serde::Serialize;

use super::{charts, plotly_script, script_json};
use crate::commands::report::rows as statistic_rows;

/// The page's own styles and scripts (ours, not a library's).
const STYLE: &str = include_str!("../../templates/report.css");
const BOOT_JS: &str = include_str!("../../templates/boot.js");
const RUN_JS: &str = include_str!("../../templates/run.js");

/// A table: a header row and rows of text cells.
#[derive(Template)]
#[template(path = "table.html")]
struct Table {
    id: String,
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

struct Cell {
    text: String,
}

impl Cell {
    fn text(text: impl Into<String>) -> Cell {
        Cell { text: text.into() }
    }
}

/// The statistics table of `reports` (one column each), labelled as the text report;
/// with more than one, each later column shows its difference from the first.
pub fn statistics_table(reports: &[(String, &Report)]) -> askama::Result<String> {
    let columns: Vec<Vec<(&'static str, String)>> = reports.iter().map(|(_, r)| statistic_rows(r)).collect();
    let mut header = vec!["metric".to_string()];
    header.extend(reports.iter().map(|(name, _)| name.clone()));
    let rows = columns
        .first()
        .map(|first| {
            first
                .iter()
                .enumerate()
                .map(|(i, (label, base))| {
                    let mut cells = vec![Cell::text(*label)];
                    for (c, column) in columns.iter().enumerate() {
                        let value = column.get(i).map(|(_, v)| v.clone()).unwrap_or_default();
                        let text = match (c, difference(base, &value)) {
                            (0, _) | (_, None) => value,
                            (_, Some(delta)) => format!("{value} ({delta})"),
                        };
                        cells.push(Cell::text(text));
                    }
                    cells
                })
                .collect()
        })
        .unwrap_or_default();
    Table { id: "statistics".into(), header, rows }.render()
}

/// `value - base` with its sign, when both are finite numbers and differ.
fn difference(base: &str, value: &str) -> Option<String> {
    let (a, b) = (base.parse::<rust_decimal::Decimal>().ok()?, value.parse::<rust_decimal::Decimal>().ok()?);
    let delta = b.checked_sub(a)?;
    (!delta.is_zero()).then(|| if delta.is_sign_positive() { format!("+{delta}") } else { delta.to_string() })
}

/// The trades table's header; its rows are [`trade_cells`].
const TRADE_COLUMNS: [&str; 12] = [
    "#",
    "instrument",
    "side",
    "size",
    "entry time",
    "entry price",
    "exit time",
    "exit price",
    "P&L",
    "return %",
    "fees",
    "exit reason",
];

/// The trades table's rows as text cells, for the page's script to show (a page of rows
/// at a time: a table of every trade of a long run would be most of the page's load).
fn trade_cells(trades: &[TradeRow]) -> Vec<[String; 12]> {
    trades
        .iter()
        .enumerate()
        .map(|(i, t)| {
            [
                (i + 1).to_string(),
                t.instrument.as_str().to_string(),
                t.side.to_string(),
                t.size.to_string(),
                t.entry_time.clone(),
                t.entry_price.round_dp(8).to_string(),
                t.exit_time.clone(),
                t.exit_price.to_string(),
                t.pnl.round_dp(2).to_string(),
                (t.return_frac * rust_decimal::Decimal::ONE_HUNDRED).round_dp(3).to_string(),
                t.fees.round_dp(2).to_string(),
                t.exit_reason.to_string(),
            ]
        })
        .collect()
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunTemplate<'a> {
    title: String,
    summary: String,
    style: &'a str,
    boot_js: &'a str,
    plotly_js: &'a str,
    page_js: &'a str,
    figure: String,
    panel: String,
    statistics: String,
    trade_columns: &'a [&'a str],
    trades: String,
}

/// What the decision panel shows, for the page's script.
#[derive(Serialize)]
struct Panel<'a> {
    markers: &'a [Marker],
    cards: &'a [Card],
    provider: &'a ProviderInfo,
}

/// The report page of run `run`.
///
/// # Errors
/// Serialization or template errors.
pub fn run_page(run: u64, page: &Page) -> anyhow::Result<String> {
    let r = &page.report;
    let drawn = if page.bucket_ticks > 1 {
        format!(", drawn {} ticks per point (every extreme and every trade kept)", page.bucket_ticks)
    } else {
        String::new()
    };
    let template = RunTemplate {
        title: format!("ledger run {run}"),
        summary: format!(
            "{} to {}: {} ticks, {} trades, return {} %{drawn}",
            r.start,
            r.end,
            r.ticks,
            page.trades.len(),
            crate::commands::report::number(r.return_pct)
        ),
        style: STYLE,
        boot_js: BOOT_JS,
        plotly_js: &plotly_script(),
        page_js: RUN_JS,
        figure: script_json(&charts::run_figure(page))?,
        panel: script_json(&Panel { markers: &page.markers, cards: &page.cards, provider: &page.provider })?,
        statistics: statistics_table(&[(format!("run {run}"), r)])?,
        trade_columns: &TRADE_COLUMNS,
        trades: script_json(&trade_cells(&page.trades))?,
    };
    Ok(template.render()?)
}

/// One run of a comparison: its page and where its decisions first differ from the
/// first run's.
pub struct CompareRun {
    /// The run.
    pub run: u64,
    /// Its page.
    pub page: Page,
    /// The first cycle whose decision differs from the first run's, with both decisions
    /// (none: they agree; always none for the first run).
    pub differs: Option<(u64, DecisionShown, DecisionShown)>,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct CompareTemplate<'a> {
    title: String,
    style: &'a str,
    boot_js: &'a str,
    plotly_js: &'a str,
    figure: String,
    statistics: String,
    divergence: String,
}

/// Runs side by side: equity and drawdown overlaid, statistics in columns with the
/// differences from the first run, the first cycle where decisions differ.
///
/// # Errors
/// Serialization or template errors.
pub fn compare_page(runs: &[CompareRun]) -> anyhow::Result<String> {
    let names: Vec<String> = runs.iter().map(|r| format!("run {}", r.run)).collect();
    let reports: Vec<(String, &Report)> = runs.iter().zip(&names).map(|(r, n)| (n.clone(), &r.page.report)).collect();
    let header = ["run", "first differing cycle", "time", "decision there", "first run's decision"];
    let rows = runs
        .iter()
        .skip(1)
        .map(|r| {
            let cells = match &r.differs {
                None => vec![
                    Cell::text(format!("run {}", r.run)),
                    Cell::text("none: every decision the same"),
                    Cell::text(""),
                    Cell::text(""),
                    Cell::text(""),
                ],
                Some((cycle, here, first)) => vec![
                    Cell::text(format!("run {}", r.run)),
                    Cell::text(cycle.to_string()),
                    Cell::text(if here.time.is_empty() { first.time.clone() } else { here.time.clone() }),
                    Cell::text(shown(here)),
                    Cell::text(shown(first)),
                ],
            };
            cells
        })
        .collect();
    let divergence = Table { id: "divergence".into(), header: header.map(String::from).to_vec(), rows }.render()?;
    let overlaid: Vec<(u64, &Page)> = runs.iter().map(|r| (r.run, &r.page)).collect();
    let template = CompareTemplate {
        title: format!("ledger: {} compared", names.join(", ")),
        style: STYLE,
        boot_js: BOOT_JS,
        plotly_js: &plotly_script(),
        figure: script_json(&charts::compare_figure(&overlaid))?,
        statistics: statistics_table(&reports)?,
        divergence,
    };
    Ok(template.render()?)
}

/// A decision in one line: action, size, confidence, seq, reason.
fn shown(d: &DecisionShown) -> String {
    if d.seq == 0 {
        return "no decision".into();
    }
    format!("{} {} (confidence {}), seq {}: {}", d.action, d.size_pct, d.confidence, d.seq, d.reason)
}

/// One backtest of a sweep: its parameters and its ranked statistic.
pub struct SweepCell {
    /// The parameters, `(name, value)`, in the grid's order.
    pub params: Vec<(String, String)>,
    /// The ranked statistic (NaN or infinite: not drawn).
    pub value: f64,
}

#[derive(Template)]
#[template(path = "sweep.html")]
struct SweepTemplate<'a> {
    title: String,
    note: String,
    style: &'a str,
    boot_js: &'a str,
    plotly_js: &'a str,
    figure: String,
}

/// A sweep's heatmap of `stat` over its first two parameters (`names`), each cell the
/// best of the combinations at those two values; with one parameter, one row.
///
/// # Errors
/// Serialization or template errors.
pub fn sweep_page(names: &[String], cells: &[SweepCell], stat: &str) -> anyhow::Result<String> {
    let distinct = |axis: usize| {
        let mut values: Vec<String> = Vec::new();
        for cell in cells {
            if let Some((_, v)) = cell.params.get(axis) {
                if !values.contains(v) {
                    values.push(v.clone());
                }
            }
        }
        // Numbers in numeric order, others as given.
        values.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => std::cmp::Ordering::Equal,
        });
        values
    };
    let (xs, ys) = (distinct(0), distinct(1));
    let ys = if ys.is_empty() { vec![String::new()] } else { ys };
    let mut z = vec![vec![None::<f64>; xs.len()]; ys.len()];
    for cell in cells.iter().filter(|c| c.value.is_finite()) {
        let x = cell.params.first().and_then(|(_, v)| xs.iter().position(|x| x == v));
        let y = cell.params.get(1).map_or(Some(0), |(_, v)| ys.iter().position(|y| y == v));
        if let (Some(x), Some(y)) = (x, y) {
            // invariant: x and y are positions in xs and ys, which z's rows and columns follow.
            let slot = &mut z[y][x];
            *slot = Some(slot.map_or(cell.value, |best: f64| best.max(cell.value)));
        }
    }
    let x_name = names.first().cloned().unwrap_or_default();
    let y_name = names.get(1).cloned().unwrap_or_default();
    let note = match names.len() {
        0 | 1 => format!("{} backtests.", cells.len()),
        2 => format!("{} backtests, one per cell.", cells.len()),
        _ => format!("{} backtests; each cell is the best over {}.", cells.len(), names[2..].join(", ")),
    };
    let template = SweepTemplate {
        title: format!("ledger sweep: {stat}"),
        note,
        style: STYLE,
        boot_js: BOOT_JS,
        plotly_js: &plotly_script(),
        figure: script_json(&charts::sweep_figure(&x_name, &xs, &y_name, &ys, z, stat))?,
    };
    Ok(template.render()?)
}
