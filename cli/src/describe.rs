//! How events read in a terminal: tables and one-line summaries of payloads.

use comfy_table::{presets, Table};
use ledger_core::event::*;

/// A plain ASCII table with the given header.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_header(header);
    table
}

/// One line saying what a payload holds.
pub fn summary(event: &Envelope) -> String {
    match &event.payload {
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
            format!("{:?} size {} conf {} ({}){status}", d.action, d.size_pct, d.confidence, d.reason)
        }
        Payload::RiskVerdict(p) => {
            let verdict = if p.approved { "approved" } else { "denied" };
            let failed = p.checks.iter().filter(|c| !c.passed).count();
            let why = if p.reason.is_empty() { String::new() } else { format!(": {}", p.reason) };
            let decision = event.header.causation_seq.map_or("-".to_string(), |s| s.to_string());
            format!("{verdict} decision {decision} ({} checks, {failed} failed){why}", p.checks.len())
        }
        Payload::OrderSubmitted(p) => {
            let qty = match &p.qty {
                OrderQty::Units(q) => format!("{q} units"),
                OrderQty::Notional(n) => format!("notional {n}"),
            };
            format!("{} {:?} {} {qty} {:?}", p.client_order_id, p.side, p.instrument, p.order_type)
        }
        Payload::OrderAccepted(p) => p.client_order_id.to_string(),
        Payload::OrderRejected(p) => format!("{}: {}", p.client_order_id, p.reason),
        Payload::OrderCanceled(p) => format!("{}: {}", p.client_order_id, p.reason),
        Payload::OrderFilled(p) => {
            format!("{} {:?} {} {} @ {} fee {}", p.client_order_id, p.side, p.qty, p.instrument, p.price, p.fee)
        }
        Payload::KillSwitchTripped(p) => format!("{:?}: {}", p.trigger, p.reason),
        Payload::KillSwitchReset(p) => format!("by {}: {}", p.by, p.reason),
        Payload::RiskLimitsChanged(p) => format!("by {}: {}", p.by, p.reason),
    }
}
