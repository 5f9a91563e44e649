//! Incidents: alerts grouped by entity and time, with a state machine whose
//! every transition names who and why.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::CorrelateError;
use crate::alert::{Alert, Entity};
use crate::state::pairs;

/// Alerts one incident takes; the next alert about its entity opens a new
/// incident that `continues` it. Each version of an incident is ledgered
/// whole, so without a bound a rule firing all day on one host would make
/// every version longer than the last (quadratic ledger growth).
const MAX_ALERTS_PER_INCIDENT: usize = 1_000;
/// Notes one incident takes (each version carries them all).
pub const MAX_NOTES_PER_INCIDENT: usize = 200;
/// Characters in one note.
pub const MAX_NOTE_CHARS: usize = 4_000;

/// new → acknowledged → investigating → closed or false positive (either
/// straight from any open state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    New,
    Acknowledged,
    Investigating,
    Closed,
    FalsePositive,
}

impl IncidentState {
    pub const ALL: [Self; 5] = [Self::New, Self::Acknowledged, Self::Investigating, Self::Closed, Self::FalsePositive];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Acknowledged => "acknowledged",
            Self::Investigating => "investigating",
            Self::Closed => "closed",
            Self::FalsePositive => "false_positive",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Closed or false positive: no further transitions, no new alerts.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::FalsePositive)
    }
    fn can_go_to(self, to: Self) -> bool {
        use IncidentState::*;
        matches!(
            (self, to),
            (New, Acknowledged)
                | (New | Acknowledged, Investigating)
                | (New | Acknowledged | Investigating, Closed | FalsePositive)
        )
    }
}

/// A state change with who and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: IncidentState,
    pub to: IncidentState,
    pub by: String,
    pub reason: String,
    pub at: i64,
}

/// What a person wrote on an incident: findings, calls made, hand-overs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub by: String,
    pub at: i64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    pub id: String,
    /// The rule of the first alert.
    pub rule: String,
    pub rules: Vec<String>,
    pub title: String,
    pub severity_id: u8,
    pub state: IncidentState,
    pub attack: Vec<String>,
    pub entity: Entity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Event time of the first alert, UTC ms.
    pub opened_at: i64,
    /// Event time of the latest alert, UTC ms.
    pub last_alert_at: i64,
    pub alerts: Vec<String>,
    /// Ledger indices of every contributing event.
    pub events: Vec<u64>,
    #[serde(default)]
    pub history: Vec<Transition>,
    /// The incident this one continues, which had taken
    /// [`MAX_ALERTS_PER_INCIDENT`] alerts about the same entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<String>,
    /// Who works on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Oldest first, at most [`MAX_NOTES_PER_INCIDENT`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

/// What filing a batch of alerts did.
#[derive(Debug, Clone, PartialEq)]
pub struct Filed {
    /// The incident each alert went to, in the alerts' order.
    pub incident_of: Vec<String>,
    /// Each incident opened or changed, once, as it stands after the batch.
    pub changed: Vec<Incident>,
}

/// Open incidents and their grouping. Rebuilt from the ledger's incident records on start.
#[derive(Debug, Default)]
pub struct IncidentBook {
    incidents: BTreeMap<String, Incident>,
    /// Every incident by (opened at, id), for the list newest first without
    /// sorting months of incidents at every request.
    by_opened: BTreeSet<(i64, String)>,
    /// Ids of the incidents still open, by entity, oldest first: an alert
    /// looks only at its entity's, not at every incident ever opened.
    open: HashMap<Entity, Vec<String>>,
    next_seq: u64,
    /// Alerts of the same entity within this span join one open incident.
    group_window_ms: i64,
}

/// An [`IncidentBook`] as written to a state snapshot.
#[derive(Clone, Serialize, Deserialize)]
pub struct BookState {
    incidents: Vec<Incident>,
    #[serde(with = "pairs")]
    open: HashMap<Entity, Vec<String>>,
    next_seq: u64,
}

impl IncidentBook {
    pub fn save_state(&self) -> BookState {
        BookState {
            incidents: self.incidents.values().cloned().collect(),
            open: self.open.clone(),
            next_seq: self.next_seq,
        }
    }

    /// The book a snapshot holds; its index by opening time is rebuilt. An
    /// open id the snapshot holds no incident for is dropped (filing would
    /// look it up).
    pub fn from_state(group_window_ms: i64, s: BookState) -> Self {
        let by_opened = s.incidents.iter().map(|i| (i.opened_at, i.id.clone())).collect();
        let incidents: BTreeMap<String, Incident> = s.incidents.into_iter().map(|i| (i.id.clone(), i)).collect();
        let mut open = s.open;
        open.retain(|_, ids| {
            ids.retain(|id| incidents.contains_key(id));
            !ids.is_empty()
        });
        Self { incidents, by_opened, open, next_seq: s.next_seq, group_window_ms }
    }

    pub fn new(group_window_ms: i64) -> Self {
        Self {
            incidents: BTreeMap::new(),
            by_opened: BTreeSet::new(),
            open: Default::default(),
            next_seq: 1,
            group_window_ms,
        }
    }

    /// Restores an incident snapshot read back from the ledger (the latest wins).
    pub fn restore(&mut self, incident: Incident) {
        if let Some(seq) = incident.id.strip_prefix("INC-").and_then(|s| s.parse::<u64>().ok()) {
            self.next_seq = self.next_seq.max(seq + 1);
        }
        let ids = self.open.entry(incident.entity.clone()).or_default();
        let at = ids.iter().position(|id| *id == incident.id);
        match (incident.state.is_final(), at) {
            (true, Some(at)) => drop(ids.remove(at)),
            (false, None) => ids.push(incident.id.clone()),
            _ => {}
        }
        if let Some(was) = self.incidents.get(&incident.id) {
            self.by_opened.remove(&(was.opened_at, was.id.clone()));
        }
        self.by_opened.insert((incident.opened_at, incident.id.clone()));
        self.incidents.insert(incident.id.clone(), incident);
    }

    /// Files an alert; returns the new or changed incident.
    pub fn file(&mut self, alert: &Alert) -> Incident {
        let id = self.file_one(alert);
        self.incidents[&id].clone()
    }

    /// Files a batch of alerts; each incident they change is returned once,
    /// so a burst of alerts about one entity makes one new version, not one
    /// per alert.
    pub fn file_all(&mut self, alerts: &[Alert]) -> Filed {
        let incident_of: Vec<String> = alerts.iter().map(|a| self.file_one(a)).collect();
        let mut seen = HashSet::new();
        let changed =
            incident_of.iter().filter(|id| seen.insert(id.as_str())).map(|id| self.incidents[id].clone()).collect();
        Filed { incident_of, changed }
    }

    /// Files an alert; returns its incident's id.
    fn file_one(&mut self, alert: &Alert) -> String {
        let window = self.group_window_ms;
        let mut full = None;
        let mut open = None;
        for id in self.open.get(&alert.entity).into_iter().flatten() {
            let i = &self.incidents[id];
            if (alert.time - i.last_alert_at).abs() > window {
                continue;
            }
            if i.alerts.len() >= MAX_ALERTS_PER_INCIDENT {
                full = Some(id.clone());
                continue;
            }
            open = Some(id.clone());
            break;
        }
        match open.and_then(|id| self.incidents.get_mut(&id)) {
            Some(i) => {
                i.severity_id = i.severity_id.max(alert.severity_id);
                i.last_alert_at = i.last_alert_at.max(alert.time);
                if alert.time < i.opened_at {
                    // A late alert moves the incident's start back.
                    self.by_opened.remove(&(i.opened_at, i.id.clone()));
                    self.by_opened.insert((alert.time, i.id.clone()));
                    i.opened_at = alert.time;
                }
                if !i.rules.contains(&alert.rule) {
                    i.rules.push(alert.rule.clone());
                }
                for t in &alert.attack {
                    if !i.attack.contains(t) {
                        i.attack.push(t.clone());
                    }
                }
                i.alerts.push(alert.id.clone());
                for e in &alert.events {
                    if !i.events.contains(e) {
                        i.events.push(*e);
                    }
                }
                i.id.clone()
            }
            None => {
                let id = format!("INC-{:06}", self.next_seq);
                self.next_seq += 1;
                let i = Incident {
                    id: id.clone(),
                    rule: alert.rule.clone(),
                    rules: vec![alert.rule.clone()],
                    title: alert.title.clone(),
                    severity_id: alert.severity_id,
                    state: IncidentState::New,
                    attack: alert.attack.clone(),
                    entity: alert.entity.clone(),
                    zone: alert.zone.clone(),
                    opened_at: alert.time,
                    last_alert_at: alert.time,
                    alerts: vec![alert.id.clone()],
                    events: alert.events.clone(),
                    history: Vec::new(),
                    continues: full,
                    assignee: None,
                    notes: Vec::new(),
                };
                self.open.entry(i.entity.clone()).or_default().push(id.clone());
                self.by_opened.insert((i.opened_at, id.clone()));
                self.incidents.insert(id.clone(), i);
                id
            }
        }
    }

    /// Moves an incident to `to`, recording who and why.
    pub fn transition(
        &mut self,
        id: &str,
        to: IncidentState,
        by: &str,
        reason: &str,
        at: i64,
    ) -> Result<Incident, CorrelateError> {
        if reason.trim().is_empty() {
            return Err(CorrelateError::ReasonRequired);
        }
        let i = self.incidents.get_mut(id).ok_or_else(|| CorrelateError::NoSuchIncident(id.to_owned()))?;
        if !i.state.can_go_to(to) {
            return Err(CorrelateError::BadTransition {
                id: id.to_owned(),
                from: i.state.as_str().into(),
                to: to.as_str().into(),
            });
        }
        i.history.push(Transition { from: i.state, to, by: by.to_owned(), reason: reason.to_owned(), at });
        i.state = to;
        if to.is_final()
            && let Some(ids) = self.open.get_mut(&i.entity)
        {
            ids.retain(|open| open != id);
        }
        Ok(i.clone())
    }

    /// Adds `by`'s note to an incident, open or not (findings come after
    /// closing too).
    pub fn add_note(&mut self, id: &str, by: &str, text: &str, at: i64) -> Result<Incident, CorrelateError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
            return Err(CorrelateError::BadNote(format!("a note has 1 to {MAX_NOTE_CHARS} characters")));
        }
        let i = self.incidents.get_mut(id).ok_or_else(|| CorrelateError::NoSuchIncident(id.to_owned()))?;
        if i.notes.len() >= MAX_NOTES_PER_INCIDENT {
            return Err(CorrelateError::BadNote(format!("incident {id} has {MAX_NOTES_PER_INCIDENT} notes already")));
        }
        i.notes.push(Note { by: by.to_owned(), at, text: text.to_owned() });
        Ok(i.clone())
    }

    /// Gives an open incident to `assignee` (`None`: to no one); returns
    /// who had it and the incident.
    pub fn assign(&mut self, id: &str, assignee: Option<&str>) -> Result<(Option<String>, Incident), CorrelateError> {
        let i = self.incidents.get_mut(id).ok_or_else(|| CorrelateError::NoSuchIncident(id.to_owned()))?;
        if i.state.is_final() {
            return Err(CorrelateError::Final { id: id.to_owned(), state: i.state.as_str().into() });
        }
        let was = std::mem::replace(&mut i.assignee, assignee.map(str::to_owned));
        Ok((was, i.clone()))
    }

    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    /// The incidents opened before `opened_before` (all without), newest
    /// opened first (then the higher id). An incident's alerts all come at or
    /// after its opening, so a list of those with an alert before a time
    /// starts here instead of skipping every later incident.
    pub fn list(&self, opened_before: Option<i64>) -> impl Iterator<Item = &Incident> {
        use std::ops::Bound;
        let end = opened_before.map_or(Bound::Unbounded, |t| Bound::Excluded((t, String::new())));
        self.by_opened.range((Bound::Unbounded, end)).rev().filter_map(|(_, id)| self.incidents.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::EntityKind;

    fn alert(id: &str, rule: &str, person: &str, time: i64, sev: u8) -> Alert {
        Alert {
            id: id.into(),
            rule: rule.into(),
            title: rule.into(),
            severity_id: sev,
            attack: vec!["T0859".into()],
            time,
            entity: Entity { kind: EntityKind::Person, id: person.into() },
            zone: None,
            events: vec![time as u64],
            summary: String::new(),
        }
    }

    /// Notes go on any incident, trimmed, within their bounds; only open
    /// incidents are assigned; both come back with a restored version, and
    /// a version from before either existed still reads.
    #[test]
    fn notes_and_assignees() {
        let mut b = IncidentBook::new(3_600_000);
        let id = b.file(&alert("a1", "r1", "mallory", 1_000, 3)).id;
        let noted = b.add_note(&id, "sam", "  called the shift lead  ", 5).expect("note");
        assert_eq!(noted.notes, [Note { by: "sam".into(), at: 5, text: "called the shift lead".into() }]);
        for bad in ["", "   ", &"x".repeat(MAX_NOTE_CHARS + 1)] {
            assert!(matches!(b.add_note(&id, "sam", bad, 6), Err(CorrelateError::BadNote(_))), "{bad:?}");
        }
        assert!(
            b.add_note(&"y".repeat(3), "sam", "text", 6).is_err_and(|e| matches!(e, CorrelateError::NoSuchIncident(_)))
        );
        let (was, i) = b.assign(&id, Some("sam")).expect("assign");
        assert_eq!((was, i.assignee.as_deref()), (None, Some("sam")));
        let (was, i) = b.assign(&id, Some("kim")).expect("reassign");
        assert_eq!((was.as_deref(), i.assignee.as_deref()), (Some("sam"), Some("kim")));
        b.transition(&id, IncidentState::Closed, "kim", "benign", 7).expect("close");
        assert!(matches!(b.assign(&id, None), Err(CorrelateError::Final { .. })));
        let after = b.add_note(&id, "kim", "lessons: badge reader 3 faulty", 8).expect("a note after closing");
        assert_eq!(after.notes.len(), 2);
        for n in 2..MAX_NOTES_PER_INCIDENT {
            b.add_note(&id, "kim", &format!("note {n}"), 9).expect("within the bound");
        }
        assert!(matches!(b.add_note(&id, "kim", "one more", 10), Err(CorrelateError::BadNote(_))));
        let json = serde_json::to_value(b.get(&id).expect("incident")).expect("json");
        let mut back = IncidentBook::new(3_600_000);
        back.restore(serde_json::from_value(json.clone()).expect("version"));
        assert_eq!(
            back.get(&id).map(|i| (i.notes.len(), i.assignee.clone())),
            Some((MAX_NOTES_PER_INCIDENT, Some("kim".into())))
        );
        let mut old = json;
        let o = old.as_object_mut().expect("object");
        o.remove("notes");
        o.remove("assignee");
        let old: Incident = serde_json::from_value(old).expect("a version from before notes");
        assert!(old.notes.is_empty() && old.assignee.is_none());
    }

    /// A saved book comes back whole (the list by opening time too); an open
    /// id without its incident, which only a damaged state could hold, is dropped.
    #[test]
    fn a_saved_book_comes_back() {
        let mut b = IncidentBook::new(3_600_000);
        b.file(&alert("a1", "r1", "mallory", 1_000, 3));
        b.file(&alert("a2", "r1", "bob", 500, 3));
        let saved = serde_json::to_value(b.save_state()).expect("json");
        let back = IncidentBook::from_state(3_600_000, serde_json::from_value(saved.clone()).expect("state"));
        assert_eq!(serde_json::to_value(back.save_state()).expect("json"), saved);
        let ids = |b: &IncidentBook| b.list(None).map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&back), ids(&b));

        let mut damaged = saved;
        damaged["incidents"] = serde_json::json!([]);
        let mut d = IncidentBook::from_state(3_600_000, serde_json::from_value(damaged).expect("state"));
        let i = d.file(&alert("a3", "r1", "mallory", 1_500, 3));
        assert_eq!(i.alerts, ["a3"], "a new incident, not a lookup of one the state lacks");
    }

    #[test]
    fn groups_by_entity_and_time() {
        let mut b = IncidentBook::new(3_600_000);
        let a = b.file(&alert("a1", "r1", "mallory", 1_000, 3));
        let same = b.file(&alert("a2", "r2", "mallory", 2_000, 5));
        assert_eq!(a.id, same.id);
        assert_eq!(same.severity_id, 5);
        assert_eq!(same.rules, vec!["r1".to_owned(), "r2".to_owned()]);
        assert_eq!(same.events, vec![1_000, 2_000]);
        assert_ne!(b.file(&alert("a3", "r1", "bob", 2_000, 3)).id, a.id, "another person");
        assert_ne!(b.file(&alert("a4", "r1", "mallory", 10_000_000, 3)).id, a.id, "much later");
    }

    /// A burst about one entity is one new version per batch; a full
    /// incident is continued by a new one that says so.
    #[test]
    fn a_batch_makes_one_version_per_incident_and_full_ones_are_continued() {
        let mut b = IncidentBook::new(3_600_000);
        let burst: Vec<Alert> = (0..MAX_ALERTS_PER_INCIDENT as i64 + 5)
            .map(|t| alert(&format!("a{t}"), "r1", "mallory", t, 3))
            .chain([alert("b1", "r1", "bob", 1, 3)])
            .collect();
        let filed = b.file_all(&burst);
        assert_eq!(filed.incident_of.len(), burst.len());
        let ids: Vec<&str> = filed.changed.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["INC-000001", "INC-000002", "INC-000003"], "mallory's full one, its continuation, bob's");
        assert_eq!(filed.changed[0].alerts.len(), MAX_ALERTS_PER_INCIDENT);
        assert_eq!((filed.changed[1].alerts.len(), filed.changed[1].continues.as_deref()), (5, Some("INC-000001")));
        assert_eq!(filed.incident_of[MAX_ALERTS_PER_INCIDENT], "INC-000002");
        assert_eq!(filed.changed[2].continues, None);
    }

    /// Restored from the ledger version by version, the book knows which
    /// incidents are still open: a new alert joins an open one, not a closed one.
    #[test]
    fn restored_versions_keep_the_open_incidents() {
        let mut live = IncidentBook::new(3_600_000);
        let closed = live.file(&alert("a1", "r1", "mallory", 1_000, 3));
        let open = live.file(&alert("a2", "r1", "bob", 1_000, 3));
        let closed_v2 = live.transition(&closed.id, IncidentState::Closed, "ana", "done", 2_000).expect("close");
        let mut restored = IncidentBook::new(3_600_000);
        for v in [closed, open.clone(), closed_v2] {
            restored.restore(v);
        }
        assert_eq!(restored.file(&alert("a3", "r1", "bob", 1_500, 3)).id, open.id, "joins bob's open incident");
        assert_eq!(restored.file(&alert("a4", "r1", "mallory", 1_500, 3)).id, "INC-000003", "mallory's was closed");
    }

    /// The list is newest opened first, and stays so when a late alert moves
    /// an incident's start back or a restored version changes it: each
    /// incident once.
    #[test]
    fn the_list_is_newest_opened_first_through_late_alerts_and_restores() {
        let mut b = IncidentBook::new(3_600_000);
        for (id, person, t) in [("a1", "ana", 1_000), ("a2", "bob", 3_000), ("a3", "cy", 2_000)] {
            b.file(&alert(id, "r1", person, t, 3));
        }
        let ids = |b: &IncidentBook| b.list(None).map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&b), ["INC-000002", "INC-000003", "INC-000001"]);
        let before = b.list(Some(3_000)).map(|i| i.id.as_str()).collect::<Vec<_>>();
        assert_eq!(before, ["INC-000003", "INC-000001"], "opened before 3,000");
        let late = b.file(&alert("a4", "r1", "bob", 500, 3));
        assert_eq!((late.id.as_str(), late.opened_at), ("INC-000002", 500), "a late alert moves the start back");
        assert_eq!(ids(&b), ["INC-000003", "INC-000001", "INC-000002"]);
        let mut restored = IncidentBook::new(3_600_000);
        let first = b.get("INC-000002").cloned().map(|i| Incident { opened_at: 3_000, ..i }).expect("bob's");
        for v in [first, b.get("INC-000001").cloned().expect("ana's"), late] {
            restored.restore(v);
        }
        assert_eq!(ids(&restored), ["INC-000001", "INC-000002"], "the newer version's start, once");
    }

    #[test]
    fn state_machine_records_who_and_why() {
        let mut b = IncidentBook::new(1);
        let id = b.file(&alert("a1", "r1", "m", 1, 3)).id;
        let i = b.transition(&id, IncidentState::Acknowledged, "ana", "looking", 5).expect("ack");
        assert_eq!(i.history[0].by, "ana");
        assert!(matches!(
            b.transition(&id, IncidentState::New, "ana", "x", 6),
            Err(CorrelateError::BadTransition { .. })
        ));
        assert!(matches!(b.transition(&id, IncidentState::Closed, "ana", " ", 7), Err(CorrelateError::ReasonRequired)));
        b.transition(&id, IncidentState::FalsePositive, "ana", "badge reader fault", 7).expect("false positive");
        assert!(b.transition(&id, IncidentState::Investigating, "ana", "x", 8).is_err());
        assert!(matches!(
            b.transition("INC-9", IncidentState::Closed, "a", "b", 1),
            Err(CorrelateError::NoSuchIncident(_))
        ));
        // A closed incident does not swallow new alerts.
        assert_ne!(b.file(&alert("a2", "r1", "m", 1, 3)).id, id);
    }
}
