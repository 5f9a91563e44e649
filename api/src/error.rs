/// Why Custos could not start or had to stop. Messages name the file or key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error("inventory {}: {source}", path.display())]
    Inventory { path: std::path::PathBuf, source: ingest::inventory::InventoryError },
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error(transparent)]
    Source(#[from] ingest::source::SourceError),
    #[error(transparent)]
    Bus(#[from] ingest::bus::BusError),
    #[error("roles: {0}")]
    Roles(String),
    /// Every problem of a rule set, one `file:line: message` per line.
    #[error("correlate.rules_dir has bad rules:\n{}", .0.join("\n"))]
    Rules(Vec<String>),
    /// The search index or the Parquet archive (views derived from the ledger).
    #[error("derived views: {0}")]
    Derived(String),
    /// An HTTP listener that cannot open, with the key that set its address.
    #[error("{key} = {addr}: {source}")]
    Http { key: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    /// `custos probe` found no answer, or not an HTTP one.
    #[error("probe {url}: {reason}")]
    Probe { url: String, reason: String },
}

impl Error {
    pub(crate) fn io<'a>(what: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Self::Io { what, path: path.to_path_buf(), source }
    }
}
