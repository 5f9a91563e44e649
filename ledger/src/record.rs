//! Ledger records: RFC 8785 canonical JSON `{"kind", "recorded_at", "data"}`.
//! The ledger stores and proves bytes; this module gives them their shape.

use serde::{Deserialize, Serialize};

use crate::LedgerError;

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A normalised event (with its raw record, byte for byte).
    Event,
    /// A record that could not be parsed, with the reason and its raw bytes.
    Deadletter,
    /// A rule's alert, citing its contributing events by ledger index.
    Alert,
    /// An incident's creation or change.
    Incident,
    /// A human or system action: who, what, when, why, old → new.
    Audit,
    /// A Part 11 e-signature over another record.
    Signature,
    /// A checkpoint signing key introduced or retired.
    Key,
    /// How long records of a kind must be kept (who set it, why).
    Retention,
    /// Records that must be kept whatever the retention says (who, why, scope).
    LegalHold,
}

impl RecordKind {
    /// The name records carry in their `kind` field (`legal_hold`).
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Event => "event",
            RecordKind::Deadletter => "deadletter",
            RecordKind::Alert => "alert",
            RecordKind::Incident => "incident",
            RecordKind::Audit => "audit",
            RecordKind::Signature => "signature",
            RecordKind::Key => "key",
            RecordKind::Retention => "retention",
            RecordKind::LegalHold => "legal_hold",
        }
    }
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record<T> {
    pub kind: RecordKind,
    /// Ledger (server) time when the record was made, Unix ms.
    pub recorded_at: i64,
    pub data: T,
}

/// Canonical bytes of a record (RFC 8785).
pub fn encode<T: Serialize>(kind: RecordKind, recorded_at: i64, data: &T) -> Result<Vec<u8>, LedgerError> {
    serde_jcs::to_vec(&Record { kind, recorded_at, data })
        .map_err(|e| LedgerError::Record(format!("cannot encode {kind:?} record: {e}")))
}

/// Reads a record's envelope; the data stays generic JSON.
pub fn decode(bytes: &[u8]) -> Result<Record<serde_json::Value>, LedgerError> {
    serde_json::from_slice(bytes).map_err(|e| LedgerError::Record(format!("not a ledger record: {e}")))
}

/// A record with its data read straight into `T`, without a JSON tree in
/// between (the text is checked as UTF-8 once, not string by string).
pub fn decode_as<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Record<T>, LedgerError> {
    let text = std::str::from_utf8(bytes).map_err(|e| LedgerError::Record(format!("not a ledger record: {e}")))?;
    serde_json::from_str(text).map_err(|e| LedgerError::Record(format!("not a ledger record: {e}")))
}

/// A record's kind and time read from the end of its canonical text, without
/// parsing its data: in RFC 8785 form `recorded_at` is the last key and `kind`
/// the one before it. `None` when the text does not end that way; then
/// [`decode`] answers.
pub fn peek(bytes: &[u8]) -> Option<(RecordKind, i64)> {
    const AT: &[u8] = b",\"recorded_at\":";
    const KIND: &[u8] = b",\"kind\":";
    let body = bytes.strip_suffix(b"}")?;
    let at = body.windows(AT.len()).rposition(|w| w == AT)?;
    let recorded_at = std::str::from_utf8(&body[at + AT.len()..]).ok()?.parse().ok()?;
    let head = &body[..at];
    let k = head.windows(KIND.len()).rposition(|w| w == KIND)?;
    let kind = serde_json::from_slice(&head[k + KIND.len()..]).ok()?;
    Some((kind, recorded_at))
}

/// The data of a `key` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// `introduced` or `retired`.
    pub action: String,
    /// The checkpoint origin this key signs for.
    pub origin: String,
    /// The verifier key, `name+id+base64`.
    pub vkey: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_sorts_keys() {
        let data = serde_json::json!({"z": 1, "a": "é", "m": [true, null]});
        let bytes = encode(RecordKind::Audit, 7, &data).expect("encode");
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"data":{"a":"é","m":[true,null],"z":1},"kind":"audit","recorded_at":7}"#
        );
        assert_eq!(decode(&bytes).expect("decode").kind, RecordKind::Audit);
        assert!(decode(br#"{"kind":"gossip","recorded_at":1,"data":{}}"#).is_err());
    }

    proptest::proptest! {
        /// `peek` reads what `decode` reads from every canonical record, whatever
        /// its data holds (including text that looks like the envelope's keys).
        #[test]
        fn peek_agrees_with_decode(
            kind in proptest::sample::select(vec![RecordKind::Event, RecordKind::Alert, RecordKind::Incident, RecordKind::LegalHold]),
            // RFC 8785 numbers are doubles: times are exact within ±2^53 ms.
            recorded_at in -(1i64 << 53)..(1i64 << 53),
            text in r#"(,"kind":"audit"|,"recorded_at":9|[a-z"}{,:0-9\\])*"#,
        ) {
            let bytes = encode(kind, recorded_at, &serde_json::json!({"text": text, "n": [1, {"recorded_at": 2}]})).expect("encode");
            proptest::prop_assert_eq!(peek(&bytes), Some((kind, recorded_at)));
            let d = decode(&bytes).expect("decode");
            proptest::prop_assert_eq!((d.kind, d.recorded_at), (kind, recorded_at));
        }
    }

    #[test]
    fn names_are_the_stored_kinds() {
        use RecordKind::*;
        for kind in [Event, Deadletter, Alert, Incident, Audit, Signature, Key, Retention, LegalHold] {
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.name());
        }
    }

    #[test]
    fn peek_declines_what_is_not_canonical() {
        for text in [
            &br#"{"kind":"audit","recorded_at":1,"data":{}}"#[..],
            b"",
            b"}",
            br#"{"data":1,"kind":"gossip","recorded_at":1}"#,
        ] {
            assert_eq!(peek(text), None, "{}", String::from_utf8_lossy(text));
        }
    }
}
