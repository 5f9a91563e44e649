//! People's accounts for e-signatures (21 CFR Part 11 §11.200): a printed
//! name, a role and an argon2 password hash in `<data-dir>/accounts.json`.
//! Signing asks for the password again; repeated failures lock the account.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

use crate::auth::Role;

/// Failed password entries before an account locks.
const MAX_FAILURES: u32 = 5;
/// How long it stays locked.
const LOCK_MS: i64 = 15 * 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub name: String,
    /// The name printed with every signature (§11.50).
    pub printed_name: String,
    pub role: Role,
    /// argon2id PHC string; the password itself is never stored.
    password: String,
    #[serde(default)]
    failures: u32,
    #[serde(default)]
    locked_until: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("no account {0}")]
    NoAccount(String),
    #[error("wrong password")]
    Wrong,
    #[error("the account is locked after repeated wrong passwords; try again later")]
    Locked,
    #[error("{0}")]
    Store(String),
}

/// Accounts by name.
#[derive(Debug)]
pub struct AccountStore {
    path: PathBuf,
    accounts: RwLock<BTreeMap<String, Account>>,
}

fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Store(format!("no randomness for a salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Store(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Store(e.to_string()))
}

impl AccountStore {
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let list: Vec<Account> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let accounts = list.into_iter().map(|a| (a.name.clone(), a)).collect();
        Ok(Self { path, accounts: RwLock::new(accounts) })
    }

    fn save(&self, accounts: &BTreeMap<String, Account>) -> Result<(), PasswordError> {
        let list: Vec<&Account> = accounts.values().collect();
        let bytes = serde_json::to_vec_pretty(&list).map_err(|e| PasswordError::Store(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        crate::pipeline::write_private(&tmp, &bytes).map_err(|e| PasswordError::Store(e.to_string()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| PasswordError::Store(e.to_string()))
    }

    /// Adds or replaces an account.
    pub fn set(&self, name: &str, printed_name: &str, role: Role, password: &str) -> Result<(), PasswordError> {
        if password.chars().count() < 12 {
            return Err(PasswordError::Store("a password has at least 12 characters".into()));
        }
        let account = Account {
            name: name.to_owned(),
            printed_name: printed_name.to_owned(),
            role,
            password: hash_password(password)?,
            failures: 0,
            locked_until: 0,
        };
        let mut map = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        map.insert(name.to_owned(), account);
        self.save(&map)
    }

    pub fn get(&self, name: &str) -> Option<Account> {
        self.accounts.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// The printed name of `name`'s account, if there is one.
    pub fn printed_name(&self, name: &str) -> Option<String> {
        self.accounts.read().unwrap_or_else(|e| e.into_inner()).get(name).map(|a| a.printed_name.clone())
    }

    /// Checks `password` for `name` at `now`; counts failures and locks.
    pub fn check(&self, name: &str, password: &str, now: i64) -> Result<Account, PasswordError> {
        let mut map = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        let a = map.get_mut(name).ok_or_else(|| PasswordError::NoAccount(name.to_owned()))?;
        if a.locked_until > now {
            return Err(PasswordError::Locked);
        }
        let ok = PasswordHash::new(&a.password)
            .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        if ok {
            a.failures = 0;
            let a = a.clone();
            self.save(&map)?;
            return Ok(a);
        }
        a.failures += 1;
        if a.failures >= MAX_FAILURES {
            a.failures = 0;
            a.locked_until = now + LOCK_MS;
        }
        self.save(&map)?;
        Err(PasswordError::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_checked_and_lock_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("accounts.json");
        let store = AccountStore::open(path.clone()).expect("open");
        assert!(store.set("qa1", "Quinn Adams", Role::QualityReviewer, "short").is_err());
        store.set("qa1", "Quinn Adams", Role::QualityReviewer, "correct horse battery").expect("set");
        let stored = std::fs::read_to_string(&path).expect("read");
        assert!(!stored.contains("correct horse") && stored.contains("$argon2id$"), "{stored}");
        let store = AccountStore::open(path).expect("reopen");
        assert_eq!(store.check("qa1", "correct horse battery", 0).map(|a| a.printed_name), Ok("Quinn Adams".into()));
        for _ in 0..MAX_FAILURES {
            assert_eq!(store.check("qa1", "wrong", 1).map(|_| ()), Err(PasswordError::Wrong));
        }
        assert_eq!(store.check("qa1", "correct horse battery", 2).map(|_| ()), Err(PasswordError::Locked));
        assert!(store.check("qa1", "correct horse battery", 2 + LOCK_MS).is_ok(), "unlocked later");
        assert_eq!(store.check("nobody", "x", 0).map(|_| ()), Err(PasswordError::NoAccount("nobody".into())));
    }
}
