//! The `custos` binary itself: `demo` prints its address and token file, stops
//! cleanly on SIGTERM with a final checkpoint; `verify` exits 0 on an intact
//! ledger and 1, naming the index, after a byte changes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_custos");

#[test]
fn demo_stops_cleanly_on_sigterm_and_verify_judges_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(&data)
        .args(["--http", "127.0.0.1:0", "--tick-seconds", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("custos demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let api_line = lines.by_ref().map_while(Result::ok).find(|l| l.contains("API")).expect("prints the API address");
    assert!(api_line.contains("http://127.0.0.1:"), "{api_line}");
    assert!(std::fs::read_to_string(data.join("demo-token")).expect("token file").starts_with("cus_"));

    // Wait (bounded) until the tailed EVE file's position has been committed: data is flowing.
    let until = Instant::now() + Duration::from_secs(60);
    while !data.join("positions.json").exists() {
        assert!(Instant::now() < until, "no source position was committed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "SIGTERM is a clean stop, got {exit}");

    let ledger = data.join("ledger");
    let ok = Command::new(BIN).arg("verify").arg(&ledger).output().expect("verify runs");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(text.starts_with("OK: "), "{text}");
    assert!(!text.contains("not yet signed"), "the final checkpoint covers everything: {text}");

    let vkey = std::fs::read_to_string(ledger.join("keys.vkey")).expect("vkey");
    let pinned = Command::new(BIN).arg("verify").arg(&ledger).args(["--key", vkey.trim()]).status().expect("verify");
    assert!(pinned.success(), "verifies against the pinned key");

    let seg = ledger.join("segments").join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).expect("segment");
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    std::fs::write(&seg, bytes).expect("write");
    let bad = Command::new(BIN).arg("verify").arg(&ledger).output().expect("verify runs");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.starts_with("FAILED: ledger is corrupt at index "), "{err}");
}

#[test]
fn bad_config_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("custos.toml");
    std::fs::write(&cfg, format!("data_dir = {:?}\n[correlate]\nallowed_latenes_ms = 5\n", dir.path())).expect("write");
    let out = Command::new(BIN).args(["run", "--config"]).arg(&cfg).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `allowed_latenes_ms`"), "{err}");
}
