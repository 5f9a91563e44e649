//! Reloads while Custos runs. Rules: a bad set is refused with `file:line`
//! messages (the engine keeps its rules); a good set replaces them. The
//! inventory: a change ticket quiets the next PLC change, enrichment knows
//! a person added, a bad file is refused naming the key. Each is an `audit`
//! record naming who asked, with what changed. What is in force (inventory,
//! rule files, configuration) is ledgered at each start that finds it changed.

use custos::config::Config;
use custos::demo::http_request;
use custos::pipeline::Custos;
use custos::reload::{ReloadError, Reloaded};
use serde_json::Value;

const GOOD: &str = "title: door forced\nid: test-door-forced\nlevel: high\nlogsource: {category: physical_access}\ndetection:\n  sel: {activity_id: 3}\n  condition: sel\n";
const BAD: &str = "title: broken\nid: test-broken\nlogsource: {category: physical_access}\ndetection:\n  sel: {door|sometimes: x}\n  condition: sel\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_and_good_ones_replace_the_running_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("mkdir");
    std::fs::write(rules.join("door.yml"), GOOD).expect("write");
    let mut cfg = Config::with_data_dir(dir.path().join("data"));
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.correlate.rules_dir = Some(rules.clone());
    let c = Custos::start(cfg).await.expect("starts with the rule directory");

    std::fs::write(rules.join("broken.yml"), BAD).expect("write");
    let Err(ReloadError::Refused(errors)) = c.reload.rules("tester").await else { panic!("a bad rule is refused") };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("broken.yml:5: ") && errors[0].contains("|sometimes"), "{errors:?}");

    std::fs::remove_file(rules.join("broken.yml")).expect("rm");
    std::fs::write(rules.join("more.yml"), GOOD.replace("test-door-forced", "test-door-forced-2")).expect("write");
    assert_eq!(c.reload.rules("tester").await, Ok(Reloaded { rules: 2, changed: true }));
    assert_eq!(c.reload.rules("tester").await, Ok(Reloaded { rules: 2, changed: false }), "the same files again");

    let ledger = c.data_dir.join("ledger");
    c.shutdown().await.expect("clean shutdown");
    let audits = audit_records(&ledger, 0);
    let reloads: Vec<&Value> =
        audits.iter().filter(|a| a["action"].as_str().is_some_and(|a| a.starts_with("rules.reload"))).collect();
    assert_eq!(reloads.len(), 3, "{audits:?}");
    assert_eq!(reloads[2]["details"]["changes"], Value::Null, "nothing changed");
    assert_eq!(reloads[0]["action"], "rules.reload.refused");
    assert_eq!((&reloads[1]["action"], &reloads[1]["actor"]), (&Value::from("rules.reload"), &Value::from("tester")));
    let changes = &reloads[1]["details"]["changes"];
    assert_eq!(changes["added"][0]["path"], rules.join("more.yml").display().to_string(), "{changes}");
    assert!(changes["added"][0]["text"].as_str().is_some_and(|t| t.contains("test-door-forced-2")), "{changes}");
    assert_eq!(
        (changes["changed"].as_array().map(Vec::len), changes["removed"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );

    // The first start stated what it ran with: no inventory, door.yml.
    let first: Vec<&Value> =
        audits.iter().filter(|a| a["action"] == "inventory.change" || a["action"] == "rules.change").collect();
    assert_eq!(first.len(), 2, "{audits:?}");
    assert_eq!(
        (&first[0]["details"]["sha256"], &first[0]["reason"]),
        (&Value::Null, &Value::from("found at start: no earlier record of what was in force"))
    );
    assert_eq!(first[1]["details"]["added"][0]["text"], GOOD);
    let start = audits.iter().find(|a| a["action"] == "service.start").expect("start");
    assert_eq!(start["details"]["in_force"]["rules"].as_object().map(|r| r.len()), Some(1));

    // Restarted with an inventory and door.yml edited: both changes are
    // ledgered with their text; the reload's more.yml is not news.
    let inventory = dir.path().join("inventory.toml");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/inventory.example.toml"))
            .expect("example inventory");
    std::fs::write(&inventory, &example).expect("write");
    std::fs::write(rules.join("door.yml"), GOOD.replace("level: high", "level: critical")).expect("write");
    let mut cfg = Config::with_data_dir(dir.path().join("data"));
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.correlate.rules_dir = Some(rules.clone());
    cfg.inventory = Some(inventory.clone());
    let before = ledger::verify_dir(&ledger, None).expect("verifies").records;
    Custos::start(cfg.clone()).await.expect("restarts").shutdown().await.expect("clean shutdown");
    let second: Vec<Value> = audit_records(&ledger, before);
    let actions: Vec<&str> = second.iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(actions, ["service.start", "inventory.change", "rules.change", "service.stop"], "{second:?}");
    assert_eq!(second[1]["details"]["text"], example);
    assert_eq!(second[1]["details"]["path"], inventory.display().to_string());
    assert_eq!(second[1]["reason"], "found at start: differs from what was in force at the previous start");
    let changed = &second[2]["details"]["changed"];
    assert_eq!(changed.as_array().map(Vec::len), Some(1), "{changed}");
    assert!(changed[0]["text"].as_str().is_some_and(|t| t.contains("level: critical")), "{changed}");
    assert_eq!(second[2]["details"]["added"], serde_json::json!([]));

    // Restarted as it was: nothing is news.
    let before = ledger::verify_dir(&ledger, None).expect("verifies").records;
    Custos::start(cfg).await.expect("restarts").shutdown().await.expect("clean shutdown");
    let third: Vec<Value> = audit_records(&ledger, before);
    let actions: Vec<&str> = third.iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(actions, ["service.start", "service.stop"]);
}

const INVENTORY: &str = r#"
[[zones]]
id = "cell-1"
[[people]]
id = "bob"
badges = ["2002"]
[[assets]]
id = "PLC-01"
kind = "plc"
zone = "cell-1"
[[doors]]
id = "CR-DOOR-1"
area = "control-room"
zone = "cell-1"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_reloads_while_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(&inventory, INVENTORY).expect("write");
    let mut cfg = Config::with_data_dir(dir.path().join("data"));
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.inventory = Some(inventory.clone());
    for (name, format) in [("badge", ingest::Format::BadgeJson), ("plc", ingest::Format::PlcBackup)] {
        cfg.sources.http.push(custos::config::HttpPushConfig { name: name.into(), format });
    }
    let c = Custos::start(cfg.clone()).await.expect("starts");
    let addr = c.http_addr.expect("api");
    let token = c.tokens.issue("collector", custos::auth::Role::Collector).expect("token");
    let now = ingest::source::now_millis();
    let at = ingest::time::format_rfc3339(now);
    let push = async |source: &str, body: String| {
        let uri = format!("/api/v1/ingest/{source}");
        let (status, answer) =
            http_request(addr, "POST", &uri, Some(&token), Some(body.as_bytes())).await.expect("push");
        assert_eq!(status, 202, "{answer}");
    };
    let plc_change = |backup: &str| {
        format!(
            r#"{{"asset":"PLC-01","backup":"{backup}","time":"{at}","compared_with":"released","result":"different","changed_files":["OB1"]}}"#
        )
    };
    let badge = |badge: &str| format!(r#"{{"time":"{at}","badge":"{badge}","door":"CR-DOOR-1","result":"granted"}}"#);
    // The person enrichment gave the newest read of `badge`, once there is
    // one. Events are taken in order, so all pushed before it are correlated.
    let person_of = async |badge: &str, reads: usize| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let credential =
                |e: &ingest::Event| e.actor.as_ref().and_then(|a| a.credential_uid.as_deref()) == Some(badge);
            let read = c.views.events(1000, credential);
            if read.len() >= reads {
                return read[0].item.actor.as_ref().and_then(|a| a.person.as_deref().map(str::to_owned));
            }
            assert!(std::time::Instant::now() < until, "read {reads} of badge {badge} did not arrive");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let plc_alerts = || c.views.alerts(1000).iter().filter(|a| a.item.rule == "plc-change-outside-window").count();

    push("plc", plc_change("b1")).await;
    push("badge", badge("3003")).await;
    assert_eq!(person_of("3003", 1).await, None, "nobody has badge 3003 yet");
    assert_eq!(plc_alerts(), 1, "no ticket covers PLC-01");

    // Change management opens a ticket for PLC-01; carol joins with badge 3003.
    let (start, end) = (ingest::time::format_rfc3339(now - 3_600_000), ingest::time::format_rfc3339(now + 3_600_000));
    let reloaded = format!(
        "{INVENTORY}[[people]]\nid = \"carol\"\nbadges = [\"3003\"]\n[[change_tickets]]\nid = \"CHG-1\"\nassets = [\"PLC-01\"]\nstate = \"open\"\nstart = \"{start}\"\nend = \"{end}\"\n"
    );
    std::fs::write(&inventory, &reloaded).expect("write");
    let before_reload = ingest::source::now_millis();
    let answer = c.reload.inventory("tester").await.expect("reloads");
    assert!(answer.changed && answer.rules > 0, "{answer:?}");
    // The API says what is in force now, and what was before the reload.
    let admin = c.tokens.issue("admin", custos::auth::Role::Admin).expect("token");
    let in_force = async |query: &str| -> Value {
        let (status, body) =
            http_request(addr, "GET", &format!("/api/v1/in-force{query}"), Some(&admin), None).await.expect("get");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("json")
    };
    let in_force_now = in_force("").await;
    assert_eq!(in_force_now["inventory"]["sha256"], custos::in_force::sha256(reloaded.as_bytes()));
    assert_eq!(
        (&in_force_now["changes"][0]["action"], &in_force_now["changes"][0]["actor"]),
        (&Value::from("inventory.reload"), &Value::from("tester"))
    );
    let then = in_force(&format!("?at={}", ingest::time::format_rfc3339(before_reload - 1))).await;
    assert_eq!(then["inventory"]["sha256"], custos::in_force::sha256(INVENTORY.as_bytes()));
    assert_eq!(then["rules"], in_force_now["rules"], "the reload kept the rules");
    push("plc", plc_change("b2")).await;
    push("badge", badge("3003")).await;
    assert_eq!(person_of("3003", 2).await.as_deref(), Some("carol"), "enrichment has the reloaded inventory");
    assert_eq!(plc_alerts(), 1, "CHG-1 covers the second change");

    // A bad file is refused naming the key; the running inventory stays.
    let bad = INVENTORY.replace("zone = \"cell-1\"\n[[doors]]", "zone = \"cell-9\"\n[[doors]]");
    std::fs::write(&inventory, bad).expect("write");
    let Err(ReloadError::Refused(errors)) = c.reload.inventory("tester").await else { panic!("refused") };
    assert!(errors.len() == 1 && errors[0].contains("assets[0].zone") && errors[0].contains("cell-9"), "{errors:?}");
    std::fs::write(&inventory, &reloaded).expect("write");
    assert!(!c.reload.inventory("tester").await.expect("reloads").changed, "the same file again");

    // An evidence bundle of PLC-01's records carries what was in force at
    // its first (the inventory and rules the start found) and the reload
    // that changed it before its last, which the asset's selection alone
    // would not choose.
    let reviewer = c.tokens.issue("qa", custos::auth::Role::QualityReviewer).expect("token");
    let selection = format!(
        r#"{{"from":"{}","to":"{}","asset":"PLC-01","reason":"CHG-1 review"}}"#,
        ingest::time::format_rfc3339(now - 60_000),
        ingest::time::format_rfc3339(now + 3_600_000)
    );
    let bundle = crate::common::poll("no evidence bundle", std::time::Duration::from_secs(30), async || {
        let (status, body) =
            http_request(addr, "POST", "/api/v1/evidence/exports", Some(&reviewer), Some(selection.as_bytes()))
                .await
                .map_err(|e| e.to_string())?;
        // 409 until a checkpoint covers the newest records (one a second).
        if status == 200 { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await;
    ledger::verify_bundle(bundle.as_bytes(), None).expect("the bundle verifies");
    let file = |name: &str| {
        let mut tar = tar::Archive::new(bundle.as_bytes());
        let mut entry = tar
            .entries()
            .expect("tar")
            .map(|e| e.expect("entry"))
            .find(|e| e.path().is_ok_and(|p| p.as_os_str() == name))
            .expect(name);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).expect("read");
        text
    };
    let in_force: Value = serde_json::from_str::<Value>(&file("selection.json")).expect("json")["in_force"].clone();
    assert_eq!(in_force["inventory"]["sha256"], custos::in_force::sha256(INVENTORY.as_bytes()), "{in_force}");
    assert!(in_force["rules"].as_array().is_some_and(|r| r.len() > 10), "the built-in rule files: {in_force}");
    let records: Vec<Value> =
        file("records.jsonl").lines().map(|l| serde_json::from_str(l).expect("record line")).collect();
    let record = |index: &Value| {
        let line = records.iter().find(|r| r["index"] == *index).expect("the record is in the bundle");
        serde_json::from_str::<Value>(line["record_text"].as_str().expect("text")).expect("record")["data"].clone()
    };
    let stated_inventory = record(&in_force["inventory"]["record"]);
    assert_eq!(
        (&stated_inventory["action"], &stated_inventory["details"]["text"]),
        (&Value::from("inventory.change"), &Value::from(INVENTORY))
    );
    let changes: Vec<Value> = records
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r["record_text"].as_str().expect("text")).expect("record")["data"].clone()
        })
        .filter(|d| d["action"] == "inventory.reload")
        .collect();
    assert_eq!(changes.len(), 1, "the reload that changed the inventory, not the one that did not");
    assert_eq!(changes[0]["details"]["text"], reloaded.as_str());
    assert_eq!(file("report.html").matches("<td>changed what was in force</td>").count(), 1);

    let ledger = c.data_dir.join("ledger");
    let c_data = c.data_dir.clone();
    c.shutdown().await.expect("clean shutdown");
    let audits = audit_records(&ledger, 0);
    let reloads: Vec<&Value> =
        audits.iter().filter(|a| a["action"].as_str().is_some_and(|a| a.starts_with("inventory.reload"))).collect();
    let actions: Vec<&str> = reloads.iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(actions, ["inventory.reload", "inventory.reload.refused", "inventory.reload"]);
    let first = &reloads[0]["details"];
    assert_eq!((&first["text"], &first["changed"]), (&Value::from(reloaded.as_str()), &Value::from(true)));
    assert_eq!(
        (&reloads[0]["actor"], &first["was_sha256"]),
        (&Value::from("tester"), &Value::from(custos::in_force::sha256(INVENTORY.as_bytes())))
    );
    assert!(reloads[1]["details"]["errors"][0].as_str().is_some_and(|e| e.contains("cell-9")), "{:?}", reloads[1]);
    assert_eq!(
        (&reloads[2]["details"]["changed"], &reloads[2]["details"]["text"]),
        (&Value::from(false), &Value::Null)
    );

    // The reload is what is in force now: a restart finds nothing new, and
    // none either when in-force.json was lost (it is rebuilt from the ledger).
    let kept = std::fs::read_to_string(c_data.join("in-force.json")).expect("in-force.json");
    std::fs::remove_file(c_data.join("in-force.json")).expect("rm");
    let before = ledger::verify_dir(&ledger, None).expect("verifies").records;
    Custos::start(cfg).await.expect("restarts").shutdown().await.expect("clean shutdown");
    let after = audit_records(&ledger, before);
    let actions: Vec<&str> = after.iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(actions, ["service.start", "service.stop"]);
    let rebuilt = std::fs::read_to_string(c_data.join("in-force.json")).expect("rebuilt");
    assert_eq!(serde_json::from_str::<Value>(&rebuilt).ok(), serde_json::from_str::<Value>(&kept).ok());
}

/// The data of every `audit` record from ledger index `from` on.
fn audit_records(ledger: &std::path::Path, from: u64) -> Vec<Value> {
    let mut audits = Vec::new();
    ledger::for_each_record(ledger, |index, bytes| {
        if index < from {
            return;
        }
        if let Ok(r) = ledger::record::decode(bytes)
            && r.kind == ledger::RecordKind::Audit
        {
            audits.push(r.data);
        }
    })
    .expect("ledger reads");
    audits
}

/// A rule (or inventory) that changed since events were decided does not
/// decide them again: a restart's replay, which runs the rules in force now
/// over the whole ledger, raises no alert for events before the change — at
/// a start that finds new rules, or after a reload that a later restart
/// replays — and events after it are decided by the new rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_rules_do_not_decide_earlier_events_again() {
    let rule = |id: &str, door: &str| {
        format!(
            "title: granted at a door\nid: {id}\nlevel: low\nlogsource: {{category: physical_access}}\ndetection:\n  sel: {{activity_id: 1, door: {door}}}\n  condition: sel\n"
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("mkdir");
    std::fs::write(rules.join("x.yml"), rule("test-x", "NO-SUCH-DOOR")).expect("write");
    let mut cfg = Config::with_data_dir(dir.path().join("data"));
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.correlate.rules_dir = Some(rules.clone());
    cfg.sources.http.push(custos::config::HttpPushConfig { name: "badge".into(), format: ingest::Format::BadgeJson });
    let ledger = cfg.data_dir.join("ledger");
    // Pushes one granted read at CR-DOOR-1 and waits until it is correlated.
    let read = async |c: &Custos, n: usize| {
        let addr = c.http_addr.expect("api");
        let token = c.tokens.issue("collector", custos::auth::Role::Collector).expect("token");
        let at = ingest::time::format_rfc3339(ingest::source::now_millis());
        let body = format!(r#"{{"time":"{at}","badge":"2002","door":"CR-DOOR-1","result":"granted"}}"#);
        let (status, answer) = http_request(addr, "POST", "/api/v1/ingest/badge", Some(&token), Some(body.as_bytes()))
            .await
            .expect("push");
        assert_eq!(status, 202, "{answer}");
        crate::common::poll("the read was not correlated", std::time::Duration::from_secs(30), async || {
            let seen = c.views.events(1000, |_| true).len();
            if seen >= n { Ok(()) } else { Err(format!("{seen} events")) }
        })
        .await;
    };
    let alerts = |rule: &str| {
        let mut n = 0;
        ledger::for_each_record(&ledger, |_, bytes| {
            if let Ok(r) = ledger::record::decode(bytes) {
                n += usize::from(r.kind == ledger::RecordKind::Alert && r.data["rule"] == rule);
            }
        })
        .expect("ledger reads");
        n
    };

    let c = Custos::start(cfg.clone()).await.expect("starts");
    for n in 1..=3 {
        read(&c, n).await;
    }
    c.shutdown().await.expect("clean shutdown");
    assert_eq!(alerts("test-x"), 0);

    // x now matches those three reads: the start records the change and
    // raises nothing for them; a new read is decided by it.
    std::fs::write(rules.join("x.yml"), rule("test-x", "CR-DOOR-1")).expect("write");
    let c = Custos::start(cfg.clone()).await.expect("restarts");
    read(&c, 4).await;
    let reloaded = {
        // y, reloaded while running, matches every read so far.
        std::fs::write(rules.join("y.yml"), rule("test-y", "CR-DOOR-1")).expect("write");
        c.reload.rules("tester").await.expect("reloads")
    };
    assert!(reloaded.changed);
    read(&c, 5).await;
    c.shutdown().await.expect("clean shutdown");
    assert_eq!((alerts("test-x"), alerts("test-y")), (2, 1), "x: reads 4 and 5; y: read 5");

    // Without the state snapshots a restart replays everything with x and
    // y, which now match all five reads: still nothing is raised again.
    std::fs::remove_dir_all(cfg.data_dir.join("state")).expect("rm state");
    Custos::start(cfg).await.expect("restarts").shutdown().await.expect("clean shutdown");
    assert_eq!((alerts("test-x"), alerts("test-y")), (2, 1));
}
