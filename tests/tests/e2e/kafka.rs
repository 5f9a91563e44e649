//! Kafka mode against a real Kafka-protocol broker. Built with the `kafka`
//! feature; `.ci/run` starts tansu and sets `CUSTOS_TEST_KAFKA_BROKERS`. With the
//! feature on and no broker named, these tests fail: they never skip quietly.
#![cfg(feature = "kafka")]

use crate::common;

use std::collections::HashMap;
use std::process::Command;

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

fn kafka_bus(prefix: &str) -> BusConfig {
    BusConfig {
        kind: BusKind::Kafka,
        capacity: 64,
        kafka: Some(KafkaConfig {
            brokers: brokers(),
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
    let mut r = [0u8; 4];
    getrandom::fill(&mut r).expect("random");
    let prefix = format!("custos-test-{}", hex::encode(r));
    let dir = common::demo_end_to_end(Some(kafka_bus(&prefix))).await;

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
