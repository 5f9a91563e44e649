#![no_main]
//! Untrusted bytes into the octoplant_job parser (and enrichment against a plant inventory): it must return an
//! event or a reason, never panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = ingest::RawRecord::new("fuzz".into(), ingest::Format::OctoplantJob, 1_795_000_000_000, data.to_vec());
    let _ = ingest::normalize(raw, &custos_fuzz::PLANT, 0);
});
