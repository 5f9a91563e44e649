use serde::{Deserialize, Serialize};

/// What an alert or incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Person,
    Asset,
    Zone,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entity {
    pub kind: EntityKind,
    pub id: String,
}

/// A rule's finding, citing its contributing events by ledger index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Stable id: the rule and its contributing indices, so a replay yields the same id.
    pub id: String,
    pub rule: String,
    pub title: String,
    /// OCSF severity 1..6.
    pub severity_id: u8,
    /// MITRE ATT&CK for ICS technique ids.
    pub attack: Vec<String>,
    /// Event time of the event that completed the pattern, UTC ms.
    pub time: i64,
    pub entity: Entity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Ledger indices of the contributing events.
    pub events: Vec<u64>,
    pub summary: String,
}
