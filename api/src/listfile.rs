//! A JSON list file that Custos and the `custos user` command both rewrite:
//! `accounts.json` and `tokens.json`.
//!
//! The stores keep the list in memory behind a lock that every request takes
//! (a token check, a password check). Writing the file means an `fdatasync`,
//! some milliseconds on a busy disk. So a change is numbered and turned into
//! bytes under the store's lock ([`ListFile::version`]) and written after the
//! lock is let go ([`ListFile::write`]): a login or a wrong password no longer
//! holds up every other request while the disk syncs. Versions are written in
//! number order; one that comes after a later one is already on disk is
//! skipped, so the file never goes back to an older list.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::SystemTime;

/// A file's modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[derive(Debug)]
struct Seen {
    /// The file as this process last read or wrote it.
    stamp: Stamp,
    /// The newest version written.
    written: u64,
}

#[derive(Debug)]
pub struct ListFile {
    path: PathBuf,
    /// Held while this process writes the file.
    seen: Mutex<Seen>,
    versions: AtomicU64,
}

/// One state of the list, numbered, ready to write.
#[must_use = "a version is only on disk once written"]
pub struct Version {
    number: u64,
    bytes: Vec<u8>,
}

impl ListFile {
    pub fn open(path: PathBuf) -> Self {
        let seen = Mutex::new(Seen { stamp: stamp(&path), written: 0 });
        Self { path, seen, versions: AtomicU64::new(0) }
    }

    /// The list in the file; empty when there is no file.
    pub fn read<T: serde::de::DeserializeOwned>(&self) -> std::io::Result<Vec<T>> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// True (once) when another process rewrote the file since this one last
    /// read or wrote it. False while this process is writing it: the file
    /// may then hold an older list than memory, and is not to be read back.
    pub fn changed(&self) -> bool {
        let mut seen = match self.seen.try_lock() {
            Ok(seen) => seen,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        let now = stamp(&self.path);
        if seen.stamp == now {
            return false;
        }
        seen.stamp = now;
        true
    }

    /// Numbers `list` as the newest state. Call it under the lock that
    /// guards the list in memory, so numbers follow the order of changes.
    pub fn version<T: serde::Serialize>(&self, list: &[T]) -> std::io::Result<Version> {
        let bytes = serde_json::to_vec_pretty(list).map_err(std::io::Error::other)?;
        Ok(Version { number: self.versions.fetch_add(1, Ordering::Relaxed) + 1, bytes })
    }

    /// Writes `v` (durably, by rename) unless a later version is on disk
    /// already. Call it after the list's lock is let go.
    pub fn write(&self, v: Version) -> std::io::Result<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.written > v.number {
            return Ok(());
        }
        ingest::source::replace_file(&self.path, &v.bytes)?;
        seen.stamp = stamp(&self.path);
        seen.written = v.number;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = ListFile::open(dir.path().join("list.json"));
        assert!(file.read::<u32>().expect("no file yet").is_empty());
        let older = file.version(&[1u32]).expect("version");
        let newer = file.version(&[1u32, 2]).expect("version");
        file.write(newer).expect("write");
        file.write(older).expect("skipped");
        assert_eq!(file.read::<u32>().expect("read"), vec![1, 2]);
        assert!(!file.changed(), "its own writes are not a change");
    }

    /// One file as two processes see it.
    fn ours_and_theirs() -> (tempfile::TempDir, ListFile, ListFile) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("list.json");
        (dir, ListFile::open(path.clone()), ListFile::open(path))
    }

    #[test]
    fn another_process_rewriting_the_file_is_a_change_once() {
        let (_dir, ours, theirs) = ours_and_theirs();
        theirs.write(theirs.version(&["sam"]).expect("version")).expect("write");
        assert!(ours.changed());
        assert!(!ours.changed(), "told once");
        assert_eq!(ours.read::<String>().expect("read"), vec!["sam".to_owned()]);
    }

    #[test]
    fn no_change_is_reported_while_this_process_writes() {
        let (_dir, ours, theirs) = ours_and_theirs();
        theirs.write(theirs.version(&[7u8]).expect("version")).expect("write");
        let writing = ours.seen.lock().expect("lock");
        assert!(!ours.changed(), "the file may be older than memory while a write is under way");
        drop(writing);
        assert!(ours.changed());
    }
}
