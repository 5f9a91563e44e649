//! What a collector (`custos run --roles ingest`) says of itself on the
//! status topic. A collector serves no HTTP: the core that ledgers its
//! events also exports its counters, and sees when it falls silent.

use serde::{Deserialize, Serialize};

use crate::bus::Message;

/// At most this many collectors are kept, and this many rows of each kind
/// a heartbeat: the status topic is read like any other untrusted input.
pub const MAX_COLLECTORS: usize = 256;
pub const MAX_ROWS: usize = 1_024;

/// One collector's counters, sent every heartbeat and once more when it stops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The collector's name (`[collector] name`).
    pub collector: String,
    /// The Custos version it runs.
    pub version: String,
    /// When it started and when it sent this, UTC ms (its own clock).
    pub started_at: i64,
    pub sent_at: i64,
    /// Its last heartbeat, sent as it stopped cleanly.
    #[serde(default)]
    pub stopped: bool,
    #[serde(default)]
    pub sources: Vec<SourceCounts>,
    #[serde(default)]
    pub parsers: Vec<ParserCounts>,
    /// Syslog datagrams it dropped (UDP has no backpressure).
    #[serde(default)]
    pub udp_dropped: u64,
    /// Records it sent to Kafka again: the brokers took none of them
    /// within the delivery timeout (down, or not answering).
    #[serde(default)]
    pub bus_redelivered: u64,
    /// Its file tails and backup watchers started again after an error, by source.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source_restarts: std::collections::BTreeMap<String, u64>,
    /// Milliseconds between its heartbeats (`[collector] heartbeat_seconds`),
    /// so the core knows how long a silence is one. Older collectors do not
    /// send it: see [`Heartbeat::interval_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

/// What a source read, by source and format, since the collector started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceCounts {
    pub source: String,
    pub format: String,
    pub lines: u64,
    pub bytes: u64,
    pub dead_letters: u64,
    /// Receive time minus event time of its newest event, ms.
    pub lag_ms: i64,
}

/// Events a parser made of a source's records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParserCounts {
    pub source: String,
    pub parser: String,
    pub events: u64,
}

/// The interval taken for a heartbeat that names none: the default of
/// `[collector] heartbeat_seconds`.
pub const DEFAULT_INTERVAL_MS: u64 = 15_000;
/// The longest interval a collector may set (an hour); a longer one read
/// from the topic is taken as this.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

impl Heartbeat {
    /// Milliseconds between this collector's heartbeats, within 1 ms to
    /// [`MAX_INTERVAL_MS`] whatever the topic said.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS).clamp(1, MAX_INTERVAL_MS)
    }

    /// Cuts what a heartbeat carries to the bounds above, one row per
    /// source and format (per source and parser): a repeated row would be a
    /// duplicate series, and Prometheus refuses a scrape that holds one.
    pub fn bounded(mut self) -> Self {
        let mut seen = std::collections::HashSet::new();
        self.sources.retain(|s| seen.insert((s.source.clone(), s.format.clone())));
        seen.clear();
        self.parsers.retain(|p| seen.insert((p.source.clone(), p.parser.clone())));
        self.sources.truncate(MAX_ROWS);
        self.parsers.truncate(MAX_ROWS);
        while self.source_restarts.len() > MAX_ROWS {
            self.source_restarts.pop_last();
        }
        self
    }
}

impl Message for Heartbeat {
    /// One collector's heartbeats stay in order.
    fn key(&self) -> Option<&str> {
        Some(&self.collector)
    }
}
