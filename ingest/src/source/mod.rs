//! Sources: each reads one transport and publishes [`RawRecord`] batches to the
//! raw topic. Each has its own config struct with documented defaults.

pub mod plc;
pub mod positions;
pub mod syslog;
pub mod tail;

use std::time::{SystemTime, UNIX_EPOCH};

pub use positions::{Positions, replace_file};

use crate::time::Millis;

/// A source failed to start or run; the message names the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {source_name}: {what}: {err}")]
    Io { source_name: String, what: String, err: std::io::Error },
    #[error("source {source_name}: the raw topic is closed")]
    BusClosed { source_name: String },
}

impl SourceError {
    fn io(source_name: &str, what: impl Into<String>, err: std::io::Error) -> Self {
        Self::Io { source_name: source_name.to_owned(), what: what.into(), err }
    }
}

/// Wall-clock receive time. Only sources read the clock; parsers get it injected.
pub fn now_millis() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

/// Records per batch a source publishes at most.
pub const MAX_BATCH: usize = 512;

/// When a source's position (file offset, backup read) may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Once the ledger has the records: positions travel with them (embedded bus).
    AfterLedger,
    /// Once the bus has acknowledged the publish (Kafka, `acks=all`): the bus is the durable log.
    OnPublish,
}

/// Publishes a batch and, on a durable bus, stores the positions it covers.
pub(crate) async fn hand_over(
    out: &crate::bus::Publisher<crate::record::RawRecord>,
    batch: Vec<crate::record::RawRecord>,
    positions: &Positions,
    handover: Handover,
    source_name: &str,
) -> Result<(), SourceError> {
    let latest = match handover {
        Handover::OnPublish => crate::record::Position::latest(batch.iter().filter_map(|r| r.position.as_ref())),
        Handover::AfterLedger => Default::default(),
    };
    out.publish(batch).await.map_err(|_| SourceError::BusClosed { source_name: source_name.to_owned() })?;
    if !latest.is_empty() {
        let updates = latest.iter().map(|(k, v)| (k.as_ref(), *v));
        positions.commit(updates).map_err(|e| SourceError::io(source_name, "store position", e))?;
    }
    Ok(())
}

/// Sleeps `d`, or returns true early when `stop` is signalled.
pub(crate) async fn sleep_or_stop(d: std::time::Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    let slept = tokio::select! {
        _ = tokio::time::sleep(d) => true,
        // A dropped sender also means stop.
        _ = stop.wait_for(|s| *s) => false,
    };
    !slept || *stop.borrow()
}
