//! Collectors' clocks, as evidence. A collector stamps what it receives (and
//! RFC 3164 senders' stamps carry no year or zone), so the times of the
//! records it sends are as good as its clock. When a collector's clock stays
//! off the core's, one alert is ledgered (and filed as an incident for the
//! SOC and quality; no control-room alarm by default): the audit trail then
//! says from when its records' times are doubtful. Prometheus' warning
//! (`CustosCollectorClockOff`) goes away with Prometheus' retention; this does not.

use std::collections::HashMap;

use correlate::{Alert, Entity, EntityKind};
use ingest::heartbeat::Heartbeat;

use crate::metrics::Heard;

/// The rule name of the alert about a collector's clock.
pub const RULE: &str = "custos-collector-clock-off";
/// Off by more than this, ms (either way)...
pub const MAX_OFFSET_MS: i64 = 10_000;
/// ...for this long, ms, between the core's reading of the first heartbeat
/// found off and of the newest (a silent collector's does not grow).
pub const FOR_MS: i64 = 600_000;

/// Since when a collector's clock has been off, when `beat`, read at
/// `heard_at`, follows its kept heartbeat: the run of heartbeats off goes
/// on (whichever way), starts with this one, or ends (on time, or stopped).
/// The offset includes the bus's delay, so a backlog the core catches up on
/// reads as a clock behind: its heartbeats are all read within moments, so
/// their run never spans [`FOR_MS`].
pub fn off_since(kept: Option<&Heard>, beat: &Heartbeat, heard_at: i64) -> Option<i64> {
    let off = !beat.stopped && beat.sent_at.saturating_sub(heard_at).saturating_abs() > MAX_OFFSET_MS;
    off.then(|| kept.and_then(|k| k.clock_off_since).unwrap_or(heard_at))
}

/// Alerts once for each run of a collector's heartbeats off (see
/// [`Heard::clock_off_since`]) that has lasted [`FOR_MS`]: again only after
/// its clock came back, or it stopped, and went off again.
#[derive(Debug, Default)]
pub struct ClockWatch {
    /// By collector (at most those [`crate::metrics::Collectors`] keeps):
    /// the start of the run alerted.
    alerted: HashMap<String, i64>,
}

impl ClockWatch {
    /// The alerts to raise at `now` (Unix ms) for the newest heartbeats.
    pub fn check(&mut self, collectors: &[Heard], now: i64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for c in collectors {
            let name = &c.beat.collector;
            let Some(since) = c.clock_off_since else {
                self.alerted.remove(name);
                continue;
            };
            if c.heard_at.saturating_sub(since) >= FOR_MS && self.alerted.get(name) != Some(&since) {
                self.alerted.insert(name.clone(), since);
                alerts.push(alert(name, c.clock_offset_ms(), since, now));
            }
        }
        alerts
    }
}

fn alert(collector: &str, offset_ms: i64, since: i64, now: i64) -> Alert {
    let way = if offset_ms > 0 { "ahead of" } else { "behind" };
    Alert {
        id: format!("{RULE}:{collector}:{since}"),
        rule: RULE.into(),
        title: "A collector's clock is off the core's: the times it stamps are doubtful".into(),
        severity_id: 3,
        attack: Vec::new(),
        time: now,
        entity: Entity { kind: EntityKind::Asset, id: collector.to_owned() },
        zone: Some("custos".into()),
        events: Vec::new(),
        summary: format!(
            "collector {collector}'s clock is {:.1} s {way} the core's (more than {} s since {}, less the bus's delay): the times of records it stamped since then may be wrong; check its time synchronisation",
            offset_ms.unsigned_abs() as f64 / 1000.0,
            MAX_OFFSET_MS / 1000,
            ingest::time::format_rfc3339(since),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Collectors;

    const MINUTE: i64 = 60_000;

    /// Hears `name`'s heartbeat sent at `sent_at` (its clock) at `heard_at`
    /// (the core's), then checks all collectors at that time.
    fn hear(w: &mut ClockWatch, c: &Collectors, name: &str, sent_at: i64, heard_at: i64, stopped: bool) -> Vec<Alert> {
        let beat = Heartbeat { collector: name.into(), sent_at, stopped, ..Heartbeat::default() };
        assert!(c.record(beat, heard_at));
        w.check(&c.list(), heard_at)
    }

    #[test]
    fn alerts_once_when_a_clock_stays_off_and_again_after_it_came_back() {
        let (mut w, c) = (ClockWatch::default(), Collectors::default());
        // 45 s behind from minute 1, a heartbeat each minute.
        let mut behind = |m: i64| hear(&mut w, &c, "dmz-1", m * MINUTE - 45_000, m * MINUTE, false);
        for m in 1..=10 {
            assert!(behind(m).is_empty(), "minute {m}: not for 10 minutes yet");
        }
        let raised = behind(11);
        assert_eq!(raised.len(), 1);
        let a = &raised[0];
        assert_eq!((a.rule.as_str(), a.entity.id.as_str(), a.zone.as_deref()), (RULE, "dmz-1", Some("custos")));
        assert_eq!(a.id, format!("{RULE}:dmz-1:{MINUTE}"));
        assert!(
            a.summary.starts_with(
                "collector dmz-1's clock is 45.0 s behind the core's (more than 10 s since 1970-01-01T00:01:00"
            ),
            "{}",
            a.summary
        );
        assert!(behind(12).is_empty(), "once");
        assert_eq!(c.list()[0].clock_off_since, Some(MINUTE));
        // Back on time, then 20 s ahead for 10 minutes: a new alert.
        assert!(hear(&mut w, &c, "dmz-1", 13 * MINUTE, 13 * MINUTE + 50, false).is_empty());
        assert_eq!(c.list()[0].clock_off_since, None);
        let mut ahead = |m: i64| hear(&mut w, &c, "dmz-1", m * MINUTE + 20_000, m * MINUTE, false);
        for m in 14..24 {
            assert!(ahead(m).is_empty(), "minute {m}");
        }
        let raised = ahead(24);
        assert_eq!(raised.len(), 1);
        assert!(raised[0].summary.contains("20.0 s ahead of the core's"), "{}", raised[0].summary);
    }

    /// The run is kept with the heartbeat, so a check that sees only the
    /// newest of several (checks follow heartbeats as they can) still
    /// knows since when the clock is off; from behind to ahead is one run.
    #[test]
    fn the_run_is_kept_with_the_heartbeats_not_the_checks() {
        let c = Collectors::default();
        for (m, off) in [(0, -45_000), (4, 20_000), (11, -30_000)] {
            let beat = Heartbeat { collector: "dmz-1".into(), sent_at: m * MINUTE + off, ..Heartbeat::default() };
            assert!(c.record(beat, m * MINUTE));
        }
        let raised = ClockWatch::default().check(&c.list(), 11 * MINUTE);
        assert_eq!(raised.len(), 1, "one check, after 11 minutes off");
        assert!(raised[0].summary.contains("30.0 s behind") && raised[0].summary.contains("since 1970-01-01T00:00:00"));
    }

    #[test]
    fn a_backlog_read_late_a_stopped_collector_and_a_silent_one_are_not_alerts() {
        let (mut w, c) = (ClockWatch::default(), Collectors::default());
        // The core catches up on an hour of heartbeats within a minute.
        for m in 0..60 {
            assert!(hear(&mut w, &c, "dmz-1", m * MINUTE, 60 * MINUTE + m * 500, false).is_empty(), "minute {m}");
        }
        // Stopped with a clock 30 s behind; and one whose last heartbeat is old.
        assert!(hear(&mut w, &c, "dmz-3", -30_000, 0, false).is_empty());
        for m in 0..30 {
            let now = m * MINUTE;
            assert!(hear(&mut w, &c, "dmz-2", now - 30_000, now, true).is_empty(), "minute {m}");
            assert!(w.check(&c.list(), now).is_empty(), "minute {m}");
        }
        // At exactly the bound it is on time.
        for m in 0..30 {
            assert!(hear(&mut w, &c, "dmz-4", m * MINUTE - 10_000, m * MINUTE, false).is_empty());
        }
    }
}
