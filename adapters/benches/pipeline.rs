//! A breakdown of the whole-process benchmark (scripts/bench/whole-process.sh): the
//! runner's inner loop alone, over ticks already parsed. Bars per second of an SMA-cross
//! backtest on the largest intraday file (BTC perpetual, 1-minute bars, 45,031 rows)
//! repeated to over 1,000,000 bars, in memory and persisted to sled with group
//! durability; and the p50/p99 latency of one cycle (tick -> decision -> verdict ->
//! order -> fill, appended) without persistence.
//!
//! Run: `cargo bench -p ledger-adapters --bench pipeline` (reads ../shared/data).

use std::path::Path;
use std::time::{Duration, Instant};

use ledger_adapters::background::BackgroundLog;
use ledger_adapters::market_data::{read_ticks, ReadOptions};
use ledger_adapters::sled_log::{Durability, SledLog};
use ledger_core::engine::RunSpec;
use ledger_core::event::RunMode;
use ledger_core::feed::Tick;
use ledger_core::ids::{InstrumentId, RunId};
use ledger_core::log::{EventLog, MemLog};
use ledger_core::risk::{KillSwitch, KillSwitchLimits, RiskEngine, RiskLimits};
use ledger_core::runner::{RunParts, Runner};
use ledger_core::strategy::{RuleSizing, SmaCross};
use ledger_core::time::TimestampNs;
use ledger_core::venue::{PaperConfig, PaperVenue};
use rust_decimal::Decimal;

const DATA: &str = "../shared/data/nautilus_btc-perp_1m_2021-12-31_2022-02-01.csv";
const MIN_BARS: usize = 1_000_000;

fn load() -> Vec<Tick> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(DATA);
    let options = ReadOptions::new(InstrumentId::new("BTC-PERP").unwrap());
    let once = read_ticks(&path, &options).unwrap_or_else(|e| panic!("{e}"));
    let span = once[once.len() - 1].ts.nanos() - once[0].ts.nanos() + 60_000_000_000;
    let copies = MIN_BARS.div_ceil(once.len()) as i64;
    (0..copies)
        .flat_map(|c| {
            once.iter().map(move |t| Tick { ts: TimestampNs::from_nanos(t.ts.nanos() + c * span), ..t.clone() })
        })
        .collect()
}

/// Runs every tick through a fresh runner; returns the wall time and per-cycle latencies
/// when `sample_latency` is set.
fn backtest<L: EventLog>(
    log: &mut L,
    ticks: &[Tick],
    cycles_per_append: usize,
    sample_latency: bool,
) -> (Duration, Vec<u32>) {
    let spec = RunSpec {
        run_id: RunId::new(1),
        mode: RunMode::Replay,
        config: "{}".into(),
        software_version: "bench".into(),
        instruments: vec![ticks[0].instrument],
        data_source: DATA.into(),
        parent_run: None,
        starting_cash: Decimal::from(100_000),
        venue: "paper".into(),
        exits: ledger_core::exits::ExitPolicy::default(),
    };
    let provider = Box::new(SmaCross::new(10, 30, RuleSizing { size_pct: Decimal::ONE, allow_short: true }));
    let venue =
        PaperConfig { commission_rate: Decimal::new(1, 3), lot_size: Decimal::new(1, 3), ..PaperConfig::default() };
    let parts = RunParts {
        spec,
        provider,
        risk: RiskEngine::new(RiskLimits::default()),
        kill: KillSwitch::new(KillSwitchLimits::default(), false),
        venue: Box::new(PaperVenue::new(venue)),
    };
    let mut latencies = Vec::with_capacity(if sample_latency { ticks.len() } else { 0 });
    let started = Instant::now();
    let mut observer = ();
    let mut runner = Runner::start(log, &mut observer, parts, ticks[0].ts, cycles_per_append).unwrap();
    for tick in ticks {
        if sample_latency {
            let t = Instant::now();
            runner.on_tick(tick, tick.ts).unwrap();
            latencies.push(t.elapsed().as_nanos() as u32);
        } else {
            runner.on_tick(tick, tick.ts).unwrap();
        }
    }
    runner.stop("end of data", 0, ticks[ticks.len() - 1].ts).unwrap();
    (started.elapsed(), latencies)
}

fn rate(bars: usize, time: Duration) -> f64 {
    bars as f64 / time.as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    let ticks = load();
    let bars = ticks.len();
    println!("pipeline bench: {bars} bars (sma-cross 10/30, next_open, 0.1% commission)");

    // Best of three, the variants interleaved so that each sees the same machine: this is
    // a shared 2-core VM whose speed drifts from minute to minute.
    let only_background = std::env::var("PIPELINE_BENCH_ONLY").as_deref() == Ok("background");
    let mut best = [Duration::MAX; 4];
    let (mut events, mut bytes) = (0, 0);
    for _ in 0..3 {
        let mut log = BackgroundLog::new(MemLog::head_only());
        best[0] = best[0].min(backtest(&mut log, &ticks, 256, false).0);
        if only_background {
            continue;
        }
        let mut log = MemLog::new();
        best[1] = best[1].min(backtest(&mut log, &ticks, 256, false).0);
        (events, bytes) = (log.head().seq.get(), log.byte_len() as u64);
        drop(log);
        let dir = tempfile::tempdir().unwrap();
        let mut log = BackgroundLog::new(SledLog::open(dir.path(), Durability::GROUP_DEFAULT).unwrap());
        best[2] = best[2].min(backtest(&mut log, &ticks, 256, false).0);
        drop(log);
        let dir = tempfile::tempdir().unwrap();
        let mut log = SledLog::open(dir.path(), Durability::GROUP_DEFAULT).unwrap();
        best[3] = best[3].min(backtest(&mut log, &ticks, 256, false).0);
    }
    let line =
        |name: &str, time: Duration| println!("{name:<52} {:>10.0} bars/s  (best of 3: {time:?})", rate(bars, time));
    line("in memory, writer thread (BackgroundLog<MemLog::head_only>)", best[0]);
    if only_background {
        return;
    }
    line("in memory, one thread (MemLog)", best[1]);
    line("persisted, writer thread (BackgroundLog<SledLog>)", best[2]);
    line("persisted, one thread (SledLog)", best[3]);
    println!("{events} events per run, {} bytes per event stored (framed)", bytes / events);

    let mut log = MemLog::new();
    let (_, mut latencies) = backtest(&mut log, &ticks, 1, true);
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "one cycle, no persistence: p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        latencies[latencies.len() - 1]
    );
}
