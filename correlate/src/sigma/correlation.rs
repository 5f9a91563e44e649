//! Running a [`RuleSet`]: detection per event, correlation on event time.
//!
//! Detection matches of rules a correlation uses wait until the watermark
//! passes them and are then fed to the correlation windows in event-time
//! order (time, then ledger index). So the alerts do not depend on the order
//! events arrived in, as long as they arrived within the allowed lateness.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use ingest::{Event, Inventory};
use serde::{Deserialize, Serialize};

use super::fields::{Field, Value};
use super::presence::{self, Inside, OpenedBy, Presence};
use super::rule::{CorrelationKind, Direction, MustBe, PersonFrom, RuleSet};

/// A badge-in counts this long without another badge event.
const DEFAULT_PRESENCE_TIMEOUT_MS: i64 = 12 * 3_600_000;
/// Door openings are looked for this far back from someone found inside.
const DEFAULT_TAILGATE_LOOKBACK_MS: i64 = 15 * 60_000;
use crate::alert::{Entity, EntityKind};
use crate::state::{pairs, pairs_each};

/// A rule's finding, before it becomes an [`crate::Alert`].
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaHit {
    /// Index of the rule in the set.
    pub rule: usize,
    pub time: i64,
    pub events: Vec<u64>,
    pub entity: Entity,
    pub zone: Option<String>,
    /// A correlation's group-by values (what a chained correlation groups by).
    pub group: Option<GroupKey>,
    /// What the rule found out beyond its title (a presence rule: the door
    /// openings someone found inside may have come in behind).
    pub note: Option<String>,
}

/// A detection match waiting for the watermark, for one correlation.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    correlation: usize,
    key: GroupKey,
    /// Position of the matched rule in the correlation's `rules`.
    position: usize,
    value: Option<Arc<str>>,
    /// The entity id from the rule's entity field; the group key otherwise.
    entity: Option<String>,
    zone: Option<String>,
}

/// An `lt` / `lte` / `eq` window waiting for its end.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CountWindow {
    key: GroupKey,
    entity: Entity,
    zone: Option<String>,
}

/// A first-rule match of an absence, waiting for its span to pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deadline {
    key: GroupKey,
    time: i64,
    /// The span searched for the missing match: `from` ..= the deadline.
    from: i64,
    entity: Entity,
    zone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    time: i64,
    index: u64,
    position: usize,
    value: Option<Arc<str>>,
}

/// Matches of one group within a correlation's timespan.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Window {
    /// The group-by values (kept once per group, for the alert's entity).
    key: GroupKey,
    seen: VecDeque<Seen>,
    /// `value_count`: how often each value occurs in `seen`.
    #[serde(with = "pairs")]
    values: HashMap<Arc<str>, u32>,
    /// `lt` / `lte` / `eq`: when the group's current window opened.
    opened: Option<i64>,
}

impl Window {
    fn push(&mut self, s: Seen) {
        if let Some(v) = &s.value {
            *self.values.entry(v.clone()).or_default() += 1;
        }
        self.seen.push_back(s);
    }

    fn pop_front(&mut self) {
        let Some(s) = self.seen.pop_front() else { return };
        if let Some(v) = s.value
            && let Some(n) = self.values.get_mut(&v)
        {
            *n -= 1;
            if *n == 0 {
                self.values.remove(&v);
            }
        }
    }

    fn clear(&mut self) {
        self.seen.clear();
        self.values.clear();
        self.opened = None;
    }

    fn last_time(&self) -> i64 {
        self.seen.back().map_or(i64::MIN, |s| s.time)
    }
}

/// A group's group-by values, shared by the matches and the window (one
/// event's key is computed once for all correlations with the same group-by).
type GroupKey = Arc<[String]>;

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

/// What a [`Correlator`] has learnt from the events: one struct, which is
/// what a snapshot holds (see [`crate::EngineState`]), so it cannot leave a
/// field out.
#[derive(Clone, Serialize, Deserialize)]
pub struct CorrelatorState {
    /// Matches waiting for the watermark, sorted by (time, index, correlation).
    /// Input is mostly in time order, so inserts land at or near the back.
    pending: VecDeque<((i64, u64, usize), Pending)>,
    #[serde(with = "pairs_each")]
    windows: Vec<HashMap<GroupKey, Window>>,
    /// Absences waiting for the watermark to pass their span, by its end.
    #[serde(with = "pairs")]
    deadlines: BTreeMap<(i64, u64, usize), Deadline>,
    /// `lt` / `lte` / `eq` windows waiting to be counted, by their end.
    #[serde(with = "pairs")]
    count_deadlines: BTreeMap<(i64, u64, usize), CountWindow>,
    /// Watermark at each correlation's last sweep for idle groups.
    swept_at: Vec<i64>,
    evicted: u64,
    /// Who is on site, from every badge event.
    presence: Presence,
    /// Matches of rules with a presence condition, decided once the watermark
    /// reaches them (all badge events up to then are in).
    #[serde(with = "pairs")]
    presence_pending: BTreeMap<(i64, u64, usize), PresenceWait>,
    presence_pruned_at: i64,
}

/// The rule set at work, with its state.
pub struct Correlator {
    set: Arc<RuleSet>,
    /// Detection rules for each event class (a few classes: a list beats a
    /// hash map here), each with the rules for any class appended.
    by_class: Vec<(u32, Vec<usize>)>,
    any_class: Vec<usize>,
    /// For each rule, the correlations (index into `plans`) that use it.
    used_by: Vec<Vec<usize>>,
    plans: Vec<CorrelationPlan>,
    entity_fields: Vec<(EntityKind, Field)>,
    max_keys: usize,
    /// For `custos.lookup` (maintenance windows, tickets, criticality).
    inventory: Option<Arc<Inventory>>,
    /// Each rule's lookup asset field, resolved once.
    lookup_fields: Vec<Option<Field>>,
    state: CorrelatorState,
}

/// A match waiting for its presence condition to be decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PresenceWait {
    person: String,
    zone: Option<String>,
    area: Option<String>,
    entity: Entity,
}

impl Correlator {
    /// `max_keys`: groups kept per correlation rule (the oldest go first).
    pub fn new(set: Arc<RuleSet>, max_keys: usize) -> Self {
        let mut by_class: Vec<(u32, Vec<usize>)> = Vec::new();
        let mut any_class = Vec::new();
        let mut used_by = vec![Vec::new(); set.rules.len()];
        let mut plans = Vec::new();
        for (i, r) in set.rules.iter().enumerate() {
            match (r.detection.is_some(), r.class_uid) {
                (false, _) => {}
                (true, None) => any_class.push(i),
                (true, Some(class)) => match by_class.iter_mut().find(|(c, _)| *c == class) {
                    Some((_, rules)) => rules.push(i),
                    None => by_class.push((class, vec![i])),
                },
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
        for (_, rules) in &mut by_class {
            rules.extend(&any_class);
            rules.sort_unstable();
        }
        let windows = plans.iter().map(|_| HashMap::new()).collect();
        let lookup_fields = set.rules.iter().map(|r| r.lookup.as_ref().map(|l| Field::resolve(&l.asset))).collect();
        let swept_at = vec![i64::MIN; plans.len()];
        Self {
            set,
            by_class,
            any_class,
            used_by,
            plans,
            entity_fields,
            max_keys,
            inventory: None,
            lookup_fields,
            state: CorrelatorState {
                pending: VecDeque::new(),
                windows,
                deadlines: BTreeMap::new(),
                count_deadlines: BTreeMap::new(),
                swept_at,
                evicted: 0,
                presence: Presence::new(DEFAULT_PRESENCE_TIMEOUT_MS, DEFAULT_TAILGATE_LOOKBACK_MS),
                presence_pending: BTreeMap::new(),
                presence_pruned_at: i64::MIN,
            },
        }
    }

    pub fn save_state(&self) -> CorrelatorState {
        self.state.clone()
    }

    /// Takes up a saved state, after checking that every rule and
    /// correlation it names is one of this set's (or it was saved with other
    /// rules, and indexing by it would go wrong).
    pub fn restore_state(&mut self, s: CorrelatorState) -> Result<(), String> {
        let plans = self.plans.len();
        let other = |what: &str| Err(format!("the state was saved with other Sigma rules ({what})"));
        if s.windows.len() != plans || s.swept_at.len() != plans {
            return other("number of correlations");
        }
        let positions = |p: usize| self.set.rules[self.plans[p].rule].correlation.as_ref().map_or(0, |c| c.rules.len());
        if s.pending.iter().any(|((_, _, p), w)| {
            *p != w.correlation || w.correlation >= plans || w.position >= positions(w.correlation)
        }) || s.deadlines.keys().chain(s.count_deadlines.keys()).any(|(_, _, p)| *p >= plans)
            || s.presence_pending.keys().any(|(_, _, r)| self.set.rules.get(*r).is_none_or(|r| r.presence.is_none()))
        {
            return other("a correlation or rule index");
        }
        self.state = s;
        Ok(())
    }

    /// How long a badge-in counts without another badge event (default
    /// 12 h), and how far back door openings are looked for from someone
    /// found inside an area they did not badge into (default 15 min).
    pub fn set_presence(&mut self, timeout_ms: i64, tailgate_lookback_ms: i64) {
        self.state.presence = Presence::new(timeout_ms, tailgate_lookback_ms);
    }

    /// Takes over who is on site, and the door events kept, from the
    /// correlator `earlier` replaces: they are what the badge events said,
    /// not a rule's state, and a rule reload must not make everyone inside
    /// read as never badged in.
    pub fn take_presence_from(&mut self, earlier: &mut Correlator) {
        std::mem::swap(&mut self.state.presence, &mut earlier.state.presence);
    }

    /// Who is on site at `t`, by their badges (see [`presence::Presence::on_site`]).
    pub fn on_site(&self, t: i64) -> Vec<presence::OnSite> {
        self.state.presence.on_site(t)
    }

    /// Entries into places no badge names, at `t` (see [`presence::Presence::unidentified`]).
    pub fn unidentified_entries(&self, t: i64) -> Vec<presence::UnidentifiedEntry> {
        self.state.presence.unidentified(t)
    }

    /// The inventory `custos.lookup` consults.
    pub fn set_inventory(&mut self, inventory: Arc<Inventory>) {
        self.inventory = Some(inventory);
    }

    /// Does the event pass rule `r`'s inventory lookup (if it has one)?
    fn lookup_passes(&self, r: usize, e: &Event) -> bool {
        let (Some(l), Some(field)) = (&self.set.rules[r].lookup, &self.lookup_fields[r]) else { return true };
        let asset = self.inventory.as_ref().and_then(|inv| Some((inv, inv.asset(&text(field.get(e))?)?)));
        match asset {
            // An asset the inventory does not know is in no window, on no ticket, of no criticality.
            None => l.criticality.is_empty(),
            Some((inv, a)) => {
                let in_window = l.unless_maintenance_window && inv.maintenance_window_at(a, e.time).is_some();
                let on_ticket = l.unless_open_change_ticket && inv.open_ticket_at(a, e.time).is_some();
                let critical_enough = l.criticality.is_empty() || l.criticality.contains(&a.criticality);
                !in_window && !on_ticket && critical_enough
            }
        }
    }

    /// Traffic into a known zone that no conduit carries (inside a zone is
    /// fine; without an inventory nothing is judged).
    fn crosses_no_conduit(&self, e: &Event) -> bool {
        let (Some(inv), Some(to)) = (&self.inventory, e.dst.as_ref().and_then(|d| d.zone.as_deref())) else {
            return false;
        };
        let from = e.src.as_ref().and_then(|s| s.zone.as_deref());
        !inv.conduit_allows(from, to, e.protocol.as_deref(), e.ot.as_ref().and_then(|o| o.function_code))
    }

    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    /// Matches waiting for the watermark plus matches held in windows.
    pub fn state_entries(&self) -> usize {
        self.state.pending.len()
            + self.state.deadlines.len()
            + self.state.count_deadlines.len()
            + self.state.presence_pending.len()
            + self.state.presence.people()
            + self.state.presence.door_events()
            + self.state.windows.iter().flat_map(HashMap::values).map(|w| w.seen.len()).sum::<usize>()
    }

    /// Groups held, over all correlation rules.
    pub fn keys(&self) -> usize {
        self.state.windows.iter().map(HashMap::len).sum()
    }

    /// An estimate of the bytes the correlation state holds: windows with
    /// their keys, matches and value counts, plus map overhead. Divided by
    /// [`Self::keys`] it is the memory per live group the README reports.
    pub fn state_bytes(&self) -> usize {
        use std::mem::size_of;
        let strings = |k: &GroupKey| k.iter().map(|s| s.capacity() + size_of::<String>()).sum::<usize>() + 16;
        let windows: usize = self
            .state
            .windows
            .iter()
            .flat_map(HashMap::values)
            .map(|w| {
                // Map slot (key + window + control byte), the key's strings
                // (shared with pending matches), matches, value counts.
                size_of::<GroupKey>()
                    + size_of::<Window>()
                    + 1
                    + strings(&w.key)
                    + w.seen.capacity() * size_of::<Seen>()
                    + w.values.capacity() * (size_of::<Arc<str>>() + size_of::<u32>() + 1)
                    + w.values.keys().map(|v| v.len() + 16).sum::<usize>()
            })
            .sum();
        windows + self.state.pending.capacity() * size_of::<((i64, u64, usize), Pending)>()
    }

    /// Groups dropped because a rule held `max_keys` of them.
    pub fn evicted(&self) -> u64 {
        self.state.evicted
    }

    fn entity(kind: EntityKind, field: &Field, e: &Event, fallback: &str) -> Entity {
        Entity { kind, id: text(field.get(e)).unwrap_or_else(|| fallback.to_owned()) }
    }

    /// Runs detection on one event; alerts of stand-alone rules go to `out`
    /// at once, matches for correlations wait for the watermark.
    pub fn on_event(&mut self, index: u64, e: &Event, out: &mut Vec<SigmaHit>) {
        self.state.presence.observe(index, e);
        let candidates = match self.by_class.iter().find(|(c, _)| *c == e.class_uid) {
            Some((_, rules)) => rules,
            None => &self.any_class,
        };
        for &r in candidates {
            let rule = &self.set.rules[r];
            if rule.product.as_deref().is_some_and(|p| !p.eq_ignore_ascii_case(&e.metadata.product)) {
                continue;
            }
            if !rule.detection.as_ref().is_some_and(|d| d.matches(e))
                || !self.lookup_passes(r, e)
                || (rule.conduit_violation && !self.crosses_no_conduit(e))
            {
                continue;
            }
            if rule.alerts
                && let Some(check) = &rule.presence
            {
                // Decided when the watermark reaches the event.
                let person = match &check.person {
                    PersonFrom::Field(f) => text(Field::resolve(f).get(e)),
                    PersonFrom::OwnerOf(f) => text(Field::resolve(f).get(e))
                        .and_then(|asset| self.inventory.as_ref()?.asset(&asset)?.owner.clone()),
                };
                // Without a person there is no one to place: nothing is decided.
                if let Some(person) = person {
                    let (kind, field) = &self.entity_fields[r];
                    let wait = PresenceWait {
                        person,
                        zone: text(Field::resolve(&check.zone).get(e)),
                        area: text(Field::resolve(&check.area).get(e)),
                        entity: Self::entity(*kind, field, e, "unknown"),
                    };
                    self.state.presence_pending.insert((e.time, index, r), wait);
                }
            } else if rule.alerts {
                let (kind, field) = &self.entity_fields[r];
                out.push(SigmaHit {
                    rule: r,
                    time: e.time,
                    events: vec![index],
                    entity: Self::entity(*kind, field, e, "unknown"),
                    zone: e.zone.as_deref().map(String::from),
                    group: None,
                    note: None,
                });
            }
            // Keys and values read once per distinct field list, then shared.
            let mut keys: Vec<(&[Field], GroupKey)> = Vec::new();
            let mut values: Vec<(&Field, Option<Arc<str>>)> = Vec::new();
            for &p in &self.used_by[r] {
                let plan = &self.plans[p];
                let Some(c) = &self.set.rules[plan.rule].correlation else { continue };
                let position = c.rules.iter().position(|x| *x == r).unwrap_or(0);
                let fields = plan.group_by[position].as_slice();
                let key = match keys.iter().find(|(f, _)| *f == fields) {
                    Some((_, k)) => k.clone(),
                    None => {
                        let k: GroupKey = fields.iter().map(|f| text(f.get(e)).unwrap_or_default()).collect();
                        keys.push((fields, k.clone()));
                        k
                    }
                };
                let value = match &plan.value {
                    None => None,
                    Some(field) => match values.iter().find(|(f, _)| *f == field) {
                        Some((_, v)) => v.clone(),
                        None => {
                            let v: Option<Arc<str>> = text(field.get(e)).map(Arc::from);
                            values.push((field, v.clone()));
                            v
                        }
                    },
                };
                if plan.value.is_some() && value.is_none() {
                    continue;
                }
                let entity = text(plan.entity.1.get(e));
                let at = (e.time, index, p);
                let slot = match self.state.pending.back() {
                    Some((last, _)) if *last > at => self.state.pending.partition_point(|(k, _)| *k <= at),
                    _ => self.state.pending.len(),
                };
                self.state.pending.insert(
                    slot,
                    (
                        at,
                        Pending {
                            correlation: p,
                            key,
                            position,
                            value,
                            entity,
                            zone: e.zone.as_deref().map(String::from),
                        },
                    ),
                );
            }
        }
    }

    /// Feeds the matches the watermark `wm` has made final to the windows, in
    /// event-time order, decides absences whose span the watermark has passed
    /// (interleaved in time order with the matches), and drops groups idle for
    /// longer than their timespan.
    pub fn advance(&mut self, wm: i64, out: &mut Vec<SigmaHit>) {
        let mut fired = Vec::new();
        loop {
            while let Some(time) = self.state.pending.front().map(|((t, _, _), _)| *t).filter(|t| *t <= wm) {
                // A missing match at exactly a span's end still counts: decide
                // only the spans that ended before this match.
                self.decide_absences(time - 1, &mut fired);
                self.emit(&mut fired, out);
                let Some(((time, index, _), p)) = self.state.pending.pop_front() else { break };
                self.feed(time, index, p, &mut fired);
                self.emit(&mut fired, out);
            }
            self.decide_absences(wm, &mut fired);
            self.decide_presence(wm, &mut fired);
            self.emit(&mut fired, out);
            // Chained correlations may have new matches the watermark covers.
            if self.state.pending.front().is_none_or(|((t, _, _), _)| *t > wm) {
                break;
            }
        }
        // Idle groups go in a sweep once the watermark has moved half a
        // timespan since the last one: amortised O(1) per event, and a group
        // outlives its last match by at most 1.5 timespans.
        for ((plan, windows), swept) in self.plans.iter().zip(&mut self.state.windows).zip(&mut self.state.swept_at) {
            let Some(c) = &self.set.rules[plan.rule].correlation else { continue };
            if wm.saturating_sub(*swept) >= c.timespan_ms / 2 {
                windows.retain(|_, w| w.last_time() >= wm - c.keep_ms());
                *swept = wm;
            }
        }
    }

    /// Hands out what fired: correlation alerts also feed the correlations
    /// chained on them (as matches at the alert's time, grouped by the values
    /// the alert was grouped by), and only rules that alert reach `out`.
    fn emit(&mut self, fired: &mut Vec<SigmaHit>, out: &mut Vec<SigmaHit>) {
        for h in fired.drain(..) {
            let base = &self.set.rules[h.rule];
            if let (Some(base_corr), Some(group)) = (&base.correlation, &h.group) {
                for p in self.used_by[h.rule].clone() {
                    let plan = &self.plans[p];
                    let Some(c) = &self.set.rules[plan.rule].correlation else { continue };
                    let position = c.rules.iter().position(|x| *x == h.rule).unwrap_or(0);
                    let by_name = |name: &str| {
                        base_corr.group_names.iter().position(|b| b == name).and_then(|i| group.get(i).cloned())
                    };
                    let key: GroupKey = c.group_by[position].iter().map(|n| by_name(n).unwrap_or_default()).collect();
                    let value = match &c.kind {
                        CorrelationKind::ValueCount(f) => match by_name(f) {
                            Some(v) => Some(Arc::from(v)),
                            None => continue,
                        },
                        _ => None,
                    };
                    let at = (h.time, h.events.iter().copied().max().unwrap_or(0), p);
                    let slot = self.state.pending.partition_point(|(k, _)| *k <= at);
                    let pending = Pending { correlation: p, key, position, value, entity: None, zone: h.zone.clone() };
                    self.state.pending.insert(slot, (at, pending));
                }
            }
            if base.alerts {
                out.push(h);
            }
        }
    }

    /// Presence conditions of matches the watermark has reached.
    fn decide_presence(&mut self, wm: i64, out: &mut Vec<SigmaHit>) {
        while let Some(entry) = self.state.presence_pending.first_entry() {
            let (time, index, r) = *entry.key();
            if time > wm {
                break;
            }
            let w = entry.remove();
            let Some(check) = &self.set.rules[r].presence else { continue };
            let place = self.state.presence.at(&w.person, time, index);
            let in_zone = place.is_some_and(|p| p.zone.is_some() && p.zone == w.zone);
            let in_area = place.is_some_and(|p| p.area.is_some() && p.area == w.area);
            let holds = match check.must_be {
                MustBe::OnSite => place.is_some(),
                MustBe::OffSite => place.is_none(),
                MustBe::InZone => in_zone,
                // Outside a place the event does not name is not a finding.
                MustBe::OutsideZone => w.zone.is_some() && !in_zone,
                MustBe::InArea => in_area,
                MustBe::OutsideArea => w.area.is_some() && !in_area,
            };
            if !holds {
                continue;
            }
            // Found inside a zone or area without a badge into it: cite the
            // door openings they may have come in behind.
            let inside = match check.must_be {
                MustBe::OutsideZone => w.zone.as_deref().map(Inside::Zone),
                MustBe::OutsideArea => w.area.as_deref().map(Inside::Area),
                _ => None,
            };
            let mut events = vec![index];
            let note = inside.map(|inside| {
                let presence = &self.state.presence;
                if let Some(since) = presence.stale_badge_in(inside, &w.person, time, index) {
                    return presence::stale_words(inside, since, time, presence.timeout_ms());
                }
                let openings = self.state.presence.openings(inside, &w.person, time, index);
                for o in &openings {
                    events.push(o.index);
                    // One badge may have opened the door twice: cited once.
                    if let OpenedBy::Badge { index: Some(badge), .. } | OpenedBy::Leaving { index: Some(badge), .. } =
                        o.how
                        && !events.contains(&badge)
                    {
                        events.push(badge);
                    }
                }
                presence::entered_behind(inside, &openings, self.state.presence.lookback_ms())
            });
            out.push(SigmaHit { rule: r, time, events, entity: w.entity, zone: w.zone, group: None, note });
        }
        if wm.saturating_sub(self.state.presence_pruned_at) >= 60_000 {
            self.state.presence.prune(wm);
            self.state.presence_pruned_at = wm;
        }
    }

    /// Windows of `lt` / `lte` / `eq` correlations that ended by `upto`:
    /// counted, alerted on when the threshold holds, and closed.
    fn decide_counts(&mut self, upto: i64, out: &mut Vec<SigmaHit>) {
        while let Some(entry) = self.state.count_deadlines.first_entry() {
            let (end, _, p) = *entry.key();
            if end > upto {
                break;
            }
            let CountWindow { key, entity, zone } = entry.remove();
            let plan = &self.plans[p];
            let Some(c) = &self.set.rules[plan.rule].correlation else { continue };
            let Some(w) = self.state.windows[p].get_mut(&key) else { continue };
            let count = match c.kind {
                CorrelationKind::ValueCount(_) => w.values.len(),
                _ => w.seen.len(),
            } as u64;
            if c.at_end.is_some_and(|t| t.holds(count)) {
                let events = w.seen.iter().map(|s| s.index).collect();
                let time = w.last_time();
                out.push(SigmaHit {
                    rule: plan.rule,
                    time,
                    events,
                    entity,
                    zone,
                    group: Some(key.clone()),
                    note: None,
                });
            }
            w.clear();
        }
    }

    /// Absences whose span ended by `upto`: alert unless the missing rule
    /// matched for the group within the span.
    fn decide_absences(&mut self, upto: i64, out: &mut Vec<SigmaHit>) {
        self.decide_counts(upto, out);
        while let Some(entry) = self.state.deadlines.first_entry() {
            let (end, index, p) = *entry.key();
            if end > upto {
                break;
            }
            let d = entry.remove();
            let plan = &self.plans[p];
            let seen = self.state.windows[p]
                .get(&d.key)
                .is_some_and(|w| w.seen.iter().any(|s| s.time >= d.from && s.time <= end));
            if !seen {
                out.push(SigmaHit {
                    rule: plan.rule,
                    time: d.time,
                    events: vec![index],
                    entity: d.entity,
                    zone: d.zone,
                    group: Some(d.key),
                    note: None,
                });
            }
        }
    }

    fn feed(&mut self, time: i64, index: u64, p: Pending, out: &mut Vec<SigmaHit>) {
        let plan = &self.plans[p.correlation];
        let Some(c) = &self.set.rules[plan.rule].correlation else { return };
        let windows = &mut self.state.windows[p.correlation];
        if windows.len() >= self.max_keys && !windows.contains_key(&p.key) {
            // Bounded state: the sixteenth of groups heard from longest ago go
            // in one pass (evicting one per new group would cost a scan each).
            let mut times: Vec<i64> = windows.values().map(Window::last_time).collect();
            let cut = (times.len() / 16).max(1);
            let (_, oldest_kept, _) = times.select_nth_unstable(cut - 1);
            let threshold = *oldest_kept;
            let before = windows.len();
            windows.retain(|_, w| w.last_time() > threshold);
            self.state.evicted += (before - windows.len()) as u64;
        }
        let w = match windows.get_mut(&p.key) {
            Some(w) => w,
            None => windows.entry(p.key.clone()).or_insert_with(|| Window { key: p.key, ..Window::default() }),
        };
        while w.seen.front().is_some_and(|s| s.time < time - c.keep_ms()) {
            w.pop_front();
        }
        if c.at_end.is_some() {
            // Counted when the watermark passes the window's end.
            if w.opened.is_none() {
                w.opened = Some(time);
                let entity = Entity { kind: plan.entity.0, id: p.entity.clone().unwrap_or_else(|| w.key.join("/")) };
                let window = CountWindow { key: w.key.clone(), entity, zone: p.zone };
                self.state.count_deadlines.insert((time + c.timespan_ms, index, p.correlation), window);
            }
            w.push(Seen { time, index, position: p.position, value: p.value });
            return;
        }
        if let CorrelationKind::Absence(direction) = c.kind {
            if p.position == 1 {
                // The match whose absence is looked for: kept, nothing decided.
                w.push(Seen { time, index, position: 1, value: None });
                return;
            }
            let span = c.timespan_ms;
            let entity = Entity { kind: plan.entity.0, id: p.entity.unwrap_or_else(|| w.key.join("/")) };
            if direction == Direction::Before {
                // Every match up to `time` has been fed (event-time order).
                if !w.seen.iter().any(|s| s.time >= time - span && s.time <= time) {
                    out.push(SigmaHit {
                        rule: plan.rule,
                        time,
                        events: vec![index],
                        entity,
                        zone: p.zone,
                        group: Some(w.key.clone()),
                        note: None,
                    });
                }
            } else {
                let from = if direction == Direction::Around { time - span } else { time };
                let d = Deadline { key: w.key.clone(), time, from, entity, zone: p.zone };
                self.state.deadlines.insert((time + span, index, p.correlation), d);
            }
            return;
        }
        w.push(Seen { time, index, position: p.position, value: p.value });
        let fired = match &c.kind {
            CorrelationKind::Absence(_) => false,
            CorrelationKind::EventCount => w.seen.len() as u64 >= c.min,
            CorrelationKind::ValueCount(_) => w.values.len() as u64 >= c.min,
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
            w.clear();
            let entity = Entity { kind: plan.entity.0, id: p.entity.unwrap_or_else(|| w.key.join("/")) };
            out.push(SigmaHit {
                rule: plan.rule,
                time,
                events,
                entity,
                zone: p.zone,
                group: Some(w.key.clone()),
                note: None,
            });
        }
    }
}
