//! Fingerprints the code a state snapshot depends on (the correlation crate
//! and the views' replay of the ledger), so that a snapshot written by other
//! code is not taken up: the start replays the ledger instead.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for e in entries.flatten() {
                files(&e.path(), out);
            }
        }
        Err(_) => out.push(path.to_path_buf()),
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let inputs = [root.join("../correlate/src"), root.join("src/views.rs"), root.join("src/state.rs")];
    let mut all = Vec::new();
    for input in &inputs {
        println!("cargo:rerun-if-changed={}", input.display());
        files(input, &mut all);
    }
    all.sort();
    let mut h = Sha256::new();
    for f in &all {
        h.update(f.strip_prefix(&root).unwrap_or(f).to_string_lossy().as_bytes());
        h.update(std::fs::read(f).unwrap_or_default());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=CUSTOS_STATE_CODE={hex}");
}
