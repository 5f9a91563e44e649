#![no_main]
//! Untrusted bytes read as an evidence bundle, as `custos verify FILE` reads
//! what an inspector was handed: a report or a clear reason it fails, never a
//! panic. A bundle that verifies must name the checkpoint it verified against.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checkpoint = ledger::bundle_checkpoint(data);
    if let Ok(report) = ledger::verify_bundle(data, None) {
        assert!(checkpoint.is_ok(), "a verified bundle has a checkpoint");
        assert!(report.tree_size as usize >= report.records, "records come from the signed tree");
    }
});
