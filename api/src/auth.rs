//! Bearer API tokens, stored as SHA-256 hashes, each with one role.
//! The permission table lives in `server.rs` next to the routes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    SocAnalyst,
    QualityReviewer,
    Auditor,
    ControlRoom,
    Collector,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredToken {
    name: String,
    role: Role,
    sha256: String,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Tokens in `<data-dir>/tokens.json`; only hashes are stored.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    by_hash: RwLock<HashMap<String, StoredToken>>,
}

impl TokenStore {
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let tokens: Vec<StoredToken> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let by_hash = tokens.into_iter().map(|t| (t.sha256.clone(), t)).collect();
        Ok(Self { path, by_hash: RwLock::new(by_hash) })
    }

    /// Issues a new token for `name` (replacing that name's earlier token).
    pub fn issue(&self, name: &str, role: Role) -> std::io::Result<String> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(format!("no randomness for a token: {e}")))?;
        let token = format!("cus_{}", hex::encode(secret));
        self.add(name, role, &token)?;
        Ok(token)
    }

    /// Registers a token the caller already holds (e.g. the demo's saved admin token).
    pub fn add(&self, name: &str, role: Role, token: &str) -> std::io::Result<()> {
        let mut map = self.by_hash.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, t| t.name != name);
        map.insert(hash(token), StoredToken { name: name.to_owned(), role, sha256: hash(token) });
        let mut list: Vec<&StoredToken> = map.values().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = serde_json::to_vec_pretty(&list).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path)
    }

    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let map = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
        map.get(&hash(token)).map(|t| Principal { name: t.name.clone(), role: t.role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.json");
        let store = TokenStore::open(path.clone()).expect("open");
        let t = store.issue("ana", Role::SocAnalyst).expect("issue");
        let stored = std::fs::read_to_string(&path).expect("read");
        assert!(!stored.contains(&t), "the token itself is never written");
        let again = TokenStore::open(path).expect("reopen");
        assert_eq!(again.authenticate(&t), Some(Principal { name: "ana".into(), role: Role::SocAnalyst }));
        assert_eq!(again.authenticate("cus_wrong"), None);
        let t2 = again.issue("ana", Role::SocAnalyst).expect("reissue");
        assert_eq!(again.authenticate(&t), None, "reissuing replaces the old token");
        assert!(again.authenticate(&t2).is_some());
    }
}
