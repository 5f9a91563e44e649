#![no_main]
//! Untrusted bytes read as an evidence bundle, as `custos verify FILE` reads
//! what an inspector was handed: a report or a clear reason it fails, never a
//! panic. A bundle that verifies must name the checkpoint it verified against.
//! What its `selection.json` says was in force, and its proofs of
//! audit-trail reviews, are read as `custos verify` reads them; a bundle
//! signed with any key verifies unless a key is pinned, so that file is read
//! from the raw bytes too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checkpoint = ledger::bundle_checkpoint(data);
    if let Ok((report, _)) = custos::evidence::verify_bundle(data, None) {
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
        let review = serde_json::json!({"printed_name": "q", "review": {"tree_size": 7, "root_hash": "00"}});
        let seen = custos::evidence::Reviewed::of(ledger::RecordKind::Signature, &review).map(|r| (15, r));
        let _ = custos::evidence::bundle_reviews(selection, &seen.into_iter().collect(), 20, &[0; 32]);
    }
});
