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
    status_mib("VmRSS:")
}

/// A memory figure of this process from `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Starts the process's peak resident memory (`VmHWM`) afresh from now.
fn reset_peak_rss() {
    // Linux's clear_refs: "5" resets the peak; an older kernel keeps the lifetime peak.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
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

/// What `custos bench ledger` measured.
#[derive(Debug, Clone)]
pub struct LedgerFigures {
    pub records: u64,
    pub record_bytes: usize,
    pub appends_per_s: f64,
    /// Seconds each of three reopens took.
    pub open_s: [f64; 3],
    /// The process's peak resident memory while reopening.
    pub open_peak_mib: f64,
    pub checkpoints: usize,
    pub checkpoint_bytes: u64,
    pub verify_records_per_s: f64,
    pub proof_p50_us: f64,
    pub proof_p99_us: f64,
    /// The median time to take an export's view of the ledger (`Ledger::snapshot`).
    pub snapshot_us: f64,
    pub storage_overhead: f64,
}

/// Appends `records` records of about `record_bytes` bytes through
/// `appenders` concurrent callers (each batch of `batch` records is synced
/// before it is acknowledged; concurrent batches share a sync), then times
/// reopening, the offline verifier and random inclusion proofs, and compares
/// the bytes on disk with the records' bytes. `checkpoints` more records are
/// then appended one at a time, each under its own signed checkpoint, as
/// months of per-second checkpoints would leave the ledger.
pub async fn ledger(
    dir: &std::path::Path,
    records: u64,
    record_bytes: usize,
    appenders: usize,
    batch: usize,
    checkpoints: u64,
) -> Result<LedgerFigures, ledger::LedgerError> {
    use ledger::{Ledger, LedgerOptions, NoteSigner, RecordKind, record};
    let origin = "custos.bench/ledger";
    let key = NoteSigner::generate(origin)?.encode();
    // Distinct canonical records of the requested size, reused round robin.
    let template: Vec<Vec<u8>> = (0..1024)
        .map(|i| {
            let mut r = record::encode(RecordKind::Audit, i, &serde_json::json!({"n": i, "pad": ""}))?;
            let pad = record_bytes.saturating_sub(r.len());
            r = record::encode(RecordKind::Audit, i, &serde_json::json!({"n": i, "pad": "x".repeat(pad)}))?;
            Ok(r)
        })
        .collect::<Result<_, ledger::LedgerError>>()?;
    let (l, _) = Ledger::open(dir, origin, NoteSigner::parse(&key)?, LedgerOptions::default())?;
    let l = std::sync::Arc::new(l);
    let per = records / appenders as u64;
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..appenders {
        let (l, template) = (l.clone(), template.clone());
        tasks.spawn(async move {
            let mut done = 0u64;
            while done < per {
                let n = (batch as u64).min(per - done) as usize;
                let b: Vec<Vec<u8>> = (0..n).map(|i| template[(a * 7 + i) % template.len()].clone()).collect();
                l.append(b).await?;
                done += n as u64;
            }
            Ok::<_, ledger::LedgerError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| ledger::LedgerError::Failed(e.to_string()))??;
    }
    let append_s = started.elapsed().as_secs_f64();
    let appended = l.size();
    l.close().await?;
    drop(l);
    if checkpoints > 0 {
        let every = LedgerOptions { checkpoint_interval: std::time::Duration::ZERO, ..LedgerOptions::default() };
        let (l, _) = Ledger::open(dir, origin, NoteSigner::parse(&key)?, every)?;
        for i in 0..checkpoints {
            l.append(vec![template[i as usize % template.len()].clone()]).await?;
        }
        l.close().await?;
    }

    // Three reopens: the first may read from disk, and this machine's hours vary.
    let mut open_s = [0.0; 3];
    for at in &mut open_s[..2] {
        let t = std::time::Instant::now();
        let (l, _) = Ledger::open(dir, origin, NoteSigner::parse(&key)?, LedgerOptions::default())?;
        *at = t.elapsed().as_secs_f64();
        l.close().await?;
    }
    reset_peak_rss();
    let t = std::time::Instant::now();
    let (l, _) = Ledger::open(dir, origin, NoteSigner::parse(&key)?, LedgerOptions::default())?;
    open_s[2] = t.elapsed().as_secs_f64();
    let open_peak_mib = status_mib("VmHWM:");
    let size = l.size();
    let mut took = Vec::with_capacity(10_000);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..10_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let t = std::time::Instant::now();
        l.inclusion_proof(seed % size, size)?;
        took.push(t.elapsed().as_secs_f64() * 1e6);
    }
    took.sort_by(f64::total_cmp);
    let mut views: Vec<f64> = (0..101)
        .map(|_| {
            let t = std::time::Instant::now();
            l.snapshot().map(|view| {
                let us = t.elapsed().as_secs_f64() * 1e6;
                drop(view);
                us
            })
        })
        .collect::<Result<_, _>>()?;
    views.sort_by(f64::total_cmp);
    l.close().await?;
    drop(l);

    let t = std::time::Instant::now();
    let report = ledger::verify_dir(dir, None)?;
    let verify_s = t.elapsed().as_secs_f64();

    let mut payload = 0u64;
    ledger::for_each_record(dir, |_, r| payload += r.len() as u64)?;
    let on_disk: u64 = walk_bytes(dir);
    Ok(LedgerFigures {
        records: report.records,
        record_bytes: template[0].len(),
        appends_per_s: appended as f64 / append_s,
        open_s,
        open_peak_mib,
        checkpoints: report.checkpoints,
        checkpoint_bytes: walk_bytes(&dir.join("checkpoints")),
        verify_records_per_s: report.records as f64 / verify_s,
        proof_p50_us: took[took.len() / 2],
        proof_p99_us: took[took.len() * 99 / 100],
        snapshot_us: views[views.len() / 2],
        storage_overhead: on_disk as f64 / payload as f64 - 1.0,
    })
}

/// Bytes of every file below `dir`.
fn walk_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { walk_bytes(&p) } else { e.metadata().map_or(0, |m| m.len()) }
        })
        .sum()
}

/// What `custos bench views` measured.
#[derive(Debug, Clone)]
pub struct ViewsFigures {
    pub records: u64,
    /// Records fed through the follower's path (decode, index, archive) per second.
    pub indexed_per_s: f64,
    pub ledger_bytes: u64,
    pub index_bytes: u64,
    pub archive_bytes: u64,
    /// (query, p50 ms, p99 ms, hits, "≥" when more were not counted)
    pub searches: Vec<(String, f64, f64, String)>,
    /// (query, each run in ms)
    pub sql: Vec<(String, Vec<f64>)>,
}

pub(crate) const BENCH_ZONES: [&str; 8] =
    ["cell-1", "cell-2", "cell-3", "cell-4", "control-room", "qc-lab", "utilities", "warehouse"];

/// When the bench's 30 days begin, Unix ms.
const BENCH_START: i64 = 1_793_000_000_000;

/// When bench event `i` of `n` happened: spread evenly over 30 days.
pub(crate) fn bench_time(i: u64, n: u64) -> i64 {
    BENCH_START + (i as i128 * 30 * 86_400_000 / n.max(1) as i128) as i64
}

/// The zone of bench event `i`: runs of 40 events move from zone to zone.
pub(crate) fn bench_zone(i: u64) -> usize {
    ((i % 8 + i / 40) % 8) as usize
}

/// Ledger bytes of synthetic plant event `i` of `n`, spread over 30 days.
fn bench_event(i: u64, n: u64) -> Result<Vec<u8>, ledger::LedgerError> {
    use serde_json::json;
    let t = bench_time(i, n);
    let zone = BENCH_ZONES[bench_zone(i)];
    let person = format!("p-{}", (i / 3) % 200);
    let host = (i * 31) % 250;
    let (class, activity, raw, extra) = match i % 20 {
        0..=11 => (
            4001,
            6,
            format!(
                "date=2026-11-26 devname=FGT-{zone} srcip=10.10.{}.{host} dstip=10.10.{}.10 dstport=502 action=accept service=Modbus",
                i % 8,
                i % 8
            ),
            json!({"src": {"ip": format!("10.10.{}.{host}", i % 8), "port": 40000 + (i % 20000), "zone": zone},
                   "dst": {"ip": format!("10.10.{}.10", i % 8), "port": 502, "asset": format!("PLC-{:02}", i % 50), "zone": zone},
                   "protocol": "modbus", "action_id": 1}),
        ),
        12..=15 => (
            9001,
            if i.is_multiple_of(97) { 2 } else { 1 },
            format!(
                "{{\"badge\":\"{}\",\"door\":\"{zone}-door\",\"result\":\"{}\"}}",
                4000 + (i * 7919) % 200,
                if i.is_multiple_of(97) { "denied" } else { "granted" }
            ),
            json!({"actor": {"person": person, "credential_uid": format!("{}", 4000 + (i * 7919) % 200)}, "door": format!("{zone}-door")}),
        ),
        16..=18 => (
            3002,
            1,
            format!("EWS login user={person} host=ews-{} result=success", i % 20),
            json!({"actor": {"user": person, "person": person}, "dst": {"hostname": format!("ews-{}", i % 20), "zone": zone}}),
        ),
        _ => (
            if i % 40 == 19 { 5019 } else { 2004 },
            1,
            format!(
                "CEF:0|Claroty|CTD|4.6|56|Unauthorized PLC program download|9|src=10.10.{}.{host} dst=10.10.{}.10",
                i % 8,
                i % 8
            ),
            json!({"finding": {"title": "Unauthorized PLC program download", "uid": "56"}, "device": {"asset": format!("PLC-{:02}", i % 50)}}),
        ),
    };
    let mut data = json!({
        "class_uid": class, "category_uid": class / 1000, "activity_id": activity, "type_uid": class * 100 + activity,
        "time": t, "observed_time": t + 150, "severity_id": if class == 2004 { 4 } else { 1 },
        "message": raw.chars().take(60).collect::<String>(), "zone": zone, "raw": raw,
        "metadata": {"product": "bench", "source": "bench", "parser": "bench"},
    });
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    ledger::record::encode(ledger::RecordKind::Event, t + 200, &data)
}

/// Which events `custos bench views` indexes.
#[derive(Debug, Clone, Copy)]
pub enum BenchEvents {
    /// Written directly as event JSON: short raw records (45–116 bytes) and a
    /// message of the raw record's first 60 characters; about 560 ledger bytes each.
    Synthetic,
    /// Made by the real parsers and normaliser (enriched from an inventory of
    /// 8 zones, 50 PLCs, 20 workstations and 200 people) from a plant's mix of
    /// full FortiGate traffic logs, Suricata EVE flows, Modbus requests and
    /// alerts, badge reads and Windows logons as CEF: about 1,500 ledger bytes each.
    Parsed,
}

/// The inventory parsed bench events are enriched from.
pub(crate) fn bench_inventory() -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    for (z, zone) in BENCH_ZONES.iter().enumerate() {
        let _ = write!(
            t,
            "[[zones]]\nid = \"{zone}\"\nname = \"{zone}\"\nlevel = {}\nnetworks = [\"10.10.{z}.0/24\"]\n\n\
             [[doors]]\nid = \"{zone}-door\"\nname = \"{zone} door\"\narea = \"{zone}\"\nzone = \"{zone}\"\n\n",
            1 + z % 3
        );
    }
    for a in 0..50 {
        let _ = write!(
            t,
            "[[assets]]\nid = \"PLC-{a:02}\"\nip = [\"10.10.{}.{}\"]\nkind = \"plc\"\nzone = \"{}\"\n\n",
            a % 8,
            10 + a / 8,
            BENCH_ZONES[a % 8]
        );
    }
    for w in 0..20 {
        let _ = write!(
            t,
            "[[assets]]\nid = \"EWS-{w:02}\"\nhostname = \"ews-{w}\"\nip = [\"10.10.{}.{}\"]\nkind = \"workstation\"\nzone = \"{}\"\n\n",
            w % 8,
            200 + w,
            BENCH_ZONES[w % 8]
        );
    }
    for p in 0..200 {
        let _ = write!(
            t,
            "[[people]]\nid = \"p-{p}\"\nname = \"Person {p}\"\nbadges = [\"{}\"]\naccounts = [\"p-{p}\"]\n\n",
            4000 + p
        );
    }
    t
}

/// Raw record `i` of `n` of a plant's mix, spread over 30 days: its format and bytes.
pub(crate) fn plant_record(i: u64, n: u64) -> (ingest::Format, Vec<u8>) {
    use ingest::Format;
    let t = bench_time(i, n);
    let ts = ingest::time::format_rfc3339(t);
    let z = bench_zone(i);
    let zone = BENCH_ZONES[z];
    let (host, plc, port) = (30 + (i * 31) % 150, 10 + (i / 8) % 7, 40_000 + i % 20_000);
    // Each badge read and logon of a block of 20 records is by one person.
    let person = (i / 20) % 200;
    match i % 20 {
        0..=8 => (
            Format::Syslog,
            format!(
                r#"<189>1 {ts} fgt-{zone} - - - - date={} time={} devname="FGT-{zone}" devid="FG100FTK2000000{z}" eventtime={t}000000 tz="+0000" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip=10.10.{z}.{host} srcport={port} srcintf="port{z}" srcintfrole="lan" dstip=10.10.{z}.{plc} dstport=502 dstintf="port9" dstintfrole="lan" srccountry="Reserved" dstcountry="Reserved" sessionid={} proto=6 action="accept" policyid={} policytype="policy" poluuid="8a1e5c2e-6f0b-51ef-1c3e-2b1c9d{:06}" service="Modbus" trandisp="noop" duration={} sentbyte={} rcvdbyte={} sentpkt={} rcvdpkt={} appcat="unscanned""#,
                &ts[..10],
                &ts[11..19],
                1_000_000 + i,
                12 + z,
                z,
                1 + i % 120,
                180 + i % 900,
                96 + i % 500,
                4 + i % 9,
                4 + i % 7
            )
            .into_bytes(),
        ),
        9..=11 => (
            Format::SuricataEve,
            format!(
                r#"{{"timestamp":"{}+0000","flow_id":{},"in_iface":"eth{z}","event_type":"flow","src_ip":"10.10.{z}.{host}","src_port":{port},"dest_ip":"10.10.{z}.{plc}","dest_port":502,"proto":"TCP","app_proto":"modbus","flow":{{"pkts_toserver":{},"pkts_toclient":4,"bytes_toserver":{},"bytes_toclient":260,"start":"{ts}","end":"{ts}","age":0,"state":"closed","reason":"timeout","alerted":false}},"tcp":{{"tcp_flags":"1b","tcp_flags_ts":"1b","tcp_flags_tc":"1b","syn":true,"fin":true,"psh":true,"ack":true,"state":"closed"}}}}"#,
                &ts[..23],
                1_000_000_000 + i,
                4 + i % 9,
                280 + i % 700
            )
            .into_bytes(),
        ),
        12..=14 => (
            Format::SuricataEve,
            format!(
                r#"{{"timestamp":"{}+0000","flow_id":{},"in_iface":"eth{z}","event_type":"modbus","src_ip":"10.10.{z}.{host}","src_port":{port},"dest_ip":"10.10.{z}.{plc}","dest_port":502,"proto":"TCP","modbus":{{"id":{},"request":{{"transaction_id":{},"protocol_id":0,"unit_id":1,"function_raw":{},"access_type":"{}","category":"PUBLIC_ASSIGNED","error_flags":"NONE"}}}}}}"#,
                &ts[..23],
                1_000_000_000 + i,
                i % 1000,
                i % 65536,
                if i.is_multiple_of(29) { 16 } else { 3 },
                if i.is_multiple_of(29) { "WRITE | HOLDING" } else { "READ | HOLDING" }
            )
            .into_bytes(),
        ),
        15 | 16 => (
            Format::BadgeJson,
            format!(
                r#"{{"time":"{ts}","badge":"{}","door":"{zone}-door","result":"{}","direction":"in","controller":"PACS-GW-{z}"}}"#,
                4000 + person,
                if i.is_multiple_of(97) { "denied" } else { "granted" }
            )
            .into_bytes(),
        ),
        17 | 18 => (
            Format::Syslog,
            format!(
                "<14>1 {ts} ews-{} Microsoft-Windows-Security-Auditing 4 4624 - CEF:0|Microsoft|Microsoft Windows|10.0|4624|An account was successfully logged on|3|rt={t} duser=p-{person} dhost=ews-{} dst=10.10.{}.{} src=10.10.{z}.{host} cs2Label=LogonType cs2={}",
                i % 20,
                i % 20,
                i % 20 % 8,
                200 + i % 20,
                if i.is_multiple_of(3) { 10 } else { 2 }
            )
            .into_bytes(),
        ),
        _ => (
            Format::SuricataEve,
            format!(
                r#"{{"timestamp":"{}+0000","flow_id":{},"in_iface":"eth{z}","event_type":"alert","src_ip":"10.10.{z}.{host}","src_port":{port},"dest_ip":"10.10.{z}.{plc}","dest_port":502,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":{},"rev":1,"signature":"ET SCADA Modbus write from non-engineering host","category":"Attempted Administrator Privilege Gain","severity":{}}}}}"#,
                &ts[..23],
                1_000_000_000 + i,
                2_100_100 + i % 7,
                1 + i % 3
            )
            .into_bytes(),
        ),
    }
}

/// Appends `records` events to a real ledger in `dir`, times the follower's
/// work over it (`custos reindex`: read, decode, index, archive), then times
/// searches and SQL over the result.
pub async fn views(dir: &std::path::Path, records: u64, events: BenchEvents) -> Result<ViewsFigures, crate::Error> {
    use crate::search::SearchRequest;
    use ledger::{Ledger, LedgerOptions, NoteSigner};
    let origin = "custos.bench/views";
    let (l, _) = Ledger::open(&dir.join("ledger"), origin, NoteSigner::generate(origin)?, LedgerOptions::default())?;
    let inventory =
        Arc::new(Inventory::from_toml(&bench_inventory()).map_err(|e| crate::Error::Derived(e.to_string()))?);
    let mut normalizer = Normalizer::new(inventory, 0);
    let source: Arc<str> = "bench".into();
    let mut parsed = |i: u64| {
        let (format, bytes) = plant_record(i, records);
        let received = bench_time(i, records) + 150;
        match normalizer.normalize(ingest::RawRecord::new(source.clone(), format, received, bytes)).record {
            ingest::Normalized::Event(e) => Ok(ledger::record::encode(ledger::RecordKind::Event, received + 50, &e)?),
            ingest::Normalized::DeadLetter(d) => Err(crate::Error::Derived(format!("bench record {i}: {}", d.reason))),
        }
    };
    let mut at = 0u64;
    while at < records {
        let end = records.min(at + 10_000);
        let batch = match events {
            BenchEvents::Synthetic => {
                (at..end).map(|i| Ok(bench_event(i, records)?)).collect::<Result<_, crate::Error>>()?
            }
            BenchEvents::Parsed => (at..end).map(&mut parsed).collect::<Result<_, crate::Error>>()?,
        };
        l.append(batch).await?;
        at = end;
    }
    l.close().await?;
    drop(l);
    let (dir_owned, started) = (dir.to_path_buf(), std::time::Instant::now());
    let indexed = tokio::task::spawn_blocking(move || crate::follow::reindex(&dir_owned, |_| {}))
        .await
        .map_err(|e| crate::Error::Derived(format!("reindex: {e}")))??;
    let indexed_per_s = indexed as f64 / started.elapsed().as_secs_f64();
    let d = crate::follow::Derived::open(dir, Default::default())?;
    let searcher = d.searcher();
    let day = BENCH_START + 10 * 86_400_000;
    let searches: Vec<(&str, SearchRequest)> = vec![
        ("zone:cell-3", SearchRequest { q: "zone:cell-3".into(), ..Default::default() }),
        (
            "person:p-17 AND class:physical_access",
            SearchRequest { q: "person:p-17 AND class:physical_access".into(), ..Default::default() },
        ),
        ("denied (full text)", SearchRequest { q: "denied".into(), ..Default::default() }),
        (
            "\"program download\" AND zone:qc-lab",
            SearchRequest { q: "\"program download\" AND zone:qc-lab".into(), ..Default::default() },
        ),
        (
            "src_ip:[10.10.3.0 TO 10.10.3.255] AND dst_port:502",
            SearchRequest { q: "src_ip:[10.10.3.0 TO 10.10.3.255] AND dst_port:502".into(), ..Default::default() },
        ),
        (
            "zone:cell-3, one day",
            SearchRequest {
                q: "zone:cell-3".into(),
                from: Some(day),
                to: Some(day + 86_400_000),
                ..Default::default()
            },
        ),
        (
            "person:p-17 + facets",
            SearchRequest {
                q: "person:p-17".into(),
                facets: vec!["zone".into(), "class".into(), "asset".into(), "severity".into()],
                ..Default::default()
            },
        ),
        ("everything, newest 50", SearchRequest::default()),
    ];
    let mut search_figures = Vec::new();
    for (name, mut req) in searches {
        req.limit = 50;
        let mut took = Vec::new();
        let (mut hits, mut exact) = (0, true);
        for _ in 0..40 {
            let t = std::time::Instant::now();
            let page = searcher.search(&req).map_err(|e| crate::Error::Derived(e.to_string()))?;
            took.push(t.elapsed().as_secs_f64() * 1e3);
            hits = page.total;
            exact = page.total_exact;
        }
        took.sort_by(f64::total_cmp);
        let hits = if exact { format!("{hits}") } else { format!("≥{hits}") };
        search_figures.push((name.to_owned(), took[took.len() / 2], took[took.len() * 99 / 100], hits));
    }
    let sql = crate::sql::SqlEngine::new(&dir.join("archive"));
    let mut sql_figures = Vec::new();
    for q in [
        "SELECT day, zone, count(*) AS n FROM events GROUP BY day, zone ORDER BY day, zone",
        "SELECT actor_person, count(*) AS n FROM events WHERE class = 9001 AND zone = 'control-room' GROUP BY 1 ORDER BY n DESC LIMIT 10",
        "SELECT device_asset, date_trunc('month', time) AS month, count(*) FROM events WHERE class = 5019 GROUP BY 1, 2",
    ] {
        let mut runs = Vec::new();
        for _ in 0..5 {
            let t = std::time::Instant::now();
            sql.query(q, crate::sql::SqlLimits::default()).await.map_err(|e| crate::Error::Derived(e.to_string()))?;
            runs.push(t.elapsed().as_secs_f64() * 1e3);
        }
        sql_figures.push((q.to_owned(), runs));
    }
    Ok(ViewsFigures {
        records,
        indexed_per_s,
        ledger_bytes: walk_bytes(&dir.join("ledger")),
        index_bytes: walk_bytes(&dir.join("index")),
        archive_bytes: walk_bytes(&dir.join("archive")),
        searches: search_figures,
        sql: sql_figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_plant_record_parses_into_an_enriched_event() {
        let inventory = Arc::new(Inventory::from_toml(&bench_inventory()).expect("bench inventory"));
        let mut normalizer = Normalizer::new(inventory, 0);
        let mut classes = std::collections::BTreeSet::new();
        for i in 0..40 {
            let (format, bytes) = plant_record(i, 40);
            let received = bench_time(i, 40) + 150;
            let ingest::Normalized::Event(e) =
                normalizer.normalize(ingest::RawRecord::new("bench".into(), format, received, bytes)).record
            else {
                panic!("record {i} became a dead letter");
            };
            assert!(e.zone.is_some(), "record {i} has no zone");
            assert_eq!(e.time / 1000, bench_time(i, 40) / 1000, "record {i}: the time is read from its own text");
            classes.insert(e.class_uid);
        }
        assert_eq!(classes.into_iter().collect::<Vec<_>>(), [2004, 3002, 4001, 9001]);
    }
}
