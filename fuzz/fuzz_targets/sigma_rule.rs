#![no_main]
//! Untrusted text read as a Sigma rule file, as `custos rules lint` and a rule
//! reload read it: a clear error naming file and line, or rules whose embedded
//! examples run, never a panic or a stack overflow (conditions nest at most 64
//! levels).

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = correlate::sigma::parse_file(Path::new("fuzz.yml"), text) else { return };
    let placeholders = correlate::sigma::placeholders(&ingest::Inventory::default());
    if let Ok(set) = correlate::sigma::RuleSet::compile(&[file], &placeholders) {
        let _ = correlate::sigma::run_examples(&Arc::new(set), None);
    }
});
