//! What the core reads of its collectors is ledgered as it is heard: a clock
//! that stays off, a silence and its end are alerts, filed as incidents, and
//! no control-room alarm (by default). The tests hand a running Custos
//! heartbeats with the times the core read them (it stamps them itself; a
//! test cannot wait 10 minutes).

use custos::config::Config;
use custos::pipeline::Custos;
use ingest::heartbeat::Heartbeat;

async fn start(dir: &tempfile::TempDir) -> Custos {
    let mut cfg = Config::with_data_dir(dir.path().join("data"));
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    Custos::start(cfg).await.expect("starts")
}

/// `collector`'s heartbeat sent at `sent_at`, read by the core at `heard_at`.
fn hear(c: &Custos, collector: &str, sent_at: i64, heard_at: i64) {
    let beat = Heartbeat { collector: collector.into(), sent_at, ..Heartbeat::default() };
    assert!(c.stats.collectors.record(beat, heard_at));
}

/// The incident about `collector` once it has every rule of `rules`.
async fn incident(c: &Custos, collector: &str, rules: &[&str]) -> correlate::Incident {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let book = c.views.incidents.read().expect("book").list(None).cloned().collect::<Vec<_>>();
        let has = |i: &correlate::Incident| rules.iter().all(|r| i.rules.iter().any(|have| have == r));
        if let Some(i) = book.into_iter().find(|i| i.entity.id == collector && has(i)) {
            return i;
        }
        assert!(std::time::Instant::now() < deadline, "no incident about {collector} with {rules:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn on_board(c: &Custos, rules: &[&str]) -> bool {
    c.views
        .alarms
        .lock()
        .expect("board")
        .list()
        .iter()
        .any(|a| matches!(&a.alarm.kind, correlate::AlarmKind::Alert { rule, .. } if rules.contains(&rule.as_str())))
}

/// Stops Custos and reads the summaries of its ledgered alerts of `rules`.
async fn ledgered(c: Custos, rules: &[&str]) -> Vec<(String, String)> {
    let ledger = c.data_dir.join("ledger");
    c.shutdown().await.expect("clean shutdown");
    let mut found = Vec::new();
    ledger::for_each_record(&ledger, |_, bytes| {
        if let Ok(r) = ledger::record::decode(bytes)
            && r.kind == ledger::RecordKind::Alert
            && let Some(rule) = r.data["rule"].as_str().filter(|rule| rules.contains(rule))
        {
            found.push((rule.to_owned(), r.data["summary"].as_str().unwrap_or_default().to_owned()));
        }
    })
    .expect("ledger reads");
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_clock_off_for_ten_minutes_is_one_ledgered_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = start(&dir).await;
    // dmz-1's clock 45 s behind, read for 11 minutes (a check between the
    // first two heartbeats may also find it silent: not asked here).
    let now = ingest::source::now_millis();
    for heard_at in [now - 11 * 60_000, now, now + 1_000] {
        hear(&c, "dmz-1", heard_at - 45_000, heard_at);
    }
    let rule = custos::clocks::RULE;
    let i = incident(&c, "dmz-1", &[rule]).await;
    assert_eq!(i.zone.as_deref(), Some("custos"));
    assert!(!on_board(&c, &[rule]), "not a control-room alarm by default");
    let alerts = ledgered(c, &[rule]).await;
    assert_eq!(alerts.len(), 1, "one alert for one run of heartbeats off: {alerts:?}");
    assert!(alerts[0].1.starts_with("collector dmz-1's clock is 45.0 s behind the core's"), "{alerts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_silence_and_its_end_are_ledgered_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = start(&dir).await;
    // dmz-2 (15 s heartbeats) last read 3 minutes ago: silent.
    let now = ingest::source::now_millis();
    hear(&c, "dmz-2", now - 180_000, now - 180_000);
    let (silent, again) = (custos::silence::RULE, custos::silence::HEARD_AGAIN);
    let i = incident(&c, "dmz-2", &[silent]).await;
    assert_eq!((i.rule.as_str(), i.severity_id), (silent, 4));
    // The core restarts meanwhile; it knows from the ledger that dmz-2 was silent.
    c.shutdown().await.expect("clean shutdown");
    let c = start(&dir).await;
    // Heard again: the gap's end joins the collector's incident.
    hear(&c, "dmz-2", now, now);
    let i = incident(&c, "dmz-2", &[silent, again]).await;
    assert_eq!(i.alerts.len(), 2, "{i:?}");
    assert!(!on_board(&c, &[silent, again]), "not control-room alarms by default");
    let alerts = ledgered(c, &[silent, again]).await;
    let rules: Vec<&str> = alerts.iter().map(|(rule, _)| rule.as_str()).collect();
    assert_eq!(rules, [silent, again], "{alerts:?}");
    assert!(alerts[0].1.starts_with("collector dmz-2 sent no heartbeat after the one the core read at"), "{alerts:?}");
    assert!(alerts[1].1.contains("after no heartbeat read since"), "{alerts:?}");
}
