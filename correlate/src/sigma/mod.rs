//! Sigma rules: detection rules compiled to matchers over the event contract,
//! and Sigma correlation rules (`event_count`, `value_count`, `temporal`,
//! `temporal_ordered`) evaluated on event time.
//!
//! Why not an existing Sigma crate: `rsigma-eval` was evaluated; its releases
//! need rustc ≥ 1.96 (and tree-sitter through its YAML locator, rustc 1.97),
//! and it matches JSON values, so every event would be turned into a JSON
//! tree first. Matching the contract's fields directly keeps detection cheap.

pub mod builtin;
mod correlation;
mod detection;
mod examples;
pub mod fields;
mod presence;
mod rule;

pub use correlation::{Correlator, CorrelatorState, SigmaHit};
pub use detection::Placeholders;
pub use examples::{ExampleResult, example_event, run_examples};
pub use presence::{EntryWithoutBadge, OnSite, Place, UnidentifiedEntry};
pub use rule::{Example, RuleFile, RuleSet, SigmaRule, load_dir, parse_file, placeholders};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const INVENTORY: &str = include_str!("../../../deploy/config/inventory.example.toml");

    /// Placeholders with no values (no vendors, no HMIs yet) must not stop the pack.
    #[test]
    fn builtin_pack_compiles_against_an_empty_inventory() {
        let inv = ingest::Inventory::from_toml("").expect("empty inventory");
        let set = builtin::rules(&placeholders(&inv)).expect("compiles");
        assert!(set.rules.len() >= 20, "{}", set.rules.len());
        // `generate: [..]` keeps only the named building block alerting.
        let alerts = |id: &str| set.rules.iter().find(|r| r.id == id).map(|r| r.alerts);
        assert_eq!(alerts("custos-program-transfer-on-wire"), Some(true));
        assert_eq!(alerts("custos-plc-program-changed"), Some(false));
        assert_eq!(alerts("custos-badge-denied"), Some(false));
    }

    #[test]
    fn every_builtin_rule_passes_its_examples() {
        let inv = ingest::Inventory::from_toml(INVENTORY).expect("inventory");
        let set = Arc::new(builtin::rules(&placeholders(&inv)).expect("built-in rules compile"));
        let results = run_examples(&set, Some(&Arc::new(inv)));
        assert!(results.len() >= set.rules.iter().filter(|r| r.alerts || r.correlation.is_some()).count());
        let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
        assert!(failed.is_empty(), "{failed:#?}");
    }
}

#[cfg(test)]
mod event_time {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    const RULES: &str = "title: d\nid: d\nname: denied\nlogsource: {category: physical_access}\ndetection: {sel: {activity_id: 2}, condition: sel}\n---\ntitle: l\nid: l\nname: logon\nlogsource: {category: authentication}\ndetection: {sel: {activity_id: 1}, condition: sel}\n---\ntitle: count\nid: count\ncorrelation: {type: event_count, rules: [denied], group-by: [actor.person], timespan: 1m, condition: {gte: 3}}\n---\ntitle: values\nid: values\ncorrelation: {type: value_count, rules: [denied], group-by: [actor.person], timespan: 2m, condition: {gte: 2, field: door}}\n---\ntitle: ordered\nid: ordered\ncorrelation: {type: temporal_ordered, rules: [denied, logon], group-by: [actor.person], timespan: 1m}\n---\ntitle: both\nid: both\ncorrelation: {type: temporal, rules: [logon, denied], group-by: [actor.person], timespan: 30s}\n---\ntitle: no logon after a denial\nid: absent-after\ncustos: {absence: {rule: denied, missing: logon, within: 1m, group-by: [actor.person]}}\n---\ntitle: a logon without a denial before\nid: absent-before\ncustos: {absence: {rule: logon, missing: denied, within: 1m, direction: before, group-by: [actor.person]}}\n---\ntitle: a denial alone\nid: absent-around\ncustos: {absence: {rule: denied, missing: logon, within: 20s, direction: around, group-by: [actor.person]}}\n---\ntitle: a logon by someone not on site\nid: logon-off-site\nlogsource: {category: authentication}\ndetection: {sel: {activity_id: 1}, condition: sel}\ncustos: {presence: {person: actor.person, must_be: off_site}}\n---\ntitle: a lone denial\nid: few\ncorrelation: {type: event_count, rules: [denied], group-by: [actor.person], timespan: 30s, condition: {lt: 2}}\n---\ntitle: exactly three denials\nid: three\ncorrelation: {type: event_count, rules: [denied], group-by: [actor.person], timespan: 30s, condition: {eq: 3}}\n";

    fn events(spec: &[(u8, u8, u8, u16)]) -> Vec<(u64, ingest::Event)> {
        spec.iter()
            .enumerate()
            .filter_map(|(i, (kind, person, door, secs))| {
                let (class, activity) = match kind {
                    0 => (9001, 2),
                    1 => (3002, 1),
                    _ => (9001, 1),
                };
                let v = serde_json::json!({
                    "class_uid": class, "activity_id": activity, "time": 1_795_687_200_000i64 + i64::from(*secs) * 1000,
                    "actor": {"person": format!("p{person}")}, "door": format!("door{door}"),
                });
                example_event(&v, i).ok().map(|e| (i as u64, e))
            })
            .collect()
    }

    fn alerts(set: &Arc<RuleSet>, input: &[(u64, ingest::Event)]) -> Vec<(String, Vec<u64>)> {
        let mut c = Correlator::new(set.clone(), 1_000);
        let mut hits = Vec::new();
        for (i, e) in input {
            c.on_event(*i, e, &mut hits);
        }
        c.advance(i64::MAX, &mut hits);
        let mut out: Vec<_> = hits.into_iter().map(|h| (set.rules[h.rule].id.clone(), h.events)).collect();
        out.sort();
        out
    }

    proptest! {
        /// Any arrival order gives the same alerts (the watermark only passes
        /// after all have arrived, as within the allowed lateness).
        #[test]
        fn arrival_order_does_not_change_alerts(
            spec in proptest::collection::vec((0u8..3, 0u8..3, 0u8..3, 0u16..300), 1..40),
            seed in any::<u64>(),
        ) {
            let file = parse_file(std::path::Path::new("p.yml"), RULES).map_err(TestCaseError::fail)?;
            let set = Arc::new(RuleSet::compile(&[file], &Placeholders::new()).map_err(|e| TestCaseError::fail(e.join("; ")))?);
            let input = events(&spec);
            let mut shuffled = input.clone();
            // Deterministic shuffle from the seed (Fisher–Yates with an LCG).
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(alerts(&set, &input), alerts(&set, &shuffled));
        }
    }

    /// A rule holds at most `max_keys` groups; the longest idle go first and
    /// are counted.
    #[test]
    fn groups_are_bounded_per_rule() {
        let text = "title: d\nid: d\nname: denied\nlogsource: {category: physical_access}\ndetection: {sel: {activity_id: 2}, condition: sel}\n---\ntitle: count\nid: count\ncorrelation: {type: event_count, rules: [denied], group-by: [actor.person], timespan: 1h, condition: {gte: 3}}\n";
        let file = parse_file(std::path::Path::new("b.yml"), text).expect("parses");
        let set = Arc::new(RuleSet::compile(&[file], &Placeholders::new()).expect("compiles"));
        let mut c = Correlator::new(set, 2);
        let mut hits = Vec::new();
        for (i, e) in events(&(0..10u8).map(|p| (0, p, 0, u16::from(p))).collect::<Vec<_>>()) {
            c.on_event(i, &e, &mut hits);
        }
        c.advance(1_795_687_200_000 + 20_000, &mut hits);
        assert!(c.keys() <= 2, "{} groups", c.keys());
        assert_eq!(c.evicted(), 8, "ten people, room for two");
    }

    #[test]
    fn each_correlation_type_fires() {
        let file = parse_file(std::path::Path::new("p.yml"), RULES).expect("parses");
        let set = Arc::new(RuleSet::compile(&[file], &Placeholders::new()).expect("compiles"));
        // p0: denied at door0 (t0), door1 (t10), door0 (t20) → count and values; logon at t25 → ordered and both.
        let got = alerts(&set, &events(&[(0, 0, 0, 0), (0, 0, 1, 10), (0, 0, 0, 20), (1, 0, 0, 25)]));
        let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        // The first denial (t0) has no logon within 20 s either side; the later ones do.
        assert_eq!(ids, ["absent-around", "both", "count", "logon-off-site", "ordered", "three", "values"], "{got:?}");
        assert_eq!(got[5].1, [0, 1, 2], "counted over the window the first denial opened");
        assert_eq!(got[0].1, [0]);
        assert_eq!(got[2].1, [0, 1, 2]);
        // A logon before any denial: not ordered, and too far apart for `both`;
        // the logon had no denial before it, the denial no logon after it, and
        // the denial no logon within 20 s either side.
        let got = alerts(&set, &events(&[(1, 1, 0, 0), (0, 1, 0, 50)]));
        let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["absent-after", "absent-around", "absent-before", "few", "logon-off-site"], "{got:?}");
        assert_eq!((got[0].1.as_slice(), got[2].1.as_slice()), (&[1u64][..], &[0u64][..]));
        // A logon 20 s after the denial: present at the span's very end.
        let got = alerts(&set, &events(&[(0, 2, 0, 0), (1, 2, 0, 20)]));
        let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["both", "few", "logon-off-site", "ordered"], "{got:?}");
        // Badged in first (the badge event arriving after the logon): on site.
        let got = alerts(&set, &events(&[(1, 2, 0, 10), (2, 2, 0, 0)]));
        let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["absent-before"], "{got:?}");
    }
}

#[cfg(test)]
mod chaining {
    use std::sync::Arc;

    use super::*;

    const RULES: &str = "title: d\nid: d\nname: denied\nlogsource: {category: physical_access}\ndetection: {sel: {activity_id: 2}, condition: sel}\n---\ntitle: burst\nid: burst\nname: burst\ncorrelation: {type: event_count, rules: [denied], group-by: [actor.person], timespan: 1m, condition: {gte: 2}}\n---\ntitle: bursts again\nid: repeat\ncorrelation: {type: event_count, rules: [burst], group-by: [actor.person], timespan: 10m, condition: {gte: 2}}\n";

    fn denial(person: &str, secs: i64, n: usize) -> ingest::Event {
        let v = serde_json::json!({"class_uid": 9001, "activity_id": 2, "time": 1_795_687_200_000i64 + secs * 1000, "actor": {"person": person}});
        example_event(&v, n).expect("event")
    }

    #[test]
    fn a_correlation_of_correlations() {
        let file = parse_file(std::path::Path::new("c.yml"), RULES).expect("parses");
        let set = Arc::new(RuleSet::compile(&[file], &Placeholders::new()).expect("compiles"));
        assert!(!set.rules[1].alerts, "a chained-on correlation is a building block");
        let input =
            [denial("p0", 0, 0), denial("p0", 10, 1), denial("p1", 20, 2), denial("p0", 100, 3), denial("p0", 110, 4)];
        // Either arrival order.
        for order in [[0, 1, 2, 3, 4], [4, 2, 3, 0, 1]] {
            let mut c = Correlator::new(set.clone(), 100);
            let mut hits = Vec::new();
            for i in order {
                c.on_event(i as u64, &input[i], &mut hits);
            }
            c.advance(i64::MAX, &mut hits);
            let got: Vec<(&str, &[u64])> =
                hits.iter().map(|h| (set.rules[h.rule].id.as_str(), h.events.as_slice())).collect();
            assert_eq!(got, [("repeat", &[1u64, 4][..])], "{order:?}");
            assert_eq!(hits[0].entity.id, "p0");
        }
    }

    #[test]
    fn a_cycle_is_refused() {
        let text = "title: a\nid: a\ncorrelation: {type: event_count, rules: [b], timespan: 1m, condition: {gte: 2}}\n---\ntitle: b\nid: b\ncorrelation: {type: event_count, rules: [a], timespan: 1m, condition: {gte: 2}}\n";
        let file = parse_file(std::path::Path::new("c.yml"), text).expect("parses");
        let e = RuleSet::compile(&[file], &Placeholders::new()).expect_err("cycle");
        assert!(e.iter().any(|m| m.contains("refers back to itself")), "{e:?}");
    }
}
