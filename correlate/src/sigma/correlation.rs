//! Running a [`RuleSet`]: detection per event, correlation on event time.
//!
//! Detection matches of rules a correlation uses wait until the watermark
//! passes them and are then fed to the correlation windows in event-time
//! order (time, then ledger index). So the alerts do not depend on the order
//! events arrived in, as long as they arrived within the allowed lateness.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use ingest::Event;

use super::fields::{Field, Value};
use super::rule::{CorrelationKind, RuleSet};
use crate::alert::{Entity, EntityKind};

/// A rule's finding, before it becomes an [`crate::Alert`].
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaHit {
    /// Index of the rule in the set.
    pub rule: usize,
    pub time: i64,
    pub events: Vec<u64>,
    pub entity: Entity,
    pub zone: Option<String>,
}

/// A detection match waiting for the watermark, for one correlation.
#[derive(Debug, Clone)]
struct Pending {
    correlation: usize,
    key: Vec<String>,
    /// Position of the matched rule in the correlation's `rules`.
    position: usize,
    value: Option<String>,
    entity: Entity,
    zone: Option<String>,
}

#[derive(Debug, Clone)]
struct Seen {
    time: i64,
    index: u64,
    position: usize,
    value: Option<String>,
}

/// Matches of one group within a correlation's timespan.
#[derive(Debug, Default)]
struct Window {
    seen: VecDeque<Seen>,
}

fn text(v: Option<Value<'_>>) -> Option<String> {
    Some(match v? {
        Value::Text(t) => t.to_owned(),
        Value::Int(n) => n.to_string(),
        Value::Ip(ip) => ip.to_string(),
    })
}

/// Compiled lookups for one correlation rule.
#[derive(Debug)]
struct CorrelationPlan {
    rule: usize,
    /// Group-by fields, per referenced rule.
    group_by: Vec<Vec<Field>>,
    value: Option<Field>,
    entity: (EntityKind, Field),
}

/// The rule set at work, with its state.
pub struct Correlator {
    set: Arc<RuleSet>,
    /// Detection rules by the event class they are for (`None`: any class).
    by_class: HashMap<Option<u32>, Vec<usize>>,
    /// For each rule, the correlations (index into `plans`) that use it.
    used_by: Vec<Vec<usize>>,
    plans: Vec<CorrelationPlan>,
    entity_fields: Vec<(EntityKind, Field)>,
    pending: BTreeMap<(i64, u64, usize), Pending>,
    windows: Vec<HashMap<Vec<String>, Window>>,
    max_keys: usize,
    evicted: u64,
}

impl Correlator {
    /// `max_keys`: groups kept per correlation rule (the oldest go first).
    pub fn new(set: Arc<RuleSet>, max_keys: usize) -> Self {
        let mut by_class: HashMap<Option<u32>, Vec<usize>> = HashMap::new();
        let mut used_by = vec![Vec::new(); set.rules.len()];
        let mut plans = Vec::new();
        for (i, r) in set.rules.iter().enumerate() {
            if r.detection.is_some() {
                by_class.entry(r.class_uid).or_default().push(i);
            }
            if let Some(c) = &r.correlation {
                for base in &c.rules {
                    used_by[*base].push(plans.len());
                }
                plans.push(CorrelationPlan {
                    rule: i,
                    group_by: c.group_by.iter().map(|g| g.iter().map(|f| Field::resolve(f)).collect()).collect(),
                    value: match &c.kind {
                        CorrelationKind::ValueCount(f) => Some(Field::resolve(f)),
                        _ => None,
                    },
                    entity: (r.entity.0, Field::resolve(&r.entity.1)),
                });
            }
        }
        let entity_fields = set.rules.iter().map(|r| (r.entity.0, Field::resolve(&r.entity.1))).collect();
        let windows = plans.iter().map(|_| HashMap::new()).collect();
        Self { set, by_class, used_by, plans, entity_fields, pending: BTreeMap::new(), windows, max_keys, evicted: 0 }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    /// Matches waiting for the watermark plus matches held in windows.
    pub fn state_entries(&self) -> usize {
        self.pending.len() + self.windows.iter().flat_map(HashMap::values).map(|w| w.seen.len()).sum::<usize>()
    }

    /// Groups held, over all correlation rules.
    pub fn keys(&self) -> usize {
        self.windows.iter().map(HashMap::len).sum()
    }

    /// Groups dropped because a rule held `max_keys` of them.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn entity(kind: EntityKind, field: &Field, e: &Event, fallback: &str) -> Entity {
        Entity { kind, id: text(field.get(e)).unwrap_or_else(|| fallback.to_owned()) }
    }

    /// Runs detection on one event; alerts of stand-alone rules go to `out`
    /// at once, matches for correlations wait for the watermark.
    pub fn on_event(&mut self, index: u64, e: &Event, out: &mut Vec<SigmaHit>) {
        let classes = [Some(e.class_uid), None];
        for class in classes {
            let Some(candidates) = self.by_class.get(&class) else { continue };
            for &r in candidates {
                let rule = &self.set.rules[r];
                if rule.product.as_deref().is_some_and(|p| !p.eq_ignore_ascii_case(&e.metadata.product)) {
                    continue;
                }
                if !rule.detection.as_ref().is_some_and(|d| d.matches(e)) {
                    continue;
                }
                if rule.alerts {
                    let (kind, field) = &self.entity_fields[r];
                    out.push(SigmaHit {
                        rule: r,
                        time: e.time,
                        events: vec![index],
                        entity: Self::entity(*kind, field, e, "unknown"),
                        zone: e.zone.clone(),
                    });
                }
                for &p in &self.used_by[r] {
                    let plan = &self.plans[p];
                    let Some(c) = &self.set.rules[plan.rule].correlation else { continue };
                    let position = c.rules.iter().position(|x| *x == r).unwrap_or(0);
                    let key: Vec<String> =
                        plan.group_by[position].iter().map(|f| text(f.get(e)).unwrap_or_default()).collect();
                    let value = plan.value.as_ref().and_then(|f| text(f.get(e)));
                    if plan.value.is_some() && value.is_none() {
                        continue;
                    }
                    let entity = Self::entity(plan.entity.0, &plan.entity.1, e, &key.join("/"));
                    self.pending.insert(
                        (e.time, index, p),
                        Pending { correlation: p, key, position, value, entity, zone: e.zone.clone() },
                    );
                }
            }
        }
    }

    /// Feeds the matches the watermark `wm` has made final to the windows, in
    /// event-time order, and drops groups idle for longer than their timespan.
    pub fn advance(&mut self, wm: i64, out: &mut Vec<SigmaHit>) {
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > wm {
                break;
            }
            let ((time, index, _), p) = entry.remove_entry();
            self.feed(time, index, p, out);
        }
        for (plan, windows) in self.plans.iter().zip(&mut self.windows) {
            let Some(c) = &self.set.rules[plan.rule].correlation else { continue };
            windows.retain(|_, w| w.seen.back().is_some_and(|s| s.time >= wm - c.timespan_ms));
        }
    }

    fn feed(&mut self, time: i64, index: u64, p: Pending, out: &mut Vec<SigmaHit>) {
        let plan = &self.plans[p.correlation];
        let Some(c) = &self.set.rules[plan.rule].correlation else { return };
        let windows = &mut self.windows[p.correlation];
        if !windows.contains_key(&p.key) && windows.len() >= self.max_keys {
            // Bounded state: the group heard from longest ago goes.
            if let Some(oldest) =
                windows.iter().min_by_key(|(_, w)| w.seen.back().map_or(i64::MIN, |s| s.time)).map(|(k, _)| k.clone())
            {
                windows.remove(&oldest);
                self.evicted += 1;
            }
        }
        let w = windows.entry(p.key.clone()).or_default();
        while w.seen.front().is_some_and(|s| s.time < time - c.timespan_ms) {
            w.seen.pop_front();
        }
        w.seen.push_back(Seen { time, index, position: p.position, value: p.value });
        let fired = match &c.kind {
            CorrelationKind::EventCount => w.seen.len() as u64 >= c.min,
            CorrelationKind::ValueCount(_) => {
                let mut values: Vec<&str> = w.seen.iter().filter_map(|s| s.value.as_deref()).collect();
                values.sort_unstable();
                values.dedup();
                values.len() as u64 >= c.min
            }
            CorrelationKind::Temporal => (0..c.rules.len()).all(|i| w.seen.iter().any(|s| s.position == i)),
            CorrelationKind::TemporalOrdered => {
                let mut next = 0;
                for s in &w.seen {
                    if s.position == next {
                        next += 1;
                    }
                }
                next == c.rules.len()
            }
        };
        if fired {
            let events = w.seen.iter().map(|s| s.index).collect();
            // A fired window starts over, so one burst is one alert.
            w.seen.clear();
            out.push(SigmaHit { rule: plan.rule, time, events, entity: p.entity, zone: p.zone });
        }
    }
}
