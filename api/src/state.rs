//! State snapshots. A start rebuilds the correlation engine and the API's
//! views by replaying the ledger, which is the engine's input log: exact, but
//! it grows with every record (about 6.5 µs each, an hour after two months at
//! 100 events/s). A snapshot holds what that replay had built after the
//! first `size` records, so a start restores it and replays only the rest.
//!
//! A snapshot is derived, never evidence: it is taken up only when its signed
//! note verifies with the ledger key, names this ledger's Merkle root at its
//! size, carries the SHA-256 of its body, and names the same state format,
//! rules and settings ([`Setup::fingerprint`]). Anything else is logged and
//! the start replays from an older snapshot or from the first record.
//!
//! Snapshots are made by the same replay a start runs (never from the live
//! engine, whose processing-time ticks a replay does not have): at start, and
//! in the background once `snapshot_every_records` more records are ledgered.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use correlate::{Alarm, Alert, Engine, EngineState};
use ledger::{Ledger, LedgerError, NoteSigner, VerifierKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::views::{ReplayProgress, Views, ViewsState};

/// The first line of a snapshot's signed note, and the format's version.
const NOTE_HEADER: &str = "custos.state/v4";
/// Snapshots kept: the newest and the one before it.
const KEEP: usize = 2;
/// Replayed alerts are checked against the ledgered ones this often (records).
const CONFIRM_EVERY: u64 = 65_536;
/// Records a replay reads from the ledger at once, then applies.
const READ_BATCH: u64 = 1024;

fn default_every() -> u64 {
    1_000_000
}

/// `[state]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Write a new snapshot once this many records have been ledgered since
    /// the last one, and at a start that replayed a hundredth of that or more
    /// (or had none to take up). 0: never; every start replays the whole
    /// ledger. Default 1000000.
    #[serde(default = "default_every")]
    pub snapshot_every_records: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self { snapshot_every_records: default_every() }
    }
}

/// Whether a start that replayed to `size` (from the snapshot at
/// `resumed_from`, if it took one up) writes a snapshot: when it had none to
/// take up, or replayed a hundredth of `every_records` or more after it. A
/// crash loop would otherwise write one per start.
pub fn start_snapshot_due(resumed_from: Option<u64>, size: u64, every_records: u64) -> bool {
    every_records > 0
        && match resumed_from {
            None => size > 0,
            Some(from) => size.saturating_sub(from) >= (every_records / 100).max(1),
        }
}

/// What a replay built after `size` records, as written to a snapshot.
#[derive(Serialize, Deserialize)]
pub struct SavedState {
    size: u64,
    engine: EngineState,
    views: ViewsState,
    progress: ReplayProgress,
    unconfirmed: Vec<Alert>,
}

/// A replay of the ledger into the views and the engine, record by record
/// from where a snapshot left off (or from the first).
pub struct Replay<'a> {
    views: &'a Views,
    engine: &'a mut Engine,
    /// Records applied: the index of the next.
    size: u64,
    progress: ReplayProgress,
    /// Alerts the replay raised that the views have not yet read from the
    /// ledger; those still missing at the end were lost by a crash.
    unconfirmed: Vec<Alert>,
}

/// What a finished replay hands the running service.
pub struct Replayed {
    pub records: u64,
    /// Alerts the ledger should hold and does not (a crash came between an
    /// event and its alerts): they are raised now.
    pub missed: Vec<Alert>,
    /// The alarm board's tick at the last record's time (see the board).
    pub last_tick: Vec<Alarm>,
}

/// Of the alerts a replay raised that the ledger lacks, those a crash can
/// have kept from it. A replay runs the rules and inventory in force now;
/// events up to `last_change`, the newest record that changed what was in
/// force (a reload, or a start that found new files), were decided under
/// what was in force then, all their alerts ledgered before that record
/// was, so an alert whose events all come before it is what today's rules
/// would say of them, not a loss: it is dropped (and counted, the second).
pub fn lost_by_a_crash(mut missed: Vec<Alert>, last_change: Option<u64>) -> (Vec<Alert>, usize) {
    let before = missed.len();
    if let Some(change) = last_change {
        missed.retain(|a| a.events.iter().any(|&i| i > change));
    }
    let dropped = before - missed.len();
    (missed, dropped)
}

impl<'a> Replay<'a> {
    pub fn new(views: &'a Views, engine: &'a mut Engine) -> Self {
        Self { views, engine, size: 0, progress: ReplayProgress::default(), unconfirmed: Vec::new() }
    }

    /// Records applied so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Applies record `index`, the next one.
    fn apply(&mut self, index: u64, bytes: &[u8]) {
        if let Some(e) = self.views.apply(index, bytes, &mut self.progress) {
            self.unconfirmed.extend(self.engine.on_event(index, &e));
        }
        self.size = index + 1;
        if self.size.is_multiple_of(CONFIRM_EVERY) {
            self.confirm();
        }
    }

    /// Applies the ledger's records from where the replay stands to `end`.
    /// Read a thousand at a time and applied after: the read holds the
    /// ledger's tree, which appends wait for, and applying is the slow part.
    pub fn catch_up(&mut self, ledger: &Ledger, end: u64) -> Result<(), LedgerError> {
        let mut records = Vec::with_capacity(READ_BATCH as usize);
        while self.size < end {
            let to = end.min(self.size + READ_BATCH);
            ledger.read_range(self.size, to, |index, bytes| records.push((index, bytes)))?;
            for (index, bytes) in records.drain(..) {
                self.apply(index, &bytes);
            }
        }
        Ok(())
    }

    fn confirm(&mut self) {
        let views = self.views;
        self.unconfirmed.retain(|a| !views.has_alert(&a.id));
    }

    /// The state to write to a snapshot.
    pub fn save(&mut self) -> SavedState {
        self.confirm();
        SavedState {
            size: self.size,
            engine: self.engine.save_state(),
            views: self.views.save_state(),
            progress: self.progress.clone(),
            unconfirmed: self.unconfirmed.clone(),
        }
    }

    /// Takes up a snapshot's state, as if the replay had read its records
    /// (the recent ones are read back from `ledger`). Nothing is changed
    /// when it fails.
    pub fn restore(&mut self, s: SavedState, ledger: &Ledger) -> Result<(), String> {
        let recent = s.views.read_recent(ledger)?;
        self.engine.restore_state(s.engine)?;
        self.views.restore_state(s.views, recent);
        self.size = s.size;
        self.progress = s.progress;
        self.unconfirmed = s.unconfirmed;
        Ok(())
    }

    /// Takes up the newest snapshot that holds, if any; returns its size.
    pub fn resume(
        &mut self,
        snapshots: &Snapshots,
        ledger: &Ledger,
        key: &VerifierKey,
        fingerprint: &str,
    ) -> Option<u64> {
        let s = snapshots.load_newest(ledger, key, fingerprint)?;
        let size = s.size;
        match self.restore(s, ledger) {
            Ok(()) => Some(size),
            Err(reason) => {
                tracing::warn!(size, %reason, "state snapshot not used");
                None
            }
        }
    }

    /// Ends the replay: the engine is told which alerts the ledger holds (not
    /// to be raised again), and the board ticks at the last record's time.
    pub fn finish(mut self) -> Replayed {
        self.confirm();
        let last_tick = self
            .progress
            .last_recorded
            .map(|at| self.views.alarms.lock().unwrap_or_else(|e| e.into_inner()).tick(at))
            .unwrap_or_default();
        if self.progress.bad > 0 {
            tracing::warn!(
                records = self.progress.bad,
                "ledger records that this version cannot read were skipped in the views"
            );
        }
        self.engine.suppress_ledgered(self.views.alert_ids(), self.size.saturating_sub(1));
        Replayed { records: self.size, missed: self.unconfirmed, last_tick }
    }
}

/// What the engine and the views are built from: the service's start and
/// the background snapshot writer build theirs alike.
#[derive(Clone)]
pub struct Setup {
    pub inventory: Arc<ingest::Inventory>,
    pub engine: correlate::EngineConfig,
    pub recent: usize,
    pub group_window_ms: i64,
    pub alarm_policy: correlate::AlarmPolicy,
}

impl Setup {
    pub fn engine(&self) -> Result<Engine, Vec<String>> {
        Engine::from_config(self.inventory.clone(), self.engine.clone())
    }

    /// An engine deciding as the running one does: `running`'s inventory
    /// and rule files, not the files on disk, which may have been edited
    /// since the last reload.
    pub fn running_engine(&self, running: &Running) -> Result<Engine, Vec<String>> {
        Engine::from_rule_files(running.inventory.clone(), self.engine.clone(), &running.rule_files)
    }

    pub fn views(&self) -> Views {
        Views::new(self.recent, self.group_window_ms, self.alarm_policy.clone())
    }

    /// What a snapshot depends on besides the ledger: the state's format,
    /// the rules' files as `engine` read them, and the correlation, incident
    /// and alarm settings. Hex SHA-256.
    ///
    /// Neither the code's version nor the inventory is part of it. A snapshot
    /// is taken up after an upgrade or an inventory change, as a running
    /// engine would go on with its state: what was decided before stays
    /// decided, and windows still open close under the new code or
    /// inventory. What the views show comes from ledger records, which no
    /// upgrade changes. A change to what the state holds or means bumps
    /// [`NOTE_HEADER`]'s version (the golden test of the format says when).
    pub fn fingerprint(&self, engine: &Engine) -> String {
        let mut h = Sha256::new();
        for part in [
            NOTE_HEADER,
            &format!("{:?}", engine.config()),
            &engine.rules().source(),
            &format!("{} {} {:?}", self.recent, self.group_window_ms, self.alarm_policy),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// What the running engine decides with: its inventory and rule files.
/// The evidence stage publishes it at each reload, so that the snapshot
/// writer replays under what the service ran, not what it started with.
#[derive(Clone)]
pub struct Running {
    pub inventory: Arc<ingest::Inventory>,
    pub rule_files: Arc<[(String, String)]>,
}

impl Running {
    pub fn of(engine: &Engine) -> Self {
        Self { inventory: engine.inventory().clone(), rule_files: engine.rules().files.clone().into() }
    }
}

/// The snapshots of one data directory (`state/`): `<size>.json` with its
/// signed note `<size>.note`, written in that order (the note commits it).
pub struct Snapshots {
    dir: PathBuf,
    origin: String,
}

/// A snapshot's note, parsed.
struct Note {
    size: u64,
    root: [u8; 32],
    sha256: [u8; 32],
}

impl Snapshots {
    pub fn new(data_dir: &Path, origin: &str) -> Self {
        Self { dir: data_dir.join("state"), origin: origin.to_owned() }
    }

    fn path(&self, size: u64, ext: &str) -> PathBuf {
        self.dir.join(format!("{size:020}.{ext}"))
    }

    /// Sizes of the snapshots with a note, newest first.
    fn sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".note")?.parse().ok())
            .collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes
    }

    /// Writes `state`, which the ledger's records up to its size (Merkle root
    /// `root`) produced, and removes all but the newest [`KEEP`] snapshots.
    pub fn write(
        &self,
        state: &SavedState,
        root: &[u8; 32],
        signer: &NoteSigner,
        fingerprint: &str,
    ) -> Result<PathBuf, Error> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io("create", &self.dir))?;
        let (body, note) = (self.path(state.size, "json"), self.path(state.size, "note"));
        let tmp = self.dir.join(format!(".{:020}.json.tmp", state.size));
        let file = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
        let mut out = HashingWriter { inner: BufWriter::with_capacity(1 << 20, file), hash: Sha256::new() };
        serde_json::to_writer(&mut out, state)
            .map_err(std::io::Error::other)
            .and_then(|()| out.inner.flush())
            .and_then(|()| out.inner.get_ref().sync_all())
            .map_err(Error::io("write", &tmp))?;
        let sha256: [u8; 32] = out.hash.finalize().into();
        std::fs::rename(&tmp, &body).map_err(Error::io("rename", &tmp))?;
        let text = signer.sign(&format!(
            "{NOTE_HEADER}\n{}\n{}\n{}\n{}\n{}\n",
            self.origin,
            state.size,
            B64.encode(root),
            B64.encode(sha256),
            fingerprint
        ));
        let tmp = self.dir.join(format!(".{:020}.note.tmp", state.size));
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, &note).map_err(Error::io("rename", &tmp))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(Error::io("sync", &self.dir))?;
        self.remove_all_but_newest();
        Ok(note)
    }

    /// Keeps the newest [`KEEP`] snapshots; removes older ones, and what a
    /// crash left half written (a body without its note, a temporary file).
    fn remove_all_but_newest(&self) {
        let keep: Vec<String> = self
            .sizes()
            .into_iter()
            .take(KEEP)
            .flat_map(|n| [format!("{n:020}.json"), format!("{n:020}.note")])
            .collect();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if !keep.iter().any(|k| name.to_str() == Some(k)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The newest snapshot that holds for this ledger, rules and settings,
    /// read and checked; each one passed over is logged with the reason.
    pub fn load_newest(&self, ledger: &Ledger, key: &VerifierKey, fingerprint: &str) -> Option<SavedState> {
        for size in self.sizes() {
            match self.load(size, ledger, key, fingerprint) {
                Ok(s) => return Some(s),
                Err(reason) => tracing::warn!(
                    path = %self.path(size, "note").display(),
                    %reason,
                    "state snapshot not used"
                ),
            }
        }
        None
    }

    fn load(&self, size: u64, ledger: &Ledger, key: &VerifierKey, fingerprint: &str) -> Result<SavedState, String> {
        let text = std::fs::read_to_string(self.path(size, "note")).map_err(|e| format!("read note: {e}"))?;
        let (body, _) = ledger::note::open(&text, std::slice::from_ref(key)).map_err(|e| e.to_string())?;
        let note = self.parse_note(body, fingerprint)?;
        if note.size != size {
            return Err(format!("the note is for size {}, the file name says {size}", note.size));
        }
        if size > ledger.size() {
            return Err(format!("taken at {size} records; the ledger has {}", ledger.size()));
        }
        if ledger.root_at(size).map_err(|e| e.to_string())? != note.root {
            return Err(format!("the ledger's Merkle root at {size} records is not the one the snapshot was taken at"));
        }
        let bytes = std::fs::read(self.path(size, "json")).map_err(|e| format!("read body: {e}"))?;
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != note.sha256 {
            return Err("the body's SHA-256 is not the note's".into());
        }
        let state: SavedState = serde_json::from_slice(&bytes).map_err(|e| format!("body: {e}"))?;
        if state.size != size {
            return Err(format!("the body is for size {}", state.size));
        }
        Ok(state)
    }

    fn parse_note(&self, body: &str, fingerprint: &str) -> Result<Note, String> {
        let lines: Vec<&str> = body.lines().collect();
        let [header, origin, size, root, sha256, written_by] = lines[..] else {
            return Err(format!("the note has {} lines, not 6", lines.len()));
        };
        if header != NOTE_HEADER {
            return Err(format!("not a {NOTE_HEADER} note"));
        }
        if origin != self.origin {
            return Err(format!("written for ledger {origin}"));
        }
        if written_by != fingerprint {
            return Err("written with other Sigma rules, settings or state format".into());
        }
        let hash = |s: &str, what: &str| -> Result<[u8; 32], String> {
            B64.decode(s).ok().and_then(|v| v.try_into().ok()).ok_or_else(|| format!("bad {what} in the note"))
        };
        Ok(Note {
            size: size.parse().map_err(|_| format!("bad size {size:?} in the note"))?,
            root: hash(root, "root")?,
            sha256: hash(sha256, "hash")?,
        })
    }
}

/// Hashes what goes through it, so the body is hashed as it is written.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The background snapshot writer: a thread that, once `every_records`
/// more records are ledgered, replays them from the newest snapshot on an
/// engine and views of its own and writes the result.
pub struct SnapshotWriter {
    stop: Arc<std::sync::atomic::AtomicBool>,
    wake: std::sync::mpsc::SyncSender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the writer works with.
pub struct WriterParts {
    pub setup: Setup,
    /// The inventory and rules in force, following reloads.
    pub running: tokio::sync::watch::Receiver<Running>,
    pub snapshots: Arc<Snapshots>,
    pub ledger: Arc<Ledger>,
    pub signer: NoteSigner,
    pub every_records: u64,
    /// How often the ledger's size is looked at. Default 10 s.
    pub poll: std::time::Duration,
    /// Size of the newest snapshot written or taken up (a metric).
    pub newest: Arc<AtomicU64>,
}

impl SnapshotWriter {
    /// Starts the writer; `first` (the start's own replay, with its
    /// fingerprint) is written before anything else.
    pub fn spawn(parts: WriterParts, first: Option<(SavedState, String)>) -> Result<Self, Error> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("custos-state".into())
            .spawn(move || parts.run(first, &flag, &woken))
            .map_err(Error::io("start the state snapshot thread", Path::new("state")))?;
        Ok(Self { stop, wake, thread: Some(thread) })
    }

    /// Stops the writer and waits for its thread: a snapshot in the making
    /// is dropped at its next thousand records (reading one back, or writing
    /// one out, is finished first).
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.try_send(());
    }
}

/// A writer dropped without [`SnapshotWriter::stop`] (a start that failed
/// later) is told to stop, not waited for.
impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

impl WriterParts {
    fn run(self, first: Option<(SavedState, String)>, stop: &AtomicBool, woken: &std::sync::mpsc::Receiver<()>) {
        if let Some((state, fingerprint)) = first {
            let started = std::time::Instant::now();
            let written = self
                .ledger
                .root_at(state.size)
                .map_err(Error::from)
                .and_then(|root| self.snapshots.write(&state, &root, &self.signer, &fingerprint));
            self.report(written.map(|_| Some(state.size)), started);
        }
        loop {
            // The stop signal wakes it at once.
            let _ = woken.recv_timeout(self.poll);
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if self.ledger.size() >= self.newest.load(Ordering::Relaxed).saturating_add(self.every_records) {
                let started = std::time::Instant::now();
                let made = self.make(stop);
                self.report(made, started);
            }
        }
    }

    fn report(&self, made: Result<Option<u64>, Error>, started: std::time::Instant) {
        match made {
            Ok(Some(size)) => {
                self.newest.store(size, Ordering::Relaxed);
                let ms = started.elapsed().as_millis() as u64;
                tracing::info!(records = size, ms, "state snapshot written");
            }
            Ok(None) => {}
            Err(e) => {
                // Tried again after another `every_records`, not in a loop.
                self.newest.store(self.ledger.size(), Ordering::Relaxed);
                tracing::error!(error = %e, "state snapshot failed");
            }
        }
    }

    /// Replays from the newest snapshot to the ledger's present size and
    /// writes the result. `None` when stopped, or when the running rules
    /// do not compile.
    fn make(&self, stop: &AtomicBool) -> Result<Option<u64>, Error> {
        let running = self.running.borrow().clone();
        let mut engine = match self.setup.running_engine(&running) {
            Ok(e) => e,
            Err(errors) => {
                // They compiled when put in force; this is not expected.
                tracing::warn!(?errors, "state snapshot skipped: the running rules do not compile");
                return Ok(None);
            }
        };
        let fingerprint = self.setup.fingerprint(&engine);
        let views = self.setup.views();
        let mut replay = Replay::new(&views, &mut engine);
        replay.resume(&self.snapshots, &self.ledger, &self.signer.verifier(), &fingerprint);
        let end = self.ledger.size();
        while replay.size() < end {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            replay.catch_up(&self.ledger, end.min(replay.size() + READ_BATCH))?;
        }
        let state = replay.save();
        let root = self.ledger.root_at(end)?;
        self.snapshots.write(&state, &root, &self.signer, &fingerprint)?;
        Ok(Some(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use correlate::{EngineConfig, IncidentBook};
    use ingest::{Inventory, Normalized, Normalizer, RawRecord};
    use ledger::{LedgerOptions, RecordKind, record};
    use serde_json::json;

    const ORIGIN: &str = "custos.test/state";

    /// A ledger as the service writes it, with the key that signs it.
    struct Plant {
        dir: tempfile::TempDir,
        ledger: Arc<Ledger>,
        key: String,
        setup: Setup,
    }

    impl Plant {
        fn signer(&self) -> NoteSigner {
            NoteSigner::parse(&self.key).expect("key")
        }
        fn snapshots(&self) -> Snapshots {
            Snapshots::new(self.dir.path(), ORIGIN)
        }
        fn fingerprint(&self) -> String {
            self.setup.fingerprint(&self.setup.engine().expect("rules"))
        }

        /// Replays the ledger (from the newest snapshot that holds, with
        /// them) to `end`: where it resumed, and the replay's state there as
        /// written, the alerts a start would raise, the last tick's alarms
        /// and the recent events, dead letters and alerts (which a snapshot
        /// names by index) as the views hold them.
        fn replay(&self, end: u64, snapshots: bool) -> (Option<u64>, String, Vec<String>, String, String) {
            self.replay_on(self.setup.engine().expect("rules"), end, snapshots)
        }

        /// [`Plant::replay`] on `engine`, from a snapshot written under its rules.
        fn replay_on(
            &self,
            mut engine: Engine,
            end: u64,
            snapshots: bool,
        ) -> (Option<u64>, String, Vec<String>, String, String) {
            let fp = self.setup.fingerprint(&engine);
            let views = self.setup.views();
            let mut r = Replay::new(&views, &mut engine);
            let resumed = if snapshots {
                r.resume(&self.snapshots(), &self.ledger, &self.signer().verifier(), &fp)
            } else {
                None
            };
            r.catch_up(&self.ledger, end).expect("replay");
            let saved = serde_json::to_string(&r.save()).expect("json");
            let recent = [
                listed(&views.events(usize::MAX, |_| true)),
                listed(&views.dead_letters(usize::MAX)),
                listed(&views.alerts(usize::MAX)),
            ]
            .concat();
            let done = r.finish();
            let missed = done.missed.iter().map(|a| a.id.clone()).collect();
            (resumed, saved, missed, serde_json::to_string(&done.last_tick).expect("json"), recent)
        }

        /// Replays to `end` under `running` (from the newest snapshot
        /// written under it, with `snapshots`): where it resumed, and the
        /// state there as written.
        fn replay_under(&self, running: &Running, end: u64, snapshots: bool) -> (Option<u64>, String) {
            let (resumed, state, ..) =
                self.replay_on(self.setup.running_engine(running).expect("rules"), end, snapshots);
            (resumed, state)
        }

        /// A snapshot writer every 150 records, looking every 20 ms.
        fn writer(&self, running: tokio::sync::watch::Receiver<Running>, newest: &Arc<AtomicU64>) -> WriterParts {
            WriterParts {
                setup: self.setup.clone(),
                running,
                snapshots: Arc::new(self.snapshots()),
                ledger: self.ledger.clone(),
                signer: self.signer(),
                every_records: 150,
                poll: std::time::Duration::from_millis(20),
                newest: newest.clone(),
            }
        }

        /// Appends `n` audit records (nothing the engine decides on).
        async fn audits(&self, n: u64) {
            let audit = |i: u64| record::encode(RecordKind::Audit, i as i64, &json!({"action": "login", "n": i}));
            for start in (0..n).step_by(100) {
                let batch = (start..n.min(start + 100)).map(audit).collect::<Result<Vec<_>, _>>().expect("encode");
                self.ledger.append(batch).await.expect("append");
            }
        }

        /// Writes the replay's state after `size` records as a snapshot.
        fn snapshot_at(&self, size: u64) {
            let mut engine = self.setup.engine().expect("rules");
            let fp = self.setup.fingerprint(&engine);
            let views = self.setup.views();
            let mut r = Replay::new(&views, &mut engine);
            r.catch_up(&self.ledger, size).expect("replay");
            let root = self.ledger.root_at(size).expect("root");
            self.snapshots().write(&r.save(), &root, &self.signer(), &fp).expect("write");
        }
    }

    /// Recent items with their ledger indices, as JSON.
    fn listed<T: Serialize>(items: &[crate::views::Stored<T>]) -> String {
        serde_json::to_string(&items.iter().map(|s| (s.index, &*s.item)).collect::<Vec<_>>()).expect("json")
    }

    /// Events of the bench's plant mix in batches, each followed by the
    /// alerts a live engine raised and the incident versions they made; now
    /// and then a dead letter, an alarm acknowledgement or shelf, and a
    /// retention policy. The last batch's alerts are lost, as in a crash.
    async fn plant(batches: u64) -> Plant {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = Arc::new(Inventory::from_toml(&crate::bench::bench_inventory()).expect("inventory"));
        let signer = NoteSigner::generate(ORIGIN).expect("key");
        let key = signer.encode();
        let opts = LedgerOptions { segment_bytes: 256 << 10, ..LedgerOptions::default() };
        let (ledger, _) = Ledger::open(&dir.path().join("ledger"), ORIGIN, signer, opts).expect("ledger");
        let mut live = Engine::new(inventory.clone(), EngineConfig::default());
        let mut book = IncidentBook::new(3_600_000);
        let mut normalizer = Normalizer::new(inventory.clone(), 0);
        let mut raised = Vec::new();
        for batch in 0..batches {
            let (mut records, mut parsed) = (Vec::new(), Vec::new());
            for i in batch * 100..(batch + 1) * 100 {
                // Spaced as a million records over 30 days: a few seconds apart.
                let (mut format, mut bytes) = crate::bench::plant_record(i, 1_000_000);
                if i % 700 == 350 {
                    bytes = b"not a log line".to_vec();
                }
                // A tailgate now and then: presence keeps entries no badge names.
                if i % 700 == 351 {
                    let t = crate::bench::bench_time(i, 1_000_000);
                    let door = format!("{}-door", crate::bench::BENCH_ZONES[crate::bench::bench_zone(i)]);
                    bytes = format!(
                        r#"{{"time":"{}","door":"{door}","result":"tailgate_detected"}}"#,
                        ingest::time::format_rfc3339(t)
                    )
                    .into_bytes();
                    format = ingest::Format::BadgeJson;
                }
                match normalizer.normalize(RawRecord::new("plant".into(), format, 0, bytes)).record {
                    Normalized::Event(e) => {
                        records.push(record::encode(RecordKind::Event, i as i64, &e).expect("encode"));
                        parsed.push(e);
                    }
                    Normalized::DeadLetter(d) => {
                        records.push(record::encode(RecordKind::Deadletter, i as i64, &d).expect("encode"))
                    }
                }
            }
            let range = ledger.append(records).await.expect("append");
            let mut alerts = Vec::new();
            for (index, e) in range.zip(&parsed) {
                alerts.extend(live.on_event(index, e));
            }
            if batch + 1 == batches {
                break;
            }
            let at = 100_000 * batch as i64;
            let filed = book.file_all(&alerts);
            let mut records: Vec<Vec<u8>> =
                alerts.iter().map(|a| record::encode(RecordKind::Alert, at, a).expect("encode")).collect();
            records.extend(filed.changed.iter().map(|i| record::encode(RecordKind::Incident, at, i).expect("encode")));
            raised.extend(alerts);
            if let Some(a) = raised.get(batch as usize * 3) {
                let key = format!("{}/{}", a.rule, a.entity.id);
                let (action, details) = match batch % 3 {
                    0 => ("alarm.acknowledge", json!({"key": key, "acknowledged_at": at})),
                    1 => ("alarm.shelve", json!({"key": key, "until": at + 600_000})),
                    _ => ("incident.view", json!({})),
                };
                let audit = json!({"actor": "op", "action": action, "reason": "on it", "details": details});
                records.push(record::encode(RecordKind::Audit, at, &audit).expect("encode"));
            }
            if batch == 5 {
                let policy = json!({"class": "event", "keep_days": 3650});
                records.push(record::encode(RecordKind::Retention, at, &policy).expect("encode"));
            }
            if !records.is_empty() {
                ledger.append(records).await.expect("append");
            }
        }
        assert!(raised.len() as u64 >= 10 * (batches - 1), "the plant sets off rules: {}", raised.len());
        let setup = Setup {
            inventory,
            engine: EngineConfig::default(),
            recent: 300,
            group_window_ms: 3_600_000,
            alarm_policy: correlate::AlarmPolicy { flood_alarms: 3, flood_minutes: 1, ..Default::default() },
        };
        Plant { dir, ledger: Arc::new(ledger), key, setup }
    }

    /// Only an alert completed after the newest change to what is in force
    /// can be one a crash kept from the ledger.
    #[test]
    fn alerts_for_events_decided_under_earlier_rules_are_not_lost_ones() {
        let alert = |events: &[u64]| -> Alert {
            serde_json::from_value(serde_json::json!({
                "id": format!("r:{events:?}"), "rule": "r", "title": "t", "severity_id": 3, "attack": [],
                "time": 0, "entity": {"kind": "asset", "id": "PLC-01"}, "events": events, "summary": "s",
            }))
            .expect("alert")
        };
        let missed = vec![alert(&[3, 4]), alert(&[4, 9]), alert(&[10])];
        let ids = |a: &[Alert]| a.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        let (kept, dropped) = lost_by_a_crash(missed.clone(), None);
        assert_eq!((ids(&kept), dropped), (ids(&missed), 0), "no change known: all raised");
        let (kept, dropped) = lost_by_a_crash(missed.clone(), Some(5));
        assert_eq!((ids(&kept), dropped), (vec!["r:[4, 9]".to_owned(), "r:[10]".to_owned()], 1));
        assert_eq!(lost_by_a_crash(missed, Some(10)).1, 3, "all decided before the change");
    }

    /// A start from a snapshot taken anywhere in the ledger ends exactly
    /// where a replay of the whole ledger ends: the same engine and views,
    /// byte for byte, the same alerts to raise (those the crash lost) and
    /// the same last tick.
    #[tokio::test]
    async fn a_start_from_a_snapshot_ends_where_a_whole_replay_ends_at_every_cut() {
        let p = plant(40).await;
        let n = p.ledger.size();
        let whole = p.replay(n, false);
        assert!(!whole.2.is_empty(), "the lost batch's alerts are raised at the start");
        for cut in [0, 1, 99, 100, 101, 777, n / 3, n / 2, n - 101, n - 1, n].into_iter().chain((150..n).step_by(613)) {
            std::fs::remove_dir_all(p.dir.path().join("state")).ok();
            p.snapshot_at(cut);
            let (resumed, saved, missed, last_tick, recent) = p.replay(n, true);
            assert_eq!(resumed, Some(cut));
            assert!(saved == whole.1, "state after a start from the snapshot at {cut} differs");
            assert!(recent == whole.4, "recent records after a start from the snapshot at {cut} differ");
            assert_eq!((&missed, &last_tick), (&whole.2, &whole.3), "snapshot at {cut}");
        }
    }

    /// Only a snapshot that holds is taken up; the next older one, or a
    /// replay from the first record, stands in for one that does not.
    #[tokio::test]
    async fn a_snapshot_that_does_not_hold_is_passed_over() {
        let p = plant(6).await;
        let n = p.ledger.size();
        p.snapshot_at(100);
        p.snapshot_at(300);
        p.snapshot_at(n);
        // What a crash between the body and its note leaves goes at the next write.
        std::fs::write(p.snapshots().path(200, "json"), b"{}").expect("orphan body");
        std::fs::write(p.dir.path().join("state/.00000000000000000250.json.tmp"), b"{").expect("temporary");
        p.snapshot_at(n);
        let mut files: Vec<String> = std::fs::read_dir(p.dir.path().join("state"))
            .expect("state")
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect();
        files.sort();
        let named = |size: u64| [format!("{size:020}.json"), format!("{size:020}.note")];
        assert_eq!(files, [named(300), named(n)].concat(), "the newest two are kept, nothing half written");
        assert_eq!(p.replay(n, true).0, Some(n));
        let body = p.snapshots().path(n, "json");
        let mut bytes = std::fs::read(&body).expect("body");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&body, &bytes).expect("write");
        assert_eq!(p.replay(n, true).0, Some(300), "a changed body falls back to the older snapshot");
        // Another key's note, another fingerprint, another ledger's root.
        let note = p.snapshots().path(300, "note");
        let text = std::fs::read_to_string(&note).expect("note");
        let (body, _) = text.split_once("\n\n").expect("signed note");
        std::fs::write(&note, NoteSigner::generate(ORIGIN).expect("key").sign(&format!("{body}\n"))).expect("write");
        assert_eq!(p.replay(n, true).0, None, "signed by another key");
        let snapshots = p.snapshots();
        let (root, fp) = (p.ledger.root_at(200).expect("root"), p.fingerprint());
        let mut engine = p.setup.engine().expect("rules");
        let views = p.setup.views();
        let mut r = Replay::new(&views, &mut engine);
        r.catch_up(&p.ledger, 300).expect("replay");
        let state = r.save();
        snapshots.write(&state, &root, &p.signer(), &fp).expect("write");
        assert_eq!(p.replay(n, true).0, None, "the root is not the ledger's at the snapshot's size");
        let root = p.ledger.root_at(300).expect("root");
        snapshots.write(&state, &root, &p.signer(), "another fingerprint").expect("write");
        assert_eq!(p.replay(n, true).0, None, "written with other rules or settings");
        snapshots.write(&state, &root, &p.signer(), &fp).expect("write");
        assert_eq!(p.replay(n, true).0, Some(300));
        let bigger = Setup { recent: 301, ..p.setup.clone() };
        assert_ne!(bigger.fingerprint(&bigger.engine().expect("rules")), fp, "the settings count");
    }

    /// A snapshot names its recent records by index: one that names a
    /// record of another kind (or out of order) is not taken up, and the
    /// replay is left as it was.
    #[tokio::test]
    async fn recent_records_named_wrongly_are_refused() {
        let p = plant(3).await;
        let n = p.ledger.size();
        let mut engine = p.setup.engine().expect("rules");
        let views = p.setup.views();
        let mut r = Replay::new(&views, &mut engine);
        r.catch_up(&p.ledger, n).expect("replay");
        let saved = serde_json::to_value(r.save()).expect("json");
        let alert = saved["views"]["alerts"][0].as_u64().expect("an alert");
        let first_event = saved["views"]["events"][0].clone();
        let named = |list: &str, indices: serde_json::Value| {
            let mut s = saved.clone();
            s["views"][list] = indices;
            serde_json::from_value::<SavedState>(s).expect("state")
        };
        let mut engine = p.setup.engine().expect("rules");
        let views = p.setup.views();
        let mut fresh = Replay::new(&views, &mut engine);
        let wrong_kind = fresh.restore(named("events", json!([alert])), &p.ledger).expect_err("an alert as an event");
        assert!(wrong_kind.contains(&format!("record {alert} is not the Event record")), "{wrong_kind}");
        let unordered = fresh.restore(named("alerts", json!([alert, alert])), &p.ledger).expect_err("twice");
        assert!(unordered.contains("not named in index order"), "{unordered}");
        let beyond = fresh.restore(named("events", json!([n])), &p.ledger).expect_err("past the end");
        assert!(beyond.contains(&format!("no record {n}")), "{beyond}");
        assert_eq!((fresh.size(), views.events(1, |_| true).len()), (0, 0), "nothing taken up");
        fresh.restore(named("events", json!([first_event])), &p.ledger).expect("a right one is taken up");
        assert_eq!(views.events(usize::MAX, |_| true).len(), 1);
    }

    #[test]
    fn a_start_writes_a_snapshot_unless_it_replayed_little() {
        assert!(start_snapshot_due(None, 5, 1_000_000), "none to take up");
        assert!(!start_snapshot_due(None, 0, 1_000_000), "an empty ledger");
        assert!(!start_snapshot_due(Some(500_000), 500_003, 1_000_000), "a restart right after another");
        assert!(start_snapshot_due(Some(500_000), 510_000, 1_000_000), "a hundredth replayed");
        assert!(start_snapshot_due(Some(0), 1, 10), "small settings still write");
        assert!(!start_snapshot_due(None, 5, 0), "snapshots off");
    }

    /// The background writer makes a snapshot once enough records have come
    /// since the last, from that last one; stopping it ends the thread.
    #[tokio::test]
    async fn the_writer_snapshots_as_the_ledger_grows() {
        let p = plant(3).await;
        let newest = Arc::new(AtomicU64::new(0));
        let (_, running) = tokio::sync::watch::channel(Running::of(&p.setup.engine().expect("rules")));
        let writer = SnapshotWriter::spawn(p.writer(running, &newest), None).expect("writer");
        let n = p.ledger.size();
        written(&newest, n).await;
        p.audits(200).await;
        written(&newest, n + 200).await;
        writer.stop();
        assert_eq!(p.snapshots().sizes(), [n + 200, n], "none at {} (fewer than 150 new records)", n + 100);
        let whole = p.replay(n + 200, false);
        let resumed = p.replay(n + 200, true);
        assert_eq!(resumed.0, Some(n + 200));
        assert!(resumed.1 == whole.1 && resumed.4 == whole.4, "the writer's snapshot is the replay's state");
    }

    /// After a reload, the writer replays under the inventory and rules the
    /// service runs, not those it started with.
    #[tokio::test]
    async fn the_writer_follows_reloads() {
        let p = plant(3).await;
        let newest = Arc::new(AtomicU64::new(0));
        let started = Running::of(&p.setup.engine().expect("rules"));
        let (feed, running) = tokio::sync::watch::channel(started.clone());
        let writer = SnapshotWriter::spawn(p.writer(running, &newest), None).expect("writer");
        let n = p.ledger.size();
        written(&newest, n).await;
        // A reload: an inventory that names nothing, and a rule file fewer.
        let reloaded =
            Running { inventory: Arc::new(Inventory::default()), rule_files: started.rule_files[1..].into() };
        feed.send_replace(reloaded.clone());
        p.audits(200).await;
        written(&newest, n + 200).await;
        writer.stop();
        let end = n + 200;
        let (resumed, state) = p.replay_under(&reloaded, end, true);
        assert_eq!(resumed, Some(end), "written under the reloaded rules");
        // (Not `assert_eq!`: a state is a few hundred KiB of JSON.)
        assert!(state == p.replay_under(&reloaded, end, false).1, "and the reloaded inventory");
        let old_inventory = Running { inventory: started.inventory.clone(), ..reloaded };
        assert!(state != p.replay_under(&old_inventory, end, false).1, "the inventory counts in this plant");
        assert_eq!(p.replay_under(&started, end, true).0, Some(n), "the start's is still there");
    }

    /// Waits until the writer reports a snapshot of `size` records.
    async fn written(newest: &AtomicU64, size: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while newest.load(Ordering::Relaxed) != size {
            assert!(std::time::Instant::now() < until, "no snapshot at {size}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The shape of a saved state: every field's path and JSON type.
    /// Alerts, which the ledger's contract defines, count as one leaf: that
    /// format is tested on its own.
    fn shape(v: &serde_json::Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
        use serde_json::Value;
        if path == "unconfirmed[]" && v.is_object() {
            out.insert(format!("{path}: record"));
            return;
        }
        match v {
            Value::Null => {}
            Value::Bool(_) => drop(out.insert(format!("{path}: bool"))),
            Value::Number(_) => drop(out.insert(format!("{path}: number"))),
            Value::String(_) => drop(out.insert(format!("{path}: string"))),
            Value::Array(items) => items.iter().for_each(|x| shape(x, &format!("{path}[]"), out)),
            Value::Object(fields) => {
                for (k, x) in fields {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    shape(x, &p, out);
                }
            }
        }
    }

    /// What a snapshot holds is a format: a change to its shape shows here,
    /// and calls for a new version in `NOTE_HEADER` (so that older snapshots
    /// are replayed over, not misread). `CUSTOS_UPDATE_GOLDEN=1` rewrites it.
    #[tokio::test]
    async fn the_snapshot_format_is_golden() {
        let p = plant(20).await;
        let saved: serde_json::Value = serde_json::from_str(&p.replay(p.ledger.size(), false).1).expect("json");
        let mut lines = std::collections::BTreeSet::new();
        shape(&saved, "", &mut lines);
        let text: String = lines.into_iter().map(|l| l + "\n").collect();
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/state-format.txt");
        if std::env::var_os("CUSTOS_UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &text).expect("write golden");
        }
        let want = std::fs::read_to_string(&golden).expect("golden file");
        assert!(
            text == want,
            "the state snapshot format changed ({NOTE_HEADER}): bump its version, then rewrite {}\n{text}",
            golden.display()
        );
    }
}
