#![no_main]
//! Untrusted bytes read as an evidence bundle, as `custos verify FILE` reads
//! what an inspector was handed: a report or a clear reason it fails, never a
//! panic. A bundle that verifies must name the checkpoint it verified against.
//! What its `selection.json` says was in force is read as `custos verify`
//! reads it; a bundle signed with any key verifies unless a key is pinned, so
//! that file is read from the raw bytes too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checkpoint = ledger::bundle_checkpoint(data);
    if let Ok(report) = ledger::verify_bundle(data, None) {
        assert!(checkpoint.is_ok(), "a verified bundle has a checkpoint");
        assert!(report.tree_size as usize >= report.records, "records come from the signed tree");
        let _ = custos::in_force::bundle_in_force(&report.selection, &report.indices);
    }
    if let Ok(selection) = std::str::from_utf8(data) {
        let _ = custos::in_force::bundle_in_force(selection, &[0, 1, 2, 3, 7, 30]);
    }
});
