//! Arbitrary text through the decision parser (`ledger_core::decision::parse_decision`):
//! no panic, and a decision parsed as valid keeps the contract (size and confidence in
//! 0..1); an invalid one is a `hold`.
#![no_main]

use ledger_core::decision::parse_decision;
use ledger_core::event::{Action, ParseStatus};
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (decision, status) = parse_decision(text);
    match status {
        ParseStatus::Ok => {
            for value in [decision.size_pct, decision.confidence] {
                assert!(value >= Decimal::ZERO && value <= Decimal::ONE, "{value} outside 0..1 from {text:?}");
            }
        }
        _ => assert_eq!(decision.action, Action::Hold, "an invalid output must become hold"),
    }
});
