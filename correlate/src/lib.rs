//! Custos correlation: an event-time engine that joins cyber and physical
//! events into alerts, and the incidents that group them.
//!
//! The engine is pure: events arrive with their ledger index, time arrives
//! through [`Engine::on_tick`]; no clock, no I/O.

mod alarm;
mod alert;
mod engine;
mod incident;
mod rules;
pub mod sigma;
mod state;
mod watermark;

pub use alarm::{Alarm, AlarmBoard, AlarmKind, AlarmPolicy, AlarmState, BoardState, Shelf};
pub use alert::{Alert, Entity, EntityKind};
pub use engine::{Engine, EngineConfig, EngineState, EngineStats};
pub use incident::{BookState, Filed, Incident, IncidentBook, IncidentState, MAX_NOTE_CHARS, Note, Transition};
pub use rules::BUILTIN_RULES;

/// Correlation failures (configuration and state changes).
#[derive(Debug, thiserror::Error)]
pub enum CorrelateError {
    #[error("incident {0} does not exist")]
    NoSuchIncident(String),
    #[error("incident {id}: cannot go from {from} to {to}")]
    BadTransition { id: String, from: String, to: String },
    #[error("alarm {0} is not on the board")]
    NoSuchAlarm(String),
    #[error("a reason is required")]
    ReasonRequired,
    #[error("alarm {0} is not shelved")]
    NotShelved(String),
    #[error("{0}")]
    BadNote(String),
    #[error("incident {id} is {state}: it is no one's to work on")]
    Final { id: String, state: String },
}
