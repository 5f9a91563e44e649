//! A source that ends on an error of its own is started again: it must not
//! read nothing more for the life of the process.

use std::time::{Duration, Instant};

use custos::config::Config;
use custos::pipeline::Custos;

/// A tailed path that cannot be read (a directory where the log file
/// should be: it opens, and reading it fails) ends its source on an error.
/// The source is counted and started again, and once a readable file is
/// there, its line is ledgered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_that_fails_is_started_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("fw.log");
    std::fs::create_dir(&log).expect("a directory in the log file's place");
    let mut cfg = Config::with_data_dir(dir.path().join("data"));
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.sources.file.push(ingest::source::tail::FileTailConfig {
        name: "fw".into(),
        path: log.clone(),
        format: ingest::Format::Syslog,
        poll_ms: 20,
        max_line: 65_536,
        mapping: None,
    });
    let custos = Custos::start(cfg).await.expect("starts");

    let until = Instant::now() + Duration::from_secs(30);
    while custos.stats.source_restarts.get("fw") == 0 {
        assert!(Instant::now() < until, "the failing source was not started again in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = custos.stats.source_restarts.render(&[]);
    assert!(metrics.contains("custos_source_restarts_total{source=\"fw\"} "), "{metrics}");

    std::fs::remove_dir(&log).expect("remove the directory");
    let line = "<13>1 2026-11-26T10:00:00Z ews-02 win - - - CEF:0|Microsoft|Windows|10|4624|An account logon|3|duser=after src=10.10.1.77\n";
    std::fs::write(&log, line).expect("the log file");
    let until = Instant::now() + Duration::from_secs(60);
    let by = |e: &ingest::Event| e.actor.as_ref().and_then(|a| a.user.as_deref()) == Some("after");
    while custos.views.events(1, by).is_empty() {
        assert!(Instant::now() < until, "the line was not ledgered in 60 s after the file became readable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    custos.shutdown().await.expect("clean shutdown");
}
