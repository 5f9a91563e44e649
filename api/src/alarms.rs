//! Alarm forwarding to the control room: alarms from the board go to a
//! durable outbox (`<data-dir>/alarms/outbox.jsonl`, synced before the alerts
//! are taken as handled), and one forwarder per target sends them in order —
//! RFC 5424 syslog over TCP or TLS (octet-counted, RFC 6587) and an HTTP
//! webhook — retrying until delivered. Each forwarder keeps its own byte
//! position next to the outbox, so a restart neither loses nor resends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use correlate::{Alarm, AlarmPolicy};
use serde::Deserialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use crate::error::Error;

fn default_sd_id() -> String {
    "custos@32473".into()
}
fn default_hostname() -> String {
    "custos".into()
}
fn default_retry_max() -> u64 {
    30_000
}

/// `[alarms]`: where control-room alarms go. Without a target nothing is
/// forwarded (alarms still stand on the board).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsConfig {
    /// Priority mapping and flood suppression (`[alarms.policy]`).
    #[serde(default)]
    pub policy: AlarmPolicy,
    #[serde(default)]
    pub syslog: Option<SyslogTarget>,
    #[serde(default)]
    pub webhook: Option<WebhookTarget>,
}

/// `[alarms.syslog]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTarget {
    /// `host:port` of the receiver (TCP).
    pub address: String,
    /// CA certificate (PEM) to speak TLS (RFC 5425) and check the receiver. Default: plain TCP.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Structured-data id of the alarm element. Default `custos@32473` (32473 is
    /// the documentation enterprise number: set your organisation's PEN).
    #[serde(default = "default_sd_id")]
    pub sd_id: String,
    /// HOSTNAME field. Default `custos`.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Longest wait between retries, ms. Default 30000.
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
}

impl SyslogTarget {
    /// Plain TCP to `address` with the defaults.
    pub fn plain(address: String) -> Self {
        Self {
            address,
            tls_ca: None,
            sd_id: default_sd_id(),
            hostname: default_hostname(),
            retry_max_ms: default_retry_max(),
        }
    }
}

impl WebhookTarget {
    pub fn new(url: String) -> Self {
        Self { url, retry_max_ms: default_retry_max() }
    }
}

/// `[alarms.webhook]`: each alarm POSTed as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// `http://host:port/path` (for HTTPS, put a local TLS relay in front).
    pub url: String,
    /// Longest wait between retries, ms. Default 30000.
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
}

/// Syslog severity for an alarm priority (1 → critical .. 4 → notice).
fn syslog_severity(priority: u8) -> u8 {
    match priority {
        0 | 1 => 2,
        2 => 3,
        3 => 4,
        _ => 5,
    }
}

/// `"`, `\` and `]` escaped for an SD-PARAM value (RFC 5424 §6.3.3).
fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One alarm as an RFC 5424 message (facility local4), framed by octet
/// counting (RFC 6587 §3.4.1).
pub fn syslog_frame(alarm: &Alarm, target: &SyslogTarget) -> Vec<u8> {
    let pri = 20 * 8 + u32::from(syslog_severity(alarm.priority));
    let time = ingest::time::format_rfc3339(alarm.raised_at);
    let (kind, rule) = match &alarm.kind {
        correlate::AlarmKind::Alert { rule, .. } => ("alert", rule.as_str()),
        correlate::AlarmKind::FloodStarted { .. } => ("flood-started", "-"),
        correlate::AlarmKind::FloodEnded { .. } => ("flood-ended", "-"),
    };
    let msg = format!(
        "<{pri}>1 {time} {} custos - ALARM [{} key=\"{}\" priority=\"{}\" area=\"{}\" kind=\"{kind}\" rule=\"{}\"] {}: {}",
        target.hostname,
        target.sd_id,
        sd_escape(&alarm.key),
        alarm.priority,
        sd_escape(&alarm.area),
        sd_escape(rule),
        alarm.title,
        alarm.summary
    );
    let mut framed = format!("{} ", msg.len()).into_bytes();
    framed.extend_from_slice(msg.as_bytes());
    framed
}

/// The durable outbox all forwarders read.
pub struct Outbox {
    dir: PathBuf,
    appended: Notify,
}

impl Outbox {
    pub fn open(dir: &Path) -> Result<Arc<Self>, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("alarm outbox", dir))?;
        Ok(Arc::new(Self { dir: dir.to_owned(), appended: Notify::new() }))
    }

    fn path(&self) -> PathBuf {
        self.dir.join("outbox.jsonl")
    }

    /// Appends `alarms` and syncs them to disk.
    pub async fn append(&self, alarms: &[Alarm]) -> std::io::Result<()> {
        if alarms.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for a in alarms {
            text.push_str(&serde_json::to_string(a).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        let path = self.path();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            f.write_all(text.as_bytes())?;
            f.sync_data()
        })
        .await
        .map_err(std::io::Error::other)??;
        self.appended.notify_waiters();
        Ok(())
    }

    /// The alarms after byte `from`, with the offset after each.
    /// Only the bytes after `from` are read: the outbox keeps every alarm
    /// ever sent, and a forwarder wakes for each new one.
    async fn read_from(&self, from: u64) -> std::io::Result<Vec<(Alarm, u64)>> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = match tokio::fs::File::open(self.path()).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let start = file.seek(std::io::SeekFrom::Start(from)).await?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await?;
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(n) = bytes[at..].iter().position(|b| *b == b'\n') {
            let line = &bytes[at..at + n];
            at += n + 1;
            let offset = start + at as u64;
            match serde_json::from_slice::<Alarm>(line) {
                Ok(a) => out.push((a, offset)),
                // A line we cannot read is skipped loudly, not retried forever.
                Err(e) => tracing::error!(error = %e, offset, "unreadable alarm in the outbox"),
            }
        }
        Ok(out)
    }

    /// Those of `alarms` the outbox does not already end with: for each, the
    /// outbox's last alarm with its key is of another kind, or there is none.
    /// A flood that ended after the last ledger record before a stop was
    /// announced then; one that ended while stopped is announced now.
    pub async fn not_yet_sent(&self, alarms: Vec<Alarm>) -> std::io::Result<Vec<Alarm>> {
        if alarms.is_empty() {
            return Ok(alarms);
        }
        let mut last: std::collections::HashMap<String, Alarm> = std::collections::HashMap::new();
        for (a, _) in self.read_from(0).await? {
            last.insert(a.key.clone(), a);
        }
        let same_kind = |a: &Alarm| {
            last.get(&a.key).is_some_and(|l| std::mem::discriminant(&l.kind) == std::mem::discriminant(&a.kind))
        };
        Ok(alarms.into_iter().filter(|a| !same_kind(a)).collect())
    }

    fn position_path(&self, sink: &str) -> PathBuf {
        self.dir.join(format!("{sink}.sent"))
    }

    fn position(&self, sink: &str) -> u64 {
        std::fs::read_to_string(self.position_path(sink)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
    }

    fn save_position(&self, sink: &str, at: u64) -> std::io::Result<()> {
        ingest::source::replace_file(&self.position_path(sink), at.to_string().as_bytes())
    }
}

/// A connection to the syslog receiver, plain or TLS.
type Stream = Box<dyn AsyncWrite + Unpin + Send>;

async fn connect_syslog(t: &SyslogTarget) -> std::io::Result<Stream> {
    let tcp = TcpStream::connect(&t.address).await?;
    let Some(ca) = &t.tls_ca else { return Ok(Box::new(tcp)) };
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).map_err(std::io::Error::other)? {
        roots.add(c.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = t.address.rsplit_once(':').map_or(t.address.as_str(), |(h, _)| h).trim_matches(['[', ']']);
    let name = rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    Ok(Box::new(tls))
}

/// POSTs one alarm; delivered on a 2xx answer.
async fn post_webhook(t: &WebhookTarget, alarm: &Alarm) -> std::io::Result<()> {
    let rest = t.url.strip_prefix("http://").ok_or_else(|| std::io::Error::other("webhook url must be http://"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let body = serde_json::to_vec(alarm).map_err(std::io::Error::other)?;
    let mut s = TcpStream::connect(host).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(&body).await?;
    let mut resp = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut s, &mut resp).await?;
    let status: u16 =
        std::str::from_utf8(resp.get(9..12).unwrap_or_default()).ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    if (200..300).contains(&status) { Ok(()) } else { Err(std::io::Error::other(format!("webhook answered {status}"))) }
}

enum Sink {
    Syslog(SyslogTarget, Option<Stream>),
    Webhook(WebhookTarget),
}

impl Sink {
    fn name(&self) -> &'static str {
        match self {
            Self::Syslog(..) => "syslog",
            Self::Webhook(_) => "webhook",
        }
    }

    fn retry_max(&self) -> u64 {
        match self {
            Self::Syslog(t, _) => t.retry_max_ms,
            Self::Webhook(t) => t.retry_max_ms,
        }
    }

    async fn deliver(&mut self, alarm: &Alarm) -> std::io::Result<()> {
        match self {
            Self::Syslog(t, conn) => {
                if conn.is_none() {
                    *conn = Some(connect_syslog(t).await?);
                }
                let frame = syslog_frame(alarm, t);
                let result = match conn.as_mut() {
                    Some(c) => match c.write_all(&frame).await {
                        Ok(()) => c.flush().await,
                        Err(e) => Err(e),
                    },
                    None => Err(std::io::Error::other("not connected")),
                };
                if result.is_err() {
                    // Reconnect on the next attempt.
                    *conn = None;
                }
                result
            }
            Self::Webhook(t) => post_webhook(t, alarm).await,
        }
    }
}

/// Starts one forwarder per configured target.
pub fn spawn_forwarders(
    cfg: &AlarmsConfig,
    outbox: Arc<Outbox>,
    stop: watch::Receiver<bool>,
    failures: Arc<std::sync::atomic::AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut sinks = Vec::new();
    if let Some(t) = &cfg.syslog {
        sinks.push(Sink::Syslog(t.clone(), None));
    }
    if let Some(t) = &cfg.webhook {
        sinks.push(Sink::Webhook(t.clone()));
    }
    sinks.into_iter().map(|sink| tokio::spawn(forward(sink, outbox.clone(), stop.clone(), failures.clone()))).collect()
}

async fn forward(
    mut sink: Sink,
    outbox: Arc<Outbox>,
    mut stop: watch::Receiver<bool>,
    failures: Arc<std::sync::atomic::AtomicU64>,
) {
    let name = sink.name();
    let mut at = outbox.position(name);
    loop {
        let woken = outbox.appended.notified();
        let pending = match outbox.read_from(at).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(sink = name, error = %e, "cannot read the alarm outbox");
                Vec::new()
            }
        };
        for (alarm, next) in pending {
            let mut wait = 250;
            while let Err(e) = sink.deliver(&alarm).await {
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(sink = name, key = %alarm.key, error = %e, retry_ms = wait, "alarm not delivered; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                wait = (wait * 2).min(sink.retry_max());
            }
            at = next;
            if let Err(e) = outbox.save_position(name, at) {
                tracing::error!(sink = name, error = %e, "cannot store the alarm position");
            }
        }
        tokio::select! {
            _ = woken => {}
            // New lines are also picked up on a slow poll (another process may write).
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_frame_is_rfc5424_with_escaped_structured_data() {
        let alarm = Alarm {
            key: "r/PLC \"1\"".into(),
            priority: 1,
            area: "cell-1]".into(),
            title: "t".into(),
            summary: "s".into(),
            raised_at: 1_795_687_200_000,
            kind: correlate::AlarmKind::Alert { alert: "a".into(), rule: "r".into() },
        };
        let target = SyslogTarget {
            address: "x:1".into(),
            tls_ca: None,
            sd_id: default_sd_id(),
            hostname: default_hostname(),
            retry_max_ms: 1,
        };
        let frame = String::from_utf8(syslog_frame(&alarm, &target)).unwrap_or_default();
        let (len, msg) = frame.split_once(' ').unwrap_or_default();
        assert_eq!(len.parse::<usize>().ok(), Some(msg.len()));
        assert!(msg.starts_with("<162>1 2026-11-26T10:00:00"), "{msg}");
        assert!(msg.contains(r#"key="r/PLC \"1\"" priority="1" area="cell-1\]""#), "{msg}");
    }

    /// A flood's end found again at a restart is sent only if the outbox
    /// does not already end with it; forwarders read on from their offset.
    #[tokio::test]
    async fn a_flood_end_is_sent_once_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Outbox::open(dir.path()).expect("outbox");
        let flood = |area: &str, kind| Alarm {
            key: format!("flood/{area}"),
            priority: 1,
            area: area.into(),
            title: "t".into(),
            summary: "s".into(),
            raised_at: 1,
            kind,
        };
        let (started, ended) = (
            correlate::AlarmKind::FloodStarted { alarms_in_window: 11 },
            correlate::AlarmKind::FloodEnded { suppressed: 3 },
        );
        outbox.append(&[flood("cell-1", started.clone()), flood("cell-2", started)]).await.expect("append");
        outbox.append(&[flood("cell-1", ended.clone())]).await.expect("append");
        let found = vec![flood("cell-1", ended.clone()), flood("cell-2", ended.clone()), flood("lab", ended)];
        let unsent = outbox.not_yet_sent(found).await.expect("read");
        assert_eq!(unsent.iter().map(|a| a.area.as_str()).collect::<Vec<_>>(), ["cell-2", "lab"]);
        let all = outbox.read_from(0).await.expect("read");
        let after_first = outbox.read_from(all[0].1).await.expect("read");
        assert_eq!(after_first, all[1..], "read on from a forwarder's offset");
    }
}
