//! Per-source event-time watermarks with allowed lateness and idle timeouts.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::state::pairs;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct SourceClock {
    max_event_time: i64,
    last_seen: i64,
}

/// The engine's event-time progress. A source that has sent nothing for
/// `idle_timeout_ms` (processing time) stops holding the watermark back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Watermarks {
    #[serde(with = "pairs")]
    sources: HashMap<String, SourceClock>,
    allowed_lateness_ms: i64,
    idle_timeout_ms: i64,
}

impl Watermarks {
    pub fn new(allowed_lateness_ms: i64, idle_timeout_ms: i64) -> Self {
        Self { sources: HashMap::new(), allowed_lateness_ms, idle_timeout_ms }
    }

    /// Notes an event of `source` at event time `time`, observed at `observed`.
    pub fn observe(&mut self, source: &str, time: i64, observed: i64) {
        match self.sources.get_mut(source) {
            Some(c) => {
                c.max_event_time = c.max_event_time.max(time);
                c.last_seen = c.last_seen.max(observed);
            }
            None => {
                self.sources.insert(source.to_owned(), SourceClock { max_event_time: time, last_seen: observed });
            }
        }
    }

    /// Event time up to which input is taken as complete, at processing time `now`.
    /// An idle source stops holding the watermark back: its event time is taken
    /// to advance with processing time since it was last heard from.
    pub fn watermark(&self, now: i64) -> Option<i64> {
        let wm = self
            .sources
            .values()
            .map(|c| {
                let silent = now - c.last_seen;
                if silent < self.idle_timeout_ms { c.max_event_time } else { c.max_event_time + silent }
            })
            .min()?;
        Some(wm - self.allowed_lateness_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowest_active_source_holds_the_watermark() {
        let mut w = Watermarks::new(100, 1_000);
        assert_eq!(w.watermark(0), None);
        w.observe("fw", 5_000, 10_000);
        w.observe("badge", 2_000, 10_000);
        assert_eq!(w.watermark(10_500), Some(1_900));
        // The badge source goes idle: it no longer pins the watermark at its last
        // event, but advances with the 1.6 s of silence.
        w.observe("fw", 6_000, 11_500);
        assert_eq!(w.watermark(11_600), Some(2_000 + 1_600 - 100));
        // Both idle: event time follows processing time from their last message.
        assert_eq!(w.watermark(20_000), Some(2_000 + 10_000 - 100));
    }
}
