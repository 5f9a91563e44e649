//! Health of a process that serves no API (a collector, `--roles ingest`):
//! `/healthz` and `/readyz` only, unauthenticated and without data, for
//! docker-compose, Kubernetes or systemd checks; and `custos probe`, the HTTP
//! check those run (the runtime image has no curl).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use ingest::bus::DELIVERY_TIMEOUT;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;
use crate::server::ApiError;

/// What a collector's `/readyz` knows: whether its normaliser runs, and when
/// the bus last took (or refused) one of its heartbeats. A heartbeat goes
/// through the same producer as the collector's events, so a bus that takes
/// heartbeats takes events.
#[derive(Debug)]
pub struct CollectorHealth {
    every: Duration,
    state: Mutex<Deliveries>,
}

#[derive(Debug, Default)]
struct Deliveries {
    delivered_at: Option<i64>,
    refused_at: Option<i64>,
    normaliser_stopped: bool,
}

impl CollectorHealth {
    /// For heartbeats sent every `every`.
    pub fn new(every: Duration) -> Self {
        Self { every, state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Deliveries> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bus took a heartbeat at `at` (milliseconds since the epoch).
    pub fn delivered(&self, at: i64) {
        self.state().delivered_at = Some(at);
    }

    /// The bus refused a heartbeat at `at`.
    pub fn refused(&self, at: i64) {
        self.state().refused_at = Some(at);
    }

    pub fn normaliser_stopped(&self) {
        self.state().normaliser_stopped = true;
    }

    /// Ready when the normaliser runs and the bus took the last heartbeat,
    /// within twice the interval plus the producer's delivery timeout (a
    /// heartbeat stuck on an unreachable broker is refused only after it).
    /// Else why not, in words that carry no internals.
    pub fn readiness(&self, now: i64) -> Result<(), String> {
        let s = self.state();
        if s.normaliser_stopped {
            return Err("the normaliser stopped".into());
        }
        let Some(delivered) = s.delivered_at else {
            return Err(match s.refused_at {
                Some(_) => "the bus refused this collector's heartbeats".into(),
                None => "no heartbeat has reached the bus yet".into(),
            });
        };
        if s.refused_at.is_some_and(|r| r >= delivered) {
            return Err("the bus refused the last heartbeat".into());
        }
        let limit = self.every * 2 + DELIVERY_TIMEOUT;
        let age = Duration::from_millis(u64::try_from(now.saturating_sub(delivered)).unwrap_or(0));
        if age > limit {
            return Err(format!("no heartbeat has reached the bus for {} s", age.as_secs()));
        }
        Ok(())
    }
}

/// `/healthz` (the process answers) and `/readyz` (`ready` says whether it
/// does its work); every other path is a JSON 404.
pub fn router(ready: impl Fn() -> Result<(), String> + Clone + Send + Sync + 'static) -> Router {
    Router::new()
        .route("/healthz", get(crate::server::healthz))
        .route(
            "/readyz",
            get(move || {
                let answer: Response = match ready() {
                    Ok(()) => Json(json!({"status": "ready"})).into_response(),
                    Err(why) => ApiError::unavailable(why).into_response(),
                };
                async move { answer }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such route: this process serves /healthz and /readyz only") })
}

/// Serves `app` on `listen` (the `[collector] health_listen` key) until `stop` turns true.
pub async fn serve(
    listen: SocketAddr,
    app: Router,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), Error> {
    let failed = |source| Error::Http { key: "[collector] health_listen", addr: listen, source };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "health server failed");
        }
    });
    Ok((addr, task))
}

/// Where `custos probe` asks: `http://HOST[:PORT][/PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl ProbeUrl {
    /// Plain HTTP only (the API serves no TLS itself); an IPv6 host in brackets.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url:?}: only http:// URLs are probed"))?;
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let path = match path {
            "" => "/".to_owned(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_owned(),
        };
        let bad = |why: &str| format!("{url:?}: {why}");
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed [ in the host"))?;
                if host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(bad("brackets hold an IPv6 address"));
                }
                match after {
                    "" => (host, None),
                    p => (host, Some(p.strip_prefix(':').ok_or_else(|| bad("text after the host's ]"))?)),
                }
            }
            None => match authority.split_once(':') {
                Some((_, port)) if port.contains(':') => return Err(bad("an IPv6 host goes in brackets")),
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.contains(['[', ']']) {
            return Err(bad("brackets hold an IPv6 address"));
        }
        if host.is_empty() || authority.contains('@') {
            return Err(bad("no host (or user information, which a probe never sends)"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("the port is not 1 to 65535"))?,
        };
        // Either would split the request's head.
        if format!("{host}{path}").chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(bad("spaces or control characters in the host or path"));
        }
        Ok(Self { host: host.to_owned(), port, path })
    }
}

/// An HTTP answer's status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    pub status: u16,
    pub body: String,
}

/// The largest answer a probe reads: health answers are a few bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// Reads an HTTP/1.x answer: its status line's code, and the body after the
/// head (as text, lossily; a probe shows it, it does not parse it).
pub fn read_answer(bytes: &[u8]) -> Result<ProbeAnswer, String> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").ok_or("the answer has no complete head")?;
    let head = &bytes[..head_end];
    let status_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    let mut parts = status_line.trim_end().splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 answer: {:?}", status_line.chars().take(40).collect::<String>()));
    }
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c) && code.len() == 3)
        .ok_or_else(|| format!("a bad status code {:?}", code.chars().take(10).collect::<String>()))?;
    let body = String::from_utf8_lossy(&bytes[head_end + 4..]).into_owned();
    Ok(ProbeAnswer { status, body })
}

/// Asks `url` once, within `timeout`: connects, sends a GET and reads the answer.
pub async fn probe(url: &ProbeUrl, timeout: Duration) -> Result<ProbeAnswer, Error> {
    let target = format!("http://{}:{}{}", url.host, url.port, url.path);
    let failed = |reason: String| Error::Probe { url: target.clone(), reason };
    let ask = async {
        let host = url.host.as_str();
        let mut stream = tokio::net::TcpStream::connect((host, url.port)).await.map_err(|e| e.to_string())?;
        let host_header =
            if host.contains(':') { format!("[{host}]:{}", url.port) } else { format!("{host}:{}", url.port) };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: custos-probe\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            url.path
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        (&mut stream).take(MAX_ANSWER).read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
        read_answer(&answer)
    };
    match tokio::time::timeout(timeout, ask).await {
        Ok(answer) => answer.map_err(failed),
        Err(_) => Err(failed(format!("no answer in {} s", timeout.as_secs_f64()))),
    }
}

/// A collector's health endpoints, answering from `health`.
pub fn collector_router(health: Arc<CollectorHealth>) -> Router {
    router(move || health.readiness(ingest::source::now_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(15);

    #[test]
    fn a_collector_is_ready_while_the_bus_takes_its_heartbeats() {
        let h = CollectorHealth::new(EVERY);
        assert_eq!(h.readiness(0).unwrap_err(), "no heartbeat has reached the bus yet");
        h.refused(1_000);
        assert_eq!(h.readiness(1_000).unwrap_err(), "the bus refused this collector's heartbeats");
        h.delivered(2_000);
        assert_eq!(h.readiness(2_000), Ok(()));
        // Twice the interval plus the delivery timeout: 60 s.
        assert_eq!(h.readiness(62_000), Ok(()));
        assert_eq!(h.readiness(62_001).unwrap_err(), "no heartbeat has reached the bus for 60 s");
        h.refused(20_000);
        assert_eq!(h.readiness(20_000).unwrap_err(), "the bus refused the last heartbeat");
        h.delivered(35_000);
        assert_eq!(h.readiness(35_000), Ok(()));
        h.normaliser_stopped();
        assert_eq!(h.readiness(35_000).unwrap_err(), "the normaliser stopped");
    }

    #[test]
    fn a_clock_stepped_back_is_not_an_old_heartbeat() {
        let h = CollectorHealth::new(EVERY);
        h.delivered(100_000);
        assert_eq!(h.readiness(10_000), Ok(()));
    }

    #[test]
    fn probe_urls() {
        let u = |host: &str, port, path: &str| Ok(ProbeUrl { host: host.into(), port, path: path.into() });
        assert_eq!(ProbeUrl::parse("http://127.0.0.1:8089/readyz"), u("127.0.0.1", 8089, "/readyz"));
        assert_eq!(ProbeUrl::parse("http://core"), u("core", 80, "/"));
        assert_eq!(ProbeUrl::parse("http://core:8088"), u("core", 8088, "/"));
        assert_eq!(ProbeUrl::parse("http://[::1]:8088/healthz"), u("::1", 8088, "/healthz"));
        assert_eq!(ProbeUrl::parse("http://[::1]/"), u("::1", 80, "/"));
        assert_eq!(ProbeUrl::parse("http://h:1?x=1"), u("h", 1, "/?x=1"));
        for (bad, why) in [
            ("https://core/readyz", "only http://"),
            ("core:8088/readyz", "only http://"),
            ("http://:8088/", "no host"),
            ("http://u:p@core/", "no host"),
            ("http://core:0/", "not 1 to 65535"),
            ("http://core:99999/", "not 1 to 65535"),
            ("http://core:x/", "not 1 to 65535"),
            ("http://[::1/", "unclosed"),
            ("http://[::1]x/", "after the host"),
            ("http://[[o]:68", "IPv6 address"),
            ("http://[core]/", "IPv6 address"),
            ("http://co]re/", "IPv6 address"),
            ("http://::1/", "brackets"),
            ("http://core/a b", "spaces"),
            ("http://core/a\r\nX: y", "control"),
            ("http://co\r\nre/", "control"),
        ] {
            let e = ProbeUrl::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn answers() {
        let a = read_answer(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}").expect("answer");
        assert_eq!(a, ProbeAnswer { status: 503, body: "{}".into() });
        assert_eq!(read_answer(b"HTTP/1.0 200 OK\r\n\r\n").expect("answer").status, 200);
        for (bad, why) in [
            (&b"HTTP/1.1 200 OK\r\n"[..], "no complete head"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1"),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status"),
            (b"HTTP/1.1 099 X\r\n\r\n", "bad status"),
            (b"HTTP/1.1 +20 X\r\n\r\n", "bad status"),
            (b"", "no complete head"),
        ] {
            let e = read_answer(bad).expect_err("refused");
            assert!(e.contains(why), "{e}");
        }
    }

    #[tokio::test]
    async fn the_router_and_the_probe_agree() {
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ready.clone();
        let app = router(
            move || {
                if flag.load(std::sync::atomic::Ordering::Relaxed) { Ok(()) } else { Err("not yet".into()) }
            },
        );
        let (stop, stop_rx) = watch::channel(false);
        let (addr, task) =
            serve("127.0.0.1:0".parse().expect("addr"), app.clone(), stop_rx.clone()).await.expect("serves");
        let taken = serve(addr, app, stop_rx).await.expect_err("the port is taken").to_string();
        assert!(taken.starts_with(&format!("[collector] health_listen = {addr}: ")), "{taken}");
        let at = |path: &str| ProbeUrl { host: addr.ip().to_string(), port: addr.port(), path: path.into() };
        let ask = async |path: &str| probe(&at(path), Duration::from_secs(10)).await.expect("answers");

        assert_eq!(ask("/healthz").await, ProbeAnswer { status: 200, body: r#"{"status":"ok"}"#.into() });
        let not_ready = ask("/readyz").await;
        assert_eq!(not_ready.status, 503);
        assert!(
            not_ready.body.contains(r#""code":"unavailable""#) && not_ready.body.contains("not yet"),
            "{not_ready:?}"
        );
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(ask("/readyz").await, ProbeAnswer { status: 200, body: r#"{"status":"ready"}"#.into() });
        let other = ask("/api/v1/incidents").await;
        assert_eq!(other.status, 404);
        assert!(other.body.contains("serves /healthz and /readyz only"), "{other:?}");

        stop.send_replace(true);
        task.await.expect("the server stops");
        let gone = probe(&at("/healthz"), Duration::from_secs(10)).await.expect_err("nothing listens");
        assert!(gone.to_string().starts_with(&format!("probe http://{addr}/healthz: ")), "{gone}");
    }
}
