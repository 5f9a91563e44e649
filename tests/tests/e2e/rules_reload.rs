//! Rules reload while Custos runs: a bad set is refused with `file:line`
//! messages (the engine keeps its rules); a good set replaces them. Both are
//! `audit` records naming who asked.

use custos::config::Config;
use custos::pipeline::Custos;

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
    let mut actions = Vec::new();
    ledger::for_each_record(&ledger, |_, bytes| {
        if let Ok(r) = ledger::record::decode(bytes)
            && r.kind == ledger::RecordKind::Audit
        {
            actions.push((r.data["action"].as_str().unwrap_or_default().to_owned(), r.data["actor"].clone()));
        }
    })
    .expect("ledger reads");
    let reloads: Vec<&(String, serde_json::Value)> = actions.iter().filter(|(a, _)| a.starts_with("rules.")).collect();
    assert_eq!(reloads.len(), 2, "{actions:?}");
    assert_eq!(reloads[0].0, "rules.reload.refused");
    assert_eq!(reloads[1].0, "rules.reload");
    assert_eq!(reloads[1].1, "tester");
}
