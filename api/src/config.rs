//! `custos.toml`: one file, every section `deny_unknown_fields`, every option
//! with a default. `deploy/config/custos.example.toml` documents each key.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use correlate::EngineConfig;
use ingest::source::plc::PlcWatchConfig;
use ingest::source::syslog::{SyslogTcpConfig, SyslogUdpConfig};
use ingest::source::tail::FileTailConfig;
use serde::Deserialize;

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8088))
}
fn default_capacity() -> usize {
    64
}
fn default_origin() -> String {
    "custos.local/ledger".into()
}
fn default_group_window() -> u64 {
    3_600_000
}
fn default_recent() -> usize {
    50_000
}
fn default_session_idle() -> u64 {
    30
}
fn default_max_body() -> usize {
    4 << 20
}
fn default_low_room() -> u64 {
    2 << 30
}
/// Exports, and SQL queries, run at once by default.
fn default_turns() -> NonZeroUsize {
    NonZeroUsize::MIN.saturating_add(1)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the ledger, keys, positions and tokens live.
    pub data_dir: PathBuf,
    /// The plant inventory (TOML). Default: `<data_dir>/inventory.toml` if present, else empty.
    #[serde(default)]
    pub inventory: Option<PathBuf>,
    #[serde(default)]
    pub http: HttpConfig,
    /// Password ageing and reuse (`[accounts]`). Default: neither.
    #[serde(default)]
    pub accounts: AccountsConfig,
    #[serde(default)]
    pub bus: BusConfig,
    #[serde(default)]
    pub ledger: LedgerConfig,
    #[serde(default)]
    pub correlate: EngineConfig,
    /// Control-room alarm forwarding (`[alarms]`). Default: alarms stand on the board only.
    #[serde(default)]
    pub alarms: crate::alarms::AlarmsConfig,
    #[serde(default)]
    pub incidents: IncidentConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub sources: SourcesConfig,
    /// What a collector (`--roles ingest`) tells the core of itself (`[collector]`).
    #[serde(default)]
    pub collector: CollectorConfig,
    /// State snapshots, which spare a start the replay of the whole ledger.
    #[serde(default)]
    pub state: crate::state::StateConfig,
    /// The file this was read from and its SHA-256, ledgered as in force
    /// (see [`crate::in_force`]); `None` when made in code (the demo).
    #[serde(skip)]
    pub file: Option<(PathBuf, String)>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// API and UI address. Default 127.0.0.1:8088.
    #[serde(default = "default_http")]
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes. Default 4 MiB.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Events kept in memory for `GET /api/v1/events`. Default 50000.
    #[serde(default = "default_recent")]
    pub recent_events: usize,
    /// Evidence exports made at once; others wait their turn. Default 2.
    #[serde(default = "default_turns")]
    pub max_concurrent_exports: NonZeroUsize,
    /// SQL queries run at once; others wait their turn. Default 2.
    #[serde(default = "default_turns")]
    pub max_concurrent_sql: NonZeroUsize,
    /// A login session unused this long ends (automatic logoff); 0: only
    /// its 8 hours end it. Default 30.
    #[serde(default = "default_session_idle")]
    pub session_idle_minutes: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_http(),
            max_body_bytes: default_max_body(),
            recent_events: default_recent(),
            max_concurrent_exports: default_turns(),
            max_concurrent_sql: default_turns(),
            session_idle_minutes: default_session_idle(),
        }
    }
}

/// How people's passwords age and repeat (21 CFR Part 11 §11.300(b)).
/// Both are off by default, as NIST SP 800-63B advises against forced
/// periodic changes; a site whose procedures ask for them sets them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    /// A password its holder chose lasts this many days; then a login may
    /// only change it, and it signs nothing. 0: passwords do not age. Default 0.
    #[serde(default)]
    pub password_max_age_days: u64,
    /// A new password may not be any of its holder's last this many (the
    /// current one included; at most 24). Default 0: only not the current one.
    #[serde(default, deserialize_with = "password_history")]
    pub password_history: usize,
}

fn password_history<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n > crate::accounts::MAX_PASSWORD_HISTORY {
        return Err(serde::de::Error::custom(format!(
            "password_history: at most {} earlier passwords are kept",
            crate::accounts::MAX_PASSWORD_HISTORY
        )));
    }
    Ok(n)
}

/// `[collector]`: a collector's heartbeats on the bus's status topic, from
/// which the core exports its counters and sees it fall silent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The collector's name in the core's metrics. Default: the host's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds between heartbeats, 1 to 3,600. Default 15.
    #[serde(default = "default_heartbeat", deserialize_with = "heartbeat_seconds")]
    pub heartbeat_seconds: u64,
    /// Where the collector answers `/healthz` and `/readyz` (no
    /// authentication, no data; see [`crate::health`]). Default: none, the
    /// collector listens on no HTTP port.
    #[serde(default)]
    pub health_listen: Option<SocketAddr>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self { name: None, heartbeat_seconds: default_heartbeat(), health_listen: None }
    }
}

fn default_heartbeat() -> u64 {
    15
}

fn heartbeat_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if !(1..=3_600).contains(&n) {
        return Err(serde::de::Error::custom(format!("heartbeat_seconds: 1 to 3600 seconds, not {n}")));
    }
    Ok(n)
}

impl CollectorConfig {
    /// The configured name, else the host's (from the kernel), else `collector`.
    pub fn name(&self) -> String {
        self.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "collector".into())
        })
    }
}

impl AccountsConfig {
    pub fn policy(&self) -> crate::accounts::PasswordPolicy {
        let max_age_ms = self.password_max_age_days.saturating_mul(86_400_000);
        crate::accounts::PasswordPolicy {
            max_age_ms: i64::try_from(max_age_ms).unwrap_or(i64::MAX),
            history: self.password_history,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    /// In-process bounded channels (one process).
    #[default]
    Embedded,
    /// Apache Kafka (or a Kafka-protocol broker); settings in `[bus.kafka]`.
    Kafka,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// `embedded` (default) or `kafka`.
    #[serde(default)]
    pub kind: BusKind,
    /// Embedded bus: batches a topic holds before publishers wait. Default 64.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Required when `kind = "kafka"`.
    #[serde(default)]
    pub kafka: Option<ingest::bus::KafkaConfig>,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self { kind: BusKind::Embedded, capacity: default_capacity(), kafka: None }
    }
}

/// Which stages this process runs (`custos run --roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Sources and the normaliser.
    pub ingest: bool,
    /// The ledger and correlation (they run together: the ledger feeds correlation).
    pub evidence: bool,
    /// The HTTP API.
    pub api: bool,
}

impl Roles {
    pub const ALL: Roles = Roles { ingest: true, evidence: true, api: true };

    /// Parses `ingest,correlate,ledger,api` (or `all`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut r = Roles { ingest: false, evidence: false, api: false };
        let (mut correlate, mut ledger) = (false, false);
        for role in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match role {
                "all" => return Ok(Self::ALL),
                "ingest" => r.ingest = true,
                "correlate" => correlate = true,
                "ledger" => ledger = true,
                "api" => r.api = true,
                other => return Err(format!("unknown role {other:?} (ingest, correlate, ledger, api, all)")),
            }
        }
        if correlate != ledger {
            return Err("roles correlate and ledger run together: the ledger feeds correlation".into());
        }
        r.evidence = ledger;
        if r.api && !r.evidence {
            return Err("role api needs correlate,ledger in the same process: it serves their views".into());
        }
        if !r.ingest && !r.evidence {
            return Err("no role to run".into());
        }
        Ok(r)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Checkpoint origin line and key name. Default `custos.local/ledger`.
    #[serde(default = "default_origin")]
    pub origin: String,
    /// Below this many free bytes in the data directory, one alert (and its
    /// control-room alarm) says so, checked every minute. 0 turns it off.
    /// Default 2 GiB.
    #[serde(default = "default_low_room")]
    pub low_room_bytes: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self { origin: default_origin(), low_room_bytes: default_low_room() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentConfig {
    /// Alerts about the same entity within this span join one open incident. Default 1 h.
    #[serde(default = "default_group_window")]
    pub group_window_ms: u64,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self { group_window_ms: default_group_window() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// UTC offset in minutes for RFC 3164 timestamps (which carry none). Default 0.
    #[serde(default)]
    pub rfc3164_offset_min: i64,
    /// Column mappings for `badge-csv` records, by source name (for HTTP push
    /// sources; a file source may carry its own `mapping`).
    #[serde(default)]
    pub mappings: std::collections::BTreeMap<String, ingest::parse::pacs::BadgeMapping>,
}

/// `[[sources.http]]`: records pushed to `POST /api/v1/ingest/{name}` (role `collector`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPushConfig {
    /// The `{name}` in the URL; also the source name in events.
    pub name: String,
    /// How the pushed records are parsed, e.g. `badge-json`.
    pub format: ingest::Format,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    #[serde(default)]
    pub http: Vec<HttpPushConfig>,
    #[serde(default)]
    pub syslog_udp: Vec<SyslogUdpConfig>,
    #[serde(default)]
    pub syslog_tcp: Vec<SyslogTcpConfig>,
    #[serde(default)]
    pub file: Vec<FileTailConfig>,
    #[serde(default)]
    pub plc_backup: Vec<PlcWatchConfig>,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Invalid { path: path.to_path_buf(), message: e.to_string() })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.to_path_buf(), source: e })?;
        let file = (path.to_path_buf(), crate::in_force::sha256(text.as_bytes()));
        Ok(Self { file: Some(file), ..Self::from_toml(&text, path)? })
    }

    /// A configuration with every default and no sources.
    pub fn with_data_dir(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            inventory: None,
            http: HttpConfig::default(),
            accounts: AccountsConfig::default(),
            bus: BusConfig::default(),
            ledger: LedgerConfig::default(),
            correlate: EngineConfig::default(),
            alarms: crate::alarms::AlarmsConfig::default(),
            incidents: IncidentConfig::default(),
            ingest: IngestConfig::default(),
            sources: SourcesConfig::default(),
            collector: CollectorConfig::default(),
            state: crate::state::StateConfig::default(),
            file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_config_knows_its_file_and_hash() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/custos.example.toml"));
        let c = Config::load(path).expect("valid");
        let bytes = std::fs::read(path).expect("example config");
        assert_eq!(c.file, Some((path.to_path_buf(), crate::in_force::sha256(&bytes))));
        assert_eq!(Config::with_data_dir("/x".into()).file, None);
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/custos.example.toml"));
        let text = std::fs::read_to_string(path).expect("example config");
        let c = Config::from_toml(&text, path).expect("valid");
        assert_eq!(c.sources.syslog_udp.len(), 1);
        assert_eq!(c.sources.http[0].format, ingest::Format::BadgeJson);
        assert_eq!(c.correlate.login_window_ms, 300_000);
    }

    #[test]
    fn deployment_configs_parse() {
        for name in ["collector.toml", "core.toml"] {
            let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config")).join(name);
            let c = Config::load(&path).expect("valid");
            assert_eq!(c.bus.kind, BusKind::Kafka, "{name}");
        }
    }

    #[test]
    fn example_inventory_parses() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/inventory.example.toml"));
        let inv = ingest::Inventory::from_toml(&std::fs::read_to_string(path).expect("read")).expect("valid");
        assert_eq!(inv.asset("EWS-01").and_then(|a| a.owner.as_deref()), Some("alice"));
    }

    #[test]
    fn roles() {
        assert_eq!(Roles::parse("all"), Ok(Roles::ALL));
        assert_eq!(Roles::parse("ingest"), Ok(Roles { ingest: true, evidence: false, api: false }));
        assert_eq!(Roles::parse("correlate,ledger,api"), Ok(Roles { ingest: false, evidence: true, api: true }));
        assert!(Roles::parse("correlate").is_err_and(|e| e.contains("together")));
        assert!(Roles::parse("api").is_err());
        assert!(Roles::parse("dance").is_err_and(|e| e.contains("dance")));
    }

    #[test]
    fn kafka_bus_section() {
        let c = Config::from_toml("data_dir = \"d\"\n[bus]\nkind = \"kafka\"\n[bus.kafka]\nbrokers = \"k1:9092\"\n[bus.kafka.properties]\n\"security.protocol\" = \"ssl\"\n", Path::new("c")).expect("valid");
        let k = c.bus.kafka.expect("kafka section");
        assert_eq!((k.brokers.as_str(), k.topic_prefix.as_str(), k.partitions), ("k1:9092", "custos", 6));
        assert_eq!(k.properties.get("security.protocol").map(String::as_str), Some("ssl"));
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let p = Path::new("custos.toml");
        let e =
            Config::from_toml("data_dir = \"d\"\n[http]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", p).expect_err("typo");
        assert!(e.to_string().contains("unknown field `lisen`"), "{e}");
        let e =
            Config::from_toml("data_dir = \"d\"\n[correlate]\nallowed_lateness_ms = \"soon\"\n", p).expect_err("type");
        assert!(e.to_string().contains("allowed_lateness_ms"), "{e}");
        let e = Config::from_toml("data_dir = \"d\"\n[http]\nmax_concurrent_exports = 0\n", p).expect_err("zero");
        assert!(e.to_string().contains("max_concurrent_exports"), "{e}");
        let e = Config::from_toml("data_dir = \"d\"\n[accounts]\npassword_history = 25\n", p).expect_err("too many");
        assert!(e.to_string().contains("password_history: at most 24"), "{e}");
        let c =
            Config::from_toml("data_dir = \"d\"\n[accounts]\npassword_max_age_days = 90\npassword_history = 5\n", p)
                .expect("valid");
        let policy = crate::accounts::PasswordPolicy { max_age_ms: 90 * 86_400_000, history: 5 };
        assert_eq!(c.accounts.policy(), policy);
        let e = Config::from_toml("[http]\n", p).expect_err("missing");
        assert!(e.to_string().contains("data_dir"), "{e}");
        let e = Config::from_toml("data_dir = \"d\"\n[collector]\nheartbeat_seconds = 0\n", p).expect_err("zero");
        assert!(e.to_string().contains("heartbeat_seconds: 1 to 3600 seconds, not 0"), "{e}");
        let c = Config::from_toml("data_dir = \"d\"\n[collector]\nname = \"dmz-1\"\n", p).expect("valid");
        assert_eq!((c.collector.name().as_str(), c.collector.heartbeat_seconds), ("dmz-1", 15));
        assert!(!Config::with_data_dir("d".into()).collector.name().is_empty(), "the host's name");
    }
}
