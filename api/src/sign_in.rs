//! Custos's own sign-in attempts as security events. 21 CFR Part 11
//! §11.300(d) asks that attempts at unauthorised use be detected and
//! reported at once to the security unit; the audit record alone is found
//! only by whoever looks.
//!
//! Each login, each password entered again for an e-signature and each
//! current password given to change it becomes
//! a CEF record from the source `custos` on the raw topic: Custos is then
//! an authentication log like any other, parsed, ledgered and correlated
//! through the same path (no second way in for alerts). The shipped rules
//! in `correlate/rules/custos-sign-in.yml` raise an alert when an account
//! locks, when a disabled account's password is tried, when one address
//! tries many names, when an expired API token is still used, and when one
//! address keeps presenting unknown tokens.
//!
//! Requests refused for their bearer token are reported too, but at most
//! once a minute for each address, reason and account ([`TokenRefusals`]),
//! with how many were refused (`cnt`): a client retrying every second with
//! a replaced token must not fill the ledger.

use std::collections::HashMap;
use std::net::IpAddr;

use ingest::{Format, RawRecord};

use crate::accounts::{Account, AccountStore, PasswordError};

/// The source name Custos's own records carry.
pub const SOURCE: &str = "custos";

/// Where a password was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Login,
    /// Entered again to sign a record.
    Signature,
    /// Entered to change it.
    PasswordChange,
}

/// How a password check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    WrongPassword,
    NoAccount,
    /// This wrong password locked the name.
    LockedNow,
    /// Refused: the name was locked already.
    Locked,
    /// The right password of a disabled account.
    Disabled,
}

impl Outcome {
    /// How a password check of `name` at `now` that ended in `result` is
    /// reported; `None` when it never came to a check (a store failure, a
    /// new password refused before the current one was checked).
    pub fn of(accounts: &AccountStore, name: &str, now: i64, result: &Result<Account, PasswordError>) -> Option<Self> {
        Some(match result {
            // A reused new password is refused after the current one was right.
            Ok(_) | Err(PasswordError::Reused(_)) => Self::Success,
            Err(PasswordError::Wrong | PasswordError::NoAccount(_)) if accounts.locked_until(name, now).is_some() => {
                Self::LockedNow
            }
            Err(PasswordError::Wrong) => Self::WrongPassword,
            Err(PasswordError::NoAccount(_)) => Self::NoAccount,
            Err(PasswordError::Locked) => Self::Locked,
            Err(PasswordError::Disabled) => Self::Disabled,
            Err(PasswordError::Store(_) | PasswordError::TooShort | PasswordError::Unchanged) => return None,
        })
    }

    /// (signature id, what happened, CEF severity 0–10).
    fn cef(self) -> (&'static str, &'static str, u8) {
        match self {
            Self::Success => ("success", "", 1),
            Self::WrongPassword => ("failed", "wrong password", 5),
            Self::NoAccount => ("failed", "no such account", 5),
            Self::LockedNow => ("locked", "account locked after repeated wrong passwords", 8),
            Self::Locked => ("refused", "account locked", 5),
            Self::Disabled => ("refused", "account disabled", 7),
        }
    }
}

/// Escapes a CEF header field (`|` and `\`).
fn header_field(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|")
}

/// Escapes a CEF extension value (`\`, `=` and line ends).
fn extension_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('=', "\\=").replace('\n', "\\n").replace('\r', "\\r")
}

/// The CEF line of one attempt by `name` from `from` at `at` (Unix ms).
/// The name is whatever the client sent, so it is escaped.
pub fn cef_line(via: Via, outcome: Outcome, name: &str, from: Option<IpAddr>, at: i64) -> String {
    let (sig, what, severity) = outcome.cef();
    let (sig_prefix, title) = match via {
        Via::Login => ("login", "Custos login"),
        Via::Signature => ("signature.login", "Custos e-signature login"),
        Via::PasswordChange => ("password.login", "Custos password change login"),
    };
    // The parser reads a name with "login" in it as a logon, and one with
    // "fail" in it as failed.
    let name_field = if outcome == Outcome::Success { title.to_owned() } else { format!("{title} failed: {what}") };
    let mut line = format!(
        "CEF:0|Custos|Custos|{}|{sig_prefix}.{sig}|{}|{severity}|rt={at} suser={}",
        header_field(env!("CARGO_PKG_VERSION")),
        header_field(&name_field),
        extension_value(name),
    );
    if let Some(ip) = from {
        line.push_str(&format!(" src={ip}"));
    }
    line
}

/// The raw record of one attempt, as a collector would hand it over.
pub fn record(via: Via, outcome: Outcome, name: &str, from: Option<IpAddr>, at: i64) -> RawRecord {
    RawRecord::new(SOURCE.into(), Format::Cef, at, cef_line(via, outcome, name, from, at).into_bytes())
}

/// Why a request's bearer token let no one in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenRefusal {
    /// Not a token Custos issued (or one that stopped working longer ago
    /// than Custos remembers).
    Unknown,
    /// An API token issued for a time that has passed.
    Expired,
    /// A session past its time.
    SessionExpired,
    /// A token ended before its time, and why: a session logged out, a
    /// replaced API token, a disabled account's.
    Ended(crate::auth::Ended),
}

impl TokenRefusal {
    /// Its place among the totals: unknown, expired, ended.
    fn slot(self) -> usize {
        match self {
            Self::Unknown => 0,
            Self::Expired | Self::SessionExpired => 1,
            Self::Ended(_) => 2,
        }
    }
}

/// The CEF line of `count` requests refused for `why` from `from` since the
/// last report, the last at `at`; `name` is the account of an expired or
/// ended token.
pub fn token_cef_line(why: TokenRefusal, name: Option<&str>, from: Option<IpAddr>, count: u64, at: i64) -> String {
    // "login" and "failed" in the name make it a failed logon to the parser.
    let (sig, what) = match why {
        TokenRefusal::Unknown => ("token.unknown", "unknown token".to_owned()),
        TokenRefusal::Expired => ("token.expired", "expired API token".to_owned()),
        TokenRefusal::SessionExpired => ("token.session_expired", "expired session".to_owned()),
        TokenRefusal::Ended(how) => ("token.ended", format!("token ended ({})", how.name())),
    };
    let mut line = format!(
        "CEF:0|Custos|Custos|{}|{sig}|Custos API login failed: {what}|5|rt={at} cnt={count}",
        header_field(env!("CARGO_PKG_VERSION")),
    );
    if let Some(name) = name {
        line.push_str(&format!(" suser={}", extension_value(name)));
    }
    if let Some(ip) = from {
        line.push_str(&format!(" src={ip}"));
    }
    line
}

/// The raw record of one [`TokenReport`].
pub fn token_record(report: &TokenReport) -> RawRecord {
    let key = &report.key;
    let line = token_cef_line(key.why, key.name.as_deref(), key.from, report.count, report.at);
    RawRecord::new(SOURCE.into(), Format::Cef, report.at, line.into_bytes())
}

/// Whose refusals are counted together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenRefusalKey {
    pub why: TokenRefusal,
    /// The account of an expired or ended token.
    pub name: Option<String>,
    pub from: Option<IpAddr>,
}

/// `count` refusals of `key`, reported at `at` (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReport {
    pub key: TokenRefusalKey,
    pub count: u64,
    pub at: i64,
}

/// Counts refused tokens and says when to report them: the first refusal
/// of a key at once (§11.300(d) asks for "immediately"), then at most one
/// report per `every_ms`, carrying the refusals since the last. Pure: the
/// caller passes the time, and reports what [`TokenRefusals::due`] returns
/// now and then, so the tail of a burst is reported too.
#[derive(Debug)]
pub struct TokenRefusals {
    every_ms: i64,
    max_keys: usize,
    /// Per key: when it was last reported, and the refusals since.
    keys: HashMap<TokenRefusalKey, (i64, u64)>,
    /// Every refusal counted, reported or not: unknown, expired, ended (a metric).
    totals: [u64; 3],
}

impl TokenRefusals {
    /// A report a minute at most for each key.
    pub const EVERY_MS: i64 = 60_000;
    /// Keys followed at once; past them, refusals count under one key without
    /// an address or name, so that many addresses cannot grow the map.
    pub const MAX_KEYS: usize = 4096;

    pub fn new(every_ms: i64, max_keys: usize) -> Self {
        Self { every_ms, max_keys, keys: HashMap::new(), totals: [0; 3] }
    }

    /// Refusals counted since the start: unknown, expired, ended.
    pub fn totals(&self) -> [u64; 3] {
        self.totals
    }

    /// Counts one refusal of `key` at `now`; the report to make now, if any.
    pub fn refused(&mut self, mut key: TokenRefusalKey, now: i64) -> Option<TokenReport> {
        self.totals[key.why.slot()] += 1;
        if !self.keys.contains_key(&key) && self.keys.len() >= self.max_keys {
            self.keys.retain(|_, (last, pending)| *pending > 0 || now.saturating_sub(*last) < self.every_ms);
            if self.keys.len() >= self.max_keys {
                key = TokenRefusalKey { why: key.why, name: None, from: None };
            }
        }
        let (last, pending) = self.keys.entry(key.clone()).or_insert((i64::MIN, 0));
        *pending += 1;
        if now.saturating_sub(*last) < self.every_ms {
            return None;
        }
        let count = std::mem::take(pending);
        *last = now;
        Some(TokenReport { key, count, at: now })
    }

    /// The refusals not yet reported whose key's minute has passed; keys
    /// quiet for a minute are forgotten.
    pub fn due(&mut self, now: i64) -> Vec<TokenReport> {
        let mut out = Vec::new();
        self.keys.retain(|key, (last, pending)| {
            let passed = now.saturating_sub(*last) >= self.every_ms;
            if passed && *pending > 0 {
                out.push(TokenReport { key: key.clone(), count: std::mem::take(pending), at: now });
                *last = now;
                return true;
            }
            !passed
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest::event::status;
    use proptest::prelude::*;

    fn parsed(line: &str) -> ingest::Event {
        Format::Cef.parse(line.as_bytes(), &ingest::parse::ParseContext::new(SOURCE, 0)).expect("our own CEF parses")
    }

    #[test]
    fn each_outcome_reads_as_a_logon_of_the_right_status() {
        let from = Some(IpAddr::from([10, 20, 1, 5]));
        for (outcome, failed) in [
            (Outcome::Success, false),
            (Outcome::WrongPassword, true),
            (Outcome::NoAccount, true),
            (Outcome::LockedNow, true),
            (Outcome::Locked, true),
            (Outcome::Disabled, true),
        ] {
            for via in [Via::Login, Via::Signature, Via::PasswordChange] {
                let e = parsed(&cef_line(via, outcome, "qa1", from, 1_795_000_000_000));
                assert_eq!(e.class_uid, 3002, "{outcome:?}: an OCSF Authentication event");
                let want = if failed { status::FAILURE } else { status::SUCCESS };
                assert_eq!(e.status_id, Some(want), "{outcome:?} {via:?}");
                assert_eq!(e.time, 1_795_000_000_000);
                assert_eq!(e.metadata.product.as_ref(), "Custos");
                assert_eq!(e.actor.as_ref().and_then(|a| a.user.as_deref()), Some("qa1"));
                assert_eq!(e.src.as_ref().and_then(|s| s.ip), from);
            }
        }
        let locked = parsed(&cef_line(Via::Login, Outcome::LockedNow, "qa1", None, 0));
        assert_eq!(&*locked.message, "Custos login failed: account locked after repeated wrong passwords");
        assert_eq!(locked.severity_id, ingest::event::severity::HIGH);
    }

    fn key(why: TokenRefusal, name: Option<&str>, last_octet: u8) -> TokenRefusalKey {
        TokenRefusalKey { why, name: name.map(str::to_owned), from: Some(IpAddr::from([10, 20, 1, last_octet])) }
    }

    #[test]
    fn refused_tokens_read_as_failed_logons_with_their_count() {
        let from = Some(IpAddr::from([10, 20, 1, 5]));
        let unknown = parsed(&token_cef_line(TokenRefusal::Unknown, None, from, 7, 1_795_000_000_000));
        assert_eq!((unknown.class_uid, unknown.status_id), (3002, Some(status::FAILURE)));
        assert_eq!(&*unknown.message, "Custos API login failed: unknown token");
        assert_eq!((unknown.time, unknown.actor.as_ref().and_then(|a| a.user.clone())), (1_795_000_000_000, None));
        assert_eq!(unknown.src.as_ref().and_then(|s| s.ip), from);
        let keys: Vec<&str> = unknown.unmapped.iter().map(|(k, _)| k).collect();
        assert_eq!(unknown.unmapped.get_str("cef.cnt"), Some("7"), "{keys:?}");
        let expired = parsed(&token_cef_line(TokenRefusal::Expired, Some("soar|x=y"), None, 1, 5));
        assert_eq!(&*expired.message, "Custos API login failed: expired API token");
        assert_eq!(expired.actor.as_ref().and_then(|a| a.user.as_deref()), Some("soar|x=y"));
        assert_eq!(expired.status_id, Some(status::FAILURE));
        let session = parsed(&token_cef_line(TokenRefusal::SessionExpired, Some("sam"), from, 3, 5));
        assert_eq!(&*session.message, "Custos API login failed: expired session");
        assert_eq!(session.actor.as_ref().and_then(|a| a.user.as_deref()), Some("sam"));
        let ended = TokenRefusal::Ended(crate::auth::Ended::Logout);
        let ended = parsed(&token_cef_line(ended, Some("sam"), from, 2, 5));
        assert_eq!(&*ended.message, "Custos API login failed: token ended (logout)");
        assert_eq!((ended.actor.as_ref().and_then(|a| a.user.as_deref()), ended.status_id), (Some("sam"), Some(2)));
    }

    #[test]
    fn a_key_is_reported_at_once_then_at_most_once_a_minute() {
        let mut r = TokenRefusals::new(60_000, 100);
        let a = key(TokenRefusal::Unknown, None, 1);
        let report = |count, at| Some(TokenReport { key: a.clone(), count, at });
        assert_eq!(r.refused(a.clone(), 1_000), report(1, 1_000), "the first at once");
        for t in [2_000, 30_000, 60_999] {
            assert_eq!(r.refused(a.clone(), t), None, "within the minute: counted");
        }
        // Another address, reason or account is its own key.
        assert!(r.refused(key(TokenRefusal::Unknown, None, 2), 3_000).is_some());
        assert!(r.refused(key(TokenRefusal::Expired, Some("soar"), 1), 3_000).is_some());
        assert!(r.refused(key(TokenRefusal::Expired, Some("siem"), 1), 3_000).is_some());
        assert_eq!(r.refused(a.clone(), 61_000), report(4, 61_000), "the three held back and this one");
        // The tail of a burst is reported by `due` once its minute has passed.
        assert_eq!(r.refused(a.clone(), 62_000), None);
        assert_eq!(r.due(120_999), vec![], "not yet; the other keys had nothing held back");
        assert_eq!(r.due(121_000), vec![TokenReport { key: a.clone(), count: 1, at: 121_000 }]);
        assert_eq!(r.refused(a.clone(), 125_000), None, "a report was made at 121 s");
        assert_eq!(r.due(181_000).len(), 1);
        // Quiet keys are forgotten; a new refusal is again reported at once.
        assert_eq!(r.due(400_000), vec![]);
        assert!(r.keys.is_empty());
        assert_eq!(r.refused(a.clone(), 400_001), report(1, 400_001));
        assert_eq!(r.totals(), [9, 2, 0], "every refusal counted, reported or held back");
    }

    #[test]
    fn past_the_limit_of_keys_refusals_count_together() {
        let mut r = TokenRefusals::new(60_000, 3);
        for i in 1..=3 {
            assert!(r.refused(key(TokenRefusal::Unknown, None, i), 0).is_some());
        }
        let many = TokenRefusalKey { why: TokenRefusal::Unknown, name: None, from: None };
        let first = r.refused(key(TokenRefusal::Unknown, None, 4), 10);
        assert_eq!(first, Some(TokenReport { key: many.clone(), count: 1, at: 10 }), "under no address");
        assert_eq!(r.refused(key(TokenRefusal::Expired, Some("soar"), 5), 20).map(|t| t.key.from), Some(None));
        assert_eq!(r.refused(key(TokenRefusal::Unknown, None, 6), 30), None, "held back with the 4th");
        assert_eq!(r.keys.len(), 5, "three addresses and one key per reason");
        // Once the first keys have been quiet a minute they make room.
        assert!(r.due(60_000).is_empty() && r.keys.len() == 2);
        let later = r.refused(key(TokenRefusal::Unknown, None, 7), 70_010);
        assert_eq!(later.map(|t| t.key.from), Some(Some(IpAddr::from([10, 20, 1, 7]))));
    }

    proptest! {
        /// Whatever name a client sends reads back as that name, and never
        /// as another field of the record.
        #[test]
        fn any_name_reads_back_as_itself(name in "\\PC{0,40}|[ =\\\\|a-z\\n\\r]{0,20}") {
            prop_assume!(name == name.trim());
            let e = parsed(&cef_line(Via::Login, Outcome::WrongPassword, &name, None, 5));
            let user = e.actor.as_ref().and_then(|a| a.user.as_deref()).unwrap_or_default();
            prop_assert_eq!(user, name.as_str());
            prop_assert!(e.src.is_none());
            prop_assert_eq!(e.status_id, Some(status::FAILURE));
        }
    }
}
