//! Control-room alarms leave Custos for real receivers: a TCP syslog listener
//! gets octet-counted RFC 5424 messages (checked with the RFC 5424 parser) and
//! a webhook gets JSON; the demo's burst of alerts in cell-1 is collapsed into
//! one flood alarm.

use std::time::{Duration, Instant};

use custos::alarms::{AlarmsConfig, SyslogTarget, WebhookTarget};
use custos::demo::{self, DemoOptions};
use ingest::parse::ParseContext;
use ingest::parse::syslog::{Flavor, parse_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Reads octet-counted frames from every connection into `out`.
async fn syslog_receiver(listener: TcpListener, out: mpsc::Sender<Vec<u8>>) {
    while let Ok((mut conn, _)) = listener.accept().await {
        let out = out.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = conn.read(&mut chunk).await {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                // `LEN SP MSG`, as many as are complete.
                while let Some(sp) = buf.iter().position(|b| *b == b' ') {
                    let Some(len) = std::str::from_utf8(&buf[..sp]).ok().and_then(|l| l.parse::<usize>().ok()) else {
                        return;
                    };
                    if buf.len() < sp + 1 + len {
                        break;
                    }
                    let frame: Vec<u8> = buf.drain(..sp + 1 + len).skip(sp + 1).collect();
                    if out.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// Answers every POST with 204 and hands the body to `out`.
async fn webhook_receiver(listener: TcpListener, out: mpsc::Sender<serde_json::Value>) {
    while let Ok((mut conn, _)) = listener.accept().await {
        let out = out.clone();
        tokio::spawn(async move {
            let mut req = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = conn.read(&mut chunk).await else { return };
                if n == 0 {
                    return;
                }
                req.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&req).into_owned();
                let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() < len {
                    continue;
                }
                let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await;
                if let Ok(v) = serde_json::from_str(body) {
                    let _ = out.send(v).await;
                }
                return;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_reach_syslog_and_webhook_and_a_flood_collapses() {
    let syslog = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (syslog_addr, hook_addr) = (syslog.local_addr().expect("addr"), hook.local_addr().expect("addr"));
    let (frames_tx, mut frames) = mpsc::channel(1024);
    let (posts_tx, mut posts) = mpsc::channel(1024);
    tokio::spawn(syslog_receiver(syslog, frames_tx));
    tokio::spawn(webhook_receiver(hook, posts_tx));

    let mut alarms = AlarmsConfig {
        syslog: Some(SyslogTarget::plain(syslog_addr.to_string())),
        webhook: Some(WebhookTarget::new(format!("http://{hook_addr}/alarms"))),
        ..AlarmsConfig::default()
    };
    // The demo raises well over four alarms in cell-1 within minutes.
    alarms.policy.flood_alarms = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = demo::start(DemoOptions {
        data_dir: Some(dir.path().to_path_buf()),
        http: "127.0.0.1:0".parse().expect("addr"),
        tick_seconds: 0.25,
        bus: None,
        alarms,
    })
    .await
    .expect("demo starts");

    let until = Instant::now() + Duration::from_secs(90);
    let ctx = ParseContext::new("receiver", 0);
    let (mut alerts, mut flood) = (Vec::new(), None);
    while flood.is_none() || alerts.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, frames.recv())
            .await
            .unwrap_or_else(|_| panic!("no flood alarm within 90 s; alerts: {alerts:?}"))
            .expect("receiver runs");
        let m = parse_message(&frame, &ctx).expect("a valid RFC 5424 message");
        assert_eq!(m.flavor, Flavor::Rfc5424);
        assert_eq!((m.facility, m.app_name, m.msgid), (20, Some("custos"), Some("ALARM")));
        let sd = m.structured_data.iter().find(|e| e.id == "custos@32473").expect("alarm SD element");
        let param = |k: &str| sd.params.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        match param("kind").as_deref() {
            Some("alert") => {
                assert!(param("rule").is_some_and(|r| !r.is_empty()), "{sd:?}");
                assert!((2..=5).contains(&m.severity));
                alerts.push((param("area").unwrap_or_default(), param("key").unwrap_or_default()));
            }
            Some("flood-started") => {
                assert_eq!(param("area").as_deref(), Some("cell-1"));
                assert_eq!(m.severity, 2, "a flood is priority 1 (critical)");
                flood = Some(String::from_utf8_lossy(m.msg).into_owned());
            }
            other => panic!("unexpected alarm kind {other:?}"),
        }
    }
    let in_cell = alerts.iter().filter(|(area, _)| area == "cell-1").count();
    assert_eq!(in_cell, 4, "the flood threshold, then the summary: {alerts:?}");
    let flood = flood.unwrap_or_default();
    assert!(flood.contains("Alarm flood in cell-1"), "{flood}");
    // Counted by priority for /metrics: the flood's summary is priority 1.
    let raised: Vec<u64> =
        d.custos.stats.alarms_raised.iter().map(|n| n.load(std::sync::atomic::Ordering::Relaxed)).collect();
    assert!(raised[0] >= 1 && raised.iter().sum::<u64>() > in_cell as u64, "{raised:?}");

    // The webhook got the same alarms as JSON, in the same order.
    let first = tokio::time::timeout(Duration::from_secs(30), posts.recv()).await.expect("webhook post").expect("runs");
    assert_eq!(first["kind"], "alert");
    assert_eq!(first["key"], alerts[0].1.as_str());
    d.shutdown().await.expect("clean shutdown");
    // Each forwarder stored how far it got.
    for sink in ["syslog", "webhook"] {
        let pos = std::fs::read_to_string(dir.path().join("alarms").join(format!("{sink}.sent"))).expect("position");
        assert!(pos.trim().parse::<u64>().is_ok_and(|p| p > 0), "{sink}: {pos}");
    }
}
