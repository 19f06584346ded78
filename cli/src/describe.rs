//! How things read in a terminal: tables, one-line summaries of payloads, and
//! [`safe`], the one escaping function every piece of text from input or storage goes
//! through before it is printed for people.
//!
//! Text in the ledger comes from data files, decision providers and operators; text in
//! error messages comes from paths, flags and configuration files. None of it may act on
//! the terminal that shows it: move the cursor, recolour, reorder a line (bidi
//! controls) or start a new one that looks like a table row or a message of ours. So
//! control characters are shown as `\u{1b}`-style escapes. JSON output (`--json`) is
//! not for terminals and stays exact: serde_json escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use comfy_table::{presets, Table};
use ledger_core::event::*;

/// Whether `c` acts on a terminal instead of printing as itself: the C0 controls (tab
/// and newline included), DEL, the C1 controls, the Unicode bidirectional embeddings,
/// overrides and isolates (U+202A..U+202E, U+2066..U+2069) and marks (U+200E, U+200F,
/// U+061C), and the line and paragraph separators (U+2028, U+2029).
pub fn is_control(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `text` safe to print on a terminal: every [`is_control`] character replaced by its
/// escape (`\u{1b}`, `\u{a}`, `\u{202e}`), everything else as it is (backslashes too,
/// so escaping twice changes nothing). Borrows when there is nothing to escape.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` made [`safe`] and put in double quotes, for messages that echo input.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", safe(text))
}

/// A path made [`safe`] for a message.
pub fn path(path: &Path) -> String {
    safe(&path.display().to_string()).into_owned()
}

/// An error as `main` prints it: each cause made [`safe`] and joined with `: ` (as
/// anyhow's `{:#}`), except a [`crate::config::ConfigError`], whose lines are already
/// safe and stay lines.
pub fn error_text(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(|cause| match cause.downcast_ref::<crate::config::ConfigError>() {
            Some(config) => config.to_string(),
            None => safe(&cause.to_string()).into_owned(),
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// A plain ASCII table with the given header.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_header(header);
    table
}

/// One line saying what a payload holds, [`safe`] to print: payloads carry text from
/// data files, providers and operators.
pub fn summary(event: &EventRef<'_>) -> String {
    let text = raw_summary(event);
    match safe(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

fn raw_summary(event: &EventRef<'_>) -> String {
    match event.payload {
        Payload::RunStarted(p) => format!(
            "{:?} {} on {} via {}:{} {} from {}",
            p.mode,
            p.instruments.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(","),
            p.venue,
            p.provider,
            p.model,
            p.params,
            p.data_source
        ),
        Payload::RunStopped(p) => p.reason.to_string(),
        Payload::MarketTick(p) => match &p.data {
            TickData::Bar(b) => format!(
                "{} bar o={} h={} l={} c={}{}",
                p.instrument,
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume.map(|v| format!(" v={v}")).unwrap_or_default()
            ),
            TickData::Trade(t) => format!("{} trade {} x {}", p.instrument, t.price, t.size),
            TickData::Quote(q) => format!("{} quote {} / {}", p.instrument, q.bid, q.ask),
        },
        Payload::DecisionMade(p) => {
            let d = &p.parsed;
            let status = match &p.parse_status {
                ParseStatus::Ok => String::new(),
                ParseStatus::Invalid(why) => format!(" [invalid: {why}]"),
                ParseStatus::ProviderError(why) => format!(" [provider error: {why}]"),
            };
            let t = d.terms();
            let term = |name: &str, value: Option<String>| value.map(|v| format!(" {name} {v}")).unwrap_or_default();
            let terms = [
                term("limit", t.limit_price.map(|p| p.to_string())),
                term("tif", t.time_in_force.map(|tif| format!("{tif:?}"))),
                term("sl", t.stop_loss.map(|p| p.to_string())),
                term("tp", t.take_profit.map(|p| p.to_string())),
                term("trail", t.trailing_stop_pct.map(|p| p.to_string())),
            ]
            .concat();
            format!("{:?} size {} conf {}{terms} ({}){status}", d.action, d.size_pct, d.confidence, d.reason)
        }
        Payload::RiskVerdict(p) => {
            let verdict = if p.approved { "approved" } else { "denied" };
            let failed = p.checks.iter().filter(|c| !c.passed).count();
            let why = if p.reason.is_empty() { String::new() } else { format!(": {}", p.reason) };
            let decision = event.causation_seq.map_or("-".to_string(), |s| s.to_string());
            format!("{verdict} decision {decision} ({} checks, {failed} failed){why}", p.checks.len())
        }
        Payload::OrderSubmitted(p) => {
            let qty = match &p.qty {
                OrderQty::Units(q) => format!("{q} units"),
                OrderQty::Notional(n) => format!("notional {n}"),
                OrderQty::EquityFraction(f) => format!("{f} of equity"),
            };
            let price = match (p.limit_price, p.stop_price) {
                (Some(limit), _) => format!(" @ {limit} {:?}", p.tif),
                (None, Some(stop)) => format!(" @ {stop}"),
                (None, None) => String::new(),
            };
            let role = match &p.protects {
                Some(exit) => format!(" {} of {}", exit.kind.name(), exit.entry),
                None if p.reduce_only => " reduce-only".to_string(),
                None => String::new(),
            };
            let bracket = match p.bracket.as_deref() {
                None => String::new(),
                Some(b) => format!(
                    " [sl {} tp {} trail {}]",
                    b.stop_loss.map_or("-".into(), |v| v.to_string()),
                    b.take_profit.map_or("-".into(), |v| v.to_string()),
                    b.trailing_stop_pct.map_or("-".into(), |v| v.to_string())
                ),
            };
            format!(
                "{} {:?} {} {qty} {:?}{price}{role}{bracket}",
                p.client_order_id, p.side, p.instrument, p.order_type
            )
        }
        Payload::OrderAmended(p) => format!("{} stop to {}: {}", p.client_order_id, p.stop_price, p.reason),
        Payload::ToolCalled(p) => format!("round {} {}({}) -> {}", p.round, p.name, p.arguments, p.result),
        Payload::ModelCalled(p) => {
            let status = p.http_status.map_or("no response".to_string(), |s| format!("HTTP {s}"));
            let error = if p.error.is_empty() { String::new() } else { format!(": {}", p.error) };
            format!("{} request(s), {status}, ${} {}{error}", p.requests, p.cost_usd, p.indicators)
        }
        Payload::VenueNotice(p) => format!("{} {:?} {} ({}): {}", p.venue, p.kind, p.stream, p.value, p.detail),
        Payload::OrderAccepted(p) => p.client_order_id.to_string(),
        Payload::OrderRejected(p) => format!("{}: {}", p.client_order_id, p.reason),
        Payload::OrderCanceled(p) => format!("{}: {}", p.client_order_id, p.reason),
        Payload::OrderFilled(p) => {
            format!("{} {:?} {} {} @ {} fee {}", p.client_order_id, p.side, p.qty, p.instrument, p.price, p.fee)
        }
        Payload::KillSwitchTripped(p) => format!("{:?}: {}", p.trigger, p.reason),
        Payload::KillSwitchReset(p) => format!("by {}: {}", p.by, p.reason),
        Payload::RiskLimitsChanged(p) => format!("by {}: {}", p.by, p.reason),
        Payload::RunResumed(p) => {
            let snapshot = if p.snapshot_seq.get() == 0 {
                "from the run's start".to_string()
            } else {
                format!("from snapshot at seq {}", p.snapshot_seq)
            };
            format!(
                "after seq {}, {} cycles, {snapshot}, {} working orders{}",
                p.after_seq,
                p.cycles,
                p.working_orders.len(),
                if p.kill_switch_tripped { ", kill switch tripped" } else { "" }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_escapes_what_acts_on_a_terminal_and_nothing_else() {
        // (label, text, shown)
        let cases = [
            ("TC0: plain text borrows", "SPY 100.5 é €", "SPY 100.5 é €"),
            ("TC1: ESC and a colour", "\u{1b}[31mred", "\\u{1b}[31mred"),
            ("TC2: newline, CR, tab", "a\nb\rc\td", "a\\u{a}b\\u{d}c\\u{9}d"),
            ("TC3: DEL and C1 (CSI)", "\u{7f}\u{9b}", "\\u{7f}\\u{9b}"),
            ("TC4: bidi override and isolate", "\u{202e}abc\u{2066}", "\\u{202e}abc\\u{2066}"),
            ("TC5: line and paragraph separators", "\u{2028}\u{2029}", "\\u{2028}\\u{2029}"),
            ("TC6: an escape already shown stays", "\\u{1b}", "\\u{1b}"),
        ];
        for (label, text, shown) in cases {
            assert_eq!(safe(text), shown, "{label}");
            assert_eq!(safe(&safe(text)), shown, "{label}: escaping twice changes nothing");
        }
        assert!(matches!(safe("plain"), Cow::Borrowed(_)));
    }
}
