//! Kafka mode against a real Kafka-protocol broker. Built with the `kafka`
//! feature; `.ci/run` starts tansu and sets `CUSTOS_TEST_KAFKA_BROKERS`. With the
//! feature on and no broker named, these tests fail: they never skip quietly.
#![cfg(feature = "kafka")]

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use custos::config::{BusConfig, BusKind};
use ingest::bus::KafkaConfig;
use serde_json::Value;

fn brokers() -> String {
    std::env::var("CUSTOS_TEST_KAFKA_BROKERS")
        .expect("set CUSTOS_TEST_KAFKA_BROKERS=host:port (.ci/run starts a tansu broker)")
}

fn python() -> String {
    std::env::var("CUSTOS_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn kafka_bus(brokers: &str, prefix: &str) -> BusConfig {
    BusConfig {
        kind: BusKind::Kafka,
        capacity: 64,
        kafka: Some(KafkaConfig {
            brokers: brokers.to_owned(),
            topic_prefix: prefix.to_owned(),
            group: prefix.to_owned(),
            partitions: 3,
            replication: 1,
            properties: Default::default(),
        }),
    }
}

/// Reads a whole topic with the independent Python client.
fn read_topic(topic: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/kafka/consume.py");
    let out = Command::new(python())
        .arg(script)
        .args(["--brokers", &brokers(), "--topic", topic, "--idle-seconds", "5", "--max-seconds", "90"])
        .output()
        .expect("python3 with confluent-kafka (.ci/run installs it in a venv; CUSTOS_TEST_PYTHON names it)");
    assert!(out.status.success(), "consume.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

/// The same end-to-end assertions as on the embedded bus, then an independent
/// client checks that the events topic holds exactly what the EVE source read:
/// every line up to the stored position, once, keyed by zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_end_to_end_on_kafka() {
    common::show_warnings();
    let mut r = [0u8; 4];
    getrandom::fill(&mut r).expect("random");
    let prefix = format!("custos-test-{}", hex::encode(r));
    let dir = common::demo_end_to_end(Some(kafka_bus(&brokers(), &prefix))).await;

    let positions: HashMap<String, u64> =
        serde_json::from_slice(&std::fs::read(dir.path().join("positions.json")).expect("positions")).expect("json");
    let upto = positions["suricata"] as usize;
    let eve = std::fs::read(dir.path().join("plant/eve.json")).expect("eve file");
    let mut want: Vec<String> = eve[..upto]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    want.sort();

    // What Custos produced on the raw topic is exactly what the EVE source read, once each.
    let raw_messages = read_topic(&format!("{prefix}.raw"));
    let mut produced: Vec<String> = raw_messages
        .iter()
        .map(|m| &m["value"])
        .filter(|v| v["source"] == "suricata")
        .map(|v| v["bytes"].as_str().unwrap_or_default().to_owned())
        .collect();
    produced.sort();
    assert_eq!(produced.len(), want.len(), "every EVE line up to the stored position is on the raw topic exactly once");
    assert_eq!(produced, want);
    assert!(raw_messages.iter().all(|m| m["key"] == m["value"]["source"]), "raw records are keyed by source");

    // The events topic carries those lines normalised (a suffix may still wait in the raw topic).
    let messages = read_topic(&format!("{prefix}.events"));
    let mut normalised: Vec<String> = messages
        .iter()
        .map(|m| &m["value"]["record"])
        .filter(|r| r["record"]["metadata"]["source"] == "suricata" || r["record"]["source"] == "suricata")
        .map(|r| r["record"]["raw"].as_str().unwrap_or_default().to_owned())
        .collect();
    normalised.sort();
    normalised.dedup();
    assert!(
        normalised.len() + 50 > want.len() && normalised.iter().all(|l| want.binary_search(l).is_ok()),
        "events topic: {} of {} lines",
        normalised.len(),
        want.len()
    );
    // Dead letters also have a topic of their own (the demo plant sends two bad lines per run).
    let dead = read_topic(&format!("{prefix}.deadletter"));
    assert!(
        dead.len() >= 2 && dead.iter().all(|m| m["value"]["reason"].as_str().is_some_and(|r| !r.is_empty())),
        "{dead:?}"
    );
    // Events are keyed by zone: everything in cell-1 shares a partition.
    let partitions: std::collections::HashSet<i64> =
        messages.iter().filter(|m| m["key"] == "cell-1").filter_map(|m| m["partition"].as_i64()).collect();
    assert_eq!(partitions.len(), 1, "one partition per zone");
}

/// A split deployment on one topic prefix: an evidence process (`--roles
/// correlate,ledger`) and a collector-only process (`--roles ingest`)
/// named dmz-1, with a TCP syslog source and an inventory file.
struct Split {
    _dir: tempfile::TempDir,
    inventory: PathBuf,
    evidence: custos::Custos,
    node: custos::IngestNode,
}

const ZONE: &str = "[[zones]]\nid = \"cell-1\"\nnetworks = [\"10.10.1.0/24\"]\n";

impl Split {
    async fn start(brokers: &str) -> Self {
        let mut r = [0u8; 4];
        getrandom::fill(&mut r).expect("random");
        let prefix = format!("custos-split-{}", hex::encode(r));
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = dir.path().join("inventory.toml");
        std::fs::write(&inventory, ZONE).expect("write");

        let mut evidence = custos::Config::with_data_dir(dir.path().join("evidence"));
        evidence.bus = kafka_bus(brokers, &prefix);
        let roles = custos::config::Roles { ingest: false, evidence: true, api: false };
        let evidence = custos::Custos::start_with_roles(evidence, roles).await.expect("the evidence process starts");
        let mut collector = custos::Config::with_data_dir(dir.path().join("collector"));
        collector.bus = kafka_bus(brokers, &prefix);
        collector.inventory = Some(inventory.clone());
        collector.collector.name = Some("dmz-1".into());
        collector.collector.heartbeat_seconds = 1;
        let any = "127.0.0.1:0".parse().expect("addr");
        collector.collector.health_listen = Some(any);
        collector.sources.syslog_tcp.push(ingest::source::syslog::SyslogTcpConfig {
            listen: any,
            name: "tcp".into(),
            max_frame: 2 << 20,
            tls: None,
        });
        let node = custos::IngestNode::start(collector).await.expect("the collector starts");
        Self { _dir: dir, inventory, evidence, node }
    }

    /// A logon of `user` from 10.10.1.77, over TCP syslog into the collector.
    fn send(&self, user: &str) {
        self.send_padded(user, 0);
    }

    /// The same, with a message of `padding` bytes.
    fn send_padded(&self, user: &str, padding: usize) {
        let msg = if padding > 0 { format!(" msg={}", "x".repeat(padding)) } else { String::new() };
        let line = format!(
            "<13>1 2026-11-26T10:00:00Z ews-02 win - - - CEF:0|Microsoft|Windows|10|4624|An account logon|3|duser={user} src=10.10.1.77{msg}\n"
        );
        use std::io::Write;
        std::net::TcpStream::connect(self.node.syslog_tcp[0])
            .and_then(|mut s| s.write_all(line.as_bytes()))
            .expect("syslog over tcp");
    }

    /// The logon of `user` as the evidence process ledgered it, within
    /// `limit`: (asset, zone) of its source.
    async fn ledgered(&self, user: &str, limit: Duration) -> (Option<String>, Option<String>) {
        let started = Instant::now();
        loop {
            let by = |e: &ingest::Event| e.actor.as_ref().and_then(|a| a.user.as_deref()) == Some(user);
            if let Some(e) = self.evidence.views.events(1, by).first() {
                let src = e.item.src.clone().unwrap_or_default();
                return (src.asset.map(|a| a.to_string()), src.zone.map(|z| z.to_string()));
            }
            assert!(
                started.elapsed() < limit,
                "{user}'s logon did not reach the evidence process in {:?}; it ledgered:\n{}and heard: {:?}",
                started.elapsed(),
                self.evidence.stats.ledgered.render(),
                self.evidence.stats.collectors.list()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A split deployment over Kafka: the collector reads syslog and publishes
/// normalised events; the evidence process ledgers them. The collector's
/// inventory reload (its SIGHUP) changes enrichment from the next record on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_only_process_feeds_the_evidence_process() {
    common::show_warnings();
    let split = Split::start(&brokers()).await;
    let (evidence, node) = (&split.evidence, &split.node);
    let minute = Duration::from_secs(60);
    split.send("before");
    assert_eq!(
        split.ledgered("before", minute).await,
        (None, Some("cell-1".to_owned())),
        "an unlisted device in cell-1"
    );

    let listed =
        format!("{ZONE}[[assets]]\nid = \"EWS-02\"\nkind = \"ews\"\nzone = \"cell-1\"\nip = [\"10.10.1.77\"]\n");
    std::fs::write(&split.inventory, listed).expect("write");
    node.reload_inventory().expect("reloads");
    std::fs::write(&split.inventory, "[[assets]]\nid = \"X\"\nkind = \"plc\"\nzone = \"nowhere\"\n").expect("write");
    let refused = node.reload_inventory().expect_err("a bad file is refused").to_string();
    assert!(refused.contains("nowhere"), "{refused}");
    split.send("after");
    assert_eq!(
        split.ledgered("after", minute).await,
        (Some("EWS-02".to_owned()), Some("cell-1".to_owned())),
        "the reloaded inventory"
    );
    // A line of 1.5 MB, over librdkafka's default message size but within
    // the frame this source takes: the bus is sized to carry it.
    split.send_padded("big", 1_500_000);
    assert_eq!(split.ledgered("big", minute).await.0.as_deref(), Some("EWS-02"), "a line of 1.5 MB");
    // The collector serves no metrics: the evidence process counts what it
    // sent, as it ledgered it, and what it read, from its heartbeats.
    let counted = evidence.stats.ledgered.render();
    assert!(counted.contains("custos_ledgered_records_total{source=\"tcp\",kind=\"event\"} 3\n"), "{counted}");
    let heard = async |evidence: &custos::Custos, stopped: bool| {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let beats = evidence.stats.collectors.list();
            let heard = beats.iter().find(|h| h.beat.collector == "dmz-1" && h.beat.stopped == stopped);
            let lines = heard.and_then(|h| h.beat.sources.iter().find(|s| s.source == "tcp")).map(|s| s.lines);
            if lines == Some(3) {
                return heard.cloned().expect("heartbeat");
            }
            assert!(Instant::now() < until, "no heartbeat from dmz-1 with 3 lines read: {beats:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let running = heard(evidence, false).await;
    // Both processes read this host's clock: the offset is the bus's delay.
    assert!((-60_000..=0).contains(&running.clock_offset_ms()), "{running:?}");
    // It says how often it beats, so the core judges its silence by that.
    assert_eq!(running.beat.interval_ms, Some(1_000));
    assert_eq!(running.state(running.heard_at + 120_000), custos::metrics::CollectorState::Running);
    let running = running.beat;
    assert_eq!(running.version, env!("CARGO_PKG_VERSION"));
    assert!(running.started_at <= running.sent_at, "{running:?}");

    // Its health endpoints: ready once the bus has taken a heartbeat.
    let health = node.health_addr.expect("health_listen is set");
    let at =
        |path: &str| custos::health::ProbeUrl { host: health.ip().to_string(), port: health.port(), path: path.into() };
    let ask = async |path: &str| custos::health::probe(&at(path), Duration::from_secs(10)).await;
    assert_eq!(ask("/healthz").await.expect("alive").status, 200);
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = ask("/readyz").await.expect("answers");
        if ready.status == 200 {
            assert_eq!(ready.body, r#"{"status":"ready"}"#);
            break;
        }
        assert!(Instant::now() < until, "the collector never became ready: {ready:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let data = ask("/api/v1/events").await.expect("answers");
    assert_eq!(data.status, 404, "a collector serves no data: {data:?}");

    let Split { evidence, node, _dir, .. } = split;
    node.shutdown().await.expect("the collector stops");
    ask("/healthz").await.expect_err("its health endpoints stop with it");
    let last = heard(&evidence, true).await.beat;
    assert_eq!(last.started_at, running.started_at, "the same run");
    evidence.shutdown().await.expect("the evidence process stops");
}

/// A broker of one test's own (tansu, in memory), stopped when dropped.
struct OwnBroker {
    process: std::process::Child,
    address: String,
}

impl OwnBroker {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let tansu = std::env::var("CUSTOS_TEST_TANSU").unwrap_or_else(|_| "tansu".into());
        let process = Command::new(&tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{tansu} (scripts/install-deps.sh installs it; CUSTOS_TEST_TANSU names it): {e}")
            });
        let broker = Self { process, address };
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&broker.address).is_err() {
            assert!(Instant::now() < until, "tansu did not listen on {} in 30 s", broker.address);
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// Sends the broker a signal: `STOP` freezes it (connections open,
    /// nothing answered), `CONT` lets it go on.
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill").arg(format!("-{signal}")).arg(self.process.id().to_string()).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} tansu");
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A broker that answers nothing for longer than the delivery timeout
/// stalls the collector; it does not stop it, and loses nothing: the
/// record the broker did not take is sent again, and ledgered once the
/// broker answers again; the collector goes on reading after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_answering_stalls_the_collector_and_loses_nothing() {
    common::show_warnings();
    let broker = OwnBroker::start();
    let split = Split::start(&broker.address).await;
    let minute = Duration::from_secs(60);
    split.send("before");
    split.ledgered("before", minute).await;

    broker.signal("STOP");
    split.send("during");
    // The record waits for the delivery timeout (30 s), then is sent again.
    let until = Instant::now() + Duration::from_secs(120);
    while split.node.bus_redelivered() == 0 {
        assert!(Instant::now() < until, "nothing was sent again in 120 s of a frozen broker");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    broker.signal("CONT");
    assert_eq!(split.ledgered("during", 2 * minute).await.1.as_deref(), Some("cell-1"), "the frozen broker's record");
    split.send("after");
    split.ledgered("after", 2 * minute).await;
    // The core hears of it in the collector's heartbeats.
    let until = Instant::now() + minute;
    loop {
        let beats = split.evidence.stats.collectors.list();
        if beats.iter().any(|h| h.beat.collector == "dmz-1" && h.beat.bus_redelivered > 0) {
            break;
        }
        assert!(Instant::now() < until, "no heartbeat says what was sent again: {beats:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let Split { evidence, node, _dir, .. } = split;
    node.shutdown().await.expect("the collector stops");
    evidence.shutdown().await.expect("the evidence process stops");
}
