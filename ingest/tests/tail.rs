//! The file tail on real files: it follows appends, rotation (rename + new
//! file) and truncation (copytruncate), and across restarts it neither loses
//! nor repeats a line, as long as positions are stored only for what was
//! taken (here: right after each batch, as on a Kafka bus).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::bus::{Bus, EmbeddedBus, RAW, Subscriber};
use ingest::source::tail::{FileTailConfig, run};
use ingest::source::{Handover, Positions};
use ingest::{Format, RawRecord};

fn config(path: std::path::PathBuf) -> FileTailConfig {
    FileTailConfig {
        name: "t".into(),
        path,
        format: Format::SuricataEve,
        poll_ms: 10,
        max_line: 1 << 16,
        mapping: None,
    }
}

fn append(path: &std::path::Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open");
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
}

/// Collects lines until `want` have arrived (bounded wait).
async fn collect(sub: &mut Subscriber<RawRecord>, got: &mut Vec<String>, want: usize) {
    let until = Instant::now() + Duration::from_secs(20);
    while got.len() < want {
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "only {} of {want} lines arrived: {got:?}", got.len());
        if let Ok(Some(d)) = tokio::time::timeout(left, sub.next()).await {
            got.extend(d.items.into_iter().map(|r| String::from_utf8_lossy(&r.bytes).into_owned()));
        }
    }
}

type Running = (
    Subscriber<RawRecord>,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), ingest::source::SourceError>>,
);

/// Starts a tail of `path` on a fresh embedded bus.
fn start(path: &std::path::Path, positions: &Arc<Positions>) -> Running {
    let bus = EmbeddedBus::new(4);
    let sub = bus.subscriber(RAW).expect("sub");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let publisher = bus.publisher(RAW).expect("pub");
    let task =
        tokio::spawn(run(config(path.to_path_buf()), positions.clone(), publisher, Handover::OnPublish, stop_rx));
    (sub, stop, task)
}

fn lines(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("line-{i}")).collect()
}

#[tokio::test]
async fn follows_rotation_truncation_and_restarts_without_loss_or_repeat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("eve.json");
    let positions = Arc::new(Positions::open(dir.path().join("positions.json")).expect("positions"));
    let mut got = Vec::new();

    // Run 1: appends, then a rotation (rename + new file) with lines written to the old file just before.
    let (mut sub, stop, task) = start(&path, &positions);
    append(&path, &lines(0, 50));
    collect(&mut sub, &mut got, 50).await;
    append(&path, &lines(50, 60));
    std::fs::rename(&path, dir.path().join("eve.json.1")).expect("rotate");
    append(&path, &lines(60, 80));
    collect(&mut sub, &mut got, 80).await;
    stop.send(true).expect("stop");
    task.await.expect("join").expect("tail");

    // Stopped: more lines arrive meanwhile; a restart resumes exactly after the last taken line.
    append(&path, &lines(80, 100));
    let (mut sub, stop, task) = start(&path, &positions);
    collect(&mut sub, &mut got, 100).await;

    // copytruncate: the file is emptied in place and written again.
    std::fs::OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
    append(&path, &lines(100, 110));
    collect(&mut sub, &mut got, 110).await;
    stop.send(true).expect("stop");
    task.await.expect("join").expect("tail");

    assert_eq!(got, lines(0, 110), "every line once, in order");
}
