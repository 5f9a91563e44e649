//! A read-only view of the ledger at one moment ([`crate::Ledger::snapshot`]):
//! its latest signed checkpoint and the records' stored tree hashes, cloned
//! from the writer, so an export reads records and works out proofs while
//! the writer goes on appending.

use std::path::{Path, PathBuf};

use crate::LedgerError;
use crate::merkle::{Hash, consistency_path, inclusion_path};
use crate::note::Checkpoint;
use crate::store::VKEYS;
use crate::tree::{Block, TreeStore};

/// `keys.vkey` as written.
pub(crate) fn read_keys(dir: &Path) -> Result<String, LedgerError> {
    let path = dir.join(VKEYS);
    std::fs::read_to_string(&path).map_err(|e| LedgerError::Io { path, what: "read verifier keys".into(), source: e })
}

pub struct Snapshot {
    dir: PathBuf,
    tree: TreeStore,
    /// The latest signed checkpoint when the view was taken (it covers at most the tree).
    note: Option<String>,
    keys: String,
}

impl Snapshot {
    pub(crate) fn from_parts(dir: &Path, tree: TreeStore, note: Option<String>, keys: String) -> Self {
        Self { dir: dir.to_owned(), tree, note, keys }
    }

    /// The records in blocks of 1,024, each with the span of their ledger
    /// times and their kinds, so a reader skips what cannot hold its records.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
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
        let n = self.note.as_ref()?;
        let cp = Checkpoint::of_note(n).ok()?;
        (cp.size <= self.size()).then(|| (n.clone(), cp))
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

    /// RFC 9162 consistency proof from the tree of `old` records to `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        if new > self.size() {
            return Err(LedgerError::Record(format!("the ledger has {} records, not {new}", self.size())));
        }
        let reader = self.tree.reader(&self.dir);
        let proof = consistency_path(&reader, old, new)
            .ok_or_else(|| LedgerError::Record(format!("no consistency proof from {old} to {new} (0 < old <= new)")))?;
        reader.finish(proof)
    }

    pub fn record(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        if index >= self.size() {
            return Err(LedgerError::Record(format!("no record {index}: the ledger has {}", self.size())));
        }
        self.tree.reader(&self.dir).record(index)
    }
}
