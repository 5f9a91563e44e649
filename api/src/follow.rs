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

pub struct Derived {
    search: SearchIndex,
    archive: Archive,
    last_commit: Instant,
    last_flush: Instant,
    pub options: FollowOptions,
    /// Records the views could not read (a newer version's records), skipped.
    pub unreadable: u64,
}

impl Derived {
    /// Opens `<data>/index` and `<data>/archive`.
    pub fn open(data_dir: &Path) -> Result<Self, Error> {
        let search = SearchIndex::open(&data_dir.join("index")).map_err(|e| Error::Derived(e.to_string()))?;
        let archive = Archive::open(&data_dir.join("archive")).map_err(|e| Error::Derived(e.to_string()))?;
        Ok(Self {
            search,
            archive,
            last_commit: Instant::now(),
            last_flush: Instant::now(),
            options: FollowOptions::default(),
            unreadable: 0,
        })
    }

    /// The first ledger index one of the views still needs.
    pub fn next_index(&self) -> u64 {
        self.search.next_index().min(self.archive.next_index())
    }

    /// Ledger records search answers for (its last commit's position).
    pub fn searchable(&self) -> u64 {
        self.search.committed()
    }

    /// Ledger records the archive's files hold.
    pub fn archived(&self) -> u64 {
        self.archive.committed()
    }

    fn publish(&self, state: &FollowState) {
        state.searchable.store(self.searchable(), Ordering::Relaxed);
        state.archived.store(self.archived(), Ordering::Relaxed);
    }

    pub fn searcher(&self) -> Searcher {
        self.search.searcher()
    }

    /// Feeds ledger record `index`.
    pub fn feed(&mut self, index: u64, bytes: &[u8]) -> Result<(), Error> {
        let record = match ledger::record::decode(bytes) {
            Ok(r) => r,
            Err(_) => {
                self.unreadable += 1;
                // Skipped, but the positions move on: the record stays in the ledger.
                self.search.add(index, ledger::RecordKind::Key, &serde_json::Value::Null).ok();
                self.archive.add(index, ledger::RecordKind::Key, 0, &serde_json::Value::Null);
                return Ok(());
            }
        };
        self.search.add(index, record.kind, &record.data).map_err(|e| Error::Derived(e.to_string()))?;
        self.archive.add(index, record.kind, record.recorded_at, &record.data);
        Ok(())
    }

    /// Commits search and flushes the archive when due (or now, with `force`).
    pub fn commit(&mut self, force: bool) -> Result<(), Error> {
        let now = Instant::now();
        let o = self.options;
        if force || now - self.last_commit >= o.search_commit {
            self.search.commit().map_err(|e| Error::Derived(e.to_string()))?;
            self.last_commit = now;
        }
        if force || now - self.last_flush >= o.archive_flush || self.archive.pending() >= o.archive_rows {
            self.archive.flush().map_err(|e| Error::Derived(e.to_string()))?;
            self.last_flush = now;
        }
        Ok(())
    }
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
    pub fn spawn(mut derived: Derived, ledger: Arc<Ledger>, options: FollowOptions) -> Result<Self, Error> {
        derived.options = options;
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
            d.commit(false)?;
        } else {
            d.commit(stopping)?;
            if stopping {
                d.publish(state);
                return Ok(());
            }
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
    let mut d = Derived::open(data_dir)?;
    let mut failed = None;
    let n = ledger::for_each_record(&data_dir.join("ledger"), |i, bytes| {
        if failed.is_none() {
            failed = d.feed(i, bytes).err();
            if failed.is_none() && i % STEP == 0 {
                failed = d.commit(false).err();
                progress(i);
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    d.commit(true)?;
    Ok(n)
}
