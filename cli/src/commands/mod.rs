//! One module per subcommand; [`dispatch`] routes to them.

mod events;
mod kill_switch;
mod rebuild;
mod replay;
mod report;
mod run;
mod runs;
mod verify;

use anyhow::Result;

use crate::args::{Cli, Command};
use crate::Outcome;

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> Result<Outcome> {
    let data_dir = &cli.global.data_dir;
    match cli.command {
        Command::Runs => runs::run(data_dir),
        Command::Events(args) => events::run(data_dir, &args),
        Command::Verify => verify::run(data_dir),
        Command::Replay(args) => replay::run(data_dir, &args),
        Command::Run(args) => run::run(data_dir, &args),
        Command::KillSwitch { command } => kill_switch::run(data_dir, &command),
        Command::Report(args) => report::run(data_dir, args.run, args.json),
        Command::Rebuild(args) => rebuild::run(data_dir, &args),
    }
}
