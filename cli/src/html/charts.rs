//! The report's charts as plotly figures (the plotly crate builds the figure JSON that
//! plotly.js draws): price with trade markers, equity beside buy-and-hold and the
//! drawdown on one shared, zoomable time axis; equity curves of several runs overlaid;
//! a sweep's heatmap. Times are ms since the Unix epoch on a date axis (UTC).
//!
//! Text that reaches a chart (names in titles, legends and hover labels, which plotly
//! renders as a subset of HTML) is escaped first ([`super::escape`]).

use ledger_projections::downsample::Line;
use ledger_projections::page::{MarkerKind, Page};
use plotly::common::{Anchor, Line as LineStyle, Marker, MarkerSymbol, Mode, Title};
use plotly::layout::{Axis, AxisType, HoverMode, Legend, RangeSlider};
use plotly::{Candlestick, HeatMap, Layout, Plot, Scatter};
use rust_decimal::prelude::ToPrimitive;

use super::escape;

/// Price panels drawn at most (plotly's layout names eight y axes; two are equity and
/// drawdown).
pub const MAX_PRICE_PANELS: usize = 6;

/// Trace names the page's script and the browser test look traces up by.
pub mod names {
    /// The equity curve.
    pub const EQUITY: &str = "equity";
    /// Buy-and-hold.
    pub const BUY_AND_HOLD: &str = "buy & hold";
    /// The drawdown.
    pub const DRAWDOWN: &str = "drawdown";
    /// Prefix of a price trace (`price SPY`).
    pub const PRICE: &str = "price";
}

/// How each marker kind is drawn: legend name, symbol, colour.
fn style(kind: MarkerKind, side: &str) -> (&'static str, MarkerSymbol, &'static str) {
    match (kind, side) {
        (MarkerKind::Entry, "short") => ("short entry", MarkerSymbol::TriangleDown, "#c62828"),
        (MarkerKind::Entry, _) => ("long entry", MarkerSymbol::TriangleUp, "#2e7d32"),
        (MarkerKind::Exit, _) => ("exit", MarkerSymbol::X, "#1565c0"),
        (MarkerKind::ProtectiveExit, _) => ("protective exit", MarkerSymbol::Diamond, "#ef6c00"),
        (MarkerKind::ForcedExit, _) => ("forced exit", MarkerSymbol::Square, "#6d4c41"),
        (MarkerKind::Denied, _) => ("denied", MarkerSymbol::CircleOpen, "#757575"),
    }
}

/// The y axis of panel `index` (0 is plotly's `y`).
fn y_name(index: usize) -> String {
    if index == 0 {
        "y".into()
    } else {
        format!("y{}", index + 1)
    }
}

fn axis(domain: [f64; 2], title: &str) -> Axis {
    Axis::new().domain(&domain).anchor("x").title(Title::from(title)).auto_range(true)
}

/// The run's figure: one price panel per instrument (candles for bars, a line for other
/// ticks) with every marker (its index in `page.markers` as customdata), then equity
/// and buy-and-hold, then the drawdown, all on the x axis.
pub fn run_figure(page: &Page) -> Plot {
    let mut plot = Plot::new();
    let prices = &page.prices[..page.prices.len().min(MAX_PRICE_PANELS)];
    // Bottom up: drawdown (y), equity (y2), then the price panels (y3...).
    let panels = prices.len();
    let price_share = 0.55 / panels.max(1) as f64;
    let mut layout = Layout::new()
        .height(420 + 260 * panels)
        .hover_mode(HoverMode::Closest)
        .legend(Legend::new().orientation(plotly::common::Orientation::Horizontal).y(1.02).y_anchor(Anchor::Bottom))
        .x_axis(Axis::new().type_(AxisType::Date).anchor("y").range_slider(RangeSlider::new().visible(false)))
        .y_axis(axis([0.0, 0.15], "drawdown %"))
        .y_axis2(axis([0.19, 0.42], "equity"));
    // Each marker kind in the legend once (clicking it there hides it on every panel).
    let mut in_legend = std::collections::BTreeSet::new();
    for (i, series) in prices.iter().enumerate() {
        let y = y_name(i + 2);
        let bottom = 0.46 + price_share * i as f64;
        let domain = [bottom, bottom + price_share - 0.03];
        let title = escape(series.instrument.as_str());
        let panel = axis(domain, &title);
        layout = match i {
            0 => layout.y_axis3(panel),
            1 => layout.y_axis4(panel),
            2 => layout.y_axis5(panel),
            3 => layout.y_axis6(panel),
            4 => layout.y_axis7(panel),
            _ => layout.y_axis8(panel),
        };
        let name = format!("{} {}", names::PRICE, escape(series.instrument.as_str()));
        if series.bars {
            let c = &series.candles;
            plot.add_trace(Box::new(
                Candlestick::new(
                    c.iter().map(|b| b.first_ms).collect(),
                    c.iter().map(|b| b.open).collect(),
                    c.iter().map(|b| b.high).collect(),
                    c.iter().map(|b| b.low).collect(),
                    c.iter().map(|b| b.close).collect(),
                )
                .name(&name)
                .x_axis("x")
                .y_axis(&y),
            ));
        } else {
            plot.add_trace(line(&series.line, &name, "#37474f").y_axis(&y));
        }
        // One trace per kind of marker on this instrument's panel.
        let kinds = [
            (MarkerKind::Entry, "long"),
            (MarkerKind::Entry, "short"),
            (MarkerKind::Exit, ""),
            (MarkerKind::ProtectiveExit, ""),
            (MarkerKind::ForcedExit, ""),
            (MarkerKind::Denied, ""),
        ];
        for (kind, side) in kinds {
            let chosen: Vec<usize> = (0..page.markers.len())
                .filter(|&m| {
                    let marker = &page.markers[m];
                    marker.instrument == Some(series.instrument)
                        && marker.kind == kind
                        && (kind != MarkerKind::Entry || (marker.side == "short") == (side == "short"))
                })
                .collect();
            if chosen.is_empty() {
                continue;
            }
            let (label, symbol, colour) = style(kind, side);
            let markers: Vec<_> = chosen.iter().map(|&m| &page.markers[m]).collect();
            let hover: Vec<String> = markers
                .iter()
                .map(|m| {
                    let what = match kind {
                        MarkerKind::Denied => format!("denied: {} {} of equity", escape(&m.side), m.size),
                        _ => format!("{label}: {} {} @ {}", escape(&m.side), m.size, m.price),
                    };
                    format!("{what}<br>seq {} (click for the decision)", m.seq)
                })
                .collect();
            plot.add_trace(
                Scatter::new(
                    markers.iter().map(|m| m.ms).collect(),
                    markers.iter().map(|m| m.price.to_f64().unwrap_or(f64::NAN)).collect(),
                )
                .mode(Mode::Markers)
                .name(label)
                .legend_group(label)
                .show_legend(in_legend.insert(label))
                .marker(Marker::new().symbol(symbol).size(11).color(colour))
                .custom_data(chosen)
                .hover_text_array(hover)
                .hover_info(plotly::common::HoverInfo::Text)
                .x_axis("x")
                .y_axis(&y),
            );
        }
    }
    plot.add_trace(line(&page.equity, names::EQUITY, "#1565c0").y_axis("y2"));
    plot.add_trace(line(&page.buy_and_hold, names::BUY_AND_HOLD, "#9e9e9e").y_axis("y2"));
    plot.add_trace(line(&page.drawdown, names::DRAWDOWN, "#c62828").fill(plotly::common::Fill::ToZeroY).y_axis("y"));
    plot.set_layout(layout);
    plot
}

fn line(line: &Line, name: &str, colour: &str) -> Box<Scatter<f64, f64>> {
    Scatter::new(line.x.clone(), line.y.clone())
        .mode(Mode::Lines)
        .name(name)
        .line(LineStyle::new().color(colour.to_string()).width(1.4))
        .x_axis("x")
}

/// Several runs' equity curves overlaid (top) and their drawdowns (below), one colour
/// per run, named `run N`.
pub fn compare_figure(runs: &[(u64, &Page)]) -> Plot {
    const COLOURS: [&str; 6] = ["#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f"];
    let mut plot = Plot::new();
    for (i, (run, page)) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        plot.add_trace(line(&page.equity, &format!("run {run} equity"), colour).y_axis("y2"));
        plot.add_trace(line(&page.drawdown, &format!("run {run} drawdown"), colour).y_axis("y"));
    }
    plot.set_layout(
        Layout::new()
            .height(620)
            .hover_mode(HoverMode::XUnified)
            .x_axis(Axis::new().type_(AxisType::Date).anchor("y"))
            .y_axis(axis([0.0, 0.3], "drawdown %"))
            .y_axis2(axis([0.36, 1.0], "equity")),
    );
    plot
}

/// A sweep's heatmap: `z[j][i]` is the ranked statistic at `x[i]` and `y[j]` (the best
/// over the other parameters; null where no combination ran). Axis titles are the
/// parameters' names.
pub fn sweep_figure(
    x_name: &str,
    x: &[String],
    y_name: &str,
    y: &[String],
    z: Vec<Vec<Option<f64>>>,
    stat: &str,
) -> Plot {
    let mut plot = Plot::new();
    plot.add_trace(
        HeatMap::new(x.iter().map(|v| escape(v)).collect(), y.iter().map(|v| escape(v)).collect(), z)
            .name(escape(stat))
            .hover_on_gaps(false),
    );
    plot.set_layout(
        Layout::new()
            .height(560)
            .title(Title::from(format!("{} by {} and {}", escape(stat), escape(x_name), escape(y_name)).as_str()))
            .x_axis(Axis::new().type_(AxisType::Category).title(Title::from(escape(x_name).as_str())))
            .y_axis(Axis::new().type_(AxisType::Category).title(Title::from(escape(y_name).as_str()))),
    );
    plot
}
