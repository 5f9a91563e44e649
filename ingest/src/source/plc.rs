//! PLC backup watcher. It watches a backup repository laid out as
//!
//! ```text
//! <dir>/<asset>/released/...                  the released (approved) project files
//! <dir>/<asset>/backups/<backup-id>/...       each backup the backup tool took
//! <dir>/<asset>/backups/<backup-id>/backup.json   written last: {"time": RFC 3339, "user": "..."}
//! ```
//!
//! and compares every complete backup with the released version by SHA-256 of
//! each file, publishing one report per backup (format `plc-backup`).
//! A backup is read once: its marker is stored as a position after the ledger
//! has the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Handover, Positions, SourceError, hand_over, now_millis, sleep_or_stop};
use crate::bus::Publisher;
use crate::parse::Format;
use crate::parse::plc::BackupReport;
use crate::record::{Position, RawRecord};

fn default_name() -> String {
    "plc-backup".into()
}
fn default_poll_ms() -> u64 {
    1000
}

/// `[[sources.plc_backup]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlcWatchConfig {
    pub dir: PathBuf,
    /// Source name. Default `plc-backup`.
    #[serde(default = "default_name")]
    pub name: String,
    /// How often to scan. Default 1000 ms.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

#[derive(Deserialize)]
struct BackupMeta {
    time: String,
    #[serde(default)]
    user: Option<String>,
}

/// SHA-256 of every regular file below `root`, by relative path (`/`-separated).
pub fn digest_tree(root: &Path) -> std::io::Result<BTreeMap<String, [u8; 32]>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                let rel = rel.to_string_lossy().replace('\\', "/");
                if rel != "backup.json" {
                    out.insert(rel, Sha256::digest(std::fs::read(&path)?).into());
                }
            }
        }
    }
    Ok(out)
}

/// Files that differ between two digests: changed, added or removed.
pub fn changed_files(released: &BTreeMap<String, [u8; 32]>, backup: &BTreeMap<String, [u8; 32]>) -> Vec<String> {
    let mut out: Vec<String> =
        backup.iter().filter(|(k, v)| released.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    out.extend(released.keys().filter(|k| !backup.contains_key(*k)).cloned());
    out.sort();
    out
}

/// Compares backup `backup_id` with the released version and with the backup
/// before it (`previous`, by id order).
fn compare(asset: &str, asset_dir: &Path, backup_id: &str, previous: Option<&str>) -> std::io::Result<BackupReport> {
    let backup_dir = asset_dir.join("backups").join(backup_id);
    let meta: BackupMeta = serde_json::from_slice(&std::fs::read(backup_dir.join("backup.json"))?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("backup.json: {e}")))?;
    let released = digest_tree(&asset_dir.join("released"));
    let backup = digest_tree(&backup_dir)?;
    let (result, changed, reason) = match released {
        Ok(r) => {
            let changed = changed_files(&r, &backup);
            (if changed.is_empty() { "equal" } else { "different" }, changed, None)
        }
        Err(e) => ("error", Vec::new(), Some(format!("no released version to compare with: {e}"))),
    };
    let prev = previous.and_then(|p| {
        digest_tree(&asset_dir.join("backups").join(p)).ok().map(|d| (p.to_owned(), changed_files(&d, &backup)))
    });
    Ok(BackupReport {
        previous_result: prev.as_ref().map(|(_, c)| if c.is_empty() { "equal".into() } else { "different".into() }),
        changed_since_previous: prev.as_ref().map(|(_, c)| c.clone()).unwrap_or_default(),
        previous_backup: prev.map(|(p, _)| p),
        asset: asset.to_owned(),
        backup: backup_id.to_owned(),
        time: meta.time,
        compared_with: "released".into(),
        result: result.into(),
        changed_files: changed,
        user: meta.user,
        reason,
        tool: Some("custos-plc-watcher".into()),
    })
}

/// One scan: reports for every complete backup not yet read.
fn scan(dir: &Path, name: &Arc<str>, positions: &Positions) -> std::io::Result<Vec<RawRecord>> {
    let mut out = Vec::new();
    let Ok(assets) = std::fs::read_dir(dir) else { return Ok(out) };
    for asset in assets.flatten().filter(|e| e.path().is_dir()) {
        let asset_name = asset.file_name().to_string_lossy().into_owned();
        let Ok(backups) = std::fs::read_dir(asset.path().join("backups")) else { continue };
        let mut ids: Vec<String> = backups
            .flatten()
            .filter(|b| b.path().join("backup.json").is_file())
            .map(|b| b.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        for (n, id) in ids.iter().enumerate() {
            let key: Arc<str> = format!("{name}:{asset_name}/{id}").into();
            if positions.get(&key).is_some() {
                continue;
            }
            let previous = n.checked_sub(1).map(|p| ids[p].as_str());
            let bytes = match compare(&asset_name, &asset.path(), id, previous) {
                Ok(report) => serde_json::to_vec(&report).map_err(std::io::Error::other)?,
                Err(e) => {
                    tracing::warn!(source = %name, asset = %asset_name, backup = %id, error = %e, "cannot read backup");
                    format!("unreadable backup {asset_name}/{id}: {e}").into_bytes()
                }
            };
            let mut rec = RawRecord::new(name.clone(), Format::PlcBackup, now_millis(), bytes);
            rec.position = Some(Position { key, offset: 1 });
            out.push(rec);
        }
    }
    Ok(out)
}

/// Runs the watcher until `stop` is signalled or the raw topic closes.
pub async fn run(
    cfg: PlcWatchConfig,
    positions: Arc<Positions>,
    out: Publisher<RawRecord>,
    handover: Handover,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), SourceError> {
    let name: Arc<str> = cfg.name.as_str().into();
    let poll = Duration::from_millis(cfg.poll_ms.max(10));
    // Reports published but not yet durable must not be published twice.
    let mut in_flight = std::collections::HashSet::new();
    loop {
        let (dir, n, p) = (cfg.dir.clone(), name.clone(), positions.clone());
        let found = tokio::task::spawn_blocking(move || scan(&dir, &n, &p))
            .await
            .map_err(|e| SourceError::io(&cfg.name, "scan", std::io::Error::other(e)))?
            .map_err(|e| SourceError::io(&cfg.name, format!("scan {}", cfg.dir.display()), e))?;
        let fresh: Vec<RawRecord> = found
            .into_iter()
            .filter(|r| r.position.as_ref().is_some_and(|p| in_flight.insert(p.key.clone())))
            .collect();
        hand_over(&out, fresh, &positions, handover, &cfg.name).await?;
        if sleep_or_stop(poll, &mut stop).await {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_backup_with_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let asset = dir.path().join("PLC-01");
        std::fs::create_dir_all(asset.join("released/blocks")).expect("mkdir");
        std::fs::create_dir_all(asset.join("backups/b1/blocks")).expect("mkdir");
        std::fs::write(asset.join("released/blocks/OB1.awl"), "A I 0.0").expect("write");
        std::fs::write(asset.join("released/hw.cfg"), "rack").expect("write");
        std::fs::write(asset.join("backups/b1/blocks/OB1.awl"), "A I 0.1").expect("write");
        std::fs::write(asset.join("backups/b1/hw.cfg"), "rack").expect("write");
        std::fs::write(asset.join("backups/b1/new.db"), "x").expect("write");
        std::fs::write(asset.join("backups/b1/backup.json"), r#"{"time":"2026-11-26T10:00:00Z","user":"alice"}"#)
            .expect("write");
        let r = compare("PLC-01", &asset, "b1", None).expect("compare");
        assert_eq!(r.result, "different");
        assert_eq!(r.changed_files, vec!["blocks/OB1.awl".to_owned(), "new.db".to_owned()]);
        assert_eq!(r.user.as_deref(), Some("alice"));

        let positions = Positions::open(dir.path().join("pos.json")).expect("positions");
        let name: Arc<str> = "plc".into();
        let found = scan(dir.path(), &name, &positions).expect("scan");
        assert_eq!(found.len(), 1);
        let key = found[0].position.as_ref().map(|p| p.key.to_string()).unwrap_or_default();
        positions.commit([(key.as_str(), 1)]).expect("commit");
        assert!(scan(dir.path(), &name, &positions).expect("scan").is_empty(), "a read backup is not read again");

        // A second backup, identical to the first: different from released, equal to the previous one.
        std::fs::create_dir_all(asset.join("backups/b2/blocks")).expect("mkdir");
        for f in ["blocks/OB1.awl", "hw.cfg", "new.db"] {
            std::fs::copy(asset.join("backups/b1").join(f), asset.join("backups/b2").join(f)).expect("copy");
        }
        std::fs::write(asset.join("backups/b2/backup.json"), r#"{"time":"2026-11-26T11:00:00Z"}"#).expect("write");
        let r2 = compare("PLC-01", &asset, "b2", Some("b1")).expect("compare");
        assert_eq!(
            (r2.result.as_str(), r2.previous_result.as_deref(), r2.previous_backup.as_deref()),
            ("different", Some("equal"), Some("b1"))
        );
    }
}
