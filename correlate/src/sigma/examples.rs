//! Running rules' `custos.examples`: each example's events go through a fresh
//! correlator with the whole rule set (in the order written: out-of-order
//! examples test event time), and the example's own rule must alert exactly
//! as often as `expect` lists its id (other rules the events set off do not count).

use std::sync::Arc;

use ingest::event::EventClass;
use ingest::{Event, Inventory};

use super::correlation::Correlator;
use super::rule::{Example, RuleSet};

/// One example's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleResult {
    pub rule: String,
    pub name: String,
    /// Rule ids expected and got, each sorted.
    pub expected: Vec<String>,
    pub got: Vec<String>,
    /// Why the example could not run (bad event), if it could not.
    pub error: Option<String>,
}

impl ExampleResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.expected == self.got
    }
}

/// An example event: the contract JSON given, over an empty event of its
/// class; `time` may be RFC 3339 text.
pub fn example_event(v: &serde_json::Value, n: usize) -> Result<Event, String> {
    let mut overlay = v.as_object().cloned().ok_or("an example event is a mapping")?;
    let time = match overlay.remove("time") {
        Some(serde_json::Value::String(t)) => {
            ingest::time::parse_rfc3339(&t).ok_or_else(|| format!("time {t:?} is not RFC 3339"))?
        }
        Some(serde_json::Value::Number(t)) => t.as_i64().ok_or("time is not an integer")?,
        _ => 1_795_687_200_000 + n as i64,
    };
    let base = Event::new(EventClass::Base, 99, time, time, format!("example event {n}").as_bytes());
    let mut json = serde_json::to_value(&base).map_err(|e| e.to_string())?;
    merge(&mut json, serde_json::Value::Object(overlay));
    if let Some(m) = json.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.entry("source").or_insert_with(|| "example".into());
    }
    serde_json::from_value(json).map_err(|e| format!("example event {n}: {e}"))
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn run(
    set: &Arc<RuleSet>,
    inventory: Option<&Arc<Inventory>>,
    rule: &str,
    example: &Example,
) -> Result<Vec<String>, String> {
    let mut c = Correlator::new(set.clone(), 10_000);
    if let Some(inv) = inventory {
        c.set_inventory(inv.clone());
    }
    let mut hits = Vec::new();
    for (i, v) in example.events.iter().enumerate() {
        let e = example_event(v, i)?;
        c.on_event(i as u64, &e, &mut hits);
    }
    c.advance(i64::MAX, &mut hits);
    let mut got: Vec<String> = hits.iter().map(|h| set.rules[h.rule].id.clone()).filter(|id| id == rule).collect();
    got.sort();
    Ok(got)
}

/// Runs every example of every rule in `set`, with `inventory` for lookups.
pub fn run_examples(set: &Arc<RuleSet>, inventory: Option<&Arc<Inventory>>) -> Vec<ExampleResult> {
    let mut out = Vec::new();
    for rule in &set.rules {
        for (i, ex) in rule.examples.iter().enumerate() {
            let mut expected = ex.expect.clone();
            expected.sort();
            let (got, error) = match run(set, inventory, &rule.id, ex) {
                Ok(got) => (got, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            out.push(ExampleResult {
                rule: rule.id.clone(),
                name: ex.name.clone().unwrap_or_else(|| format!("example {}", i + 1)),
                expected,
                got,
                error,
            });
        }
    }
    out
}
