//! The running service: sources → raw topic → normaliser → events topic →
//! ledger → correlation → alerts and incidents (ledgered too) → API views.
//! Evidence first: an event is durable in the ledger before it is correlated,
//! and a source position is stored only after what it covers is durable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use correlate::{Alert, Engine};
use ingest::bus::{AnyBus, Bus, DEADLETTERS, EVENTS, EmbeddedBus, Publisher, RAW, STATUS, Subscriber};
use ingest::heartbeat::Heartbeat;
use ingest::source::syslog::UdpDrops;
use ingest::source::{Handover, Positions, now_millis};
use ingest::{Format, Ingested, Inventory, Normalized, Normalizer, RawRecord};
use ledger::{Ledger, LedgerOptions, NoteSigner, RecordKind, record};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;
use crate::alarms::{Outbox, spawn_forwarders};
use crate::auth::TokenStore;
use crate::config::{BusKind, Config, Roles};
use crate::deadletter::DeadLetterStore;
use crate::health::CollectorHealth;
use crate::reload::{Reload, ReloadRequest, Reloaded, Reloads};
use crate::server::{self, AppState};
use crate::views::{Stored, Views};

/// Counters the pipeline keeps, exported at `/metrics`.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub ingest: crate::metrics::IngestMetrics,
    /// Records ledgered, by source (in every deployment, split or not).
    pub ledgered: crate::metrics::LedgeredMetrics,
    pub dead_letters: AtomicU64,
    pub alerts: AtomicU64,
    /// Failed alarm deliveries (each retried until it succeeds).
    pub alarm_failures: Arc<AtomicU64>,
    /// Control-room alarms raised, by priority 1..4.
    pub alarms_raised: [AtomicU64; 4],
    /// Events that reached correlation behind the watermark.
    pub late_events: AtomicU64,
    /// Sign-in events (see [`crate::sign_in`]) ingest could not take: the
    /// audit record holds the attempt, but correlation never saw it.
    pub sign_in_events_dropped: AtomicU64,
    pub udp_drops: Arc<UdpDrops>,
    /// API request counts and latencies by route.
    pub http: crate::metrics::HttpMetrics,
    /// Records covered by the newest state snapshot: a start replays those after it.
    pub state_snapshot_records: Arc<AtomicU64>,
    /// The collectors' newest heartbeats (a core on Kafka hears them).
    pub collectors: crate::metrics::Collectors,
    /// Records this process sent to Kafka again: the brokers took none of
    /// them within the delivery timeout.
    pub bus_redelivered: Arc<AtomicU64>,
    /// File tails and backup watchers started again after an error.
    pub source_restarts: Arc<crate::metrics::SourceRestarts>,
}

/// A started Custos with the ledger and correlation (and, by its roles, the
/// sources and the API). Call [`Custos::shutdown`] to stop it cleanly.
pub struct Custos {
    /// Reloads the Sigma rules and the inventory (SIGHUP, the API).
    pub reload: Reloads,
    /// The API address, when this process serves the API.
    pub http_addr: Option<SocketAddr>,
    pub syslog_udp: Vec<SocketAddr>,
    pub syslog_tcp: Vec<SocketAddr>,
    pub views: Arc<Views>,
    pub ledger: Arc<Ledger>,
    pub tokens: Arc<TokenStore>,
    pub stats: Arc<PipelineStats>,
    pub data_dir: PathBuf,
    stop: watch::Sender<bool>,
    /// The raw topic, for replays; dropped at shutdown so the embedded topic can close.
    raw: Option<Publisher<RawRecord>>,
    sources: Sources,
    normalizer: Option<JoinHandle<()>>,
    evidence: JoinHandle<()>,
    /// Feeds the search index and the Parquet archive from the ledger.
    follower: crate::follow::Follower,
    /// Writes state snapshots in the background (none when they are off).
    snapshot_writer: Option<crate::state::SnapshotWriter>,
    /// The ledger size of the state snapshot this start took up, if any.
    pub resumed_from: Option<u64>,
    server: Option<JoinHandle<()>>,
    /// Hears the collectors' heartbeats (on Kafka).
    collectors: Option<JoinHandle<()>>,
}

/// A collector-only process (`--roles ingest`): sources and the normaliser
/// publishing to Kafka; source positions are stored once Kafka has the events.
pub struct IngestNode {
    pub syslog_udp: Vec<SocketAddr>,
    pub syslog_tcp: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    sources: Sources,
    normalizer: JoinHandle<()>,
    /// Where the inventory is read from, and the normaliser's feed of it.
    inventory: (InventoryFile, watch::Sender<Arc<Inventory>>),
    /// Sends this collector's heartbeats, and its last one at shutdown.
    heartbeats: (Heartbeats, JoinHandle<()>),
    /// Where `/healthz` and `/readyz` answer (`[collector] health_listen`).
    pub health_addr: Option<SocketAddr>,
    health_server: Option<JoinHandle<()>>,
    /// Records sent to Kafka again (the heartbeats carry it to the core).
    bus_redelivered: Arc<AtomicU64>,
}

/// What a collector tells the core of itself on the status topic.
#[derive(Clone)]
struct Heartbeats {
    out: Publisher<Heartbeat>,
    name: String,
    started_at: i64,
    /// How often it sends one, said in each.
    every: Duration,
    stats: Arc<PipelineStats>,
    /// Whether the bus takes them, for `/readyz`.
    health: Arc<CollectorHealth>,
}

impl Heartbeats {
    /// This collector's counters as of `now`.
    fn beat(&self, now: i64, stopped: bool) -> Heartbeat {
        let (sources, parsers) = self.stats.ingest.counts();
        Heartbeat {
            collector: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: self.started_at,
            sent_at: now,
            stopped,
            sources,
            parsers,
            udp_dropped: self.stats.udp_drops.0.load(Ordering::Relaxed),
            bus_redelivered: self.stats.bus_redelivered.load(Ordering::Relaxed),
            source_restarts: self.stats.source_restarts.counts(),
            interval_ms: Some(u64::try_from(self.every.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// One heartbeat, given up (not sent again) when the bus has not taken
    /// it in the delivery timeout: the next one carries newer counts.
    async fn send(&self, stopped: bool) {
        let sent = self.out.publish(vec![self.beat(now_millis(), stopped)]);
        match tokio::time::timeout(ingest::bus::DELIVERY_TIMEOUT, sent).await {
            Ok(Ok(())) => self.health.delivered(now_millis()),
            Ok(Err(e)) => {
                self.health.refused(now_millis());
                tracing::warn!(error = %e, collector = %self.name, "heartbeat not sent");
            }
            Err(_) => {
                self.health.refused(now_millis());
                tracing::warn!(collector = %self.name, "heartbeat not taken by the bus in the delivery timeout");
            }
        }
    }

    /// One now and one every interval until the stop signal.
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // The stop's guard is dropped inside: it must not live across a send.
            let stopped = async {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::select! {
                _ = tick.tick() => {}
                () = stopped => return,
            }
            self.send(false).await;
        }
    }
}

/// Keeps each collector's newest heartbeat, for the metrics. Heartbeats are
/// not evidence: a batch is committed as soon as it is read.
async fn hear_collectors(mut beats: Subscriber<Heartbeat>, stats: Arc<PipelineStats>, mut stop: watch::Receiver<bool>) {
    loop {
        let delivery = tokio::select! {
            d = beats.next() => d,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(delivery) = delivery else { return };
        let (items, commit) = delivery.into_parts();
        for beat in items {
            let name = beat.collector.clone();
            if !stats.collectors.record(beat, now_millis()) {
                tracing::warn!(collector = %name, max = ingest::heartbeat::MAX_COLLECTORS, "heartbeat ignored: a blank name, or too many collectors");
            }
        }
        commit.commit();
    }
}

/// Loads the checkpoint signing key, creating it (mode 0600) on first start.
pub fn load_or_create_key(data_dir: &Path, origin: &str) -> Result<NoteSigner, Error> {
    let dir = data_dir.join("keys");
    let path = dir.join("ledger.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(NoteSigner::parse(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
            let signer = NoteSigner::generate(origin)?;
            write_private(&path, signer.encode().as_bytes())?;
            Ok(signer)
        }
        Err(e) => Err(Error::Io { what: "read", path, source: e }),
    }
}

/// Writes a secret file readable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(Error::io("create", path))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(Error::io("write", path))
}

/// Where the inventory is read from, at start and at each reload: the
/// configured file, else `<data_dir>/inventory.toml` when there is one.
#[derive(Debug, Clone)]
struct InventoryFile {
    path: PathBuf,
    configured: bool,
}

impl InventoryFile {
    fn of(cfg: &Config) -> Self {
        match &cfg.inventory {
            Some(path) => Self { path: path.clone(), configured: true },
            None => Self { path: cfg.data_dir.join("inventory.toml"), configured: false },
        }
    }

    /// The inventory, and the file's text as read (none without a file:
    /// nothing is enriched).
    fn load(&self) -> Result<(Inventory, Option<crate::in_force::Text>), Error> {
        let path = &self.path;
        if !self.configured && !path.exists() {
            tracing::warn!(path = %path.display(), "no inventory: events are not enriched with zones, assets or people");
            return Ok((Inventory::default(), None));
        }
        let text = std::fs::read_to_string(path).map_err(Error::io("read inventory", path))?;
        let inventory =
            Inventory::from_toml(&text).map_err(|source| Error::Inventory { path: path.clone(), source })?;
        Ok((inventory, Some(crate::in_force::Text { path: path.display().to_string(), text })))
    }
}

/// Connects the configured bus. A record Kafka does not take in time is
/// sent again (and counted in `redelivered`) until `stop`.
async fn connect_bus(
    cfg: &Config,
    stop: &watch::Receiver<bool>,
    redelivered: &Arc<AtomicU64>,
) -> Result<AnyBus, Error> {
    match cfg.bus.kind {
        BusKind::Embedded => Ok(AnyBus::Embedded(EmbeddedBus::new(cfg.bus.capacity))),
        #[cfg(feature = "kafka")]
        BusKind::Kafka => {
            let k = cfg
                .bus
                .kafka
                .clone()
                .ok_or_else(|| Error::Roles("bus kind kafka needs a [bus.kafka] section with brokers".into()))?;
            tracing::info!(brokers = %k.brokers, prefix = %k.topic_prefix, "connecting to kafka");
            let redelivery = ingest::bus::kafka::Redelivery { count: redelivered.clone(), stopping: stop.clone() };
            let topics = [RAW.name, EVENTS.name, DEADLETTERS.name, STATUS.name];
            let largest = largest_record(cfg);
            Ok(AnyBus::Kafka(ingest::bus::kafka::KafkaBus::connect(k, &topics, redelivery, largest).await?))
        }
        #[cfg(not(feature = "kafka"))]
        BusKind::Kafka => {
            let _ = (stop, redelivered);
            Err(ingest::bus::BusError::NoKafka.into())
        }
    }
}

/// The largest record a source of `cfg` makes, in bytes: a TCP syslog frame,
/// a datagram, a file's line, or one record of an HTTP push (at most the
/// body). The bus must carry it, as JSON and as an event.
fn largest_record(cfg: &Config) -> usize {
    let s = &cfg.sources;
    let tcp = s.syslog_tcp.iter().map(|t| t.max_frame);
    let lines = s.file.iter().map(|f| f.max_line);
    let pushes = (!s.http.is_empty()).then_some(cfg.http.max_body_bytes);
    tcp.chain(lines).chain(pushes).fold(u16::MAX as usize, usize::max)
}

struct Sources {
    /// Syslog listeners: aborted at shutdown (they hold no positions).
    listeners: Vec<JoinHandle<()>>,
    /// File tails and backup watchers: they stop between batches on the signal.
    followers: Vec<JoinHandle<()>>,
    syslog_udp: Vec<SocketAddr>,
    syslog_tcp: Vec<SocketAddr>,
}

impl Sources {
    fn none() -> Self {
        Self { listeners: Vec::new(), followers: Vec::new(), syslog_udp: Vec::new(), syslog_tcp: Vec::new() }
    }

    /// Stops every source (the stop signal must already be sent).
    async fn stop(self) {
        for s in &self.listeners {
            s.abort();
        }
        for s in self.listeners.into_iter().chain(self.followers) {
            let _ = s.await;
        }
    }
}

/// Binds every source (so a bad address fails at start) and starts them.
async fn start_sources(
    cfg: &Config,
    out: &Publisher<RawRecord>,
    positions: &Arc<Positions>,
    stats: &PipelineStats,
    handover: Handover,
    stop: &watch::Receiver<bool>,
) -> Result<Sources, Error> {
    let mut s = Sources::none();
    for c in cfg.sources.syslog_udp.clone() {
        let (addr, task) = ingest::source::syslog::udp(c, out.clone(), stats.udp_drops.clone()).await?;
        s.syslog_udp.push(addr);
        s.listeners.push(spawn_source(task));
    }
    for c in cfg.sources.syslog_tcp.clone() {
        let (addr, task) = ingest::source::syslog::tcp(c, out.clone()).await?;
        s.syslog_tcp.push(addr);
        s.listeners.push(spawn_source(task));
    }
    for c in cfg.sources.file.clone() {
        let (name, positions, out, signal) = (c.name.clone(), positions.clone(), out.clone(), stop.clone());
        let start =
            move || ingest::source::tail::run(c.clone(), positions.clone(), out.clone(), handover, signal.clone());
        s.followers.push(spawn_follower(name, start, stats.source_restarts.clone(), stop.clone()));
    }
    for c in cfg.sources.plc_backup.clone() {
        let (name, positions, out, signal) = (c.name.clone(), positions.clone(), out.clone(), stop.clone());
        let start =
            move || ingest::source::plc::run(c.clone(), positions.clone(), out.clone(), handover, signal.clone());
        s.followers.push(spawn_follower(name, start, stats.source_restarts.clone(), stop.clone()));
    }
    Ok(s)
}

/// Runs a file tail or backup watcher made by `start`. One that ends on an
/// error (a file it may not read, as after a rotation with the wrong owner)
/// is logged, counted and started again from its stored position after a
/// pause, 1 s doubling to a minute, until the stop signal: else it would
/// read nothing more for the life of the process.
fn spawn_follower<F, Fut>(
    name: String,
    start: F,
    restarts: Arc<crate::metrics::SourceRestarts>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), ingest::source::SourceError>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            let Err(e) = start().await else { return };
            if *stop.borrow() {
                return;
            }
            restarts.count(&name);
            tracing::error!(source = %name, error = %e, again_in_s = pause.as_secs(), "source stopped on an error; it starts again");
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            pause = (pause * 2).min(Duration::from_secs(60));
        }
    })
}

fn normalizer_for(cfg: &Config, inventory: Arc<Inventory>) -> Normalizer {
    let mut n = Normalizer::new(inventory, cfg.ingest.rfc3164_offset_min);
    for (source, m) in &cfg.ingest.mappings {
        n = n.with_mapping(source, m.clone());
    }
    for f in &cfg.sources.file {
        if let Some(m) = &f.mapping {
            n = n.with_mapping(&f.name, m.clone());
        }
    }
    n
}

fn open_positions(data_dir: &Path) -> Result<Arc<Positions>, Error> {
    Ok(Arc::new(Positions::open(data_dir.join("positions.json")).map_err(Error::io("open positions", data_dir))?))
}

impl IngestNode {
    /// Starts sources and the normaliser; needs a durable (Kafka) bus.
    pub async fn start(cfg: Config) -> Result<Self, Error> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(Error::io("create data directory", &cfg.data_dir))?;
        let (stop, stop_rx) = watch::channel(false);
        let stats = Arc::new(PipelineStats::default());
        let bus = connect_bus(&cfg, &stop_rx, &stats.bus_redelivered).await?;
        if !bus.is_durable() {
            return Err(Error::Roles(
                "role ingest alone needs bus kind kafka: an embedded bus ends with the process".into(),
            ));
        }
        let inventory_file = InventoryFile::of(&cfg);
        let inventory = Arc::new(inventory_file.load()?.0);
        let (feed, inventory_for_ingest) = watch::channel(inventory.clone());
        let positions = open_positions(&cfg.data_dir)?;
        let raw_out = bus.publisher(RAW)?;
        let mut sources = start_sources(&cfg, &raw_out, &positions, &stats, Handover::OnPublish, &stop_rx).await?;
        drop(raw_out);
        let every = Duration::from_secs(cfg.collector.heartbeat_seconds);
        let health = Arc::new(CollectorHealth::new(every));
        let (health_addr, health_server) = match cfg.collector.health_listen {
            Some(listen) => {
                let (addr, task) =
                    crate::health::serve(listen, crate::health::collector_router(health.clone()), stop_rx.clone())
                        .await?;
                tracing::info!(%addr, "health endpoints listening");
                (Some(addr), Some(task))
            }
            None => (None, None),
        };
        let bus_redelivered = stats.bus_redelivered.clone();
        let heartbeats = Heartbeats {
            out: bus.publisher(STATUS)?,
            name: cfg.collector.name(),
            started_at: now_millis(),
            every,
            stats: stats.clone(),
            health: health.clone(),
        };
        tracing::info!(collector = %heartbeats.name, every_s = cfg.collector.heartbeat_seconds, "sending heartbeats");
        let heartbeat_task = tokio::spawn(heartbeats.clone().run(stop_rx.clone()));
        let stage = normalize_stage(
            bus.subscriber(RAW)?,
            bus.publisher(EVENTS)?,
            Some(bus.publisher(DEADLETTERS)?),
            (normalizer_for(&cfg, inventory), inventory_for_ingest),
            stats,
            Some(stop_rx),
        );
        let stage = async move {
            stage.await;
            health.normaliser_stopped();
        };
        Ok(Self {
            syslog_udp: std::mem::take(&mut sources.syslog_udp),
            syslog_tcp: std::mem::take(&mut sources.syslog_tcp),
            stop,
            sources,
            normalizer: tokio::spawn(stage),
            inventory: (inventory_file, feed),
            heartbeats: (heartbeats, heartbeat_task),
            health_addr,
            health_server,
            bus_redelivered,
        })
    }

    /// Records sent to Kafka again because the brokers took none of them
    /// within the delivery timeout.
    pub fn bus_redelivered(&self) -> u64 {
        self.bus_redelivered.load(Ordering::Relaxed)
    }

    /// Reads the inventory file again; enrichment uses it from the next
    /// record on. A bad file is refused and the running inventory stays.
    /// (No ledger here: the evidence process audits its own reloads.)
    pub fn reload_inventory(&self) -> Result<(), Error> {
        let (inventory, _) = self.inventory.0.load()?;
        self.inventory.1.send_replace(Arc::new(inventory));
        Ok(())
    }

    pub async fn stopped(&mut self) {
        let _ = (&mut self.normalizer).await;
    }

    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        self.sources.stop().await;
        let _ = self.normalizer.await;
        // The last heartbeat, with the final counts, says the stop was meant.
        // (A periodic one stuck on an unreachable bus is not waited for.)
        let (beats, task) = self.heartbeats;
        task.abort();
        let _ = task.await;
        if tokio::time::timeout(Duration::from_secs(5), beats.send(true)).await.is_err() {
            tracing::warn!(collector = %beats.name, "the last heartbeat was not sent in 5 s");
        }
        if let Some(server) = self.health_server {
            let _ = server.await;
        }
        Ok(())
    }
}

impl Custos {
    /// Everything in one process: sources, ledger, correlation and the API.
    pub async fn start(cfg: Config) -> Result<Self, Error> {
        Self::start_with_roles(cfg, Roles::ALL).await
    }

    /// Opens the data directory and ledger, binds every listener (so a bad
    /// address fails here), and starts the stages of `roles`, which must
    /// include the ledger (for `ingest` alone see [`IngestNode`]).
    pub async fn start_with_roles(cfg: Config, roles: Roles) -> Result<Self, Error> {
        if !roles.evidence {
            return Err(Error::Roles(
                "this process needs the correlate,ledger roles; use IngestNode for ingest alone".into(),
            ));
        }
        let data_dir = cfg.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(Error::io("create data directory", &data_dir))?;
        let inventory_file = InventoryFile::of(&cfg);
        let (inventory, inventory_text) = inventory_file.load()?;
        let inventory = Arc::new(inventory);
        let (inventory_feed, inventory_for_ingest) = watch::channel(inventory.clone());
        let (stop, stop_rx) = watch::channel(false);
        let stats = Arc::new(PipelineStats::default());
        let bus = connect_bus(&cfg, &stop_rx, &stats.bus_redelivered).await?;
        if !roles.ingest && !bus.is_durable() {
            return Err(Error::Roles(
                "without the ingest role the events must come over kafka: set [bus] kind = \"kafka\"".into(),
            ));
        }
        let signer = load_or_create_key(&data_dir, &cfg.ledger.origin)?;
        // A second handle on the key signs evidence bundle manifests.
        let bundle_signer = NoteSigner::parse(&signer.encode())?;
        let signer_verifier = signer.verifier();
        let ledger_dir = data_dir.join("ledger");
        let (ledger, report) = Ledger::open(&ledger_dir, &cfg.ledger.origin, signer, LedgerOptions::default())?;
        let ledger = Arc::new(ledger);
        let setup = crate::state::Setup {
            inventory: inventory.clone(),
            engine: cfg.correlate.clone(),
            recent: cfg.http.recent_events,
            group_window_ms: cfg.incidents.group_window_ms as i64,
            alarm_policy: cfg.alarms.policy.clone(),
        };
        let views = Arc::new(setup.views());
        // Correlation state comes from the ledger, the engine's input log: a
        // replay rebuilds it exactly. A state snapshot saves replaying the
        // records before it (see `state`). Alert ids are deterministic; a
        // replayed alert already in the ledger is not raised again, and one a
        // crash kept from the ledger is raised now.
        let mut engine = setup.engine().map_err(Error::Rules)?;
        // The audit trail records the service's own life (Annex 11 §12.4):
        // starts, stops, recoveries, and what each start runs with.
        let in_force = crate::in_force::InForce {
            inventory: inventory_text,
            rules: engine.rules().files.clone(),
            config: cfg.file.clone(),
            config_environment: cfg.environment.clone(),
        };
        let digests = in_force.digests();
        let mut audits = vec![system_audit(
            "service.start",
            serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "ledger_records": report.records, "in_force": digests}),
        )?];
        if report.truncated_bytes > 0 {
            audits.push(system_audit("ledger.recover", serde_json::json!({"reason": "torn tail after an unclean stop", "truncated_bytes": report.truncated_bytes}))?);
        }
        let mut kept = crate::in_force::history(&data_dir, &ledger.snapshot()?)?;
        let changes = in_force.changes((!kept.records.is_empty()).then_some(&kept.digests));
        for c in &changes {
            audits.push(crate::audit::system_because(c.action, c.reason, c.details.clone())?);
        }
        let written = ledger.append(audits).await?;
        kept.records.extend(written.end - changes.len() as u64..written.end);
        kept.digests = digests.clone();
        crate::in_force::keep(&data_dir, &kept).map_err(Error::io("keep what is in force", &data_dir))?;
        let fingerprint = setup.fingerprint(&engine);
        let snapshots = Arc::new(crate::state::Snapshots::new(&data_dir, &cfg.ledger.origin));
        let snapshotting = cfg.state.snapshot_every_records > 0;
        let started = std::time::Instant::now();
        let mut replay = crate::state::Replay::new(&views, &mut engine);
        let resumed_from =
            if snapshotting { replay.resume(&snapshots, &ledger, &signer_verifier, &fingerprint) } else { None };
        replay.catch_up(&ledger, ledger.size())?;
        let first_snapshot =
            crate::state::start_snapshot_due(resumed_from, replay.size(), cfg.state.snapshot_every_records)
                .then(|| (replay.save(), fingerprint));
        let crate::state::Replayed { records, missed, last_tick } = replay.finish();
        let (missed, decided_under_earlier) = crate::state::lost_by_a_crash(missed, kept.records.last().copied());
        stats.state_snapshot_records.store(resumed_from.unwrap_or(0), Ordering::Relaxed);
        tracing::info!(
            records,
            created = report.created,
            resumed_from_snapshot = resumed_from,
            replayed = records - resumed_from.unwrap_or(0),
            replay_ms = started.elapsed().as_millis() as u64,
            alerts_missed_by_a_crash = missed.len(),
            alerts_not_raised_for_events_decided_under_earlier_rules = decided_under_earlier,
            "ledger open; correlation state rebuilt by replay"
        );
        let (running, running_for_snapshots) = watch::channel(crate::state::Running::of(&engine));
        let snapshot_writer = snapshotting
            .then(|| {
                crate::state::SnapshotWriter::spawn(
                    crate::state::WriterParts {
                        setup,
                        running: running_for_snapshots,
                        snapshots,
                        ledger: ledger.clone(),
                        signer: NoteSigner::parse(&bundle_signer.encode())?,
                        every_records: cfg.state.snapshot_every_records,
                        poll: std::time::Duration::from_secs(10),
                        newest: stats.state_snapshot_records.clone(),
                    },
                    first_snapshot,
                )
            })
            .transpose()?;
        // Search and the Parquet archive follow the ledger from where they stopped.
        let derived = crate::follow::Derived::open(&data_dir, Default::default())?;
        let searcher = derived.searcher();
        let follower = crate::follow::Follower::spawn(derived, ledger.clone())?;
        let positions = open_positions(&data_dir)?;
        let idle_ms = i64::try_from(cfg.http.session_idle_minutes.saturating_mul(60_000)).unwrap_or(i64::MAX);
        let tokens = Arc::new(
            TokenStore::open(data_dir.join("tokens.json"))
                .map_err(Error::io("open tokens", &data_dir))?
                .with_session_idle(idle_ms),
        );
        let accounts = Arc::new(
            crate::accounts::AccountStore::open(data_dir.join("accounts.json"))
                .map_err(Error::io("open accounts", &data_dir))?
                .with_policy(cfg.accounts.policy()),
        );
        // On a durable bus the stages stop on the signal; on the embedded bus they drain.
        let stage_stop = bus.is_durable().then(|| stop_rx.clone());

        let raw_out = bus.publisher(RAW)?;
        let (mut sources, normalizer) = if roles.ingest {
            // On Kafka the raw topic is the durable hand-over: sources store their
            // positions once it has their records; on the embedded bus only the
            // ledger is durable, so the evidence stage stores them.
            let handover = if bus.is_durable() { Handover::OnPublish } else { Handover::AfterLedger };
            let s = start_sources(&cfg, &raw_out, &positions, &stats, handover, &stop_rx).await?;
            let stage = normalize_stage(
                bus.subscriber(RAW)?,
                bus.publisher(EVENTS)?,
                bus.is_durable().then(|| bus.publisher(DEADLETTERS)).transpose()?,
                (normalizer_for(&cfg, inventory.clone()), inventory_for_ingest),
                stats.clone(),
                stage_stop.clone(),
            );
            (s, Some(tokio::spawn(stage)))
        } else {
            (Sources::none(), None)
        };
        let deadletters = DeadLetterStore::new(data_dir.join("deadletter"));
        // Alarm forwarding runs beside the evidence stage when a target is configured.
        let outbox = if cfg.alarms.syslog.is_some() || cfg.alarms.webhook.is_some() {
            let outbox = Outbox::open(&data_dir.join("alarms"))?;
            // Floods that ended while Custos was stopped end now, unless
            // announced before the stop.
            let ended = outbox.not_yet_sent(last_tick).await.map_err(Error::io("alarm outbox", &data_dir))?;
            outbox.append(&ended).await.map_err(Error::io("alarm outbox", &data_dir))?;
            spawn_forwarders(&cfg.alarms, outbox.clone(), stop_rx.clone(), stats.alarm_failures.clone());
            Some(outbox)
        } else {
            None
        };
        let (reload, reload_rx) = Reloads::channel();
        let (on_site, on_site_rx) = crate::on_site::OnSiteAsks::channel();
        let evidence = tokio::spawn(evidence_stage(
            bus.subscriber(EVENTS)?,
            EvidenceSinks {
                ledger: ledger.clone(),
                positions: (roles.ingest && !bus.is_durable()).then_some(positions),
                views: views.clone(),
                stats: stats.clone(),
                deadletters,
                outbox: outbox.clone(),
                data_dir: data_dir.clone(),
                room: crate::room::RoomWatch::new(cfg.ledger.low_room_bytes),
                clocks: crate::clocks::ClockWatch::default(),
                silences: crate::silence::SilenceWatch::resumed(
                    views.incidents.read().unwrap_or_else(|e| e.into_inner()).list(None),
                ),
                account_changes: crate::account_changes::Follower::new(crate::account_changes::AccountChanges::in_dir(
                    &data_dir,
                )),
                inventory: LoadedInventory {
                    file: inventory_file,
                    sha256: digests.inventory.clone(),
                    feed: inventory_feed,
                },
                running,
            },
            engine,
            missed,
            EngineAsks { reloads: reload_rx, on_site: on_site_rx },
            stage_stop,
        ));

        let (server, http_addr) = if roles.api {
            let push: HashMap<String, Format> = cfg.sources.http.iter().map(|h| (h.name.clone(), h.format)).collect();
            let state = AppState::new(
                views.clone(),
                ledger.clone(),
                tokens.clone(),
                raw_out.clone(),
                push,
                stats.clone(),
                reload.clone(),
            )
            .with_evidence(bundle_signer, data_dir.clone())
            .with_search(searcher, follower.state.clone(), crate::sql::SqlEngine::new(&data_dir.join("archive")))
            .with_accounts(accounts.clone())
            .with_on_site(on_site)
            .with_turns(server::Turns::new(
                cfg.http.max_concurrent_exports.get(),
                cfg.http.max_concurrent_sql.get(),
                server::Turns::WAIT,
            ));
            let failed = |source| Error::Http { key: "[http] listen", addr: cfg.http.listen, source };
            let listener = tokio::net::TcpListener::bind(cfg.http.listen).await.map_err(failed)?;
            let http_addr = listener.local_addr().map_err(failed)?;
            tokio::spawn(server::report_token_refusals_until(state.clone(), stop_rx.clone()));
            let app = server::router(state, cfg.http.max_body_bytes);
            let mut rx = stop_rx.clone();
            let server = tokio::spawn(async move {
                let shutdown = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                // Each request knows its peer: sign-in events name where they came from.
                let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                    tracing::error!(error = %e, "http server failed");
                }
            });
            tracing::info!(%http_addr, "api listening");
            (Some(server), Some(http_addr))
        } else {
            (None, None)
        };
        let collectors = bus.is_durable().then(|| bus.subscriber(STATUS)).transpose()?;
        let collectors = collectors.map(|beats| tokio::spawn(hear_collectors(beats, stats.clone(), stop_rx.clone())));
        let raw = roles.ingest.then(|| bus.publisher(RAW)).transpose()?;
        drop(raw_out);
        Ok(Self {
            reload,
            http_addr,
            syslog_udp: std::mem::take(&mut sources.syslog_udp),
            syslog_tcp: std::mem::take(&mut sources.syslog_tcp),
            views,
            ledger,
            tokens,
            stats,
            data_dir,
            stop,
            raw,
            sources,
            normalizer,
            evidence,
            server,
            collectors,
            follower,
            snapshot_writer,
            resumed_from,
        })
    }

    /// A publisher to the raw topic (for `custos replay`). Drop it before
    /// [`Custos::shutdown`]: the embedded topic closes when its last publisher goes.
    pub fn raw_publisher(&self) -> Option<Publisher<RawRecord>> {
        self.raw.clone()
    }

    /// Resolves when a core stage ends by itself (a fatal error was logged).
    pub async fn stopped(&mut self) {
        match &mut self.normalizer {
            Some(n) => tokio::select! {
                _ = n => {}
                _ = &mut self.evidence => {}
            },
            None => {
                let _ = (&mut self.evidence).await;
            }
        }
    }

    /// Stops sources, drains the pipeline into the ledger (embedded bus) or
    /// finishes the batch in hand (Kafka keeps the rest), signs a final
    /// checkpoint. Everything acknowledged before this is on disk after it.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        drop(self.raw.take());
        if let Some(s) = self.server {
            let _ = s.await;
        }
        self.sources.stop().await;
        if let Some(n) = self.normalizer {
            let _ = n.await;
        }
        let _ = self.evidence.await;
        if let Some(c) = self.collectors.take() {
            let _ = c.await;
        }
        if let Some(w) = self.snapshot_writer.take() {
            let _ = tokio::task::spawn_blocking(move || w.stop()).await;
        }
        self.ledger
            .append(vec![system_audit("service.stop", serde_json::json!({"reason": "shutdown requested"}))?])
            .await?;
        self.ledger.close().await?;
        tracing::info!(records = self.ledger.size(), "ledger closed with a final checkpoint");
        self.follower.stop().await;
        Ok(())
    }
}

/// An `audit` record of an action Custos took itself.
fn system_audit(action: &str, details: serde_json::Value) -> Result<Vec<u8>, Error> {
    Ok(crate::audit::system(action, details)?)
}

/// Resolves when `stop` is signalled; never without one.
async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            let _ = rx.wait_for(|s| *s).await;
        }
        None => std::future::pending().await,
    }
}

fn spawn_source(
    task: impl std::future::Future<Output = Result<(), ingest::source::SourceError>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "source stopped");
        }
    })
}

/// raw → parse + enrich → events.
async fn normalize_stage(
    mut raw: Subscriber<RawRecord>,
    out: Publisher<Ingested>,
    dead_out: Option<Publisher<ingest::DeadLetter>>,
    (mut normalizer, mut inventory): (Normalizer, watch::Receiver<Arc<Inventory>>),
    stats: Arc<PipelineStats>,
    mut stop: Option<watch::Receiver<bool>>,
) {
    loop {
        let d = tokio::select! {
            d = raw.next() => match d {
                Some(d) => d,
                None => return,
            },
            _ = stopped(&mut stop) => return,
        };
        if inventory.has_changed().unwrap_or(false) {
            normalizer.set_inventory(inventory.borrow_and_update().clone());
        }
        let (items, commit) = d.into_parts();
        let sizes = crate::metrics::IngestMetrics::sizes(&items);
        let batch: Vec<Ingested> = items.into_iter().map(|r| normalizer.normalize(r)).collect();
        stats.ingest.record_batch(&sizes, &batch);
        if let Some(d) = &dead_out {
            let dead: Vec<ingest::DeadLetter> = batch
                .iter()
                .filter_map(|i| match &i.record {
                    Normalized::DeadLetter(d) => Some((**d).clone()),
                    Normalized::Event(_) => None,
                })
                .collect();
            if let Err(e) = d.publish(dead).await {
                tracing::error!(error = %e, "dead letters not published: the normaliser stops (its batch is read again at the next start)");
                return;
            }
        }
        if let Err(e) = out.publish(batch).await {
            tracing::error!(error = %e, "events not published: the normaliser stops (its batch is read again at the next start)");
            return;
        }
        commit.commit();
    }
}

/// Where the evidence stage puts what it made durable.
struct EvidenceSinks {
    /// Where control-room alarms go, when a target is configured.
    outbox: Option<Arc<Outbox>>,
    ledger: Arc<Ledger>,
    /// Local source positions (when this process also runs the sources).
    positions: Option<Arc<Positions>>,
    views: Arc<Views>,
    stats: Arc<PipelineStats>,
    deadletters: DeadLetterStore,
    /// The data directory, whose free room is watched once a minute.
    data_dir: PathBuf,
    room: crate::room::RoomWatch,
    /// Collectors' clocks, judged on their heartbeats as the core hears them.
    clocks: crate::clocks::ClockWatch,
    /// Collectors fallen silent, judged each minute and as heartbeats come.
    silences: crate::silence::SilenceWatch,
    /// Account changes made with `custos user`, to be ledgered.
    account_changes: crate::account_changes::Follower,
    inventory: LoadedInventory,
    /// What the engine runs, for the state snapshot writer.
    running: watch::Sender<crate::state::Running>,
}

/// The inventory in force: its file, the SHA-256 of the text loaded from
/// it (none without a file), and the local normaliser's feed of reloads.
struct LoadedInventory {
    file: InventoryFile,
    sha256: Option<String>,
    feed: watch::Sender<Arc<Inventory>>,
}

/// How often the data directory's free room and collectors' silences are checked.
const MINUTELY: Duration = Duration::from_secs(60);
/// How often the log of account changes is looked at.
const ACCOUNT_CHANGES_CHECK: Duration = Duration::from_secs(2);

/// Ledgers the account changes `custos user` logged since the last look.
/// A log that cannot be read is a warning, not a stop: the pipeline's
/// evidence does not wait on it, and the next look tries again.
async fn ledger_account_changes(sinks: &mut EvidenceSinks) -> Result<(), Error> {
    let Some(pending) = sinks.account_changes.new_changes() else {
        return Ok(());
    };
    let changes = pending.audits.len();
    sinks.ledger.append(pending.audits).await?;
    sinks.account_changes.ledgered(pending.end);
    tracing::info!(changes, "account changes made on the command line ledgered");
    Ok(())
}

/// Raises the alert about a nearly full data directory when the room falls.
async fn room_check(sinks: &mut EvidenceSinks) -> Result<(), Error> {
    let free = match crate::room::available_bytes(&sinks.data_dir) {
        Ok(free) => free,
        Err(e) => {
            tracing::warn!(error = %e, dir = %sinks.data_dir.display(), "room in the data directory cannot be read");
            return Ok(());
        }
    };
    match sinks.room.check(free, now_millis()) {
        Some(alert) => record_alerts(vec![alert], sinks).await,
        None => Ok(()),
    }
}

/// Raises the alerts about collectors: a clock that has stayed off, one
/// fallen silent, one heard again.
async fn collectors_check(sinks: &mut EvidenceSinks) -> Result<(), Error> {
    let (heard, now) = (sinks.stats.collectors.judged(), now_millis());
    let mut alerts = sinks.clocks.check(&heard, now);
    alerts.extend(sinks.silences.check(&heard, now));
    record_alerts(alerts, sinks).await
}

/// What the evidence stage, as the engine's owner, is asked between batches.
struct EngineAsks {
    reloads: tokio::sync::mpsc::Receiver<ReloadRequest>,
    on_site: tokio::sync::mpsc::Receiver<crate::on_site::OnSiteAsk>,
}

async fn evidence_stage(
    mut events: Subscriber<Ingested>,
    mut sinks: EvidenceSinks,
    mut engine: Engine,
    missed: Vec<Alert>,
    mut asks: EngineAsks,
    mut stop: Option<watch::Receiver<bool>>,
) {
    if let Err(e) = record_alerts(missed, &sinks).await {
        tracing::error!(error = %e, "evidence stage failed: stopping the pipeline");
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut minutely = tokio::time::interval(MINUTELY);
    minutely.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut account_changes = tokio::time::interval(ACCOUNT_CHANGES_CHECK);
    account_changes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each heartbeat kept (a check may cover several that came meanwhile).
    let mut heartbeats = sinks.stats.collectors.subscribe();
    loop {
        let result = tokio::select! {
            d = events.next() => match d {
                Some(d) => ledger_batch(d, &mut sinks, &mut engine).await,
                None => break,
            },
            _ = tick.tick() => {
                let alerts = engine.on_tick(now_millis());
                match record_alerts(alerts, &sinks).await {
                    Ok(()) => flood_check(&sinks).await,
                    Err(e) => Err(e),
                }
            }
            Some(r) = asks.reloads.recv() => match r.what {
                Reload::Rules => reload_rules(r, &mut engine, &sinks).await,
                Reload::Inventory => reload_inventory(r, &mut engine, &mut sinks).await,
            },
            Some(ask) = asks.on_site.recv() => {
                // The asker may have given up; nothing to do then.
                let timeout_ms = i64::try_from(engine.config().presence_lookback_ms).unwrap_or(i64::MAX);
                let (people, unidentified) = (engine.on_site(ask.at), engine.unidentified_entries(ask.at));
                let inventory = engine.inventory().clone();
                let answer = crate::on_site::OnSiteAnswer { people, unidentified, timeout_ms, inventory };
                let _ = ask.reply.send(answer);
                Ok(())
            }
            _ = minutely.tick() => match room_check(&mut sinks).await {
                Ok(()) => collectors_check(&mut sinks).await,
                failed => failed,
            },
            Ok(()) = heartbeats.changed() => collectors_check(&mut sinks).await,
            _ = account_changes.tick() => ledger_account_changes(&mut sinks).await,
            _ = stopped(&mut stop) => break,
        };
        if let Err(e) = result {
            // Fail-stop: without a working ledger nothing may be acknowledged.
            tracing::error!(error = %e, "evidence stage failed: stopping the pipeline");
            return;
        }
    }
    if stop.is_none() {
        // Input closed: decide what is still pending on what arrived.
        let alerts = engine.on_tick(i64::MAX / 2);
        if let Err(e) = record_alerts(alerts, &sinks).await {
            tracing::error!(error = %e, "final alerts could not be ledgered");
        }
    }
}

async fn ledger_batch(
    d: ingest::bus::Delivery<Ingested>,
    sinks: &mut EvidenceSinks,
    engine: &mut Engine,
) -> Result<(), Error> {
    let (items, commit) = d.into_parts();
    if items.is_empty() {
        commit.commit();
        return Ok(());
    }
    let now = now_millis();
    let records = items
        .iter()
        .map(|i| match &i.record {
            Normalized::Event(e) => record::encode(RecordKind::Event, now, e),
            Normalized::DeadLetter(d) => record::encode(RecordKind::Deadletter, now, d),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let range = sinks.ledger.append(records).await?;
    // Durable: now the sources and the bus may forget what these records covered.
    if let Some(p) = &sinks.positions {
        let latest = ingest::Position::latest(items.iter().filter_map(|i| i.position.as_ref()));
        p.commit(latest.iter().map(|(k, v)| (k.as_ref(), *v)))
            .map_err(Error::io("store positions", Path::new("positions.json")))?;
    }
    commit.commit();
    sinks.stats.ledgered.record_batch(&items);
    let mut alerts = Vec::new();
    let mut evs = Vec::new();
    let mut dls = Vec::new();
    for (index, item) in range.zip(items) {
        match item.record {
            Normalized::Event(e) => {
                alerts.extend(engine.on_event(index, &e));
                sinks.stats.late_events.store(engine.late_events(), Ordering::Relaxed);
                evs.push(Stored { index, item: Arc::from(e) });
            }
            Normalized::DeadLetter(d) => {
                tracing::debug!(source = %d.source, reason = %d.reason, index, "dead letter");
                dls.push(Stored { index, item: Arc::from(d) });
            }
        }
    }
    if !dls.is_empty() {
        sinks.deadletters.append(&dls).map_err(Error::io("write dead letters", Path::new("deadletter")))?;
    }
    sinks.stats.dead_letters.fetch_add(dls.len() as u64, Ordering::Relaxed);
    sinks.views.add_events(evs);
    sinks.views.add_dead_letters(dls);
    record_alerts(alerts, sinks).await
}

/// Loads the configured rules; swaps them in only when the whole set is good.
async fn reload_rules(r: ReloadRequest, engine: &mut Engine, sinks: &EvidenceSinks) -> Result<(), Error> {
    let outcome = engine.load_rules().map(|set| {
        let changes = crate::in_force::rules_diff(&crate::in_force::rule_digests(&engine.rules().files), &set.files);
        (set, changes)
    });
    let details = match &outcome {
        Ok((set, changes)) => serde_json::json!({"rules": set.rules.len(), "changes": changes}),
        Err(errors) => serde_json::json!({"errors": errors}),
    };
    let index = audit_reload(&r, "rules.reload", outcome.is_ok(), details, sinks).await?;
    let reply = match outcome {
        Ok((set, changes)) => {
            if changes.is_some() {
                let digests = crate::in_force::rule_digests(&set.files);
                keep_reloaded(sinks, index, |d| d.rules = digests);
            }
            let reloaded = Reloaded { rules: set.rules.len(), changed: changes.is_some() };
            engine.replace_rules(set);
            sinks.running.send_replace(crate::state::Running::of(engine));
            tracing::info!(rules = reloaded.rules, changed = reloaded.changed, by = %r.by, "rules reloaded");
            Ok(reloaded)
        }
        Err(errors) => {
            tracing::warn!(?errors, by = %r.by, "rule reload refused; the running rules stay");
            Err(errors)
        }
    };
    let _ = r.reply.send(reply);
    Ok(())
}

/// Reads the inventory file again and compiles the running rule files
/// against it; swaps both in (the normaliser's too) only when both are good.
async fn reload_inventory(r: ReloadRequest, engine: &mut Engine, sinks: &mut EvidenceSinks) -> Result<(), Error> {
    let outcome = sinks.inventory.file.load().map_err(|e| vec![e.to_string()]).and_then(|(inventory, text)| {
        let rules = engine.rules_for(&inventory)?;
        let sha256 = text.as_ref().map(|t| crate::in_force::sha256(t.text.as_bytes()));
        Ok((inventory, text, rules, sha256))
    });
    let details = match &outcome {
        Ok((_, text, rules, sha256)) => {
            let changed = *sha256 != sinks.inventory.sha256;
            let mut change = crate::in_force::inventory_change(text.as_ref(), sinks.inventory.sha256.as_ref());
            if !changed {
                change["text"] = serde_json::Value::Null;
            }
            change["changed"] = changed.into();
            change["rules"] = rules.rules.len().into();
            change
        }
        Err(errors) => serde_json::json!({"errors": errors}),
    };
    let index = audit_reload(&r, "inventory.reload", outcome.is_ok(), details, sinks).await?;
    let reply = match outcome {
        Ok((inventory, _, rules, sha256)) => {
            let reloaded = Reloaded { rules: rules.rules.len(), changed: sha256 != sinks.inventory.sha256 };
            if reloaded.changed {
                keep_reloaded(sinks, index, |d| d.inventory = sha256.clone());
            }
            let inventory = Arc::new(inventory);
            engine.replace_inventory(inventory.clone(), rules);
            sinks.running.send_replace(crate::state::Running::of(engine));
            sinks.inventory.feed.send_replace(inventory);
            sinks.inventory.sha256 = sha256;
            tracing::info!(changed = reloaded.changed, by = %r.by, "inventory reloaded");
            Ok(reloaded)
        }
        Err(errors) => {
            tracing::warn!(?errors, by = %r.by, "inventory reload refused; the running inventory stays");
            Err(errors)
        }
    };
    let _ = r.reply.send(reply);
    Ok(())
}

/// The `audit` record of a reload: `action`, or `action.refused`, by who asked.
async fn audit_reload(
    r: &ReloadRequest,
    action: &str,
    done: bool,
    details: serde_json::Value,
    sinks: &EvidenceSinks,
) -> Result<u64, Error> {
    let action = if done { action.to_owned() } else { format!("{action}.refused") };
    let entry =
        crate::audit::Entry { actor: &r.by, printed_name: None, role: None, action: &action, reason: "", details };
    Ok(sinks.ledger.append(vec![crate::audit::encode(&entry)?]).await?.start)
}

/// Keeps what a reload put in force (its record at `index`) in `in-force.json`.
fn keep_reloaded(sinks: &EvidenceSinks, index: u64, change: impl FnOnce(&mut crate::in_force::Digests)) {
    match sinks.ledger.snapshot() {
        Ok(snap) => crate::in_force::keep_reloaded(&sinks.data_dir, &snap, index, change),
        Err(e) => crate::in_force::forget(&sinks.data_dir, &e),
    }
}

/// Puts alarms in the outbox (synced) for the forwarders.
async fn send_alarms(alarms: &[correlate::Alarm], sinks: &EvidenceSinks) -> Result<(), Error> {
    for a in alarms {
        let priority = usize::from(a.priority.clamp(1, 4)) - 1;
        sinks.stats.alarms_raised[priority].fetch_add(1, Ordering::Relaxed);
    }
    match &sinks.outbox {
        Some(outbox) if !alarms.is_empty() => outbox.append(alarms).await.map_err(|source| Error::Io {
            what: "alarm outbox",
            path: "alarms".into(),
            source,
        }),
        _ => Ok(()),
    }
}

/// Ends floods whose rate has fallen (one summary alarm each).
async fn flood_check(sinks: &EvidenceSinks) -> Result<(), Error> {
    let alarms = sinks.views.alarms.lock().unwrap_or_else(|e| e.into_inner()).tick(now_millis());
    send_alarms(&alarms, sinks).await
}

/// Ledgers alerts and the incidents they open or change, then shows them.
async fn record_alerts(alerts: Vec<Alert>, sinks: &EvidenceSinks) -> Result<(), Error> {
    let (ledger, views, stats) = (&sinks.ledger, &sinks.views, &sinks.stats);
    if alerts.is_empty() {
        return Ok(());
    }
    let now = now_millis();
    let turn = views.incident_turn().await;
    // One version of each incident the batch changed, after all of it.
    let filed = turn.book().file_all(&alerts);
    let mut records = Vec::with_capacity(alerts.len() + filed.changed.len());
    for a in &alerts {
        records.push(record::encode(RecordKind::Alert, now, a)?);
    }
    for i in &filed.changed {
        records.push(record::encode(RecordKind::Incident, now, i)?);
    }
    let range = turn.submit(ledger, records).await?.durable().await?;
    for (a, incident) in alerts.iter().zip(&filed.incident_of) {
        tracing::warn!(rule = %a.rule, %incident, severity = a.severity_id, summary = %a.summary, "alert");
    }
    stats.alerts.fetch_add(alerts.len() as u64, Ordering::Relaxed);
    // Alarms only for alerts that are evidence already (ledgered above).
    let alarms: Vec<correlate::Alarm> = {
        let mut board = views.alarms.lock().unwrap_or_else(|e| e.into_inner());
        alerts.iter().flat_map(|a| board.raise(a, now)).collect()
    };
    // The alerts first, then the incidents that name them.
    let first_incident = range.start + alerts.len() as u64;
    views.add_alerts(range.zip(alerts).map(|(index, a)| Stored { index, item: Arc::new(a) }));
    views.show_incidents((first_incident..).zip(filed.changed));
    send_alarms(&alarms, sinks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bus is sized for the largest record any source makes: a push
    /// counts only where pushes are taken.
    #[test]
    fn the_largest_record_is_that_of_the_largest_source() {
        let mut cfg = Config::with_data_dir("d".into());
        assert_eq!(largest_record(&cfg), 65_535, "a datagram at the least");
        cfg.sources.syslog_tcp.push(ingest::source::syslog::SyslogTcpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            name: "tcp".into(),
            max_frame: 200_000,
            tls: None,
        });
        assert_eq!(largest_record(&cfg), 200_000);
        cfg.sources
            .http
            .push(crate::config::HttpPushConfig { name: "badge".into(), format: ingest::Format::BadgeJson });
        assert_eq!(largest_record(&cfg), cfg.http.max_body_bytes, "one pushed record may be the whole body");
    }
}
