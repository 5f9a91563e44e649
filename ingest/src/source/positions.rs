//! Durable source positions (file offsets, processed backups). A position is
//! committed only after the ledger has made what it covers durable, so a
//! restart neither loses nor repeats a record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Positions kept in one JSON file, replaced atomically on each commit.
#[derive(Debug)]
pub struct Positions {
    path: PathBuf,
    map: Mutex<BTreeMap<String, u64>>,
}

impl Positions {
    /// Opens (or starts) the positions file; an unreadable file is an error
    /// rather than a silent restart from zero.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let map = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self { path, map: Mutex::new(map) })
    }

    pub fn get(&self, key: &str) -> Option<u64> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied()
    }

    /// Records new positions and writes the file (write, fsync, rename).
    pub fn commit<'a>(&self, updates: impl IntoIterator<Item = (&'a str, u64)>) -> std::io::Result<()> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for (k, v) in updates {
            if map.get(k) != Some(&v) {
                map.insert(k.to_owned(), v);
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&*map).map_err(std::io::Error::other)?;
        replace_file(&self.path, &bytes)
    }
}

/// Replaces `path` with `bytes` whole or not at all: written beside it as
/// `<path>.tmp` (owner-only on Unix: some of these files hold credentials'
/// hashes), synced, then renamed over it. State files (positions, tokens,
/// accounts) all go through here.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("positions.json");
        let p = Positions::open(path.clone()).expect("open");
        p.commit([("eve", 42), ("plc:PLC-01/b1", 1)]).expect("commit");
        let again = Positions::open(path.clone()).expect("reopen");
        assert_eq!(again.get("eve"), Some(42));
        assert_eq!(again.get("nope"), None);
        std::fs::write(&path, b"{broken").expect("write");
        assert!(Positions::open(path).is_err(), "a corrupt positions file must not silently reset");
    }
}
