//! Room in the data directory. The ledger stops accepting records when its
//! disk is full, and then nothing more is evidence, so the control room is
//! told while there is still time: one alert (ledgered, filed as an
//! incident, raised as an alarm) each time the free room falls below
//! `[ledger] low_room_bytes`.

use correlate::{Alert, Entity, EntityKind};

/// Bytes free for Custos in the filesystem that holds `dir`.
pub fn available_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let fs = rustix::fs::statvfs(dir)?;
    Ok(fs.f_bavail.saturating_mul(fs.f_frsize))
}

/// The rule name of the alert about a nearly full data directory.
pub const RULE: &str = "custos-data-dir-low";

/// Watches the free room: alerts once when it falls below `threshold`, and
/// again only after it has been above it (no alert per check while low).
#[derive(Debug, Clone)]
pub struct RoomWatch {
    threshold: u64,
    low: bool,
}

impl RoomWatch {
    /// `threshold` 0 turns the watch off.
    pub fn new(threshold: u64) -> Self {
        Self { threshold, low: false }
    }

    /// The alert to raise for `free` bytes at `now` (Unix ms), if any.
    pub fn check(&mut self, free: u64, now: i64) -> Option<Alert> {
        let low = free < self.threshold;
        let fell = low && !self.low;
        self.low = low;
        fell.then(|| Alert {
            id: format!("{RULE}:{now}"),
            rule: RULE.into(),
            title: "Custos data directory nearly full: the ledger stops when it is".into(),
            severity_id: 5,
            attack: Vec::new(),
            time: now,
            entity: Entity { kind: EntityKind::Asset, id: "custos".into() },
            // An area of its own: plant alarms flooding an area never hide it.
            zone: Some("custos".into()),
            events: Vec::new(),
            summary: format!(
                "{} MB free in the data directory, below the {} MB set as [ledger] low_room_bytes: free room or move the data directory before the ledger cannot append",
                free >> 20,
                self.threshold >> 20
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_once_each_time_the_room_falls_below_the_threshold() {
        let mut watch = RoomWatch::new(2 << 30);
        assert!(watch.check(5 << 30, 1).is_none(), "room enough");
        let alert = watch.check(1 << 30, 2).expect("fell below");
        assert_eq!((alert.rule.as_str(), alert.severity_id, alert.time), (RULE, 5, 2));
        assert_eq!(alert.zone.as_deref(), Some("custos"), "an alarm area of its own");
        assert!(alert.summary.starts_with("1024 MB free"), "{}", alert.summary);
        assert!(watch.check(512 << 20, 3).is_none(), "still low: no alert per check");
        assert!(watch.check(3 << 30, 4).is_none(), "room again");
        assert_eq!(watch.check(1, 5).map(|a| a.id), Some(format!("{RULE}:5")), "fell again");
        let mut off = RoomWatch::new(0);
        assert!(off.check(0, 6).is_none(), "threshold 0: off");
    }
}
