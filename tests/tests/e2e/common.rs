//! Shared end-to-end scenario, in process: the demo plant feeds Custos through its real
//! transports (UDP and TCP syslog, a tailed EVE file, HTTP pushes, a PLC backup
//! directory); the three built-in rules raise incidents visible through the
//! API; the ledger verifies offline, fails after a byte changes, and continues
//! across a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use custos::config::BusConfig;
use custos::demo::{self, DemoOptions, http_request};
use serde_json::Value;

/// The rules the demo plant sets off: the three hand-written joins and nine
/// of the built-in Sigma pack (detection, every correlation type, presence).
const RULES: [&str; 12] = [
    "badge-denied-then-ews-login",
    "plc-change-outside-window",
    "ot-write-owner-offsite",
    "custos-ot-write-non-ews",
    "custos-door-forced-control-room",
    "custos-badge-duress-antipassback",
    "custos-ids-alert-on-plc",
    "custos-repeated-badge-denials",
    "custos-ot-logon-brute-force",
    "custos-modbus-sweep",
    "custos-denied-then-ews-logon",
    "custos-tailgating-inferred",
];

pub async fn get(addr: SocketAddr, path: &str, token: &str) -> Value {
    let (status, body) = http_request(addr, "GET", path, Some(token), None).await.expect("http");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

/// Polls the API until every rule in `RULES` has raised an alert that is part of an
/// incident (alerts of one entity join one incident), or the deadline passes.
async fn wait_for_incidents(addr: SocketAddr, token: &str, deadline: Duration) -> Vec<Value> {
    let until = Instant::now() + deadline;
    loop {
        let incidents =
            get(addr, "/api/v1/incidents", token).await["incidents"].as_array().cloned().unwrap_or_default();
        let have =
            |r: &str| incidents.iter().any(|i| i["rules"].as_array().is_some_and(|rules| rules.iter().any(|x| x == r)));
        if RULES.iter().all(|r| have(r)) {
            return incidents;
        }
        if Instant::now() >= until {
            // Say how far each source got, so a stall can be placed (a source,
            // the bus, correlation) from the failure alone.
            let metrics =
                http_request(addr, "GET", "/metrics", Some(token), None).await.map(|r| r.1).unwrap_or_default();
            let progress: Vec<&str> = metrics
                .lines()
                .filter(|l| {
                    [
                        "custos_source_lines_total",
                        "custos_parser_events_total",
                        "custos_late_events_total",
                        "custos_ledger_records",
                    ]
                    .iter()
                    .any(|m| l.starts_with(m))
                })
                .collect();
            let rules: Vec<&Value> = incidents.iter().map(|i| &i["rules"]).collect();
            panic!("incidents after {deadline:?}: rules {rules:?}\npipeline: {progress:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks `probe` every 100 ms until it answers `Ok`, or panics after `deadline`
/// with the last `Err` it gave (what was seen instead).
pub(crate) async fn poll<T, F: AsyncFnMut() -> Result<T, String>>(what: &str, deadline: Duration, mut probe: F) -> T {
    let until = Instant::now() + deadline;
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(seen) if Instant::now() >= until => panic!("{what} after {deadline:?}: {seen}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn options(dir: &Path, bus: Option<BusConfig>) -> DemoOptions {
    DemoOptions {
        data_dir: Some(dir.to_path_buf()),
        http: "127.0.0.1:0".parse().expect("addr"),
        tick_seconds: 0.25,
        bus,
        alarms: Default::default(),
    }
}

/// The whole demo scenario on `bus`; returns the data directory for further checks.
pub async fn demo_end_to_end(bus: Option<BusConfig>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = demo::start(options(dir.path(), bus.clone())).await.expect("demo starts");
    let (addr, token) = (d.http_addr, d.admin_token.clone());
    assert_eq!(std::fs::read_to_string(dir.path().join("demo-token")).expect("token file"), token);

    let incidents = wait_for_incidents(addr, &token, Duration::from_secs(90)).await;
    for i in &incidents {
        for field in ["id", "rule", "severity", "state", "attack", "opened_at", "events"] {
            assert!(!i[field].is_null(), "incident lacks {field}: {i}");
        }
        assert_eq!(i["state"], "new");
    }
    let by_rule = |r: &str| {
        incidents
            .iter()
            .find(|i| i["rules"].as_array().is_some_and(|rules| rules.iter().any(|x| x == r)))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by_rule("badge-denied-then-ews-login")["entity"]["id"], "mallory");
    assert_eq!(by_rule("badge-denied-then-ews-login")["attack"][0], "T0859");
    assert_eq!(
        by_rule("plc-change-outside-window")["entity"]["id"],
        "PLC-01",
        "PLC-02 changed inside its window and must not alert"
    );
    assert_eq!(by_rule("ot-write-owner-offsite")["entity"]["id"], "LAPTOP-7", "EWS-01's owner is on site");
    assert!(incidents.iter().all(|i| i["entity"]["id"] != "PLC-02" && i["entity"]["id"] != "EWS-01"));

    // Carol left the control room without badging in: she came in behind
    // Alice, whose badge and the door's opening are on her incident's timeline.
    let tailgating = by_rule("custos-tailgating-inferred");
    assert_eq!(tailgating["entity"]["id"], "carol");
    let id = tailgating["id"].as_str().unwrap_or_default();
    let timeline = get(addr, &format!("/api/v1/incidents/{id}/timeline"), &token).await;
    let timeline = timeline["timeline"].as_array().cloned().unwrap_or_default();
    let opened = timeline.iter().position(|t| t["class_uid"] == 9001 && t["activity_id"] == 9);
    let alice = timeline.iter().position(|t| t["actor"]["person"] == "alice");
    assert!(alice.is_some() && alice < opened, "Alice's badge, then the door opens: {timeline:?}");
    assert!(
        timeline
            .iter()
            .any(|t| t["summary"].as_str().is_some_and(|s| s.contains("came in behind alice: CR-DOOR-1 opened at"))),
        "{timeline:?}"
    );

    // The detail shows the cyber-physical timeline in event-time order.
    let id = by_rule("badge-denied-then-ews-login")["id"].as_str().unwrap_or_default().to_owned();
    let detail = get(addr, &format!("/api/v1/incidents/{id}"), &token).await;
    let timeline = detail["timeline"].as_array().cloned().unwrap_or_default();
    // Mallory's incident: an antipassback violation, three denials, then the logon.
    let classes: Vec<i64> = timeline.iter().filter_map(|t| t["class_uid"].as_i64()).collect();
    assert!(classes.len() >= 4, "{detail}");
    assert_eq!(classes[0], 9001, "badge events first: {classes:?}");
    assert_eq!(classes.last(), Some(&3002), "then the logon: {classes:?}");

    // Custos reports its own sign-ins as events: five wrong passwords lock
    // a name, and the lock-out is an alert and an incident like any other.
    let body = br#"{"name":"intruder","password":"guess guess guess"}"#;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(http_request(addr, "POST", "/api/v1/login", None, Some(body)).await.expect("login").0);
    }
    assert_eq!(codes, [401, 401, 401, 401, 401, 403], "the sixth finds the name locked");
    let locked = poll("no lock-out incident", Duration::from_secs(60), async || {
        let incidents = get(addr, "/api/v1/incidents?rule=custos-own-account-locked", &token).await;
        incidents["incidents"].get(0).cloned().ok_or_else(|| incidents.to_string())
    })
    .await;
    assert_eq!((&locked["entity"]["id"], &locked["severity_id"]), (&Value::from("intruder"), &Value::from(4)), "high");
    // For the SOC, not the control room: no alarm (the alert and the incident stand).
    let board = get(addr, "/api/v1/alarms", &token).await;
    let board = board["alarms"].as_array().cloned().unwrap_or_default();
    assert!(board.iter().all(|a| a["alarm"]["key"] != "custos-own-account-locked/intruder"), "{board:?}");
    // Requests with a token Custos never issued are reported too, once a
    // minute at most for an address.
    for _ in 0..2 {
        let refused = http_request(addr, "GET", "/api/v1/incidents", Some("stolen-or-stale"), None).await;
        assert_eq!(refused.expect("request").0, 401);
    }
    // The incident follows the fifth attempt; the sixth's event may still be
    // on its way through the bus, so wait for all seven.
    let sign_ins = poll("not seven sign-in events", Duration::from_secs(30), async || {
        let page = get(addr, "/api/v1/events?limit=100&source=custos", &token).await;
        let sign_ins = page["events"].as_array().cloned().unwrap_or_default();
        if sign_ins.len() >= 7 { Ok(sign_ins) } else { Err(format!("{sign_ins:?}")) }
    })
    .await;
    assert_eq!(sign_ins.len(), 7, "{sign_ins:?}");
    assert!(sign_ins.iter().all(|e| e["src"]["ip"] == "127.0.0.1" && e["status_id"] == 2), "{sign_ins:?}");
    let (tokens, logins): (Vec<_>, Vec<_>) =
        sign_ins.iter().partition(|e| e["message"] == "Custos API login failed: unknown token");
    assert_eq!(tokens.len(), 1, "{sign_ins:?}");
    assert!(logins.iter().all(|e| e["actor"]["user"] == "intruder"), "{sign_ins:?}");

    // Every real transport delivered.
    let events = get(addr, "/api/v1/events?limit=1000", &token).await["events"].as_array().cloned().unwrap_or_default();
    for source in ["syslog-udp", "syslog-tcp", "suricata", "badge", "plc-backup"] {
        assert!(events.iter().any(|e| e["metadata"]["source"] == source), "no event from {source}");
    }
    let checkpoint =
        http_request(addr, "GET", "/api/v1/ledger/checkpoint", Some(&token), None).await.expect("checkpoint").1;
    assert!(checkpoint.starts_with("custos.local/ledger\n"), "{checkpoint}");
    assert!(checkpoint.contains("\n\n\u{2014} custos.local/ledger "), "{checkpoint}");

    // Wait (bounded) for the plant's bad lines: they become dead letters, not losses.
    let dl = poll("fewer than two dead letters", Duration::from_secs(30), async || {
        let dl = get(addr, "/api/v1/dead-letters", &token).await;
        if dl["total"].as_u64() >= Some(2) { Ok(dl) } else { Err(dl.to_string()) }
    })
    .await;
    let reasons: Vec<&str> =
        dl["dead_letters"].as_array().into_iter().flatten().filter_map(|d| d["reason"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.starts_with("syslog: missing <PRI>")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("suricata-eve: not JSON")), "{reasons:?}");

    // The control room shelves the forced-door alarm; the board keeps it across the restart.
    let door = "custos-door-forced-control-room/cell-1";
    let shelve = format!(r#"{{"key":"{door}","reason":"door contact under repair","minutes":60}}"#);
    let (status, body) = http_request(addr, "POST", "/api/v1/alarms/shelve", Some(&token), Some(shelve.as_bytes()))
        .await
        .expect("shelve");
    assert_eq!(status, 200, "{body}");

    let size_before = d.custos.ledger.size();
    d.shutdown().await.expect("clean shutdown");
    let ledger_dir = dir.path().join("ledger");
    let report = ledger::verify_dir(&ledger_dir, None).expect("ledger verifies");
    assert!(report.records >= size_before);
    assert_eq!(report.unsigned_tail(), 0, "shutdown signs a final checkpoint");
    for kind in ["event", "deadletter", "alert", "incident", "audit", "key"] {
        assert!(report.kinds.get(kind).copied().unwrap_or(0) > 0, "no {kind} record: {:?}", report.kinds);
    }

    // Restart on the same directory: the same ledger grows and the incidents are back.
    let d = demo::start(options(dir.path(), bus)).await.expect("demo restarts");
    assert_eq!(d.admin_token, token, "the saved admin token keeps working");
    let first = std::fs::read_dir(dir.path().join("state")).expect("state snapshots").count();
    assert!(d.custos.resumed_from.is_some(), "the first start's state snapshot was taken up ({first} files)");
    let again =
        get(d.http_addr, "/api/v1/incidents", &token).await["incidents"].as_array().cloned().unwrap_or_default();
    assert!(again.len() >= 3, "incidents restored from the ledger: {again:?}");
    let board = get(d.http_addr, "/api/v1/alarms", &token).await["alarms"].as_array().cloned().unwrap_or_default();
    let shelved = board.iter().find(|a| a["alarm"]["key"] == door).map(|a| a["shelved"].clone());
    assert_eq!(
        shelved.as_ref().map(|s| (&s["by"], &s["reason"])),
        Some((&Value::from("demo-admin"), &Value::from("door contact under repair"))),
        "the alarm board rebuilt from the ledger: {board:?}"
    );
    let resumed = d.custos.ledger.size();
    assert!(resumed > report.records, "the restart is itself audited");
    let until = Instant::now() + Duration::from_secs(30);
    while d.custos.ledger.size() < resumed + 20 {
        assert!(Instant::now() < until, "ingest did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.shutdown().await.expect("clean shutdown");
    let after = ledger::verify_dir(&ledger_dir, None).expect("verifies after restart");
    assert!(after.records > report.records, "the chain and tree keep growing");
    // The restart rebuilt correlation state by replaying the ledger: no alert twice.
    let mut ids = Vec::new();
    ledger::for_each_record(&ledger_dir, |_, bytes| {
        if let Ok(r) = ledger::record::decode(bytes)
            && r.kind == ledger::RecordKind::Alert
        {
            ids.push(r.data["id"].as_str().unwrap_or_default().to_owned());
        }
    })
    .expect("ledger reads");
    ids.sort();
    let twice: Vec<&String> = ids.windows(2).filter(|w| w[0] == w[1]).map(|w| &w[0]).collect();
    assert!(twice.is_empty(), "alerts ledgered twice: {twice:?}");

    // Tampering: one changed byte anywhere in a segment is found and named.
    let seg = ledger_dir.join("segments").join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).expect("segment");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&seg, bytes).expect("write");
    let err = ledger::verify_dir(&ledger_dir, None).expect_err("tampering is detected");
    assert!(err.index().is_some(), "the error names the first bad index: {err}");
    std::fs::write(
        &seg,
        std::fs::read(&seg)
            .map(|mut b| {
                b[at] ^= 0x01;
                b
            })
            .expect("segment"),
    )
    .expect("restore");
    dir
}

/// Shows the warnings and errors of every stage, and of librdkafka, with a
/// test's output when it fails (`RUST_LOG` sets another level). The
/// subscriber is global: from the first call on, every test's are kept.
pub fn show_warnings() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}
