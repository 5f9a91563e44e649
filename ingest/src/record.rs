//! What travels between ingest stages: raw records from the sources and the
//! normalised result (an event or a dead letter).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::enrich::enrich;
use crate::event::{Event, Raw};
use crate::inventory::Inventory;
use crate::parse::{DeadLetter, Format, ParseContext};
use crate::time::Millis;

/// A source position to store once what it covers is durable: a file offset,
/// or a marker such as "this backup was read".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub key: Arc<str>,
    pub offset: u64,
}

/// One record as a source received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRecord {
    pub source: Arc<str>,
    pub format: Format,
    pub received_at: Millis,
    pub bytes: Vec<u8>,
    /// Set when the transport already knows the record is bad (e.g. an
    /// over-long frame): it becomes a dead letter with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

impl RawRecord {
    pub fn new(source: Arc<str>, format: Format, received_at: Millis, bytes: Vec<u8>) -> Self {
        Self { source, format, received_at, bytes, transport_error: None, position: None }
    }
}

/// A parsed event or a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum Normalized {
    Event(Box<Event>),
    DeadLetter(Box<DeadLetter>),
}

/// The normaliser's output for one raw record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ingested {
    pub record: Normalized,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

/// Parses and enriches one raw record; failures become dead letters.
pub fn normalize(raw: RawRecord, inventory: &Inventory, default_offset_min: i64) -> Ingested {
    let ctx = ParseContext { source: &raw.source, received_at: raw.received_at, default_offset_min };
    let result = match &raw.transport_error {
        Some(reason) => Err(reason.clone()),
        None => raw.format.parse(&raw.bytes, &ctx).map_err(|e| e.to_string()),
    };
    let record = match result {
        Ok(mut event) => {
            enrich(inventory, &mut event);
            Normalized::Event(Box::new(event))
        }
        Err(reason) => Normalized::DeadLetter(Box::new(DeadLetter {
            source: raw.source.to_string(),
            format: raw.format,
            reason,
            observed_time: raw.received_at,
            raw: Raw(raw.bytes),
        })),
    };
    Ingested { record, position: raw.position }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_line_becomes_dead_letter_with_reason_and_bytes() {
        let raw = RawRecord::new("eve".into(), Format::SuricataEve, 5, b"{oops\xff".to_vec());
        let out = normalize(raw, &Inventory::default(), 0);
        match out.record {
            Normalized::DeadLetter(d) => {
                assert!(d.reason.starts_with("suricata-eve: not JSON"), "{}", d.reason);
                assert_eq!(d.raw.0, b"{oops\xff");
                assert_eq!(d.source, "eve");
            }
            Normalized::Event(e) => panic!("expected a dead letter, got {e:?}"),
        }
    }

    #[test]
    fn transport_error_wins() {
        let mut raw = RawRecord::new("tcp".into(), Format::Syslog, 5, b"<13>1 - - - - - - ok".to_vec());
        raw.transport_error = Some("syslog-tcp: frame longer than 65536 bytes".into());
        assert!(matches!(normalize(raw, &Inventory::default(), 0).record, Normalized::DeadLetter(_)));
    }
}
