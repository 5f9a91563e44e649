//! Rules reload while Custos runs: a bad set is refused with `file:line`
//! messages (the engine keeps its rules); a good set replaces them. Both are
//! `audit` records naming who asked. What is in force (inventory, rule
//! files, configuration) is ledgered at each start that finds it changed.

use custos::config::Config;
use custos::pipeline::Custos;
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
    let errors = c.rules.reload("tester").await.expect_err("a bad rule is refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("broken.yml:5: ") && errors[0].contains("|sometimes"), "{errors:?}");

    std::fs::remove_file(rules.join("broken.yml")).expect("rm");
    std::fs::write(rules.join("more.yml"), GOOD.replace("test-door-forced", "test-door-forced-2")).expect("write");
    assert_eq!(c.rules.reload("tester").await, Ok(2));

    let ledger = c.data_dir.join("ledger");
    c.shutdown().await.expect("clean shutdown");
    let audits = audit_records(&ledger, 0);
    let reloads: Vec<&Value> =
        audits.iter().filter(|a| a["action"].as_str().is_some_and(|a| a.starts_with("rules.reload"))).collect();
    assert_eq!(reloads.len(), 2, "{audits:?}");
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
