//! File tail: follows a log file (Suricata `eve.json`, badge CSV exports) across
//! rotation and truncation. The byte offset after each line travels with the
//! record and is stored only once the ledger has it, so a restart resumes
//! exactly after the last durable line.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};

use super::{MAX_BATCH, Positions, SourceError, now_millis};
use crate::bus::Publisher;
use crate::parse::Format;
use crate::record::{Position, RawRecord};

fn default_poll_ms() -> u64 {
    250
}
fn default_max_line() -> usize {
    1024 * 1024
}

/// `[[sources.file]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTailConfig {
    /// Source name; also the key of the stored offset.
    pub name: String,
    pub path: PathBuf,
    pub format: Format,
    /// How often to look for new data, rotation and truncation. Default 250 ms.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Longest accepted line in bytes; longer ones are dead-lettered. Default 1 MiB.
    #[serde(default = "default_max_line")]
    pub max_line: usize,
}

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}
#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> u64 {
    0
}

/// Runs the tail until the raw topic closes.
pub async fn run(cfg: FileTailConfig, positions: Arc<Positions>, out: Publisher<RawRecord>) -> Result<(), SourceError> {
    let name: Arc<str> = cfg.name.as_str().into();
    let poll = Duration::from_millis(cfg.poll_ms.max(10));
    let mut offset = positions.get(&cfg.name).unwrap_or(0);
    loop {
        let file = match tokio::fs::File::open(&cfg.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tokio::time::sleep(poll).await;
                continue;
            }
            Err(e) => return Err(SourceError::io(&cfg.name, format!("open {}", cfg.path.display()), e)),
        };
        let meta = file.metadata().await.map_err(|e| SourceError::io(&cfg.name, "stat", e))?;
        let id = file_id(&meta);
        if meta.len() < offset {
            tracing::warn!(source = %name, offset, len = meta.len(), "file is shorter than the stored offset: truncated, reading from the start");
            offset = 0;
        }
        let mut r = BufReader::with_capacity(256 * 1024, file);
        r.seek(SeekFrom::Start(offset)).await.map_err(|e| SourceError::io(&cfg.name, "seek", e))?;
        let mut line = Vec::with_capacity(4096);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        'read: loop {
            line.clear();
            let n = tokio::io::AsyncReadExt::take(&mut r, cfg.max_line as u64 + 1)
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| SourceError::io(&cfg.name, "read", e))?;
            let complete = line.last() == Some(&b'\n');
            if n > 0 && (complete || line.len() > cfg.max_line) {
                let mut rec;
                if complete {
                    offset += n as u64;
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    rec = RawRecord::new(name.clone(), cfg.format, now_millis(), line.clone());
                } else {
                    // Over-long line: skip to its end, keep the head as a dead letter.
                    let mut rest = Vec::new();
                    let skipped =
                        r.read_until(b'\n', &mut rest).await.map_err(|e| SourceError::io(&cfg.name, "read", e))?;
                    offset += (n + skipped) as u64;
                    line.truncate(cfg.max_line);
                    rec = RawRecord::new(name.clone(), cfg.format, now_millis(), line.clone());
                    rec.transport_error = Some(format!(
                        "{name}: line longer than {} bytes (kept the first {})",
                        cfg.max_line, cfg.max_line
                    ));
                }
                rec.position = Some(Position { key: name.clone(), offset });
                if !rec.bytes.is_empty() || rec.transport_error.is_some() {
                    batch.push(rec);
                }
                if batch.len() < MAX_BATCH && !r.buffer().is_empty() {
                    continue;
                }
            } else if n > 0 {
                // A partial last line: re-read it whole once the writer finishes it.
                r.seek(SeekFrom::Start(offset)).await.map_err(|e| SourceError::io(&cfg.name, "seek", e))?;
            }
            out.publish(std::mem::take(&mut batch))
                .await
                .map_err(|_| SourceError::BusClosed { source_name: cfg.name.clone() })?;
            if n > 0 && complete {
                continue;
            }
            // At the end: wait, then check for truncation or rotation.
            loop {
                tokio::time::sleep(poll).await;
                match tokio::fs::metadata(&cfg.path).await {
                    Ok(m) if file_id(&m) != id => {
                        tracing::info!(source = %name, "file rotated: finishing the old file, then following the new one");
                        // Drain what was appended to the old file before it was renamed.
                        let mut rest = Vec::new();
                        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut rest)
                            .await
                            .map_err(|e| SourceError::io(&cfg.name, "read rotated file", e))?;
                        for l in rest.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                            batch.push(RawRecord::new(name.clone(), cfg.format, now_millis(), l.to_vec()));
                        }
                        out.publish(std::mem::take(&mut batch))
                            .await
                            .map_err(|_| SourceError::BusClosed { source_name: cfg.name.clone() })?;
                        offset = 0;
                        break 'read;
                    }
                    Ok(m) if m.len() < offset => {
                        tracing::warn!(source = %name, "file truncated: reading from the start");
                        offset = 0;
                        break 'read;
                    }
                    Ok(m) if m.len() > offset => continue 'read,
                    _ => {}
                }
            }
        }
    }
}
