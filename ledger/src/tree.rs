//! Stored tree hashes for proofs: the hashes of complete subtrees every four
//! levels (of 16, 256, 4096, … leaves), and where every 16th record starts.
//! A subtree hash then costs at most 15 node hashes per stored level, and the
//! leaf hashes below the lowest stored level come from at most 16 records
//! read from their segment: a proof needs O(log n) work and a few reads,
//! however long the ledger. Kept in memory (about 3.2 bytes per record: per
//! 16 records a 32-byte hash and a 16-byte anchor, and less above; in chunks
//! an export's clone shares) and rebuilt when the ledger is opened, which
//! reads every record anyway.
//!
//! Beside them, for each block of 1,024 records, the span of their ledger
//! times and the kinds among them ([`Block`]): an export of a day, or of an
//! incident, reads only the blocks that can hold its records. Computed from
//! the records themselves and never written down, so no file can hide a
//! record from a reader.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::LedgerError;
use crate::chunked::Chunked;
use crate::merkle::{Hash, Subtrees, leaf_hash, root};
use crate::record::RecordKind;
use crate::store::{FRAME_HEADER, MAX_RECORD, SEGMENTS};

/// Leaves per group at the lowest stored level.
pub(crate) const GROUP: u64 = 16;
/// Records per [`Block`].
const BLOCK: u64 = 1024;

/// What records `start..end` hold: the span of their ledger times and their
/// kinds. A record whose kind and time cannot be read from its end (not in
/// canonical form) makes its block span all times and all kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub start: u64,
    pub end: u64,
    pub min_recorded_at: i64,
    pub max_recorded_at: i64,
    kinds: u16,
}

impl Block {
    fn new(start: u64) -> Self {
        Self { start, end: start, min_recorded_at: i64::MAX, max_recorded_at: i64::MIN, kinds: 0 }
    }
    fn push(&mut self, envelope: Option<(RecordKind, i64)>) {
        let (kinds, min, max) = match envelope {
            Some((kind, at)) => (1 << kind as u16, at, at),
            None => (u16::MAX, i64::MIN, i64::MAX),
        };
        self.kinds |= kinds;
        self.min_recorded_at = self.min_recorded_at.min(min);
        self.max_recorded_at = self.max_recorded_at.max(max);
        self.end += 1;
    }
    /// Whether a record ledgered in `from..=to` (Unix ms) may be here.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        self.min_recorded_at <= to && from <= self.max_recorded_at
    }
    /// Whether a record of `kind` may be here.
    pub fn holds(&self, kind: RecordKind) -> bool {
        self.kinds & (1 << kind as u16) != 0
    }
}

/// Cloned for each export's [`crate::Snapshot`]: the long lists share their
/// full chunks with the clone ([`Chunked`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct TreeStore {
    /// `levels[j]`: hashes of the complete subtrees of 16^(j+1) leaves, in order.
    levels: Vec<Chunked<Hash>>,
    /// Leaf hashes of the group of 16 still filling.
    filling: Vec<Hash>,
    size: u64,
    /// For every 16th record: the first index of its segment and its byte offset there.
    anchors: Chunked<(u64, u64)>,
    blocks: Chunked<Block>,
}

impl TreeStore {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Takes in the next leaf, stored in segment `segment_first` at `offset`,
    /// with the perfect subtrees it completed in the writer's frontier
    /// (`(height, hash)`; those at heights 4, 8, 12, … are stored), and the
    /// record's kind and time ([`crate::record::peek`]).
    pub(crate) fn push(
        &mut self,
        leaf: Hash,
        segment_first: u64,
        offset: u64,
        completed: &[(u32, Hash)],
        envelope: Option<(RecordKind, i64)>,
    ) {
        if self.size.is_multiple_of(GROUP) {
            self.anchors.push((segment_first, offset));
        }
        if self.size.is_multiple_of(BLOCK) {
            self.blocks.push(Block::new(self.size));
        }
        if let Some(block) = self.blocks.last_mut() {
            block.push(envelope);
        }
        self.filling.push(leaf);
        self.size += 1;
        for (height, hash) in completed.iter().filter(|(h, _)| h % 4 == 0) {
            let j = (height / 4 - 1) as usize;
            if self.levels.len() == j {
                self.levels.push(Chunked::default());
            }
            self.levels[j].push(*hash);
        }
        if self.filling.len() as u64 == GROUP {
            self.filling.clear();
        }
    }

    /// The blocks of records, in order.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.iter()
    }

    /// A reader of subtree hashes for proofs over the ledger in `dir`.
    pub(crate) fn reader<'a>(&'a self, dir: &'a Path) -> TreeReader<'a> {
        TreeReader { store: self, dir, error: RefCell::new(None), memo: None }
    }

    /// A reader for many proofs at once: the subtree hashes and leaf groups
    /// it works out are kept, as proofs of nearby records share most of them.
    pub(crate) fn memo_reader<'a>(&'a self, dir: &'a Path) -> TreeReader<'a> {
        TreeReader { memo: Some(RefCell::default()), ..self.reader(dir) }
    }
}

/// Subtree hashes from the store, reading records for the lowest levels.
/// An I/O error is kept and reported after the proof (`Subtrees` cannot fail).
pub(crate) struct TreeReader<'a> {
    store: &'a TreeStore,
    dir: &'a Path,
    error: RefCell<Option<LedgerError>>,
    memo: Option<RefCell<Memo>>,
}

/// What a memo reader has worked out: subtree hashes by range, and the leaf
/// hashes of whole groups of 16 read from their segment.
#[derive(Default)]
struct Memo {
    subtrees: HashMap<(u64, u64), Hash>,
    groups: HashMap<u64, Vec<Hash>>,
}

impl TreeReader<'_> {
    pub(crate) fn finish<T>(self, value: T) -> Result<T, LedgerError> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    /// The bytes of record `index`.
    pub(crate) fn record(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let mut out = None;
        self.scan(index, index + 1, |_, payload| out = Some(payload))?;
        out.ok_or(LedgerError::Corrupt { index: Some(index), what: "record not found where the index says".into() })
    }

    /// The leaf hashes of `start..end` (within one group of 16).
    fn leaves(&self, start: u64, end: u64) -> Result<Vec<Hash>, LedgerError> {
        let group = start / GROUP;
        let first = group * GROUP;
        if first + GROUP > self.store.size {
            // The group still filling is in memory.
            let from = (start - first) as usize;
            return Ok(self.store.filling[from..from + (end - start) as usize].to_vec());
        }
        let Some(memo) = &self.memo else {
            let mut out = Vec::with_capacity((end - start) as usize);
            self.scan(start, end, |_, payload| out.push(leaf_hash(&payload)))?;
            return Ok(out);
        };
        if !memo.borrow().groups.contains_key(&group) {
            let mut all = Vec::with_capacity(GROUP as usize);
            self.scan(first, first + GROUP, |_, payload| all.push(leaf_hash(&payload)))?;
            memo.borrow_mut().groups.insert(group, all);
        }
        Ok(memo.borrow().groups[&group][(start - first) as usize..(end - first) as usize].to_vec())
    }

    /// Calls `f` with records `start..end`, in order, read sequentially from
    /// the anchor of `start`'s group on.
    pub(crate) fn scan(&self, start: u64, end: u64, f: impl FnMut(u64, Vec<u8>)) -> Result<(), LedgerError> {
        self.scan_where(start, end, |_| true, f)
    }

    /// [`Self::scan`] of the records `wanted` keeps; the others are passed
    /// over in the file without being copied out.
    pub(crate) fn scan_where(
        &self,
        start: u64,
        end: u64,
        wanted: impl Fn(u64) -> bool,
        mut f: impl FnMut(u64, Vec<u8>),
    ) -> Result<(), LedgerError> {
        let group = start / GROUP;
        let first = group * GROUP;
        let (mut segment_first, offset) = self.store.anchors[group as usize];
        let mut index = first;
        let mut file = open_segment(self.dir, segment_first)?;
        file.1.seek(SeekFrom::Start(offset)).map_err(|e| io(&file.0, e))?;
        // Buffered: a proof reads a few records, a follower thousands.
        let capacity = if end - start > GROUP { 256 << 10 } else { 8 << 10 };
        let mut file = (file.0, BufReader::with_capacity(capacity, file.1));
        while index < end {
            let mut header = [0u8; FRAME_HEADER];
            match file.1.read_exact(&mut header) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && index != segment_first => {
                    // The group goes on in the next segment.
                    segment_first = index;
                    let (path, f) = open_segment(self.dir, segment_first)?;
                    file = (path, BufReader::with_capacity(capacity, f));
                    continue;
                }
                Err(e) => return Err(io(&file.0, e)),
            }
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            if len > MAX_RECORD {
                return Err(LedgerError::Corrupt { index: Some(index), what: format!("frame length {len}") });
            }
            if index >= start && wanted(index) {
                let mut payload = vec![0u8; len];
                file.1.read_exact(&mut payload).map_err(|e| io(&file.0, e))?;
                f(index, payload);
            } else {
                file.1.seek_relative(len as i64).map_err(|e| io(&file.0, e))?;
            }
            index += 1;
        }
        Ok(())
    }

    fn try_subtree(&self, start: u64, end: u64) -> Result<Hash, LedgerError> {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let height = n.trailing_zeros();
            let stored = height / 4;
            if stored == 0 {
                return Ok(root(&self.leaves(start, end)?));
            }
            let width = GROUP.pow(stored);
            let level = &self.store.levels[stored as usize - 1];
            let hashes: Vec<Hash> = ((start / width) as usize..(end / width) as usize).map(|i| level[i]).collect();
            return Ok(root(&hashes));
        }
        let k = 1u64 << (u64::BITS - 1 - (n - 1).leading_zeros());
        Ok(crate::merkle::node_hash(&self.try_subtree(start, start + k)?, &self.try_subtree(start + k, end)?))
    }
}

impl Subtrees for TreeReader<'_> {
    fn subtree(&self, start: u64, end: u64) -> Hash {
        if let Some(h) = self.memo.as_ref().and_then(|m| m.borrow().subtrees.get(&(start, end)).copied()) {
            return h;
        }
        match self.try_subtree(start, end) {
            Ok(h) => {
                if let Some(m) = &self.memo {
                    m.borrow_mut().subtrees.insert((start, end), h);
                }
                h
            }
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                [0u8; 32]
            }
        }
    }
}

fn open_segment(dir: &Path, first: u64) -> Result<(PathBuf, File), LedgerError> {
    let path = dir.join(SEGMENTS).join(format!("{first:020}.seg"));
    let file = File::open(&path).map_err(|e| io(&path, e))?;
    Ok((path, file))
}

fn io(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Io { path: path.to_path_buf(), what: "read for a proof".into(), source: e }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_levels_hold_the_complete_subtrees() {
        let leaves: Vec<Hash> = (0..5000u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut store = TreeStore::default();
        let mut frontier = crate::merkle::Frontier::default();
        for (i, l) in leaves.iter().enumerate() {
            let mut completed = Vec::new();
            frontier.push_observed(*l, |h, x| completed.push((h, *x)));
            store.push(*l, 0, i as u64 * 10, &completed, Some((RecordKind::Event, i as i64)));
        }
        assert_eq!(store.size(), 5000);
        assert_eq!(store.levels[0].iter().count(), 312);
        assert_eq!(store.levels[1].iter().count(), 19);
        assert_eq!(store.levels[2].iter().count(), 1);
        assert_eq!(store.levels[0][3], root(&leaves[48..64]));
        assert_eq!(store.levels[2][0], root(&leaves[..4096]));
        let blocks: Vec<Block> = store.blocks().copied().collect();
        assert_eq!(blocks.len(), 5);
        assert_eq!(
            (blocks[4].start, blocks[4].end, blocks[4].min_recorded_at, blocks[4].max_recorded_at),
            (4096, 5000, 4096, 4999)
        );
        assert!(blocks[1].overlaps(2047, 2047) && !blocks[1].overlaps(2048, 9000) && !blocks[1].overlaps(0, 1023));
        assert!(blocks[0].holds(RecordKind::Event) && !blocks[0].holds(RecordKind::Incident));
        assert_eq!(store.filling, leaves[4992..]);
        assert_eq!(store.anchors[2], (0, 320));
        let reader = store.reader(Path::new("/nonexistent"));
        assert_eq!(reader.subtree(4096, 4096 + 512), root(&leaves[4096..4096 + 512]), "stored levels only");
        assert_eq!(reader.subtree(4992, 5000), root(&leaves[4992..]), "the filling group");
        assert!(reader.error.borrow().is_none());
    }

    /// Past 65,536 records the lowest stored level and the anchors go on in
    /// a second shared chunk; subtrees on either side of it, and across it,
    /// come out as the leaves make them, also in a clone taken before.
    #[test]
    fn stored_levels_read_the_same_across_shared_chunks() {
        let n = 65_536 + 4_096 + 100;
        let leaves: Vec<Hash> = (0..n as u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut store = TreeStore::default();
        let mut frontier = crate::merkle::Frontier::default();
        let mut before = None;
        for (i, l) in leaves.iter().enumerate() {
            if i == 65_536 + 256 {
                before = Some(store.clone());
            }
            let mut completed = Vec::new();
            frontier.push_observed(*l, |h, x| completed.push((h, *x)));
            store.push(*l, 0, i as u64 * 10, &completed, Some((RecordKind::Event, i as i64)));
        }
        assert_eq!(store.anchors[4096], (0, 655_360), "the first anchor of the second chunk");
        let ranges = [(65_536 - 128, 65_536), (65_536, 65_536 + 128), (65_536 - 64, 65_536 + 64), (0, 65_536 + 256)];
        for (name, store) in [("live", &store), ("clone", &before.expect("clone"))] {
            let reader = store.reader(Path::new("/nonexistent"));
            for (a, b) in ranges {
                assert_eq!(reader.subtree(a, b), root(&leaves[a as usize..b as usize]), "{name} {a}..{b}");
            }
            assert!(reader.error.borrow().is_none(), "{name}: stored levels only");
        }
    }
}
