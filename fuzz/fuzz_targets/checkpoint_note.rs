#![no_main]
//! Untrusted checkpoint notes and verifier keys (they arrive with evidence
//! bundles and witnesses): parsing must fail cleanly, never panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ledger::VerifierKey::parse(text);
    let _ = ledger::NoteSigner::parse(text);
    let _ = ledger::Checkpoint::parse_body(text);
    if let Ok(key) = ledger::VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW") {
        let _ = ledger::note::open(text, &[key]);
    }
});
