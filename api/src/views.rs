//! In-memory read views the API serves from: recent events, alerts and the
//! incident book. They are derived from the ledger and rebuilt from it on start.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use correlate::{Alert, Incident, IncidentBook};
use ingest::{DeadLetter, Event};
use ledger::{Ledger, RecordKind, record};
use serde::{Deserialize, Serialize};

/// An event with its ledger index.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub index: u64,
    pub item: Arc<T>,
}

pub struct Views {
    cap: usize,
    group_window_ms: i64,
    alarm_policy: correlate::AlarmPolicy,
    events: RwLock<VecDeque<Stored<Event>>>,
    dead_letters: RwLock<VecDeque<Stored<DeadLetter>>>,
    alerts: RwLock<VecDeque<Stored<Alert>>>,
    /// Every alert's ledger index by its id (about 100 bytes an alert): an
    /// incident names its alerts by id, and its timeline reads the older ones
    /// back from the ledger.
    alert_index: RwLock<HashMap<String, u64>>,
    /// What readers see: each incident as its newest version in the
    /// ledger, shown once its alerts are (see [`Views::show_incidents`]).
    pub incidents: RwLock<IncidentBook>,
    /// The ledger index of each version in `incidents`: a writer that wakes
    /// late does not put back an older version over a newer one.
    shown_at: Mutex<HashMap<String, u64>>,
    /// What writers change, in turn (see [`Views::incident_turn`]); ahead of
    /// `incidents` by the versions on their way to the ledger.
    working: Mutex<IncidentBook>,
    incident_writes: tokio::sync::Mutex<()>,
    /// Retention policies and legal holds, as recorded (newest last).
    pub retention: RwLock<Vec<serde_json::Value>>,
    /// Control-room alarms standing, with their acknowledgements and shelves.
    pub alarms: std::sync::Mutex<correlate::AlarmBoard>,
}

fn push_capped<T>(q: &RwLock<VecDeque<T>>, cap: usize, items: impl IntoIterator<Item = T>) {
    let mut q = q.write().unwrap_or_else(|e| e.into_inner());
    for item in items {
        if q.len() == cap {
            q.pop_front();
        }
        q.push_back(item);
    }
}

fn indices_of<T>(q: &RwLock<VecDeque<Stored<T>>>) -> Vec<u64> {
    q.read().unwrap_or_else(|e| e.into_inner()).iter().map(|s| s.index).collect()
}

/// The records at `indices`, each read as the views read a `kind` record.
fn read_back<T: serde::de::DeserializeOwned>(
    ledger: &Ledger,
    indices: &[u64],
    kind: RecordKind,
) -> Result<VecDeque<Stored<T>>, String> {
    if !indices.is_sorted_by(|a, b| a < b) {
        return Err(format!("the recent {kind:?} records are not named in index order"));
    }
    let mut items = VecDeque::with_capacity(indices.len());
    let mut failed = None;
    ledger
        .records_at(indices, |index, bytes| match record::decode_as::<T>(&bytes) {
            Ok(r) if r.kind == kind => items.push_back(Stored { index, item: Arc::new(r.data) }),
            _ => {
                failed.get_or_insert(index);
            }
        })
        .map_err(|e| format!("read the recent {kind:?} records: {e}"))?;
    match failed {
        Some(index) => Err(format!("record {index} is not the {kind:?} record the snapshot names")),
        None => Ok(items),
    }
}

/// How far a replay of the ledger into the views has come.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplayProgress {
    /// The last record's ledger time: the board ticks there when the replay ends.
    pub last_recorded: Option<i64>,
    /// Records this version could not read.
    pub bad: u64,
}

/// The views' contents as written to a state snapshot. The recent events,
/// dead letters and alerts are named by ledger index and read back from the
/// ledger ([`ViewsState::read_recent`]): their bodies are in the ledger
/// already, and were most of a snapshot's bytes.
#[derive(Serialize, Deserialize)]
pub struct ViewsState {
    events: Vec<u64>,
    dead_letters: Vec<u64>,
    alerts: Vec<u64>,
    /// Sorted by id, so equal views write equal bytes.
    alert_index: Vec<(String, u64)>,
    incidents: correlate::BookState,
    retention: Vec<serde_json::Value>,
    alarms: correlate::BoardState,
}

/// See [`Views::incident_turn`].
pub struct IncidentTurn<'a> {
    _order: tokio::sync::MutexGuard<'a, ()>,
    book: &'a Mutex<IncidentBook>,
}

impl IncidentTurn<'_> {
    /// The writers' book, to change. Readers see a changed version once it
    /// is ledgered and shown ([`Views::show_incidents`]).
    pub fn book(&self) -> MutexGuard<'_, IncidentBook> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Submits the changed versions (and whatever goes with them) and ends
    /// the turn; durability is awaited outside it.
    pub async fn submit(
        self,
        ledger: &Ledger,
        records: Vec<Vec<u8>>,
    ) -> Result<ledger::Submitted, ledger::LedgerError> {
        ledger.submit(records).await
    }
}

/// A snapshot's recent lists as read back from the ledger.
pub struct Recent {
    events: VecDeque<Stored<Event>>,
    dead_letters: VecDeque<Stored<DeadLetter>>,
    alerts: VecDeque<Stored<Alert>>,
}

impl ViewsState {
    /// Reads the recent records the state names from `ledger`. Fails, and
    /// the snapshot is passed over, when one cannot be read or is not of
    /// its list's kind.
    pub fn read_recent(&self, ledger: &Ledger) -> Result<Recent, String> {
        Ok(Recent {
            events: read_back(ledger, &self.events, RecordKind::Event)?,
            dead_letters: read_back(ledger, &self.dead_letters, RecordKind::Deadletter)?,
            alerts: read_back(ledger, &self.alerts, RecordKind::Alert)?,
        })
    }
}

/// Applies an `alarm.acknowledge`, `alarm.shelve` or `alarm.unshelve` audit
/// record to the board.
/// An alarm no longer standing (raised anew since) is left as it is.
fn replay_alarm_action(board: &mut correlate::AlarmBoard, audit: &serde_json::Value, recorded_at: i64) {
    let (Some(action), Some(actor), Some(key)) =
        (audit["action"].as_str(), audit["actor"].as_str(), audit["details"]["key"].as_str())
    else {
        return;
    };
    let _not_standing = match action {
        "alarm.acknowledge" => {
            let at = audit["details"]["acknowledged_at"].as_i64().unwrap_or(recorded_at);
            board.acknowledge(key, actor, at).map(drop)
        }
        "alarm.shelve" => match audit["details"]["until"].as_i64() {
            Some(until) => board.shelve(key, until, actor, audit["reason"].as_str().unwrap_or_default()).map(drop),
            None => Ok(()),
        },
        "alarm.unshelve" => {
            let at = audit["details"]["unshelved_at"].as_i64().unwrap_or(recorded_at);
            board.unshelve(key, audit["reason"].as_str().unwrap_or_default(), at).map(drop)
        }
        _ => Ok(()),
    };
}

impl Views {
    pub fn new(cap: usize, group_window_ms: i64, alarm_policy: correlate::AlarmPolicy) -> Self {
        Self {
            cap: cap.max(1),
            group_window_ms,
            alarm_policy: alarm_policy.clone(),
            events: RwLock::new(VecDeque::new()),
            dead_letters: RwLock::new(VecDeque::new()),
            alerts: RwLock::new(VecDeque::new()),
            alert_index: RwLock::new(HashMap::new()),
            incidents: RwLock::new(IncidentBook::new(group_window_ms)),
            shown_at: Mutex::new(HashMap::new()),
            working: Mutex::new(IncidentBook::new(group_window_ms)),
            incident_writes: tokio::sync::Mutex::new(()),
            retention: RwLock::new(Vec::new()),
            alarms: std::sync::Mutex::new(correlate::AlarmBoard::new(alarm_policy)),
        }
    }

    /// A turn at changing incidents: held from a change to the book until
    /// its new versions are submitted to the ledger, so versions are
    /// ledgered in the order they were made. The latest version ledgered is
    /// the one a replay, search and SQL take: a transition overtaking a
    /// batch of alerts on its way to the ledger would otherwise be undone by
    /// the older version behind it.
    pub async fn incident_turn(&self) -> IncidentTurn<'_> {
        IncidentTurn { _order: self.incident_writes.lock().await, book: &self.working }
    }

    /// Shows readers incident versions now in the ledger, each with its
    /// ledger index, unless a newer version is shown already. An incident
    /// is listed only once it is evidence, and after its alerts are in the
    /// views: its timeline then holds every alert it names.
    pub fn show_incidents(&self, versions: impl IntoIterator<Item = (u64, Incident)>) {
        let mut shown_at = self.shown_at.lock().unwrap_or_else(|e| e.into_inner());
        let mut book = self.incidents.write().unwrap_or_else(|e| e.into_inner());
        for (index, incident) in versions {
            if shown_at.get(&incident.id).is_some_and(|&at| at > index) {
                continue;
            }
            shown_at.insert(incident.id.clone(), index);
            book.restore(incident);
        }
    }

    /// Files alerts as the pipeline does and shows their incidents at once,
    /// with no ledger: how tests set up incidents to work on.
    #[doc(hidden)]
    pub async fn file_unledgered(&self, alerts: &[Alert]) -> correlate::Filed {
        let filed = self.incident_turn().await.book().file_all(alerts);
        self.show_incidents(filed.changed.iter().map(|i| (0, i.clone())));
        filed
    }

    /// What the views hold, for a state snapshot.
    pub fn save_state(&self) -> ViewsState {
        let mut alert_index: Vec<(String, u64)> =
            self.alert_index.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect();
        alert_index.sort_unstable();
        ViewsState {
            events: indices_of(&self.events),
            dead_letters: indices_of(&self.dead_letters),
            alerts: indices_of(&self.alerts),
            alert_index,
            incidents: self.incidents.read().unwrap_or_else(|e| e.into_inner()).save_state(),
            retention: self.retention.read().unwrap_or_else(|e| e.into_inner()).clone(),
            alarms: self.alarms.lock().unwrap_or_else(|e| e.into_inner()).save_state(),
        }
    }

    /// Puts back what [`Self::save_state`] saved, with its recent records
    /// as read back, in place of what the views hold.
    pub fn restore_state(&self, s: ViewsState, recent: Recent) {
        *self.events.write().unwrap_or_else(|e| e.into_inner()) = recent.events;
        *self.dead_letters.write().unwrap_or_else(|e| e.into_inner()) = recent.dead_letters;
        *self.alerts.write().unwrap_or_else(|e| e.into_inner()) = recent.alerts;
        *self.alert_index.write().unwrap_or_else(|e| e.into_inner()) = s.alert_index.into_iter().collect();
        *self.working.lock().unwrap_or_else(|e| e.into_inner()) =
            IncidentBook::from_state(self.group_window_ms, s.incidents.clone());
        *self.incidents.write().unwrap_or_else(|e| e.into_inner()) =
            IncidentBook::from_state(self.group_window_ms, s.incidents);
        self.shown_at.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.retention.write().unwrap_or_else(|e| e.into_inner()) = s.retention;
        *self.alarms.lock().unwrap_or_else(|e| e.into_inner()) =
            correlate::AlarmBoard::from_state(self.alarm_policy.clone(), s.alarms);
    }

    /// Is the alert with this id in the ledger (as far as the views have read)?
    pub fn has_alert(&self, id: &str) -> bool {
        self.alert_index.read().unwrap_or_else(|e| e.into_inner()).contains_key(id)
    }

    /// The ids of every alert the views have read from the ledger.
    pub fn alert_ids(&self) -> std::collections::HashSet<String> {
        self.alert_index.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// Applies one ledger record to the views (what a start does for each
    /// record, in order): events and alerts to the recent lists, incident
    /// versions to the book, alerts and alarm actions to the board, replayed
    /// as it ran (each alert raised at the time it was ledgered, so floods
    /// start and end as they did). Returns the event, for the engine.
    pub(crate) fn apply(&self, index: u64, bytes: &[u8], progress: &mut ReplayProgress) -> Option<Arc<Event>> {
        // Events, nearly every record, are read straight into the event
        // type, not through a JSON tree first (twice the work).
        if let Some((RecordKind::Event, at)) = record::peek(bytes) {
            progress.last_recorded = Some(at);
            return match record::decode_as::<Event>(bytes) {
                Ok(r) => {
                    let e = Arc::new(r.data);
                    self.add_events([Stored { index, item: e.clone() }]);
                    Some(e)
                }
                Err(_) => {
                    progress.bad += 1;
                    None
                }
            };
        }
        let Ok(rec) = record::decode(bytes) else {
            progress.bad += 1;
            return None;
        };
        let at = rec.recorded_at;
        progress.last_recorded = Some(at);
        let mut bad = false;
        match rec.kind {
            RecordKind::Event => match serde_json::from_value::<Event>(rec.data) {
                Ok(e) => {
                    let e = Arc::new(e);
                    self.add_events([Stored { index, item: e.clone() }]);
                    return Some(e);
                }
                Err(_) => bad = true,
            },
            RecordKind::Deadletter => match serde_json::from_value::<DeadLetter>(rec.data) {
                Ok(d) => self.add_dead_letters([Stored { index, item: Arc::new(d) }]),
                Err(_) => bad = true,
            },
            RecordKind::Alert => match serde_json::from_value::<Alert>(rec.data) {
                Ok(a) => {
                    let mut board = self.alarms.lock().unwrap_or_else(|e| e.into_inner());
                    board.tick(at);
                    board.raise(&a, at);
                    drop(board);
                    self.add_alerts([Stored { index, item: Arc::new(a) }]);
                }
                Err(_) => bad = true,
            },
            RecordKind::Incident => match serde_json::from_value::<Incident>(rec.data) {
                Ok(i) => {
                    self.working.lock().unwrap_or_else(|e| e.into_inner()).restore(i.clone());
                    self.show_incidents([(index, i)]);
                }
                Err(_) => bad = true,
            },
            RecordKind::Retention | RecordKind::LegalHold => {
                let mut data = rec.data;
                if let Some(o) = data.as_object_mut() {
                    o.insert("index".into(), index.into());
                }
                self.retention.write().unwrap_or_else(|e| e.into_inner()).push(data);
            }
            RecordKind::Audit => {
                replay_alarm_action(&mut self.alarms.lock().unwrap_or_else(|e| e.into_inner()), &rec.data, at)
            }
            _ => {}
        }
        progress.bad += u64::from(bad);
        None
    }

    pub fn add_events(&self, items: impl IntoIterator<Item = Stored<Event>>) {
        push_capped(&self.events, self.cap, items);
    }
    pub fn add_dead_letters(&self, items: impl IntoIterator<Item = Stored<DeadLetter>>) {
        push_capped(&self.dead_letters, self.cap, items);
    }
    pub fn add_alerts(&self, items: impl IntoIterator<Item = Stored<Alert>>) {
        let items: Vec<Stored<Alert>> = items.into_iter().collect();
        let mut by_id = self.alert_index.write().unwrap_or_else(|e| e.into_inner());
        by_id.extend(items.iter().map(|a| (a.item.id.clone(), a.index)));
        drop(by_id);
        push_capped(&self.alerts, self.cap, items);
    }

    /// Newest first, filtered, at most `limit`.
    pub fn events(&self, limit: usize, keep: impl Fn(&Event) -> bool) -> Vec<Stored<Event>> {
        let q = self.events.read().unwrap_or_else(|e| e.into_inner());
        q.iter().rev().filter(|s| keep(&s.item)).take(limit).cloned().collect()
    }
    pub fn event(&self, index: u64) -> Option<Stored<Event>> {
        let q = self.events.read().unwrap_or_else(|e| e.into_inner());
        let pos = q.binary_search_by_key(&index, |s| s.index).ok()?;
        q.get(pos).cloned()
    }
    pub fn dead_letters(&self, limit: usize) -> Vec<Stored<DeadLetter>> {
        let q = self.dead_letters.read().unwrap_or_else(|e| e.into_inner());
        q.iter().rev().take(limit).cloned().collect()
    }
    /// The alert with `id`: from the recent ones, else its ledger index only.
    pub fn alert(&self, id: &str) -> Option<Result<Stored<Alert>, u64>> {
        let index = *self.alert_index.read().unwrap_or_else(|e| e.into_inner()).get(id)?;
        let q = self.alerts.read().unwrap_or_else(|e| e.into_inner());
        Some(q.binary_search_by_key(&index, |s| s.index).ok().and_then(|pos| q.get(pos).cloned()).ok_or(index))
    }
    pub fn alerts(&self, limit: usize) -> Vec<Stored<Alert>> {
        let q = self.alerts.read().unwrap_or_else(|e| e.into_inner());
        q.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use correlate::{AlarmPolicy, Entity, EntityKind};
    use ledger::{Ledger, LedgerOptions, NoteSigner};
    use serde_json::json;

    fn open_ledger(dir: &std::path::Path) -> Ledger {
        let origin = "custos.test/views";
        let key = NoteSigner::generate(origin).expect("key");
        Ledger::open(dir, origin, key, LedgerOptions::default()).expect("ledger").0
    }

    fn alert(rule: &str, entity: &str, zone: &str, n: u64) -> Alert {
        Alert {
            id: format!("{rule}:{n}"),
            rule: rule.into(),
            title: rule.into(),
            severity_id: 5,
            attack: Vec::new(),
            time: 0,
            entity: Entity { kind: EntityKind::Asset, id: entity.into() },
            zone: Some(zone.into()),
            events: vec![n],
            summary: String::new(),
        }
    }

    /// Two changes to one incident, the first slow to reach the ledger: the
    /// second waits its turn, so the versions are ledgered in the order they
    /// were made and a replay of the ledger ends with the newest.
    #[tokio::test]
    async fn incident_versions_are_ledgered_in_the_order_they_were_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = open_ledger(dir.path());
        let (views, l) = (Arc::new(Views::new(10, 3_600_000, AlarmPolicy::default())), Arc::new(l));
        let id = views.incident_turn().await.book().file(&alert("r", "PLC-01", "cell-1", 1)).id;
        let version = |i: &Incident| ledger::record::encode(RecordKind::Incident, 0, i).expect("encode");
        let (go, held) = tokio::sync::oneshot::channel::<()>();
        let (in_turn, first_changed) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let (views, l, id) = (views.clone(), l.clone(), id.clone());
            async move {
                let turn = views.incident_turn().await;
                let v = turn.book().add_note(&id, "a", "first", 1).expect("note");
                in_turn.send(()).expect("told");
                held.await.expect("go");
                turn.submit(&l, vec![version(&v)]).await.expect("submit").durable().await.expect("durable")
            }
        });
        first_changed.await.expect("the first change is made");
        let second = tokio::spawn({
            let (views, l, id) = (views.clone(), l.clone(), id.clone());
            async move {
                let turn = views.incident_turn().await;
                let v = turn.book().add_note(&id, "b", "second", 2).expect("note");
                turn.submit(&l, vec![version(&v)]).await.expect("submit").durable().await.expect("durable")
            }
        });
        // One thread: the second runs now, until it can only wait.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(views.working.lock().expect("book").get(&id).map(|i| i.notes.len()), Some(1), "the second waits");
        go.send(()).expect("go");
        let (a, b) = (first.await.expect("first"), second.await.expect("second"));
        assert!(a.start < b.start, "ledgered in the order made: {a:?} {b:?}");
        let mut replayed = IncidentBook::new(3_600_000);
        for index in a.start..b.end {
            let r = ledger::record::decode_as::<Incident>(&l.record(index).expect("record")).expect("incident");
            replayed.restore(r.data);
        }
        assert_eq!(replayed.get(&id).map(|i| i.notes.len()), Some(2));
    }

    /// Readers see an incident version once it is ledgered, and a writer
    /// that wakes late with an older version does not put it back.
    #[tokio::test]
    async fn readers_see_ledgered_versions_only_the_newest() {
        let views = Views::new(10, 3_600_000, AlarmPolicy::default());
        let shown = |id: &str| views.incidents.read().expect("book").get(id).map(|i| i.notes.len());
        let first = views.incident_turn().await.book().file(&alert("r", "PLC-01", "cell-1", 1));
        assert_eq!(shown(&first.id), None, "not listed before it is ledgered");
        assert_eq!(views.incidents.read().expect("book").list(None).count(), 0);
        let noted = views.incident_turn().await.book().add_note(&first.id, "a", "seen", 2).expect("note");
        views.show_incidents([(8, noted)]);
        assert_eq!(shown(&first.id), Some(1));
        views.show_incidents([(5, first.clone())]);
        assert_eq!(shown(&first.id), Some(1), "the older version, ledgered first, stays behind");
        assert_eq!(views.incidents.read().expect("book").list(None).count(), 1);
    }

    /// After a restart the board is the one the control room left: standing
    /// alarms with their repeats, the first acknowledgement at its own time, a
    /// shelf, and a flood that ended before the stop is not ended twice.
    #[tokio::test]
    async fn the_alarm_board_is_rebuilt_from_the_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = open_ledger(dir.path());
        let rec = |kind, at, data: serde_json::Value| ledger::record::encode(kind, at, &data).expect("encode");
        let raised = |at, a: Alert| rec(RecordKind::Alert, at, serde_json::to_value(a).expect("json"));
        let acted = |at, action: &str, reason: &str, details| {
            rec(RecordKind::Audit, at, json!({"actor": "op", "action": action, "reason": reason, "details": details}))
        };
        let records = vec![
            raised(1_000, alert("ids", "PLC-01", "cell-1", 1)),
            acted(1_600, "alarm.acknowledge", "", json!({"key": "ids/PLC-01", "acknowledged_at": 1_500})),
            acted(1_700, "alarm.acknowledge", "", json!({"key": "ids/PLC-01", "acknowledged_at": 1_650})),
            acted(1_800, "alarm.acknowledge", "", json!({"key": "gone/X"})),
            raised(2_000, alert("sweep", "LAPTOP-7", "lab", 2)),
            acted(2_100, "alarm.shelve", "vendor audit", json!({"key": "sweep/LAPTOP-7", "until": 9_000_000})),
            raised(2_200, alert("sweep", "LAPTOP-7", "lab", 3)),
            // Shelved, then back in service early.
            raised(2_300, alert("valve", "V1", "lab", 4)),
            acted(2_310, "alarm.shelve", "valve swap", json!({"key": "valve/V1", "until": 9_000_000})),
            acted(2_400, "alarm.unshelve", "swapped", json!({"key": "valve/V1", "unshelved_at": 2_390})),
            // Three alarms in a minute flood cell-2 (policy: more than two).
            raised(3_000, alert("door", "D1", "cell-2", 4)),
            raised(3_001, alert("door", "D2", "cell-2", 5)),
            raised(3_002, alert("door", "D3", "cell-2", 6)),
            // Ten minutes later, the last record before the stop.
            acted(603_002, "login", "", json!({})),
        ];
        l.append(records).await.expect("append");

        let policy = AlarmPolicy { flood_alarms: 2, flood_minutes: 1, ..AlarmPolicy::default() };
        let views = Views::new(10, 3_600_000, policy);
        let mut engine = correlate::Engine::new(Default::default(), Default::default());
        let mut replay = crate::state::Replay::new(&views, &mut engine);
        replay.catch_up(&l, l.size()).expect("replay");
        let last_tick = replay.finish().last_tick;
        // The flood ended after the last alert: the last tick found it, and
        // only the outbox can tell whether it was announced before the stop.
        let ended: Vec<_> = last_tick.iter().map(|a| (a.key.as_str(), &a.kind)).collect();
        assert_eq!(ended, [("flood/cell-2", &correlate::AlarmKind::FloodEnded { suppressed: 1 })]);
        let mut board = views.alarms.lock().expect("board");
        let by_key = |b: &correlate::AlarmBoard, k: &str| b.list().into_iter().find(|s| s.alarm.key == k).cloned();
        let ids = by_key(&board, "ids/PLC-01").expect("ids alarm standing");
        assert_eq!(ids.acknowledged, Some(("op".to_owned(), 1_500)), "the first acknowledgement, at the board's time");
        let sweep = by_key(&board, "sweep/LAPTOP-7").expect("sweep alarm standing");
        assert_eq!(sweep.shelved.as_ref().map(|s| (s.until, s.reason.as_str())), Some((9_000_000, "vendor audit")));
        assert_eq!(sweep.repeats, 1, "raised again while shelved");
        assert!(by_key(&board, "gone/X").is_none());
        assert_eq!(by_key(&board, "valve/V1").map(|v| v.shelved.is_none()), Some(true), "unshelved");
        assert_eq!(board.list().len(), 7, "six alarms and the flood's end");
        assert!(board.tick(603_003).is_empty(), "the flood ended before the stop, and is not ended again");
        assert_eq!(board.raise(&alert("door", "D4", "cell-2", 7), 603_004).len(), 1, "cell-2 is not flooding");
    }
}
