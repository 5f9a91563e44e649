//! A list held in memory and in a JSON file that Custos and the `custos user`
//! command both change: `accounts.json` and `tokens.json`.
//!
//! Every change, in any process, is made under an exclusive lock on a file
//! beside the list (`accounts.json.lock`): the file is read again if it is not
//! as this process last left it, the change is made, and the file is written,
//! all before the lock is let go. Two processes changing the list at once so
//! each keep the other's change; without the lock each read, changed and
//! wrote the whole file, and the later write undid the earlier (a login's
//! failure count could undo a `custos user disable`).
//!
//! Reads take only the in-memory lock, and pick up another process's change
//! when the file's modification time or length moved. Under the change lock
//! the file's content is compared instead, which no clock granularity fools.
//! The file is synced after the in-memory lock is let go, so a login's sync
//! does not hold up every request's token check.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// What a list file holds, as kept in memory.
pub trait Listed: Sized {
    type Item: Serialize + DeserializeOwned;
    fn from_items(items: Vec<Self::Item>) -> Self;
    /// The items in the order the file keeps them.
    fn items(&self) -> Vec<&Self::Item>;
}

/// A file's modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The file's bytes; `None` when there is no file.
fn read_bytes(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(path, e.kind(), e)),
    }
}

type Content = [u8; 32];

fn content(bytes: Option<&[u8]>) -> Content {
    bytes.map_or([0; 32], |b| Sha256::digest(b).into())
}

fn parse<M: Listed>(path: &Path, bytes: Option<&[u8]>) -> io::Result<M> {
    let items = match bytes {
        None => Vec::new(),
        Some(b) => serde_json::from_slice(b).map_err(|e| at(path, io::ErrorKind::InvalidData, e))?,
    };
    Ok(M::from_items(items))
}

/// An error naming the file it is about.
fn at(path: &Path, kind: io::ErrorKind, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(kind, format!("{}: {e}", path.display()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct Seen {
    /// The file as this process last read or wrote it.
    stamp: Stamp,
    /// Its content then; `None` after a failed write, when memory may differ.
    content: Option<Content>,
}

#[derive(Debug)]
pub struct ListFile<M> {
    path: PathBuf,
    lock_path: PathBuf,
    memory: RwLock<M>,
    /// Held while this process reads the file into memory or writes it.
    seen: Mutex<Seen>,
}

impl<M: Listed> ListFile<M> {
    /// Reads the list; empty when there is no file.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let stamp = stamp(&path);
        let bytes = read_bytes(&path)?;
        let memory = RwLock::new(parse(&path, bytes.as_deref())?);
        let seen = Mutex::new(Seen { stamp, content: Some(content(bytes.as_deref())) });
        Ok(Self { path, lock_path: lock_path.into(), memory, seen })
    }

    /// The list, read again first if another process changed the file.
    pub fn read(&self) -> RwLockReadGuard<'_, M> {
        self.refresh();
        self.memory.read().unwrap_or_else(|e| e.into_inner())
    }

    fn memory_mut(&self) -> RwLockWriteGuard<'_, M> {
        self.memory.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a change with every process's earlier changes in, and writes
    /// the file unless the list is as the file already holds it. Refused,
    /// with nothing changed, when the file cannot be read.
    pub fn change<R>(&self, f: impl FnOnce(&mut M) -> R) -> io::Result<R> {
        let _held = self.hold()?;
        let mut seen = lock(&self.seen);
        let on_disk = read_bytes(&self.path)?;
        let was = content(on_disk.as_deref());
        if seen.content != Some(was) {
            let list = parse(&self.path, on_disk.as_deref())?;
            *self.memory_mut() = list;
            *seen = Seen { stamp: stamp(&self.path), content: Some(was) };
        }
        let (out, bytes) = {
            let mut memory = self.memory_mut();
            let out = f(&mut memory);
            (out, serde_json::to_vec_pretty(&memory.items()).map_err(io::Error::other)?)
        };
        if content(Some(&bytes)) == was {
            return Ok(out);
        }
        if let Err(e) = ingest::source::replace_file(&self.path, &bytes) {
            // Memory now differs from the file: the next change reads it again.
            seen.content = None;
            return Err(at(&self.path, e.kind(), e));
        }
        *seen = Seen { stamp: stamp(&self.path), content: Some(content(Some(&bytes))) };
        Ok(out)
    }

    /// The lock every process holds while it changes the list.
    fn hold(&self) -> io::Result<File> {
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let context = |e: io::Error| at(&self.lock_path, e.kind(), e);
        let file = opts
            .open(&self.lock_path)
            // Made by another OS account (say `sudo custos user`): a lock
            // needs no write access.
            .or_else(|e| if e.kind() == io::ErrorKind::PermissionDenied { File::open(&self.lock_path) } else { Err(e) })
            .map_err(context)?;
        file.lock().map_err(context)?;
        Ok(file)
    }

    /// Reads the file into memory if another process changed it; not while
    /// this process reads or writes it (memory may then be ahead of the file).
    fn refresh(&self) {
        let mut seen = match self.seen.try_lock() {
            Ok(seen) => seen,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let now = stamp(&self.path);
        if seen.stamp == now {
            return;
        }
        seen.stamp = now;
        let read = read_bytes(&self.path).and_then(|bytes| {
            let now = content(bytes.as_deref());
            if seen.content != Some(now) {
                *self.memory_mut() = parse(&self.path, bytes.as_deref())?;
                seen.content = Some(now);
            }
            Ok(())
        });
        if let Err(e) = read {
            tracing::error!(error = %e, "a list file changed but cannot be read; keeping the list known");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Listed for Vec<String> {
        type Item = String;
        fn from_items(items: Vec<String>) -> Self {
            items
        }
        fn items(&self) -> Vec<&String> {
            self.iter().collect()
        }
    }

    fn push_many(path: &Path, who: &str, n: usize) {
        let list = ListFile::<Vec<String>>::open(path.to_owned()).expect("open");
        for i in 0..n {
            list.change(|l| l.push(format!("{who}-{i}"))).expect("change");
        }
    }

    const OTHER_PROCESS: &str = "CUSTOS_TEST_LIST_FILE";

    /// The other process of the test below: runs only when it names the file.
    #[test]
    #[ignore = "run as a second process by changes_from_two_processes_at_once_are_all_kept"]
    fn other_process_changing_the_list() {
        if let Ok(path) = std::env::var(OTHER_PROCESS) {
            push_many(Path::new(&path), "theirs", 60);
        }
    }

    /// Two processes (this test's binary run again) and two handles in this
    /// one change the list at once: every change is kept.
    #[test]
    fn changes_from_two_processes_at_once_are_all_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("list.json");
        let mut other = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "listfile::tests::other_process_changing_the_list", "--ignored", "--test-threads=1"])
            .env(OTHER_PROCESS, &path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("second process");
        std::thread::scope(|s| {
            for who in ["ours-a", "ours-b"] {
                let path = &path;
                s.spawn(move || push_many(path, who, 60));
            }
        });
        assert!(other.wait().expect("wait").success());
        let list = ListFile::<Vec<String>>::open(path).expect("open");
        let mut kept = list.read().clone();
        kept.sort();
        kept.dedup();
        assert_eq!(kept.len(), 180, "changes lost: {} kept", kept.len());
    }

    /// A list file holding `["a"]`, and its path.
    fn holding_a() -> (tempfile::TempDir, PathBuf, ListFile<Vec<String>>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("list.json");
        let list = ListFile::<Vec<String>>::open(path.clone()).expect("open");
        list.change(|l| l.push("a".into())).expect("change");
        (dir, path, list)
    }

    /// A rewrite that leaves the file's time and length as they were (a
    /// coarse clock, the same number of bytes) is still read before a change.
    #[test]
    fn a_rewrite_the_clock_misses_is_read_before_a_change() {
        let (_dir, path, ours) = holding_a();
        let before = std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime");
        let theirs = ListFile::<Vec<String>>::open(path.clone()).expect("open");
        theirs.change(|l| l[0] = "b".into()).expect("change");
        File::options().write(true).open(&path).and_then(|f| f.set_modified(before)).expect("set mtime");
        assert_eq!(*ours.read(), ["a"], "time and length as before: not noticed on a read");
        ours.change(|l| l.push("c".into())).expect("change");
        assert_eq!(*ListFile::<Vec<String>>::open(path).expect("open").read(), ["b", "c"]);
    }

    /// A file edited into something that is not a list: the change is
    /// refused, naming the file, and the file is left as it is.
    #[test]
    fn a_file_that_cannot_be_read_refuses_changes_and_is_left_alone() {
        let (_dir, path, ours) = holding_a();
        std::fs::write(&path, b"[\"a\", oops").expect("edit");
        assert_eq!(*ours.read(), ["a"], "the list known is kept");
        let refused = ours.change(|l| l.push("b".into())).expect_err("refused");
        assert!(refused.to_string().contains("list.json"), "{refused}");
        assert_eq!(std::fs::read(&path).expect("read"), b"[\"a\", oops");
        assert!(ListFile::<Vec<String>>::open(path).is_err());
    }

    /// A change that changes nothing does not rewrite the file.
    #[test]
    fn no_change_no_write() {
        let (_dir, path, ours) = holding_a();
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("stat"));
        let first = inode(&path);
        ours.change(|l| l.sort()).expect("change");
        assert_eq!(inode(&path), first, "not replaced");
        ours.change(|l| l.push("b".into())).expect("change");
        assert_ne!(inode(&path), first, "replaced");
    }
}
