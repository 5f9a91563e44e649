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
//! approved copy; with `CUSTOS__` environment overrides it covers them too
//! (see [`crate::config::digest`]), and the change names the variables.
//!
//! `<data-dir>/in-force.json` keeps the hashes between starts to notice a
//! change, and the ledger index of every record that put something in force
//! (the history an evidence bundle and `GET /api/v1/in-force` take what was
//! in force from, and the newest of which bounds the alerts a restart may
//! raise as crash losses: see `state::lost_by_a_crash`). It is not evidence
//! (the ledger is): lost or unreadable, it is rebuilt from the ledger's
//! `audit` records.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ledger::{RecordKind, Snapshot, record};
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
    /// The environment variables that overrode it (names only: values may be secrets).
    pub config_environment: Vec<String>,
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
            let mut details = json!({
                "path": self.config.as_ref().map(|(path, _)| path.display().to_string()),
                "sha256": now.config,
                "was_sha256": was.config,
            });
            if !self.config_environment.is_empty() {
                details["environment"] = json!(self.config_environment);
            }
            changes.push(Change { action: "config.change", reason, details });
        }
        changes
    }
}

/// One thing in force, and the ledger record that put it there (which holds
/// its text, unless the text was over [`TEXT_LIMIT`] or is a configuration's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stated {
    pub path: Option<String>,
    /// `None`: the state of having none (no inventory file, no configuration file).
    pub sha256: Option<String>,
    pub record: u64,
}

impl Stated {
    fn from(record: u64, details: &Value) -> Self {
        let text = |k: &str| details[k].as_str().map(str::to_owned);
        Self { path: text("path"), sha256: text("sha256"), record }
    }

    fn to_json(&self) -> Value {
        json!({"path": self.path, "sha256": self.sha256, "record": self.record})
    }
}

/// What was in force after a run of in-force records, taken in oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub inventory: Option<Stated>,
    /// By path.
    pub rules: BTreeMap<String, Stated>,
    pub config: Option<Stated>,
}

/// The rule files' diff (see [`rules_diff`]) a `rules.change` record
/// carries as its details, and a `rules.reload` one as their `changes`.
fn rule_files_diff(audit: &Value) -> &Value {
    let d = &audit["details"];
    if audit["action"] == "rules.reload" { &d["changes"] } else { d }
}

/// Whether the `audit` record's data at hand (`{"action", "details", …}`)
/// put something in force: a refused reload, or one that changed nothing, did not.
fn puts_in_force(audit: &Value) -> bool {
    let d = &audit["details"];
    match audit["action"].as_str() {
        Some("inventory.change" | "rules.change" | "config.change") => true,
        Some("inventory.reload") => d["changed"] == true,
        Some("rules.reload") => d["changes"].is_object(),
        _ => false,
    }
}

impl State {
    /// Takes in the `audit` record at `index` (its data); says whether it
    /// put something in force.
    pub fn apply(&mut self, index: u64, audit: &Value) -> bool {
        if !puts_in_force(audit) {
            return false;
        }
        let d = &audit["details"];
        match audit["action"].as_str().unwrap_or_default() {
            "inventory.change" | "inventory.reload" => self.inventory = Some(Stated::from(index, d)),
            "config.change" => self.config = Some(Stated::from(index, d)),
            _ => self.apply_rules(index, rule_files_diff(audit)),
        }
        true
    }

    /// A rule files' diff (see [`rules_diff`]). One that adds every file in
    /// force (a first start's) is the whole set, replacing what was known.
    fn apply_rules(&mut self, index: u64, diff: &Value) {
        let list = |k: &str| diff[k].as_array().map(Vec::as_slice).unwrap_or_default();
        let (added, changed, removed) = (list("added"), list("changed"), list("removed"));
        if changed.is_empty() && removed.is_empty() && diff["files"].as_u64() == Some(added.len() as u64) {
            self.rules.clear();
        }
        for file in added.iter().chain(changed) {
            if let Some(path) = file["path"].as_str() {
                self.rules.insert(path.to_owned(), Stated::from(index, file));
            }
        }
        for file in removed {
            if let Some(path) = file["path"].as_str() {
                self.rules.remove(path);
            }
        }
    }

    /// The records holding what is in force, each once.
    pub fn records(&self) -> BTreeSet<u64> {
        self.inventory.iter().chain(self.rules.values()).chain(&self.config).map(|s| s.record).collect()
    }

    pub fn digests(&self) -> Digests {
        Digests {
            inventory: self.inventory.as_ref().and_then(|s| s.sha256.clone()),
            rules: self.rules.iter().filter_map(|(p, s)| Some((p.clone(), s.sha256.clone()?))).collect(),
            config: self.config.as_ref().and_then(|s| s.sha256.clone()),
        }
    }

    /// As an evidence bundle's `selection.json` states it.
    pub fn to_json(&self) -> Value {
        json!({
            "inventory": self.inventory.as_ref().map(Stated::to_json),
            "rules": self.rules.values().map(Stated::to_json).collect::<Vec<_>>(),
            "config": self.config.as_ref().map(Stated::to_json),
        })
    }
}

/// What `in-force.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kept {
    /// What the latest start or reload put in force.
    pub digests: Digests,
    /// The ledger index of every record that put something in force, oldest first.
    pub records: Vec<u64>,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("in-force.json")
}

/// What `in-force.json` keeps; `None` when there is none or it cannot be
/// read (logged: it is then rebuilt from the ledger).
fn kept(data_dir: &Path) -> Option<Kept> {
    let bytes = match std::fs::read(path(data_dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(error = %e, "in-force.json cannot be read; it is rebuilt from the ledger");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .inspect_err(|e| tracing::warn!(error = %e, "in-force.json is not as written; it is rebuilt from the ledger"))
        .ok()
}

/// The data of the `audit` record `bytes` when it put something in force.
/// Most audit records are searches and reads: they are told from these by
/// the text before any is parsed.
pub fn stating(bytes: &[u8]) -> Option<Value> {
    const MARKS: [&[u8]; 3] = [b"\"action\":\"inventory.", b"\"action\":\"rules.", b"\"action\":\"config.change\""];
    if record::peek(bytes).is_some_and(|(kind, _)| kind != RecordKind::Audit)
        || !MARKS.iter().any(|m| bytes.windows(m.len()).any(|w| w == *m))
    {
        return None;
    }
    let rec = record::decode(bytes).ok().filter(|r| r.kind == RecordKind::Audit)?;
    puts_in_force(&rec.data).then_some(rec.data)
}

/// Every in-force record of the ledger, read from its `audit` records: what
/// `in-force.json` keeps, for a data directory without it.
fn from_ledger(snap: &Snapshot) -> Result<Kept, ledger::LedgerError> {
    let (mut state, mut records) = (State::default(), Vec::new());
    for block in snap.blocks().filter(|b| b.holds(RecordKind::Audit)) {
        snap.scan(block.start, block.end.min(snap.size()), |index, bytes| {
            if let Some(audit) = stating(&bytes) {
                state.apply(index, &audit);
                records.push(index);
            }
        })?;
    }
    Ok(Kept { digests: state.digests(), records })
}

/// What the previous start and reloads put in force: `in-force.json`, or
/// when it is missing or unreadable, rebuilt from `snap`.
pub fn history(data_dir: &Path, snap: &Snapshot) -> Result<Kept, ledger::LedgerError> {
    match kept(data_dir) {
        Some(kept) => Ok(kept),
        None => from_ledger(snap),
    }
}

/// The in-force records among `history` below `size`, each with its index
/// and exact text, oldest first. An index that is not one (`in-force.json`
/// kept for another ledger) is skipped.
pub fn read(snap: &Snapshot, history: &[u64], size: u64) -> Result<Vec<(u64, Value, Vec<u8>)>, ledger::LedgerError> {
    let mut out = Vec::new();
    for &index in history.iter().filter(|&&i| i < size) {
        let bytes = snap.record(index)?;
        match stating(&bytes) {
            Some(audit) => out.push((index, audit, bytes)),
            None => tracing::warn!(index, "in-force.json names a record that put nothing in force; skipped"),
        }
    }
    Ok(out)
}

/// The changes an answer of [`at_time`] lists at most, newest first.
const CHANGES_LISTED: usize = 100;

/// When to say what was in force.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// At a ledger time (Unix ms).
    At(i64),
    /// When a ledger record was ledgered (what decided about it).
    Record(u64),
}

impl When {
    pub fn to_json(self) -> Value {
        match self {
            When::At(at) => json!({"at": ingest::time::format_rfc3339(at)}),
            When::Record(record) => json!({"record": record}),
        }
    }
}

/// What was in force `when`, as the API answers: the fold of the in-force
/// records among `history` by then, and those records, newest first; with
/// `texts`, the inventory's and each rule file's text as its record holds it.
pub fn at_time(snap: &Snapshot, history: &[u64], when: When, texts: bool) -> Result<Value, ledger::LedgerError> {
    let mut state = State::default();
    let mut changes = Vec::new();
    let mut audits = BTreeMap::new();
    for (index, audit, bytes) in read(snap, history, snap.size())? {
        let Some((_, recorded_at)) = record::peek(&bytes) else { continue };
        let by_then = match when {
            When::At(at) => recorded_at <= at,
            When::Record(record) => index < record,
        };
        if !by_then {
            continue;
        }
        state.apply(index, &audit);
        changes.push(json!({
            "record": index,
            "recorded_at": ingest::time::format_rfc3339(recorded_at),
            "action": audit["action"],
            "actor": audit["actor"],
            "reason": audit["reason"],
        }));
        audits.insert(index, audit);
    }
    let mut answer = state.to_json();
    if texts {
        // Null when the record kept the text by hash alone (over TEXT_LIMIT).
        let text = |what: &str, s: &Stated| {
            audits
                .get(&s.record)
                .and_then(|a| entry(a, what, s.path.as_deref()))
                .map_or(Value::Null, |e| e["text"].clone())
        };
        if let Some(inventory) = &state.inventory {
            answer["inventory"]["text"] = text("inventory", inventory);
        }
        for (i, rule) in state.rules.values().enumerate() {
            answer["rules"][i]["text"] = text("rule file", rule);
        }
    }
    for (k, v) in when.to_json().as_object().into_iter().flatten() {
        answer[k] = v.clone();
    }
    answer["changes_total"] = changes.len().into();
    changes.reverse();
    changes.truncate(CHANGES_LISTED);
    answer["changes"] = changes.into();
    Ok(answer)
}

/// The entry the in-force record `audit` (its data) gives for `what`
/// (`inventory`, `configuration`, or a rule file's `path`): its path,
/// SHA-256 and, unless omitted, text.
fn entry<'a>(audit: &'a Value, what: &str, path: Option<&str>) -> Option<&'a Value> {
    let d = &audit["details"];
    match (audit["action"].as_str()?, what) {
        ("inventory.change" | "inventory.reload", "inventory") | ("config.change", "configuration") => Some(d),
        ("rules.change" | "rules.reload", "rule file") => {
            let diff = rule_files_diff(audit);
            let files = diff["added"].as_array().into_iter().chain(diff["changed"].as_array()).flatten();
            files.into_iter().find(|f| f["path"].as_str() == path)
        }
        _ => None,
    }
}

/// What a verified evidence bundle's `selection.json` says was in force,
/// checked against the in-force records the bundle holds (`stating`, by
/// index: their data, see [`stating`]): each named record states that file
/// with that SHA-256, and the text it holds hashes to it. The lines
/// `custos verify` prints, or what does not hold.
pub fn bundle_in_force(selection: &str, stating: &BTreeMap<u64, Value>) -> Result<Vec<String>, String> {
    let selection: Value = serde_json::from_str(selection).map_err(|e| format!("selection.json: {e}"))?;
    let stated = &selection["in_force"];
    if stated.is_null() {
        return Ok(vec!["what was in force is not stated (a bundle made before Custos stated it)".into()]);
    }
    let check = |what: &str, s: &Value| -> Result<u64, String> {
        let i =
            s["record"].as_u64().ok_or_else(|| format!("selection.json: an in-force entry without its record: {s}"))?;
        let audit = stating.get(&i).ok_or_else(|| {
            format!("selection.json names record {i} as stating the {what}, but the bundle holds no such record")
        })?;
        let path = s["path"].as_str();
        let e = entry(audit, what, path).ok_or_else(|| format!("record {i} does not state the {what} {s}"))?;
        if e["sha256"] != s["sha256"] || e["path"].as_str() != path {
            return Err(format!("record {i} states the {what} as {e}, not as selection.json says ({s})"));
        }
        if let Some(text) = e["text"].as_str()
            && Some(sha256(text.as_bytes()).as_str()) != s["sha256"].as_str()
        {
            return Err(format!("the text of the {what} in record {i} does not hash to its SHA-256"));
        }
        Ok(i)
    };
    let sha = |s: &Value| s["sha256"].as_str().map_or("none".to_owned(), |h| format!("SHA-256 {h}"));
    let before = &stated["before_record"];
    let rules = stated["rules"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut lines = Vec::new();
    if let Some(inv) = stated.get("inventory").filter(|v| !v.is_null()) {
        let path = inv["path"].as_str().unwrap_or("no inventory file");
        lines.push(format!("  inventory      {path}, {} (record {})", sha(inv), check("inventory", inv)?));
    }
    if !rules.is_empty() {
        let from: BTreeSet<u64> = rules.iter().map(|r| check("rule file", r)).collect::<Result<_, _>>()?;
        let from: Vec<String> = from.iter().map(u64::to_string).collect();
        lines.push(format!("  rule files     {} (records {})", rules.len(), from.join(", ")));
    }
    if let Some(config) = stated.get("config").filter(|v| !v.is_null()) {
        lines.push(format!("  configuration  {} (record {})", sha(config), check("configuration", config)?));
    }
    let head = if lines.is_empty() {
        format!("no record before record {before} says what was in force")
    } else {
        format!("in force when record {before} was ledgered (each stating record is in the bundle and hashes match):")
    };
    lines.insert(0, head);
    Ok(lines)
}

/// Keeps what is in force for the next start, once its records are in the ledger.
pub fn keep(data_dir: &Path, kept: &Kept) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(kept).map_err(std::io::Error::other)?;
    ingest::source::replace_file(&path(data_dir), &bytes)
}

/// Keeps what a reload put in force (the record at `index`), once that
/// record is in the ledger. A failure is logged, not fatal: the file is
/// removed rather than left without the reload, so the next start or
/// export rebuilds it from the ledger.
pub fn keep_reloaded(data_dir: &Path, snap: &Snapshot, index: u64, change: impl FnOnce(&mut Digests)) {
    let kept = history(data_dir, snap).map(|mut kept| {
        change(&mut kept.digests);
        if kept.records.last().is_none_or(|&last| last < index) {
            kept.records.push(index);
        }
        kept
    });
    if let Err(e) = kept.map_err(std::io::Error::other).and_then(|kept| keep(data_dir, &kept)) {
        forget(data_dir, &e);
    }
}

/// Removes `in-force.json`, which could not be brought up to date (`why`),
/// so it is rebuilt from the ledger when next needed instead of read
/// without a record.
pub fn forget(data_dir: &Path, why: &dyn std::fmt::Display) {
    let removed = std::fs::remove_file(path(data_dir)).is_ok();
    tracing::warn!(error = %why, removed, "in-force.json not written; it is rebuilt from the ledger when next needed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_force(inventory: &str, rules: &[(&str, &str)], config: Option<&str>) -> InForce {
        InForce {
            inventory: Some(Text { path: "/etc/custos/inventory.toml".into(), text: inventory.into() }),
            rules: rules.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())).collect(),
            config: config.map(|c| (PathBuf::from("/etc/custos/custos.toml"), sha256(c.as_bytes()))),
            config_environment: Vec::new(),
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
        assert!(later.changes(Some(&recorded))[1].details.get("environment").is_none(), "no overrides");

        // The same file with an environment override is another configuration,
        // and the change names the variable (not its value: it may be a secret).
        let recorded = later.digests();
        let overrides = [("CUSTOS__BUS__KAFKA__PROPERTIES__SASL_PASSWORD".to_owned(), "s3cret".to_owned())];
        let overridden = InForce {
            config: Some(("/etc/custos/custos.toml".into(), crate::config::digest("k = 1", &overrides))),
            config_environment: vec![overrides[0].0.clone()],
            ..later.clone()
        };
        let changes = overridden.changes(Some(&recorded));
        assert_eq!(actions(&changes), ["config.change"]);
        assert_eq!(changes[0].details["environment"], json!(["CUSTOS__BUS__KAFKA__PROPERTIES__SASL_PASSWORD"]));
        assert_eq!(changes[0].details["was_sha256"], sha256(b"k = 1"));
        assert!(!changes[0].details.to_string().contains("s3cret"), "{}", changes[0].details);
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
    fn what_is_in_force_is_kept_between_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(kept(dir.path()), None);
        let digests = in_force("inv", &[("r/a.yml", "a")], Some("c")).digests();
        let k = Kept { digests: digests.clone(), records: vec![3, 4, 9] };
        keep(dir.path(), &k).expect("keep");
        assert_eq!(kept(dir.path()), Some(k));
        std::fs::write(dir.path().join("in-force.json"), b"{\"inventory\": 3}").expect("write");
        assert_eq!(kept(dir.path()), None, "unreadable: rebuilt from the ledger");
        // As the previous version wrote it (hashes alone): rebuilt, to learn the records.
        std::fs::write(dir.path().join("in-force.json"), serde_json::to_vec(&digests).expect("json")).expect("write");
        assert_eq!(kept(dir.path()), None);
    }

    /// What was in force, folded from the records a start and reloads wrote.
    #[test]
    fn records_fold_into_what_was_in_force() {
        let audit = |action: &str, details: Value| json!({"action": action, "details": details});
        let first = in_force("v1", &[("r/a.yml", "a"), ("r/b.yml", "b")], Some("c1"));
        let mut state = State::default();
        for (i, c) in first.changes(None).iter().enumerate() {
            assert!(state.apply(i as u64 + 1, &audit(c.action, c.details.clone())), "{}", c.action);
        }
        assert_eq!(state.digests(), first.digests());
        assert_eq!(state.records(), [1, 2, 3].into());

        // A rule reload that changes one file and removes another; a reload
        // that changes nothing and a refused one put nothing in force.
        let reloaded = rules_diff(&rule_digests(&first.rules), &[("r/a.yml".into(), "a2".into())]);
        assert!(state.apply(4, &audit("rules.reload", json!({"rules": 1, "changes": reloaded}))));
        assert!(!state.apply(5, &audit("rules.reload", json!({"rules": 1, "changes": null}))));
        assert!(!state.apply(6, &audit("inventory.reload", json!({"changed": false, "sha256": sha256(b"v1")}))));
        assert!(!state.apply(7, &audit("inventory.reload.refused", json!({"errors": ["bad"]}))));
        assert!(!state.apply(8, &audit("evidence.read", json!({"index": 1}))));
        assert_eq!(state.rules.keys().collect::<Vec<_>>(), ["r/a.yml"]);
        assert_eq!(state.records(), [1, 3, 4].into());

        // A start that knew nothing before (in-force.json lost under the
        // previous version) states the whole set: what it does not list is
        // no longer in force.
        let anew = in_force("v1", &[("r/c.yml", "c")], Some("c1"));
        let whole = anew.changes(None).into_iter().find(|c| c.action == "rules.change").expect("rules");
        assert!(state.apply(9, &audit(whole.action, whole.details)));
        assert_eq!(state.digests(), anew.digests());
        assert_eq!(state.records(), [1, 3, 9].into());
        assert_eq!(state.to_json()["rules"], json!([{"path": "r/c.yml", "sha256": sha256(b"c"), "record": 9}]));
    }

    /// `custos verify` states what a bundle says was in force, and fails one
    /// whose named record is missing, states otherwise, or holds a text that
    /// does not hash to the stated SHA-256.
    #[test]
    fn a_bundle_holds_the_records_it_names_as_in_force() {
        let audit = |action: &str, details: Value| json!({"action": action, "actor": "system", "details": details});
        let inv = audit(
            "inventory.change",
            inventory_change(Some(&Text { path: "inv.toml".into(), text: "v1".into() }), None),
        );
        let rules = audit(
            "rules.change",
            rules_diff(&BTreeMap::new(), &[("a.yml".into(), "a".into()), ("b.yml".into(), "b".into())]).expect("diff"),
        );
        let reload = audit(
            "rules.reload",
            json!({"rules": 2, "changes": rules_diff(&rule_digests(&[("b.yml".into(), "b".into())]), &[("b.yml".into(), "b2".into())])}),
        );
        let held: BTreeMap<u64, Value> = [(7, inv), (8, rules), (30, reload)].into();
        let stated = |inventory_sha: &str, b_record: u64| {
            json!({"in_force": {
                "before_record": 40,
                "inventory": {"path": "inv.toml", "sha256": inventory_sha, "record": 7},
                "rules": [{"path": "a.yml", "sha256": sha256(b"a"), "record": 8}, {"path": "b.yml", "sha256": sha256(b"b2"), "record": b_record}],
                "config": null,
            }})
            .to_string()
        };
        let lines = bundle_in_force(&stated(&sha256(b"v1"), 30), &held).expect("holds");
        assert_eq!(
            lines,
            [
                "in force when record 40 was ledgered (each stating record is in the bundle and hashes match):"
                    .to_owned(),
                format!("  inventory      inv.toml, SHA-256 {} (record 7)", sha256(b"v1")),
                "  rule files     2 (records 8, 30)".to_owned(),
            ]
        );
        let err =
            |selection: String, held: &BTreeMap<u64, Value>| bundle_in_force(&selection, held).expect_err("fails");
        let mut missing = held.clone();
        missing.remove(&30);
        assert!(err(stated(&sha256(b"v1"), 30), &missing).contains("names record 30"));
        assert!(err(stated(&sha256(b"v2"), 30), &held).contains("record 7 states the inventory as"), "another hash");
        assert!(
            err(stated(&sha256(b"v1"), 8), &held).contains("record 8 states the rule file as"),
            "b.yml's older text"
        );
        // A record whose text does not hash to what it states.
        let mut forged = held.clone();
        forged.get_mut(&7).expect("inventory")["details"]["text"] = "v1 with a ticket removed".into();
        assert!(err(stated(&sha256(b"v1"), 30), &forged).contains("does not hash to its SHA-256"));
        let nothing = json!({"in_force": {"before_record": 1, "inventory": null, "rules": [], "config": null}});
        assert_eq!(
            bundle_in_force(&nothing.to_string(), &held).expect("nothing stated"),
            ["no record before record 1 says what was in force"]
        );
        assert!(bundle_in_force("{}", &held).expect("older bundle")[0].contains("not stated"));
    }
}
