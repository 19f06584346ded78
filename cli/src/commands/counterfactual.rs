//! `ledger replay --run ID --redecide | --risk-config FILE`: a recorded run fed through
//! the pipeline again with one thing changed (its decisions asked again, or its risk
//! limits), recorded as a new run, and reported beside the original: the decisions that
//! changed, the verdicts and orders that followed, and the P&L difference.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ledger_core::event::RiskCheckId;
use ledger_core::log::RecordSource;
use ledger_core::replay::RunRange;
use ledger_projections::counterfactual::{compare, CycleOutcome, CycleOutcomes};
use ledger_projections::decisions::DecisionAt;
use ledger_projections::report::{Report, ReportFold};
use ledger_projections::{fold_range, Folds};

use crate::args::{ReplayArgs, SessionFlags};
use crate::commands::report;
use crate::config::{ProviderConfig, RecordedSettings, Settings};
use crate::describe;

/// What a counterfactual replay changed, in words (`the risk limits of tight.toml`),
/// for its report and its run's data source.
pub struct Change(String);

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Change {
    /// The change `args` asked for, in words.
    pub fn of(args: &ReplayArgs, settings: &Settings) -> Change {
        let mut parts = Vec::new();
        if args.redecide {
            parts.push(format!("its decisions asked again of {}", provider_name(&settings.provider)));
        }
        if let Some(file) = &args.risk_config {
            parts.push(format!("the risk limits of {}", describe::path(file)));
        }
        Change(parts.join(", under "))
    }
}

fn provider_name(provider: &ProviderConfig<std::path::PathBuf>) -> String {
    match provider {
        ProviderConfig::Rules { strategy, .. } => format!("the rules strategy {strategy}"),
        ProviderConfig::Script { file } => format!("the script {}", describe::path(file)),
        ProviderConfig::Openai(openai) => format!("the openai model {}", openai.model),
        ProviderConfig::Anthropic(anthropic) => format!("the anthropic model {}", anthropic.model),
    }
}

/// Replaces the recorded risk limits with the `[risk]` and `[kill_switch]` sections of
/// `file` (validated as any config is; a section the file leaves out stays as recorded).
///
/// # Errors
/// The file is missing, does not parse, fails validation, or has neither section.
pub fn apply_risk_config(settings: &mut Settings, file: &Path) -> Result<()> {
    let shown = describe::path(file);
    let limits = Settings::resolve(&SessionFlags { config: Some(file.to_path_buf()), ..SessionFlags::default() })
        .with_context(|| format!("--risk-config {shown}"))?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading --risk-config {shown}"))?;
    let table: toml::Table = text.parse().with_context(|| format!("--risk-config {shown}"))?;
    let (risk, kill_switch) = (table.contains_key("risk"), table.contains_key("kill_switch"));
    if !risk && !kill_switch {
        bail!("--risk-config {shown}: neither a [risk] nor a [kill_switch] section: nothing to change");
    }
    if risk {
        settings.risk = limits.risk;
    }
    if kill_switch {
        settings.kill_switch = limits.kill_switch;
    }
    Ok(())
}

/// Sets the provider a `--redecide` asks: the one `--config` or `--strategy` names, or
/// else the run's own; and the `--llm-cache` flags.
///
/// # Errors
/// Flags or a config that do not resolve; a recorded provider this version cannot read.
pub fn choose_provider(settings: &mut Settings, recorded: &RecordedSettings, flags: &SessionFlags) -> Result<()> {
    if flags.config.is_some() || flags.strategy.is_some() {
        let named = Settings::resolve(flags)?;
        settings.provider = named.provider;
        settings.llm_cache = named.llm_cache;
        settings.llm_cache_only = named.llm_cache_only;
        return Ok(());
    }
    // The run's own provider: the flags are checked without the cache's, which the
    // default provider (rules) would refuse, and the cache is checked against it.
    Settings::resolve(&SessionFlags { llm_cache: None, llm_cache_only: false, ..flags.clone() })?;
    settings.provider = recorded.provider()?;
    if flags.llm_cache.is_some()
        && !matches!(settings.provider, ProviderConfig::Openai(_) | ProviderConfig::Anthropic(_))
    {
        bail!("--llm-cache: the run's provider is {}, which asks no model", provider_name(&settings.provider));
    }
    settings.llm_cache = flags.llm_cache.clone();
    settings.llm_cache_only = flags.llm_cache_only;
    Ok(())
}

/// Prints the counterfactual `replayed` beside the `original` it was replayed from.
///
/// # Errors
/// Reading the original run back; writing to stdout.
pub fn report(
    source: &dyn RecordSource,
    original: RunRange,
    replayed: RunRange,
    replayed_report: &ReportFold,
    change: &Change,
) -> Result<()> {
    let mut was = CycleOutcomes::new(original.run_id);
    let mut now = CycleOutcomes::new(replayed.run_id);
    let mut original_report = ReportFold::new(original.run_id);
    let mut original_folds = Folds::new().with(&mut was).with(&mut original_report);
    fold_range(source, original.first, original.last, &mut original_folds)?;
    drop(original_folds);
    fold_range(source, replayed.first, replayed.last, &mut now)?;
    let c = compare(&was, &now);
    let (a, b) = (original_report.report(), replayed_report.report());

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "counterfactual: run {} replays the ticks of run {} with {}",
        replayed.run_id,
        original.run_id,
        describe::safe(&change.0)
    )?;
    let (left, right) =
        (format!("run {} (original)", original.run_id), format!("run {} (counterfactual)", replayed.run_id));
    let mut table = describe::table(["", left.as_str(), right.as_str(), "difference"]);
    let count = |label: &str, x: u64, y: u64| {
        [label.to_string(), x.to_string(), y.to_string(), signed(i128::from(y) - i128::from(x))]
    };
    let (t, u) = (&c.original, &c.counterfactual);
    table.add_row(count("cycles", t.cycles, u.cycles));
    table.add_row(count("decisions to trade", t.trade_decisions, u.trade_decisions));
    table.add_row(count("approved", t.approved, u.approved));
    table.add_row(count("denied", t.denied, u.denied));
    table.add_row(count("orders submitted", t.orders, u.orders));
    table.add_row(count("fills", t.fills, u.fills));
    table.add_row(count("# Trades", a.trades, b.trades));
    for (label, x, y) in money_rows(&a, &b) {
        table.add_row([label.to_string(), x.to_string(), y.to_string(), signed_money(y - x)]);
    }
    for (label, x, y) in [
        ("Return [%]", a.return_pct, b.return_pct),
        ("Max. Drawdown [%]", a.max_drawdown_pct, b.max_drawdown_pct),
        ("Sharpe Ratio", a.sharpe_ratio, b.sharpe_ratio),
    ] {
        table.add_row([label.to_string(), report::number(x), report::number(y), statistic_diff(y - x)]);
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "decisions changed: {} of {} cycles; verdicts changed: {} (approved -> denied {}, denied -> approved {}); \
         cycles with other orders, fills or kill-switch trips: {}",
        c.decisions_changed,
        t.cycles.max(u.cycles),
        c.verdicts_changed,
        c.approved_to_denied,
        c.denied_to_approved,
        c.orders_changed
    )?;
    let Some(first) = &c.first else {
        writeln!(out, "no cycle differs")?;
        return Ok(());
    };
    // The reasons are read back for this one cycle (the compared folds keep none).
    let reason = |range: RunRange| -> Result<String> {
        let mut at = DecisionAt::new(range.run_id, first.cycle);
        fold_range(source, range.first, range.last, &mut at)?;
        Ok(at.shown.reason)
    };
    writeln!(
        out,
        "first difference: cycle {} at {}: original {}; counterfactual {}",
        first.cycle,
        first.ts.to_rfc3339(),
        outcome(first.original.as_ref(), &reason(original)?),
        outcome(first.counterfactual.as_ref(), &reason(replayed)?)
    )?;
    Ok(())
}

fn money_rows(a: &Report, b: &Report) -> [(&'static str, rust_decimal::Decimal, rust_decimal::Decimal); 3] {
    [
        ("Equity Final [$]", a.equity_final, b.equity_final),
        ("Commissions [$]", a.commissions, b.commissions),
        ("Total Fees [$]", a.total_fees, b.total_fees),
    ]
}

/// One cycle's outcome in words: `long 1 (reason), approved, 1 order, 1 fill`.
fn outcome(c: Option<&CycleOutcome>, reason: &str) -> String {
    let Some(c) = c else { return "no such cycle".into() };
    let decision =
        c.decision.as_ref().map_or("no decision".into(), |d| format!("{} ({})", d.brief(), describe::safe(reason)));
    let verdict = match (c.judged(), c.denied_by) {
        (Some(true), _) => "approved".to_string(),
        (Some(false), Some(check)) => format!("denied by {}", check_name(check)),
        (Some(false), None) => "denied".into(),
        (None, _) => "nothing to judge".into(),
    };
    let plural = |n: u32, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let tripped = match c.kill_switch_tripped {
        true => ", kill switch tripped",
        false => "",
    };
    format!("{decision}, {verdict}{tripped}, {}, {}", plural(c.orders, "order"), plural(c.fills, "fill"))
}

/// A check's name as events and configs spell it (`max_position_pct`).
fn check_name(check: RiskCheckId) -> String {
    serde_json::to_value(check)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{check:?}"))
}

fn signed(n: i128) -> String {
    match n {
        0 => "0".into(),
        n if n > 0 => format!("+{n}"),
        n => n.to_string(),
    }
}

fn signed_money(d: rust_decimal::Decimal) -> String {
    match d.is_sign_positive() && !d.is_zero() {
        true => format!("+{d}"),
        false => d.to_string(),
    }
}

fn statistic_diff(x: f64) -> String {
    match x.is_finite() && x > 0.0 {
        true => format!("+{}", report::number(x)),
        false => report::number(x),
    }
}
