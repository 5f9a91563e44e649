//! The Parquet archive SQL reads: events, alerts, incident versions, audit
//! records and e-signatures as columns, under
//! `<dir>/<table>/day=YYYY-MM-DD/[class=NNNN/]part-<from>-<to>.parquet`.
//!
//! Like the search index it is derived from the ledger. Rows are buffered and
//! written together; `POSITION` names the next ledger index once every file
//! of a flush is in place, and files a crash left beyond it are removed on
//! open, so each record is archived exactly once.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType as T, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use ingest::Event;
use ledger::RecordKind;
use serde_json::{Map, Value};

mod columns;
use columns::EventColumns;

/// The tables, their partition columns, and what the rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Events,
    Alerts,
    IncidentHistory,
    Audit,
    Signatures,
}

impl Table {
    pub const ALL: [Table; 5] = [Self::Events, Self::Alerts, Self::IncidentHistory, Self::Audit, Self::Signatures];

    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Alerts => "alerts",
            Self::IncidentHistory => "incident_history",
            Self::Audit => "audit",
            Self::Signatures => "signatures",
        }
    }

    /// Hive-style partition columns (directory levels), in order.
    pub fn partitions(self) -> &'static [&'static str] {
        match self {
            Self::Events => &["day", "class"],
            _ => &["day"],
        }
    }

    fn of(kind: RecordKind) -> Option<Self> {
        match kind {
            RecordKind::Event => Some(Self::Events),
            RecordKind::Alert => Some(Self::Alerts),
            RecordKind::Incident => Some(Self::IncidentHistory),
            RecordKind::Audit => Some(Self::Audit),
            RecordKind::Signature => Some(Self::Signatures),
            _ => None,
        }
    }

    /// Columns in the Parquet files (partition columns are directories).
    pub fn schema(self) -> SchemaRef {
        let ts = || T::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let s = |n: &str| Field::new(n, T::Utf8, true);
        let list = |n: &str, t: T| Field::new(n, T::List(Arc::new(Field::new("item", t, true))), true);
        let head = || vec![Field::new("ledger_index", T::UInt64, false), Field::new("recorded_at", ts(), false)];
        let fields = match self {
            Self::Events => {
                let mut f = vec![Field::new("recorded_at", ts(), false)];
                f.extend(ingest::event::arrow_schema().fields().iter().map(|f| f.as_ref().clone()));
                f
            }
            Self::Alerts => [
                head(),
                vec![
                    s("id"),
                    s("rule"),
                    s("title"),
                    Field::new("severity_id", T::UInt8, true),
                    list("attack", T::Utf8),
                    Field::new("time", ts(), true),
                    s("entity_kind"),
                    s("entity_id"),
                    s("zone"),
                    list("events", T::UInt64),
                    s("summary"),
                ],
            ]
            .concat(),
            Self::IncidentHistory => [
                head(),
                vec![
                    s("id"),
                    s("rule"),
                    list("rules", T::Utf8),
                    s("title"),
                    Field::new("severity_id", T::UInt8, true),
                    s("state"),
                    list("attack", T::Utf8),
                    s("entity_kind"),
                    s("entity_id"),
                    s("zone"),
                    Field::new("opened_at", ts(), true),
                    Field::new("last_alert_at", ts(), true),
                    list("alerts", T::Utf8),
                    list("events", T::UInt64),
                    s("history"),
                    // Archived before notes and assignees existed: null.
                    s("assignee"),
                    s("notes"),
                ],
            ]
            .concat(),
            Self::Audit => [
                head(),
                vec![
                    s("actor"),
                    s("printed_name"),
                    s("role"),
                    s("action"),
                    s("reason"),
                    Field::new("clock_synchronized", T::Boolean, true),
                    s("details"),
                ],
            ]
            .concat(),
            Self::Signatures => [
                head(),
                vec![
                    s("signer"),
                    s("printed_name"),
                    s("meaning"),
                    s("reason"),
                    Field::new("record_index", T::UInt64, true),
                    s("record_sha256"),
                    // An audit-trail review's period and binding (JSON); null otherwise.
                    s("review"),
                ],
            ]
            .concat(),
        };
        Arc::new(Schema::new(fields))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("archive {}: {what}", path.display())]
pub struct ArchiveError {
    pub path: PathBuf,
    pub what: String,
}

/// The archive writer.
pub struct Archive {
    dir: PathBuf,
    /// Next ledger index to archive (what `POSITION` says).
    committed: u64,
    next: u64,
    /// Events waiting for the next flush, by partition (UTC day number, class).
    events: BTreeMap<(i64, u32), EventColumns>,
    /// Rows of the other tables waiting for the next flush, by table and partition directory.
    buffer: BTreeMap<(Table, String), Vec<Value>>,
    rows: usize,
}

const POSITION: &str = "POSITION";

impl Archive {
    pub fn open(dir: &Path) -> Result<Self, ArchiveError> {
        let err = |what: String| ArchiveError { path: dir.to_path_buf(), what };
        fs::create_dir_all(dir).map_err(|e| err(format!("create: {e}")))?;
        let committed = match fs::read_to_string(dir.join(POSITION)) {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| err(format!("{POSITION} holds {s:?}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(err(format!("read {POSITION}: {e}"))),
        };
        // A merge a crash interrupted is finished or abandoned; its temporary file goes.
        for d in partition_dirs(dir).map_err(|e| err(format!("list: {e}")))? {
            recover_merge(&d)?;
            for entry in fs::read_dir(&d).map_err(|e| err(format!("list: {e}")))?.flatten() {
                let name = entry.file_name();
                if name.to_str().is_some_and(|n| n.starts_with(".part-") && n.ends_with(".tmp")) {
                    fs::remove_file(entry.path()).map_err(|e| err(format!("remove: {e}")))?;
                }
            }
        }
        // Files of a flush the position does not cover were cut short by a crash.
        for path in part_files(dir).map_err(|e| err(format!("list: {e}")))? {
            if part_range(&path).is_none_or(|(from, _)| from >= committed) {
                fs::remove_file(&path).map_err(|e| err(format!("remove {}: {e}", path.display())))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            committed,
            next: committed,
            events: BTreeMap::new(),
            buffer: BTreeMap::new(),
            rows: 0,
        })
    }

    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// The ledger index up to which the files hold the records.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Rows buffered for the next flush.
    pub fn pending(&self) -> usize {
        self.rows
    }

    /// Buffers the event in ledger record `index`; `unmapped` is its vendor
    /// fields' JSON text when the caller has it (else they are written from `event`).
    pub fn add_event(&mut self, index: u64, recorded_at: i64, event: &Event, unmapped: Option<&str>) {
        if index < self.next {
            return;
        }
        self.next = index + 1;
        let partition = (event.time.div_euclid(DAY_MS), event.class_uid);
        self.events.entry(partition).or_default().append(index, recorded_at, event, unmapped);
        self.rows += 1;
    }

    /// Buffers ledger record `index` of another kind; kinds without a table
    /// only move the position.
    pub fn add(&mut self, index: u64, kind: RecordKind, recorded_at: i64, data: &Value) {
        if index < self.next {
            return;
        }
        self.next = index + 1;
        let Some(table) = Table::of(kind).filter(|t| *t != Table::Events) else { return };
        let Some((partition, row)) = row(table, index, recorded_at, data) else { return };
        self.buffer.entry((table, partition)).or_default().push(Value::Object(row));
        self.rows += 1;
    }

    /// Writes the buffered rows (one file per partition) and moves `POSITION`.
    pub fn flush(&mut self) -> Result<(), ArchiveError> {
        if self.next == self.committed {
            return Ok(());
        }
        let (from, to) = (self.committed, self.next - 1);
        let name = format!("part-{from:020}-{to:020}.parquet");
        let mut written = Vec::new();
        for ((day_number, class), columns) in std::mem::take(&mut self.events) {
            let partition = format!("day={}/class={class}", day(day_number * DAY_MS));
            let dir = self.dir.join(Table::Events.name()).join(&partition);
            let batches = columns.finish().map_err(|e| ArchiveError { path: dir.clone(), what: e.to_string() })?;
            write_batches(&dir, &name, Table::Events.schema(), &batches)?;
            written.push((dir, Table::Events));
        }
        for ((table, partition), rows) in std::mem::take(&mut self.buffer) {
            let dir = self.dir.join(table.name()).join(&partition);
            let batch = json_batch(&dir, table.schema(), &rows)?;
            write_batches(&dir, &name, table.schema(), std::slice::from_ref(&batch))?;
            written.push((dir, table));
        }
        let position = self.dir.join(POSITION);
        ingest::source::replace_file(&position, self.next.to_string().as_bytes())
            .map_err(|e| ArchiveError { path: position, what: format!("write: {e}") })?;
        self.committed = self.next;
        self.rows = 0;
        for (dir, table) in written {
            // Only committed files are merged; a failed merge leaves them as they were.
            if let Err(e) = compact(&dir, table.schema()) {
                tracing::warn!(error = %e, "archive files not merged");
            }
        }
        Ok(())
    }
}

/// Every directory below `dir` (the partitions and their parents) and every
/// `part-*` file in them.
fn walk(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path.clone());
                dirs.push(path);
            } else if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("part-")) {
                files.push(path);
            }
        }
    }
    Ok((dirs, files))
}

fn partition_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    walk(dir).map(|(dirs, _)| dirs)
}

fn part_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    walk(dir).map(|(_, files)| files)
}

/// Files of one size tier in a partition before they are merged into one:
/// a steady trickle of small flushes would otherwise leave thousands of
/// files for SQL to open. Each row is rewritten about log8(rows) times.
const MERGE_FAN_IN: usize = 8;
/// Lists the files a merge replaces while it runs (see [`recover_merge`]).
const MERGE_JOURNAL: &str = "MERGE";

fn rows_in(path: &Path) -> Result<i64, String> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    Ok(reader.metadata().file_metadata().num_rows())
}

/// Merges the files of the fullest size tier of partition `dir` when it has
/// [`MERGE_FAN_IN`] of them.
fn compact(dir: &Path, schema: SchemaRef) -> Result<(), ArchiveError> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let err = |what: String| ArchiveError { path: dir.to_path_buf(), what };
    let mut tiers: BTreeMap<u32, Vec<(PathBuf, u64, u64)>> = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(|e| err(format!("list: {e}")))? {
        let path = entry.map_err(|e| err(format!("list: {e}")))?.path();
        let Some((from, to)) = part_range(&path) else { continue };
        let rows = rows_in(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let tier = (rows.max(1) as u64 / 1024).max(1).ilog(MERGE_FAN_IN as u64);
        tiers.entry(tier).or_default().push((path, from, to));
    }
    let Some(mut inputs) = tiers.into_values().find(|files| files.len() >= MERGE_FAN_IN) else { return Ok(()) };
    inputs.sort_by_key(|(_, from, _)| *from);
    let from = inputs.iter().map(|f| f.1).min().unwrap_or(0);
    let to = inputs.iter().map(|f| f.2).max().unwrap_or(0);
    let name = format!("part-{from:020}-{to:020}.parquet");
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = fs::File::create(&tmp).map_err(|e| err(format!("create: {e}")))?;
    let props = writer_properties();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| err(e.to_string()))?;
    for (path, _, _) in &inputs {
        let f = fs::File::open(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.with_batch_size(65_536).build())
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        for batch in reader {
            let batch = batch.map_err(|e| err(format!("{}: {e}", path.display())))?;
            writer.write(&batch).map_err(|e| err(e.to_string()))?;
        }
    }
    writer.into_inner().and_then(|f| f.sync_all().map_err(Into::into)).map_err(|e| err(e.to_string()))?;
    // Journal, then the merged file, then the inputs go: a crash in between
    // is finished by `recover_merge` on the next open.
    let journal: Vec<String> =
        inputs.iter().filter_map(|(p, _, _)| p.file_name()?.to_str().map(str::to_owned)).collect();
    let journal = format!("{name}\n{}\n", journal.join("\n"));
    fs::write(dir.join(MERGE_JOURNAL), journal).map_err(|e| err(format!("journal: {e}")))?;
    fs::rename(&tmp, dir.join(&name)).map_err(|e| err(format!("rename: {e}")))?;
    recover_merge(dir)
}

/// Finishes (or abandons) a merge a crash interrupted: if the merged file is
/// in place its inputs go, else the merge never happened.
fn recover_merge(dir: &Path) -> Result<(), ArchiveError> {
    let err = |what: String| ArchiveError { path: dir.join(MERGE_JOURNAL), what };
    let journal = match fs::read_to_string(dir.join(MERGE_JOURNAL)) {
        Ok(j) => j,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(e.to_string())),
    };
    let mut lines = journal.lines();
    let merged = lines.next().unwrap_or_default();
    if dir.join(merged).is_file() {
        for input in lines.filter(|l| !l.is_empty() && *l != merged) {
            match fs::remove_file(dir.join(input)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(format!("remove {input}: {e}"))),
            }
        }
    }
    fs::remove_file(dir.join(MERGE_JOURNAL)).map_err(|e| err(e.to_string()))
}

/// `(from, to)` of `part-<from>-<to>.parquet`.
fn part_range(path: &Path) -> Option<(u64, u64)> {
    let name = path.file_name()?.to_str()?.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (a, b) = name.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The rows (JSON objects named like the columns) as one batch.
fn json_batch(dir: &Path, schema: SchemaRef, rows: &[Value]) -> Result<RecordBatch, ArchiveError> {
    let err = |what: String| ArchiveError { path: dir.to_path_buf(), what };
    let decoder = || {
        ReaderBuilder::new(schema.clone())
            .with_batch_size(rows.len().max(1))
            .build_decoder()
            .map_err(|e| err(e.to_string()))
    };
    let mut all = decoder()?;
    if all.serialize(rows).is_err() {
        // A row this schema cannot hold (a ledger written by another version):
        // archive the others and say which were left out.
        all = decoder()?;
        for r in rows {
            let fits = ReaderBuilder::new(schema.clone())
                .build_decoder()
                .and_then(|mut d| d.serialize(std::slice::from_ref(r)).and_then(|()| d.flush()));
            match fits {
                Ok(_) => all.serialize(std::slice::from_ref(r)).map_err(|e| err(format!("rows: {e}")))?,
                Err(e) => tracing::warn!(
                    ledger_index = r.get("ledger_index").and_then(serde_json::Value::as_u64),
                    error = %e,
                    "record left out of the archive: its values do not fit the table's columns"
                ),
            }
        }
    }
    Ok(all.flush().map_err(|e| err(format!("rows: {e}")))?.unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

/// Snappy, and no dictionary for the columns whose values are unique per row
/// (ledger index, times, the raw record): their dictionary would be tried and
/// dropped for every page, hashing every value on the way. The raw record
/// keeps no statistics: it is never a range to prune by, and comparing its
/// bytes cost more than the rest of its column.
fn writer_properties() -> WriterProperties {
    use datafusion::parquet::file::properties::EnabledStatistics;
    use datafusion::parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder().set_compression(Compression::SNAPPY);
    for unique in ["ledger_index", "recorded_at", "time", "observed_time", "raw"] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(unique), false);
    }
    b.set_column_statistics_enabled(ColumnPath::from("raw"), EnabledStatistics::None).build()
}

/// Writes `batches` as one file `dir/name`, whole or not at all.
fn write_batches(dir: &Path, name: &str, schema: SchemaRef, batches: &[RecordBatch]) -> Result<(), ArchiveError> {
    let err = |what: String| ArchiveError { path: dir.join(name), what };
    fs::create_dir_all(dir).map_err(|e| err(format!("create: {e}")))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = fs::File::create(&tmp).map_err(|e| err(format!("create: {e}")))?;
    let props = writer_properties();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| err(e.to_string()))?;
    for batch in batches {
        writer.write(batch).map_err(|e| err(e.to_string()))?;
    }
    let file = writer.into_inner().map_err(|e| err(e.to_string()))?;
    file.sync_all().map_err(|e| err(format!("sync: {e}")))?;
    fs::rename(&tmp, dir.join(name)).map_err(|e| err(format!("rename: {e}")))
}

const DAY_MS: i64 = 86_400_000;

fn day(ms: i64) -> String {
    ingest::time::format_rfc3339(ms).get(..10).unwrap_or("1970-01-01").to_owned()
}

fn json_text(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(v) => Value::String(v.to_string()),
    }
}

/// The row for a record and the partition directory it goes in. Columns keep
/// the event contract's names, flattened with `_` (`src.ip` → `src_ip`).
fn row(table: Table, index: u64, recorded_at: i64, d: &Value) -> Option<(String, Map<String, Value>)> {
    let src = d.as_object()?;
    let mut row = Map::new();
    row.insert("ledger_index".into(), index.into());
    row.insert("recorded_at".into(), recorded_at.into());
    let partition = match table {
        // Events are typed and go through `EventColumns`.
        Table::Events => return None,
        Table::Alerts | Table::IncidentHistory => {
            for (k, v) in src {
                match k.as_str() {
                    "entity" => {
                        row.insert("entity_kind".into(), v.get("kind").cloned().unwrap_or(Value::Null));
                        row.insert("entity_id".into(), v.get("id").cloned().unwrap_or(Value::Null));
                    }
                    "history" | "notes" => {
                        row.insert(k.clone(), json_text(Some(v)));
                    }
                    _ => {
                        row.insert(k.clone(), v.clone());
                    }
                }
            }
            let time = src.get("time").or_else(|| src.get("last_alert_at")).and_then(Value::as_i64);
            format!("day={}", day(time.unwrap_or(recorded_at)))
        }
        Table::Audit => {
            for k in ["actor", "printed_name", "role", "action", "reason"] {
                row.insert(k.into(), src.get(k).cloned().unwrap_or(Value::Null));
            }
            row.insert("clock_synchronized".into(), d.pointer("/clock/synchronized").cloned().unwrap_or(Value::Null));
            row.insert("details".into(), json_text(src.get("details")));
            format!("day={}", day(recorded_at))
        }
        Table::Signatures => {
            for k in ["signer", "printed_name", "meaning", "reason", "record_index", "record_sha256"] {
                row.insert(k.into(), src.get(k).cloned().unwrap_or(Value::Null));
            }
            if let Some(review) = src.get("review") {
                row.insert("review".into(), json_text(Some(review)));
            }
            format!("day={}", day(recorded_at))
        }
    };
    Some((partition, row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn count_files(dir: &Path) -> usize {
        part_files(dir).map(|f| f.len()).unwrap_or(0)
    }

    #[test]
    fn records_land_in_day_and_class_partitions_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = Archive::open(dir.path()).expect("open");
        let ev = |t: i64, class: ingest::event::EventClass| {
            let mut e = Event::new(class, 1, t, t, b"\xff");
            e.zone = Some("cell-1".into());
            e.src_mut().ip = "10.0.0.1".parse().ok();
            e.unmapped.insert("k", "v");
            e
        };
        use ingest::event::EventClass::{NetworkActivity, PhysicalAccess};
        a.add(0, RecordKind::Key, 0, &json!({}));
        a.add_event(1, 5, &ev(1_795_687_200_000, NetworkActivity), None);
        a.add_event(2, 5, &ev(1_795_687_200_000 + 86_400_000, NetworkActivity), None);
        a.add_event(3, 5, &ev(1_795_687_200_000, PhysicalAccess), None);
        a.add(
            4,
            RecordKind::Audit,
            1_795_687_200_000,
            &json!({"actor": "qa", "action": "login", "reason": "",
              "clock": {"synchronized": true}, "details": {"ip": "x"}}),
        );
        a.flush().expect("flush");
        assert_eq!(count_files(dir.path()), 4);
        assert!(dir.path().join("events/day=2026-11-26/class=4001").is_dir());
        assert!(dir.path().join("events/day=2026-11-27/class=4001").is_dir());
        assert!(dir.path().join("audit/day=2026-11-26").is_dir());

        // A flush a crash cut short: its files are beyond POSITION and go on open.
        let stray =
            dir.path().join("events/day=2026-11-26/class=4001/part-00000000000000000005-00000000000000000009.parquet");
        fs::write(&stray, b"half").expect("write");
        let mut a = Archive::open(dir.path()).expect("reopen");
        assert!(!stray.exists());
        assert_eq!(a.next_index(), 5);
        a.add_event(3, 5, &ev(0, NetworkActivity), None);
        assert_eq!(a.pending(), 0, "records already archived are not archived again");
    }

    fn rows_below(dir: &Path) -> i64 {
        part_files(dir).expect("list").iter().map(|p| rows_in(p).expect("rows")).sum()
    }

    #[test]
    fn small_files_are_merged_and_an_interrupted_merge_is_finished() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = Archive::open(dir.path()).expect("open");
        let audit = json!({"actor": "qa", "action": "search", "reason": "", "details": {}});
        for i in 0..MERGE_FAN_IN as u64 - 1 {
            a.add(i, RecordKind::Audit, 1_795_687_200_000, &audit);
            a.flush().expect("flush");
        }
        let partition = dir.path().join("audit/day=2026-11-26");
        assert_eq!(count_files(dir.path()), MERGE_FAN_IN - 1);
        a.add(100, RecordKind::Audit, 1_795_687_200_000, &audit);
        a.flush().expect("flush");
        assert_eq!(count_files(dir.path()), 1, "eight small files became one");
        assert_eq!(rows_below(dir.path()), MERGE_FAN_IN as i64);
        let merged = part_files(dir.path()).expect("list")[0].clone();
        assert_eq!(part_range(&merged), Some((0, 100)));

        // A crash after the merged file was renamed into place but before its
        // inputs went: the journal names them, and opening removes them.
        let input = partition.join("part-00000000000000000200-00000000000000000200.parquet");
        fs::copy(&merged, &input).expect("copy");
        let name = merged.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        fs::write(
            partition.join(MERGE_JOURNAL),
            format!("{name}\npart-00000000000000000200-00000000000000000200.parquet\n"),
        )
        .expect("journal");
        fs::write(dir.path().join(POSITION), "201").expect("position");
        fs::write(partition.join(".part-x.parquet.tmp"), b"half").expect("tmp");
        let a = Archive::open(dir.path()).expect("reopen");
        assert!(!input.exists() && !partition.join(MERGE_JOURNAL).exists());
        assert!(!partition.join(".part-x.parquet.tmp").exists());
        assert_eq!(rows_below(dir.path()), MERGE_FAN_IN as i64, "no row twice");
        assert_eq!(a.next_index(), 201);
    }
}
