//! `custos bench tcp-syslog`: TCP syslog senders on loopback → the syslog TCP
//! source → the raw topic of the embedded bus (and optionally the normaliser),
//! reporting records per second and the process's resident memory over time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ingest::bus::{Bus, EmbeddedBus, RAW};
use ingest::source::syslog::{SyslogTcpConfig, tcp};
use ingest::{Inventory, Normalizer};
use tokio::io::AsyncWriteExt;

/// One report line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub at_s: f64,
    pub records_per_s: f64,
    pub rss_mib: f64,
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

const LINE: &str = r#"<189>1 2026-11-26T10:00:00Z fgt-cell1 - - - - date=2026-11-26 time=10:00:00 devname="FGT-CELL1" devid="FG100FTK20000001" eventtime=1795687200000000000 tz="+0000" logid="0000000013" type="traffic" subtype="forward" level="notice" srcip=10.10.1.30 srcport=40001 dstip=10.10.1.10 dstport=502 proto=6 action="accept" policyid=12 service="Modbus""#;

/// Runs for `seconds`, calling `report` every `every`.
pub async fn tcp_syslog(
    seconds: u64,
    connections: usize,
    normalize: bool,
    every: Duration,
    mut report: impl FnMut(&Sample),
) -> std::io::Result<Vec<Sample>> {
    let bus = EmbeddedBus::new(64);
    let cfg = SyslogTcpConfig {
        listen: "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
        name: "bench".into(),
        max_frame: 65_536,
        tls: None,
    };
    let (addr, task) =
        tcp(cfg, bus.publisher(RAW).map_err(std::io::Error::other)?).await.map_err(std::io::Error::other)?;
    let source = tokio::spawn(task);
    let mut sub = bus.subscriber(RAW).map_err(std::io::Error::other)?;
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let consumer = tokio::spawn(async move {
        let mut n = Normalizer::new(Arc::new(Inventory::default()), 0);
        while let Some(d) = sub.next().await {
            let len = d.items.len() as u64;
            if normalize {
                for r in d.items {
                    std::hint::black_box(n.normalize(r));
                }
            }
            counter.fetch_add(len, Ordering::Relaxed);
        }
    });
    // Octet-counted frames, many per write, as a relay would send them.
    let frame = format!("{} {LINE}", LINE.len());
    let chunk: Vec<u8> = frame.repeat(256).into_bytes();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut senders = Vec::new();
    for _ in 0..connections.max(1) {
        let chunk = chunk.clone();
        senders.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            while Instant::now() < deadline {
                s.write_all(&chunk).await?;
            }
            s.shutdown().await
        }));
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut last = (start, 0u64);
    while Instant::now() < deadline {
        tokio::time::sleep(
            every.min(deadline.saturating_duration_since(Instant::now())).max(Duration::from_millis(10)),
        )
        .await;
        let now = Instant::now();
        let n = count.load(Ordering::Relaxed);
        let s = Sample {
            at_s: (now - start).as_secs_f64(),
            records_per_s: (n - last.1) as f64 / (now - last.0).as_secs_f64(),
            rss_mib: rss_mib(),
        };
        report(&s);
        samples.push(s);
        last = (now, n);
    }
    for s in senders {
        let _ = s.await;
    }
    source.abort();
    let _ = source.await;
    consumer.abort();
    Ok(samples)
}
