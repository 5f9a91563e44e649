#![no_main]
//! Untrusted bytes read as an event, as the views read ledger records and
//! correlation reads the bus: a clear error or an event that writes back to the
//! same JSON, never a panic. The views' own reading (vendor fields kept aside
//! as text) must agree with the full one on every event.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ledger::record::decode(data);
    let aside = serde_json::from_slice::<custos::follow::LedgerEvent>(data);
    if let Ok(event) = serde_json::from_slice::<ingest::Event>(data) {
        let json = serde_json::to_vec(&event).expect("an event serializes");
        let again: ingest::Event = serde_json::from_slice(&json).expect("what was written reads back");
        assert_eq!(again, event);
        let aside = aside.expect("an event reads with its vendor fields aside");
        let mut rest = event.clone();
        rest.unmapped = Default::default();
        assert_eq!(aside.event, rest);
        let fields = serde_json::to_value(&event.unmapped).expect("vendor fields serialize");
        match aside.unmapped {
            Some(text) => assert_eq!(serde_json::from_str::<serde_json::Value>(&text).expect("json text"), fields),
            None => assert!(event.unmapped.is_empty()),
        }
    }
});
