//! Control-room alarms from alerts, with ISA-18.2 semantics: a priority from
//! the alert's severity, de-duplication (an alarm standing unacknowledged is
//! not raised again, its repeats are counted), shelving with an expiry, and
//! flood suppression per area (above N alarms in M minutes one summary alarm
//! stands for the rest until the rate falls), and acknowledged alarms leaving
//! the board once quiet for a while (an alert has no return to normal).
//! Pure: time is passed in.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::CorrelateError;
use crate::alert::Alert;
use crate::state::pairs;

fn default_flood_alarms() -> usize {
    10
}
fn default_flood_minutes() -> u64 {
    10
}
fn default_clear_acknowledged_minutes() -> u64 {
    60
}
fn default_not_for_control_room() -> Vec<String> {
    [
        "custos-own-account-locked",
        "custos-disabled-account-login",
        "custos-login-spray",
        "custos-expired-api-token-used",
        "custos-unknown-tokens-from-one-address",
        "custos-ended-token-used",
        "custos-collector-clock-off",
        "custos-collector-silent",
        "custos-collector-heard-again",
    ]
    .map(str::to_owned)
    .into()
}
fn default_priorities() -> [u8; 7] {
    // OCSF severity 0..6 → ISA-18.2 priority 1 (highest) .. 4.
    [4, 4, 4, 3, 2, 1, 1]
}

/// `[alarms]` policy settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmPolicy {
    /// More than this many alarms in `flood_minutes` in one area is a flood. Default 10.
    #[serde(default = "default_flood_alarms")]
    pub flood_alarms: usize,
    /// Default 10 minutes.
    #[serde(default = "default_flood_minutes")]
    pub flood_minutes: u64,
    /// Alarm priority (1 highest .. 4) for each OCSF severity 0..6.
    /// Default `[4, 4, 4, 3, 2, 1, 1]`: high → 2, critical and fatal → 1.
    #[serde(default = "default_priorities")]
    pub priorities: [u8; 7],
    /// An acknowledged alarm not raised again (nor shelved) for this long
    /// leaves the board: alerts never return to normal, so without this the
    /// board would only grow. 0 keeps them until raised again. Default 60.
    #[serde(default = "default_clear_acknowledged_minutes")]
    pub clear_acknowledged_minutes: u64,
    /// Rules whose alerts are for the SOC only, never alarms: an alarm asks
    /// an operator to act (ISA-18.2), and an operator cannot act on them.
    /// Default: the rules about sign-ins to Custos itself
    /// (`custos-own-account-locked`, `custos-disabled-account-login`,
    /// `custos-login-spray`, `custos-expired-api-token-used`,
    /// `custos-unknown-tokens-from-one-address`, `custos-ended-token-used`).
    /// `[]` sends every rule's alerts.
    #[serde(default = "default_not_for_control_room")]
    pub not_for_control_room: Vec<String>,
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        Self {
            flood_alarms: default_flood_alarms(),
            flood_minutes: default_flood_minutes(),
            priorities: default_priorities(),
            clear_acknowledged_minutes: default_clear_acknowledged_minutes(),
            not_for_control_room: default_not_for_control_room(),
        }
    }
}

/// What an alarm announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AlarmKind {
    /// One alert.
    Alert { alert: String, rule: String },
    /// An area went into flood: this alarm stands for the ones that follow.
    FloodStarted { alarms_in_window: usize },
    /// The flood is over; `suppressed` alarms were not sent one by one.
    FloodEnded { suppressed: u64 },
}

/// An alarm to send to the control room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// De-duplication key: rule and entity (or the area for flood alarms).
    pub key: String,
    /// 1 (highest) .. 4.
    pub priority: u8,
    pub area: String,
    pub title: String,
    pub summary: String,
    /// When it was raised (server time, ms).
    pub raised_at: i64,
    #[serde(flatten)]
    pub kind: AlarmKind,
}

/// An alarm's standing on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmState {
    pub alarm: Alarm,
    /// Raised again while standing unacknowledged.
    pub repeats: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<(String, i64)>,
    /// Shelved until (ms), by whom and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shelved: Option<Shelf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shelf {
    pub until: i64,
    pub by: String,
    pub reason: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Area {
    /// Times of alarms raised in the flood window.
    recent: VecDeque<i64>,
    flooding: bool,
    suppressed: u64,
}

/// The alarm board: which alarms stand, and which to send.
#[derive(Debug, Default)]
pub struct AlarmBoard {
    policy: AlarmPolicy,
    standing: HashMap<String, AlarmState>,
    areas: HashMap<String, Area>,
}

/// An [`AlarmBoard`] as written to a state snapshot.
#[derive(Clone, Serialize, Deserialize)]
pub struct BoardState {
    #[serde(with = "pairs")]
    standing: HashMap<String, AlarmState>,
    #[serde(with = "pairs")]
    areas: HashMap<String, Area>,
}

impl AlarmBoard {
    pub fn save_state(&self) -> BoardState {
        BoardState { standing: self.standing.clone(), areas: self.areas.clone() }
    }

    pub fn from_state(policy: AlarmPolicy, s: BoardState) -> Self {
        Self { policy, standing: s.standing, areas: s.areas }
    }

    pub fn new(policy: AlarmPolicy) -> Self {
        Self { policy, standing: HashMap::new(), areas: HashMap::new() }
    }

    fn window_ms(&self) -> i64 {
        self.policy.flood_minutes as i64 * 60_000
    }

    /// The alarms to send for `alert` at server time `now` (none, one, or a
    /// flood summary).
    pub fn raise(&mut self, alert: &Alert, now: i64) -> Vec<Alarm> {
        if self.policy.not_for_control_room.contains(&alert.rule) {
            return Vec::new();
        }
        let key = format!("{}/{}", alert.rule, alert.entity.id);
        let priority = self.policy.priorities[usize::from(alert.severity_id.min(6))];
        let area = alert.zone.clone().unwrap_or_else(|| "unknown".into());
        if let Some(s) = self.standing.get_mut(&key) {
            let shelved = s.shelved.as_ref().is_some_and(|sh| sh.until > now);
            if shelved || s.acknowledged.is_none() {
                // Standing unacknowledged, or shelved: counted, not sent again.
                s.repeats += 1;
                return Vec::new();
            }
        }
        let alarm = Alarm {
            key: key.clone(),
            priority,
            area: area.clone(),
            title: alert.title.clone(),
            summary: alert.summary.clone(),
            raised_at: now,
            kind: AlarmKind::Alert { alert: alert.id.clone(), rule: alert.rule.clone() },
        };
        self.stand(alarm.clone());
        let (limit, window) = (self.policy.flood_alarms, self.window_ms());
        let a = self.areas.entry(area.clone()).or_default();
        while a.recent.front().is_some_and(|t| *t <= now - window) {
            a.recent.pop_front();
        }
        a.recent.push_back(now);
        if a.flooding {
            a.suppressed += 1;
            return Vec::new();
        }
        if a.recent.len() > limit {
            a.flooding = true;
            a.suppressed = 1;
            let flood = Alarm {
                key: format!("flood/{area}"),
                priority: 1,
                area: area.clone(),
                title: format!("Alarm flood in {area}"),
                summary: format!(
                    "{} alarms in {} minutes in {area}; further alarms there are held on the board until the rate falls",
                    a.recent.len(),
                    self.policy.flood_minutes
                ),
                raised_at: now,
                kind: AlarmKind::FloodStarted { alarms_in_window: a.recent.len() },
            };
            self.stand(flood.clone());
            return vec![flood];
        }
        vec![alarm]
    }

    /// Puts `alarm` on the board unacknowledged, in place of one with its key.
    fn stand(&mut self, alarm: Alarm) {
        let state = AlarmState { alarm, repeats: 0, acknowledged: None, shelved: None };
        self.standing.insert(state.alarm.key.clone(), state);
    }

    /// Time passes: floods whose rate has fallen end with one summary each
    /// (it takes the flood alarm's place on the board), and acknowledged
    /// alarms quiet for `clear_acknowledged_minutes` leave the board.
    pub fn tick(&mut self, now: i64) -> Vec<Alarm> {
        let (limit, window) = (self.policy.flood_alarms, self.window_ms());
        let clear_before = now.saturating_sub(self.policy.clear_acknowledged_minutes as i64 * 60_000);
        if self.policy.clear_acknowledged_minutes > 0 {
            let areas = &self.areas;
            self.standing.retain(|key, s| {
                let flooding =
                    key.strip_prefix("flood/").is_some_and(|area| areas.get(area).is_some_and(|a| a.flooding));
                let shelved = s.shelved.as_ref().is_some_and(|sh| sh.until > now);
                flooding || shelved || s.acknowledged.as_ref().is_none_or(|(_, at)| *at > clear_before)
            });
        }
        let mut out = Vec::new();
        let mut areas: Vec<_> = self.areas.iter_mut().collect();
        areas.sort_by(|a, b| a.0.cmp(b.0));
        for (area, a) in areas {
            while a.recent.front().is_some_and(|t| *t <= now - window) {
                a.recent.pop_front();
            }
            if a.flooding && a.recent.len() <= limit / 2 {
                a.flooding = false;
                out.push(Alarm {
                    key: format!("flood/{area}"),
                    priority: 3,
                    area: area.clone(),
                    title: format!("Alarm flood in {area} is over"),
                    summary: format!("{} alarms were held on the board during the flood", a.suppressed),
                    raised_at: now,
                    kind: AlarmKind::FloodEnded { suppressed: a.suppressed },
                });
                a.suppressed = 0;
            }
        }
        for alarm in &out {
            self.stand(alarm.clone());
        }
        out
    }

    /// Acknowledges `key`; an alarm already acknowledged keeps its first
    /// acknowledgement (who saw it first, and when, is what the board shows).
    pub fn acknowledge(&mut self, key: &str, by: &str, now: i64) -> Result<&AlarmState, CorrelateError> {
        let s = self.standing.get_mut(key).ok_or_else(|| CorrelateError::NoSuchAlarm(key.to_owned()))?;
        s.acknowledged.get_or_insert_with(|| (by.to_owned(), now));
        Ok(s)
    }

    /// Shelves `key` until `until` (ms); a reason is required (ISA-18.2 §11).
    pub fn shelve(&mut self, key: &str, until: i64, by: &str, reason: &str) -> Result<&AlarmState, CorrelateError> {
        if reason.trim().is_empty() {
            return Err(CorrelateError::ReasonRequired);
        }
        let s = self.standing.get_mut(key).ok_or_else(|| CorrelateError::NoSuchAlarm(key.to_owned()))?;
        s.shelved = Some(Shelf { until, by: by.to_owned(), reason: reason.to_owned() });
        Ok(s)
    }

    /// Returns a shelved alarm to service before its shelf expires at `now`
    /// (ISA-18.2 unshelving: the maintenance ended early, or the shelf hid
    /// more than it should); a reason is required. Gives the shelf it ends.
    /// Its next raise is announced again.
    pub fn unshelve(&mut self, key: &str, reason: &str, now: i64) -> Result<(&AlarmState, Shelf), CorrelateError> {
        if reason.trim().is_empty() {
            return Err(CorrelateError::ReasonRequired);
        }
        let s = self.standing.get_mut(key).ok_or_else(|| CorrelateError::NoSuchAlarm(key.to_owned()))?;
        match s.shelved.take_if(|shelf| shelf.until > now) {
            Some(shelf) => Ok((s, shelf)),
            None => Err(CorrelateError::NotShelved(key.to_owned())),
        }
    }

    /// The board, highest priority first, then newest.
    pub fn list(&self) -> Vec<&AlarmState> {
        let mut v: Vec<_> = self.standing.values().collect();
        v.sort_by(|a, b| a.alarm.priority.cmp(&b.alarm.priority).then(b.alarm.raised_at.cmp(&a.alarm.raised_at)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Entity, EntityKind};

    fn alert(rule: &str, entity: &str, zone: &str, severity_id: u8) -> Alert {
        Alert {
            id: format!("{rule}:{entity}"),
            rule: rule.into(),
            title: format!("{rule} title"),
            severity_id,
            attack: vec![],
            time: 0,
            entity: Entity { kind: EntityKind::Asset, id: entity.into() },
            zone: Some(zone.into()),
            events: vec![1],
            summary: "s".into(),
        }
    }

    #[test]
    fn priority_dedup_ack_and_shelve() {
        let mut b = AlarmBoard::new(AlarmPolicy::default());
        let a = alert("r", "PLC-01", "cell-1", 5);
        let sent = b.raise(&a, 0);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].priority, 1, "critical → priority 1");
        assert!(b.raise(&a, 1).is_empty(), "standing unacknowledged: not sent again");
        assert_eq!(b.list()[0].repeats, 1);
        b.acknowledge("r/PLC-01", "op", 2).expect("ack");
        let again = b.acknowledge("r/PLC-01", "second-op", 3).expect("ack again");
        assert_eq!(again.acknowledged, Some(("op".to_owned(), 2)), "the first acknowledgement stands");
        assert_eq!(b.raise(&a, 3).len(), 1, "after acknowledgement it is raised again");
        assert!(matches!(b.shelve("r/PLC-01", 100, "op", " "), Err(CorrelateError::ReasonRequired)));
        b.shelve("r/PLC-01", 100, "op", "sensor under repair").expect("shelve");
        b.acknowledge("r/PLC-01", "op", 4).expect("ack");
        assert!(b.raise(&a, 50).is_empty(), "shelved until 100");
        assert_eq!(b.raise(&a, 101).len(), 1, "shelf expired");
        assert!(b.acknowledge("nope", "op", 0).is_err());
        // Unshelved early, the next raise is announced again.
        b.acknowledge("r/PLC-01", "op", 102).expect("ack");
        b.shelve("r/PLC-01", 1_000, "op", "sensor under repair").expect("shelve");
        assert!(b.raise(&a, 200).is_empty(), "shelved until 1000");
        assert!(matches!(b.unshelve("r/PLC-01", "", 300), Err(CorrelateError::ReasonRequired)));
        assert!(matches!(b.unshelve("nope", "repaired", 300), Err(CorrelateError::NoSuchAlarm(_))));
        let (state, shelf) = b.unshelve("r/PLC-01", "repaired early", 300).expect("unshelve");
        assert_eq!((state.shelved.is_none(), shelf.until, shelf.reason.as_str()), (true, 1_000, "sensor under repair"));
        assert!(matches!(b.unshelve("r/PLC-01", "again", 301), Err(CorrelateError::NotShelved(_))));
        assert_eq!(b.raise(&a, 400).len(), 1, "in service again");
        b.acknowledge("r/PLC-01", "op", 401).expect("ack");
        b.shelve("r/PLC-01", 500, "op", "short").expect("shelve");
        let expired = b.unshelve("r/PLC-01", "too late", 500);
        assert!(matches!(expired, Err(CorrelateError::NotShelved(_))), "a shelf that has run out is no shelf");
    }

    #[test]
    fn rules_for_the_soc_only_raise_no_alarm() {
        let mut b = AlarmBoard::new(AlarmPolicy::default());
        assert!(b.raise(&alert("custos-own-account-locked", "qa1", "unknown", 4), 0).is_empty());
        assert!(b.list().is_empty(), "not on the board either");
        let mut every = AlarmBoard::new(AlarmPolicy { not_for_control_room: vec![], ..AlarmPolicy::default() });
        assert_eq!(every.raise(&alert("custos-own-account-locked", "qa1", "unknown", 4), 0).len(), 1);
    }

    #[test]
    fn a_flood_is_one_summary_then_an_end() {
        let policy = AlarmPolicy { flood_alarms: 3, flood_minutes: 1, ..AlarmPolicy::default() };
        let mut b = AlarmBoard::new(policy);
        let mut sent = Vec::new();
        for i in 0..20 {
            sent.extend(b.raise(&alert("r", &format!("A{i}"), "cell-1", 4), i * 1000));
        }
        // Another area is not affected.
        sent.extend(b.raise(&alert("r", "B", "lab", 4), 20_000));
        let kinds: Vec<&AlarmKind> = sent.iter().map(|a| &a.kind).collect();
        assert_eq!(sent.len(), 5, "{kinds:?}");
        assert!(matches!(sent[3].kind, AlarmKind::FloodStarted { alarms_in_window: 4 }));
        assert_eq!(sent[4].area, "lab");
        let flood = |b: &AlarmBoard| b.list().into_iter().find(|s| s.alarm.key == "flood/cell-1").cloned();
        assert!(matches!(flood(&b).map(|s| s.alarm.kind), Some(AlarmKind::FloodStarted { .. })), "it stands");
        assert!(b.tick(30_000).is_empty(), "still flooding");
        let end = b.tick(200_000);
        assert_eq!(end.len(), 1);
        assert_eq!(end[0].kind, AlarmKind::FloodEnded { suppressed: 17 });
        assert_eq!(flood(&b).map(|s| s.alarm), Some(end[0].clone()), "the end takes the flood alarm's place");
        assert_eq!(b.raise(&alert("r", "C", "cell-1", 4), 200_001).len(), 1, "normal again");
    }

    /// Alerts never return to normal: an acknowledged alarm leaves the board
    /// once quiet for the policy's time; one unacknowledged, shelved, or
    /// standing for a flood still going on stays.
    #[test]
    fn acknowledged_alarms_leave_the_board_once_quiet() {
        let policy =
            AlarmPolicy { flood_alarms: 2, flood_minutes: 1, clear_acknowledged_minutes: 1, ..AlarmPolicy::default() };
        let mut b = AlarmBoard::new(policy);
        let keys = |b: &AlarmBoard| {
            let mut k: Vec<String> = b.list().into_iter().map(|s| s.alarm.key.clone()).collect();
            k.sort();
            k
        };
        b.raise(&alert("r", "acked", "lab", 4), 0);
        b.raise(&alert("r", "open", "office", 4), 0);
        b.raise(&alert("r", "shelved", "yard", 4), 0);
        b.acknowledge("r/acked", "op", 1_000).expect("ack");
        b.acknowledge("r/shelved", "op", 1_000).expect("ack");
        b.shelve("r/shelved", 500_000, "op", "maintenance").expect("shelve");
        for i in 0..3 {
            b.raise(&alert("door", &format!("D{i}"), "cell-1", 4), 10_000 + i);
        }
        b.acknowledge("flood/cell-1", "op", 11_000).expect("the flood alarm is on the board");
        b.tick(60_999);
        assert!(keys(&b).contains(&"r/acked".to_owned()), "not yet a minute since its acknowledgement");
        // Cell-1 keeps flooding: its flood alarm stays though acknowledged.
        b.raise(&alert("door", "D9", "cell-1", 4), 65_000);
        b.raise(&alert("door", "D8", "cell-1", 4), 66_000);
        b.tick(71_001);
        assert_eq!(
            keys(&b),
            ["door/D0", "door/D1", "door/D2", "door/D8", "door/D9", "flood/cell-1", "r/open", "r/shelved"]
        );
        // Once the shelf has expired the acknowledged alarm goes too; the flood's end stands.
        assert_eq!(b.tick(500_001).len(), 1, "cell-1's flood ended");
        assert_eq!(keys(&b), ["door/D0", "door/D1", "door/D2", "door/D8", "door/D9", "flood/cell-1", "r/open"]);
        // Raised again after it left, an alarm is new and sent.
        assert_eq!(b.raise(&alert("r", "acked", "lab", 4), 500_002).len(), 1);
    }
}
