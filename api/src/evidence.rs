//! Evidence export: the records a quality team asks for (a time range, an
//! asset, an incident), each with its inclusion proof against the newest
//! signed checkpoint, in one bundle with an HTML report. Shared by
//! `custos evidence export` and `POST /api/v1/evidence/exports`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ingest::time::{format_rfc3339, parse_rfc3339};
use ledger::{Bundle, BundleRecord, NoteSigner, Snapshot, record, write_bundle};
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
}

/// A made bundle and what it holds.
pub struct Export {
    pub bytes: Vec<u8>,
    pub records: usize,
    pub tree_size: u64,
    pub sha256: String,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One line saying what a record is, for people.
fn summary(kind: &str, data: &Value) -> String {
    let s = |k: &str| data[k].as_str().unwrap_or_default().to_owned();
    match kind {
        "event" => format!("{} (class {}, source {})", s("message"), data["class_uid"], data["metadata"]["source"]),
        "alert" => format!("{}: {}", s("rule"), s("summary")),
        "incident" => format!("{} {} — {}", s("id"), s("state"), s("title")),
        "audit" => format!(
            "{} by {}{}",
            s("action"),
            data["actor"],
            data["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default()
        ),
        "deadletter" => format!("could not be read: {}", s("reason")),
        "retention" => format!(
            "keep {} records {} days: {} (by {})",
            s("record_kind"),
            data["keep_days"],
            s("reason"),
            s("set_by")
        ),
        "legal_hold" => format!("legal hold: {} (by {})", s("reason"), s("set_by")),
        "signature" => format!(
            "{} by {} ({}) at {}: {} — signs record {} (SHA-256 {})",
            s("meaning"),
            s("printed_name"),
            s("signer"),
            s("time"),
            s("reason"),
            data["record_index"],
            s("record_sha256")
        ),
        other => other.to_owned(),
    }
}

/// Chooses the records and builds the bundle from the ledger in `ledger_dir`,
/// its manifest signed with `signer`.
pub fn export(ledger_dir: &Path, sel: &Selection, by: &str, signer: &NoteSigner) -> Result<Export, String> {
    let from = parse_rfc3339(&sel.from).ok_or_else(|| format!("from {:?} is not RFC 3339", sel.from))?;
    let to = parse_rfc3339(&sel.to).ok_or_else(|| format!("to {:?} is not RFC 3339", sel.to))?;
    if from > to {
        return Err("from is after to".into());
    }
    let snap = Snapshot::open(ledger_dir).map_err(|e| e.to_string())?;
    let (note, cp) = snap.latest_checkpoint().ok_or("the ledger has no signed checkpoint yet")?;
    // Pass 1: every record under the checkpoint, to choose and to know what
    // was superseded later (an incident's later versions).
    let mut chosen = BTreeSet::new();
    let mut incident_versions: HashMap<String, Vec<u64>> = HashMap::new();
    let mut wanted_events = BTreeSet::new();
    let mut wanted_alerts = BTreeSet::new();
    let mut decoded: Vec<(u64, String, i64, Value, String)> = Vec::new();
    ledger::for_each_record(ledger_dir, |index, bytes| {
        if index >= cp.size {
            return;
        }
        let Ok(rec) = record::decode(bytes) else { return };
        let kind = format!("{:?}", rec.kind).to_ascii_lowercase();
        if kind == "incident"
            && let Some(id) = rec.data["id"].as_str()
        {
            incident_versions.entry(id.to_owned()).or_default().push(index);
            if sel.incident.as_deref() == Some(id) {
                chosen.insert(index);
                wanted_events.extend(rec.data["events"].as_array().into_iter().flatten().filter_map(Value::as_u64));
                wanted_alerts.extend(
                    rec.data["alerts"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)),
                );
            }
        }
        let in_time = (from..=to).contains(&rec.recorded_at);
        let text = String::from_utf8_lossy(bytes).into_owned();
        let about_asset = sel.asset.as_deref().is_none_or(|a| text.contains(&format!("\"{a}\"")));
        if sel.incident.is_none() && in_time && about_asset {
            chosen.insert(index);
        }
        decoded.push((index, kind, rec.recorded_at, rec.data, text));
    })
    .map_err(|e| e.to_string())?;
    if sel.incident.is_some() {
        for (index, kind, _, data, _) in &decoded {
            let alert = kind == "alert" && data["id"].as_str().is_some_and(|id| wanted_alerts.contains(id));
            if alert || wanted_events.contains(index) {
                chosen.insert(*index);
            }
        }
        if chosen.is_empty() {
            return Err(format!("no incident {:?} in the signed ledger", sel.incident.as_deref().unwrap_or_default()));
        }
    }
    let mut records = Vec::with_capacity(chosen.len());
    let mut rows = String::new();
    for (index, kind, recorded_at, data, text) in decoded.iter().filter(|d| chosen.contains(&d.0)) {
        let proof = snap.inclusion_proof(*index, cp.size).map_err(|e| e.to_string())?;
        records.push(BundleRecord {
            index: *index,
            record_text: text.clone(),
            inclusion_proof: proof.iter().map(hex::encode).collect(),
        });
        let superseded = kind == "incident"
            && data["id"]
                .as_str()
                .and_then(|id| incident_versions.get(id))
                .is_some_and(|v| v.iter().any(|i| i > index));
        let flag = if superseded { "<td class=flag>superseded by a later version</td>" } else { "<td></td>" };
        rows.push_str(&format!(
            "<tr><td>{index}</td><td>{kind}</td><td>{}</td><td>{}</td>{flag}</tr>\n",
            format_rfc3339(*recorded_at),
            html_escape(&summary(kind, data))
        ));
    }
    let made_at = format_rfc3339(ingest::source::now_millis());
    let selection = json!({
        "from": sel.from, "to": sel.to, "asset": sel.asset, "incident": sel.incident,
        "exported_by": by, "exported_at": made_at, "tree_size": cp.size, "origin": cp.origin,
    });
    let report_html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Custos evidence {from_s} – {to_s}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px;text-align:left}}.flag{{color:#a00}}</style></head><body>\
         <h1>Custos evidence bundle</h1>\
         <p>Ledger <b>{origin}</b>, signed tree size <b>{size}</b>. Exported by <b>{by}</b> at {made_at}.</p>\
         <p>Selection: ledgered from {from_s} to {to_s}{asset}{incident}. {n} records.</p>\
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
        n = records.len(),
    );
    let n = records.len();
    let bundle = Bundle { checkpoint: note, keys: snap.keys().to_owned(), records, selection, report_html };
    let bytes = write_bundle(&bundle, signer).map_err(|e| e.to_string())?;
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    Ok(Export { bytes, records: n, tree_size: cp.size, sha256 })
}
