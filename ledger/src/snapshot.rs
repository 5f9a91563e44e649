//! A read-only view of a ledger directory — for exports and proofs from a
//! process that is not the writer (the writer may be appending meanwhile; a
//! half-written tail is simply not part of the view).

use std::path::{Path, PathBuf};

use crate::LedgerError;
use crate::merkle::{Frontier, Hash, inclusion_path, leaf_hash};
use crate::note::Checkpoint;
use crate::store::{FrameFault, VKEYS, read_checkpoint_notes, read_file, read_frames, segment_files};
use crate::tree::{Block, TreeStore};

/// `keys.vkey` as written.
pub(crate) fn read_keys(dir: &Path) -> Result<String, LedgerError> {
    let path = dir.join(VKEYS);
    std::fs::read_to_string(&path).map_err(|e| LedgerError::Io { path, what: "read verifier keys".into(), source: e })
}

pub struct Snapshot {
    dir: PathBuf,
    tree: TreeStore,
    notes: Vec<String>,
    keys: String,
}

impl Snapshot {
    /// Reads the records' tree hashes, the signed checkpoints and the keys.
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        let mut tree = TreeStore::default();
        // The frontier's merges are the subtree hashes the tree store keeps.
        let mut frontier = Frontier::default();
        let mut completed = Vec::new();
        let segments = segment_files(dir)?;
        for (i, (first, path)) in segments.iter().enumerate() {
            if *first != tree.size() {
                return Err(LedgerError::Corrupt {
                    index: Some(tree.size()),
                    what: format!("segment {} starts at index {first}", path.display()),
                });
            }
            let bytes = read_file(path)?;
            let (_, fault) = read_frames(&bytes, |at, payload| {
                let leaf = leaf_hash(payload);
                completed.clear();
                frontier.push_observed(leaf, |h, x| completed.push((h, *x)));
                tree.push(leaf, *first, at as u64, &completed, crate::record::peek(payload));
                Ok(())
            })?;
            match fault {
                None => {}
                Some(FrameFault::Truncated) if i + 1 == segments.len() => {}
                Some(f) => {
                    return Err(LedgerError::Corrupt {
                        index: Some(tree.size()),
                        what: format!("{}: {f:?}", path.display()),
                    });
                }
            }
        }
        let (notes, _, _) = read_checkpoint_notes(dir)?;
        Ok(Self::from_parts(dir, tree, notes, read_keys(dir)?))
    }

    pub(crate) fn from_parts(dir: &Path, tree: TreeStore, notes: Vec<String>, keys: String) -> Self {
        Self { dir: dir.to_owned(), tree, notes, keys }
    }

    /// The records in blocks of 1,024, each with the span of their ledger
    /// times and their kinds, so a reader skips what cannot hold its records.
    pub fn blocks(&self) -> &[Block] {
        self.tree.blocks()
    }

    /// Calls `f(index, bytes)` for records `start..end`, read in order.
    pub fn scan(&self, start: u64, end: u64, f: impl FnMut(u64, Vec<u8>)) -> Result<(), LedgerError> {
        if end > self.size() {
            return Err(LedgerError::Record(format!("no record {}: the ledger has {}", end - 1, self.size())));
        }
        if start >= end {
            return Ok(());
        }
        self.tree.reader(&self.dir).scan(start, end, f)
    }

    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The newest signed checkpoint the records cover, with its parsed body.
    pub fn latest_checkpoint(&self) -> Option<(String, Checkpoint)> {
        self.notes.iter().rev().find_map(|n| {
            let body = &n[..n.find("\n\n")? + 1];
            let cp = Checkpoint::parse_body(body).ok()?;
            (cp.size <= self.size()).then(|| (n.clone(), cp))
        })
    }

    /// `keys.vkey` as written.
    pub fn keys(&self) -> &str {
        &self.keys
    }

    /// Inclusion proofs of records against one tree size, sharing the work
    /// nearby records have in common (a bundle of a day's records).
    pub fn inclusion_proofs(&self, indices: &[u64], size: u64) -> Result<Vec<Vec<Hash>>, LedgerError> {
        if size > self.size() {
            return Err(LedgerError::Record(format!("the ledger has {} records, not {size}", self.size())));
        }
        let reader = self.tree.memo_reader(&self.dir);
        let proofs = indices
            .iter()
            .map(|&index| {
                inclusion_path(&reader, index, size)
                    .ok_or_else(|| LedgerError::Record(format!("index {index} is not below size {size}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        reader.finish(proofs)
    }

    pub fn record(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        if index >= self.size() {
            return Err(LedgerError::Record(format!("no record {index}: the ledger has {}", self.size())));
        }
        self.tree.reader(&self.dir).record(index)
    }
}
