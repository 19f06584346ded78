//! End-to-end tests: the real `ledger` binary on real fixtures, in temporary data
//! directories. One test binary; each module is one area.

mod chat_server;
mod harness;

mod audit;
mod backtest;
mod binance;
mod control;
mod corpus;
mod counterfactual;
mod crash;
mod errors;
mod exits;
mod formats;
mod html;
mod ledger;
mod llm;
mod nats;
mod parity;
mod rebuild;
mod results;
mod signals;
mod storage;
mod stream;
mod sweep;
mod terminal;
