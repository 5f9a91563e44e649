//! What travels between ingest stages: raw records from the sources and the
//! normalised result (an event or a dead letter).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::enrich::enrich;
use crate::event::{Event, Raw};
use crate::inventory::Inventory;
use crate::parse::pacs::BadgeMapping;
use crate::parse::{DeadLetter, Format, ParseContext, ParseError, zeek};
use crate::time::Millis;

/// A source position to store once what it covers is durable: a file offset,
/// or a marker such as "this backup was read".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub key: Arc<str>,
    pub offset: u64,
}

impl Position {
    /// The newest offset per key among `positions` (what a batch lets a source store).
    pub fn latest<'a>(positions: impl IntoIterator<Item = &'a Position>) -> HashMap<Arc<str>, u64> {
        let mut latest: HashMap<Arc<str>, u64> = HashMap::new();
        for p in positions {
            let e = latest.entry(p.key.clone()).or_default();
            *e = (*e).max(p.offset);
        }
        latest
    }
}

/// One record as a source received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRecord {
    pub source: Arc<str>,
    pub format: Format,
    pub received_at: Millis,
    #[serde(with = "crate::event::raw_bytes")]
    pub bytes: Vec<u8>,
    /// Set when the transport already knows the record is bad (e.g. an
    /// over-long frame): it becomes a dead letter with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// The file's header lines (Zeek `#fields`, a CSV header row) for formats that need them.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_header")]
    pub header: Option<Arc<[u8]>>,
}

impl RawRecord {
    pub fn new(source: Arc<str>, format: Format, received_at: Millis, bytes: Vec<u8>) -> Self {
        Self { source, format, received_at, bytes, transport_error: None, position: None, header: None }
    }
}

mod opt_header {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Option<Arc<[u8]>>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(b) => crate::event::raw_bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<[u8]>>, D::Error> {
        Ok(Option::<crate::event::Raw>::deserialize(d)?.map(|r| Arc::from(r.0)))
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
    let ctx = ParseContext {
        default_offset_min,
        header: raw.header.as_deref(),
        ..ParseContext::new(&raw.source, raw.received_at)
    };
    let result = parse_with(&raw, &ctx);
    finish(raw, result, inventory)
}

fn parse_with(raw: &RawRecord, ctx: &ParseContext<'_>) -> Result<Event, String> {
    match &raw.transport_error {
        Some(reason) => Err(reason.clone()),
        None => raw.format.parse(&raw.bytes, ctx).map_err(|e| e.to_string()),
    }
}

fn finish(raw: RawRecord, result: Result<Event, String>, inventory: &Inventory) -> Ingested {
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

/// The normalising stage's state: the inventory, per-source badge mappings, and
/// parsed file headers cached so a Zeek header is read once per file, not per line.
pub struct Normalizer {
    inventory: Arc<Inventory>,
    default_offset_min: i64,
    mappings: HashMap<String, BadgeMapping>,
    zeek_headers: HashMap<Arc<[u8]>, Arc<Result<zeek::Header, ParseError>>>,
}

impl Normalizer {
    pub fn new(inventory: Arc<Inventory>, default_offset_min: i64) -> Self {
        Self { inventory, default_offset_min, mappings: HashMap::new(), zeek_headers: HashMap::new() }
    }

    /// Enriches from a reloaded inventory from the next record on.
    pub fn set_inventory(&mut self, inventory: Arc<Inventory>) {
        self.inventory = inventory;
    }

    /// Reads `badge-csv` records of `source` through `mapping`.
    pub fn with_mapping(mut self, source: &str, mapping: BadgeMapping) -> Self {
        self.mappings.insert(source.to_owned(), mapping);
        self
    }

    pub fn normalize(&mut self, raw: RawRecord) -> Ingested {
        let zeek = match (&raw.header, raw.format) {
            (Some(h), Format::ZeekTsv) => {
                if self.zeek_headers.len() > 256 {
                    self.zeek_headers.clear();
                }
                Some(self.zeek_headers.entry(h.clone()).or_insert_with(|| Arc::new(zeek::parse_header(h))).clone())
            }
            _ => None,
        };
        let ctx = ParseContext {
            default_offset_min: self.default_offset_min,
            header: raw.header.as_deref(),
            badge_mapping: self.mappings.get(&*raw.source),
            ..ParseContext::new(&raw.source, raw.received_at)
        };
        let result = match zeek.as_deref() {
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(h)) => parse_with(&raw, &ParseContext { zeek_header: Some(h), ..ctx }),
            None => parse_with(&raw, &ctx),
        };
        finish(raw, result, &self.inventory)
    }
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
    fn zeek_header_travels_with_the_record_and_is_parsed_once() {
        let header: Arc<[u8]> = Arc::from(&b"#separator \\x09\n#path\tconn\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tconn_state\n#types\ttime\taddr\tport\taddr\tport\tstring\n"[..]);
        let mut n = Normalizer::new(Arc::new(Inventory::default()), 0);
        for _ in 0..3 {
            let mut raw = RawRecord::new(
                "zeek".into(),
                Format::ZeekTsv,
                5,
                b"1795000000.0\t10.0.0.1\t1\t10.0.0.2\t2\tSF".to_vec(),
            );
            raw.header = Some(header.clone());
            assert!(matches!(n.normalize(raw).record, Normalized::Event(_)));
        }
        assert_eq!(n.zeek_headers.len(), 1);
        let no_header = RawRecord::new("zeek".into(), Format::ZeekTsv, 5, b"1\t2".to_vec());
        assert!(
            matches!(n.normalize(no_header).record, Normalized::DeadLetter(d) if d.reason.contains("#fields header"))
        );
    }

    #[test]
    fn raw_records_travel_as_text_or_base64() {
        let mut r = RawRecord::new("s".into(), Format::Syslog, 1, b"<13>1 - - - - - - hi".to_vec());
        r.header = Some(Arc::from(&b"h\xff"[..]));
        let json = serde_json::to_string(&r).unwrap_or_default();
        assert!(json.contains(r#""bytes":"<13>1 - - - - - - hi""#), "{json}");
        assert!(json.contains(r#""header":{"base64":"aP8="}"#), "{json}");
        let back: RawRecord = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, r);
    }

    #[test]
    fn transport_error_wins() {
        let mut raw = RawRecord::new("tcp".into(), Format::Syslog, 5, b"<13>1 - - - - - - ok".to_vec());
        raw.transport_error = Some("syslog-tcp: frame longer than 65536 bytes".into());
        assert!(matches!(normalize(raw, &Inventory::default(), 0).record, Normalized::DeadLetter(_)));
    }
}
