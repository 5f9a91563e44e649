//! A nearly full data directory is told to the control room while the
//! ledger can still append: one alert (ledgered, filed as an incident,
//! raised as an alarm), checked as Custos starts and every minute after.

use custos::config::Config;
use custos::pipeline::Custos;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_data_directory_raises_one_alarm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::with_data_dir(dir.path().join("data"));
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    // No disk has this much room: the first check, at start, finds it low.
    cfg.ledger.low_room_bytes = u64::MAX;
    let c = Custos::start(cfg).await.expect("starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let alarm = loop {
        let board = c.views.alarms.lock().expect("board").list().into_iter().cloned().collect::<Vec<_>>();
        let about_room = |a: &correlate::AlarmState| matches!(&a.alarm.kind, correlate::AlarmKind::Alert { rule, .. } if rule == custos::room::RULE);
        if let Some(a) = board.into_iter().find(about_room) {
            break a;
        }
        assert!(std::time::Instant::now() < deadline, "no alarm about the data directory");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(alarm.alarm.priority, 1, "critical: the highest priority");
    assert_eq!(alarm.alarm.area, "custos", "not in a plant area a flood could hide it in");
    let incidents: Vec<_> = c.views.incidents.read().expect("book").list(None).cloned().collect();
    assert!(incidents.iter().any(|i| i.rule == custos::room::RULE), "filed as an incident");
    let ledger = c.data_dir.join("ledger");
    c.shutdown().await.expect("clean shutdown");
    let mut alerts = 0;
    ledger::for_each_record(&ledger, |_, bytes| {
        if let Ok(r) = ledger::record::decode(bytes)
            && r.kind == ledger::RecordKind::Alert
            && r.data["rule"] == custos::room::RULE
        {
            alerts += 1;
        }
    })
    .expect("ledger reads");
    assert_eq!(alerts, 1, "one alert while the room stays low");
}
