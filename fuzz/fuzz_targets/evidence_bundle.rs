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
    if let Ok((report, _)) = custos::in_force::verify_bundle(data, None) {
        assert!(checkpoint.is_ok(), "a verified bundle has a checkpoint");
        assert!(report.tree_size as usize >= report.records, "records come from the signed tree");
    }
    if let Ok(selection) = std::str::from_utf8(data) {
        let audit = |action: &str, details: serde_json::Value| serde_json::json!({"action": action, "details": details});
        let stating = [
            (2, audit("inventory.change", serde_json::json!({"path": "inventory.toml", "sha256": "ab", "text": "x"}))),
            (3, audit("rules.change", serde_json::json!({"files": 1, "added": [{"path": "a.yml", "sha256": "cd"}]}))),
        ]
        .into();
        let _ = custos::in_force::bundle_in_force(selection, &stating);
    }
});
