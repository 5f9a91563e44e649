//! Offline verification of a ledger directory: every frame's CRC, every
//! record's envelope, the hash chain and the Merkle root against every signed
//! checkpoint, every signature, and the key history. Needs no server.

use std::collections::BTreeMap;
use std::path::Path;

use crate::LedgerError;
use crate::merkle::{Frontier, Hash, leaf_hash};
use crate::note::{Checkpoint, VerifierKey, open};
use crate::record::{KeyRecord, RecordKind, decode};
use crate::store::{
    CHECKPOINTS, FrameFault, chain_next, read_checkpoint_notes, read_file, read_frames, read_vkeys, segment_files,
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
    let (notes, _, fault) = read_checkpoint_notes(dir)?;
    if let Some(f) = fault {
        return Err(corrupt(None, format!("{CHECKPOINTS}: checkpoint {} is damaged ({f:?})", notes.len())));
    }
    if notes.is_empty() {
        return Err(corrupt(None, "no signed checkpoint"));
    }
    let mut cps = Vec::with_capacity(notes.len());
    for (i, n) in notes.iter().enumerate() {
        let split = n.find("\n\n").ok_or_else(|| corrupt(None, format!("checkpoint {i}: no signature block")))?;
        let cp = Checkpoint::parse_body(&n[..split + 1]).map_err(|e| corrupt(None, format!("checkpoint {i}: {e}")))?;
        if let Some(prev) = cps.last().map(|(c, _): &(Checkpoint, _)| c) {
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
        cps.push((cp, n.as_str()));
    }
    let origin = cps[0].0.origin.clone();
    // Roots and chain heads the records give at every checkpoint size.
    let mut wanted: BTreeMap<u64, Option<(Hash, Hash)>> = cps.iter().map(|(c, _)| (c.size, None)).collect();
    let mut frontier = Frontier::default();
    let mut chain = [0u8; 32];
    let mut introduced: Vec<String> = Vec::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(slot) = wanted.get_mut(&0) {
        *slot = Some((frontier.root(), chain));
    }
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
            if let Some(slot) = wanted.get_mut(&frontier.size()) {
                *slot = Some((frontier.root(), chain));
            }
            Ok(())
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
    // Keys: the listed ones must each be introduced in the log itself.
    if let Some(k) = listed.iter().find(|k| !introduced.contains(&k.encode())) {
        return Err(corrupt(None, format!("key {} is listed but no key record introduces it", k.encode())));
    }
    let keys: Vec<VerifierKey> = match trusted {
        Some(t) => t.to_vec(),
        None => listed.clone(),
    };
    for (i, (cp, note)) in cps.iter().enumerate() {
        open(note, &keys).map_err(|e| corrupt(Some(cp.size), format!("checkpoint {i} (size {}): {e}", cp.size)))?;
        match wanted.get(&cp.size).copied().flatten() {
            None => {
                return Err(corrupt(
                    Some(frontier.size()),
                    format!("checkpoint {i} covers {} records but the ledger holds {}", cp.size, frontier.size()),
                ));
            }
            Some((root, ch)) if root != cp.root || ch != cp.chain => {
                let from = cps[..i].iter().rev().find(|(c, _)| c.size < cp.size).map_or(0, |(c, _)| c.size);
                return Err(corrupt(
                    Some(from),
                    format!(
                        "records {from}..{} do not match the Merkle root / chain of signed checkpoint {i}",
                        cp.size
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(VerifyReport {
        records: frontier.size(),
        checkpoints: cps.len(),
        signed_size: cps.last().map_or(0, |(c, _)| c.size),
        origin,
        keys: keys.iter().map(VerifierKey::encode).collect(),
        kinds,
    })
}
