//! A loopback websocket server replaying a Binance combined-stream capture once, for
//! the benchmark (`scripts/bench/binance.sh`): `binance_replay CAPTURE PORT`. Prints
//! its URL, serves one connection, closes it with a close frame and exits.

use std::path::PathBuf;

use ledger_adapters::binance::mock::{read_capture, Connection, ReplayServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(capture), Some(port)) = (args.next(), args.next()) else {
        return Err("usage: binance_replay CAPTURE PORT".into());
    };
    let messages = read_capture(&PathBuf::from(capture))?;
    let plan = vec![Connection { messages: 0..messages.len(), close_frame: true }];
    let server = ReplayServer::start(messages, plan, port.parse()?)?;
    println!("{}", server.url());
    server.join();
    Ok(())
}
