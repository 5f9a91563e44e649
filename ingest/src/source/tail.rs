//! File tail: follows a log file (Suricata `eve.json`, Zeek logs, badge CSV
//! exports) across rotation and truncation. The byte offset after each line
//! travels with the record and is stored only once the ledger has it, so a
//! restart resumes exactly after the last durable line. Formats whose files
//! carry a header (Zeek `#fields`, a CSV header row) get it attached to every
//! record, also after a restart in the middle of the file.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};

use super::{Handover, MAX_BATCH, Positions, SourceError, hand_over, now_millis, sleep_or_stop};
use crate::bus::Publisher;
use crate::parse::pacs::BadgeMapping;
use crate::parse::{Format, HeaderLines};
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
    /// Column mapping for `format = "badge-csv"`.
    #[serde(default)]
    pub mapping: Option<BadgeMapping>,
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

/// Tracks the header of the file being read.
struct HeaderState {
    kind: HeaderLines,
    lines: Vec<u8>,
    current: Option<Arc<[u8]>>,
}

impl HeaderState {
    fn new(kind: HeaderLines) -> Self {
        Self { kind, lines: Vec::new(), current: None }
    }

    /// Takes in a line that starts at `start`; returns true when it is header, not a record.
    fn take(&mut self, line: &[u8], start: u64) -> bool {
        match self.kind {
            HeaderLines::None => false,
            HeaderLines::First if start == 0 => {
                self.current = Some(Arc::from(line));
                true
            }
            HeaderLines::First => false,
            HeaderLines::Hash if line.starts_with(b"#") => {
                // `#separator` opens a new header block (a new log file or section).
                if line.starts_with(b"#separator") || self.current.is_some() {
                    self.lines.clear();
                    self.current = None;
                }
                self.lines.extend_from_slice(line);
                self.lines.push(b'\n');
                true
            }
            HeaderLines::Hash => {
                if self.current.is_none() && !self.lines.is_empty() {
                    self.current = Some(Arc::from(std::mem::take(&mut self.lines)));
                }
                false
            }
        }
    }

    /// Re-reads the header from the start of the file when resuming mid-file.
    async fn recover(&mut self, path: &Path, upto: u64) -> std::io::Result<()> {
        if self.kind == HeaderLines::None || upto == 0 {
            return Ok(());
        }
        let f = tokio::fs::File::open(path).await?;
        let mut r = BufReader::new(f.take(upto));
        let mut line = Vec::new();
        let mut start = 0u64;
        loop {
            line.clear();
            let n = r.read_until(b'\n', &mut line).await?;
            if n == 0 {
                return Ok(());
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            // A later `#` block may replace an earlier one, so Zeek headers are read up to `upto`.
            self.take(text, start);
            if self.kind == HeaderLines::First {
                return Ok(());
            }
            start += n as u64;
        }
    }
}

/// Runs the tail until `stop` is signalled or the raw topic closes. A stop is
/// taken between batches, never between a publish and its position.
pub async fn run(
    cfg: FileTailConfig,
    positions: Arc<Positions>,
    out: Publisher<RawRecord>,
    handover: Handover,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), SourceError> {
    let name: Arc<str> = cfg.name.as_str().into();
    let poll = Duration::from_millis(cfg.poll_ms.max(10));
    let io = |what: &str| {
        let n = cfg.name.clone();
        let w = what.to_owned();
        move |e| SourceError::io(&n, w, e)
    };
    let mut offset = positions.get(&cfg.name).unwrap_or(0);
    loop {
        let file = match tokio::fs::File::open(&cfg.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if sleep_or_stop(poll, &mut stop).await {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(SourceError::io(&cfg.name, format!("open {}", cfg.path.display()), e)),
        };
        let meta = file.metadata().await.map_err(io("stat"))?;
        let id = file_id(&meta);
        if meta.len() < offset {
            tracing::warn!(source = %name, offset, len = meta.len(), "file is shorter than the stored offset: truncated, reading from the start");
            offset = 0;
        }
        let mut header = HeaderState::new(cfg.format.header_lines());
        header.recover(&cfg.path, offset).await.map_err(io("read header"))?;
        let mut r = BufReader::with_capacity(256 * 1024, file);
        r.seek(SeekFrom::Start(offset)).await.map_err(io("seek"))?;
        let mut line = Vec::with_capacity(4096);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        'read: loop {
            line.clear();
            let n = AsyncReadExt::take(&mut r, cfg.max_line as u64 + 1)
                .read_until(b'\n', &mut line)
                .await
                .map_err(io("read"))?;
            let complete = line.last() == Some(&b'\n');
            if n > 0 && (complete || line.len() > cfg.max_line) {
                let start = offset;
                let mut too_long = None;
                if complete {
                    offset += n as u64;
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                } else {
                    // Over-long line: skip to its end, keep the head as a dead letter.
                    let mut rest = Vec::new();
                    let skipped = r.read_until(b'\n', &mut rest).await.map_err(io("read"))?;
                    offset += (n + skipped) as u64;
                    line.truncate(cfg.max_line);
                    too_long = Some(format!(
                        "{name}: line longer than {} bytes (kept the first {})",
                        cfg.max_line, cfg.max_line
                    ));
                }
                // Header lines are context, not records.
                let is_header = too_long.is_none() && header.take(&line, start);
                if !is_header && (!line.is_empty() || too_long.is_some()) {
                    let mut rec = RawRecord::new(name.clone(), cfg.format, now_millis(), line.clone());
                    rec.transport_error = too_long;
                    rec.position = Some(Position { key: name.clone(), offset });
                    rec.header.clone_from(&header.current);
                    batch.push(rec);
                }
                if batch.len() < MAX_BATCH && !r.buffer().is_empty() {
                    continue;
                }
            } else if n > 0 {
                // A partial last line: re-read it whole once the writer finishes it.
                r.seek(SeekFrom::Start(offset)).await.map_err(io("seek"))?;
            }
            hand_over(&out, std::mem::take(&mut batch), &positions, handover, &cfg.name).await?;
            if *stop.borrow() {
                return Ok(());
            }
            if n > 0 && complete {
                continue;
            }
            // At the end: wait, then check for truncation or rotation.
            loop {
                if sleep_or_stop(poll, &mut stop).await {
                    return Ok(());
                }
                match tokio::fs::metadata(&cfg.path).await {
                    Ok(m) if file_id(&m) != id => {
                        tracing::info!(source = %name, "file rotated: finishing the old file, then following the new one");
                        // Drain what was appended to the old file before it was renamed.
                        let mut rest = Vec::new();
                        r.read_to_end(&mut rest).await.map_err(io("read rotated file"))?;
                        for l in rest.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                            // Start 1: a drained line is never the old file's first line.
                            if !header.take(l, 1) {
                                let mut rec = RawRecord::new(name.clone(), cfg.format, now_millis(), l.to_vec());
                                rec.header.clone_from(&header.current);
                                // Once these are durable the stored position is the start of
                                // the new file: the old file's offset must not carry over.
                                rec.position = Some(Position { key: name.clone(), offset: 0 });
                                batch.push(rec);
                            }
                        }
                        hand_over(&out, std::mem::take(&mut batch), &positions, handover, &cfg.name).await?;
                        if handover == Handover::OnPublish {
                            positions.commit([(cfg.name.as_str(), 0)]).map_err(io("store position"))?;
                        }
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

/// One record of a file: the header it is read under, and its bytes.
pub type FileRecord<'a> = (Option<Arc<[u8]>>, &'a [u8]);

/// Splits a whole file into records, each with the header it is read under,
/// exactly as the tail reads a file (used by `custos replay` and the golden tests).
pub fn split_records(bytes: &[u8], format: Format) -> Vec<FileRecord<'_>> {
    let mut header = HeaderState::new(format.header_lines());
    let mut out = Vec::new();
    let mut start = 0u64;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if !header.take(text, start) && !text.is_empty() {
            out.push((header.current.clone(), text));
        }
        start += line.len() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_attach_to_the_records_under_them() {
        let zeek = b"#separator \\x09\n#fields\ta\n#types\tstring\nx\ny\n#close\tz\n#separator \\x09\n#fields\tb\n#types\tstring\nw\n";
        let recs = split_records(zeek, Format::ZeekTsv);
        assert_eq!(recs.len(), 3);
        assert!(
            recs[0].0.as_deref().is_some_and(|h| h.ends_with(b"#types\tstring\n") && h.windows(2).any(|w| w == b"\ta"))
        );
        assert!(recs[2].0.as_deref().is_some_and(|h| h.windows(2).any(|w| w == b"\tb")));
        let csv = b"h1,h2\r\n1,2\r\n\r\n3,4";
        let recs = split_records(csv, Format::GenetecCsv);
        assert_eq!(recs.iter().map(|r| r.1).collect::<Vec<_>>(), vec![&b"1,2"[..], b"3,4"]);
        assert_eq!(recs[0].0.as_deref(), Some(&b"h1,h2"[..]));
        assert_eq!(split_records(b"a\nb", Format::SuricataEve).len(), 2);
    }
}
