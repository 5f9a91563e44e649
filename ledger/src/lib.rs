//! Custos evidence ledger: canonical records in append-only, CRC-checked
//! segments; a hash chain and an RFC 9162 Merkle tree over them; Ed25519
//! checkpoints in the C2SP signed-note format; offline verification.
//! It depends on no other Custos crate: it stores and proves bytes.

pub mod bundle;
mod chunked;
pub mod merkle;
pub mod note;
pub mod record;
mod snapshot;
mod store;
mod tree;
mod verify;

use std::path::PathBuf;

pub use bundle::{
    BundleRecord, BundleReport, BundleWriter, bundle_checkpoint, verify_bundle, verify_bundle_from,
    verify_bundle_seeing,
};
pub use note::{Checkpoint, NoteSigner, VerifierKey, WitnessKey, WitnessSigner, cosignatures};
pub use record::{KeyRecord, Record, RecordKind};
pub use snapshot::Snapshot;
pub use store::{
    Ledger, LedgerOptions, MAX_RECORD, OpenReport, Submitted, chain_next, for_each_checkpoint_note, for_each_record,
};
pub use tree::Block;
pub use verify::{VerifyReport, verify_dir, verify_dir_with_progress};

/// Every ledger failure; messages name the file or the index.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{what} {}: {source}", path.display())]
    Io { path: PathBuf, what: String, source: std::io::Error },
    #[error("ledger is corrupt{}: {what}", index.map(|i| format!(" at index {i}")).unwrap_or_default())]
    Corrupt { index: Option<u64>, what: String },
    #[error("signed note: {0}")]
    Note(String),
    #[error("record: {0}")]
    Record(String),
    #[error("the ledger writer has stopped")]
    Closed,
    #[error("the ledger writer failed earlier and accepts no appends: {0}")]
    Failed(String),
}

impl LedgerError {
    /// The first bad index, when the failure is tied to one.
    pub fn index(&self) -> Option<u64> {
        match self {
            Self::Corrupt { index, .. } => *index,
            _ => None,
        }
    }
}
