//! Changes to people's accounts and tokens made with `custos user` (and its
//! access reviews), on their way into the ledger as `audit` records (21 CFR Part 11 §11.10(e),
//! EU GMP Annex 11 §12: who was given which role, whose access was ended).
//!
//! The command cannot append to the ledger while Custos runs (the service
//! holds it), so it appends each change, after making it, to
//! `<data-dir>/account-changes.jsonl` and syncs. The service ledgers what is
//! new there at start and every few seconds, then notes how far it has come
//! in `account-changes.ledgered`. A crash between the two ledgers the last
//! changes twice, never not at all. A line that is not a change (an edited
//! file) is ledgered too, as it stands, so nothing in the file goes unseen.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One change, as the command line made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// When (Unix ms).
    pub time: i64,
    /// The operating-system user who ran the command.
    pub by: String,
    /// One of [`ACTIONS`].
    pub action: String,
    /// The account changed; empty for a review of them all.
    pub name: String,
    /// What else the change says: the role and printed name given, the
    /// tokens ended.
    #[serde(default)]
    pub details: Value,
}

/// The change log beside the accounts.
pub struct AccountChanges {
    log: PathBuf,
    ledgered: PathBuf,
}

/// The service's side: where the log is ledgered up to, kept in memory
/// once read, and the last trouble reading it (told once, not every look).
pub struct Follower {
    log: AccountChanges,
    ledgered: Option<u64>,
    trouble: Option<String>,
}

impl Follower {
    pub fn new(log: AccountChanges) -> Self {
        Self { log, ledgered: None, trouble: None }
    }

    /// The changes logged since the last look, if any.
    pub fn new_changes(&mut self) -> Option<Pending> {
        let mark = self.ledgered.map_or_else(|| self.log.ledgered(), Ok);
        // A mark that says nothing: ledger the log again rather than none of what comes.
        let mark = match mark {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::warn!(error = %e, "ledgering the log of account changes again from its start");
                Ok(0)
            }
            other => other,
        };
        let pending = mark.and_then(|from| {
            self.ledgered = Some(from);
            self.log.pending(from)
        });
        match pending {
            Ok(p) => {
                self.trouble = None;
                p
            }
            Err(e) => {
                let e = e.to_string();
                if self.trouble.as_ref() != Some(&e) {
                    tracing::warn!(error = %e, "the log of account changes cannot be read; trying again every look");
                    self.trouble = Some(e);
                }
                None
            }
        }
    }

    /// Notes that what [`Self::new_changes`] gave, up to `end`, is in the ledger.
    pub fn ledgered(&mut self, end: u64) {
        self.ledgered = Some(end);
        if let Err(e) = self.log.mark_ledgered(end) {
            tracing::warn!(error = %e, "where the account changes are ledgered up to cannot be noted; a restart ledgers them again");
        }
    }
}

/// Changes not yet ledgered, and where the log ends after them.
pub struct Pending {
    pub audits: Vec<Vec<u8>>,
    pub end: u64,
}

/// What `custos user` does: changes, and access reviews (`list`).
pub const ACTIONS: [&str; 5] = ["account.add", "account.password", "account.token", "account.disable", "accounts.read"];

/// The bytes of an unreadable line the audit record shows.
const SHOWN: usize = 1024;

/// The log's bytes read at most at once: a flood of changes is ledgered in turns.
const READ_LIMIT: u64 = 1 << 20;

impl AccountChanges {
    pub fn in_dir(data_dir: &Path) -> Self {
        Self { log: data_dir.join("account-changes.jsonl"), ledgered: data_dir.join("account-changes.ledgered") }
    }

    /// Appends `change` to the log, durably (the command line's side).
    pub fn append(&self, change: &Change) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(change).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        f.write_all(&line)?;
        f.sync_data()
    }

    /// Where the ledgered part of the log ends (0 before the first).
    pub fn ledgered(&self) -> std::io::Result<u64> {
        match std::fs::read_to_string(&self.ledgered) {
            Ok(s) => s.trim().parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a byte offset: {s:?}", self.ledgered.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Notes that the log up to `end` is in the ledger.
    pub fn mark_ledgered(&self, end: u64) -> std::io::Result<()> {
        ingest::source::replace_file(&self.ledgered, end.to_string().as_bytes())
    }

    /// The whole lines after `from`, as the `audit` records to ledger. `None`
    /// when there are none (the usual answer: one `stat`).
    pub fn pending(&self, from: u64) -> std::io::Result<Option<Pending>> {
        let len = match std::fs::metadata(&self.log) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // A log shorter than what was ledgered was replaced: read it anew.
        let from = if len < from { 0 } else { from };
        if len == from {
            return Ok(None);
        }
        let mut f = std::fs::File::open(&self.log)?;
        f.seek(std::io::SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        f.take(READ_LIMIT).read_to_end(&mut bytes)?;
        // A line still being written (no newline yet) waits for the next look,
        // unless it fills a whole read: then no newline is coming in time and
        // it is ledgered as it stands, so the log never sticks behind it.
        let (lines, read) = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(last) => (&bytes[..last], last + 1),
            None if bytes.len() as u64 == READ_LIMIT => (&bytes[..], bytes.len()),
            None => return Ok(None),
        };
        let audits = lines
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(audit_of)
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::other)?;
        Ok(Some(Pending { audits, end: from + read as u64 }))
    }
}

/// The `audit` record of one line of the log.
fn audit_of(line: &[u8]) -> Result<Vec<u8>, ledger::LedgerError> {
    // Only the command's own actions: an edited line cannot pass for another kind of audit record.
    let change = serde_json::from_slice::<Change>(line).map_err(|e| e.to_string()).and_then(|c| {
        if ACTIONS.contains(&c.action.as_str()) {
            Ok(c)
        } else {
            Err(format!("{:?} is not an account change", c.action))
        }
    });
    let (actor, action, details) = match change {
        Ok(c) => {
            // What the change says, then who and when, which it cannot say otherwise.
            let mut details = match c.details {
                Value::Object(d) => d,
                Value::Null => serde_json::Map::new(),
                other => serde_json::Map::from_iter([("said".to_owned(), other)]),
            };
            if !c.name.is_empty() {
                details.insert("name".into(), c.name.into());
            }
            details.insert("changed_at".into(), ingest::time::format_rfc3339(c.time).into());
            details.insert("via".into(), "custos user".into());
            (c.by, c.action, Value::Object(details))
        }
        Err(e) => (
            "unknown".to_owned(),
            "account.unreadable_change".to_owned(),
            json!({"line": String::from_utf8_lossy(&line[..line.len().min(SHOWN)]), "bytes": line.len(), "why": e}),
        ),
    };
    crate::audit::encode(&crate::audit::Entry {
        actor: &actor,
        printed_name: None,
        role: None,
        action: &action,
        reason: "",
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: &str, name: &str) -> Change {
        Change {
            time: 1_764_000_000_000,
            by: "ops".into(),
            action: action.into(),
            name: name.into(),
            details: json!({"role": "auditor"}),
        }
    }

    fn audit(bytes: &[u8]) -> Value {
        ledger::record::decode(bytes).expect("record").data
    }

    #[test]
    fn changes_are_read_once_as_audit_records_with_who_and_what() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AccountChanges::in_dir(dir.path());
        assert!(log.pending(0).expect("no log").is_none());
        assert_eq!(log.ledgered().expect("none yet"), 0);
        log.append(&change("account.add", "sam")).expect("append");
        log.append(&change("account.disable", "sam")).expect("append");
        let p = log.pending(0).expect("read").expect("two");
        let got: Vec<Value> = p.audits.iter().map(|a| audit(a)).collect();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0]["actor"].as_str(), got[0]["action"].as_str()), (Some("ops"), Some("account.add")));
        assert_eq!(
            (got[0]["details"]["name"].as_str(), got[0]["details"]["role"].as_str()),
            (Some("sam"), Some("auditor"))
        );
        assert_eq!(got[1]["action"], "account.disable");
        log.mark_ledgered(p.end).expect("mark");
        assert_eq!(log.ledgered().expect("read"), p.end);
        assert!(log.pending(p.end).expect("read").is_none(), "nothing new");
        log.append(&change("account.token", "ana")).expect("append");
        let next = log.pending(p.end).expect("read").expect("one");
        assert_eq!(next.audits.len(), 1);
        assert_eq!(audit(&next.audits[0])["details"]["name"], "ana");
    }

    #[test]
    fn a_half_written_line_waits_and_a_foreign_one_is_kept_as_it_stands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AccountChanges::in_dir(dir.path());
        let forged = r#"{"time":1,"by":"x","action":"evidence.export","name":"y"}"#;
        let text = format!("not a change\n{forged}\n{{\"time\":1,");
        std::fs::write(dir.path().join("account-changes.jsonl"), text).expect("write");
        let p = log.pending(0).expect("read").expect("two whole lines");
        assert_eq!(p.end, ("not a change\n".len() + forged.len() + 1) as u64);
        let a = audit(&p.audits[0]);
        assert_eq!(
            (a["action"].as_str(), a["details"]["line"].as_str()),
            (Some("account.unreadable_change"), Some("not a change"))
        );
        // A line in the change's form but of another action passes for nothing else.
        let a = audit(&p.audits[1]);
        assert_eq!((a["action"].as_str(), a["actor"].as_str()), (Some("account.unreadable_change"), Some("unknown")));
        assert!(a["details"]["why"].as_str().is_some_and(|w| w.contains("not an account change")), "{a}");
        assert!(log.pending(p.end).expect("read").is_none(), "the half line waits for its end");
        // A line longer than a whole read, with no end in sight, does not hold the log up.
        let long = dir.path().join("long");
        std::fs::create_dir(&long).expect("dir");
        let mut text = vec![b'x'; READ_LIMIT as usize + 10];
        text.extend_from_slice(b"\n");
        std::fs::write(long.join("account-changes.jsonl"), &text).expect("write");
        let long_log = AccountChanges::in_dir(&long);
        let p = long_log.pending(0).expect("read").expect("the first megabyte");
        assert_eq!(p.end, READ_LIMIT);
        let a = audit(&p.audits[0]);
        assert_eq!(
            (a["details"]["bytes"].as_u64(), a["details"]["line"].as_str().map(str::len)),
            (Some(READ_LIMIT), Some(SHOWN))
        );
        assert_eq!(long_log.pending(p.end).expect("read").map(|p| p.end), Some(READ_LIMIT + 11));
        // A log shorter than what was ledgered was replaced: read from its start.
        std::fs::write(dir.path().join("account-changes.jsonl"), b"x\n").expect("write");
        assert_eq!(log.pending(p.end + 10).expect("read").map(|p| p.end), Some(2));
    }

    /// The follower reads on from where the ledgered mark says, also after
    /// a restart; a mark that says nothing means the whole log again.
    #[test]
    fn the_follower_takes_up_where_the_ledger_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AccountChanges::in_dir(dir.path());
        log.append(&change("account.add", "sam")).expect("append");
        let mut first = Follower::new(AccountChanges::in_dir(dir.path()));
        let p = first.new_changes().expect("one change");
        first.ledgered(p.end);
        assert!(first.new_changes().is_none());
        log.append(&change("account.disable", "sam")).expect("append");
        // A restarted service reads the mark and goes on after it.
        let mut again = Follower::new(AccountChanges::in_dir(dir.path()));
        let p = again.new_changes().expect("the new change only");
        assert_eq!(p.audits.len(), 1);
        assert_eq!(audit(&p.audits[0])["action"], "account.disable");
        // A mark that says nothing: everything again (at least once), not nothing ever.
        std::fs::write(dir.path().join("account-changes.ledgered"), "not a number").expect("write");
        let p = Follower::new(AccountChanges::in_dir(dir.path())).new_changes().expect("the whole log");
        assert_eq!(p.audits.len(), 2);
    }

    proptest::proptest! {
        /// Whatever the log holds, reading it gives one record per whole
        /// non-empty line and stops after the last newline.
        #[test]
        fn any_log_reads_to_its_last_newline(bytes in proptest::collection::vec(proptest::prop_oneof![proptest::prelude::any::<u8>(), proptest::strategy::Just(b'\n')], 0..300)) {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("account-changes.jsonl"), &bytes).expect("write");
            let got = AccountChanges::in_dir(dir.path()).pending(0).expect("read");
            match bytes.iter().rposition(|b| *b == b'\n') {
                None => proptest::prop_assert!(got.is_none()),
                Some(last) => {
                    let got = got.expect("whole lines");
                    proptest::prop_assert_eq!(got.end, last as u64 + 1);
                    let lines = bytes[..last].split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
                    proptest::prop_assert_eq!(got.audits.len(), lines);
                }
            }
        }
    }
}
