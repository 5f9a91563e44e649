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
//! locks, when a disabled account's password is tried, and when one address
//! tries many names.

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
