#![no_main]
//! Untrusted bytes read as an event, as the views read ledger records and
//! correlation reads the bus: a clear error or an event that writes back to the
//! same JSON, never a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ledger::record::decode(data);
    if let Ok(event) = serde_json::from_slice::<ingest::Event>(data) {
        let json = serde_json::to_vec(&event).expect("an event serializes");
        let again: ingest::Event = serde_json::from_slice(&json).expect("what was written reads back");
        assert_eq!(again, event);
    }
});
