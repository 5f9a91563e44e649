//! Sigma rule throughput on one core: detection with 100 rules, and
//! correlation with 20 correlation rules over 50,000 live groups.
//! Events are normalised once up front; the benches measure the engine only.

use std::sync::Arc;

use correlate::sigma::{Correlator, Placeholders, RuleSet, example_event, parse_file};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: i64 = 1_795_687_200_000;

/// 100 detection rules over the event classes a plant sends, in the shapes
/// rule packs use: equality lists, contains, cidr, numeric ranges, negations.
fn detection_rules() -> String {
    let mut out = String::new();
    for i in 0..100 {
        let body = match i % 5 {
            0 => format!(
                "logsource: {{category: network_activity}}\ndetection:\n  sel: {{dst.port: [{}, {}], protocol: modbus}}\n  ok: {{src.ip|cidr: 10.10.{}.0/24}}\n  condition: sel and not ok",
                500 + i,
                20_000 + i,
                i % 250
            ),
            1 => format!(
                "logsource: {{category: physical_access}}\ndetection:\n  sel: {{activity_id: [2, 3], door|startswith: 'DOOR-{i}-'}}\n  condition: sel"
            ),
            2 => format!(
                "logsource: {{category: authentication}}\ndetection:\n  sel: {{status_id: 2, actor.user|contains: 'svc{i}'}}\n  condition: sel"
            ),
            3 => format!(
                "logsource: {{category: network_activity}}\ndetection:\n  w: {{ot.access: write, ot.function_code|gte: {}}}\n  h: {{src.asset: [EWS-{i}, EWS-{}]}}\n  condition: w and not h",
                100 + i,
                i + 1
            ),
            _ => format!(
                "logsource: {{category: ids}}\ndetection:\n  sel: {{finding.title|contains|all: [SCADA, rule{i}]}}\n  condition: sel"
            ),
        };
        out.push_str(&format!("title: r{i}\nid: r{i}\nlevel: low\n{body}\n---\n"));
    }
    out
}

/// 20 correlation rules (event_count and value_count) over badge denials and Modbus requests.
fn correlation_rules() -> String {
    let mut out = String::from(
        "title: denied\nid: denied\nname: denied\nlogsource: {category: physical_access}\ndetection: {sel: {activity_id: 2}, condition: sel}\n---\n\
         title: modbus\nid: modbus\nname: modbus\nlogsource: {category: network_activity}\ndetection: {sel: {protocol: modbus}, condition: sel}\n---\n",
    );
    for i in 0..20 {
        let c = if i % 2 == 0 {
            format!(
                "{{type: event_count, rules: [denied], group-by: [actor.person], timespan: {}m, condition: {{gte: {}}}}}",
                5 + i,
                1000 + i
            )
        } else {
            format!(
                "{{type: value_count, rules: [modbus], group-by: [src.ip], timespan: {}m, condition: {{gte: {}, field: dst.port}}}}",
                5 + i,
                1000 + i
            )
        };
        out.push_str(&format!("title: c{i}\nid: c{i}\ncorrelation: {c}\n---\n"));
    }
    out
}

fn compile(text: &str) -> Arc<RuleSet> {
    let file = parse_file(std::path::Path::new("bench.yml"), text).expect("rules parse");
    Arc::new(RuleSet::compile(&[file], &Placeholders::new()).expect("rules compile"))
}

/// A plant-like mix: Modbus traffic, badge events, logons, IDS findings;
/// `keys` people and hosts.
fn events(n: usize, keys: usize) -> Vec<ingest::Event> {
    (0..n)
        .map(|i| {
            let k = i % keys;
            let t = T0 + i as i64;
            let v = match i % 4 {
                0 => serde_json::json!({"class_uid": 4001, "time": t, "protocol": "modbus",
                    "src": {"ip": format!("10.{}.{}.{}", k / 65_536 % 256, k / 256 % 256, k % 256)},
                    "dst": {"ip": "10.10.1.10", "port": 502 + i % 7}, "ot": {"access": "write", "function_code": 6}}),
                1 => serde_json::json!({"class_uid": 9001, "activity_id": 1 + i % 2, "time": t,
                    "actor": {"person": format!("person-{k}")}, "door": "CR-DOOR-1"}),
                2 => serde_json::json!({"class_uid": 3002, "activity_id": 1, "status_id": 1 + i % 2, "time": t,
                    "actor": {"user": format!("user{k}")}}),
                _ => serde_json::json!({"class_uid": 2004, "activity_id": 1, "time": t,
                    "finding": {"title": "ET SCADA Modbus write from non-engineering host"}}),
            };
            example_event(&v, i).expect("event")
        })
        .collect()
}

/// Per-event latency with the watermark advanced on every event (as the
/// pipeline does): the time an alert waits beyond the watermark delay is the
/// processing of the event that lets the watermark pass. Printed with the
/// state held per group.
fn latency_and_memory(set: &Arc<RuleSet>, input: &[ingest::Event]) {
    let mut c = Correlator::new(set.clone(), 50_000);
    let mut hits = Vec::new();
    let mut took = Vec::with_capacity(input.len() * 2);
    for round in 0..2u64 {
        for (i, e) in input.iter().enumerate() {
            let start = std::time::Instant::now();
            c.on_event(round * input.len() as u64 + i as u64, e, &mut hits);
            c.advance(e.time - 5_000, &mut hits);
            took.push(start.elapsed());
            hits.clear();
        }
    }
    took.sort_unstable();
    let p = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    eprintln!(
        "correlation, 20 rules: per-event p50 {:?}, p99 {:?}, max {:?}; {} live groups, {} bytes of state, {} bytes per group",
        p(0.5),
        p(0.99),
        took[took.len() - 1],
        c.keys(),
        c.state_bytes(),
        c.state_bytes() / c.keys().max(1)
    );
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sigma");
    let input = events(100_000, 50_000);
    g.throughput(Throughput::Elements(input.len() as u64));
    g.sample_size(10);
    let detection = compile(&detection_rules());
    g.bench_function("detection-100-rules", |b| {
        b.iter_batched(
            || Correlator::new(detection.clone(), 50_000),
            |mut c| {
                let mut hits = Vec::new();
                for (i, e) in input.iter().enumerate() {
                    c.on_event(i as u64, e, &mut hits);
                    hits.clear();
                }
                c
            },
            BatchSize::LargeInput,
        )
    });
    let correlation = compile(&correlation_rules());
    latency_and_memory(&correlation, &input);
    g.bench_function("correlation-20-rules-50k-keys", |b| {
        b.iter_batched(
            || {
                // Warm: every group already live, so the measured pass runs at 50,000 keys.
                let mut c = Correlator::new(correlation.clone(), 50_000);
                let mut hits = Vec::new();
                for (i, e) in input.iter().enumerate() {
                    c.on_event(i as u64, e, &mut hits);
                }
                c.advance(T0 + input.len() as i64, &mut hits);
                c
            },
            |mut c| {
                let mut hits = Vec::new();
                for (i, e) in input.iter().enumerate() {
                    c.on_event((input.len() + i) as u64, e, &mut hits);
                    if i % 1_000 == 999 {
                        // The watermark follows the input (every 1,000 events here).
                        c.advance(e.time, &mut hits);
                    }
                    hits.clear();
                }
                // Returned, so that dropping the state is not timed.
                c
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
