//! The derived views that follow the ledger: the search index and the Parquet
//! archive. One thread reads what the ledger made durable and feeds both; each
//! keeps its own position, so a restart (or `custos reindex`) resumes exactly.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledger::Ledger;

use crate::Error;
use crate::archive::Archive;
use crate::search::{SearchIndex, Searcher};
pub use ledger_event::LedgerEvent;

mod ledger_event;

/// How often the views publish what they have.
#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    /// New records become searchable this often. Default 1 s.
    pub search_commit: Duration,
    /// The archive writes files this often (sooner when `archive_rows` wait):
    /// fewer, larger files make SQL faster. Default 10 s.
    pub archive_flush: Duration,
    /// Default 250,000 rows.
    pub archive_rows: usize,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self { search_commit: Duration::from_secs(1), archive_flush: Duration::from_secs(10), archive_rows: 250_000 }
    }
}
/// Records read from the ledger per step.
const STEP: u64 = 8192;
/// Records handed to the archive thread at a time.
const ARCHIVE_CHUNK: usize = 1024;

/// A record for the archive.
// Events are nearly every item: boxing them would cost an allocation each,
// and the other variant is rare.
#[allow(clippy::large_enum_variant)]
enum ArchiveItem {
    /// Ledger index, recorded at, the event, and its vendor fields as the ledger's JSON text.
    Event(u64, i64, ingest::Event, Option<Box<str>>),
    Other(u64, ledger::RecordKind, i64, serde_json::Value),
}

enum ArchiveJob {
    Items(Vec<ArchiveItem>),
    /// Write what is buffered now, then answer.
    Flush(std::sync::mpsc::SyncSender<Result<(), String>>),
}

/// The archive on a thread of its own: building columns and writing Parquet
/// cost about what indexing costs, so the two run side by side.
struct ArchiveWorker {
    tx: Option<std::sync::mpsc::SyncSender<ArchiveJob>>,
    /// Emptied chunks coming back, so a chunk's megabyte is not allocated
    /// (and its pages faulted in) afresh for every 1,024 records.
    spent: std::sync::mpsc::Receiver<Vec<ArchiveItem>>,
    thread: Option<std::thread::JoinHandle<()>>,
    chunk: Vec<ArchiveItem>,
    /// Next ledger index to hand over.
    next: u64,
    /// What `POSITION` says, as the thread last wrote it.
    committed: Arc<AtomicU64>,
    /// Why the thread stopped, when it failed.
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

impl ArchiveWorker {
    fn spawn(archive: Archive, options: FollowOptions) -> Result<Self, Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ArchiveJob>(8);
        let (give_back, spent) = std::sync::mpsc::sync_channel(8);
        let committed = Arc::new(AtomicU64::new(archive.committed()));
        let failed = Arc::new(std::sync::Mutex::new(None));
        let next = archive.next_index();
        let (pos, why) = (committed.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name("custos-archive".into())
            .spawn(move || {
                if let Err(e) = run_archive(archive, rx, &give_back, options, &pos) {
                    tracing::error!(error = %e, "the Parquet archive stopped following the ledger");
                    *why.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                }
            })
            .map_err(|e| Error::Derived(format!("start archive thread: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            spent,
            thread: Some(thread),
            chunk: Vec::with_capacity(ARCHIVE_CHUNK),
            next,
            committed,
            failed,
        })
    }

    fn add(&mut self, item: ArchiveItem) -> Result<(), Error> {
        let index = match &item {
            ArchiveItem::Event(i, ..) | ArchiveItem::Other(i, ..) => *i,
        };
        if index < self.next {
            return Ok(());
        }
        self.next = index + 1;
        self.chunk.push(item);
        if self.chunk.len() >= ARCHIVE_CHUNK {
            self.hand_over()?;
        }
        Ok(())
    }

    fn send(&self, job: ArchiveJob) -> Result<(), Error> {
        let stopped = || {
            let why = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            Error::Derived(format!("archive: {}", why.unwrap_or_else(|| "the archive thread stopped".into())))
        };
        self.tx.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())
    }

    fn hand_over(&mut self) -> Result<(), Error> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let next = self.spent.try_recv().unwrap_or_else(|_| Vec::with_capacity(ARCHIVE_CHUNK));
        let chunk = std::mem::replace(&mut self.chunk, next);
        self.send(ArchiveJob::Items(chunk))
    }

    /// Hands over what is waiting; with `wait`, also writes it and returns once `POSITION` moved.
    fn flush(&mut self, wait: bool) -> Result<(), Error> {
        self.hand_over()?;
        if wait {
            let (reply, answer) = std::sync::mpsc::sync_channel(1);
            self.send(ArchiveJob::Flush(reply))?;
            answer
                .recv()
                .map_err(|_| Error::Derived("archive: the archive thread stopped".into()))?
                .map_err(|e| Error::Derived(format!("archive: {e}")))?;
        }
        Ok(())
    }
}

/// The archive thread: buffers what comes and writes files when due or asked.
fn run_archive(
    mut archive: Archive,
    jobs: std::sync::mpsc::Receiver<ArchiveJob>,
    give_back: &std::sync::mpsc::SyncSender<Vec<ArchiveItem>>,
    options: FollowOptions,
    committed: &AtomicU64,
) -> Result<(), String> {
    use std::sync::mpsc::RecvTimeoutError;
    let flush = |archive: &mut Archive| {
        archive.flush().map_err(|e| e.to_string())?;
        committed.store(archive.committed(), Ordering::Relaxed);
        Ok::<Instant, String>(Instant::now())
    };
    let mut last_flush = Instant::now();
    // Wakes up to write files on time when nothing new comes.
    let wake = options.archive_flush.max(Duration::from_millis(20));
    loop {
        match jobs.recv_timeout(wake) {
            Ok(ArchiveJob::Items(mut items)) => {
                for item in items.drain(..) {
                    match item {
                        ArchiveItem::Event(i, at, e, unmapped) => archive.add_event(i, at, &e, unmapped.as_deref()),
                        ArchiveItem::Other(i, kind, at, data) => archive.add(i, kind, at, &data),
                    }
                }
                // Kept only while the follower has room for it.
                let _ = give_back.try_send(items);
            }
            Ok(ArchiveJob::Flush(reply)) => {
                let written = flush(&mut archive);
                let _ = reply.send(written.clone().map(|_| ()));
                last_flush = written?;
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        if archive.pending() >= options.archive_rows || last_flush.elapsed() >= options.archive_flush {
            last_flush = flush(&mut archive)?;
        }
    }
}

impl Drop for ArchiveWorker {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Derived {
    search: SearchIndex,
    archive: ArchiveWorker,
    last_commit: Instant,
    options: FollowOptions,
    /// Records the views could not read (a newer version's records), skipped.
    pub unreadable: u64,
}

impl Derived {
    /// Opens `<data>/index` and `<data>/archive`.
    pub fn open(data_dir: &Path, options: FollowOptions) -> Result<Self, Error> {
        let search = SearchIndex::open(&data_dir.join("index")).map_err(|e| Error::Derived(e.to_string()))?;
        let archive = Archive::open(&data_dir.join("archive")).map_err(|e| Error::Derived(e.to_string()))?;
        let archive = ArchiveWorker::spawn(archive, options)?;
        Ok(Self { search, archive, last_commit: Instant::now(), options, unreadable: 0 })
    }

    /// The first ledger index one of the views still needs.
    pub fn next_index(&self) -> u64 {
        self.search.next_index().min(self.archive.next)
    }

    /// Ledger records search answers for (its last commit's position).
    pub fn searchable(&self) -> u64 {
        self.search.committed()
    }

    /// Ledger records the archive's files hold.
    pub fn archived(&self) -> u64 {
        self.archive.committed.load(Ordering::Relaxed)
    }

    fn publish(&self, state: &FollowState) {
        state.searchable.store(self.searchable(), Ordering::Relaxed);
        state.archived.store(self.archived(), Ordering::Relaxed);
    }

    pub fn searcher(&self) -> Searcher {
        self.search.searcher()
    }

    /// Feeds ledger record `index`. Events (nearly every record) are read
    /// straight into the event type; the few other kinds as JSON.
    pub fn feed(&mut self, index: u64, bytes: &[u8]) -> Result<(), Error> {
        use ledger::RecordKind;
        use ledger::record::Record;
        let derived = |e: crate::search::SearchError| Error::Derived(e.to_string());
        // JSON is UTF-8: checked once for the whole record, where reading
        // from bytes checks each string on its own (14% of this thread).
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        // Read as an event first, in one pass: nearly every record is one,
        // and other kinds fail at their first field that is not an event's.
        match serde_json::from_str::<Record<LedgerEvent>>(text) {
            Ok(r) if r.kind == RecordKind::Event => {
                let LedgerEvent { event, unmapped } = r.data;
                self.search.add_event(index, &event).map_err(derived)?;
                return self.archive.add(ArchiveItem::Event(index, r.recorded_at, event, unmapped));
            }
            _ => {}
        }
        match serde_json::from_str::<Record<serde_json::Value>>(text) {
            Ok(r) if r.kind == RecordKind::Event => {
                tracing::warn!(ledger_index = index, "event of another version left out of search and SQL");
            }
            Ok(r) => {
                self.search.add(index, r.kind, &r.data).map_err(derived)?;
                return self.archive.add(ArchiveItem::Other(index, r.kind, r.recorded_at, r.data));
            }
            Err(_) => {}
        }
        // Unreadable here (a newer version's record): skipped, but the
        // positions move on; the record stays in the ledger.
        self.unreadable += 1;
        self.search.add(index, RecordKind::Key, &serde_json::Value::Null).map_err(derived)?;
        self.archive.add(ArchiveItem::Other(index, RecordKind::Key, 0, serde_json::Value::Null))
    }

    /// Commits search when due and hands records to the archive thread (which
    /// writes files on its own schedule). While more than [`CATCH_UP`] records
    /// wait (`behind`), search commits every [`CATCH_UP_COMMIT`]: each commit
    /// stalls indexing, and freshness cannot be had until caught up anyway.
    pub fn commit(&mut self, behind: u64) -> Result<(), Error> {
        if self.last_commit.elapsed() >= search_commit_every(behind, &self.options) {
            self.commit_search()?;
        }
        self.archive.flush(false)
    }

    /// Commits search and writes the archive's files now.
    pub fn commit_all(&mut self) -> Result<(), Error> {
        self.commit_search()?;
        self.archive.flush(true)
    }

    fn commit_search(&mut self) -> Result<(), Error> {
        self.search.commit().map_err(|e| Error::Derived(e.to_string()))?;
        self.last_commit = Instant::now();
        Ok(())
    }
}

/// Records waiting in the ledger beyond which the views are catching up.
const CATCH_UP: u64 = 65_536;
/// How often search commits while catching up.
const CATCH_UP_COMMIT: Duration = Duration::from_secs(10);

fn search_commit_every(behind: u64, options: &FollowOptions) -> Duration {
    if behind > CATCH_UP { CATCH_UP_COMMIT.max(options.search_commit) } else { options.search_commit }
}

/// What the follower shares with the API and the metrics.
#[derive(Debug, Default)]
pub struct FollowState {
    /// Records searchable (the search index's position).
    pub searchable: AtomicU64,
    /// Records SQL sees (the archive's position).
    pub archived: AtomicU64,
    stop: AtomicBool,
}

/// A running follower; [`Follower::stop`] finishes what the ledger holds and commits.
pub struct Follower {
    pub state: Arc<FollowState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    pub fn spawn(mut derived: Derived, ledger: Arc<Ledger>) -> Result<Self, Error> {
        let state = Arc::new(FollowState::default());
        derived.publish(&state);
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("custos-follow".into())
            .spawn(move || {
                if let Err(e) = follow(&mut derived, &ledger, &shared) {
                    tracing::error!(error = %e, "search index and archive stopped following the ledger");
                }
            })
            .map_err(|e| Error::Derived(format!("start follower: {e}")))?;
        Ok(Self { state, thread: Some(thread) })
    }

    /// Indexes and archives the rest of the ledger, commits, and stops.
    pub async fn stop(mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn follow(d: &mut Derived, ledger: &Ledger, state: &FollowState) -> Result<(), Error> {
    loop {
        let stopping = state.stop.load(Ordering::Relaxed);
        let size = ledger.size();
        let from = d.next_index();
        if from < size {
            let mut failed = None;
            ledger.read_range(from, size.min(from + STEP), |i, bytes| {
                if failed.is_none()
                    && let Err(e) = d.feed(i, &bytes)
                {
                    failed = Some(e);
                }
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            d.commit(size.saturating_sub(d.next_index()))?;
        } else if stopping {
            d.commit_all()?;
            d.publish(state);
            return Ok(());
        } else {
            d.commit(0)?;
            std::thread::sleep(Duration::from_millis(20));
        }
        d.publish(state);
    }
}

/// Rebuilds the search index and the archive of `data_dir` from its ledger.
/// Refused while Custos runs on that directory. Returns the records read.
pub fn reindex(data_dir: &Path, mut progress: impl FnMut(u64)) -> Result<u64, Error> {
    let lock_path = data_dir.join("ledger").join("LOCK");
    if let Ok(f) = std::fs::File::open(&lock_path)
        && let Err(std::fs::TryLockError::WouldBlock) = f.try_lock()
    {
        return Err(Error::Derived(format!("{} is in use: stop Custos before reindexing", data_dir.display())));
    }
    for view in ["index", "archive"] {
        let path = data_dir.join(view);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
        }
    }
    let mut d = Derived::open(data_dir, FollowOptions::default())?;
    let mut failed = None;
    let n = ledger::for_each_record(&data_dir.join("ledger"), |i, bytes| {
        if failed.is_none() {
            failed = d.feed(i, bytes).err();
            if failed.is_none() && i % STEP == 0 {
                failed = d.commit(u64::MAX).err();
                progress(i);
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    d.commit_all()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through a real ledger and `reindex`: the archive's `unmapped` column is
    /// the ledger's own text of the vendor fields, and search still finds the event.
    #[tokio::test]
    async fn the_archive_keeps_vendor_fields_as_the_ledger_holds_them() {
        use ingest::event::EventClass;
        use ledger::{LedgerOptions, NoteSigner, RecordKind};
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = "custos.test/follow";
        let signer = NoteSigner::generate(origin).expect("key");
        let (l, _) =
            Ledger::open(&dir.path().join("ledger"), origin, signer, LedgerOptions::default()).expect("ledger");
        let mut with = ingest::Event::new(EventClass::NetworkActivity, 6, 1_795_687_200_000, 1_795_687_200_001, b"x");
        with.zone = Some("cell-1".into());
        with.unmapped.insert("fortigate.policyid", "12");
        with.unmapped.insert("fortigate.msg", "quote \" tab \t ü");
        with.unmapped.insert("eve.flow", serde_json::json!({"z": 1, "a": [true, null]}));
        let without = ingest::Event::new(EventClass::NetworkActivity, 6, 1_795_687_200_002, 1_795_687_200_003, b"y");
        let records: Vec<Vec<u8>> = [&with, &without]
            .iter()
            .map(|e| ledger::record::encode(RecordKind::Event, 5, e).expect("encode"))
            .collect();
        l.append(records.clone()).await.expect("append");
        l.close().await.expect("close");
        drop(l);
        let data_dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || reindex(&data_dir, |_| {})).await.expect("join").expect("reindex");

        let ledger_text: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&records[0]).expect("record");
        let sql = crate::sql::SqlEngine::new(&dir.path().join("archive"));
        let r = sql
            .query("SELECT ledger_index, unmapped FROM events ORDER BY ledger_index", Default::default())
            .await
            .expect("sql");
        assert_eq!(r.rows.len(), 2);
        let column = r.rows[0]["unmapped"].as_str().expect("text").to_owned();
        let record = std::str::from_utf8(&records[0]).expect("utf-8");
        assert!(record.contains(&format!("\"unmapped\":{column}")), "{column} is not the ledger's text");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&column).expect("json"), ledger_text["data"]["unmapped"]);
        assert!(r.rows[1]["unmapped"].is_null(), "an event without vendor fields has none");

        let d = Derived::open(dir.path(), FollowOptions::default()).expect("views");
        let page = d
            .searcher()
            .search(&crate::search::SearchRequest { q: "zone:cell-1".into(), ..Default::default() })
            .expect("search");
        assert_eq!(page.total, 1);
    }

    #[test]
    fn search_commits_less_often_while_far_behind() {
        let o = FollowOptions::default();
        assert_eq!(search_commit_every(0, &o), Duration::from_secs(1));
        assert_eq!(search_commit_every(CATCH_UP, &o), Duration::from_secs(1));
        assert_eq!(search_commit_every(CATCH_UP + 1, &o), CATCH_UP_COMMIT);
        let slow = FollowOptions { search_commit: Duration::from_secs(30), ..o };
        assert_eq!(search_commit_every(u64::MAX, &slow), Duration::from_secs(30), "never more often than asked");
    }
}
