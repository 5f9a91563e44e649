//! A collector's clock that stays off is ledgered as it is heard: one alert,
//! filed as an incident, and no control-room alarm (by default).

use custos::config::Config;
use custos::pipeline::Custos;
use ingest::heartbeat::Heartbeat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_clock_off_for_ten_minutes_is_one_ledgered_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::with_data_dir(dir.path().join("data"));
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    let c = Custos::start(cfg).await.expect("starts");
    // Two heartbeats of dmz-1, 45 s behind, as if the core had read them 11
    // minutes apart (the core stamps them; a test cannot wait 10 minutes).
    let now = ingest::source::now_millis();
    for heard_at in [now - 11 * 60_000, now, now + 1_000] {
        let beat = Heartbeat { collector: "dmz-1".into(), sent_at: heard_at - 45_000, ..Heartbeat::default() };
        assert!(c.stats.collectors.record(beat, heard_at));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let incident = loop {
        let book = c.views.incidents.read().expect("book").list(None).cloned().collect::<Vec<_>>();
        if let Some(i) = book.into_iter().find(|i| i.rule == custos::clocks::RULE) {
            break i;
        }
        assert!(std::time::Instant::now() < deadline, "no incident about dmz-1's clock");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!((incident.entity.id.as_str(), incident.zone.as_deref()), ("dmz-1", Some("custos")));
    let on_board = c
        .views
        .alarms
        .lock()
        .expect("board")
        .list()
        .iter()
        .any(|a| matches!(&a.alarm.kind, correlate::AlarmKind::Alert { rule, .. } if rule == custos::clocks::RULE));
    assert!(!on_board, "not a control-room alarm by default");
    let ledger = c.data_dir.join("ledger");
    c.shutdown().await.expect("clean shutdown");
    let mut summaries = Vec::new();
    ledger::for_each_record(&ledger, |_, bytes| {
        if let Ok(r) = ledger::record::decode(bytes)
            && r.kind == ledger::RecordKind::Alert
            && r.data["rule"] == custos::clocks::RULE
        {
            summaries.push(r.data["summary"].as_str().unwrap_or_default().to_owned());
        }
    })
    .expect("ledger reads");
    assert_eq!(summaries.len(), 1, "one alert for one run of heartbeats off: {summaries:?}");
    assert!(summaries[0].starts_with("collector dmz-1's clock is 45.0 s behind the core's"), "{summaries:?}");
}
