//! Sources: each reads one transport and publishes [`RawRecord`] batches to the
//! raw topic. Each has its own config struct with documented defaults.

pub mod plc;
pub mod positions;
pub mod syslog;
pub mod tail;

use std::time::{SystemTime, UNIX_EPOCH};

pub use positions::Positions;

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
