//! What the fuzz targets share.

use std::sync::LazyLock;

/// The parser fixtures' plant inventory: enrichment of fuzzed events follows
/// the assets, people, doors and areas their bytes may name, as in a plant.
pub static PLANT: LazyLock<ingest::Inventory> = LazyLock::new(|| {
    ingest::Inventory::from_toml(include_str!("../../ingest/fixtures/inventory.toml")).expect("a valid inventory")
});
