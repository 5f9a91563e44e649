//! PLC backup comparison reports, as the backup watcher (or a change-detection
//! tool's job result) writes them:
//! `{"asset": "PLC-01", "backup": "2026-11-26T10-00-00", "time": RFC 3339,
//!   "compared_with": "released", "result": "different", "changed_files": [...], "user": "..."}`.

use crate::event::Text;
use serde::Deserialize;

use super::{ParseContext, ParseError};
use crate::event::{ConfigChange, Event, EventClass, activity, severity};
use crate::time::parse_rfc3339;

const P: &str = "plc-backup";

/// The report a PLC backup comparison produces.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupReport {
    pub asset: String,
    pub backup: String,
    pub time: String,
    pub compared_with: String,
    /// `equal`, `different` or `error`.
    pub result: String,
    #[serde(default)]
    pub changed_files: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub previous_backup: Option<String>,
    #[serde(default)]
    pub previous_result: Option<String>,
    #[serde(default)]
    pub changed_since_previous: Vec<String>,
}

/// Parses one report into a Device Config State Change event.
pub fn parse(bytes: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    let r: BackupReport = serde_json::from_slice(bytes).map_err(|e| ParseError::new(P, format!("bad report: {e}")))?;
    let time = parse_rfc3339(&r.time).ok_or_else(|| ParseError::new(P, format!("bad time {:?}", r.time)))?;
    let sev = match r.result.as_str() {
        "equal" => severity::INFORMATIONAL,
        "different" => severity::MEDIUM,
        "error" => severity::LOW,
        other => return Err(ParseError::new(P, format!("unknown result {other:?}"))),
    };
    let mut e = Event::new(EventClass::DeviceConfigStateChange, activity::CONFIG_LOG, time, ctx.received_at, bytes);
    e.severity_id = sev;
    e.message = match r.result.as_str() {
        "different" => crate::event::format_text!(
            "{} program differs from the {} version ({} files changed)",
            r.asset,
            r.compared_with,
            r.changed_files.len()
        ),
        "equal" => crate::event::format_text!("{} program equals the {} version", r.asset, r.compared_with),
        _ => crate::event::format_text!("{} backup comparison failed", r.asset),
    };
    e.device_mut().asset = Some(Text::from(r.asset));
    if let Some(user) = r.user {
        e.actor_mut().user = Some(Text::from(user));
    }
    if let Some(reason) = r.reason {
        e.unmapped.insert("plc.reason", reason);
    }
    e.metadata.product = r.tool.map_or("custos-plc-watcher".into(), Into::into);
    e.metadata.parser = P.into();
    e.change = Some(Box::new(ConfigChange {
        backup: r.backup,
        compared_with: r.compared_with,
        result: r.result,
        changed_files: r.changed_files,
        previous_backup: r.previous_backup,
        previous_result: r.previous_result,
        changed_since_previous: r.changed_since_previous,
    }));
    Ok(e)
}

/// A change-detection tool's job result in the style of octoplant (versiondog):
/// one JSON object per compared component. Accepted names (first found wins):
/// asset `component` / `componentName` / `asset`; time `timestamp` / `time`;
/// result vs the released version `releasedResult` / `compareResult` / `result` /
/// `status` (`equal`, `different`, `error`, `not compared`); result vs the previous
/// backup `previousResult`; `changedBlocks` / `changes`; `user`; `comment` / `reason`;
/// `job` / `jobName`; `version`.
pub fn parse_job(bytes: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    const J: &str = "octoplant-job";
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ParseError::new(J, format!("not JSON: {e}")))?;
    let first =
        |keys: &[&str]| keys.iter().find_map(|k| v.get(*k).and_then(serde_json::Value::as_str)).map(str::to_owned);
    let asset =
        first(&["component", "componentName", "asset"]).ok_or_else(|| ParseError::new(J, "missing component"))?;
    let ts = first(&["timestamp", "time"]).ok_or_else(|| ParseError::new(J, "missing timestamp"))?;
    let time = parse_rfc3339(&ts).ok_or_else(|| ParseError::new(J, format!("bad timestamp {ts:?}")))?;
    let result = first(&["releasedResult", "compareResult", "result", "status"])
        .ok_or_else(|| ParseError::new(J, "missing result"))?
        .to_ascii_lowercase();
    let sev = match result.as_str() {
        "equal" | "not compared" | "notcompared" => severity::INFORMATIONAL,
        "different" => severity::MEDIUM,
        "error" | "failed" => severity::LOW,
        other => return Err(ParseError::new(J, format!("unknown result {other:?}"))),
    };
    let changed: Vec<String> = ["changedBlocks", "changes"]
        .iter()
        .find_map(|k| v.get(*k).and_then(serde_json::Value::as_array))
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut e = Event::new(EventClass::DeviceConfigStateChange, activity::CONFIG_LOG, time, ctx.received_at, bytes);
    e.severity_id = sev;
    e.message = crate::event::format_text!("{asset}: {result} vs released ({} blocks changed)", changed.len());
    e.device_mut().asset = Some(Text::from(asset));
    e.actor = first(&["user"]).map(|u| crate::event::Actor { user: Some(Text::from(u)), ..Default::default() });
    if let Some(c) = first(&["comment", "reason"]) {
        e.unmapped.insert("plc.reason", c);
    }
    if let Some(j) = first(&["job", "jobName"]) {
        e.unmapped.insert("plc.job", j);
    }
    e.metadata.product = "octoplant".into();
    e.metadata.vendor = Some("AUVESY-MDT".into());
    e.metadata.parser = J.into();
    e.change = Some(Box::new(ConfigChange {
        backup: first(&["version", "backup"]).unwrap_or_else(|| ts.clone()),
        compared_with: "released".into(),
        result: if result == "notcompared" { "not compared".into() } else { result },
        changed_files: changed,
        previous_backup: None,
        previous_result: first(&["previousResult"]).map(|r| r.to_ascii_lowercase()),
        changed_since_previous: Vec::new(),
    }));
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: ParseContext<'static> = ParseContext::new("plc", 1_795_000_000_000);

    #[test]
    fn different_backup() {
        let e = parse(br#"{"asset":"PLC-01","backup":"b1","time":"2026-11-26T10:00:00Z","compared_with":"released","result":"different","changed_files":["OB1.awl"],"user":"alice"}"#, &CTX).expect("parses");
        assert_eq!((e.class_uid, e.type_uid), (5019, 501_901));
        assert_eq!(e.device.and_then(|d| d.asset).as_deref(), Some("PLC-01"));
        assert_eq!(e.change.map(|c| c.changed_files), Some(vec!["OB1.awl".to_owned()]));
        assert_eq!(e.severity_id, severity::MEDIUM);
    }

    #[test]
    fn octoplant_job_result() {
        let e = parse_job(br#"{"job":"Nightly","component":"PLC-01","timestamp":"2026-11-26T02:00:00Z","compareResult":"Different","previousResult":"equal","changedBlocks":["OB1","DB10"],"user":"svc-octoplant","comment":"nightly"}"#, &CTX).expect("parses");
        let c = e.change.expect("change");
        assert_eq!(
            (c.result.as_str(), c.changed_files.len(), c.previous_result.as_deref()),
            ("different", 2, Some("equal"))
        );
        assert_eq!(e.device.and_then(|d| d.asset).as_deref(), Some("PLC-01"));
        assert!(parse_job(br#"{"component":"x","timestamp":"2026-11-26T02:00:00Z","result":"maybe"}"#, &CTX).is_err());
    }

    #[test]
    fn rejects_unknown_fields_and_results() {
        assert!(parse(br#"{"asset":"a","backup":"b","time":"2026-11-26T10:00:00Z","compared_with":"released","result":"maybe"}"#, &CTX).is_err());
        let e = parse(br#"{"asset":"a","extra":1}"#, &CTX).expect_err("unknown field");
        assert!(e.reason.contains("bad report"), "{e}");
    }
}
