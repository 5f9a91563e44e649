//! Offline verification of a ledger directory: every frame's CRC, every
//! record's envelope, the hash chain and the Merkle root against every signed
//! checkpoint, every signature, and the key history. Needs no server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::LedgerError;
use crate::merkle::{Frontier, Hash, leaf_hash};
use crate::note::{Checkpoint, VerifierKey, open};
use crate::record::{KeyRecord, RecordKind, decode};
use crate::store::{
    FrameFault, chain_next, checkpoint_files, read_checkpoint_file, read_file, read_frames, read_vkeys, segment_files,
};

/// What a successful verification covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    pub checkpoints: usize,
    /// Size of the newest signed checkpoint.
    pub signed_size: u64,
    pub origin: String,
    pub keys: Vec<String>,
    pub kinds: BTreeMap<String, u64>,
}

impl VerifyReport {
    /// Records after the newest checkpoint (possible only after a crash).
    pub fn unsigned_tail(&self) -> u64 {
        self.records - self.signed_size
    }
}

fn corrupt(index: Option<u64>, what: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt { index, what: what.into() }
}

/// Verifies the ledger in `dir`. With `trusted`, checkpoints must be signed by
/// one of those keys; without, by the keys listed in the ledger, which must
/// each be introduced by a `key` record.
pub fn verify_dir(dir: &Path, trusted: Option<&[VerifierKey]>) -> Result<VerifyReport, LedgerError> {
    verify_dir_with_progress(dir, trusted, &mut |_, _| {})
}

/// [`verify_dir`], calling `progress(segment bytes checked, segment bytes in
/// all)` after each segment, for a progress display on large ledgers.
pub fn verify_dir_with_progress(
    dir: &Path,
    trusted: Option<&[VerifierKey]>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, LedgerError> {
    let listed = read_vkeys(dir)?;
    let keys: Vec<VerifierKey> = match trusted {
        Some(t) => t.to_vec(),
        None => listed.clone(),
    };
    // The checkpoints' signatures (about 30 µs each, one a second while records
    // arrive) are checked on a second thread while this one hashes the records.
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let signatures = scope.spawn(|| check_signatures(dir, &keys, &stop));
        let records = check_records(dir, &listed, &keys, progress);
        if records.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let signatures = signatures.join().unwrap_or_else(|_| Err(corrupt(None, "the signature check failed")));
        let report = records?;
        signatures?;
        Ok(report)
    })
}

/// Checks every checkpoint note's signature by one of `keys`, until `stop`.
fn check_signatures(dir: &Path, keys: &[VerifierKey], stop: &AtomicBool) -> Result<(), LedgerError> {
    let mut i = 0u64;
    for path in checkpoint_files(dir)? {
        // Damaged files are reported by the records' pass, which reads them too.
        let (notes, _, _) = read_checkpoint_file(&path)?;
        for note in notes {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Err(e) = open(&note, keys) {
                let size = Checkpoint::of_note(&note).ok().map(|c| c.size);
                let at = size.map(|n| format!(" (size {n})")).unwrap_or_default();
                return Err(corrupt(size, format!("checkpoint {i}{at}: {e}")));
            }
            i += 1;
        }
    }
    Ok(())
}

/// Every record against the checkpoints' roots and chain heads, and the key history.
fn check_records(
    dir: &Path,
    listed: &[VerifierKey],
    keys: &[VerifierKey],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, LedgerError> {
    // Checkpoints are read one file at a time and checked as the records reach
    // their size, so a year of them costs no more memory than a day.
    let mut notes = Notes::new(dir)?;
    let origin = notes.pending.as_ref().ok_or_else(|| corrupt(None, "no signed checkpoint"))?.origin.clone();
    let mut frontier = Frontier::default();
    let mut chain = [0u8; 32];
    let mut introduced: Vec<String> = Vec::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    notes.check_at(&frontier, &chain)?;
    let segments = segment_files(dir)?;
    let total: u64 = segments.iter().map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
    let mut done = 0u64;
    for (first, path) in &segments {
        if *first != frontier.size() {
            return Err(corrupt(
                Some(frontier.size()),
                format!("segment {} should start at index {}", path.display(), frontier.size()),
            ));
        }
        let bytes = read_file(path)?;
        let (end, fault) = read_frames(&bytes, |_, payload| {
            let index = frontier.size();
            let rec = decode(payload).map_err(|e| corrupt(Some(index), e.to_string()))?;
            if index == 0 && rec.kind != RecordKind::Key {
                return Err(corrupt(Some(0), "the first record is not a key record"));
            }
            if rec.kind == RecordKind::Key {
                let k: KeyRecord =
                    serde_json::from_value(rec.data).map_err(|e| corrupt(Some(index), format!("key record: {e}")))?;
                if k.origin != origin {
                    return Err(corrupt(Some(index), format!("key record for origin {} in log {origin}", k.origin)));
                }
                introduced.push(k.vkey);
            }
            *kinds.entry(rec.kind.name().to_owned()).or_default() += 1;
            let leaf = leaf_hash(payload);
            chain = chain_next(&chain, &leaf);
            frontier.push(leaf);
            notes.check_at(&frontier, &chain)
        })?;
        if let Some(f) = fault {
            let why = match f {
                FrameFault::Truncated => "frame cut short (torn tail)".to_owned(),
                FrameFault::Corrupt(w) => w,
            };
            return Err(corrupt(Some(frontier.size()), format!("{} at byte {end}: {why}", path.display())));
        }
        done += bytes.len() as u64;
        progress(done, total);
    }
    if let Some(cp) = &notes.pending {
        return Err(corrupt(
            Some(frontier.size()),
            format!(
                "checkpoint {} covers {} records but the ledger holds {}",
                notes.seen - 1,
                cp.size,
                frontier.size()
            ),
        ));
    }
    // Keys: the listed ones must each be introduced in the log itself.
    if let Some(k) = listed.iter().find(|k| !introduced.contains(&k.encode())) {
        return Err(corrupt(None, format!("key {} is listed but no key record introduces it", k.encode())));
    }
    Ok(VerifyReport {
        records: frontier.size(),
        checkpoints: notes.seen as usize,
        signed_size: notes.signed_size,
        origin,
        keys: keys.iter().map(VerifierKey::encode).collect(),
        kinds,
    })
}

/// The signed checkpoints in order, one file in memory at a time, with the
/// next one not yet matched against the records.
struct Notes {
    files: std::vec::IntoIter<PathBuf>,
    /// The current file's notes not yet taken, newest last.
    file: Vec<String>,
    /// The next checkpoint to match.
    pending: Option<Checkpoint>,
    /// Notes taken so far (the pending one included).
    seen: u64,
    /// Size of the last checked checkpoint.
    signed_size: u64,
}

impl Notes {
    fn new(dir: &Path) -> Result<Self, LedgerError> {
        let files = checkpoint_files(dir)?.into_iter();
        let mut notes = Self { files, file: Vec::new(), pending: None, seen: 0, signed_size: 0 };
        notes.advance()?;
        Ok(notes)
    }

    /// Takes the next note, loading the next file when this one is used up;
    /// checks that sizes never shrink and the origin never changes.
    fn advance(&mut self) -> Result<(), LedgerError> {
        while self.file.is_empty() {
            let Some(path) = self.files.next() else {
                self.pending = None;
                return Ok(());
            };
            let (mut notes, _, fault) = read_checkpoint_file(&path)?;
            if let Some(f) = fault {
                let at = self.seen + notes.len() as u64;
                return Err(corrupt(None, format!("{}: checkpoint {at} is damaged ({f:?})", path.display())));
            }
            notes.reverse();
            self.file = notes;
        }
        let note = self.file.pop().unwrap_or_default();
        let i = self.seen;
        let cp = Checkpoint::of_note(&note).map_err(|e| corrupt(None, format!("checkpoint {i}: {e}")))?;
        if let Some(prev) = &self.pending {
            if cp.size < prev.size {
                return Err(corrupt(
                    Some(cp.size),
                    format!("checkpoint {i} (size {}) is smaller than the one before it ({})", cp.size, prev.size),
                ));
            }
            if cp.origin != prev.origin {
                return Err(corrupt(None, format!("checkpoint {i} has origin {} after {}", cp.origin, prev.origin)));
            }
        }
        self.pending = Some(cp);
        self.seen += 1;
        Ok(())
    }

    /// Checks every note of the records' current size: its root and chain
    /// against what the records give.
    fn check_at(&mut self, frontier: &Frontier, chain: &Hash) -> Result<(), LedgerError> {
        let from = self.signed_size;
        while let Some(cp) = self.pending.as_ref().filter(|cp| cp.size == frontier.size()) {
            let i = self.seen - 1;
            if cp.root != frontier.root() || cp.chain != *chain {
                return Err(corrupt(
                    Some(from),
                    format!(
                        "records {from}..{} do not match the Merkle root / chain of signed checkpoint {i}",
                        cp.size
                    ),
                ));
            }
            self.signed_size = cp.size;
            self.advance()?;
        }
        Ok(())
    }
}
