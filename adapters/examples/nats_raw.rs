//! The benchmark's baseline (scripts/bench/nats.sh): raw async-nats publishing of the
//! very messages `ledger publish` sends for a ledger (same subjects, headers and JSON
//! payloads), prepared in memory first and then published with nothing else to do, in
//! windows of [`ACK_WINDOW`] acks awaited, as the outbox does.
//!
//! ```text
//! cargo run --release -p ledger-adapters --example nats_raw -- DATA_DIR nats://127.0.0.1:4222
//! ```
//! Prints `raw: N events in S s, R events/s` (the publishing alone) on stdout.

use std::ops::ControlFlow;
use std::time::Instant;

use async_nats::jetstream;
use ledger_adapters::nats::{outgoing, Outgoing, ACK_WINDOW, DUPLICATE_WINDOW};
use ledger_adapters::sled_log::{Durability, SledLog};
use ledger_core::chain::Hash32;
use ledger_core::log::RecordSource;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, url] = args.as_slice() else {
        return Err("usage: nats_raw DATA_DIR NATS_URL".into());
    };
    let mut log = SledLog::open(std::path::Path::new(dir), Durability::Strict)?;
    let ledger_id = log.ledger_id()?;
    let mut messages: Vec<Outgoing> = Vec::new();
    let mut prev = Hash32::ZERO;
    let mut failure = None;
    log.visit_records(
        ledger_core::ids::Seq::new(1),
        &mut |seq, bytes| match outgoing(&ledger_id, seq, &prev, bytes) {
            Ok((message, hash)) => {
                messages.push(message);
                prev = hash;
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        },
    )?;
    if let Some(failure) = failure {
        return Err(failure.into());
    }
    drop(log);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async {
        let client = async_nats::connect(url.as_str()).await?;
        let js = jetstream::ContextBuilder::new().max_ack_inflight(ACK_WINDOW * 2).build(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: "RAW".into(),
            subjects: vec!["ledger.>".into()],
            storage: jetstream::stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await?;
        let count = messages.len();
        let started = Instant::now();
        let mut pending = Vec::with_capacity(ACK_WINDOW);
        for message in messages {
            let publish =
                jetstream::message::PublishMessage::build().payload(message.payload.into()).headers(message.headers);
            pending.push(js.send_publish(message.subject, publish).await?);
            if pending.len() == ACK_WINDOW {
                for ack in pending.drain(..) {
                    ack.await?;
                }
            }
        }
        for ack in pending.drain(..) {
            ack.await?;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!("raw: {count} events in {seconds:.2} s, {:.0} events/s", count as f64 / seconds);
        Ok::<(), Error>(())
    })
}
