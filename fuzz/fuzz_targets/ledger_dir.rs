#![no_main]
//! Untrusted bytes read as a ledger directory, as `custos verify DIR` reads a
//! copy an inspector was handed: a report or a clear reason it fails, never a
//! panic. The input is three length-prefixed parts (u32 little-endian): the
//! first segment, the first checkpoint file and `keys.vkey`.

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

/// The next length-prefixed part of `data`; whatever is left when the prefix overruns.
fn part<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let len = data.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let rest = data.get(4..).unwrap_or_default();
    let (this, next) = rest.split_at(len.min(rest.len()));
    *data = next;
    this
}

fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("custos-fuzz-ledger-{}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let (segment, checkpoints, keys) = (part(&mut data), part(&mut data), part(&mut data));
    let dir = dir();
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["segments", "checkpoints"] {
        std::fs::create_dir_all(dir.join(sub)).expect("temporary directory");
    }
    std::fs::write(dir.join("segments/00000000000000000000.seg"), segment).expect("write");
    std::fs::write(dir.join("checkpoints/00000000000000000000.log"), checkpoints).expect("write");
    std::fs::write(dir.join("keys.vkey"), keys).expect("write");

    let mut read = 0u64;
    let scanned = ledger::for_each_record(&dir, |i, _| {
        assert_eq!(i, read, "records come in order");
        read += 1;
    });
    if let Ok(n) = scanned {
        assert_eq!(n, read);
    }
    let notes = ledger::for_each_checkpoint_note(&dir, |_| Ok(()));
    if let Ok(report) = ledger::verify_dir(&dir, None) {
        assert!(scanned.is_ok() && notes.is_ok(), "a ledger that verifies reads back");
        assert_eq!(report.records, read, "verify counts the records the scan reads");
    }
});
