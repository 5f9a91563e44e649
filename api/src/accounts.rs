//! People's accounts for e-signatures (21 CFR Part 11 §11.200): a printed
//! name, a role and an argon2 password hash in `<data-dir>/accounts.json`.
//! Signing asks for the password again; repeated failures lock the account.
//!
//! A password an administrator set (`custos user add|passwd`) is temporary:
//! until its holder chooses their own, a login may only change it and it
//! signs nothing, so no one but the holder can sign as them (§11.200(a)(3),
//! §11.300). Passwords may also age and may not repeat earlier ones
//! (`[accounts]`, §11.300(b)); both are off by default, as NIST SP 800-63B
//! advises against forced periodic changes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::listfile::{ListFile, Listed};

/// The shortest password taken.
const MIN_PASSWORD_CHARS: usize = 12;
/// Failed password entries before an account locks.
const MAX_FAILURES: u32 = 5;
/// How long it stays locked.
const LOCK_MS: i64 = 15 * 60_000;
/// Earlier password hashes kept per account, whatever `password_history`
/// says (the command line changes passwords without the service's
/// configuration, and must not drop what a later check needs).
pub const MAX_PASSWORD_HISTORY: usize = 24;
/// Names without an account whose failures are counted (so they lock as an
/// account would, and a lock-out does not tell a guesser the name exists).
const MAX_UNKNOWN_NAMES: usize = 10_000;

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
    /// Disabled by `custos user disable`: no login, no signature, until
    /// `custos user add` makes the account anew.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    /// When (Unix ms) its right password was last given (a login, an
    /// e-signature, a password change): an access review finds dormant
    /// accounts by it. 0: never since it was made.
    #[serde(default, skip_serializing_if = "is_zero")]
    last_login: i64,
    /// When (Unix ms) the password was set. 0: before Custos kept it, so an
    /// account from then counts as expired once passwords age.
    #[serde(default, skip_serializing_if = "is_zero")]
    password_set_at: i64,
    /// Set by an administrator: its holder must choose their own first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    temporary: bool,
    /// argon2id hashes of earlier passwords, newest first, at most
    /// [`MAX_PASSWORD_HISTORY`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    previous: Vec<String>,
}

fn is_zero(t: &i64) -> bool {
    *t == 0
}

impl Account {
    /// A disabled account keeps its name and printed name (its signatures
    /// stay its own) but neither logs in nor signs.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Until when (Unix ms) wrong passwords keep it locked, if they do at `now`.
    pub fn locked_until(&self, now: i64) -> Option<i64> {
        (self.locked_until > now).then_some(self.locked_until)
    }

    /// When (Unix ms) the password expires under `policy`; `None` when
    /// passwords do not age. One set before Custos kept the time has
    /// expired (at 0): its age is unknown.
    pub fn password_expires_at(&self, policy: &PasswordPolicy) -> Option<i64> {
        let set_at = self.password_set_at;
        (policy.max_age_ms > 0).then(|| if set_at == 0 { 0 } else { set_at.saturating_add(policy.max_age_ms) })
    }

    /// Why the password must be changed at `now` before anything else.
    pub fn change_due(&self, policy: &PasswordPolicy, now: i64) -> Option<ChangeDue> {
        if self.temporary {
            return Some(ChangeDue::Temporary);
        }
        self.password_expires_at(policy).is_some_and(|at| at <= now).then_some(ChangeDue::Expired)
    }
}

/// Who set a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetBy {
    /// An administrator: the password is temporary (its holder changes it
    /// at the next login), as the administrator knows it too.
    Administrator,
    /// Its holder, who alone knows it.
    Holder,
}

/// Why a password must be changed before its holder may do anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeDue {
    /// An administrator set it.
    Temporary,
    /// Older than `password_max_age_days`.
    Expired,
}

impl ChangeDue {
    /// As the API says it (`password_change_required`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Temporary => "temporary",
            Self::Expired => "expired",
        }
    }
}

/// How passwords age and repeat (`[accounts]` in `custos.toml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// A password chosen by its holder lasts this long (ms); 0: for ever.
    pub max_age_ms: i64,
    /// A new password may not be any of the last this many.
    pub history: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("no account {0}")]
    NoAccount(String),
    #[error("wrong password")]
    Wrong,
    #[error("the account is locked after repeated wrong passwords; try again later")]
    Locked,
    #[error("the account is disabled")]
    Disabled,
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the new password is the current one")]
    Unchanged,
    #[error("the new password was used before: it may not be any of the last {0}")]
    Reused(usize),
    #[error("{0}")]
    Store(String),
}

/// Accounts by name.
#[derive(Debug)]
pub struct AccountStore {
    /// `custos user` may change the file while Custos runs.
    accounts: ListFile<BTreeMap<String, Account>>,
    policy: PasswordPolicy,
    /// Failures and lock-outs of names without an account: `(failures, locked_until)`.
    unknown: std::sync::Mutex<std::collections::HashMap<String, (u32, i64)>>,
}

/// An argon2id hash of a random password, checked against for names without
/// an account: a wrong name then costs the same time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut password = [0u8; 32];
        // Without randomness the decoy is a hash of zeros: still a full argon2 check.
        let _ = getrandom::fill(&mut password);
        hash_password(&hex::encode(password)).unwrap_or_default()
    })
}

/// Counts one failure in `(failures, locked_until)`; locks after [`MAX_FAILURES`].
fn count_failure(state: (&mut u32, &mut i64), now: i64) {
    *state.0 += 1;
    if *state.0 >= MAX_FAILURES {
        *state.0 = 0;
        *state.1 = now + LOCK_MS;
    }
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

impl Listed for BTreeMap<String, Account> {
    type Item = Account;
    fn from_items(items: Vec<Account>) -> Self {
        items.into_iter().map(|a| (a.name.clone(), a)).collect()
    }
    fn items(&self) -> Vec<&Account> {
        self.values().collect()
    }
}

fn store_error(e: std::io::Error) -> PasswordError {
    PasswordError::Store(e.to_string())
}

impl AccountStore {
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        Ok(Self { accounts: ListFile::open(path)?, policy: PasswordPolicy::default(), unknown: Default::default() })
    }

    /// Passwords age and may not repeat as `policy` says.
    pub fn with_policy(self, policy: PasswordPolicy) -> Self {
        Self { policy, ..self }
    }

    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// Adds or replaces an account, its password set at `now` by `by`.
    pub fn set(
        &self,
        name: &str,
        printed_name: &str,
        role: Role,
        password: &str,
        by: SetBy,
        now: i64,
    ) -> Result<(), PasswordError> {
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(PasswordError::TooShort);
        }
        let account = Account {
            name: name.to_owned(),
            printed_name: printed_name.to_owned(),
            role,
            password: hash_password(password)?,
            failures: 0,
            locked_until: 0,
            disabled: false,
            last_login: 0,
            password_set_at: now,
            temporary: by == SetBy::Administrator,
            previous: Vec::new(),
        };
        // The last login and earlier passwords stay: made anew or given a
        // new password, it is the same name.
        let kept = |map: &mut BTreeMap<String, Account>| {
            let (last_login, previous) = map.get(name).map_or((0, Vec::new()), |a| {
                let previous = std::iter::once(&a.password).chain(&a.previous).take(MAX_PASSWORD_HISTORY);
                (a.last_login, previous.cloned().collect())
            });
            map.insert(name.to_owned(), Account { last_login, previous, ..account });
        };
        self.accounts.change(kept).map_err(store_error)
    }

    pub fn get(&self, name: &str) -> Option<Account> {
        self.accounts.read().get(name).cloned()
    }

    /// Every account, by name.
    pub fn list(&self) -> Vec<Account> {
        self.accounts.read().values().cloned().collect()
    }

    /// The printed name of `name`'s account, if there is one.
    pub fn printed_name(&self, name: &str) -> Option<String> {
        self.accounts.read().get(name).map(|a| a.printed_name.clone())
    }

    /// Checks `password` for `name` at `now`; counts failures and locks.
    ///
    /// The attempt is counted as a failure, in the file, before the slow
    /// argon2 check (about 15 ms) and taken back when the password is right.
    /// The accounts are not locked while the hash is computed, so one login
    /// does not hold up every other; guesses sent in parallel still lock the
    /// account after [`MAX_FAILURES`]; and a change another process writes
    /// meanwhile (`custos user`) cannot drop the count, nor can a crash.
    pub fn check(&self, name: &str, password: &str, now: i64) -> Result<Account, PasswordError> {
        let counted = self.accounts.change(|map| {
            let a = map.get_mut(name)?;
            if a.locked_until > now {
                return Some(Err(PasswordError::Locked));
            }
            count_failure((&mut a.failures, &mut a.locked_until), now);
            Some(Ok(a.password.clone()))
        });
        let Some(hash) = counted.map_err(store_error)? else {
            return Err(self.check_unknown(name, password, now));
        };
        if !verify_password(&hash?, password) {
            return Err(PasswordError::Wrong);
        }
        // A right password: the count goes and the time is written.
        let a = self.accounts.change(|map| {
            // Removed while the hash was checked: as if it had never been there.
            let a = map.get_mut(name).ok_or_else(|| PasswordError::NoAccount(name.to_owned()))?;
            (a.failures, a.locked_until, a.last_login) = (0, 0, now);
            Ok(a.clone())
        });
        let a = a.map_err(store_error)??;
        // Told only to who knows the password: a guesser learns nothing.
        if a.disabled {
            return Err(PasswordError::Disabled);
        }
        Ok(a)
    }

    /// `name` changes its own password: `current` is checked as a login's is
    /// (a wrong one counts towards the lock-out), then `new` replaces it,
    /// unless it is one of the last `history` (each an argon2 check).
    /// Role, printed name and a clean failure count stay; the new password
    /// is its holder's own, so no longer temporary.
    pub fn change_password(&self, name: &str, current: &str, new: &str, now: i64) -> Result<Account, PasswordError> {
        if new.chars().count() < MIN_PASSWORD_CHARS {
            return Err(PasswordError::TooShort);
        }
        if new == current {
            return Err(PasswordError::Unchanged);
        }
        let a = self.check(name, current, now)?;
        let history = self.policy.history;
        // The current password is `current`, told apart above.
        if a.previous.iter().take(history.saturating_sub(1)).any(|h| verify_password(h, new)) {
            return Err(PasswordError::Reused(history));
        }
        self.set(name, &a.printed_name, a.role, new, SetBy::Holder, now)?;
        Ok(a)
    }

    /// Disables `name`'s account: its password no longer logs in or signs.
    pub fn disable(&self, name: &str) -> Result<(), PasswordError> {
        let disabled = self.accounts.change(|map| {
            let a = map.get_mut(name).ok_or_else(|| PasswordError::NoAccount(name.to_owned()))?;
            a.disabled = true;
            Ok(())
        });
        disabled.map_err(store_error)?
    }

    /// Until when (Unix ms) `name` is locked at `now`, whether or not it has
    /// an account.
    pub fn locked_until(&self, name: &str, now: i64) -> Option<i64> {
        let until = match self.accounts.read().get(name) {
            Some(a) => a.locked_until,
            None => self.unknown.lock().unwrap_or_else(|e| e.into_inner()).get(name).map_or(0, |(_, until)| *until),
        };
        (until > now).then_some(until)
    }

    /// A session for `account`, whose password [`check`](Self::check) took;
    /// one that may only change the password when a change is due.
    /// `custos user disable` may have run since: it disables the account,
    /// then ends the name's tokens. A session issued before it ended its
    /// tokens is ended there; one issued after is ended here, as the account
    /// is read again once the session is on file.
    pub fn start_session(
        &self,
        tokens: &crate::auth::TokenStore,
        account: &Account,
        now: i64,
        expires_at: i64,
    ) -> Result<String, PasswordError> {
        let (name, role) = (&account.name, account.role);
        let token = match account.change_due(&self.policy, now) {
            None => tokens.issue_session(name, role, now, expires_at),
            Some(_) => tokens.issue_password_change_session(name, role, now, expires_at),
        };
        let token = token.map_err(store_error)?;
        if self.get(&account.name).is_none_or(|a| a.disabled) {
            tokens.end_session_at(&token, crate::auth::Ended::Disabled, now).map_err(store_error)?;
            return Err(PasswordError::Disabled);
        }
        Ok(token)
    }

    /// A name without an account: the same work and the same lock-out as a
    /// wrong password, so neither timing nor a lock tells that it does not exist.
    fn check_unknown(&self, name: &str, password: &str, now: i64) -> PasswordError {
        {
            let mut unknown = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
            if unknown.len() >= MAX_UNKNOWN_NAMES && !unknown.contains_key(name) {
                unknown.retain(|_, (_, locked_until)| *locked_until > now);
                if unknown.len() >= MAX_UNKNOWN_NAMES {
                    unknown.clear();
                }
            }
            let (failures, locked_until) = unknown.entry(name.to_owned()).or_default();
            if *locked_until > now {
                return PasswordError::Locked;
            }
            count_failure((failures, locked_until), now);
        }
        let _never = verify_password(decoy_hash(), password);
        PasswordError::NoAccount(name.to_owned())
    }
}

/// Who has access, for a periodic access review (EU GMP Annex 11 §12,
/// 21 CFR Part 11 §11.10(d)): every account, and every name holding live
/// tokens (collectors and services hold tokens without an account). No
/// password hash and no token is in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessReview {
    pub accounts: Vec<ReviewedAccount>,
    pub token_holders: Vec<crate::auth::TokenHolder>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewedAccount {
    pub name: String,
    pub printed_name: String,
    pub role: Role,
    pub disabled: bool,
    /// RFC 3339, while wrong passwords keep it locked.
    pub locked_until: Option<String>,
    /// RFC 3339: when its right password was last given; `None`: never.
    pub last_login: Option<String>,
    /// RFC 3339: when its password was set; `None`: before Custos kept it.
    pub password_set_at: Option<String>,
    /// Set by an administrator and not yet changed by its holder.
    pub temporary_password: bool,
    /// RFC 3339, when passwords age (`password_max_age_days`).
    pub password_expires_at: Option<String>,
}

impl AccessReview {
    pub fn at(accounts: Option<&AccountStore>, tokens: &crate::auth::TokenStore, now: i64) -> Self {
        let policy = accounts.map(|a| *a.policy()).unwrap_or_default();
        let accounts = accounts.map(AccountStore::list).unwrap_or_default().into_iter().map(|a| ReviewedAccount {
            disabled: a.disabled,
            locked_until: a.locked_until(now).map(ingest::time::format_rfc3339),
            last_login: (a.last_login > 0).then(|| ingest::time::format_rfc3339(a.last_login)),
            password_set_at: (a.password_set_at > 0).then(|| ingest::time::format_rfc3339(a.password_set_at)),
            temporary_password: a.temporary,
            password_expires_at: a.password_expires_at(&policy).map(ingest::time::format_rfc3339),
            name: a.name,
            printed_name: a.printed_name,
            role: a.role,
        });
        Self { accounts: accounts.collect(), token_holders: tokens.holders(now) }
    }
}

/// Whether `password` matches the argon2 PHC string `hash`.
fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_checked_and_lock_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("accounts.json");
        let store = AccountStore::open(path.clone()).expect("open");
        assert!(store.set("qa1", "Quinn Adams", Role::QualityReviewer, "short", SetBy::Holder, 0).is_err());
        store.set("qa1", "Quinn Adams", Role::QualityReviewer, "correct horse battery", SetBy::Holder, 0).expect("set");
        let stored = std::fs::read_to_string(&path).expect("read");
        assert!(!stored.contains("correct horse") && stored.contains("$argon2id$"), "{stored}");
        let store = AccountStore::open(path).expect("reopen");
        assert_eq!(store.check("qa1", "correct horse battery", 0).map(|a| a.printed_name), Ok("Quinn Adams".into()));
        assert_eq!(store.get("qa1").map(|a| a.last_login), Some(0), "the check at time 0 is no login time yet");
        assert!(store.check("qa1", "correct horse battery", 7).is_ok());
        store
            .set("qa1", "Quinn Adams", Role::QualityReviewer, "correct horse battery", SetBy::Holder, 0)
            .expect("new password");
        let reopened = AccountStore::open(dir.path().join("accounts.json")).expect("reopen");
        assert_eq!(reopened.get("qa1").map(|a| a.last_login), Some(7), "kept in the file and across a new password");
        for _ in 0..MAX_FAILURES {
            assert_eq!(store.check("qa1", "wrong", 1).map(|_| ()), Err(PasswordError::Wrong));
        }
        assert_eq!(store.check("qa1", "correct horse battery", 2).map(|_| ()), Err(PasswordError::Locked));
        assert!(store.check("qa1", "correct horse battery", 2 + LOCK_MS).is_ok(), "unlocked later");
        // A name without an account locks as an account does.
        for _ in 0..MAX_FAILURES {
            assert_eq!(store.check("nobody", "x", 0).map(|_| ()), Err(PasswordError::NoAccount("nobody".into())));
        }
        assert_eq!(store.check("nobody", "x", 1).map(|_| ()), Err(PasswordError::Locked));
        assert_eq!(store.check("nobody", "x", 1 + LOCK_MS).map(|_| ()), Err(PasswordError::NoAccount("nobody".into())));
        // A disabled account: a wrong password is still just wrong; the right
        // one is refused as disabled, after a reopen too, until made anew.
        store.disable("qa1").expect("disable");
        assert_eq!(store.disable("nobody"), Err(PasswordError::NoAccount("nobody".into())));
        assert_eq!(store.check("qa1", "wrong", 3 + LOCK_MS).map(|_| ()), Err(PasswordError::Wrong));
        let reopened = AccountStore::open(dir.path().join("accounts.json")).expect("reopen");
        assert_eq!(
            reopened.check("qa1", "correct horse battery", 3 + LOCK_MS).map(|_| ()),
            Err(PasswordError::Disabled)
        );
        reopened
            .set("qa1", "Quinn Adams", Role::QualityReviewer, "another horse battery", SetBy::Holder, 0)
            .expect("made anew");
        assert!(reopened.check("qa1", "another horse battery", 3 + LOCK_MS).is_ok());
    }

    /// The hash is checked outside the lock, so guesses can arrive together:
    /// each is counted before its check, and no more than [`MAX_FAILURES`]
    /// are ever checked before the lock.
    #[test]
    fn guesses_sent_together_still_lock_after_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(AccountStore::open(dir.path().join("accounts.json")).expect("open"));
        store.set("qa1", "Quinn Adams", Role::QualityReviewer, "correct horse battery", SetBy::Holder, 0).expect("set");
        for name in ["qa1", "nobody"] {
            let results: Vec<_> = (0..3 * MAX_FAILURES)
                .map(|_| {
                    let store = store.clone();
                    std::thread::spawn(move || store.check(name, "wrong", 5).map(|_| ()))
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().expect("thread"))
                .collect();
            let locked = results.iter().filter(|r| **r == Err(PasswordError::Locked)).count();
            assert_eq!(locked, 2 * MAX_FAILURES as usize, "{name}: {results:?}");
        }
        // A right password after a wrong one clears the count, and is saved.
        assert!(store.check("qa1", "correct horse battery", 5 + LOCK_MS).is_ok());
        assert_eq!(store.check("qa1", "wrong", 5 + LOCK_MS).map(|_| ()), Err(PasswordError::Wrong));
        assert!(store.check("qa1", "correct horse battery", 5 + LOCK_MS).is_ok());
        let reopened = AccountStore::open(dir.path().join("accounts.json")).expect("reopen");
        assert_eq!(reopened.get("qa1").map(|a| (a.failures, a.locked_until)), Some((0, 0)));
    }

    /// `custos user disable` while Custos counts wrong passwords for the
    /// same account: the count is written with the disable in, not over it.
    #[test]
    fn a_disable_from_another_process_survives_failures_counted_meanwhile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("accounts.json");
        let running = AccountStore::open(path.clone()).expect("open");
        running
            .set("qa1", "Quinn Adams", Role::QualityReviewer, "correct horse battery", SetBy::Holder, 0)
            .expect("set");
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                start.wait();
                for _ in 0..3 {
                    assert_eq!(running.check("qa1", "wrong", 0).map(|_| ()), Err(PasswordError::Wrong));
                }
            });
            let cli = AccountStore::open(path.clone()).expect("open");
            start.wait();
            cli.disable("qa1").expect("disable");
        });
        assert_eq!(running.check("qa1", "correct horse battery", 0).map(|_| ()), Err(PasswordError::Disabled));
        let reopened = AccountStore::open(path).expect("reopen");
        assert!(reopened.get("qa1").is_some_and(|a| a.is_disabled()), "the disable is kept in the file");
    }

    /// `custos user` rewrites the file over and over while wrong passwords
    /// are checked: each is still counted, and the account locks on time.
    #[test]
    fn wrong_passwords_count_while_another_process_rewrites_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("accounts.json");
        let running = AccountStore::open(path.clone()).expect("open");
        running
            .set("qa1", "Quinn Adams", Role::QualityReviewer, "correct horse battery", SetBy::Holder, 0)
            .expect("set");
        let done = std::sync::atomic::AtomicBool::new(false);
        let rewrites = std::thread::scope(|s| {
            let cli = s.spawn(|| {
                let cli = AccountStore::open(path.clone()).expect("open");
                let mut rewrites = 0;
                // A fresh salt each time: every `set` is a real rewrite.
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    cli.set("sam", "Sam Okafor", Role::SocAnalyst, "a long passphrase", SetBy::Holder, 0).expect("set");
                    rewrites += 1;
                }
                rewrites
            });
            for _ in 0..MAX_FAILURES {
                assert_eq!(running.check("qa1", "wrong", 0).map(|_| ()), Err(PasswordError::Wrong));
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            cli.join().expect("cli")
        });
        assert!(rewrites > 0);
        assert_eq!(running.check("qa1", "correct horse battery", 1).map(|_| ()), Err(PasswordError::Locked));
        let reopened = AccountStore::open(path).expect("reopen");
        assert!(reopened.locked_until("qa1", 1).is_some(), "the lock is in the file");
    }

    /// A login whose password was taken just before `custos user disable`
    /// ran gets no session that outlives the disable.
    #[test]
    fn a_login_overtaken_by_a_disable_gets_no_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = AccountStore::open(dir.path().join("accounts.json")).expect("open");
        let tokens = crate::auth::TokenStore::open(dir.path().join("tokens.json")).expect("open");
        running
            .set("qa1", "Quinn Adams", Role::QualityReviewer, "correct horse battery", SetBy::Holder, 0)
            .expect("set");
        let checked = running.check("qa1", "correct horse battery", 0).expect("right password");
        let session = running.start_session(&tokens, &checked, 0, 60_000).expect("still enabled");
        assert!(tokens.check_at(&session, 1).is_ok());
        AccountStore::open(dir.path().join("accounts.json")).expect("open").disable("qa1").expect("disable");
        assert_eq!(running.start_session(&tokens, &checked, 2, 60_000), Err(PasswordError::Disabled));
        assert_eq!(tokens.holders(3).iter().map(|h| h.sessions).sum::<usize>(), 1, "only the earlier session");
    }

    /// A password an administrator set is temporary until its holder's own
    /// replaces it; one its holder set ages under the policy (from when it
    /// was set, an account older than that counting as expired); earlier
    /// hashes are kept across every kind of change, at most 24, and only
    /// the policy's last N are refused.
    #[test]
    fn temporary_and_aged_passwords_and_their_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("accounts.json");
        let policy = PasswordPolicy { max_age_ms: 1_000, history: 3 };
        let store = AccountStore::open(path.clone()).expect("open").with_policy(policy);
        let due = |at: i64| store.get("qa1").expect("account").change_due(&policy, at);
        store
            .set("qa1", "Quinn Adams", Role::QualityReviewer, "set by the admin", SetBy::Administrator, 100)
            .expect("set");
        assert_eq!(due(100), Some(ChangeDue::Temporary));
        assert_eq!(store.get("qa1").and_then(|a| a.password_expires_at(&policy)), Some(1_100));
        assert_eq!(store.get("qa1").and_then(|a| a.password_expires_at(&PasswordPolicy::default())), None);
        let changed = |current: &str, new: &str, now| store.change_password("qa1", current, new, now).map(|_| ());
        assert_eq!(changed("set by the admin", "quinn's own one", 200), Ok(()));
        assert_eq!((due(1_199), due(1_200)), (None, Some(ChangeDue::Expired)), "1 s after it was set");
        assert_eq!(due(1_200 + 1), store.get("qa1").expect("a").change_due(&policy, 5_000));
        let never = PasswordPolicy { max_age_ms: 0, history: 3 };
        assert_eq!(store.get("qa1").expect("a").change_due(&never, i64::MAX), None, "no ageing: never due");
        assert_eq!(changed("quinn's own one", "set by the admin", 300), Err(PasswordError::Reused(3)));
        assert_eq!(changed("quinn's own one", "quinn's second one", 300), Ok(()));
        assert_eq!(changed("quinn's second one", "set by the admin", 400), Err(PasswordError::Reused(3)));
        assert_eq!(changed("quinn's second one", "quinn's third one", 400), Ok(()));
        assert_eq!(changed("quinn's third one", "set by the admin", 500), Ok(()), "the fourth last is allowed again");
        // An administrator's reset keeps the history, and is temporary again.
        store
            .set("qa1", "Quinn Adams", Role::QualityReviewer, "reset by the admin", SetBy::Administrator, 600)
            .expect("reset");
        assert_eq!(due(600), Some(ChangeDue::Temporary));
        assert_eq!(changed("reset by the admin", "quinn's third one", 700), Err(PasswordError::Reused(3)));
        for i in 0..30 {
            store
                .set("qa1", "Quinn Adams", Role::QualityReviewer, &format!("password number {i}"), SetBy::Holder, 800)
                .expect("set");
        }
        let reopened = AccountStore::open(path).expect("reopen");
        let a = reopened.get("qa1").expect("account");
        assert_eq!(a.previous.len(), MAX_PASSWORD_HISTORY);
        assert!(verify_password(&a.previous[0], "password number 28"), "newest first");
        assert_eq!((a.temporary, a.password_set_at), (false, 800));
        // An account from before Custos kept the time counts as expired once passwords age.
        let old = Account { password_set_at: 0, ..a };
        assert_eq!(old.change_due(&policy, 800), Some(ChangeDue::Expired));
        assert_eq!(old.change_due(&never, 800), None);
    }

    /// `custos user add` runs in another process while Custos serves: the
    /// running stores see the new account and token at the next request.
    #[test]
    fn another_process_adding_a_user_is_seen_without_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = AccountStore::open(dir.path().join("accounts.json")).expect("open");
        let tokens = crate::auth::TokenStore::open(dir.path().join("tokens.json")).expect("open");
        assert!(running.get("sam").is_none());
        let cli = AccountStore::open(dir.path().join("accounts.json")).expect("open");
        cli.set("sam", "Sam Okafor", Role::SocAnalyst, "a long passphrase", SetBy::Holder, 0).expect("set");
        let token = crate::auth::TokenStore::open(dir.path().join("tokens.json"))
            .expect("open")
            .issue("sam", Role::SocAnalyst)
            .expect("issue");
        assert_eq!(running.printed_name("sam").as_deref(), Some("Sam Okafor"));
        assert!(running.check("sam", "a long passphrase", 0).is_ok());
        assert_eq!(tokens.authenticate(&token).map(|p| p.name), Some("sam".to_owned()));
    }
}
