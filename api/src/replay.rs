//! `custos replay --source KIND FILE...`: feeds recorded logs through the
//! parsers and enrichment (and, with a data directory, through the whole
//! pipeline into its ledger) and summarises per format: lines read, parsed,
//! dead-lettered, and the most common dead-letter reasons.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::parse::pacs::BadgeMapping;
use ingest::source::now_millis;
use ingest::source::tail::split_records;
use ingest::{Format, Inventory, Normalized, Normalizer, RawRecord};
use serde::Serialize;

/// Per-format counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FormatSummary {
    pub files: usize,
    pub bytes: u64,
    pub lines: u64,
    pub parsed: u64,
    pub dead_letters: u64,
    /// Dead-letter reasons (their first two `:` parts) by count, most common first.
    pub top_reasons: Vec<(String, u64)>,
}

/// What to replay.
pub struct Replay {
    pub format: Format,
    pub files: Vec<PathBuf>,
    pub inventory: Arc<Inventory>,
    pub mapping: Option<BadgeMapping>,
    /// Source name in the events. Default `replay`.
    pub source: String,
}

/// Groups reasons that differ only in details (positions, values).
fn reason_key(reason: &str) -> String {
    reason.splitn(3, ": ").take(2).collect::<Vec<_>>().join(": ")
}

/// Progress on stderr, only when it is a terminal.
struct Progress {
    enabled: bool,
    last: Instant,
}

impl Progress {
    fn new() -> Self {
        Self { enabled: std::io::stderr().is_terminal(), last: Instant::now() }
    }
    fn show(&mut self, file: &Path, done: u64, total: u64, lines: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        let bar = "#".repeat((pct / 4) as usize);
        eprint!("\r{} [{bar:<25}] {pct:>3}% {lines} lines ", file.display());
        let _ = std::io::stderr().flush();
    }
    fn done(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

impl Replay {
    /// Reads every file as the file tail would and hands each batch of raw
    /// records to `sink` (the pipeline, or nothing for a dry run). Counts come
    /// from normalising each record here.
    pub async fn run<F, Fut>(&self, mut sink: F) -> std::io::Result<FormatSummary>
    where
        F: FnMut(Vec<RawRecord>) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<()>>,
    {
        let mut summary = FormatSummary { files: self.files.len(), ..FormatSummary::default() };
        let mut normalizer = Normalizer::new(self.inventory.clone(), 0);
        if let Some(m) = &self.mapping {
            normalizer = normalizer.with_mapping(&self.source, m.clone());
        }
        let name: Arc<str> = self.source.as_str().into();
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        let mut progress = Progress::new();
        for file in &self.files {
            let bytes = std::fs::read(file)?;
            summary.bytes += bytes.len() as u64;
            let total = bytes.len() as u64;
            let mut batch = Vec::with_capacity(512);
            let mut consumed = 0u64;
            for (header, line) in split_records(&bytes, self.format) {
                consumed += line.len() as u64 + 1;
                let mut raw = RawRecord::new(name.clone(), self.format, now_millis(), line.to_vec());
                raw.header = header;
                summary.lines += 1;
                match normalizer.normalize(raw.clone()).record {
                    Normalized::Event(_) => summary.parsed += 1,
                    Normalized::DeadLetter(d) => {
                        summary.dead_letters += 1;
                        *reasons.entry(reason_key(&d.reason)).or_default() += 1;
                    }
                }
                batch.push(raw);
                if batch.len() == 512 {
                    sink(std::mem::take(&mut batch)).await?;
                    progress.show(file, consumed.min(total), total, summary.lines);
                }
            }
            sink(batch).await?;
            progress.show(file, total, total, summary.lines);
        }
        progress.done();
        let mut top: Vec<(String, u64)> = reasons.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(10);
        summary.top_reasons = top;
        Ok(summary)
    }
}

impl std::fmt::Display for FormatSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "files {}  bytes {}  lines {}  parsed {}  dead letters {}",
            self.files, self.bytes, self.lines, self.parsed, self.dead_letters
        )?;
        for (reason, n) in &self.top_reasons {
            writeln!(f, "  {n:>8}  {reason}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_group_without_details() {
        assert_eq!(
            reason_key("suricata-eve: not JSON: EOF while parsing at line 1 column 67"),
            "suricata-eve: not JSON"
        );
        assert_eq!(reason_key("syslog: missing <PRI> at start"), "syslog: missing <PRI> at start");
    }

    #[tokio::test]
    async fn dry_run_counts_and_reasons() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("eve.json");
        std::fs::write(
            &f,
            "{\"timestamp\":\"2026-11-26T10:00:00Z\",\"event_type\":\"flow\"}\nbroken\n{\"event_type\":\"flow\"}\n",
        )
        .expect("write");
        let r = Replay {
            format: Format::SuricataEve,
            files: vec![f],
            inventory: Arc::new(Inventory::default()),
            mapping: None,
            source: "replay".into(),
        };
        let mut sent = 0;
        let s = r
            .run(|b| {
                sent += b.len();
                async { Ok(()) }
            })
            .await
            .expect("replay");
        assert_eq!((s.lines, s.parsed, s.dead_letters), (3, 1, 2));
        assert_eq!(sent, 3);
        assert_eq!(s.top_reasons.len(), 2);
    }
}
