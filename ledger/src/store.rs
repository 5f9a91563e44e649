//! Append-only storage: segment files of framed records, a log of signed
//! checkpoints, and the writer that group-commits appends.
//!
//! Frame = `u32 LE length | u32 LE CRC32C(length bytes || payload) | payload`.
//! Segments are `segments/<first index, 20 digits>.seg`; signed checkpoint
//! notes are in the same frames in `checkpoints/<tree size when begun, 20
//! digits>.log`, rolled like segments so that opening reads only the newest;
//! `keys.vkey` lists every verifier key ever used, one per line.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::merkle::{Frontier, Hash, consistency_path, inclusion_path, leaf_hash};
use crate::note::{Checkpoint, NoteSigner, VerifierKey, open};
use crate::record::{KeyRecord, RecordKind, encode};
use crate::tree::TreeStore;
use crate::{LedgerError, Snapshot};

pub(crate) const SEGMENTS: &str = "segments";
pub(crate) const CHECKPOINTS: &str = "checkpoints";
/// The single checkpoint file of ledgers written before the log was rolled;
/// read as the oldest, and moved into `checkpoints/` by the next writer.
const LEGACY_CHECKPOINTS: &str = "checkpoints.log";
pub(crate) const VKEYS: &str = "keys.vkey";
pub(crate) const FRAME_HEADER: usize = 8;
/// Largest record accepted; also bounds what a reader allocates for a frame.
pub const MAX_RECORD: usize = 16 * 1024 * 1024;

fn io(path: &Path, what: &str, e: std::io::Error) -> LedgerError {
    LedgerError::Io { path: path.to_path_buf(), what: what.to_owned(), source: e }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn frame_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

pub(crate) fn write_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why reading frames stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameFault {
    /// The file ends inside a frame (a torn write).
    Truncated,
    /// A frame's CRC or length is wrong.
    Corrupt(String),
}

/// Reads frames from `bytes`, calling `f(offset, payload)`. Returns the end
/// offset of the last good frame and the fault that stopped reading, if any.
pub(crate) fn read_frames<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(usize, &'a [u8]) -> Result<(), LedgerError>,
) -> Result<(usize, Option<FrameFault>), LedgerError> {
    let mut at = 0;
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + FRAME_HEADER) else { return Ok((at, Some(FrameFault::Truncated))) };
        let len_bytes = [header[0], header[1], header[2], header[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            return Ok((at, Some(FrameFault::Corrupt(format!("frame length {len} exceeds {MAX_RECORD}")))));
        }
        let Some(payload) = bytes.get(at + FRAME_HEADER..at + FRAME_HEADER + len) else {
            return Ok((at, Some(FrameFault::Truncated)));
        };
        if frame_crc(len_bytes, payload) != crc {
            return Ok((at, Some(FrameFault::Corrupt("CRC32C mismatch".into()))));
        }
        f(at, payload)?;
        at += FRAME_HEADER + len;
    }
    Ok((at, None))
}

/// Segment files in index order, with the first index each one holds.
pub(crate) fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LedgerError> {
    numbered_files(dir, SEGMENTS, ".seg")
}

/// Checkpoint files oldest first: a legacy `checkpoints.log`, then
/// `checkpoints/*.log` in the order of the tree size each was begun at.
pub(crate) fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>, LedgerError> {
    let legacy = dir.join(LEGACY_CHECKPOINTS);
    let mut out: Vec<PathBuf> = legacy.exists().then_some(legacy).into_iter().collect();
    out.extend(numbered_files(dir, CHECKPOINTS, ".log")?.into_iter().map(|(_, p)| p));
    Ok(out)
}

/// The files `<sub>/<number><suffix>` of `dir`, by number.
fn numbered_files(dir: &Path, sub: &str, suffix: &str) -> Result<Vec<(u64, PathBuf)>, LedgerError> {
    let sub_dir = dir.join(sub);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&sub_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(&sub_dir, "list files", e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| io(&sub_dir, "list files", e))?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| LedgerError::Corrupt {
                index: None,
                what: format!("unexpected file {} in {sub}/", path.display()),
            })?;
        out.push((first, path));
    }
    out.sort();
    Ok(out)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, LedgerError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|f| BufReader::new(f).read_to_end(&mut bytes)).map_err(|e| io(path, "read", e))?;
    Ok(bytes)
}

/// Calls `f(note)` for every signed checkpoint note of the ledger in `dir`,
/// oldest first, reading one checkpoint file at a time; returns how many. A
/// torn last frame of the newest file (the writer truncates it on open) is
/// left out; any other damage is an error naming the file.
pub fn for_each_checkpoint_note(
    dir: &Path,
    mut f: impl FnMut(&str) -> Result<(), LedgerError>,
) -> Result<u64, LedgerError> {
    let files = checkpoint_files(dir)?;
    let mut count = 0;
    for (i, path) in files.iter().enumerate() {
        let (notes, end, fault) = read_checkpoint_file(path)?;
        let newest = i + 1 == files.len();
        if let Some(fault) = fault.filter(|f| !(newest && *f == FrameFault::Truncated)) {
            return Err(LedgerError::Corrupt {
                index: None,
                what: format!("{} at byte {end}: {fault:?}", path.display()),
            });
        }
        for note in &notes {
            f(note)?;
        }
        count += notes.len() as u64;
    }
    Ok(count)
}

/// The notes of one checkpoint file, the end of the last good frame, and the
/// fault that stopped reading, if any.
pub(crate) fn read_checkpoint_file(path: &Path) -> Result<(Vec<String>, usize, Option<FrameFault>), LedgerError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0, None)),
        Err(e) => return Err(io(path, "read", e)),
    };
    let mut notes = Vec::new();
    let (end, fault) = read_frames(&bytes, |_, p| {
        notes.push(String::from_utf8(p.to_vec()).map_err(|_| LedgerError::Note("checkpoint is not UTF-8".into()))?);
        Ok(())
    })?;
    Ok((notes, end, fault))
}

pub(crate) fn read_vkeys(dir: &Path) -> Result<Vec<VerifierKey>, LedgerError> {
    let path = dir.join(VKEYS);
    let text = fs::read_to_string(&path).map_err(|e| io(&path, "read verifier keys", e))?;
    let keys: Vec<VerifierKey> = text.lines().map(VerifierKey::parse).collect::<Result<_, _>>()?;
    // The file is written in one exact form; anything else is a change to it.
    let canonical: String = keys.iter().map(|k| format!("{}\n", k.encode())).collect();
    if canonical != text {
        return Err(LedgerError::Corrupt { index: None, what: format!("{VKEYS} is not in its canonical form") });
    }
    Ok(keys)
}

/// Hash-chain step: chain[i] = SHA-256(chain[i-1] || leaf_hash[i]), chain[-1] = 32 zero bytes.
pub fn chain_next(prev: &Hash, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

/// Tunables of the writer.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// Roll to a new segment past this many bytes. Default 64 MiB.
    pub segment_bytes: u64,
    /// Sign a checkpoint this often while records arrive. Default 1 s.
    pub checkpoint_interval: Duration,
    /// Begin a new checkpoint file past this many bytes. Default 16 MiB
    /// (about 65,000 notes: 18 hours of per-second checkpoints).
    pub checkpoint_file_bytes: u64,
    /// Append requests queued before `append` waits. Default 1024.
    pub queue: usize,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(1),
            checkpoint_file_bytes: 16 << 20,
            queue: 1024,
        }
    }
}

/// What opening found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub created: bool,
    pub records: u64,
    /// Bytes cut from a torn segment tail (never records a checkpoint covers).
    pub truncated_bytes: u64,
    /// Set when the signing key was not yet in the ledger and a `key` record introduced it.
    pub introduced_key: Option<String>,
}

type AppendReply = oneshot::Sender<Result<Range<u64>, LedgerError>>;

enum Cmd {
    Append(Vec<Vec<u8>>, AppendReply),
    Tick,
    Close(oneshot::Sender<Result<(), LedgerError>>),
}

struct Shared {
    size: AtomicU64,
    latest: Mutex<Option<String>>,
    /// Stored tree hashes for proofs, grown after each synced group.
    tree: RwLock<TreeStore>,
}

/// The ledger writer's handle. `append` resolves with the records' indices
/// only after they are on disk (`fdatasync`); many appends share one sync.
pub struct Ledger {
    tx: mpsc::Sender<Cmd>,
    shared: Arc<Shared>,
    origin: String,
    dir: PathBuf,
    /// Held (an advisory lock on `LOCK`) while this process writes the ledger.
    _lock: File,
}

struct Writer {
    dir: PathBuf,
    opts: LedgerOptions,
    signer: NoteSigner,
    origin: String,
    segment: File,
    segment_path: PathBuf,
    /// Index of the first record of the open segment.
    segment_first: u64,
    segment_len: u64,
    checkpoints: File,
    checkpoints_path: PathBuf,
    checkpoints_len: u64,
    frontier: Frontier,
    chain: Hash,
    last_signed_size: u64,
    last_signed_at: Instant,
    shared: Arc<Shared>,
}

/// Records queued by [`Ledger::submit`], not yet durable.
#[derive(Debug)]
pub struct Submitted(oneshot::Receiver<Result<Range<u64>, LedgerError>>);

impl Submitted {
    /// Their indices, once they are durable.
    pub async fn durable(self) -> Result<Range<u64>, LedgerError> {
        self.0.await.map_err(|_| LedgerError::Closed)?
    }
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`, recovering from a torn tail.
    /// `origin` names the log in its checkpoints; the signer's name must equal it.
    pub fn open(
        dir: &Path,
        origin: &str,
        signer: NoteSigner,
        opts: LedgerOptions,
    ) -> Result<(Self, OpenReport), LedgerError> {
        if signer.name() != origin {
            return Err(LedgerError::Note(format!("signing key {} does not sign for origin {origin}", signer.name())));
        }
        fs::create_dir_all(dir.join(SEGMENTS)).map_err(|e| io(dir, "create ledger directory", e))?;
        // One writer at a time: a second process (a running Custos and a command
        // line tool) would interleave appends. The lock goes with the process.
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(&lock_path, "open", e))?;
        if let Err(e) = lock.try_lock() {
            return Err(match e {
                fs::TryLockError::WouldBlock => LedgerError::Failed(format!(
                    "the ledger in {} is open in another process (is Custos running?)",
                    dir.display()
                )),
                fs::TryLockError::Error(e) => io(&lock_path, "lock", e),
            });
        }
        let mut report = OpenReport::default();
        move_legacy_checkpoints(dir)?;
        let (frontier, chain, tree, latest) = recover(dir, origin, &mut report)?;
        let segments = segment_files(dir)?;
        let segment_path =
            segments.last().map_or_else(|| dir.join(SEGMENTS).join(format!("{:020}.seg", 0)), |(_, p)| p.clone());
        let segment_first = segments.last().map_or(0, |(first, _)| *first);
        let segment = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&segment_path)
            .map_err(|e| io(&segment_path, "open segment", e))?;
        let segment_len = segment.metadata().map_err(|e| io(&segment_path, "stat", e))?.len();
        fs::create_dir_all(dir.join(CHECKPOINTS)).map_err(|e| io(dir, "create checkpoint directory", e))?;
        let cp_path = checkpoint_files(dir)?
            .pop()
            .unwrap_or_else(|| dir.join(CHECKPOINTS).join(format!("{:020}.log", frontier.size())));
        let checkpoints =
            OpenOptions::new().create(true).append(true).open(&cp_path).map_err(|e| io(&cp_path, "open", e))?;
        let checkpoints_len = checkpoints.metadata().map_err(|e| io(&cp_path, "stat", e))?.len();
        sync_dir(dir)?;
        sync_dir(&dir.join(SEGMENTS))?;
        sync_dir(&dir.join(CHECKPOINTS))?;
        let last_signed_size = latest.as_deref().and_then(|n| Checkpoint::of_note(n).ok()).map_or(u64::MAX, |c| c.size);
        let shared = Arc::new(Shared {
            size: AtomicU64::new(frontier.size()),
            latest: Mutex::new(latest),
            tree: RwLock::new(tree),
        });
        let mut w = Writer {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            signer,
            origin: origin.to_owned(),
            segment,
            segment_path,
            segment_first,
            segment_len,
            checkpoints,
            checkpoints_path: cp_path,
            checkpoints_len,
            last_signed_size,
            frontier,
            chain,
            last_signed_at: Instant::now(),
            shared: shared.clone(),
        };
        // Make sure the signing key is introduced by a `key` record and listed.
        let vkey = w.signer.verifier().encode();
        let known = fs::read_to_string(dir.join(VKEYS)).unwrap_or_default();
        if !known.lines().any(|l| l.trim() == vkey) {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(VKEYS))
                .map_err(|e| io(&dir.join(VKEYS), "open", e))?;
            f.write_all(format!("{vkey}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io(&dir.join(VKEYS), "write", e))?;
            let rec = encode(
                RecordKind::Key,
                now_ms(),
                &KeyRecord { action: "introduced".into(), origin: origin.to_owned(), vkey: vkey.clone() },
            )?;
            w.append_group(&[rec])?;
            report.introduced_key = Some(vkey);
        }
        report.records = w.frontier.size();
        if w.last_signed_size != w.frontier.size() {
            w.sign_checkpoint()?;
        }
        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        std::thread::Builder::new()
            .name("custos-ledger".into())
            .spawn(move || w.run(rx))
            .map_err(|e| io(dir, "start writer thread", e))?;
        let ticker = tx.clone();
        let interval = opts.checkpoint_interval;
        // With no interval every group is signed as it is written: nothing to wake
        // (a ticker sleeping for zero would spin and fill the queue with ticks).
        if !interval.is_zero() {
            std::thread::Builder::new()
                .name("custos-ledger-tick".into())
                .spawn(move || {
                    // Wakes an idle writer so a checkpoint follows the last append within `interval`.
                    loop {
                        std::thread::sleep(interval / 2);
                        if let Err(mpsc::error::TrySendError::Closed(_)) = ticker.try_send(Cmd::Tick) {
                            return;
                        }
                    }
                })
                .map_err(|e| io(dir, "start ticker thread", e))?;
        }
        Ok((Self { tx, shared, origin: origin.to_owned(), dir: dir.to_path_buf(), _lock: lock }, report))
    }

    /// Appends records; resolves with their indices once they are durable.
    pub async fn append(&self, records: Vec<Vec<u8>>) -> Result<Range<u64>, LedgerError> {
        self.submit(records).await?.durable().await
    }

    /// Hands records to the writer; resolves once they are queued, so
    /// records submitted after are ledgered after them. A caller that must
    /// ledger changes in the order it made them (versions of one incident)
    /// submits under its own lock and waits for durability outside it.
    pub async fn submit(&self, records: Vec<Vec<u8>>) -> Result<Submitted, LedgerError> {
        if let Some(r) = records.iter().find(|r| r.len() > MAX_RECORD) {
            return Err(LedgerError::Record(format!("record of {} bytes exceeds {MAX_RECORD}", r.len())));
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::Append(records, reply)).await.map_err(|_| LedgerError::Closed)?;
        Ok(Submitted(rx))
    }

    /// Records durably appended so far.
    pub fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The latest signed checkpoint note.
    /// RFC 9162 inclusion proof of record `index` in the tree of `size`
    /// records (a signed checkpoint's size).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        let tree = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        if size > tree.size() {
            return Err(LedgerError::Record(format!("the ledger has {} records, not {size}", tree.size())));
        }
        let reader = tree.reader(&self.dir);
        let proof = inclusion_path(&reader, index, size)
            .ok_or_else(|| LedgerError::Record(format!("index {index} is not below size {size}")))?;
        reader.finish(proof)
    }

    /// RFC 9162 consistency proof from the tree of `old` records to `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        let tree = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        if new > tree.size() {
            return Err(LedgerError::Record(format!("the ledger has {} records, not {new}", tree.size())));
        }
        let reader = tree.reader(&self.dir);
        let proof = consistency_path(&reader, old, new)
            .ok_or_else(|| LedgerError::Record(format!("no consistency proof from {old} to {new} (0 < old <= new)")))?;
        reader.finish(proof)
    }

    /// The Merkle root of the first `size` records (RFC 9162 `MTH`).
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        let tree = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        if size > tree.size() {
            return Err(LedgerError::Record(format!("the ledger has {} records, not {size}", tree.size())));
        }
        if size == 0 {
            return Ok(crate::merkle::empty_root());
        }
        let reader = tree.reader(&self.dir);
        let root = crate::merkle::Subtrees::subtree(&reader, 0, size);
        reader.finish(root)
    }

    /// A read-only view of the ledger as it is now, for an export while
    /// records keep arriving: its latest signed checkpoint and the records it
    /// covers (and those after), without reading or hashing them again.
    pub fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        // The note first: the tree taken after it covers at least its size.
        let note = self.latest_checkpoint();
        let tree = self.shared.tree.read().unwrap_or_else(|e| e.into_inner()).clone();
        let keys = crate::snapshot::read_keys(&self.dir)?;
        Ok(Snapshot::from_parts(&self.dir, tree, note, keys))
    }

    /// The bytes of record `index`.
    pub fn record(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let tree = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        if index >= tree.size() {
            return Err(LedgerError::Record(format!("no record {index}: the ledger has {}", tree.size())));
        }
        tree.reader(&self.dir).record(index)
    }

    /// Calls `f(index, bytes)` for the records at `indices` (below the
    /// ledger's size; in any order, each once), in index order. Nearby ones
    /// are read in one pass over their segment: an incident's timeline reads
    /// its older events and alerts this way.
    pub fn records_at(&self, indices: &[u64], mut f: impl FnMut(u64, Vec<u8>)) -> Result<(), LedgerError> {
        let mut wanted = indices.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let size = self.size();
        if let Some(last) = wanted.last().filter(|l| **l >= size) {
            return Err(LedgerError::Record(format!("no record {last}: the ledger has {size}")));
        }
        // Runs of indices less than a group of 16 apart: one pass each, under
        // a lock of its own, so appends do not wait behind the whole batch.
        let mut rest = wanted.as_slice();
        while let Some(&first) = rest.first() {
            let len = 1 + rest.windows(2).take_while(|w| w[1] - w[0] < crate::tree::GROUP).count();
            let (run, after) = rest.split_at(len);
            let tree = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
            tree.reader(&self.dir).scan_where(first, run[len - 1] + 1, |i| run.binary_search(&i).is_ok(), &mut f)?;
            rest = after;
        }
        Ok(())
    }

    /// Calls `f(index, bytes)` for the durable records `start..end`, in order.
    /// Reads in slices so that appends are not held up behind a long read.
    pub fn read_range(&self, start: u64, end: u64, mut f: impl FnMut(u64, Vec<u8>)) -> Result<(), LedgerError> {
        const SLICE: u64 = 4096;
        let mut at = start;
        while at < end {
            let to = end.min(at + SLICE);
            let tree = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
            if to > tree.size() {
                return Err(LedgerError::Record(format!("no record {}: the ledger has {}", to - 1, tree.size())));
            }
            tree.reader(&self.dir).scan(at, to, &mut f)?;
            at = to;
        }
        Ok(())
    }

    pub fn latest_checkpoint(&self) -> Option<String> {
        self.shared.latest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Signs a final checkpoint and stops the writer.
    pub async fn close(&self) -> Result<(), LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::Close(reply)).await.map_err(|_| LedgerError::Closed)?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, "sync directory", e))
}

/// Moves a legacy `checkpoints.log` to be the first file of `checkpoints/`.
fn move_legacy_checkpoints(dir: &Path) -> Result<(), LedgerError> {
    let legacy = dir.join(LEGACY_CHECKPOINTS);
    if !legacy.exists() {
        return Ok(());
    }
    if !numbered_files(dir, CHECKPOINTS, ".log")?.is_empty() {
        return Err(LedgerError::Corrupt {
            index: None,
            what: format!("both {LEGACY_CHECKPOINTS} and {CHECKPOINTS}/ hold checkpoints"),
        });
    }
    let to = dir.join(CHECKPOINTS).join(format!("{:020}.log", 0));
    fs::create_dir_all(dir.join(CHECKPOINTS)).map_err(|e| io(dir, "create checkpoint directory", e))?;
    fs::rename(&legacy, &to).map_err(|e| io(&legacy, "move into checkpoints/", e))?;
    sync_dir(&dir.join(CHECKPOINTS))?;
    sync_dir(dir)
}

/// The newest signed note: the last of the newest checkpoint file that holds
/// one, after truncating a torn tail of the newest file (an empty newest file
/// is a crash between beginning it and writing its first note).
fn newest_checkpoint(dir: &Path) -> Result<Option<String>, LedgerError> {
    let files = checkpoint_files(dir)?;
    for (i, path) in files.iter().enumerate().rev() {
        let bytes = read_file(path)?;
        let mut last = None;
        let (end, fault) = read_frames(&bytes, |at, p| {
            last = Some(at + FRAME_HEADER..at + FRAME_HEADER + p.len());
            Ok(())
        })?;
        if let Some(fault) = fault {
            if i + 1 != files.len() {
                return Err(LedgerError::Corrupt {
                    index: None,
                    what: format!("{} at byte {end}: {fault:?}", path.display()),
                });
            }
            tracing::warn!(path = %path.display(), "checkpoint file has a torn tail: truncating");
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(end as u64))
                .map_err(|e| io(path, "truncate", e))?;
        }
        if let Some(note) = last {
            let note = String::from_utf8(bytes[note].to_vec());
            return note
                .map(Some)
                .map_err(|_| LedgerError::Note(format!("{}: checkpoint is not UTF-8", path.display())));
        }
    }
    Ok(None)
}

/// Rebuilds the tree state from disk, truncating a torn tail of the last
/// segment. Fails rather than truncate anything a signed checkpoint covers.
/// Returns the newest signed note too.
fn recover(
    dir: &Path,
    origin: &str,
    report: &mut OpenReport,
) -> Result<(Frontier, Hash, TreeStore, Option<String>), LedgerError> {
    let segments = segment_files(dir)?;
    report.created = segments.is_empty();
    // Only the newest signed note is read and checked: one is signed every
    // second while records arrive, and reading months of them at every start
    // would take minutes and gigabytes (`custos verify` reads and checks them
    // all). Its root and chain bind every record below its size, so a record
    // changed under any older checkpoint is found here too.
    let latest = newest_checkpoint(dir)?;
    let keys = if dir.join(VKEYS).exists() { read_vkeys(dir)? } else { Vec::new() };
    let signed = match &latest {
        Some(note) => {
            let cp = Checkpoint::parse_body(open(note, &keys)?.0)?;
            if cp.origin != origin {
                return Err(LedgerError::Corrupt {
                    index: None,
                    what: format!("checkpoint origin {} is not {origin}", cp.origin),
                });
            }
            Some(cp)
        }
        None => None,
    };
    let covered = signed.as_ref().map_or(0, |cp| cp.size);
    let mut frontier = Frontier::default();
    let mut tree = TreeStore::default();
    let mut chain = [0u8; 32];
    let check = |f: &Frontier, chain: &Hash| -> Result<(), LedgerError> {
        match &signed {
            Some(cp) if cp.size == f.size() && (cp.root != f.root() || cp.chain != *chain) => {
                Err(LedgerError::Corrupt {
                    index: Some(f.size()),
                    what: format!("records do not match the signed checkpoint of size {}", f.size()),
                })
            }
            _ => Ok(()),
        }
    };
    check(&frontier, &chain)?;
    for (i, (first, path)) in segments.iter().enumerate() {
        if *first != frontier.size() {
            return Err(LedgerError::Corrupt {
                index: Some(frontier.size()),
                what: format!("segment {} starts at index {first}", path.display()),
            });
        }
        let bytes = read_file(path)?;
        let mut frames = Vec::new();
        let (end, fault) = read_frames(&bytes, |at, payload| {
            frames.push((at, payload));
            Ok(())
        })?;
        let mut completed = Vec::new();
        for ((at, _), (leaf, envelope)) in frames.iter().zip(leaf_hashes(&frames)?) {
            chain = chain_next(&chain, &leaf);
            completed.clear();
            frontier.push_observed(leaf, |h, x| completed.push((h, *x)));
            tree.push(leaf, *first, *at as u64, &completed, envelope);
            check(&frontier, &chain)?;
        }
        if let Some(fault) = fault {
            let last = i + 1 == segments.len();
            if !last || frontier.size() < covered {
                return Err(LedgerError::Corrupt {
                    index: Some(frontier.size()),
                    what: format!("{}: {fault:?} at byte {end}", path.display()),
                });
            }
            report.truncated_bytes = (bytes.len() - end) as u64;
            tracing::warn!(path = %path.display(), at = end, bytes = report.truncated_bytes, "torn tail after a crash: truncating to the last good record");
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(end as u64))
                .and_then(|()| File::open(path)?.sync_all())
                .map_err(|e| io(path, "truncate", e))?;
        }
    }
    if frontier.size() < covered {
        return Err(LedgerError::Corrupt {
            index: Some(frontier.size()),
            what: format!("a signed checkpoint covers {covered} records but only {} exist", frontier.size()),
        });
    }
    Ok((frontier, chain, tree, latest))
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut failed: Option<String> = None;
        while let Some(first) = rx.blocking_recv() {
            let mut group: Vec<(Vec<Vec<u8>>, AppendReply)> = Vec::new();
            let mut close = None;
            let mut pending = Some(first);
            let mut count = 0usize;
            while let Some(cmd) = pending.take() {
                match cmd {
                    Cmd::Append(recs, reply) => {
                        count += recs.len();
                        group.push((recs, reply));
                    }
                    Cmd::Tick => {}
                    Cmd::Close(reply) => {
                        close = Some(reply);
                        break;
                    }
                }
                // Group commit: take what is already queued, up to a bound.
                if count < 65_536 {
                    pending = rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                let result = match &failed {
                    Some(why) => Err(why.clone()),
                    None => {
                        let all: Vec<&[u8]> = group.iter().flat_map(|(r, _)| r.iter().map(Vec::as_slice)).collect();
                        self.append_group(&all).map_err(|e| e.to_string())
                    }
                };
                match result {
                    Ok(range) => {
                        let mut next = range.start;
                        for (recs, reply) in group {
                            let end = next + recs.len() as u64;
                            let _ = reply.send(Ok(next..end));
                            next = end;
                        }
                    }
                    Err(why) => {
                        tracing::error!(error = %why, "ledger append failed: refusing further appends");
                        failed = Some(why.clone());
                        for (_, reply) in group {
                            let _ = reply.send(Err(LedgerError::Failed(why.clone())));
                        }
                    }
                }
            }
            let due = self.last_signed_at.elapsed() >= self.opts.checkpoint_interval;
            if failed.is_none()
                && self.last_signed_size != self.frontier.size()
                && (due || close.is_some())
                && let Err(e) = self.sign_checkpoint()
            {
                tracing::error!(error = %e, "signing a checkpoint failed");
                failed = Some(e.to_string());
            }
            if let Some(reply) = close {
                let _ = reply.send(match &failed {
                    Some(why) => Err(LedgerError::Failed(why.clone())),
                    None => Ok(()),
                });
                return;
            }
        }
        // Every handle is gone: sign what was appended.
        if failed.is_none() && self.last_signed_size != self.frontier.size() {
            let _ = self.sign_checkpoint();
        }
    }

    /// Writes and syncs one group; returns the indices it took.
    fn append_group(&mut self, records: &[impl AsRef<[u8]>]) -> Result<Range<u64>, LedgerError> {
        let start = self.frontier.size();
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.as_ref().len() + FRAME_HEADER).sum());
        let mut leaves = Vec::with_capacity(records.len());
        for r in records {
            let r = r.as_ref();
            if self.segment_len + buf.len() as u64 > self.opts.segment_bytes && self.segment_len + buf.len() as u64 > 0
            {
                self.flush(&buf)?;
                buf.clear();
                self.roll(start + leaves.len() as u64)?;
            }
            let at = (self.segment_first, self.segment_len + buf.len() as u64);
            write_frame(&mut buf, r);
            leaves.push((leaf_hash(r), at, crate::record::peek(r)));
        }
        self.flush(&buf)?;
        self.segment.sync_data().map_err(|e| io(&self.segment_path, "fdatasync", e))?;
        let mut tree = self.shared.tree.write().unwrap_or_else(|e| e.into_inner());
        let mut completed = Vec::new();
        for (leaf, (segment, offset), envelope) in leaves {
            self.chain = chain_next(&self.chain, &leaf);
            completed.clear();
            self.frontier.push_observed(leaf, |h, x| completed.push((h, *x)));
            tree.push(leaf, segment, offset, &completed, envelope);
        }
        drop(tree);
        self.shared.size.store(self.frontier.size(), Ordering::Release);
        Ok(start..self.frontier.size())
    }

    fn flush(&mut self, buf: &[u8]) -> Result<(), LedgerError> {
        self.segment.write_all(buf).map_err(|e| io(&self.segment_path, "write", e))?;
        self.segment_len += buf.len() as u64;
        Ok(())
    }

    fn roll(&mut self, first_index: u64) -> Result<(), LedgerError> {
        self.segment.sync_data().map_err(|e| io(&self.segment_path, "fdatasync", e))?;
        self.segment_path = self.dir.join(SEGMENTS).join(format!("{first_index:020}.seg"));
        self.segment = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.segment_path)
            .map_err(|e| io(&self.segment_path, "create segment", e))?;
        self.segment_len = 0;
        self.segment_first = first_index;
        sync_dir(&self.dir.join(SEGMENTS))
    }

    /// Begins `checkpoints/<size>.log`. A file of that name exists only when
    /// no record came since it was begun; the notes then stay where they are.
    fn roll_checkpoints(&mut self, size: u64) -> Result<(), LedgerError> {
        let path = self.dir.join(CHECKPOINTS).join(format!("{size:020}.log"));
        match OpenOptions::new().create_new(true).append(true).open(&path) {
            Ok(f) => {
                self.checkpoints = f;
                self.checkpoints_path = path;
                self.checkpoints_len = 0;
                sync_dir(&self.dir.join(CHECKPOINTS))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io(&path, "create checkpoint file", e)),
        }
    }

    fn sign_checkpoint(&mut self) -> Result<(), LedgerError> {
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size: self.frontier.size(),
            root: self.frontier.root(),
            chain: self.chain,
            time_ms: now_ms(),
        };
        let note = self.signer.sign(&cp.body());
        let mut buf = Vec::with_capacity(note.len() + FRAME_HEADER);
        write_frame(&mut buf, note.as_bytes());
        if self.checkpoints_len > 0 && self.checkpoints_len + buf.len() as u64 > self.opts.checkpoint_file_bytes {
            self.roll_checkpoints(cp.size)?;
        }
        self.checkpoints
            .write_all(&buf)
            .and_then(|()| self.checkpoints.sync_data())
            .map_err(|e| io(&self.checkpoints_path, "write checkpoint", e))?;
        self.checkpoints_len += buf.len() as u64;
        self.last_signed_size = cp.size;
        self.last_signed_at = Instant::now();
        *self.shared.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(note);
        Ok(())
    }
}

/// A record's leaf hash, and its kind and time ([`crate::record::peek`]).
type HashedLeaf = (Hash, Option<(RecordKind, i64)>);

/// The leaf hash and envelope of each frame's record, on every core: hashing
/// every record is most of what opening a ledger costs. The chain and the
/// tree, which go record by record, are built from these after.
fn leaf_hashes(frames: &[(usize, &[u8])]) -> Result<Vec<HashedLeaf>, LedgerError> {
    let work = |part: &[(usize, &[u8])]| -> Vec<_> {
        part.iter().map(|(_, p)| (leaf_hash(p), crate::record::peek(p))).collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if threads < 2 || frames.len() < 4096 {
        return Ok(work(frames));
    }
    std::thread::scope(|s| {
        let parts: Vec<_> = frames.chunks(frames.len().div_ceil(threads)).map(|c| s.spawn(move || work(c))).collect();
        let mut out = Vec::with_capacity(frames.len());
        for part in parts {
            out.extend(part.join().map_err(|_| LedgerError::Failed("a hashing thread failed".into()))?);
        }
        Ok(out)
    })
}

/// Calls `f(index, record)` for every record in the ledger at `dir`, in order.
/// A torn tail ends the scan quietly (the writer would truncate it on open);
/// any other fault is an error naming the index.
pub fn for_each_record(dir: &Path, mut f: impl FnMut(u64, &[u8])) -> Result<u64, LedgerError> {
    let mut index = 0u64;
    let segments = segment_files(dir)?;
    for (i, (first, path)) in segments.iter().enumerate() {
        if *first != index {
            return Err(LedgerError::Corrupt {
                index: Some(index),
                what: format!("segment {} starts at index {first}", path.display()),
            });
        }
        let bytes = read_file(path)?;
        let (_, fault) = read_frames(&bytes, |_, p| {
            f(index, p);
            index += 1;
            Ok(())
        })?;
        match fault {
            None => {}
            Some(FrameFault::Truncated) if i + 1 == segments.len() => {}
            Some(fault) => {
                return Err(LedgerError::Corrupt {
                    index: Some(index),
                    what: format!("{}: {fault:?}", path.display()),
                });
            }
        }
    }
    Ok(index)
}
