//! What was in force when Custos decided: the plant inventory, the Sigma
//! rule files and the configuration file. Each start states their SHA-256 in
//! its `service.start` record, and a start that finds one changed since the
//! previous start (or a rule reload that changes the rules) ledgers the
//! change with the new text, so the ledger alone tells an inspector which
//! inventory and rules stood behind an alert, or behind its absence
//! (EU GMP Annex 11 §10 change management, 21 CFR Part 11 §11.10(e)).
//!
//! The configuration file is recorded by hash only: it may hold secrets (a
//! Kafka password, a webhook's token). Its hash matches `sha256sum` of the
//! approved copy.
//!
//! `<data-dir>/in-force.json` keeps the hashes between starts to notice a
//! change; it is not evidence (the ledger is). Lost, the next start records
//! everything again as if first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A text larger than this is recorded by hash alone, well inside the
/// ledger's record limit.
pub const TEXT_LIMIT: usize = 4 * 1024 * 1024;

/// A file whose text decides what Custos concludes, as read.
#[derive(Debug, Clone)]
pub struct Text {
    pub path: String,
    pub text: String,
}

/// What a start runs with.
#[derive(Debug, Clone, Default)]
pub struct InForce {
    /// `None`: no inventory file, so nothing is enriched.
    pub inventory: Option<Text>,
    /// Each rule file's path and text (the built-in pack's are `builtin/…`).
    pub rules: Vec<(String, String)>,
    /// The configuration file's path and SHA-256 (not its text).
    pub config: Option<(PathBuf, String)>,
}

/// The SHA-256 of each, as a `service.start` record states them and
/// `in-force.json` keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digests {
    pub inventory: Option<String>,
    pub rules: BTreeMap<String, String>,
    pub config: Option<String>,
}

/// One audit record to write: its action, reason and details.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub action: &'static str,
    pub reason: &'static str,
    pub details: Value,
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn text_or_omitted(text: &str) -> Value {
    if text.len() <= TEXT_LIMIT { Value::from(text) } else { Value::Null }
}

/// The SHA-256 of each rule file, by path.
pub fn rule_digests(rules: &[(String, String)]) -> BTreeMap<String, String> {
    rules.iter().map(|(path, text)| (path.clone(), sha256(text.as_bytes()))).collect()
}

/// How `now`'s rule files differ from `was`: added and changed files with
/// their text, removed ones by hash. `None` when they are the same.
pub fn rules_diff(was: &BTreeMap<String, String>, now: &[(String, String)]) -> Option<Value> {
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for (path, text) in now {
        let digest = sha256(text.as_bytes());
        match was.get(path) {
            None => added.push(json!({"path": path, "sha256": digest, "text": text_or_omitted(text)})),
            Some(old) if *old != digest => {
                changed.push(json!({"path": path, "sha256": digest, "was_sha256": old, "text": text_or_omitted(text)}))
            }
            Some(_) => {}
        }
    }
    let kept: std::collections::HashSet<&str> = now.iter().map(|(p, _)| p.as_str()).collect();
    let removed: Vec<Value> = was
        .iter()
        .filter(|(path, _)| !kept.contains(path.as_str()))
        .map(|(path, old)| json!({"path": path, "was_sha256": old}))
        .collect();
    (!added.is_empty() || !changed.is_empty() || !removed.is_empty())
        .then(|| json!({"files": now.len(), "added": added, "changed": changed, "removed": removed}))
}

/// An inventory's change: its path, hash, the hash it replaces and its text.
pub fn inventory_change(now: Option<&Text>, was: Option<&String>) -> Value {
    json!({
        "path": now.map(|t| &t.path),
        "sha256": now.map(|t| sha256(t.text.as_bytes())),
        "was_sha256": was,
        "text": now.map(|t| text_or_omitted(&t.text)),
    })
}

impl InForce {
    pub fn digests(&self) -> Digests {
        Digests {
            inventory: self.inventory.as_ref().map(|t| sha256(t.text.as_bytes())),
            rules: rule_digests(&self.rules),
            config: self.config.as_ref().map(|(_, digest)| digest.clone()),
        }
    }

    /// The records for what differs from `was`, the hashes the previous
    /// start recorded (`None`: none known, so everything is new).
    pub fn changes(&self, was: Option<&Digests>) -> Vec<Change> {
        const REASON: &str = "found at start: differs from what was in force at the previous start";
        const FIRST: &str = "found at start: no earlier record of what was in force";
        let (first, empty) = (was.is_none(), Digests::default());
        let (reason, was) = if first { (FIRST, &empty) } else { (REASON, was.unwrap_or(&empty)) };
        let now = self.digests();
        let mut changes = Vec::new();
        // A first start states the inventory even when there is none.
        if first || now.inventory != was.inventory {
            let details = inventory_change(self.inventory.as_ref(), was.inventory.as_ref());
            changes.push(Change { action: "inventory.change", reason, details });
        }
        if let Some(diff) = rules_diff(&was.rules, &self.rules) {
            changes.push(Change { action: "rules.change", reason, details: diff });
        }
        if now.config != was.config {
            changes.push(Change {
                action: "config.change",
                reason,
                details: json!({
                    "path": self.config.as_ref().map(|(path, _)| path.display().to_string()),
                    "sha256": now.config,
                    "was_sha256": was.config,
                }),
            });
        }
        changes
    }
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("in-force.json")
}

/// The hashes the previous start (or rule reload) kept; `None` when there
/// are none or they cannot be read (logged: everything is then recorded anew).
pub fn last_recorded(data_dir: &Path) -> Option<Digests> {
    let bytes = match std::fs::read(path(data_dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(error = %e, "in-force.json cannot be read; what is in force is recorded anew");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .inspect_err(
            |e| tracing::warn!(error = %e, "in-force.json is not as written; what is in force is recorded anew"),
        )
        .ok()
}

/// Keeps `digests` for the next start, once their records are in the ledger.
pub fn keep(data_dir: &Path, digests: &Digests) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(digests).map_err(std::io::Error::other)?;
    ingest::source::replace_file(&path(data_dir), &bytes)
}

/// Keeps the hashes as a reload changed them, once its record is in the
/// ledger. A failure is logged, not fatal: the next start then records
/// again what it finds.
pub fn keep_reloaded(data_dir: &Path, change: impl FnOnce(&mut Digests)) {
    let mut digests = last_recorded(data_dir).unwrap_or_default();
    change(&mut digests);
    if let Err(e) = keep(data_dir, &digests) {
        tracing::warn!(error = %e, "in-force.json not written; the next start records what is in force anew");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_force(inventory: &str, rules: &[(&str, &str)], config: Option<&str>) -> InForce {
        InForce {
            inventory: Some(Text { path: "/etc/custos/inventory.toml".into(), text: inventory.into() }),
            rules: rules.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())).collect(),
            config: config.map(|c| (PathBuf::from("/etc/custos/custos.toml"), sha256(c.as_bytes()))),
        }
    }

    fn actions(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.action).collect()
    }

    #[test]
    fn a_first_start_records_everything_then_only_what_changed() {
        let first = in_force("[[zones]]", &[("r/a.yml", "a"), ("r/b.yml", "b")], Some("data_dir = '/x'"));
        let changes = first.changes(None);
        assert_eq!(actions(&changes), ["inventory.change", "rules.change", "config.change"]);
        assert_eq!(changes[0].details["text"], "[[zones]]");
        assert_eq!(changes[0].details["was_sha256"], Value::Null);
        assert_eq!(changes[1].details["added"].as_array().map(Vec::len), Some(2));
        assert!(changes.iter().all(|c| c.reason.contains("no earlier record")));
        assert_eq!(changes[2].details["sha256"], sha256(b"data_dir = '/x'"), "as sha256sum of the file");
        assert!(changes[2].details.get("text").is_none(), "a configuration may hold secrets");

        let recorded = first.digests();
        assert_eq!(first.changes(Some(&recorded)), [], "nothing changed, nothing recorded");

        // One rule file edited, one removed, one added; the inventory edited.
        let second = in_force("[[zones]] # cell-9", &[("r/a.yml", "a2"), ("r/c.yml", "c")], Some("data_dir = '/x'"));
        let changes = second.changes(Some(&recorded));
        assert_eq!(actions(&changes), ["inventory.change", "rules.change"]);
        assert_eq!(changes[0].details["was_sha256"], sha256(b"[[zones]]"));
        assert_eq!(changes[0].details["text"], "[[zones]] # cell-9");
        let rules = &changes[1].details;
        assert_eq!(rules["changed"][0]["path"], "r/a.yml");
        assert_eq!(
            (&rules["changed"][0]["text"], &rules["changed"][0]["was_sha256"]),
            (&json!("a2"), &json!(sha256(b"a")))
        );
        assert_eq!((&rules["added"][0]["path"], &rules["added"][0]["text"]), (&json!("r/c.yml"), &json!("c")));
        assert_eq!(rules["removed"], json!([{"path": "r/b.yml", "was_sha256": sha256(b"b")}]));
        assert_eq!(rules["files"], 2);
        assert!(changes.iter().all(|c| c.reason.contains("previous start")));
    }

    #[test]
    fn no_inventory_and_no_config_file_are_states_too() {
        let bare = InForce { rules: vec![("builtin/x.yml".into(), "x".into())], ..Default::default() };
        let changes = bare.changes(None);
        assert_eq!(actions(&changes), ["inventory.change", "rules.change"]);
        assert_eq!((&changes[0].details["sha256"], &changes[0].details["text"]), (&Value::Null, &Value::Null));
        let recorded = bare.digests();
        assert_eq!(bare.changes(Some(&recorded)), []);
        // An inventory appears: recorded; a configuration file is used: recorded.
        let later = in_force("[[zones]]", &[("builtin/x.yml", "x")], Some("k = 1"));
        assert_eq!(actions(&later.changes(Some(&recorded))), ["inventory.change", "config.change"]);
    }

    #[test]
    fn a_text_past_the_limit_is_recorded_by_hash() {
        let big = "#".repeat(TEXT_LIMIT + 1);
        let changes = in_force(&big, &[("r/big.yml", &big)], None).changes(None);
        assert_eq!(
            (&changes[0].details["text"], &changes[0].details["sha256"]),
            (&Value::Null, &json!(sha256(big.as_bytes())))
        );
        assert_eq!(changes[1].details["added"][0]["text"], Value::Null);
    }

    #[test]
    fn the_hashes_are_kept_between_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(last_recorded(dir.path()), None);
        let digests = in_force("inv", &[("r/a.yml", "a")], Some("c")).digests();
        keep(dir.path(), &digests).expect("keep");
        assert_eq!(last_recorded(dir.path()), Some(digests));
        std::fs::write(dir.path().join("in-force.json"), b"{\"inventory\": 3}").expect("write");
        assert_eq!(last_recorded(dir.path()), None, "unreadable: everything is recorded anew");
    }
}
