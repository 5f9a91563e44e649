//! In-memory read views the API serves from: recent events, alerts and the
//! incident book. They are derived from the ledger and rebuilt from it on start.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, RwLock};

use correlate::{Alert, Incident, IncidentBook};
use ingest::{DeadLetter, Event};
use ledger::{LedgerError, RecordKind, record};

/// An event with its ledger index.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub index: u64,
    pub item: Arc<T>,
}

pub struct Views {
    cap: usize,
    events: RwLock<VecDeque<Stored<Event>>>,
    dead_letters: RwLock<VecDeque<Stored<DeadLetter>>>,
    alerts: RwLock<VecDeque<Stored<Alert>>>,
    pub incidents: RwLock<IncidentBook>,
    /// Retention policies and legal holds, as recorded (newest last).
    pub retention: RwLock<Vec<serde_json::Value>>,
    /// Control-room alarms standing (not rebuilt from the ledger on start).
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

impl Views {
    pub fn new(cap: usize, group_window_ms: i64, alarm_policy: correlate::AlarmPolicy) -> Self {
        Self {
            cap: cap.max(1),
            events: RwLock::new(VecDeque::new()),
            dead_letters: RwLock::new(VecDeque::new()),
            alerts: RwLock::new(VecDeque::new()),
            incidents: RwLock::new(IncidentBook::new(group_window_ms)),
            retention: RwLock::new(Vec::new()),
            alarms: std::sync::Mutex::new(correlate::AlarmBoard::new(alarm_policy)),
        }
    }

    /// Rebuilds the views from the ledger at `dir`, handing each event and
    /// alert to `on_event` / `on_alert` too. Returns the records read.
    pub fn rebuild(
        &self,
        dir: &Path,
        mut on_event: impl FnMut(u64, &Event),
        mut on_alert: impl FnMut(&Alert),
    ) -> Result<u64, LedgerError> {
        let mut bad = 0u64;
        let n = ledger::for_each_record(dir, |index, bytes| {
            let Ok(rec) = record::decode(bytes) else {
                bad += 1;
                return;
            };
            match rec.kind {
                RecordKind::Event => match serde_json::from_value::<Event>(rec.data) {
                    Ok(e) => {
                        on_event(index, &e);
                        self.add_events([Stored { index, item: Arc::new(e) }]);
                    }
                    Err(_) => bad += 1,
                },
                RecordKind::Deadletter => match serde_json::from_value::<DeadLetter>(rec.data) {
                    Ok(d) => self.add_dead_letters([Stored { index, item: Arc::new(d) }]),
                    Err(_) => bad += 1,
                },
                RecordKind::Alert => match serde_json::from_value::<Alert>(rec.data) {
                    Ok(a) => {
                        on_alert(&a);
                        self.add_alerts([Stored { index, item: Arc::new(a) }]);
                    }
                    Err(_) => bad += 1,
                },
                RecordKind::Incident => match serde_json::from_value::<Incident>(rec.data) {
                    Ok(i) => self.incidents.write().unwrap_or_else(|e| e.into_inner()).restore(i),
                    Err(_) => bad += 1,
                },
                RecordKind::Retention | RecordKind::LegalHold => {
                    let mut data = rec.data;
                    if let Some(o) = data.as_object_mut() {
                        o.insert("index".into(), index.into());
                    }
                    self.retention.write().unwrap_or_else(|e| e.into_inner()).push(data);
                }
                _ => {}
            }
        })?;
        if bad > 0 {
            tracing::warn!(records = bad, "ledger records that this version cannot read were skipped in the views");
        }
        Ok(n)
    }

    pub fn add_events(&self, items: impl IntoIterator<Item = Stored<Event>>) {
        push_capped(&self.events, self.cap, items);
    }
    pub fn add_dead_letters(&self, items: impl IntoIterator<Item = Stored<DeadLetter>>) {
        push_capped(&self.dead_letters, self.cap, items);
    }
    pub fn add_alerts(&self, items: impl IntoIterator<Item = Stored<Alert>>) {
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
    pub fn alerts(&self, limit: usize) -> Vec<Stored<Alert>> {
        let q = self.alerts.read().unwrap_or_else(|e| e.into_inner());
        q.iter().rev().take(limit).cloned().collect()
    }
}
