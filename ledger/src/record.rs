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
}
