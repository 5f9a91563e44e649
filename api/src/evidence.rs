//! Evidence export: the records a quality team asks for (a time range, an
//! asset, an incident), each with its inclusion proof against the newest
//! signed checkpoint, in one bundle with an HTML report. Shared by
//! `custos evidence export` and `POST /api/v1/evidence/exports`.
//!
//! A bundle also carries what was in force when its first chosen record was
//! ledgered — the records holding the inventory, the rule files and the
//! configuration's hash (see [`crate::in_force`]) — and every change to them
//! up to its last: an alert, or its absence, is read against them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use ingest::time::{format_rfc3339, parse_rfc3339};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use ledger::{Block, BundleWriter, NoteSigner, RecordKind, Snapshot, record};
use serde::Deserialize;
use serde_json::{Value, json};

/// What to export. Times are RFC 3339; records are chosen by the time they
/// were ledgered.
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    #[serde(default)]
    pub asset: Option<String>,
    #[serde(default)]
    pub incident: Option<String>,
    /// Why the evidence is exported (an inspection, a batch release); kept in
    /// the bundle's selection and report and in the export's audit record.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Why an export failed: its selection, which the caller can change, or the
/// ledger, which is the server's problem (its message names files).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Selection(String),
    /// Nothing signed matches: an unknown incident, a misspelt asset, a
    /// range before the plant's first record. An empty bundle would read as
    /// evidence that nothing happened, so none is made.
    #[error("{0}")]
    NoRecords(String),
    /// The records asked for are not yet under a signed checkpoint (one is
    /// signed every second while records arrive): the caller retries.
    #[error("{0}")]
    NotSigned(String),
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    /// The bundle's file could not be written (a full disk, most likely).
    #[error("write the evidence bundle: {0}")]
    Write(ledger::LedgerError),
}

/// A made bundle, in the file it was written to (at its start), and what it holds.
pub struct Export {
    pub file: std::fs::File,
    /// The bundle's length in bytes.
    pub len: u64,
    pub records: usize,
    pub tree_size: u64,
    pub sha256: String,
}

impl Selection {
    /// What an export's `audit` record says of what was asked (its reason
    /// is the record's why).
    pub fn audit_details(&self) -> Value {
        json!({"from": self.from, "to": self.to, "asset": self.asset, "incident": self.incident})
    }
}

impl Export {
    /// What the export's `audit` record says of it and of `sel`.
    pub fn audit_details(&self, sel: &Selection) -> Value {
        let mut details = sel.audit_details();
        details["records"] = self.records.into();
        details["tree_size"] = self.tree_size.into();
        details["sha256"] = self.sha256.clone().into();
        details
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One line saying what a record is, for people.
fn summary(kind: RecordKind, data: &Value) -> String {
    let s = |k: &str| data[k].as_str().unwrap_or_default().to_owned();
    match kind {
        RecordKind::Event => {
            format!("{} (class {}, source {})", s("message"), data["class_uid"], data["metadata"]["source"])
        }
        RecordKind::Alert => format!("{}: {}", s("rule"), s("summary")),
        RecordKind::Incident => {
            let mut line = format!("{} {} — {}", s("id"), s("state"), s("title"));
            if let Some(who) = data["assignee"].as_str() {
                line.push_str(&format!(" (assigned to {who})"));
            }
            // The newest note, which the version was most likely made for.
            if let Some(note) = data["notes"].as_array().and_then(|n| n.last()) {
                let (n, by, text) = (data["notes"].as_array().map_or(0, Vec::len), &note["by"], &note["text"]);
                line.push_str(&format!(
                    "; {n} notes, the last by {}: {}",
                    by.as_str().unwrap_or_default(),
                    text.as_str().unwrap_or_default()
                ));
            }
            line
        }
        RecordKind::Audit => format!(
            "{} by {}{}",
            s("action"),
            data["actor"],
            data["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default()
        ),
        RecordKind::Deadletter => format!("could not be read: {}", s("reason")),
        RecordKind::Retention => format!(
            "keep {} records {} days: {} (by {})",
            s("record_kind"),
            data["keep_days"],
            s("reason"),
            s("set_by")
        ),
        RecordKind::LegalHold => format!("legal hold: {} (by {})", s("reason"), s("set_by")),
        RecordKind::Signature if data.get("review").is_some() => format!(
            "{} by {} ({}) at {}: {} — the audit trail from {} to {} ({} audit records, indices {} to {}; Merkle root {} at size {})",
            s("meaning"),
            s("printed_name"),
            s("signer"),
            s("time"),
            s("reason"),
            data["review"]["from"].as_str().unwrap_or_default(),
            data["review"]["to"].as_str().unwrap_or_default(),
            data["review"]["audit_records"],
            data["review"]["first_index"],
            data["review"]["last_index"],
            data["review"]["root_hash"].as_str().unwrap_or_default(),
            data["review"]["tree_size"],
        ),
        RecordKind::Signature => format!(
            "{} by {} ({}) at {}: {} — signs record {} (SHA-256 {})",
            s("meaning"),
            s("printed_name"),
            s("signer"),
            s("time"),
            s("reason"),
            data["record_index"],
            s("record_sha256")
        ),
        RecordKind::Key => kind.name().to_owned(),
    }
}

/// The most records one bundle holds: about 3.4 KB each of plant data, so
/// some 340 MB, and a report of as many rows for a browser. A larger
/// selection is refused with a message saying how to narrow it.
pub const MAX_BUNDLE_RECORDS: usize = 100_000;

/// Chosen records whose inclusion proofs are worked out together (proofs of
/// nearby records share most of their hashes) before they are written.
const PROOF_BATCH: usize = 1024;

/// A record chosen for the bundle, as its report lists it. Its text goes to
/// the bundle file as soon as its proof is known; only this stays in memory.
struct Listed {
    index: u64,
    kind: RecordKind,
    recorded_at: i64,
    summary: String,
    /// The incident's id, for an incident record.
    incident: Option<String>,
}

/// The records that put something in force, and which of them a bundle
/// takes: those in force when its first chosen record was ledgered, and
/// every later one up to its last chosen record.
struct InForceRecords {
    /// By index: the audit record's data and its exact bytes.
    all: BTreeMap<u64, (Value, Vec<u8>)>,
    /// Known once the first record is chosen: what was in force before it.
    at_start: Option<(u64, crate::in_force::State)>,
    /// Those still to go into the bundle, oldest first.
    due: BTreeSet<u64>,
}

impl InForceRecords {
    /// Called with each chosen record's index, in order: the in-force
    /// records to write before it.
    fn before(&mut self, chosen: u64) -> Vec<u64> {
        if self.at_start.is_none() {
            let mut state = crate::in_force::State::default();
            for (&i, (audit, _)) in self.all.range(..chosen) {
                state.apply(i, audit);
            }
            self.due = state.records();
            self.due.extend(self.all.range(chosen..).map(|(&i, _)| i));
            self.at_start = Some((chosen, state));
        }
        let rest = self.due.split_off(&chosen);
        let ready = std::mem::replace(&mut self.due, rest);
        self.due.remove(&chosen);
        ready.into_iter().collect()
    }

    /// How a record stands to what was in force, for the report.
    fn role(&self, index: u64) -> Option<&'static str> {
        let (first, _) = self.at_start.as_ref()?;
        match self.all.contains_key(&index) {
            true if index < *first => Some("in force when the selection began"),
            true => Some("changed what was in force"),
            false => None,
        }
    }
}

/// Writes the `pending` chosen records with their proofs against the tree of `size`.
fn write_chosen<W: Write + Seek>(
    snap: &Snapshot,
    size: u64,
    pending: &mut Vec<(u64, String)>,
    out: &mut BundleWriter<'_, W>,
) -> Result<(), ExportError> {
    let indices: Vec<u64> = pending.iter().map(|(i, _)| *i).collect();
    let proofs = snap.inclusion_proofs(&indices, size)?;
    for ((index, text), proof) in pending.drain(..).zip(proofs) {
        out.record(index, &text, &proof).map_err(ExportError::Write)?;
    }
    Ok(())
}

/// The chosen records as they are found: listed for the report, and
/// written with their proofs a batch at a time.
struct Chosen<'a, 's, W: Write + Seek> {
    snap: &'a Snapshot,
    size: u64,
    bundle: BundleWriter<'s, W>,
    listed: Vec<Listed>,
    pending: Vec<(u64, String)>,
    max_records: usize,
    too_many: bool,
    failed: Option<ExportError>,
}

impl<W: Write + Seek> Chosen<'_, '_, W> {
    fn stopped(&self) -> bool {
        self.too_many || self.failed.is_some()
    }

    fn take(&mut self, listed: Listed, text: String) {
        if self.stopped() {
            return;
        }
        if self.listed.len() == self.max_records {
            self.too_many = true;
            return;
        }
        self.pending.push((listed.index, text));
        self.listed.push(listed);
        if self.pending.len() == PROOF_BATCH {
            self.failed = write_chosen(self.snap, self.size, &mut self.pending, &mut self.bundle).err();
        }
    }

    /// Takes the in-force record at `index`.
    fn take_in_force(&mut self, in_force: &InForceRecords, index: u64) {
        let (audit, bytes) = &in_force.all[&index];
        let recorded_at = envelope(bytes).map_or(0, |(_, at)| at);
        let summary = summary(RecordKind::Audit, audit);
        let listed = Listed { index, kind: RecordKind::Audit, recorded_at, summary, incident: None };
        self.take(listed, String::from_utf8_lossy(bytes).into_owned());
    }
}

/// What an incident is made of: its versions, and the alerts and events they name.
struct IncidentMembers {
    versions: BTreeSet<u64>,
    events: BTreeSet<u64>,
    alerts: BTreeSet<String>,
}

impl IncidentMembers {
    /// Whether the record may belong, before its data is read.
    fn may_hold(&self, index: u64, kind: RecordKind) -> bool {
        kind == RecordKind::Alert || self.versions.contains(&index) || self.events.contains(&index)
    }
    fn holds(&self, index: u64, kind: RecordKind, data: &Value) -> bool {
        self.versions.contains(&index)
            || self.events.contains(&index)
            || (kind == RecordKind::Alert && data["id"].as_str().is_some_and(|id| self.alerts.contains(id)))
    }
    /// Whether `block` may hold one of the incident's records.
    fn may_be_in(&self, block: &Block) -> bool {
        block.holds(RecordKind::Incident)
            || block.holds(RecordKind::Alert)
            || self.events.range(block.start..block.end).next().is_some()
    }
}

/// The index ranges of the blocks `wanted` keeps, adjacent ones merged, below `size`.
fn runs<'a>(blocks: impl Iterator<Item = &'a Block>, size: u64, wanted: impl Fn(&Block) -> bool) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for b in blocks.filter(|b| b.start < size && wanted(b)) {
        let end = b.end.min(size);
        match out.last_mut() {
            Some(last) if last.end == b.start => last.end = end,
            _ => out.push(b.start..end),
        }
    }
    out
}

/// Calls `f` with every record of `runs`, in order.
fn scan_runs(snap: &Snapshot, runs: &[Range<u64>], mut f: impl FnMut(u64, Vec<u8>)) -> Result<(), ExportError> {
    for run in runs {
        snap.scan(run.start, run.end, &mut f)?;
    }
    Ok(())
}

/// A record's kind and time, read cheaply when the record is canonical.
fn envelope(bytes: &[u8]) -> Option<(RecordKind, i64)> {
    record::peek(bytes).or_else(|| record::decode(bytes).ok().map(|r| (r.kind, r.recorded_at)))
}

/// The `audit` records ledgered in a period: how many, and the first and last index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSpan {
    pub records: u64,
    pub first: u64,
    pub last: u64,
}

/// The `audit` records of `snap` ledgered from `from` until `to` (Unix ms,
/// `to` excluded); `None` when there are none. Only blocks holding an
/// audit record in that time are read.
pub fn audit_span(snap: &Snapshot, from: i64, to: i64) -> Result<Option<AuditSpan>, ExportError> {
    let blocks = runs(snap.blocks(), u64::MAX, |b| b.holds(RecordKind::Audit) && b.overlaps(from, to));
    let mut span: Option<AuditSpan> = None;
    scan_runs(snap, &blocks, |index, bytes| {
        if let Some((RecordKind::Audit, at)) = envelope(&bytes)
            && (from..to).contains(&at)
        {
            let s = span.get_or_insert(AuditSpan { records: 0, first: index, last: index });
            (s.records, s.last) = (s.records + 1, index);
        }
    })?;
    Ok(span)
}

/// What an audit-trail review signature says it signed: the tree of its
/// first `tree_size` records, whose root is `root_hash` (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    tree_size: u64,
    root_hash: String,
    /// How it reads in `custos verify`'s output.
    said: String,
}

impl Reviewed {
    /// The review a record of `kind` holding `data` signed, if it is one.
    pub fn of(kind: RecordKind, data: &Value) -> Option<Self> {
        let r = data.get("review").filter(|_| kind == RecordKind::Signature)?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Some(Self {
            tree_size: r["tree_size"].as_u64()?,
            root_hash: r["root_hash"].as_str()?.to_owned(),
            said: format!(
                "by {}: {} to {}, {} audit records",
                text(&data["printed_name"]),
                text(&r["from"]),
                text(&r["to"]),
                r["audit_records"]
            ),
        })
    }
}

/// Verifies an evidence bundle as `custos verify` does (see
/// [`ledger::verify_bundle_seeing`]), then what its `selection.json` says:
/// what was in force ([`crate::in_force::bundle_in_force`]) and that each
/// audit-trail review's tree is a prefix of the bundle's ([`bundle_reviews`]).
/// The report and the lines to print.
pub fn verify_bundle(
    bundle: impl std::io::Read,
    trusted: Option<&[ledger::VerifierKey]>,
) -> Result<(ledger::BundleReport, Vec<String>), String> {
    let (mut held, mut reviews) = (BTreeMap::new(), BTreeMap::new());
    let report = ledger::verify_bundle_seeing(bundle, trusted, &mut |index, text| {
        if let Some(audit) = crate::in_force::stating(text.as_bytes()) {
            held.insert(index, audit);
        }
        // Only signatures are decoded whole.
        if envelope(text.as_bytes()).is_some_and(|(kind, _)| kind == RecordKind::Signature)
            && let Ok(r) = record::decode(text.as_bytes())
            && let Some(review) = Reviewed::of(r.kind, &r.data)
        {
            reviews.insert(index, review);
        }
    })
    .map_err(|e| e.to_string())?;
    let mut lines = crate::in_force::bundle_in_force(&report.selection, &held)?;
    lines.extend(bundle_reviews(&report.selection, &reviews, report.tree_size, &report.root)?);
    Ok((report, lines))
}

/// Checks each audit-trail review the bundle holds (`seen`, by record)
/// against the consistency proof `selection` gives for it: the tree it
/// signed is the first records of the bundle's signed tree (`size`,
/// `root`), so nothing reviewed has changed since. Every review the bundle
/// holds must be proved, and every proof must be of a review it holds.
pub fn bundle_reviews(
    selection: &str,
    seen: &BTreeMap<u64, Reviewed>,
    size: u64,
    root: &ledger::merkle::Hash,
) -> Result<Vec<String>, String> {
    let selection: Value = serde_json::from_str(selection).map_err(|e| format!("selection.json: {e}"))?;
    let listed = selection.get("reviews").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut proved = BTreeSet::new();
    let mut lines = Vec::new();
    for entry in listed {
        let record = entry["record"].as_u64().ok_or("selection.json: a review without its record")?;
        let r = seen
            .get(&record)
            .ok_or(format!("selection.json proves review record {record}, which the bundle does not hold"))?;
        let stated = (entry["tree_size"].as_u64(), entry["root_hash"].as_str());
        if stated != (Some(r.tree_size), Some(r.root_hash.as_str())) {
            return Err(format!("selection.json states another tree than review record {record} signed"));
        }
        let hash = |h: &str| -> Option<ledger::merkle::Hash> { hex::decode(h).ok()?.try_into().ok() };
        let proof: Option<Vec<_>> =
            entry["consistency_proof"].as_array().and_then(|p| p.iter().map(|h| h.as_str().and_then(hash)).collect());
        let signed = hash(&r.root_hash);
        let holds = matches!((&proof, &signed), (Some(p), Some(old)) if ledger::merkle::verify_consistency(r.tree_size, size, p, old, root));
        if !holds {
            return Err(format!(
                "the audit-trail review in record {record} signed a tree of {} records that is not the start of this one",
                r.tree_size
            ));
        }
        proved.insert(record);
        lines.push(format!(
            "  record {record}, {}: the {} records it reviewed are the first of this tree (consistency proof checked)",
            r.said, r.tree_size
        ));
    }
    if let Some(record) = seen.keys().find(|r| !proved.contains(*r)) {
        return Err(format!("record {record} is an audit-trail review that selection.json does not prove"));
    }
    if !lines.is_empty() {
        lines.insert(0, "audit-trail reviews:".to_owned());
    }
    Ok(lines)
}

/// A first pass for an incident's selection, over the blocks that hold
/// incident records: its alerts and events come before the records naming them.
fn incident_members(snap: &Snapshot, size: u64, id: &str) -> Result<IncidentMembers, ExportError> {
    let mut m = IncidentMembers { versions: BTreeSet::new(), events: BTreeSet::new(), alerts: BTreeSet::new() };
    let incident_blocks = runs(snap.blocks(), size, |b| b.holds(RecordKind::Incident));
    scan_runs(snap, &incident_blocks, |index, bytes| {
        if envelope(&bytes).is_none_or(|(kind, _)| kind != RecordKind::Incident) {
            return;
        }
        let Ok(rec) = record::decode(&bytes) else { return };
        if rec.data["id"].as_str() == Some(id) {
            m.versions.insert(index);
            m.events.extend(rec.data["events"].as_array().into_iter().flatten().filter_map(Value::as_u64));
            m.alerts.extend(
                rec.data["alerts"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)),
            );
        }
    })?;
    if m.versions.is_empty() {
        return Err(ExportError::NoRecords(format!("no incident {id:?} in the signed ledger")));
    }
    Ok(m)
}

/// Whether a record after the signed size `size` was ledgered in `from..=to`:
/// "not signed yet" rather than "nothing there".
fn unsigned_in_range(snap: &Snapshot, size: u64, from: i64, to: i64) -> Result<bool, ExportError> {
    let tail = runs(snap.blocks(), u64::MAX, |b| b.end > size && b.overlaps(from, to));
    let tail: Vec<Range<u64>> = tail.into_iter().map(|r| r.start.max(size)..r.end).collect();
    let mut found = false;
    scan_runs(snap, &tail, |_, bytes| found |= envelope(&bytes).is_some_and(|(_, at)| (from..=to).contains(&at)))?;
    Ok(found)
}

/// Chooses the records of `snap` (a view of the running ledger, or of the
/// one `custos evidence export` opened) and writes the bundle to `file`, its
/// manifest signed with `signer`. Only the blocks of records that can hold
/// chosen ones are read (see [`Block`]), so a day's export does not read a
/// year's ledger; only what the report lists of each record is kept in
/// memory, so a bundle of hundreds of megabytes is not.
/// `in_force` is the ledger index of every record that put something in
/// force (see [`crate::in_force::history`]).
pub fn export(
    snap: &Snapshot,
    sel: &Selection,
    by: &str,
    signer: &NoteSigner,
    file: std::fs::File,
    in_force: &[u64],
) -> Result<Export, ExportError> {
    export_at_most(snap, sel, by, signer, file, in_force, MAX_BUNDLE_RECORDS)
}

fn export_at_most(
    snap: &Snapshot,
    sel: &Selection,
    by: &str,
    signer: &NoteSigner,
    file: std::fs::File,
    in_force: &[u64],
    max_records: usize,
) -> Result<Export, ExportError> {
    let bad = ExportError::Selection;
    let from = parse_rfc3339(&sel.from).ok_or_else(|| bad(format!("from {:?} is not RFC 3339", sel.from)))?;
    let to = parse_rfc3339(&sel.to).ok_or_else(|| bad(format!("to {:?} is not RFC 3339", sel.to)))?;
    if from > to {
        return Err(bad("from is after to".into()));
    }
    let (note, cp) = snap
        .latest_checkpoint()
        .ok_or_else(|| ExportError::NotSigned("the ledger has no signed checkpoint yet; retry shortly".into()))?;
    let incident = match sel.incident.as_deref() {
        Some(id) => Some(incident_members(snap, cp.size, id)?),
        None => None,
    };
    // The blocks that may hold a chosen record, and for a time range those
    // after its start holding incident records: a later version of a chosen
    // incident flags it as superseded.
    let first_in_range = snap.blocks().find(|b| b.overlaps(from, to)).map_or(u64::MAX, |b| b.start);
    let to_read = runs(snap.blocks(), cp.size, |b| match &incident {
        Some(members) => members.may_be_in(b),
        None => b.overlaps(from, to) || (b.holds(RecordKind::Incident) && b.start >= first_in_range),
    });
    let mut in_force = InForceRecords {
        all: crate::in_force::read(snap, in_force, cp.size)?.into_iter().map(|(i, a, b)| (i, (a, b))).collect(),
        at_start: None,
        due: BTreeSet::new(),
    };
    let bundle = BundleWriter::begin(BufWriter::with_capacity(1 << 20, file), &note, snap.keys(), signer)
        .map_err(ExportError::Write)?;
    let mut chosen = Chosen {
        snap,
        size: cp.size,
        bundle,
        listed: Vec::new(),
        pending: Vec::with_capacity(PROOF_BATCH),
        max_records,
        too_many: false,
        failed: None,
    };
    // One pass: the chosen records go to the bundle as they are found, each
    // after the in-force records due before it, and each incident's newest
    // version is noted.
    let mut newest_version: HashMap<String, u64> = HashMap::new();
    let mut last_chosen = None;
    // Audit-trail reviews chosen, each to be proved a prefix of the signed tree.
    let mut reviews: Vec<(u64, Reviewed)> = Vec::new();
    scan_runs(snap, &to_read, |index, bytes| {
        if chosen.stopped() {
            return;
        }
        // Most records are neither chosen nor an incident: their kind and time
        // are read from the text's end, and only the others are parsed.
        let Some((kind, recorded_at)) = envelope(&bytes) else { return };
        let maybe = match &incident {
            Some(members) => members.may_hold(index, kind),
            None => (from..=to).contains(&recorded_at),
        };
        if !maybe && kind != RecordKind::Incident {
            return;
        }
        let Ok(rec) = record::decode(&bytes) else { return };
        if kind == RecordKind::Incident
            && let Some(id) = rec.data["id"].as_str()
        {
            newest_version.insert(id.to_owned(), index);
        }
        let text = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let wanted = maybe
            && match &incident {
                Some(members) => members.holds(index, kind, &rec.data),
                None => sel.asset.as_deref().is_none_or(|a| text.contains(&format!("\"{a}\""))),
            };
        if !wanted {
            return;
        }
        for due in in_force.before(index) {
            chosen.take_in_force(&in_force, due);
        }
        let incident = rec.data["id"].as_str().filter(|_| kind == RecordKind::Incident).map(str::to_owned);
        if let Some(r) = Reviewed::of(kind, &rec.data) {
            reviews.push((index, r));
        }
        chosen.take(Listed { index, summary: summary(kind, &rec.data), incident, kind, recorded_at }, text);
        last_chosen = Some(index);
    })?;
    // Changes to what was in force after the last chosen record but one, up to the last.
    if let Some(last) = last_chosen {
        for due in in_force.before(last + 1) {
            chosen.take_in_force(&in_force, due);
        }
    }
    let Chosen { mut bundle, listed, mut pending, too_many, failed, .. } = chosen;
    if let Some(e) = failed {
        return Err(e);
    }
    if too_many {
        return Err(bad(format!(
            "the selection holds more than {max_records} records, too many for one bundle: narrow the time range or choose an asset"
        )));
    }
    if listed.is_empty() && sel.incident.is_none() && unsigned_in_range(snap, cp.size, from, to)? {
        return Err(ExportError::NotSigned(format!(
            "records ledgered from {} to {} are not yet under a signed checkpoint (size {}); retry shortly",
            sel.from, sel.to, cp.size
        )));
    }
    if listed.is_empty() {
        let about = match (&sel.incident, &sel.asset) {
            (Some(id), _) => format!(" belongs to incident {id:?}"),
            (None, Some(a)) => format!(" names asset {a:?} (spelt exactly as events carry it)"),
            (None, None) => String::new(),
        };
        return Err(ExportError::NoRecords(format!(
            "no record ledgered from {} to {} under the signed checkpoint (size {}){about}",
            sel.from, sel.to, cp.size
        )));
    }
    write_chosen(snap, cp.size, &mut pending, &mut bundle)?;
    let mut rows = String::new();
    for c in &listed {
        let superseded =
            c.incident.as_ref().and_then(|id| newest_version.get(id).copied()).is_some_and(|newest| newest > c.index);
        let flag = match (superseded, in_force.role(c.index)) {
            (true, _) => "<td class=flag>superseded by a later version</td>".to_owned(),
            (false, Some(role)) => format!("<td>{role}</td>"),
            (false, None) => "<td></td>".to_owned(),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{flag}</tr>\n",
            c.index,
            c.kind.name(),
            format_rfc3339(c.recorded_at),
            html_escape(&c.summary)
        ));
    }
    let made_at = format_rfc3339(ingest::source::now_millis());
    let (first, at_start) = in_force.at_start.take().unwrap_or_default();
    let mut stated = at_start.to_json();
    stated["before_record"] = first.into();
    let reviews = reviews
        .into_iter()
        .map(|(record, r)| {
            let proof = snap.consistency_proof(r.tree_size, cp.size)?;
            let proof: Vec<String> = proof.iter().map(hex::encode).collect();
            Ok(json!({"record": record, "tree_size": r.tree_size, "root_hash": r.root_hash, "consistency_proof": proof}))
        })
        .collect::<Result<Vec<Value>, ExportError>>()?;
    let selection = json!({
        "from": sel.from, "to": sel.to, "asset": sel.asset, "incident": sel.incident, "reason": sel.reason,
        "exported_by": by, "exported_at": made_at, "tree_size": cp.size, "origin": cp.origin,
        "in_force": stated, "reviews": reviews,
    });
    let in_force_html = in_force_table(first, &at_start);
    let report_html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Custos evidence {from_s} – {to_s}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px;text-align:left}}.flag{{color:#a00}}</style></head><body>\
         <h1>Custos evidence bundle</h1>\
         <p>Ledger <b>{origin}</b>, signed tree size <b>{size}</b>. Exported by <b>{by}</b> at {made_at}{reason}.</p>\
         <p>Selection: ledgered from {from_s} to {to_s}{asset}{incident}. {n} records.</p>\
         {in_force_html}\
         <h2>Records</h2><table><tr><th>index</th><th>kind</th><th>ledgered at</th><th>what</th><th></th></tr>\n{rows}</table>\
         <h2>Signatures</h2><p>E-signature records are listed above with kind <i>signature</i> when the selection holds any.</p>\
         <h2>How to verify</h2><p>Run <code>custos verify</code> on this bundle (no server needed); VERIFY.txt inside explains each step.</p>\
         </body></html>",
        from_s = html_escape(&sel.from),
        to_s = html_escape(&sel.to),
        origin = html_escape(&cp.origin),
        size = cp.size,
        by = html_escape(by),
        asset = sel.asset.as_deref().map(|a| format!(", about asset {}", html_escape(a))).unwrap_or_default(),
        incident = sel.incident.as_deref().map(|i| format!(", incident {}", html_escape(i))).unwrap_or_default(),
        reason = sel.reason.as_deref().map(|r| format!(" for: {}", html_escape(r))).unwrap_or_default(),
        n = listed.len(),
    );
    let out = bundle.finish(&selection, &report_html)?;
    let (file, len, sha256) = rewound_with_digest(out).map_err(|e| {
        ExportError::Ledger(ledger::LedgerError::Io {
            path: "evidence bundle".into(),
            what: "read back".into(),
            source: e,
        })
    })?;
    Ok(Export { file, len, records: listed.len(), tree_size: cp.size, sha256 })
}

/// The report's account of what was in force before record `first`.
fn in_force_table(first: u64, state: &crate::in_force::State) -> String {
    let row = |what: &str, s: &crate::in_force::Stated| {
        format!(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
            html_escape(what),
            html_escape(s.path.as_deref().unwrap_or("(none)")),
            s.sha256.as_deref().unwrap_or("(none)"),
            s.record
        )
    };
    let mut rows = String::new();
    if let Some(s) = &state.inventory {
        rows.push_str(&row("inventory", s));
    }
    for s in state.rules.values() {
        rows.push_str(&row("rule file", s));
    }
    if let Some(s) = &state.config {
        rows.push_str(&row("configuration (by hash: it may hold secrets)", s));
    }
    if rows.is_empty() {
        return format!(
            "<h2>What was in force</h2><p>No record before record {first} says which inventory, rules and configuration were in force.</p>"
        );
    }
    format!(
        "<h2>What was in force</h2><p>In force when record {first}, the first chosen, was ledgered. Each record named holds the \
         file's text (SHA-256 of its bytes) and is in this bundle. Later changes up to the last chosen record are in it too, marked \
         <i>changed what was in force</i>.</p><table><tr><th>what</th><th>file</th><th>SHA-256</th><th>record</th></tr>\n{rows}</table>"
    )
}

/// The written bundle's file at its start, its length and SHA-256 (read back:
/// its first entry, the manifest, was written last).
fn rewound_with_digest(out: BufWriter<std::fs::File>) -> std::io::Result<(std::fs::File, u64, String)> {
    use sha2::Digest;
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    let mut sha = sha2::Sha256::new();
    let (mut buf, mut len) = (vec![0u8; 1 << 20], 0u64);
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => {
                sha.update(&buf[..n]);
                len += n as u64;
            }
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok((file, len, hex::encode(sha.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{Ledger, LedgerOptions};

    /// After the ledger's key record (index 0): two events (about PLC-01 and
    /// PLC-02), an alert and two versions of the incident it opened, and an
    /// unrelated audit record, then a legal hold.
    async fn ledger() -> (tempfile::TempDir, Snapshot, NoteSigner) {
        let rec = |kind, at, data: Value| record::encode(kind, at, &data).expect("encode");
        let records = vec![
            rec(RecordKind::Event, 1_000, json!({"message": "write", "device": {"asset": "PLC-01"}})),
            rec(RecordKind::Event, 2_000, json!({"message": "write", "device": {"asset": "PLC-02"}})),
            rec(RecordKind::Alert, 3_000, json!({"id": "r:1", "rule": "r", "events": [1]})),
            rec(RecordKind::Incident, 3_000, json!({"id": "INC-1", "state": "new", "events": [1], "alerts": ["r:1"]})),
            rec(RecordKind::Audit, 4_000, json!({"action": "login", "actor": "sam"})),
            rec(
                RecordKind::Incident,
                5_000,
                json!({"id": "INC-1", "state": "closed", "events": [1], "alerts": ["r:1"]}),
            ),
            rec(RecordKind::LegalHold, 6_000, json!({"reason": "FDA inquiry", "set_by": "quinn"})),
        ];
        ledger_of(records).await
    }

    /// The audit records of a period, `to` excluded; a review's signature
    /// says what it reviewed in the report, an incident version who has it
    /// and its newest note.
    #[tokio::test]
    async fn the_audit_records_of_a_period_and_a_review_in_the_report() {
        let (_dir, snap, _) = ledger().await;
        let one = Some(AuditSpan { records: 1, first: 5, last: 5 });
        assert_eq!(audit_span(&snap, 0, 10_000).expect("scan"), one);
        assert_eq!(audit_span(&snap, 4_000, 4_001).expect("scan"), one);
        assert_eq!(audit_span(&snap, 0, 4_000).expect("scan"), None, "to is excluded");
        assert_eq!(audit_span(&snap, 4_001, 10_000).expect("scan"), None);
        let review = json!({"signer": "quinn", "printed_name": "Quinn Adams", "meaning": "reviewed", "time": "t",
            "reason": "monthly", "review": {"from": "a", "to": "b", "audit_records": 1, "first_index": 5,
            "last_index": 5, "tree_size": 6, "root_hash": "ab"}});
        let incident = json!({"id": "INC-1", "state": "investigating", "title": "t", "assignee": "sam",
            "notes": [{"by": "kim", "text": "first"}, {"by": "sam", "text": "reader faulty"}]});
        let line = summary(RecordKind::Incident, &incident);
        assert_eq!(line, "INC-1 investigating — t (assigned to sam); 2 notes, the last by sam: reader faulty");
        let said = summary(RecordKind::Signature, &review);
        assert!(
            said.contains("the audit trail from a to b (1 audit records, indices 5 to 5; Merkle root ab at size 6)"),
            "{said}"
        );
    }

    /// A review's tree is proved the start of the bundle's by the
    /// consistency proof `selection.json` gives; any other tree, proof or
    /// record, a review left unproved and a proof of a record the bundle
    /// does not hold are refused.
    #[test]
    fn a_review_is_proved_the_start_of_the_bundles_tree() {
        use ledger::merkle::{Hash, consistency_proof_over, leaf_hash, root};
        let leaves: Vec<Hash> = (0..20u8).map(|i| leaf_hash(&[i])).collect();
        let (old, new) = (root(&leaves[..7]), root(&leaves));
        let proof: Vec<String> =
            consistency_proof_over(&leaves, 7, 20).expect("proof").iter().map(hex::encode).collect();
        let review = |root: &Hash| {
            let data = json!({"printed_name": "Quinn Adams", "review": {"from": "a", "to": "b", "audit_records": 3,
                "tree_size": 7, "root_hash": hex::encode(root)}});
            Reviewed::of(RecordKind::Signature, &data).expect("a review")
        };
        assert_eq!(Reviewed::of(RecordKind::Audit, &json!({"review": {"tree_size": 7, "root_hash": "ab"}})), None);
        let seen = BTreeMap::from([(15, review(&old))]);
        let entry = json!({"record": 15, "tree_size": 7, "root_hash": hex::encode(old), "consistency_proof": proof});
        let check = |entries: Value, seen: &BTreeMap<u64, Reviewed>| {
            bundle_reviews(&json!({"reviews": entries}).to_string(), seen, 20, &new)
        };
        let lines = check(json!([entry.clone()]), &seen).expect("proved");
        assert_eq!(
            lines[1],
            "  record 15, by Quinn Adams: a to b, 3 audit records: the 7 records it reviewed are the first of this tree (consistency proof checked)"
        );
        let mut tampered = proof.clone();
        tampered[0] = hex::encode([0u8; 32]);
        let other = leaf_hash(b"other");
        let forged = json!({"record": 15, "tree_size": 7, "root_hash": hex::encode(other), "consistency_proof": proof});
        let cases: [(Value, BTreeMap<u64, Reviewed>, &str); 6] = [
            (
                json!([{"record": 15, "tree_size": 7, "root_hash": hex::encode(old), "consistency_proof": tampered}]),
                seen.clone(),
                "not the start of this one",
            ),
            (json!([forged]), BTreeMap::from([(15, review(&other))]), "not the start of this one"),
            (
                json!([{"record": 15, "tree_size": 8, "root_hash": hex::encode(old), "consistency_proof": []}]),
                seen.clone(),
                "another tree",
            ),
            (json!([]), seen.clone(), "does not prove"),
            (json!([entry.clone()]), BTreeMap::new(), "does not hold"),
            (
                json!([{"record": 15, "tree_size": 7, "root_hash": hex::encode(old), "consistency_proof": ["zz"]}]),
                seen.clone(),
                "not the start of this one",
            ),
        ];
        for (entries, seen, want) in cases {
            let refused = check(entries.clone(), &seen).expect_err("refused");
            assert!(refused.contains(want), "{entries}: {refused}");
        }
        // A bundle from before reviews were proved, holding none.
        assert_eq!(bundle_reviews("{}", &BTreeMap::new(), 20, &new), Ok(Vec::new()));
    }

    /// A ledger of its key record (index 0) and `records`, closed under a
    /// signed checkpoint; the signer of its checkpoints.
    async fn ledger_of(records: Vec<Vec<u8>>) -> (tempfile::TempDir, Snapshot, NoteSigner) {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = "custos.test/evidence";
        let key = NoteSigner::generate(origin).expect("key").encode();
        let signer = || NoteSigner::parse(&key).expect("key");
        let (l, _) = Ledger::open(dir.path(), origin, signer(), LedgerOptions::default()).expect("ledger");
        l.append(records).await.expect("append");
        l.close().await.expect("close signs a checkpoint");
        let snap = l.snapshot().expect("snapshot");
        (dir, snap, signer())
    }

    fn selection(asset: Option<&str>, incident: Option<&str>) -> Selection {
        Selection {
            from: "1970-01-01T00:00:00Z".into(),
            to: "1970-01-01T00:00:10Z".into(),
            asset: asset.map(Into::into),
            incident: incident.map(Into::into),
            reason: Some("inspection 2026-12".into()),
        }
    }

    fn spool() -> std::fs::File {
        tempfile::tempfile().expect("spool file")
    }

    /// The bundle's bytes, checked against the length and digest reported.
    fn bytes(e: &Export) -> Vec<u8> {
        let mut bytes = Vec::new();
        (&e.file).read_to_end(&mut bytes).expect("read the bundle");
        (&e.file).seek(SeekFrom::Start(0)).expect("rewind");
        assert_eq!(bytes.len() as u64, e.len);
        assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)), e.sha256);
        bytes
    }

    fn indices(e: &Export) -> Vec<u64> {
        let bytes = bytes(e);
        let report = ledger::verify_bundle(&bytes, None).expect("the bundle verifies");
        assert_eq!(report.records, e.records);
        let text = String::from_utf8_lossy(&bytes);
        let start = text.find("<tr><td>").map_or(0, |i| i + 8);
        text[start..].split("<tr><td>").filter_map(|row| row.split('<').next()?.parse().ok()).collect()
    }

    #[tokio::test]
    async fn an_incident_brings_its_alerts_events_and_versions() {
        let (_dir, snap, signer) = ledger().await;
        let e = export(&snap, &selection(None, Some("INC-1")), "quinn", &signer, spool(), &[]).expect("export");
        assert_eq!(indices(&e), [1, 3, 4, 6]);
        let text = String::from_utf8_lossy(&bytes(&e)).into_owned();
        assert_eq!(text.matches("superseded by a later version").count(), 1, "version 1 of INC-1");
        assert!(text.contains("for: inspection 2026-12"), "the reason is in the report");
        let err =
            export(&snap, &selection(None, Some("INC-9")), "quinn", &signer, spool(), &[]).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("no incident \"INC-9\" in the signed ledger"));
    }

    #[tokio::test]
    async fn a_time_range_and_an_asset_choose_records() {
        let (_dir, snap, signer) = ledger().await;
        let all = export(&snap, &selection(None, None), "quinn", &signer, spool(), &[]).expect("export");
        assert_eq!(indices(&all), [1, 2, 3, 4, 5, 6, 7]);
        let report = ledger::verify_bundle(&bytes(&all), None).expect("verifies");
        assert_eq!(report.kinds.get("legal_hold"), Some(&1), "{:?}", report.kinds);
        assert!(String::from_utf8_lossy(&bytes(&all)).contains(
            "<td>legal_hold</td><td>1970-01-01T00:00:06.000Z</td><td>legal hold: FDA inquiry (by quinn)</td>"
        ));
        let plc = export(&snap, &selection(Some("PLC-01"), None), "quinn", &signer, spool(), &[]).expect("export");
        assert_eq!(indices(&plc), [1]);
        let mut early = selection(None, None);
        early.to = "1970-01-01T00:00:02Z".into();
        assert_eq!(indices(&export(&snap, &early, "quinn", &signer, spool(), &[]).expect("export")), [1, 2]);
    }

    /// Over blocks of records, the export reads only those that can hold
    /// chosen ones, and chooses exactly what a full pass would: a record
    /// whose clock stepped back is found in a later block, and a chosen
    /// incident version is flagged though its successor lies past the range.
    #[tokio::test]
    async fn blocks_out_of_range_are_skipped_without_losing_a_record() {
        let rec = |kind, at, data: Value| record::encode(kind, at, &data).expect("encode");
        let mut times = Vec::new();
        let records: Vec<Vec<u8>> = (0..5_000i64)
            .map(|i| {
                let at = match i {
                    4_500 => 100_500, // the clock stepped back: in the range, three blocks on
                    _ => i * 1_000,
                };
                times.push(at);
                match i {
                    149 => rec(RecordKind::Alert, at, json!({"id": "r:7", "events": [148]})),
                    150 | 4_800 => {
                        rec(RecordKind::Incident, at, json!({"id": "INC-7", "events": [149], "alerts": ["r:7"]}))
                    }
                    _ => rec(RecordKind::Event, at, json!({"n": i})),
                }
            })
            .collect();
        let (_dir, snap, signer) = ledger_of(records).await;
        assert_eq!(snap.blocks().count(), 5, "5,001 records in blocks of 1,024");
        let range = Selection {
            from: format_rfc3339(100_000),
            to: format_rfc3339(200_000),
            asset: None,
            incident: None,
            reason: None,
        };
        let e = export(&snap, &range, "quinn", &signer, spool(), &[]).expect("export");
        let expected: Vec<u64> =
            (0..5_000).filter(|i| (100_000..=200_000).contains(&times[*i])).map(|i| i as u64 + 1).collect();
        assert_eq!(indices(&e), expected);
        assert!(expected.contains(&4_501));
        let text = String::from_utf8_lossy(&bytes(&e)).into_owned();
        assert!(text.contains("<tr><td>151</td><td>incident</td><td>1970-01-01T00:02:30.000Z</td><td>INC-7  — </td><td class=flag>superseded by a later version</td>"));
        assert_eq!(text.matches("superseded by a later version").count(), 1, "only version 1 of INC-7");
        // Everything: chosen records go out in several batches of proofs.
        let all = Selection { from: format_rfc3339(0), to: format_rfc3339(10_000_000), ..range.clone() };
        let e = export(&snap, &all, "quinn", &signer, spool(), &[]).expect("export");
        assert!(e.records > 4 * PROOF_BATCH);
        assert_eq!(indices(&e), (1..=5_000).collect::<Vec<u64>>());
        let incident = Selection { incident: Some("INC-7".into()), ..range };
        let e = export(&snap, &incident, "quinn", &signer, spool(), &[]).expect("export");
        assert_eq!(indices(&e), [149, 150, 151, 4_801], "its event, alert and both versions");
    }

    /// A bundle that cannot be written (here a file opened only for reading,
    /// in use a full disk) is a write error, not a ledger that cannot be read.
    #[tokio::test]
    async fn a_bundle_that_cannot_be_written_says_so() {
        let (dir, snap, signer) = ledger().await;
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").expect("file");
        let read_only = std::fs::File::open(&path).expect("open");
        let err = export(&snap, &selection(None, None), "quinn", &signer, read_only, &[]).err().expect("refused");
        assert!(matches!(err, ExportError::Write(_)), "{err:?}");
        assert!(err.to_string().starts_with("write the evidence bundle"), "{err}");
    }

    #[tokio::test]
    async fn a_selection_too_large_for_one_bundle_is_refused() {
        let (_dir, snap, signer) = ledger().await;
        assert!(
            export_at_most(&snap, &selection(None, None), "quinn", &signer, spool(), &[], 7).is_ok(),
            "seven of at most seven"
        );
        let err = export_at_most(&snap, &selection(None, None), "quinn", &signer, spool(), &[], 6)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("the selection holds more than 6 records, too many for one bundle"), "{err}");
    }

    /// A bundle carries the records holding what was in force when its first
    /// chosen record was ledgered, and the changes up to its last, whether
    /// or not its selection chose them; `in-force.json`'s history is
    /// rebuilt from the ledger alike.
    #[tokio::test]
    async fn a_bundle_carries_what_was_in_force() {
        use crate::in_force::{Text, inventory_change, rule_digests, rules_diff};
        let rec = |kind, at, data: Value| record::encode(kind, at, &data).expect("encode");
        let audit = |at, action: &str, details: Value| {
            rec(RecordKind::Audit, at, json!({"action": action, "actor": "system", "details": details}))
        };
        let inv = |text: &str| Text { path: "inventory.toml".into(), text: text.into() };
        let files = |a: &str| vec![("r/a.yml".to_owned(), a.to_owned()), ("r/b.yml".to_owned(), "b".to_owned())];
        let event = |at, asset: &str| rec(RecordKind::Event, at, json!({"device": {"asset": asset}}));
        let records = vec![
            audit(100, "inventory.change", inventory_change(Some(&inv("v1")), None)), // 1
            audit(100, "rules.change", rules_diff(&Default::default(), &files("a")).expect("diff")), // 2
            audit(100, "config.change", json!({"path": "custos.toml", "sha256": "c0ffee", "was_sha256": null})), // 3
            event(1_000, "PLC-01"),                                                   // 4
            audit(
                1_500,
                "rules.reload",
                json!({"rules": 2, "changes": rules_diff(&rule_digests(&files("a")), &files("a2"))}),
            ), // 5
            event(2_000, "PLC-02"),                                                   // 6
            audit(2_500, "inventory.reload", json!({"changed": false, "sha256": crate::in_force::sha256(b"v1")})), // 7
            audit(3_000, "inventory.reload", {
                let mut d = inventory_change(Some(&inv("v2")), Some(&crate::in_force::sha256(b"v1")));
                d["changed"] = true.into();
                d
            }), // 8
            event(4_000, "PLC-01"),                                                   // 9
            audit(4_500, "inventory.reload.refused", json!({"errors": ["zone x: unknown"]})), // 10
        ];
        let (dir, snap, signer) = ledger_of(records).await;
        let history = crate::in_force::history(dir.path(), &snap).expect("history from the ledger");
        assert_eq!(history.records, [1, 2, 3, 5, 8], "no unchanged or refused reload");
        assert_eq!(history.digests.inventory, Some(crate::in_force::sha256(b"v2")));
        assert_eq!(history.digests.rules, rule_digests(&files("a2")));
        assert_eq!(history.digests.config.as_deref(), Some("c0ffee"));

        let sel = |from: i64, asset: Option<&str>| Selection {
            from: format_rfc3339(from),
            to: format_rfc3339(5_000),
            asset: asset.map(Into::into),
            incident: None,
            reason: None,
        };
        let selection_json = |e: &Export| -> Value {
            let mut archive = tar::Archive::new(std::io::Cursor::new(bytes(e)));
            let mut entry = archive
                .entries()
                .expect("tar")
                .map(|e| e.expect("entry"))
                .find(|e| e.path().is_ok_and(|p| p.as_os_str() == "selection.json"))
                .expect("selection.json");
            serde_json::from_reader(&mut entry).expect("json")
        };
        // An asset's events: what was in force before the first, and the two
        // changes before the last, which the asset chose none of.
        let e = export(&snap, &sel(900, Some("PLC-01")), "quinn", &signer, spool(), &history.records).expect("export");
        assert_eq!(indices(&e), [1, 2, 3, 4, 5, 8, 9]);
        let report = String::from_utf8_lossy(&bytes(&e)).into_owned();
        assert_eq!(report.matches("<td>in force when the selection began</td>").count(), 3);
        assert_eq!(report.matches("<td>changed what was in force</td>").count(), 2);
        let stated = selection_json(&e)["in_force"].clone();
        assert_eq!(stated["before_record"], 4);
        assert_eq!(
            stated["inventory"],
            json!({"path": "inventory.toml", "sha256": crate::in_force::sha256(b"v1"), "record": 1})
        );
        assert_eq!(
            stated["rules"][0],
            json!({"path": "r/a.yml", "sha256": crate::in_force::sha256(b"a"), "record": 2})
        );
        assert_eq!(stated["config"]["record"], 3);

        // From the inventory reload on: the rule file reloaded earlier is in
        // force from its reload's record; the reload itself is chosen by time.
        let e = export(&snap, &sel(2_600, None), "quinn", &signer, spool(), &history.records).expect("export");
        assert_eq!(indices(&e), [1, 2, 3, 5, 8, 9, 10]);
        let stated = selection_json(&e)["in_force"].clone();
        assert_eq!(
            (&stated["before_record"], &stated["rules"][0]["record"], &stated["rules"][1]["record"]),
            (&json!(8), &json!(5), &json!(2))
        );
        assert_eq!(stated["inventory"]["record"], 1, "record 8 is chosen, not before the first");

        // A history naming a record that put nothing in force (kept for
        // another ledger) skips it; none at all says so in the report.
        let e = export(&snap, &sel(900, Some("PLC-01")), "quinn", &signer, spool(), &[4, 8]).expect("export");
        assert_eq!(indices(&e), [4, 8, 9]);
        let e = export(&snap, &sel(900, Some("PLC-01")), "quinn", &signer, spool(), &[]).expect("export");
        assert_eq!(indices(&e), [4, 9]);
        assert!(String::from_utf8_lossy(&bytes(&e)).contains("No record before record 4 says which inventory"));
    }
}
