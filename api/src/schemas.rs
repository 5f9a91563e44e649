//! The shapes of answers the handlers build as JSON, stated for the OpenAPI
//! document only. They are never built: schemathesis checks in CI that
//! every answer of a running demo conforms to them (`scripts/api-contract.sh`).
#![allow(dead_code)]

use utoipa::ToSchema;

/// An incident: alerts about one entity grouped in time, with their events.
#[derive(ToSchema)]
pub struct Incident {
    /// `INC-000001`, …
    id: String,
    /// The rule of its first alert, and every rule of its alerts.
    rule: String,
    rules: Vec<String>,
    title: String,
    /// OCSF severity 0..6, the highest of its alerts, and its name.
    severity_id: u8,
    #[schema(pattern = "^(unknown|informational|low|medium|high|critical|fatal)$")]
    severity: String,
    #[schema(pattern = "^(new|acknowledged|investigating|closed|false_positive)$")]
    state: String,
    /// MITRE ATT&CK (for ICS) techniques.
    attack: Vec<String>,
    entity: Entity,
    zone: Option<String>,
    /// Event times of its first and latest alert (RFC 3339).
    opened_at: String,
    last_alert_at: String,
    /// Its alerts' ids, and the ledger indices of their events.
    alerts: Vec<String>,
    events: Vec<u64>,
    /// State changes, oldest first.
    history: Vec<Transition>,
    /// The incident this one continues, once that held 1,000 alerts.
    continues: Option<String>,
    assignee: Option<String>,
    /// Oldest first; absent when none.
    notes: Option<Vec<Note>>,
}

/// What an incident or alert is about.
#[derive(ToSchema)]
pub struct Entity {
    #[schema(pattern = "^(person|asset|zone)$")]
    kind: String,
    id: String,
}

/// A state change, who made it and why (`at`: Unix ms).
#[derive(ToSchema)]
pub struct Transition {
    from: String,
    to: String,
    by: String,
    reason: String,
    at: i64,
}

/// What a person wrote on an incident (`at`: Unix ms).
#[derive(ToSchema)]
pub struct Note {
    by: String,
    at: i64,
    text: String,
}

/// Incidents, newest first.
#[derive(ToSchema)]
pub struct Incidents {
    incidents: Vec<Incident>,
}

/// An incident with the first page of its timeline.
#[derive(ToSchema)]
pub struct IncidentDetail {
    #[schema(inline)]
    #[serde(flatten)]
    incident: Incident,
    /// Contributing events and alerts in event-time order, each with its
    /// `ledger_index` (events in the event contract, alerts as ledgered).
    timeline: Vec<serde_json::Value>,
    /// The cursor of the next page (`GET /incidents/{id}/timeline?after=`).
    timeline_next: Option<String>,
    timeline_total: u64,
}

/// An incident after a change, and the `audit` record of the change.
#[derive(ToSchema)]
pub struct IncidentChanged {
    incident: Incident,
    audit_index: u64,
}

/// An alert as ledgered, with its ledger index (`time`: the event time of
/// the event that completed the rule's pattern, Unix ms).
#[derive(ToSchema)]
pub struct Alert {
    id: String,
    rule: String,
    title: String,
    severity_id: u8,
    attack: Vec<String>,
    time: i64,
    entity: Entity,
    zone: Option<String>,
    /// Ledger indices of its contributing events.
    events: Vec<u64>,
    summary: String,
    /// Its record: `GET /ledger/records/{index}` proves it.
    ledger_index: u64,
}

/// Recent alerts, newest first.
#[derive(ToSchema)]
pub struct Alerts {
    alerts: Vec<Alert>,
}

/// A session for a person (8 hours).
#[derive(ToSchema)]
pub struct Session {
    /// The bearer token; shown once.
    token: String,
    #[schema(pattern = "^(admin|soc_analyst|quality_reviewer|auditor|control_room|collector|monitoring)$")]
    role: String,
    /// RFC 3339.
    expires_at: String,
    /// When the password expires, under `[accounts] password_max_age_days`.
    password_expires_at: Option<String>,
    /// Present when the session may only change the password (or log out).
    #[schema(pattern = "^(temporary|expired)$")]
    password_change_required: Option<String>,
}

/// A control-room alarm (ISA-18.2), by the alert or flood it announces.
#[derive(ToSchema)]
pub struct Alarm {
    /// De-duplication key: rule and entity, or `flood/<area>`.
    key: String,
    /// 1 (highest) .. 4.
    #[schema(minimum = 1, maximum = 4)]
    priority: u8,
    area: String,
    title: String,
    summary: String,
    /// Unix ms (the server's clock).
    raised_at: i64,
    #[schema(pattern = "^(alert|flood_started|flood_ended)$")]
    kind: String,
    /// `alert`: the alert's id and rule.
    alert: Option<String>,
    rule: Option<String>,
    /// `flood_started`: alarms raised in the flood window.
    alarms_in_window: Option<u64>,
    /// `flood_ended`: alarms not sent one by one during the flood.
    suppressed: Option<u64>,
}

/// Shelved until (Unix ms), by whom and why.
#[derive(ToSchema)]
pub struct Shelf {
    until: i64,
    by: String,
    reason: String,
}

/// An alarm's standing on the board.
#[derive(ToSchema)]
pub struct AlarmState {
    alarm: Alarm,
    /// Raised again while standing unacknowledged.
    repeats: u64,
    /// `[who, Unix ms]`, once acknowledged.
    acknowledged: Option<Vec<serde_json::Value>>,
    shelved: Option<Shelf>,
}

/// The standing alarms, highest priority first.
#[derive(ToSchema)]
pub struct Alarms {
    alarms: Vec<AlarmState>,
}

/// An alarm after an operator's action, and the `audit` record of it (with
/// the shelf an unshelving ended).
#[derive(ToSchema)]
pub struct AlarmHandled {
    alarm: AlarmState,
    shelf: Option<Shelf>,
    audit_index: u64,
}

/// A page of search hits, newest first (or oldest, by `order`).
#[derive(ToSchema)]
pub struct SearchPage {
    /// Matching records; exact when `total_exact`, else at least this many.
    total: u64,
    total_exact: bool,
    hits: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
    /// By facet asked (`facets=class,zone`): the top values and their counts.
    facets: std::collections::BTreeMap<String, Vec<FacetCount>>,
    /// Ledger records the index has taken in so far.
    searchable_records: u64,
}

/// One hit: the ledgered record, by its index.
#[derive(ToSchema)]
pub struct SearchHit {
    ledger_index: u64,
    /// event, alert, incident, audit, …
    kind: String,
    /// RFC 3339.
    time: String,
    /// The record's data as ledgered (an event in the event contract, …).
    record: serde_json::Value,
}

#[derive(ToSchema)]
pub struct FacetCount {
    value: serde_json::Value,
    count: u64,
}

/// A read-only query's answer.
#[derive(ToSchema)]
pub struct SqlAnswer {
    columns: Vec<SqlColumn>,
    /// One object per row, by column name.
    rows: Vec<std::collections::BTreeMap<String, serde_json::Value>>,
    /// More rows matched than `max_rows`.
    truncated: bool,
    elapsed_ms: u64,
}

#[derive(ToSchema)]
pub struct SqlColumn {
    name: String,
    /// The Arrow type.
    r#type: String,
}

/// A ledger record with its RFC 9162 inclusion proof against the latest
/// signed checkpoint, which is included: enough to check it offline.
#[derive(ToSchema)]
pub struct RecordProof {
    index: u64,
    record: serde_json::Value,
    /// The exact text the leaf hash covers.
    record_text: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    leaf_hash: String,
    tree_size: u64,
    inclusion_proof: Vec<Hash>,
    /// The C2SP signed note of the checkpoint.
    checkpoint: String,
}

/// An RFC 9162 consistency proof between two tree sizes.
#[derive(ToSchema)]
pub struct ConsistencyProof {
    old: u64,
    new: u64,
    proof: Vec<Hash>,
    checkpoint: String,
}

/// A SHA-256 in lowercase hex.
#[derive(ToSchema)]
#[schema(pattern = "^[0-9a-f]{64}$")]
pub struct Hash(String);

/// The process runs.
#[derive(ToSchema)]
pub struct Alive {
    #[schema(pattern = "^ok$")]
    status: String,
}

/// Ready: the ledger is open and a signed checkpoint exists.
#[derive(ToSchema)]
pub struct Ready {
    #[schema(pattern = "^ready$")]
    status: String,
    ledger_size: u64,
}

/// A page of an incident's timeline: contributing events and alerts in
/// event-time order, each with its `ledger_index`.
#[derive(ToSchema)]
pub struct Timeline {
    incident: String,
    timeline: Vec<serde_json::Value>,
    /// Pass as `after` for the next page; null on the last.
    next: Option<String>,
    total: u64,
}

/// A person's own password changed; their other sessions ended.
#[derive(ToSchema)]
pub struct PasswordChanged {
    changed: bool,
    sessions_ended: u64,
}

/// This session has ended.
#[derive(ToSchema)]
pub struct LoggedOut {
    ended: bool,
}

/// The ledger index of the record that states it.
#[derive(ToSchema)]
pub struct Recorded {
    index: u64,
}

/// Records taken for processing (their events follow in the ledger).
#[derive(ToSchema)]
pub struct Accepted {
    accepted: u64,
}

/// What a reload put in place: the rules now running, and whether what
/// was reloaded differs from what ran before.
#[derive(ToSchema)]
pub struct Reloaded {
    rules: u64,
    changed: bool,
}

/// The e-signature's ledger record, and its index.
#[derive(ToSchema)]
pub struct Signed {
    signature_index: u64,
    signature: serde_json::Value,
}

/// One normalised event (the event contract, OCSF-aligned), with its ledger index.
#[derive(ToSchema)]
pub struct Event {
    class_uid: u32,
    category_uid: u32,
    activity_id: u32,
    /// `class_uid * 100 + activity_id`.
    type_uid: u64,
    /// Event time from the source, and when Custos received the record (Unix ms).
    time: i64,
    observed_time: i64,
    /// OCSF severity 0..6.
    #[schema(minimum = 0, maximum = 6)]
    severity_id: u8,
    /// 1 success, 2 failure.
    status_id: Option<u8>,
    /// On network activity: 1 allowed, 2 denied.
    action_id: Option<u8>,
    message: String,
    actor: Option<Actor>,
    src: Option<Endpoint>,
    dst: Option<Endpoint>,
    device: Option<Device>,
    /// IEC 62443 zone, from the inventory; the door and area of a badge event.
    zone: Option<String>,
    door: Option<String>,
    area: Option<String>,
    protocol: Option<String>,
    ot: Option<OtOperation>,
    finding: Option<Finding>,
    change: Option<ConfigChange>,
    metadata: EventMetadata,
    /// Vendor fields with no home in the contract, kept.
    unmapped: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// The original record byte for byte: a string when UTF-8, else `{"base64": …}`.
    raw: serde_json::Value,
    ledger_index: u64,
}

/// Who acted: an account, a credential (badge) and the person both resolve to.
#[derive(ToSchema)]
pub struct Actor {
    user: Option<String>,
    credential_uid: Option<String>,
    person: Option<String>,
}

/// A network endpoint, with the inventory asset and zone it belongs to.
#[derive(ToSchema)]
pub struct Endpoint {
    ip: Option<String>,
    port: Option<u16>,
    mac: Option<String>,
    hostname: Option<String>,
    asset: Option<String>,
    zone: Option<String>,
}

/// The asset the event is about.
#[derive(ToSchema)]
pub struct Device {
    asset: Option<String>,
    hostname: Option<String>,
    ip: Option<String>,
    /// plc, hmi, ews, historian, server, workstation, network, other.
    kind: Option<String>,
    vendor: Option<String>,
    model: Option<String>,
}

/// An industrial protocol operation (Modbus, DNP3, S7, ENIP/CIP).
#[derive(ToSchema)]
pub struct OtOperation {
    function_code: Option<u16>,
    function: Option<String>,
    unit_id: Option<u16>,
    address: Option<u32>,
    #[schema(pattern = "^(read|write|other)$")]
    access: String,
}

/// A detection (IDS signature, Custos rule).
#[derive(ToSchema)]
pub struct Finding {
    uid: Option<String>,
    title: String,
    category: Option<String>,
}

/// A PLC program / configuration comparison.
#[derive(ToSchema)]
pub struct ConfigChange {
    backup: String,
    compared_with: String,
    /// equal, different or error.
    result: String,
    changed_files: Option<Vec<String>>,
    previous_backup: Option<String>,
    previous_result: Option<String>,
    changed_since_previous: Option<Vec<String>>,
}

/// Where the event came from and how it was read.
#[derive(ToSchema)]
pub struct EventMetadata {
    product: String,
    vendor: Option<String>,
    version: Option<String>,
    /// The configured source, e.g. `syslog-udp`.
    source: String,
    /// The parser, e.g. `syslog/cef`.
    parser: String,
}

/// Recent events, newest first.
#[derive(ToSchema)]
pub struct Events {
    events: Vec<Event>,
}

/// A record no parser could read, kept with why, and its ledger index.
#[derive(ToSchema)]
pub struct DeadLetter {
    source: String,
    /// The format its source was set to read.
    format: String,
    reason: String,
    /// When Custos received it (Unix ms).
    observed_time: i64,
    /// The record byte for byte: a string when UTF-8, else `{"base64": …}`.
    raw: serde_json::Value,
    ledger_index: u64,
}

/// Recent dead letters, newest first, and how many since the start.
#[derive(ToSchema)]
pub struct DeadLetters {
    dead_letters: Vec<DeadLetter>,
    total: u64,
}

/// Each documented answer names exactly the fields the handlers write, at
/// every level. The samples are struct literals with every field set, so a
/// field added to correlate's or ingest's types breaks this build until it
/// is set here, and then this test until the document states it.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use correlate::{AlarmKind, Entity, EntityKind};
    use serde_json::{Value, json};

    use crate::views::Stored;

    /// Walks `samples` against the document's schema `name`: the union of
    /// their keys is its properties, and each property that refers to
    /// another schema is walked with the samples' values there.
    fn walk(doc: &Value, name: &str, samples: &[&Value], path: &str) {
        let props = doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: the document's {name} has no properties"));
        let mut written = BTreeSet::new();
        for s in samples {
            written.extend(s.as_object().unwrap_or_else(|| panic!("{path}: not an object: {s}")).keys().cloned());
        }
        let documented: BTreeSet<String> = props.keys().cloned().collect();
        assert_eq!(written, documented, "{path}: the fields written and the fields of the document's {name}");
        for (field, p) in props {
            let Some(target) = referred(p) else { continue };
            let inner: Vec<&Value> = samples
                .iter()
                .filter_map(|s| s.get(field))
                .flat_map(|v| match v {
                    Value::Array(a) => a.iter().collect(),
                    v => vec![v],
                })
                .filter(|v| v.is_object())
                .collect();
            assert!(!inner.is_empty(), "{path}.{field}: no sample sets it");
            walk(doc, target, &inner, &format!("{path}.{field}"));
        }
    }

    /// The schema a property refers to: itself, its items, or an option's.
    fn referred(p: &Value) -> Option<&str> {
        p["$ref"]
            .as_str()
            .or_else(|| p["items"]["$ref"].as_str())
            .or_else(|| p["oneOf"].as_array()?.iter().find_map(|o| o["$ref"].as_str()))
            .map(|r| r.trim_start_matches("#/components/schemas/"))
    }

    fn document() -> Value {
        serde_json::to_value(crate::server::openapi()).expect("json")
    }

    fn entity() -> Entity {
        Entity { kind: EntityKind::Asset, id: "PLC-7".into() }
    }

    #[test]
    fn the_documented_incident_has_every_field_it_is_answered_with() {
        use correlate::{Incident, IncidentState, Note, Transition};
        let incident = Incident {
            id: "INC-000002".into(),
            rule: "r".into(),
            rules: vec!["r".into()],
            title: "t".into(),
            severity_id: 4,
            state: IncidentState::Investigating,
            attack: vec!["T0843".into()],
            entity: entity(),
            zone: Some("cell-1".into()),
            opened_at: 1,
            last_alert_at: 2,
            alerts: vec!["a".into()],
            events: vec![1],
            history: vec![Transition {
                from: IncidentState::New,
                to: IncidentState::Investigating,
                by: "ana".into(),
                reason: "looking".into(),
                at: 3,
            }],
            continues: Some("INC-000001".into()),
            assignee: Some("ana".into()),
            notes: vec![Note { by: "ana".into(), at: 4, text: "called the shift lead".into() }],
        };
        let shown = crate::server::incident_json(&incident);
        walk(&document(), "Incidents", &[&json!({"incidents": [shown]})], "incidents");
    }

    #[test]
    fn the_documented_alert_has_every_field_it_is_answered_with() {
        let alert = correlate::Alert {
            id: "a".into(),
            rule: "r".into(),
            title: "t".into(),
            severity_id: 4,
            attack: vec!["T0843".into()],
            time: 1,
            entity: entity(),
            zone: Some("cell-1".into()),
            events: vec![1],
            summary: "s".into(),
        };
        let shown = crate::server::indexed_json(&Stored { index: 9, item: Arc::new(alert) });
        walk(&document(), "Alerts", &[&json!({"alerts": [shown]})], "alerts");
    }

    /// An alarm's fields depend on its kind: together, the three kinds
    /// write every documented field.
    #[test]
    fn the_documented_alarm_has_every_field_it_is_answered_with() {
        use correlate::{Alarm, AlarmState, Shelf};
        let state = |kind| AlarmState {
            alarm: Alarm {
                key: "k".into(),
                priority: 1,
                area: "cell-1".into(),
                title: "t".into(),
                summary: "s".into(),
                raised_at: 1,
                kind,
            },
            repeats: 2,
            acknowledged: Some(("op".into(), 3)),
            shelved: Some(Shelf { until: 4, by: "op".into(), reason: "maintenance".into() }),
        };
        let board = [
            state(AlarmKind::Alert { alert: "a".into(), rule: "r".into() }),
            state(AlarmKind::FloodStarted { alarms_in_window: 10 }),
            state(AlarmKind::FloodEnded { suppressed: 5 }),
        ];
        walk(&document(), "Alarms", &[&json!({"alarms": board})], "alarms");
    }

    /// The event contract, as `GET /events` answers it.
    #[test]
    fn the_documented_event_has_every_field_of_the_contract() {
        use ingest::event::{Actor, ConfigChange, Device, Endpoint, EventClass, Finding, OtAccess, OtOperation};
        let endpoint = || Endpoint {
            ip: Some([10, 0, 0, 1].into()),
            port: Some(502),
            mac: Some("00:11:22:33:44:55".into()),
            hostname: Some("h".into()),
            asset: Some("a".into()),
            zone: Some("z".into()),
        };
        let e = ingest::Event::new(EventClass::PhysicalAccess, 1, 1, 2, b"raw");
        let mut unmapped = ingest::event::Unmapped::default();
        unmapped.insert("vendor_field", "v");
        let metadata =
            ingest::event::Metadata { vendor: Some("v".into()), version: Some("1".into()), ..e.metadata.clone() };
        let e = ingest::Event {
            status_id: Some(1),
            action_id: Some(1),
            actor: Some(Actor { user: Some("u".into()), credential_uid: Some("c".into()), person: Some("p".into()) }),
            src: Some(endpoint()),
            dst: Some(endpoint()),
            device: Some(Device {
                asset: Some("a".into()),
                hostname: Some("h".into()),
                ip: Some([10, 0, 0, 2].into()),
                kind: Some("plc".into()),
                vendor: Some("v".into()),
                model: Some("m".into()),
            }),
            zone: Some("z".into()),
            door: Some("d".into()),
            area: Some("r".into()),
            protocol: Some("modbus".into()),
            ot: Some(OtOperation {
                function_code: Some(6),
                function: Some("write_single_register".into()),
                unit_id: Some(1),
                address: Some(40001),
                access: OtAccess::Write,
            }),
            finding: Some(Finding { uid: Some("1".into()), title: "t".into(), category: Some("c".into()) }),
            change: Some(Box::new(ConfigChange {
                backup: "b".into(),
                compared_with: "released".into(),
                result: "different".into(),
                changed_files: vec!["OB1".into()],
                previous_backup: Some("a".into()),
                previous_result: Some("equal".into()),
                changed_since_previous: vec!["OB1".into()],
            })),
            metadata,
            unmapped,
            ..e
        };
        let shown = crate::server::indexed_json(&Stored { index: 9, item: Arc::new(e) });
        walk(&document(), "Events", &[&json!({"events": [shown]})], "events");
    }

    /// The walk bites: a field the document lacks, or one it states that
    /// no answer writes, each fails it.
    #[test]
    #[should_panic(expected = "incidents.entity")]
    fn a_field_the_document_lacks_fails_the_walk() {
        let answer = json!({"incidents": [{"entity": {"kind": "asset", "id": "x", "extra": 1}}]});
        let mut doc = document();
        let incident = doc["components"]["schemas"]["Incident"]["properties"].as_object_mut().expect("props");
        incident.retain(|k, _| k == "entity");
        walk(&doc, "Incidents", &[&answer], "incidents");
    }
}
