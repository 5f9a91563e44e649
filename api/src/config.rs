//! `custos.toml`: one file, every section `deny_unknown_fields`, every option
//! with a default. `deploy/config/custos.example.toml` documents each key.
//! Environment variables `CUSTOS__SECTION__KEY` override it (see
//! [`ENV_PREFIX`]), as containers and secret stores pass settings.

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
    /// (see [`crate::in_force`]); `None` when made in code (the demo). With
    /// environment overrides the SHA-256 covers them too (see [`digest`]).
    #[serde(skip)]
    pub file: Option<(PathBuf, String)>,
    /// The names of the environment variables that overrode the file, sorted.
    #[serde(skip)]
    pub environment: Vec<String>,
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

/// Environment variables named `CUSTOS__` then a key's path in upper case,
/// each step after `__`, override the file: `CUSTOS__HTTP__LISTEN`,
/// `CUSTOS__BUS__KAFKA__BROKERS`, `CUSTOS__SOURCES__SYSLOG_UDP__0__LISTEN`
/// (a number picks an entry of a list the file has). A value is read as a
/// TOML value when it is one (`30`, `true`, `["a", "b"]`, `"0042"`), else
/// as a string (`0.0.0.0:8088`, `kafka`).
pub const ENV_PREFIX: &str = "CUSTOS__";

/// What the ledger states of a configuration: the SHA-256 of the file's
/// bytes, then, for each override sorted by name, a newline and
/// `NAME=value`. Without overrides it is the file's `sha256sum`.
pub fn digest(text: &str, overrides: &[(String, String)]) -> String {
    let mut all = text.to_owned();
    for (name, value) in overrides {
        all.push('\n');
        all.push_str(name);
        all.push('=');
        all.push_str(value);
    }
    crate::in_force::sha256(all.as_bytes())
}

/// The `CUSTOS__` variables among `vars`, sorted by name; a name or value
/// that is not UTF-8 is refused, naming it.
fn overrides_in(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    for (name, value) in vars {
        if !name.as_encoded_bytes().starts_with(ENV_PREFIX.as_bytes()) {
            continue;
        }
        let name = name.into_string().map_err(|n| format!("environment {}: the name is not UTF-8", n.display()))?;
        let value = value.into_string().map_err(|_| format!("environment {name}: the value is not UTF-8"))?;
        found.push((name, value));
    }
    found.sort();
    Ok(found)
}

/// Sets the key `name` names in `table` to `value`.
fn apply_override(table: &mut toml::Table, name: &str, value: &str) -> Result<(), String> {
    let steps: Vec<String> =
        name.strip_prefix(ENV_PREFIX).unwrap_or(name).split("__").map(str::to_ascii_lowercase).collect();
    if steps.iter().any(String::is_empty) {
        return Err(format!("environment {name}: an empty step in the key's path"));
    }
    let (last, path) = steps.split_last().ok_or_else(|| format!("environment {name}: no key"))?;
    let mut at = table;
    let mut walked = String::new();
    let mut steps = path.iter().peekable();
    while let Some(step) = steps.next() {
        walked = if walked.is_empty() { step.clone() } else { format!("{walked}.{step}") };
        let node = at.entry(step.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = match node {
            toml::Value::Table(t) => t,
            toml::Value::Array(entries) => {
                let len = entries.len();
                let index =
                    steps.next().and_then(|i| i.parse::<usize>().ok()).filter(|i| *i < len).ok_or_else(|| {
                        format!("environment {name}: {walked} is a list of {len}: name an entry by its number from 0")
                    })?;
                walked = format!("{walked}.{index}");
                match &mut entries[index] {
                    toml::Value::Table(t) => t,
                    _ => return Err(format!("environment {name}: {walked} is not a table")),
                }
            }
            _ => return Err(format!("environment {name}: {walked} is a value, not a table")),
        };
    }
    at.insert(last.clone(), env_value(value));
    Ok(())
}

/// A TOML value when `text` is exactly one, else the text as a string.
fn env_value(text: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        Ok(mut t) if t.len() == 1 => t.remove("v").unwrap_or_else(|| toml::Value::String(text.to_owned())),
        _ => toml::Value::String(text.to_owned()),
    }
}

impl Config {
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Invalid { path: path.to_path_buf(), message: e.to_string() })
    }

    /// The file's configuration with `overrides` (from [`ENV_PREFIX`]
    /// variables) applied. The file is checked alone first, so its errors
    /// name its lines; an override's error names the variable.
    pub fn from_toml_with(text: &str, path: &Path, overrides: &[(String, String)]) -> Result<Self, ConfigError> {
        let alone = Self::from_toml(text, path)?;
        if overrides.is_empty() {
            return Ok(alone);
        }
        let invalid = |message: String| ConfigError::Invalid { path: path.to_path_buf(), message };
        let table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let with = |overrides: &[(String, String)]| -> Result<Self, String> {
            let mut t = table.clone();
            for (name, value) in overrides {
                apply_override(&mut t, name, value)?;
            }
            toml::Value::Table(t).try_into::<Self>().map_err(|e| e.to_string())
        };
        with(overrides).map_err(|e| {
            // Name the first variable that fails on its own (else all of them).
            let culprit = overrides.iter().find_map(|o| with(std::slice::from_ref(o)).err().map(|e| (&o.0, e)));
            invalid(match culprit {
                Some((_, e)) if e.starts_with("environment ") => e,
                Some((name, e)) => format!("environment {name}: {}", e.trim_end()),
                None => format!("environment overrides together: {}", e.trim_end()),
            })
        })
    }

    /// Reads `path`, with the environment's overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.to_path_buf(), source: e })?;
        let overrides = overrides_in(std::env::vars_os())
            .map_err(|message| ConfigError::Invalid { path: path.to_path_buf(), message })?;
        let file = (path.to_path_buf(), digest(&text, &overrides));
        let environment = overrides.iter().map(|(name, _)| name.clone()).collect();
        Ok(Self { file: Some(file), environment, ..Self::from_toml_with(&text, path, &overrides)? })
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
            environment: Vec::new(),
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

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    const FILE: &str = "data_dir = \"d\"\n[[sources.syslog_udp]]\nlisten = \"0.0.0.0:514\"\n";

    #[test]
    fn the_environment_overrides_the_file() {
        let p = Path::new("custos.toml");
        let overrides = vars(&[
            ("CUSTOS__BUS__KAFKA__BROKERS", "kafka:9092"),
            ("CUSTOS__BUS__KAFKA__PROPERTIES__SASL.PASSWORD", "s3cret"),
            ("CUSTOS__BUS__KIND", "kafka"),
            ("CUSTOS__COLLECTOR__HEARTBEAT_SECONDS", "30"),
            ("CUSTOS__COLLECTOR__NAME", "\"0042\""),
            ("CUSTOS__HTTP__LISTEN", "0.0.0.0:9000"),
            ("CUSTOS__SOURCES__SYSLOG_UDP__0__LISTEN", "127.0.0.1:5514"),
            ("CUSTOS__STATE__SNAPSHOT_EVERY_RECORDS", "0"),
        ]);
        let c = Config::from_toml_with(FILE, p, &overrides).expect("valid");
        assert_eq!(c.http.listen, "0.0.0.0:9000".parse().expect("addr"));
        assert!(matches!(c.bus.kind, BusKind::Kafka));
        let kafka = c.bus.kafka.expect("kafka");
        assert_eq!(kafka.brokers, "kafka:9092");
        assert_eq!(kafka.properties.get("sasl.password").map(String::as_str), Some("s3cret"));
        assert_eq!((c.collector.heartbeat_seconds, c.collector.name().as_str()), (30, "0042"));
        assert_eq!(c.sources.syslog_udp[0].listen, "127.0.0.1:5514".parse().expect("addr"));
        // The file alone is as it says.
        let alone = Config::from_toml_with(FILE, p, &[]).expect("valid");
        assert_eq!(alone.sources.syslog_udp[0].listen, "0.0.0.0:514".parse().expect("addr"));
    }

    #[test]
    fn a_bad_override_is_named() {
        let p = Path::new("custos.toml");
        for (name, value, said) in [
            ("CUSTOS__HTTP__LISEN", "1", "environment CUSTOS__HTTP__LISEN: unknown field `lisen`"),
            ("CUSTOS__COLLECTOR__HEARTBEAT_SECONDS", "0", "heartbeat_seconds: 1 to 3600 seconds, not 0"),
            ("CUSTOS__HTTP__LISTEN", "nowhere", "environment CUSTOS__HTTP__LISTEN: invalid"),
            ("CUSTOS__SOURCES__SYSLOG_UDP__1__LISTEN", "x", "sources.syslog_udp is a list of 1"),
            ("CUSTOS__SOURCES__SYSLOG_UDP__LISTEN", "x", "sources.syslog_udp is a list of 1"),
            ("CUSTOS__DATA_DIR__X", "x", "environment CUSTOS__DATA_DIR__X: data_dir is a value, not a table"),
            ("CUSTOS__HTTP____LISTEN", "x", "an empty step"),
        ] {
            let overrides = vars(&[("CUSTOS__BUS__KIND", "embedded"), (name, value)]);
            let e = Config::from_toml_with(FILE, p, &overrides).expect_err(name).to_string();
            assert!(e.starts_with("custos.toml: environment ") && e.contains(said), "{name}: {e}");
            assert!(e.contains(name), "names the variable: {e}");
        }
        // The file's own errors come first, naming its key.
        let e = Config::from_toml_with("data_dir = 1\n", p, &vars(&[("CUSTOS__DATA_DIR", "\"d\"")])).expect_err("file");
        assert!(e.to_string().contains("data_dir") && !e.to_string().contains("environment"), "{e}");
    }

    #[test]
    fn overrides_are_read_from_custos_variables_only_and_stated_in_the_digest() {
        use std::ffi::OsString;
        let os = |n: &str, v: &str| (OsString::from(n), OsString::from(v));
        let found = overrides_in([
            os("PATH", "/bin"),
            os("CUSTOS_TEST_KAFKA_BROKERS", "k"),
            os("CUSTOS__HTTP__LISTEN", "0.0.0.0:1"),
            os("CUSTOS__BUS__KIND", "kafka"),
        ])
        .expect("utf-8");
        assert_eq!(found, vars(&[("CUSTOS__BUS__KIND", "kafka"), ("CUSTOS__HTTP__LISTEN", "0.0.0.0:1")]));
        let bad = std::os::unix::ffi::OsStringExt::from_vec(vec![0xff]);
        let e = overrides_in([(OsString::from("CUSTOS__HTTP__LISTEN"), bad)]).expect_err("not utf-8");
        assert_eq!(e, "environment CUSTOS__HTTP__LISTEN: the value is not UTF-8");

        assert_eq!(digest(FILE, &[]), crate::in_force::sha256(FILE.as_bytes()), "the file's sha256sum");
        let with = digest(FILE, &found);
        assert_eq!(
            with,
            crate::in_force::sha256(
                format!("{FILE}\nCUSTOS__BUS__KIND=kafka\nCUSTOS__HTTP__LISTEN=0.0.0.0:1").as_bytes()
            )
        );
        assert_ne!(with, digest(FILE, &found[..1]));
    }

    proptest::proptest! {
        /// Whatever an operator's environment holds, reading it overrides or
        /// refuses, naming the variable; it never panics.
        #[test]
        fn any_override_is_taken_or_refused_by_name(
            steps in proptest::collection::vec("(HTTP|LISTEN|SOURCES|SYSLOG_UDP|0|1|BUS|KAFKA|[A-Z_.]{0,6})", 0..5),
            value in "[ -~]{0,20}",
        ) {
            let name = format!("{ENV_PREFIX}{}", steps.join("__"));
            let overrides = vars(&[(&name, &value)]);
            if let Err(e) = Config::from_toml_with(FILE, Path::new("c.toml"), &overrides) {
                proptest::prop_assert!(e.to_string().starts_with(&format!("c.toml: environment {name}: ")), "{}", e);
            }
        }
    }
}
