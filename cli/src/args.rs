//! The command line as clap sees it: structs that mirror the flags, nothing validated yet.
//! Each command turns its raw flags into checked values in its own module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Event-sourced, append-only trading ledger with deterministic replay backtesting.
#[derive(Debug, Parser)]
#[command(name = "ledger", version, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory of the sled ledger.
    #[arg(long, global = true, env = "LEDGER_DATA_DIR", default_value = "./ledger-data")]
    pub data_dir: PathBuf,
    /// Whether `--data-dir` (or `LEDGER_DATA_DIR`) was given rather than defaulted: `ledger
    /// audit verify` checks an export against the ledger only when told where it is.
    #[arg(skip)]
    pub data_dir_given: bool,
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

/// How diagnostics are written to stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// For people.
    Human,
    /// One JSON object per line, for machines.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The running session (through its control socket), or the latest run when none is
    /// running.
    #[command(
        after_help = "Shows run, pid, cycle, head and durable seq, last tick, cash, equity, P&L, fees, positions, kill switch and working orders of the session running on --data-dir; with no session running, the latest run and the kill switch. Exit status 0 either way.\n\nExamples:\n  ledger status\n  ledger status --json | jq .session.equity"
    )]
    Status(StatusArgs),
    /// List the runs in the ledger.
    #[command(after_help = "Examples:\n  ledger --data-dir ./ledger-data runs\n  ledger runs --json | jq .return_pct")]
    Runs(RunsArgs),
    /// Show events, as a table or one JSON object per line.
    #[command(
        after_help = "While a session runs, events are read through it (those it has made durable).\n\nExamples:\n  ledger events --run 1 --limit 20\n  ledger events --from 100 --json | jq .payload\n  ledger events --follow --json   # and new ones as they are recorded; Ctrl-C ends it"
    )]
    Events(EventsArgs),
    /// Check the whole ledger: sequence contiguity, decoding, the hash chain, and the kept
    /// fold snapshots.
    #[command(
        after_help = "With --checkpoint and --pubkey, also proves the ledger still extends a signed checkpoint that `ledger checkpoint --sign` wrote earlier: the RFC 9162 Merkle root of its first N records must be the one signed, so a history rewritten with recomputed hashes is found.\n\nExit status: 0 intact, 1 a bad record was found (its seq is named) or the checkpoint does not hold, 2 error.\n\nExamples:\n  ledger verify\n  ledger verify --checkpoint ledger.checkpoint --pubkey ledger.key.pub"
    )]
    Verify(VerifyArgs),
    /// Write a signed checkpoint (RFC 9162 Merkle root and size) of the whole ledger.
    #[command(
        after_help = "The checkpoint is a C2SP signed note (origin, tree size, root): keep it elsewhere or publish it; `ledger verify --checkpoint FILE --pubkey KEY.pub` later proves the ledger still extends it. Make a key with `ledger audit keygen`.\n\nExamples:\n  ledger checkpoint --sign ledger.key --out ledger.checkpoint\n  ledger checkpoint --sign ledger.key   # to stdout"
    )]
    Checkpoint(CheckpointArgs),
    /// Compliance audit trail: export a run for a receiver to verify without the ledger.
    #[command(
        after_help = "Examples:\n  ledger audit keygen --name example.com/ledger --out audit.key\n  ledger audit export --run 1 --format csv --out audit-2026-11 --sign audit.key\n  ledger audit verify audit-2026-11 --pubkey audit.key.pub\n  ledger audit verify audit-2026-12 --previous audit-2026-11 --pubkey audit.key.pub"
    )]
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Backtest on historic data, or re-run a recorded run and prove it reproduces.
    #[command(
        after_help = format!("{}\n\n{}", crate::config::strategies_help(), "Examples:\n  ledger replay --data fixtures/spy-daily-1998-2021.csv --strategy sma-cross --param fast=10 --param slow=30\n  ledger replay --data fixtures/orcl-daily-yfinance-1995.csv --commission 0.001 --cash 10000 --in-memory\n  ledger replay --data fixtures/spy-1m-newyork-2013-10-07.csv --tz America/New_York --time-column \"Local time\"\n  ledger replay --data a.csv --data b.csv --config fixtures/ledger.example.toml --in-memory\n  ledger replay --data fixtures/spy-daily-1998-2021.csv --strategy sma-cross --param short=true --close-at-end\n  ledger replay --data fixtures/spy-daily-1998-2021.csv --stop-loss-pct 0.02 --take-profit-pct 0.05 --trailing-stop-pct 0.03\n  ledger replay --run 1 --verify\n  ledger replay --config fixtures/llm-anthropic.example.toml --data fixtures/spy-daily-1998-q1.csv --llm-cache llm-cache\n  ledger replay --run 1 --risk-config tighter-limits.toml\n  ledger replay --run 1 --redecide --config other-model.toml --llm-cache llm-cache\n  ledger replay --run 1 --html run1.html\n\nExit status with --verify: 0 identical, 1 diverged (first divergence printed field by field), 2 error.")
    )]
    Replay(ReplayArgs),
    /// Paper trading on a market data file played back at --speed.
    #[command(
        after_help = format!("{}\n\n{}", crate::config::strategies_help(), "Takes the same data and strategy flags as `ledger replay`. Ctrl-C or SIGTERM stops after the current cycle and records RunStopped (interrupted); a second signal stops at once. Started again after a crash (kill -9) with the same configuration, it continues the interrupted run (RunResumed); --new-run closes it and starts a new one. While it runs: ledger status, ledger kill-switch trip|reset, ledger events --follow.\n\nExamples:\n  ledger run --config fixtures/ledger.example.toml --speed 0\n  ledger run --data fixtures/btcperp-1m-2022-01.csv --strategy sma-cross --param fast=10 --param slow=30 --speed 60\n  ledger run --config binance-testnet.toml          # a [binance] section: docs/venues.md\n  ledger run --config binance-live.toml --live      # real money: mode = \"live\" needs --live")
    )]
    Run(RunArgs),
    /// Show, trip or reset the kill switch (recorded as events).
    #[command(
        name = "kill-switch",
        after_help = "While a session runs, it records the command (durable before it answers).\n\nExamples:\n  ledger kill-switch status\n  ledger kill-switch reset --by alice --reason \"reviewed the drawdown\""
    )]
    KillSwitch {
        #[command(subcommand)]
        command: KillSwitchCommand,
    },
    /// Performance statistics of one run.
    #[command(
        after_help = "Examples:\n  ledger report --run 1 --json\n  ledger report --run 1 --html run1.html\n  ledger report --compare 1 2 --html compare.html\n  ledger report --run 1 --trades > trades.csv\n  ledger report --run 1 --equity --format json"
    )]
    Report(ReportArgs),
    /// Backtest a rule strategy over a grid of parameters, on every core, ranked.
    #[command(
        after_help = "Parameters: NAME=a..b (integers, inclusive), NAME=a..b:step, NAME=v1,v2,... (repeat --param per name). Constraints are expressions over the names (evalexpr).\n\nExample:\n  ledger sweep --data fixtures/spy-daily-1998-2021.csv --strategy sma-cross --param fast=5..30 --param slow=20..100:10 --constraint 'fast < slow' --rank sharpe --out sweep.csv"
    )]
    Sweep(SweepArgs),
    /// A run's account rebuilt from its events: cash, positions, P&L, fees, equity.
    #[command(
        after_help = "Examples:\n  ledger rebuild                          # the latest run, from its latest snapshot\n  ledger rebuild --run 3 --json\n  ledger rebuild --run 3 --from-scratch   # every event of the run"
    )]
    Rebuild(RebuildArgs),
    /// Publish the ledger to a NATS JetStream stream (backfill; idempotent).
    #[command(
        after_help = "The stream is a replica of the whole ledger, from seq 1: publishing goes on from where the stream is (asked, and checked by hash), so running it twice adds nothing. With --run, the ledger is published through that run's last event. Credentials: LEDGER_NATS_CREDS (a .creds file) or LEDGER_NATS_TOKEN; tls:// URLs require TLS.\n\nExamples:\n  ledger publish --nats nats://127.0.0.1:4222\n  ledger publish --nats nats://a:4222,nats://b:4222 --nats-replicas 3 --run 2"
    )]
    Publish(PublishArgs),
    /// Follow a ledger's NATS stream and fold it, as a separate process (a remote projection).
    #[command(
        after_help = "Reads with the durable pull consumer NAME, checks the hash chain of every record (a gap or a bad link is an error naming the seq), folds the runs index, the kill switch and each run's report, and keeps its state in --state (acknowledging only what is saved there): restarted, it continues where it stopped. Prints the report of --run (default: the latest run) when it stops: at --until, after --idle without a message, or on Ctrl-C.\n\nExamples:\n  ledger project --nats nats://127.0.0.1:4222 --durable desk-2 --run 3 --json --idle 2s\n  ledger project --nats nats://nats.internal:4222 --durable risk --state /var/lib/ledger/risk.state"
    )]
    Project(ProjectArgs),
    /// Rebuild a lost or damaged ledger from its NATS stream, checking the whole chain.
    #[command(
        after_help = "Writes into --data-dir, which must hold no ledger yet; the result is byte for byte the ledger that was published (`ledger verify` gives the same head hash), with the same ledger id, so publishing can go on to the same stream.\n\nExample:\n  ledger --data-dir ./restored restore --from-nats nats://127.0.0.1:4222 && ledger --data-dir ./restored verify"
    )]
    Restore(RestoreArgs),
}

/// Where a ledger's NATS stream is: the flags of every command that talks to NATS.
#[derive(Debug, Args, Default, Clone)]
pub struct StreamFlags {
    /// The JetStream stream (one per ledger).
    #[arg(long, env = "LEDGER_NATS_STREAM", default_value = "LEDGER", value_name = "NAME")]
    pub nats_stream: String,
    /// Replicas of the stream when it is created: 1, or 3 on a three-node cluster.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub nats_replicas: usize,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// NATS server URL(s), comma-separated (nats://, tls://).
    #[arg(long, value_name = "URL")]
    pub nats: String,
    #[command(flatten)]
    pub stream: StreamFlags,
    /// Publish the ledger through this run's last event (default: through the head).
    #[arg(long)]
    pub run: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// NATS server URL(s), comma-separated (nats://, tls://).
    #[arg(long, value_name = "URL")]
    pub nats: String,
    #[command(flatten)]
    pub stream: StreamFlags,
    /// Name of the durable consumer (kept by the server: restarted, it continues).
    #[arg(long, value_name = "NAME")]
    pub durable: String,
    /// The run whose report is printed (default: the latest).
    #[arg(long)]
    pub run: Option<u64>,
    /// Where the projection's state is kept (default: ledger-project-NAME.state in the
    /// current directory).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Stop once this seq is folded.
    #[arg(long, value_name = "SEQ")]
    pub until: Option<u64>,
    /// Stop after this long without a new message, e.g. 2s, 500ms.
    #[arg(long, value_name = "DURATION")]
    pub idle: Option<humantime::Duration>,
    /// Print the report as JSON (as `ledger report --json`).
    #[arg(long)]
    pub json: bool,
    /// Print how late events were folded (fold time minus ts_recorded: count, p50, p99,
    /// max) on stderr when stopping; events already waiting when the projection started
    /// are counted apart.
    #[arg(long)]
    pub lag: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// NATS server URL(s) of the stream to restore from.
    #[arg(long, value_name = "URL")]
    pub from_nats: String,
    #[command(flatten)]
    pub stream: StreamFlags,
}

/// What a session trades on and with: the same flags for `replay` and `run`. They
/// override the config file and the environment (see [`crate::config`]).
#[derive(Debug, Args, Default, Clone)]
pub struct SessionFlags {
    /// TOML configuration (see fixtures/ledger.example.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Market data file (CSV or JSONL, .gz streamed); repeat to merge several files by
    /// time into one stream (one portfolio sees every instrument).
    #[arg(long, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Instrument symbol of a single data file (default: from the file name).
    #[arg(long)]
    pub instrument: Option<String>,
    /// Sort each file by time instead of refusing out-of-order rows (holds the file in
    /// memory).
    #[arg(long)]
    pub sort: bool,
    /// Offset of times written without one, e.g. -05:00 (default: UTC).
    #[arg(long, allow_hyphen_values = true, conflicts_with = "tz")]
    pub utc_offset: Option<String>,
    /// IANA time zone of times written without an offset, with its daylight saving
    /// rules, e.g. America/New_York (default: UTC).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Order of day and month in dates like 01/02/2020: MM/DD/YYYY or DD/MM/YYYY
    /// (default: told by a row with a day above 12; a file with none is refused).
    #[arg(long, value_name = "MM/DD/YYYY|DD/MM/YYYY")]
    pub date_format: Option<String>,
    /// Header name of the column the times are in (default: the first of timestamp,
    /// datetime, date, time, ts, ...; or pandas' unnamed index).
    #[arg(long, value_name = "NAME")]
    pub time_column: Option<String>,
    /// Skip bad market data rows (counted in the run's RunStopped) instead of refusing
    /// the file.
    #[arg(long)]
    pub lenient: bool,
    /// Strategy: sma-cross, ema-rsi, or script (with --param file=DECISIONS.jsonl); their
    /// parameters and defaults are listed below.
    #[arg(long)]
    pub strategy: Option<String>,
    /// Strategy parameter, KEY=VALUE (repeatable): fast, slow, short, size_pct, ...
    #[arg(long, value_name = "KEY=VALUE")]
    pub param: Vec<String>,
    /// Starting cash, account currency ([account] starting_cash; default 100000).
    #[arg(long)]
    pub cash: Option<rust_decimal::Decimal>,
    /// At the end of the data, close open positions at the last bar's close (sets
    /// [venue] close_at_end; like backtesting.py's finalize_trades=True, which closes
    /// them at the last bar's open).
    #[arg(long)]
    pub close_at_end: bool,
    /// Commission, a fraction of each fill's notional: 0.001 = 0.1% ([venue]
    /// commission_rate; default 0).
    #[arg(long, value_name = "RATE")]
    pub commission: Option<rust_decimal::Decimal>,
    /// Slippage against the trader, basis points of the reference price ([venue]
    /// slippage_bps; default 0).
    #[arg(long, value_name = "BPS")]
    pub slippage_bps: Option<rust_decimal::Decimal>,
    /// Fill price rule ([venue] fill_model; default: the one the data fills on: next_open
    /// on bars, quote on quotes, trade on trades).
    #[arg(long, value_enum)]
    pub fill_model: Option<FillModelFlag>,
    /// Stop-loss on every entry, a fraction of the price decided at: 0.02 = 2% below a
    /// long's, above a short's ([exits] stop_loss_pct; a decision's own stop_loss wins).
    #[arg(long, value_name = "FRACTION")]
    pub stop_loss_pct: Option<rust_decimal::Decimal>,
    /// Take-profit on every entry, a fraction of the price decided at: 0.05 = 5% above
    /// a long's ([exits] take_profit_pct; a decision's own take_profit wins).
    #[arg(long, value_name = "FRACTION")]
    pub take_profit_pct: Option<rust_decimal::Decimal>,
    /// Trailing stop on every entry, a fraction of the best price since the fill: 0.03
    /// = 3% ([exits] trailing_stop_pct; a decision's own trailing_stop_pct wins).
    #[arg(long, value_name = "FRACTION")]
    pub trailing_stop_pct: Option<rust_decimal::Decimal>,
    /// Keep every LLM call's outcome in DIR, keyed by the SHA-256 of the request, and
    /// answer a request found there from it: a backtest run again makes no call and
    /// records the same events ([provider] kind = "openai").
    #[arg(long, value_name = "DIR")]
    pub llm_cache: Option<PathBuf>,
    /// With --llm-cache: answer from the cache alone; a request not in it is held
    /// without a call and the command fails (exit 2), naming the request.
    #[arg(long, requires = "llm_cache")]
    pub llm_cache_only: bool,
}

/// `--fill-model`: the paper venue's fill price rules, as the config spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FillModelFlag {
    /// Bars: a market order decided on bar t fills at the open of bar t+1.
    #[value(name = "next_open")]
    NextOpen,
    /// Bars: at the close of the bar it was decided on.
    Close,
    /// Quotes: at the ask (buy) or the bid (sell).
    Quote,
    /// Trades: at the last trade price.
    Trade,
}

impl From<FillModelFlag> for ledger_core::venue::FillModel {
    fn from(flag: FillModelFlag) -> Self {
        match flag {
            FillModelFlag::NextOpen => ledger_core::venue::FillModel::NextOpen,
            FillModelFlag::Close => ledger_core::venue::FillModel::Close,
            FillModelFlag::Quote => ledger_core::venue::FillModel::Quote,
            FillModelFlag::Trade => ledger_core::venue::FillModel::Trade,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub session: SessionFlags,
    /// Re-run this recorded run with its own ticks, times and decisions.
    #[arg(long, conflicts_with = "data")]
    pub run: Option<u64>,
    /// With --run: compare every derived event with the original.
    #[arg(long)]
    pub verify: bool,
    /// Record nothing: the events are chained and folded into the report as they are
    /// made, in memory that does not grow with the data, and then dropped.
    #[arg(long, conflicts_with = "nats")]
    pub in_memory: bool,
    /// Publish the ledger's durable events to this NATS server's stream as they are
    /// recorded (the outbox).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// With --run: read the run from this NATS server's stream (checked by its hash
    /// chain) instead of the local ledger.
    #[arg(long, value_name = "URL", requires = "run", conflicts_with = "verify")]
    pub from_nats: Option<String>,
    /// With --run: ask the decision provider again on every recorded tick instead of
    /// replaying the recorded decisions (a counterfactual), record that as a new run and
    /// report what changed: decisions, verdicts, orders and P&L. The provider is the
    /// run's own, or the one --config ([provider] only) or --strategy names; with
    /// --llm-cache a request asked before is answered from the cache.
    #[arg(long, requires = "run", conflicts_with_all = ["verify", "from_nats"])]
    pub redecide: bool,
    /// With --run: replay the run under the [risk] and [kill_switch] limits of this TOML
    /// file (a section it leaves out stays as recorded), record that as a new run and
    /// report what changed, as --redecide does.
    #[arg(long, value_name = "FILE", requires = "run", conflicts_with_all = ["verify", "from_nats"])]
    pub risk_config: Option<PathBuf>,
    #[command(flatten)]
    pub stream: StreamFlags,
    /// Also write the run's visual report to FILE (as `ledger report --html`).
    #[arg(long, value_name = "FILE", conflicts_with = "verify")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// One JSON object per run, per line, instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The data, strategy, costs and config as for `replay`; each --param is an axis of
    /// the grid: NAME=a..b, NAME=a..b:step, NAME=v1,v2,... or one value.
    #[command(flatten)]
    pub session: SessionFlags,
    /// Keep only combinations where this holds, e.g. 'fast < slow' (repeatable).
    #[arg(long)]
    pub constraint: Vec<String>,
    /// The statistic to rank by: sharpe, sortino, calmar, return, equity, drawdown,
    /// win-rate, profit-factor.
    #[arg(long, default_value = "sharpe")]
    pub rank: String,
    /// Threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Record every backtest as a run in the ledger (one after the other) instead of
    /// running them in memory.
    #[arg(long)]
    pub record: bool,
    /// Where the ranked CSV goes (default sweep.csv).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write a heatmap of the ranked statistic over the first two parameters to
    /// FILE (one self-contained HTML page).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run.
    #[arg(long, required_unless_present = "compare")]
    pub run: Option<u64>,
    /// JSON instead of a table.
    #[arg(long, conflicts_with_all = ["trades", "equity", "html"])]
    pub json: bool,
    /// Also write the visual report to FILE: one self-contained HTML page (opens offline)
    /// with price, trades, equity, drawdown, statistics and the decision behind each trade.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["trades", "equity"])]
    pub html: Option<PathBuf>,
    /// Runs side by side (with --html): equity curves overlaid, statistics in columns
    /// with their differences, the first cycle where decisions differ.
    #[arg(long, value_name = "RUN", num_args = 2.., conflicts_with_all = ["run", "trades", "equity", "json"], requires = "html")]
    pub compare: Vec<u64>,
    /// The round-trip trades instead of the statistics: instrument, side, size, entry
    /// and exit time and price, P&L, return, fees, duration, entry and exit seqs, the
    /// entry decision's reason.
    #[arg(long)]
    pub trades: bool,
    /// The equity curve instead of the statistics: per tick, time, equity, cash,
    /// position value, drawdown.
    #[arg(long, conflicts_with = "trades")]
    pub equity: bool,
    /// Format of --trades and --equity.
    #[arg(long, value_enum, default_value_t = RowFormat::Csv)]
    pub format: RowFormat,
}

/// How `report --trades` and `--equity` write their rows.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RowFormat {
    /// CSV with a header row (pandas: `read_csv(..., parse_dates=[...])`).
    Csv,
    /// A JSON array of objects, money as decimal strings.
    Json,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<u64>,
    /// Fold every event of the run instead of starting from its latest snapshot.
    #[arg(long)]
    pub from_scratch: bool,
    /// JSON (money as decimal strings) instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of this run.
    #[arg(long)]
    pub run: Option<u64>,
    /// First sequence to show.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Show at most this many events.
    #[arg(long)]
    pub limit: Option<usize>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep printing events as they are recorded (through the running session, or by
    /// looking at the ledger every 500 ms when none runs) until Ctrl-C or --limit.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// JSON instead of text: `{"running": true, "session": {...}}` (money as decimal
    /// strings, times as UTC ns) or `{"running": false, "latest_run": ..., ...}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub session: SessionFlags,
    /// Playback pace: 1 = the data's own pace, 0 = as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Close an interrupted run (recording its RunStopped) and start a new one, instead
    /// of continuing it.
    #[arg(long)]
    pub new_run: bool,
    /// Trade real money: required when `[binance] mode = "live"`.
    #[arg(long)]
    pub live: bool,
    /// Publish every durable event to this NATS server's stream (the outbox): trading
    /// goes on while NATS is down, and publishing catches up when it returns.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    #[command(flatten)]
    pub stream: StreamFlags,
}

#[derive(Debug, Subcommand)]
pub enum KillSwitchCommand {
    /// Print whether the kill switch is tripped.
    Status,
    /// Trip it by hand: no new positions until reset.
    Trip {
        /// Who trips it (1 to 64 characters, no control characters).
        #[arg(long)]
        by: String,
        /// Why (1 to 500 characters, no control characters).
        #[arg(long)]
        reason: String,
    },
    /// Reset it after a trip.
    Reset {
        /// Who resets it (1 to 64 characters, no control characters).
        #[arg(long)]
        by: String,
        /// Why (1 to 500 characters, no control characters).
        #[arg(long)]
        reason: String,
    },
}

/// `ledger verify` flags.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A signed checkpoint written by `ledger checkpoint`: the ledger must extend it.
    #[arg(long, value_name = "FILE", requires = "pubkey")]
    pub checkpoint: Option<PathBuf>,
    /// The public key (`NAME+ID+BASE64`, as `ledger audit keygen` writes KEY.pub) that
    /// signed the checkpoint.
    #[arg(long, value_name = "KEY", requires = "checkpoint")]
    pub pubkey: Option<PathBuf>,
}

/// `ledger checkpoint` flags.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// The secret key to sign with (as `ledger audit keygen` writes it).
    #[arg(long, value_name = "KEY")]
    pub sign: PathBuf,
    /// Where to write the checkpoint (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `ledger audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Export one run's audit trail, its ledger records, a manifest and (with --sign) a
    /// signed checkpoint into a new folder.
    #[command(
        after_help = "Writes into --out (created; it must not exist or be empty): rows.jsonl or rows.csv (one row per cycle and per run or operator event, chained by row_hash), records.bin (the ledger records of the range, as stored), manifest.json (range, counts, hashes, Merkle root, sha256 of every file) and, with --sign, checkpoint.txt. The same range exported twice gives identical data files. docs/audit-format.md describes it all.\n\n--from and --to take a seq (1234) or an RFC 3339 time (2026-11-01T00:00:00Z); the range starts and ends on row boundaries. --previous OLD adds a consistency proof that this export extends OLD (same run, same first seq).\n\nExamples:\n  ledger audit export --run 1 --out audit-run1\n  ledger audit export --run 3 --from 2026-11-01T00:00:00Z --to 2026-11-30T23:59:59Z --format csv --out audit-nov\n  ledger audit export --run 3 --out audit-dec --previous audit-nov --sign audit.key"
    )]
    Export(AuditExportArgs),
    /// Check an export with nothing but its folder (and the public key, the previous
    /// export, the ledger when given).
    #[command(
        after_help = "Recomputes every file's sha256, the row hash chain, the ledger's record chain and the RFC 9162 Merkle root; folds the rows again from the records and compares them; checks seq contiguity, counts, that every order follows an approved verdict (or a kill-switch trip, or the close at the end of the data), every fill belongs to an order, and times run forward. --pubkey checks the signed checkpoint; --previous checks the consistency proof against an earlier export; --data-dir also compares the records with the ledger's.\n\nExit status: 0 all checks pass (a summary is printed), 1 failures (every one listed), 2 unusable input.\n\nExamples:\n  ledger audit verify audit-run1\n  ledger audit verify audit-dec --previous audit-nov --pubkey audit.key.pub\n  ledger --data-dir ./ledger-data audit verify audit-run1"
    )]
    Verify(AuditVerifyArgs),
    /// Make an Ed25519 key pair for signing checkpoints.
    #[command(
        after_help = "Writes the secret key to --out (owner-only) and the public key to --out with .pub added, in the forms of Go's sumdb/note (NAME+ID+BASE64). Keep the secret key off the ledger's machine if you can; hand out the .pub file.\n\nExample:\n  ledger audit keygen --name example.com/ledger --out audit.key"
    )]
    Keygen(AuditKeygenArgs),
}

/// What rows look like in an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row; nested lists as JSON text.
    Csv,
}

/// `ledger audit export` flags.
#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// The run to export.
    #[arg(long)]
    pub run: u64,
    /// Start at the first row at or after this seq or RFC 3339 time.
    #[arg(long, value_name = "TIME|SEQ")]
    pub from: Option<String>,
    /// End with the last row at or before this seq or RFC 3339 time.
    #[arg(long, value_name = "TIME|SEQ")]
    pub to: Option<String>,
    /// Row file format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Jsonl)]
    pub format: AuditFormat,
    /// The folder to write (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Sign a checkpoint of the export with this secret key.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// An earlier export of the same run from the same seq: add a proof that this one
    /// extends it.
    #[arg(long, value_name = "DIR")]
    pub previous: Option<PathBuf>,
}

/// `ledger audit verify` flags.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The export's folder.
    pub dir: PathBuf,
    /// Public key the checkpoint must be signed with.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<PathBuf>,
    /// An earlier export this one must extend.
    #[arg(long, value_name = "DIR")]
    pub previous: Option<PathBuf>,
}

/// `ledger audit keygen` flags.
#[derive(Debug, Args)]
pub struct AuditKeygenArgs {
    /// The key's name (no spaces or '+'), e.g. example.com/ledger.
    #[arg(long, default_value = "ledger")]
    pub name: String,
    /// Secret key file to write; the public key goes to the same name plus .pub.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}
