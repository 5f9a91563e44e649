//! The `custos` binary itself: `demo` prints its address and token file, stops
//! cleanly on SIGTERM with a final checkpoint; `verify` exits 0 on an intact
//! ledger and 1, naming the index, after a byte changes.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_custos");

/// `custos demo` on `data` and a free port; its output (to be kept open
/// while it runs, as it goes on printing) and the line with its API address.
fn start_demo(
    data: &std::path::Path,
) -> (std::process::Child, std::io::Lines<BufReader<std::process::ChildStdout>>, String) {
    let mut child = Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(data)
        .args(["--http", "127.0.0.1:0", "--tick-seconds", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("custos demo starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let api_line = lines.by_ref().map_while(Result::ok).find(|l| l.contains("API")).expect("prints the API address");
    (child, lines, api_line)
}

#[test]
fn demo_stops_cleanly_on_sigterm_and_verify_judges_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (mut child, _lines, api_line) = start_demo(&data);
    assert!(api_line.contains("http://127.0.0.1:"), "{api_line}");
    assert!(std::fs::read_to_string(data.join("demo-token")).expect("token file").starts_with("cus_"));

    // Wait (bounded) until the tailed EVE file's position has been committed: data is flowing.
    let until = Instant::now() + Duration::from_secs(60);
    while !data.join("positions.json").exists() {
        assert!(Instant::now() < until, "no source position was committed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // `custos probe`, as a container health check runs it.
    let base =
        api_line.split_whitespace().find(|w| w.starts_with("http://")).expect("url").replace("/api/v1/incidents", "");
    let probe = |path: &str| Command::new(BIN).args(["probe", &format!("{base}{path}")]).output().expect("probe runs");
    let until = Instant::now() + Duration::from_secs(60);
    while !probe("/readyz").status.success() {
        assert!(Instant::now() < until, "the demo never answered ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = probe("/readyz");
    assert!(String::from_utf8_lossy(&ready.stdout).contains(r#""status":"ready""#), "{ready:?}");
    let missing = probe("/nowhere");
    assert_eq!(missing.status.code(), Some(1));
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(said.starts_with(&format!("custos: probe {base}/nowhere: 404 ")), "{said}");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "SIGTERM is a clean stop, got {exit}");
    let gone = probe("/healthz");
    assert_eq!(gone.status.code(), Some(1), "nothing answers after the stop");
    let said = String::from_utf8_lossy(&gone.stderr);
    assert!(said.starts_with(&format!("custos: probe {base}/healthz: ")), "{said}");

    let ledger = data.join("ledger");
    let ok = Command::new(BIN).arg("verify").arg(&ledger).output().expect("verify runs");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(text.starts_with("OK: "), "{text}");
    assert!(!text.contains("not yet signed"), "the final checkpoint covers everything: {text}");

    let vkey = std::fs::read_to_string(ledger.join("keys.vkey")).expect("vkey");
    let pinned = Command::new(BIN).arg("verify").arg(&ledger).args(["--key", vkey.trim()]).status().expect("verify");
    assert!(pinned.success(), "verifies against the pinned key");

    // Search and the archive followed the ledger to its end before the stop,
    // and `reindex` rebuilds both from the ledger alone.
    let size = ledger::for_each_record(&ledger, |_, _| {}).expect("scan");
    let position = || std::fs::read_to_string(data.join("archive/POSITION")).expect("archive position");
    assert_eq!(position(), size.to_string());
    std::fs::remove_file(data.join("archive/POSITION")).expect("remove");
    let out = Command::new(BIN).args(["reindex", "--data-dir"]).arg(&data).output().expect("reindex runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with(&format!("reindexed {size} ledger records")), "{text}");
    assert_eq!(position(), size.to_string());

    // A refused export leaves no file behind, whole or partial.
    let out = Command::new(BIN)
        .args(["evidence", "export", "--data-dir"])
        .arg(&data)
        .args(["--from", "2100-01-01T00:00:00Z", "--to", "2000-01-01T00:00:00Z", "--out"])
        .arg(dir.path().join("refused.tar"))
        .output()
        .expect("export runs");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("from is after to"));
    for name in std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()) {
        let name = name.to_string_lossy();
        assert!(!name.contains("refused") && !name.starts_with(".tmp"), "{name} left behind");
    }
    // An evidence bundle of everything, checked offline from a copy elsewhere.
    let bundle = dir.path().join("evidence.tar");
    let out = Command::new(BIN)
        .args(["evidence", "export", "--data-dir"])
        .arg(&data)
        .args(["--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z", "--out"])
        .arg(&bundle)
        .output()
        .expect("export runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").expect("write");
        assert_eq!(mode(&bundle), mode(&plain), "the bundle is as readable as any file written here");
    }
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let copy = elsewhere.path().join("copy.tar");
    std::fs::copy(&bundle, &copy).expect("copy");
    let ok = Command::new(BIN).arg("verify").arg(&copy).output().expect("verify runs");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success() && text.starts_with("OK: evidence bundle of "),
        "{text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(text.contains("no record before record 0 says what was in force"), "everything from the start: {text}");
    // A PLC's records: the bundle carries what was in force at the first.
    let plc = dir.path().join("plc.tar");
    let out = Command::new(BIN)
        .args(["evidence", "export", "--data-dir"])
        .arg(&data)
        .args(["--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z", "--asset", "PLC-01", "--out"])
        .arg(&plc)
        .output()
        .expect("export runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ok = Command::new(BIN).arg("verify").arg(&plc).output().expect("verify runs");
    let plc_text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{plc_text}{}", String::from_utf8_lossy(&ok.stderr));
    for line in ["in force when record ", "  inventory      ", "  rule files     "] {
        assert!(plc_text.contains(line), "{line:?} in {plc_text}");
    }
    let mut b = std::fs::read(&copy).expect("bundle");
    let at = b.len() / 2;
    b[at] ^= 0x01;
    std::fs::write(&copy, b).expect("write");
    assert_eq!(Command::new(BIN).arg("verify").arg(&copy).status().expect("verify").code(), Some(1));
    // The export itself is in the ledger.
    let verified = Command::new(BIN).arg("verify").arg(&ledger).output().expect("verify");
    assert!(verified.status.success());
    let mut exports = 0;
    ledger::for_each_record(&ledger, |_, r| {
        exports += usize::from(String::from_utf8_lossy(r).contains("evidence.export"))
    })
    .expect("scan");
    assert_eq!(exports, 2, "each export is an audit record");

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
fn probe_refuses_what_it_cannot_ask() {
    for (args, said) in [
        (&["probe", "https://127.0.0.1:8088/readyz"][..], "only http:// URLs are probed"),
        (&["probe", "http://127.0.0.1:8088/readyz", "--timeout-seconds", "0"], "--timeout-seconds: more than 0"),
    ] {
        let out = Command::new(BIN).args(args).output().expect("probe runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(said), "{args:?}: {text}");
    }
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

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/fixtures")
}

fn replay_json(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = Command::new(BIN).arg("replay").arg("--json").args(args).output().expect("replay runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json summary")
}

/// A mixed folder of every format: valid lines all parse, and every invalid
/// line is a dead letter with a named reason.
#[test]
fn replay_reads_every_format_with_named_reasons() {
    let inventory = fixtures().join("inventory.toml");
    let mut formats = 0;
    for dir in
        std::fs::read_dir(fixtures()).expect("fixtures").filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir())
    {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let logs: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        let (bad, good): (Vec<_>, Vec<_>) =
            logs.into_iter().partition(|p| p.file_stem().is_some_and(|s| s.to_string_lossy().starts_with("bad")));
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["--source".as_ref(), name.as_ref(), "--inventory".as_ref(), inventory.as_os_str()];
        args.extend(good.iter().map(|p| p.as_os_str()));
        let s = &replay_json(&args)["summary"];
        assert_eq!(s["dead_letters"], 0, "{name}: valid lines must all parse: {s}");
        assert!(s["parsed"].as_u64() > Some(0), "{name}: {s}");
        if !bad.is_empty() {
            let mut args: Vec<&std::ffi::OsStr> = vec!["--source".as_ref(), name.as_ref()];
            args.extend(bad.iter().map(|p| p.as_os_str()));
            let s = &replay_json(&args)["summary"];
            assert_eq!(s["parsed"], 0, "{name}: {s}");
            let named: u64 =
                s["top_reasons"].as_array().into_iter().flatten().map(|r| r[1].as_u64().unwrap_or(0)).sum();
            assert_eq!(Some(named), s["dead_letters"].as_u64(), "{name}: every dead letter has a reason: {s}");
            assert!(
                s["top_reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|r| r[0].as_str().is_some_and(|t| t.contains(": "))),
                "{s}"
            );
        }
        formats += 1;
    }
    assert!(formats >= 13, "{formats} formats");
}

#[test]
fn replay_into_a_data_dir_ledgers_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let eve = fixtures().join("suricata-eve");
    let s = replay_json(&[
        "--source".as_ref(),
        "suricata-eve".as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        eve.join("records.log").as_os_str(),
        eve.join("bad.log").as_os_str(),
    ]);
    assert_eq!((s["summary"]["parsed"].as_u64(), s["summary"]["dead_letters"].as_u64()), (Some(7), Some(5)));
    let ok = Command::new(BIN).arg("verify").arg(dir.path().join("ledger")).output().expect("verify");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}");
    assert!(text.contains("event       7") && text.contains("deadletter  5"), "{text}");
    let dead = std::fs::read_dir(dir.path().join("deadletter")).expect("dead-letter store").count();
    assert_eq!(dead, 1, "dead letters are also in the dead-letter store");
    let bad = Command::new(BIN).args(["replay", "--source", "nonsense", "x"]).output().expect("replay");
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("suricata-eve"),
        "names the formats"
    );
}

/// `custos rules lint|test`: the shipped pack passes; a bad rule is refused
/// with `file:line`, and a wrong expectation fails with a diff.
#[test]
fn rules_lint_and_test() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().expect("custos rules runs");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let pack = concat!(env!("CARGO_MANIFEST_DIR"), "/../correlate/rules");
    let (code, text) = run(&["rules", "test", pack]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(" 0 failed"), "{text}");

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "title: t\nid: x\nlogsource: {category: physical_access}\ndetection:\n  sel: {door|sometimes: A}\n  condition: sel\n")
        .expect("write");
    let (code, text) = run(&["rules", "lint", dir.path().to_str().unwrap_or_default()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("bad.yml:5: ") && text.contains("|sometimes"), "{text}");

    std::fs::write(&bad, "title: t\nid: x\nlogsource: {category: physical_access}\ndetection:\n  sel: {activity_id: 3}\n  condition: sel\ncustos:\n  examples:\n    - events: [{class_uid: 9001, activity_id: 3}]\n      expect: []\n")
        .expect("write");
    let (code, text) = run(&["rules", "test", dir.path().to_str().unwrap_or_default()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  x") && text.contains(r#"got:      ["x"]"#), "{text}");

    // An edited inventory is checked before a reload, against the rules.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/inventory.example.toml");
    let (code, text) = run(&["rules", "lint", pack, "--inventory", example]);
    assert_eq!((code, text.ends_with(" rules ok\n")), (Some(0), true), "{text}");
    let inventory = dir.path().join("inventory.toml");
    let text = std::fs::read_to_string(example).expect("example inventory");
    std::fs::write(&inventory, text.replacen("zone = \"cell-1\"", "zone = \"cell-9\"", 1)).expect("write");
    let out = Command::new(BIN)
        .args(["rules", "lint", pack, "--inventory", inventory.to_str().unwrap_or_default()])
        .output()
        .expect("custos rules runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("zone: unknown zone \"cell-9\""), "{said}");
}

/// Rewrites every checkpoint note of a ledger, frame by frame, in file order.
fn rewrite_checkpoints(ledger_dir: &std::path::Path, mut f: impl FnMut(String) -> String) -> usize {
    let mut files: Vec<_> = std::fs::read_dir(ledger_dir.join("checkpoints"))
        .expect("checkpoints")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for file in &files {
        let bytes = std::fs::read(file).expect("read");
        let (mut out, mut at) = (Vec::new(), 0);
        while at < bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("length")) as usize;
            let note = f(String::from_utf8(bytes[at + 8..at + 8 + len].to_vec()).expect("utf-8"));
            let new_len = (note.len() as u32).to_le_bytes();
            out.extend_from_slice(&new_len);
            out.extend_from_slice(&crc32c::crc32c_append(crc32c::crc32c(&new_len), note.as_bytes()).to_le_bytes());
            out.extend_from_slice(note.as_bytes());
            at += 8 + len;
        }
        std::fs::write(file, out).expect("write");
    }
    files.len()
}

/// `verify --witness` reads the checkpoint notes file by file and counts the
/// ones a witness cosigned; a cosignature that does not verify fails it.
#[tokio::test]
async fn verify_counts_witness_cosignatures_across_checkpoint_files() {
    use ledger::{Ledger, LedgerOptions, NoteSigner, RecordKind, WitnessSigner, record};
    const ORIGIN: &str = "custos.test/witness";
    let dir = tempfile::tempdir().expect("tempdir");
    let opts =
        LedgerOptions { checkpoint_interval: Duration::ZERO, checkpoint_file_bytes: 700, ..LedgerOptions::default() };
    let (l, _) = Ledger::open(dir.path(), ORIGIN, NoteSigner::generate(ORIGIN).expect("key"), opts).expect("open");
    for i in 0..6 {
        let r = record::encode(RecordKind::Audit, i, &serde_json::json!({"n": i})).expect("record");
        l.append(vec![r]).await.expect("append");
    }
    l.close().await.expect("close");
    drop(l);
    let verify = |witness: &str| {
        let out =
            Command::new(BIN).arg("verify").arg(dir.path()).args(["--witness", witness]).output().expect("verify");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };

    // A witness cosigns every other note, in every checkpoint file.
    let witness = WitnessSigner::from_seed("witness.example", [7u8; 32]);
    let (mut total, mut cosigned) = (0u64, 0);
    let files = rewrite_checkpoints(dir.path(), |note| {
        total += 1;
        if total % 2 == 1 {
            cosigned += 1;
            return witness.cosign(&note, 1_795_000_000 + total).expect("cosign");
        }
        note
    });
    assert!(files >= 2, "the notes rolled into {files} files");
    let (code, text) = verify(&witness.verifier().encode());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("witness witness.example cosigned {cosigned} of {total} checkpoints")), "{text}");

    // A key the witness never used cosigned nothing.
    let stranger = WitnessSigner::from_seed("witness.example", [8u8; 32]).verifier().encode();
    let (code, text) = verify(&stranger);
    assert!(code == Some(0) && text.contains(&format!("cosigned 0 of {total}")), "{text}");

    // The newest cosignature altered: the witness's key no longer verifies it.
    let mut seen = 0;
    rewrite_checkpoints(dir.path(), |note| {
        seen += 1;
        if seen == cosigned * 2 - 1 {
            // A character inside the signature's base64: same length, other bytes.
            let at = note.trim_end().len() - 12;
            let flipped = if &note[at..at + 1] == "A" { "B" } else { "A" };
            return format!("{}{flipped}{}", &note[..at], &note[at + 1..]);
        }
        note
    });
    let (code, text) = verify(&witness.verifier().encode());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAILED") && text.contains("cosignature by witness witness.example does not verify"),
        "{text}"
    );
}

/// `custos user` while Custos runs: an account made on the command line logs
/// in; once disabled, its API token and session end and its password is
/// refused; both changes reach the ledger as `audit` records naming the
/// operating-system user who ran the command.
#[test]
fn accounts_changed_on_the_command_line_are_audited_and_disabling_ends_access() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (mut demo, _lines, api_line) = start_demo(&data);
    let incidents_url = api_line.split_whitespace().find(|w| w.starts_with("http://")).expect("address");
    let base = incidents_url.strip_suffix("/api/v1/incidents").expect("the incidents address");
    let user = |args: &[&str], stdin: &str| {
        let mut c = Command::new(BIN)
            .arg("user")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            // Named from the user id, not from what `$USER` says.
            .env("USER", "someone-else")
            .env_remove("SUDO_USER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("custos user runs");
        std::io::Write::write_all(&mut c.stdin.take().expect("stdin"), stdin.as_bytes()).expect("password");
        c.wait_with_output().expect("custos user ends")
    };
    // (status, body) of a curl call.
    let curl = |args: &[&str]| {
        let out = Command::new("curl").args(["-s", "-w", "\n%{http_code}"]).args(args).output().expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.to_owned(), body.to_owned())
    };
    let login = |password: &str| {
        let body = format!(r#"{{"name":"sam","password":"{password}"}}"#);
        curl(&["-H", "content-type: application/json", "-d", &body, &format!("{base}/api/v1/login")])
    };
    let incidents =
        |token: &str| curl(&["-H", &format!("Authorization: Bearer {token}"), &format!("{base}/api/v1/incidents")]).0;

    let added =
        user(&["add", "sam", "--role", "soc_analyst", "--printed-name", "Sam Okafor"], "a long passphrase for sam\n");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let said = String::from_utf8_lossy(&added.stderr);
    assert!(said.contains("account sam (Sam Okafor, soc_analyst) saved") && said.contains("temporary"), "{said}");
    let bad = user(&["add", "kim", "--role", "SocAnalyst", "--printed-name", "Kim Lee"], "a long passphrase\n");
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && said.contains("--role \"SocAnalyst\": one of admin, soc_analyst,"), "{said}");
    let api_token = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    // The administrator set the password, so sam chooses their own first.
    let (code, body) = login("a long passphrase for sam");
    assert_eq!(code, "200", "{body}");
    let session: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(session["password_change_required"], "temporary", "{session}");
    let session = session["token"].as_str().expect("session token").to_owned();
    assert_eq!((incidents(&api_token), incidents(&session)), ("200".into(), "403".into()));
    let own = r#"{"current_password":"a long passphrase for sam","new_password":"sam's very own passphrase"}"#;
    let bearer = format!("Authorization: Bearer {session}");
    let (code, body) = curl(&["-H", &bearer, "-d", own, &format!("{base}/api/v1/password")]);
    assert_eq!(code, "200", "{body}");
    assert_eq!(incidents(&session), "200", "the same session, now with sam's own password");
    // The access review from the command line, while the service runs.
    let listed = user(&["list"], "");
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    let row = |first: &str| {
        let line = table.lines().find(|l| l.split_whitespace().next() == Some(first));
        line.map(|l| l.split_whitespace().collect::<Vec<_>>()).unwrap_or_default()
    };
    let sam = row("sam");
    assert_eq!(sam.len(), 7, "{table}");
    assert_eq!([&sam[..4], &sam[6..]].concat(), ["sam", "soc_analyst", "Sam", "Okafor", "enabled"], "{table}");
    assert!(sam[4].starts_with("20") && sam[4].ends_with('Z'), "the login's time: {table}");
    assert_eq!(sam[5].len(), "2026-11-28".len(), "the day sam chose a password: {table}");
    // With the service's configuration, the review applies its password ageing.
    let config = dir.path().join("custos.toml");
    let ageing = format!("data_dir = {:?}\n[accounts]\npassword_max_age_days = 90\n", data.display().to_string());
    std::fs::write(&config, ageing).expect("config");
    let aged = user(&["list", "--config", config.to_str().expect("utf-8")], "");
    let aged = String::from_utf8_lossy(&aged.stdout).into_owned();
    assert!(aged.lines().next().is_some_and(|h| h.contains(" PASSWORD   EXPIRES    STATE")), "{aged}");
    let sam_aged = aged.lines().find(|l| l.starts_with("sam ")).map(|l| l.split_whitespace().collect::<Vec<_>>());
    let chosen = ingest::time::parse_rfc3339(&format!("{}T12:00:00Z", sam[5])).expect("a day");
    let due = ingest::time::format_rfc3339(chosen + 90 * 86_400_000)[..10].to_owned();
    assert_eq!(sam_aged.as_ref().map(|r| (r[5], r[6], r[7])), Some((sam[5], due.as_str(), "enabled")), "{aged}");
    let elsewhere = dir.path().join("elsewhere.toml");
    std::fs::write(&elsewhere, "data_dir = \"/var/lib/custos-elsewhere\"\n").expect("config");
    let refused = user(&["list", "--config", elsewhere.to_str().expect("utf-8")], "");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("has data_dir /var/lib/custos-elsewhere, not --data-dir"),
        "{said}"
    );
    let passwd = user(&["passwd", "sam", "--not-temporary"], "set for sam at the console\n");
    assert!(passwd.status.success(), "{}", String::from_utf8_lossy(&passwd.stderr));
    assert!(!String::from_utf8_lossy(&passwd.stderr).contains("temporary"));
    let (code, body) = login("set for sam at the console");
    assert!(code == "200" && !body.contains("password_change_required"), "{body}");
    assert!(!user(&["token", "sam", "--not-temporary"], "").status.success(), "only for add and passwd");
    assert!(!user(&["passwd", "sam", "--token-days", "30"], "x\n").status.success(), "only for add and token");
    assert!(!user(&["token", "sam", "--token-days", "0"], "").status.success(), "at least a day");
    let issued = user(&["token", "sam", "--token-days", "30"], "");
    let said = String::from_utf8_lossy(&issued.stderr);
    assert!(issued.status.success() && said.contains("a new API token for sam until 20"), "{said}");
    let api_token = String::from_utf8_lossy(&issued.stdout).trim().to_owned();
    assert_eq!(incidents(&api_token), "200");
    let listed = String::from_utf8_lossy(&user(&["list"], "").stdout).into_owned();
    let holder = listed.lines().rev().find(|l| l.starts_with("sam ")).unwrap_or_default().to_owned();
    let in_30_days = (std::time::SystemTime::now() + Duration::from_secs(30 * 86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| ingest::time::format_rfc3339(d.as_millis() as i64))
        .expect("time");
    assert!(holder.contains(&in_30_days[..10]), "the day it stops, in the holders' table: {listed}");
    assert!(!table.contains("$argon2") && !table.contains(&api_token), "no secret in the review");

    let disabled = user(&["disable", "sam"], "");
    assert!(disabled.status.success(), "{}", String::from_utf8_lossy(&disabled.stderr));
    assert_eq!((incidents(&api_token), incidents(&session)), ("401".into(), "401".into()), "both ended");
    let (code, body) = login("set for sam at the console");
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("\"disabled\""), "{body}");
    let refused = user(&["token", "sam"], "");
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("disabled"));
    let listed = user(&["list", "--json"], "");
    let review: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("review as JSON");
    let sam = review["accounts"].as_array().and_then(|a| a.iter().find(|a| a["name"] == "sam")).expect("sam");
    assert_eq!((&sam["disabled"], &sam["printed_name"]), (&serde_json::json!(true), &serde_json::json!("Sam Okafor")));
    let holders = review["token_holders"].as_array().expect("holders");
    assert!(holders.iter().all(|h| h["name"] != "sam"), "sam holds no token: {holders:?}");
    assert!(!user(&["list", "sam"], "").status.success(), "list takes no name");

    // The running service ledgers both changes (it looks every 2 s).
    let log_len = std::fs::metadata(data.join("account-changes.jsonl")).expect("change log").len();
    let until = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(data.join("account-changes.ledgered")).ok() != Some(log_len.to_string()) {
        assert!(Instant::now() < until, "the account changes were not ledgered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill").args(["-TERM", &demo.id().to_string()]).status().expect("kill");
    assert!(status.success() && demo.wait().expect("wait").success());
    let mut changes = Vec::new();
    ledger::for_each_record(&data.join("ledger"), |_, r| {
        let r = ledger::record::decode(r).expect("record");
        // Those from the command line (sam's own change through the API is sam's).
        if r.data["action"].as_str().is_some_and(|a| a.starts_with("account")) && r.data["actor"] != "sam" {
            changes.push((r.data["actor"].clone(), r.data["action"].clone(), r.data["details"]["name"].clone()));
        }
    })
    .expect("scan");
    let id = Command::new("id").arg("-un").output().expect("id runs");
    let me = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    let want = |action: &str, name| (serde_json::json!(me), serde_json::json!(action), name);
    let (sam, all) = (serde_json::json!("sam"), serde_json::Value::Null);
    assert_eq!(
        changes,
        [
            want("account.add", sam.clone()),
            want("accounts.read", all.clone()),
            want("accounts.read", all.clone()),
            want("account.password", sam.clone()),
            want("account.token", sam.clone()),
            want("accounts.read", all.clone()),
            want("account.disable", sam),
            want("accounts.read", all)
        ],
        "each change and review once, the refused ones not at all"
    );
}

/// `systemctl reload custos`: a real SIGHUP to `custos run` reloads the
/// inventory, then the rules, each an audit record by "SIGHUP"; a broken
/// inventory is refused and the process goes on.
/// `custos run` as a `Type=notify` unit with `WatchdogSec=` sees it: this
/// test binds the datagram socket systemd would and names it in NOTIFY_SOCKET.
/// Its API address comes from the environment, over the file's.
#[test]
fn run_under_systemd_notifies_and_takes_environment_overrides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("custos.toml");
    let data = dir.path().join("data");
    let file = format!("data_dir = {:?}\n[http]\nlisten = \"192.0.2.1:1\"\n", data.display().to_string());
    std::fs::write(&cfg, file).expect("write");
    let socket = dir.path().join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&socket).expect("bind");
    systemd.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "200000")
        .env("CUSTOS__HTTP__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("custos run");
    let mut heard = Vec::new();
    let mut next = |until: &str| loop {
        let mut buf = [0u8; 512];
        let len = systemd.recv(&mut buf).unwrap_or_else(|e| panic!("no {until:?} from custos: {e}; heard {heard:?}"));
        let notice = String::from_utf8_lossy(&buf[..len]).into_owned();
        heard.push(notice.clone());
        if notice.starts_with(until) {
            return notice;
        }
    };
    let ready = next("READY=1\n");
    assert!(ready.contains("\nSTATUS=serving: ledger of ") && ready.contains(", API on 127.0.0.1:"), "{ready}");
    assert!(ready.contains(&format!("\nMAINPID={}\n", child.id())), "{ready}");
    next("WATCHDOG=1\n");
    next("WATCHDOG=1\n");
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill").success());
    let stopping = next("STOPPING=1\n");
    assert_eq!(stopping, "STOPPING=1\nSTATUS=draining the pipeline into the ledger\n");
    assert!(child.wait().expect("wait").success(), "a clean stop");
    // The configuration in force names the variable that overrode the file.
    let mut stated = Vec::new();
    ledger::for_each_record(&data.join("ledger"), |_, r| {
        let r = ledger::record::decode(r).expect("record");
        if r.data["action"] == "config.change" {
            stated.push(r.data["details"]["environment"].clone());
        }
    })
    .expect("scan");
    assert_eq!(stated, [serde_json::json!(["CUSTOS__HTTP__LISTEN"])]);

    // A bad override fails the start, naming the variable.
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("CUSTOS__HTTP__LISEN", "127.0.0.1:0")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("environment CUSTOS__HTTP__LISEN: unknown field `lisen`"), "{err}");
    // Without the override, the file's address cannot be opened: the key is named.
    let out = Command::new(BIN).args(["run", "--config"]).arg(&cfg).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[http] listen = 192.0.2.1:1: "), "{err}");
}

#[test]
fn sighup_reloads_the_inventory_and_the_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let inventory = dir.path().join("inventory.toml");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/inventory.example.toml");
    std::fs::copy(example, &inventory).expect("copy");
    let cfg = dir.path().join("custos.toml");
    let toml = format!(
        "data_dir = {:?}\ninventory = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n",
        data.display().to_string(),
        inventory.display().to_string()
    );
    std::fs::write(&cfg, toml).expect("write");
    let log = dir.path().join("log");
    let out = std::fs::File::create(&log).expect("log");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("custos run");
    let wait_for = |what: &str, seen: &dyn Fn() -> bool| {
        let until = Instant::now() + Duration::from_secs(60);
        while !seen() {
            assert!(Instant::now() < until, "{what}: {}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let logged =
        |text: &str, times: usize| std::fs::read_to_string(&log).unwrap_or_default().matches(text).count() >= times;
    // Written once the start is ledgered, after the SIGHUP handler is in place.
    wait_for("no start", &|| data.join("in-force.json").exists());
    let hup =
        || assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().expect("kill").success());

    std::fs::write(&inventory, std::fs::read_to_string(example).expect("example") + "\n# CHG-42 opened\n")
        .expect("write");
    hup();
    wait_for("no rule reload after the first SIGHUP", &|| logged("rules reloaded", 1));
    std::fs::write(&inventory, "[[zones]\n").expect("write");
    hup();
    wait_for("no rule reload after the second SIGHUP", &|| logged("rules reloaded", 2));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill").success());
    assert!(child.wait().expect("wait").success(), "{}", std::fs::read_to_string(&log).unwrap_or_default());

    let mut reloads: Vec<serde_json::Value> = Vec::new();
    ledger::for_each_record(&data.join("ledger"), |_, bytes| {
        if let Ok(r) = ledger::record::decode(bytes)
            && r.data["actor"] == "SIGHUP"
        {
            reloads.push(r.data);
        }
    })
    .expect("ledger reads");
    let actions: Vec<&str> = reloads.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(actions, ["inventory.reload", "rules.reload", "inventory.reload.refused", "rules.reload"]);
    assert_eq!(reloads[0]["details"]["changed"], true, "the edited inventory");
    assert!(reloads[0]["details"]["text"].as_str().is_some_and(|t| t.ends_with("# CHG-42 opened\n")));
    assert!(reloads[2]["details"]["errors"][0].as_str().is_some_and(|e| e.contains("TOML")), "{}", reloads[2]);
    assert_eq!((&reloads[1]["details"]["changes"], &reloads[3]["details"]["changes"]), (&Value::Null, &Value::Null));
}
