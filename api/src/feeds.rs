//! Is every feed alive: what `GET /api/v1/collectors` answers, typed so the
//! OpenAPI document states its shape and schemathesis checks it. This
//! process's own sources, and each collector heard on the status topic by
//! its newest heartbeat, judged on the core's clock.

use std::sync::atomic::Ordering;

use ingest::heartbeat::{ParserCounts, SourceCounts};
use ingest::time::format_rfc3339;
use serde::Serialize;

use crate::metrics::{CollectorState, Heard};
use crate::pipeline::PipelineStats;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedsAnswer {
    /// When this was judged (RFC 3339, the core's clock).
    pub at: String,
    /// What this process reads itself (the embedded default's sources).
    pub local: Feeds,
    /// The collectors asked for, by name.
    pub collectors: Vec<CollectorStatus>,
    /// How many of all collectors heard are silent now.
    pub silent: usize,
}

/// What one process's sources read, since it started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Feeds {
    pub sources: Vec<SourceCounts>,
    pub parsers: Vec<ParserCounts>,
    /// Syslog datagrams dropped (UDP has no backpressure).
    pub udp_dropped: u64,
    /// Records sent to Kafka again: the brokers took none of them within
    /// the 30 s delivery timeout.
    pub bus_redelivered: u64,
    /// File tails and backup watchers started again after an error, by source.
    pub source_restarts: std::collections::BTreeMap<String, u64>,
}

/// A collector by its newest heartbeat.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CollectorStatus {
    pub collector: String,
    /// running, stopped (its last heartbeat said so) or silent.
    #[schema(pattern = "^(running|stopped|silent)$")]
    pub state: &'static str,
    /// The Custos version it runs.
    pub version: String,
    /// When it started (RFC 3339, its clock).
    pub started_at: String,
    /// When it sent its newest heartbeat (its clock).
    pub sent_at: String,
    /// When the core read that heartbeat (the core's clock).
    pub heard_at: String,
    pub since_heard_seconds: f64,
    /// Silent when nothing is heard for this long: two of its intervals
    /// plus 30 s, two minutes at the least.
    pub silent_after_seconds: f64,
    pub heartbeat_interval_seconds: f64,
    /// Its clock ahead of the core's, less the bus's delay.
    pub clock_offset_seconds: f64,
    /// Since when the core has read its heartbeats more than 10 s off.
    pub clock_off_since: Option<String>,
    pub udp_dropped: u64,
    pub bus_redelivered: u64,
    /// Its file tails and backup watchers started again after an error, by source.
    pub source_restarts: std::collections::BTreeMap<String, u64>,
    pub sources: Vec<SourceCounts>,
    pub parsers: Vec<ParserCounts>,
}

/// The feeds at `now`, collectors only in state `wanted` when given.
pub fn answer(stats: &PipelineStats, now: i64, wanted: Option<CollectorState>) -> FeedsAnswer {
    let (sources, parsers) = stats.ingest.counts();
    let local = Feeds {
        sources,
        parsers,
        udp_dropped: stats.udp_drops.0.load(Ordering::Relaxed),
        bus_redelivered: stats.bus_redelivered.load(Ordering::Relaxed),
        source_restarts: stats.source_restarts.counts(),
    };
    let heard = stats.collectors.list();
    let states: Vec<CollectorState> = heard.iter().map(|h| h.state(now)).collect();
    let silent = states.iter().filter(|s| **s == CollectorState::Silent).count();
    let collectors = heard
        .iter()
        .zip(states)
        .filter(|(_, state)| wanted.is_none_or(|w| w == *state))
        .map(|(h, state)| status(h, state, now))
        .collect();
    FeedsAnswer { at: format_rfc3339(now), local, collectors, silent }
}

fn status(h: &Heard, state: CollectorState, now: i64) -> CollectorStatus {
    let seconds = |ms: i64| ms as f64 / 1000.0;
    let b = &h.beat;
    CollectorStatus {
        collector: b.collector.clone(),
        state: state.name(),
        version: b.version.clone(),
        started_at: format_rfc3339(b.started_at),
        sent_at: format_rfc3339(b.sent_at),
        heard_at: format_rfc3339(h.heard_at),
        since_heard_seconds: seconds(now.saturating_sub(h.heard_at)),
        silent_after_seconds: seconds(h.silent_after_ms()),
        heartbeat_interval_seconds: seconds(b.interval_ms() as i64),
        clock_offset_seconds: seconds(h.clock_offset_ms()),
        clock_off_since: h.clock_off_since.map(format_rfc3339),
        udp_dropped: b.udp_dropped,
        bus_redelivered: b.bus_redelivered,
        source_restarts: b.source_restarts.clone(),
        sources: b.sources.clone(),
        parsers: b.parsers.clone(),
    }
}
