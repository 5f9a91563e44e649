//! Collectors' clocks, as evidence. A collector stamps what it receives (and
//! RFC 3164 senders' stamps carry no year or zone), so the times of the
//! records it sends are as good as its clock. When a collector's clock stays
//! off the core's, one alert is ledgered (and filed as an incident for the
//! SOC and quality; no control-room alarm by default): the audit trail then
//! says from when its records' times are doubtful. Prometheus' warning
//! (`CustosCollectorClockOff`) goes away with Prometheus' retention; this does not.

use std::collections::HashMap;

use correlate::{Alert, Entity, EntityKind};

use crate::metrics::Heard;

/// The rule name of the alert about a collector's clock.
pub const RULE: &str = "custos-collector-clock-off";
/// Off by more than this, ms (either way)...
pub const MAX_OFFSET_MS: i64 = 10_000;
/// ...for this long, ms, between the core's reading of the first heartbeat
/// found off and of the newest (a silent collector's does not grow).
pub const FOR_MS: i64 = 600_000;

/// Watches each collector's clock offset (see [`Heard::clock_offset_ms`]):
/// alerts once when it has stayed beyond [`MAX_OFFSET_MS`] for [`FOR_MS`],
/// and again only after it has come back. The offset includes the bus's
/// delay, so a backlog the core catches up on reads as a clock behind: its
/// heartbeats are all read within moments, so they never span [`FOR_MS`].
#[derive(Debug, Default)]
pub struct ClockWatch {
    /// By collector (at most those [`crate::metrics::Collectors`] keeps):
    /// when (the core's clock) its offset was first seen beyond the bound,
    /// and whether that was alerted.
    off: HashMap<String, (i64, bool)>,
}

impl ClockWatch {
    /// The alerts to raise at `now` (Unix ms) for the newest heartbeats.
    pub fn check(&mut self, collectors: &[Heard], now: i64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for c in collectors {
            let name = &c.beat.collector;
            let offset = c.clock_offset_ms();
            if c.beat.stopped || offset.saturating_abs() <= MAX_OFFSET_MS {
                self.off.remove(name);
                continue;
            }
            let (since, alerted) = self.off.entry(name.clone()).or_insert((c.heard_at, false));
            if !*alerted && c.heard_at.saturating_sub(*since) >= FOR_MS {
                *alerted = true;
                alerts.push(alert(name, offset, *since, now));
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
    use ingest::heartbeat::Heartbeat;

    fn heard(name: &str, sent_at: i64, heard_at: i64, stopped: bool) -> Heard {
        let beat = Heartbeat { collector: name.into(), sent_at, stopped, ..Heartbeat::default() };
        Heard { beat, heard_at }
    }

    const MINUTE: i64 = 60_000;

    #[test]
    fn alerts_once_when_a_clock_stays_off_and_again_after_it_came_back() {
        let mut w = ClockWatch::default();
        // 45 s behind from minute 1; checked each minute on a fresh heartbeat.
        let behind = |m: i64| vec![heard("dmz-1", m * MINUTE - 45_000, m * MINUTE, false)];
        for m in 1..=10 {
            assert!(w.check(&behind(m), m * MINUTE).is_empty(), "minute {m}: not for 10 minutes yet");
        }
        let raised = w.check(&behind(11), 11 * MINUTE);
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
        assert!(w.check(&behind(12), 12 * MINUTE).is_empty(), "once");
        // Back on time, then 20 s ahead for 10 minutes: a new alert.
        assert!(w.check(&[heard("dmz-1", 13 * MINUTE, 13 * MINUTE + 50, false)], 13 * MINUTE).is_empty());
        let ahead = |m: i64| vec![heard("dmz-1", m * MINUTE + 20_000, m * MINUTE, false)];
        for m in 14..24 {
            assert!(w.check(&ahead(m), m * MINUTE).is_empty(), "minute {m}");
        }
        let raised = w.check(&ahead(24), 24 * MINUTE);
        assert_eq!(raised.len(), 1);
        assert!(raised[0].summary.contains("20.0 s ahead of the core's"), "{}", raised[0].summary);
    }

    #[test]
    fn a_backlog_read_late_a_stopped_collector_and_a_silent_one_are_not_alerts() {
        let mut w = ClockWatch::default();
        // The core catches up on an hour of heartbeats within a minute.
        for m in 0..60 {
            let backlog = [heard("dmz-1", m * MINUTE, 60 * MINUTE + m * 500, false)];
            assert!(w.check(&backlog, 60 * MINUTE + m * 500).is_empty(), "minute {m} of the backlog");
        }
        // Stopped with a clock 30 s behind; and one whose last heartbeat is old.
        for m in 0..30 {
            let now = m * MINUTE;
            let beats = [heard("dmz-2", now - 30_000, now, true), heard("dmz-3", -30_000, 0, false)];
            assert!(w.check(&beats, now).is_empty(), "minute {m}");
        }
        // At exactly the bound it is on time.
        for m in 0..30 {
            assert!(w.check(&[heard("dmz-4", m * MINUTE - 10_000, m * MINUTE, false)], m * MINUTE).is_empty());
        }
    }
}
