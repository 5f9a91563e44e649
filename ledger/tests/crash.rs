//! Crash test: a writer process is killed with SIGKILL at random moments,
//! over and over, on one ledger. After each kill the ledger reopens (a torn
//! tail is truncated) and must hold every acknowledged record, keep every
//! earlier record at its index, verify offline, and have signed checkpoints
//! that all agree with the records (so no two of them are inconsistent).
//!
//! The writer is this test binary itself, run as `crash_child_writer`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use ledger::{Ledger, LedgerOptions, NoteSigner, RecordKind, for_each_record, record, verify_dir};

const ORIGIN: &str = "custos.test/crash";

fn opts() -> LedgerOptions {
    LedgerOptions {
        segment_bytes: 64 * 1024,
        checkpoint_interval: std::time::Duration::from_millis(50),
        // Small, so that kills also land while a checkpoint file is begun.
        checkpoint_file_bytes: 2048,
        ..LedgerOptions::default()
    }
}

/// In a normal run this does nothing; as the crash test's child it appends
/// batches until killed, printing the end index of each acknowledged batch.
#[tokio::test]
async fn crash_child_writer() {
    let (Ok(dir), Ok(key)) = (std::env::var("CUSTOS_CRASH_DIR"), std::env::var("CUSTOS_CRASH_KEY")) else { return };
    let (l, _) = Ledger::open(Path::new(&dir), ORIGIN, NoteSigner::parse(&key).expect("key"), opts()).expect("open");
    let mut out = std::io::stdout();
    for batch in 0u64.. {
        let records: Vec<Vec<u8>> = (0..(1 + batch % 40))
            .map(|i| {
                record::encode(
                    RecordKind::Audit,
                    i as i64,
                    &serde_json::json!({"batch": batch, "i": i, "pad": "x".repeat(150)}),
                )
                .expect("record")
            })
            .collect();
        let range = l.append(records).await.expect("append");
        let _ = writeln!(out, "acked {}", range.end);
        let _ = out.flush();
    }
}

fn all_records(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for_each_record(dir, |_, r| out.push(r.to_vec())).expect("scan");
    out
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let exe = std::env::current_exe().expect("test binary");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    let mut before: Vec<Vec<u8>> = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let rounds = 50;
    for round in 0..rounds {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let acks_before_kill = 1 + (seed >> 33) % 25;
        let mut child = Command::new(&exe)
            .args(["crash_child_writer", "--exact", "--nocapture", "--test-threads=1"])
            .env("CUSTOS_CRASH_DIR", dir.path())
            .env("CUSTOS_CRASH_KEY", &key)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("writer starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut acked = 0u64;
        let mut seen = 0;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("acked ").and_then(|n| n.trim().parse::<u64>().ok()) {
                acked = acked.max(n);
                seen += 1;
                if seen >= acks_before_kill {
                    break;
                }
            }
        }
        // SIGKILL, while the writer is in the middle of its next appends.
        child.kill().expect("kill");
        let _ = child.wait();
        assert!(seen >= 1, "round {round}: the writer acknowledged nothing");

        let (l, report) = Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), opts())
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL: {e}"));
        assert!(l.size() >= acked, "round {round}: {} records, but {acked} were acknowledged", l.size());
        let _ = report;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(l.close())
            .expect("close");
        let now = all_records(dir.path());
        assert!(now.len() >= before.len(), "round {round}: records went missing");
        assert!(now[..before.len()] == before[..], "round {round}: an index now holds a different record");
        let v = verify_dir(dir.path(), None).unwrap_or_else(|e| panic!("round {round}: verify: {e}"));
        assert_eq!(v.records as usize, now.len());
        assert_eq!(v.unsigned_tail(), 0, "round {round}: close signs the tail");
        before = now;
    }
    assert!(before.len() > rounds, "the writers wrote");
    let files = std::fs::read_dir(dir.path().join("checkpoints")).expect("checkpoints").count();
    assert!(files > 3, "the checkpoint log rolled through the kills ({files} files)");
}
