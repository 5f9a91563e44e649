//! Custos ingest: the event contract, the parsers, enrichment from the plant
//! inventory, the bus between stages, and the sources that collect logs.

pub mod bus;
pub mod enrich;
pub mod event;
pub mod heartbeat;
pub mod inventory;
pub mod parse;
pub mod record;
pub mod source;
pub mod time;

pub use event::Event;
pub use inventory::Inventory;
pub use parse::{DeadLetter, Format, ParseError};
pub use record::{Ingested, Normalized, Normalizer, Position, RawRecord, normalize};
