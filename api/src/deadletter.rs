//! The dead-letter store: every record that could not be parsed, one JSON line
//! each in `<data-dir>/deadletter/<UTC date>.jsonl`, with its ledger index,
//! source, reason and raw bytes — for operators to inspect, fix a parser or
//! mapping, and replay. (The ledger holds them too, as evidence.)

use std::io::Write;
use std::path::PathBuf;

use ingest::DeadLetter;
use ingest::time::format_rfc3339;

use crate::views::Stored;

pub struct DeadLetterStore {
    dir: PathBuf,
}

impl DeadLetterStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn append(&self, items: &[Stored<DeadLetter>]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut by_day: std::collections::BTreeMap<String, Vec<u8>> = std::collections::BTreeMap::new();
        for s in items {
            let day = format_rfc3339(s.item.observed_time)[..10].to_owned();
            let mut v = serde_json::to_value(&*s.item).map_err(std::io::Error::other)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("ledger_index".into(), s.index.into());
            }
            let buf = by_day.entry(day).or_default();
            serde_json::to_writer(&mut *buf, &v).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        for (day, buf) in by_day {
            let mut f =
                std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{day}.jsonl")))?;
            f.write_all(&buf)?;
        }
        Ok(())
    }
}
