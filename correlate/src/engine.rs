//! The correlation engine: built-in cyber-physical rules on event time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use ingest::event::{EventClass, OtAccess, activity, severity, status};
use ingest::inventory::{AssetKind, Criticality};
use ingest::{Event, Inventory};
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Entity, EntityKind};
use crate::rules::{BADGE_DENIED_THEN_EWS_LOGIN, OT_WRITE_OWNER_OFFSITE, PLC_CHANGE_OUTSIDE_WINDOW, RuleInfo};
use crate::sigma::{self, Correlator, CorrelatorState, RuleSet, SigmaHit};
use crate::state::pairs;
use crate::watermark::Watermarks;

fn default_lateness() -> u64 {
    5_000
}
fn default_idle() -> u64 {
    30_000
}
fn default_login_window() -> u64 {
    5 * 60_000
}
fn default_presence() -> u64 {
    12 * 3_600_000
}
fn default_tailgate_lookback() -> u64 {
    15 * 60_000
}
fn default_max_per_key() -> usize {
    256
}
fn default_max_keys() -> usize {
    50_000
}

/// `[correlate]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// How late (event time) an event may arrive and still count. Default 5000 ms.
    #[serde(default = "default_lateness")]
    pub allowed_lateness_ms: u64,
    /// A source silent this long (processing time) stops holding the watermark. Default 30000 ms.
    #[serde(default = "default_idle")]
    pub idle_timeout_ms: u64,
    /// badge-denied-then-ews-login join window. Default 5 minutes.
    #[serde(default = "default_login_window")]
    pub login_window_ms: u64,
    /// ot-write-owner-offsite presence look-back. Default 12 hours.
    #[serde(default = "default_presence")]
    pub presence_lookback_ms: u64,
    /// How far back from someone found inside an area or zone they did not
    /// badge into the door openings they may have come in behind are looked
    /// for (after their last badge). Default 15 minutes.
    #[serde(default = "default_tailgate_lookback")]
    pub tailgate_lookback_ms: u64,
    /// State entries kept per key and rule (oldest evicted first). Default 256.
    #[serde(default = "default_max_per_key")]
    pub max_entries_per_key: usize,
    /// Sigma rule directory (`*.yml`, recursively) used instead of the built-in
    /// pack. Default: none, the built-in pack (`correlate/rules/`).
    #[serde(default)]
    pub rules_dir: Option<std::path::PathBuf>,
    /// Groups kept per Sigma correlation rule; the longest idle go first. Default 50000.
    #[serde(default = "default_max_keys")]
    pub max_keys_per_rule: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_ms: default_lateness(),
            idle_timeout_ms: default_idle(),
            login_window_ms: default_login_window(),
            presence_lookback_ms: default_presence(),
            tailgate_lookback_ms: default_tailgate_lookback(),
            max_entries_per_key: default_max_per_key(),
            rules_dir: None,
            max_keys_per_rule: default_max_keys(),
        }
    }
}

/// Counters the engine reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    pub events: u64,
    /// Events whose time was already behind the watermark when they arrived.
    pub late_events: u64,
    pub alerts: u64,
    pub state_entries: u64,
    /// Sigma correlation groups dropped because a rule held `max_keys_per_rule`.
    pub evicted_groups: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Seen {
    time: i64,
    index: u64,
    /// A logon that has raised its badge-denied alert: one alert per logon,
    /// however many denials precede it or arrive late.
    alerted: bool,
}

impl Seen {
    fn at(time: i64, index: u64) -> Self {
        Seen { time, index, alerted: false }
    }
}

/// What a rule found; [`Engine::alert`] turns it into an [`Alert`].
struct Hit {
    severity_id: u8,
    time: i64,
    entity: Entity,
    zone: Option<String>,
    events: Vec<u64>,
    summary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingWrite {
    time: i64,
    index: u64,
    person: String,
    src_asset: String,
    dst_asset: String,
    zone: Option<String>,
}

/// Bounded, time-ordered entries per key.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct KeyedSeen(#[serde(with = "pairs")] HashMap<(String, String), VecDeque<Seen>>);

impl KeyedSeen {
    fn insert(&mut self, key: (String, String), s: Seen, max: usize) {
        let q = self.0.entry(key).or_default();
        let at = q.partition_point(|e| e.time <= s.time);
        q.insert(at, s);
        while q.len() > max {
            q.pop_front();
        }
    }
    fn between<'a>(&'a self, key: &(String, String), from: i64, to: i64) -> impl Iterator<Item = &'a Seen> + 'a {
        self.0.get(key).into_iter().flat_map(move |q| q.iter().filter(move |e| e.time >= from && e.time <= to))
    }
    fn between_mut<'a>(
        &'a mut self,
        key: &(String, String),
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = &'a mut Seen> + 'a {
        self.0.get_mut(key).into_iter().flat_map(move |q| q.iter_mut().filter(move |e| e.time >= from && e.time <= to))
    }
    fn evict_before(&mut self, t: i64) {
        self.0.retain(|_, q| {
            while q.front().is_some_and(|e| e.time < t) {
                q.pop_front();
            }
            !q.is_empty()
        });
    }
    fn len(&self) -> usize {
        self.0.values().map(VecDeque::len).sum()
    }
}

/// What the engine has learnt from the events, beside its Sigma
/// correlator's state: one struct, so a snapshot cannot leave a field out.
#[derive(Clone, Serialize, Deserialize)]
struct Learnt {
    watermarks: Watermarks,
    now: i64,
    denials: KeyedSeen,
    logins: KeyedSeen,
    /// Granted badge events per person (key: person, "").
    presence: KeyedSeen,
    /// Watermark of the last sweep of the three maps above.
    swept_at: i64,
    /// Writes waiting for the watermark, by event time.
    #[serde(with = "pairs")]
    pending_writes: BTreeMap<(i64, u64), PendingWrite>,
    stats: EngineStats,
}

/// What the engine has learnt from the events so far, as written to a
/// state snapshot: restored into an engine with the same rules, inventory
/// and settings, it goes on exactly as the engine it was taken from.
#[derive(Clone, Serialize, Deserialize)]
pub struct EngineState {
    #[serde(flatten)]
    learnt: Learnt,
    sigma: CorrelatorState,
}

/// The correlation engine.
pub struct Engine {
    inventory: Arc<Inventory>,
    cfg: EngineConfig,
    learnt: Learnt,
    /// The Sigma rules (built-in pack or `rules_dir`).
    sigma: Correlator,
    /// Alerts ledgered before a restart, and the last replayed index: an
    /// alert made only of replayed events and already ledgered is not raised
    /// again (the live run decided some on processing-time ticks the replay
    /// does not have, so they can complete after the replay).
    ledgered: (std::collections::HashSet<String>, u64),
}

fn entity_word(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Person => "person",
        EntityKind::Asset => "asset",
        EntityKind::Zone => "zone",
    }
}

fn asset_severity(base: u8, criticality: Option<Criticality>) -> u8 {
    match criticality {
        Some(Criticality::Critical) => severity::CRITICAL.max(base),
        _ => base,
    }
}

/// Rule files (path, text) compiled against `inventory`.
fn compile_files(files: &[(String, String)], inventory: &Inventory) -> Result<RuleSet, Vec<String>> {
    let files = files.iter().map(|(path, text)| sigma::parse_file(std::path::Path::new(path), text));
    let files = files.collect::<Result<Vec<_>, _>>().map_err(|e| vec![e])?;
    RuleSet::compile(&files, &sigma::placeholders(inventory))
}

impl Engine {
    /// An engine with the built-in Sigma rule pack (compiled and tested with
    /// the crate, so it cannot fail here; a failure leaves Sigma rules out).
    pub fn new(inventory: Arc<Inventory>, cfg: EngineConfig) -> Self {
        let rules = sigma::builtin::rules(&sigma::placeholders(&inventory)).unwrap_or_else(|errors| {
            tracing::error!(?errors, "built-in Sigma rules do not compile");
            RuleSet::default()
        });
        Self::with_rules(inventory, cfg, rules)
    }

    /// Loads the rules `cfg.rules_dir` names, or the built-in pack without one.
    /// Errors are `file:line: message`, one per problem.
    pub fn from_config(inventory: Arc<Inventory>, cfg: EngineConfig) -> Result<Self, Vec<String>> {
        match &cfg.rules_dir {
            Some(dir) => {
                let rules = sigma::load_dir(dir, &sigma::placeholders(&inventory))?;
                Ok(Self::with_rules(inventory, cfg, rules))
            }
            None => Ok(Self::new(inventory, cfg)),
        }
    }

    /// Swaps in a new Sigma rule set. Detection changes at once; Sigma
    /// correlation windows start empty (the hand-written joins keep their
    /// state, and who is on site carries over).
    pub fn replace_rules(&mut self, rules: RuleSet) {
        let mut sigma = Correlator::new(Arc::new(rules), self.cfg.max_keys_per_rule);
        sigma.set_inventory(self.inventory.clone());
        sigma.take_presence_from(&mut self.sigma);
        self.sigma = sigma;
    }

    /// The running rule files compiled against `inventory` (its assets,
    /// people and zones fill the rules' placeholders): a reloaded inventory
    /// does not pick up rule files edited since the rules were loaded.
    pub fn rules_for(&self, inventory: &Inventory) -> Result<RuleSet, Vec<String>> {
        compile_files(&self.rules().files, inventory)
    }

    /// An engine running rule files already read (each path with its text,
    /// as [`RuleSet::files`] holds them) against `inventory`.
    pub fn from_rule_files(
        inventory: Arc<Inventory>,
        cfg: EngineConfig,
        files: &[(String, String)],
    ) -> Result<Self, Vec<String>> {
        let rules = compile_files(files, &inventory)?;
        Ok(Self::with_rules(inventory, cfg, rules))
    }

    /// The inventory the engine enriches and fills rule placeholders from.
    pub fn inventory(&self) -> &Arc<Inventory> {
        &self.inventory
    }

    /// Swaps in a reloaded inventory, with `rules` from [`Engine::rules_for`].
    /// Unlike a rule reload, the Sigma correlation windows carry over: the
    /// rules are the same, only what their placeholders and lookups name
    /// may have changed.
    pub fn replace_inventory(&mut self, inventory: Arc<Inventory>, rules: RuleSet) {
        let windows = self.sigma.save_state();
        self.inventory = inventory;
        self.replace_rules(rules);
        if let Err(e) = self.sigma.restore_state(windows) {
            tracing::warn!(error = %e, "the Sigma correlation windows could not carry over an inventory reload");
        }
    }

    /// The rules `cfg.rules_dir` names, or the built-in pack, compiled
    /// against the engine's inventory.
    pub fn load_rules(&self) -> Result<RuleSet, Vec<String>> {
        let placeholders = sigma::placeholders(&self.inventory);
        match &self.cfg.rules_dir {
            Some(dir) => sigma::load_dir(dir, &placeholders),
            None => sigma::builtin::rules(&placeholders),
        }
    }

    pub fn with_rules(inventory: Arc<Inventory>, cfg: EngineConfig, rules: RuleSet) -> Self {
        let mut sigma = Correlator::new(Arc::new(rules), cfg.max_keys_per_rule);
        sigma.set_inventory(inventory.clone());
        sigma.set_presence(cfg.presence_lookback_ms as i64, cfg.tailgate_lookback_ms as i64);
        let learnt = Learnt {
            watermarks: Watermarks::new(cfg.allowed_lateness_ms as i64, cfg.idle_timeout_ms as i64),
            now: i64::MIN,
            denials: KeyedSeen::default(),
            logins: KeyedSeen::default(),
            presence: KeyedSeen::default(),
            swept_at: i64::MIN,
            pending_writes: BTreeMap::new(),
            stats: EngineStats::default(),
        };
        Self { sigma, ledgered: (std::collections::HashSet::new(), 0), learnt, inventory, cfg }
    }

    /// The state to write to a snapshot.
    pub fn save_state(&self) -> EngineState {
        EngineState { learnt: self.learnt.clone(), sigma: self.sigma.save_state() }
    }

    /// Takes up a state from a snapshot. Refused (and the engine left as it
    /// was) when the state names Sigma rules or correlations this engine
    /// does not have: it was taken with other rules.
    pub fn restore_state(&mut self, s: EngineState) -> Result<(), String> {
        self.sigma.restore_state(s.sigma)?;
        self.learnt = s.learnt;
        Ok(())
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The Sigma rules at work.
    pub fn rules(&self) -> &RuleSet {
        self.sigma.rules()
    }

    /// Events that arrived behind the watermark (cheap, unlike [`Self::stats`]).
    pub fn late_events(&self) -> u64 {
        self.learnt.stats.late_events
    }

    /// Who is on site at `t`, and where, by their badges.
    pub fn on_site(&self, t: i64) -> Vec<sigma::OnSite> {
        self.sigma.on_site(t)
    }

    /// Entries into places no badge names that count at `t`: tailgates, forced doors.
    pub fn unidentified_entries(&self, t: i64) -> Vec<sigma::UnidentifiedEntry> {
        self.sigma.unidentified_entries(t)
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            state_entries: (self.learnt.denials.len()
                + self.learnt.logins.len()
                + self.learnt.presence.len()
                + self.learnt.pending_writes.len()
                + self.sigma.state_entries()) as u64,
            evicted_groups: self.sigma.evicted(),
            ..self.learnt.stats
        }
    }

    pub fn watermark(&self) -> Option<i64> {
        self.learnt.watermarks.watermark(self.learnt.now)
    }

    /// Completes an alert of `rule`. Each pattern completes exactly once (by
    /// the later of its events), so the id — rule and contributing indices —
    /// needs no de-duplication set and is the same when the input is replayed.
    fn alert(&mut self, rule: &RuleInfo, hit: Hit) -> Alert {
        let key: Vec<String> = hit.events.iter().map(u64::to_string).collect();
        self.learnt.stats.alerts += 1;
        Alert {
            id: format!("{}:{}", rule.id, key.join("-")),
            rule: rule.id.to_owned(),
            title: rule.title.to_owned(),
            severity_id: hit.severity_id,
            attack: rule.attack.iter().map(|s| (*s).to_owned()).collect(),
            time: hit.time,
            entity: hit.entity,
            zone: hit.zone,
            events: hit.events,
            summary: hit.summary,
        }
    }

    /// After replaying the ledger up to `last_index`: `ids` are the alerts it
    /// holds, which are not to be raised again.
    pub fn suppress_ledgered(&mut self, ids: std::collections::HashSet<String>, last_index: u64) {
        self.ledgered = (ids, last_index);
    }

    fn drop_ledgered(&self, mut alerts: Vec<Alert>) -> Vec<Alert> {
        let (ids, last) = &self.ledgered;
        if !ids.is_empty() {
            alerts.retain(|a| !(a.events.iter().all(|i| i <= last) && ids.contains(&a.id)));
        }
        alerts
    }

    /// Feeds one ledgered event. Returns the alerts it completes.
    pub fn on_event(&mut self, index: u64, e: &Event) -> Vec<Alert> {
        let out = self.on_event_inner(index, e);
        self.drop_ledgered(out)
    }

    fn on_event_inner(&mut self, index: u64, e: &Event) -> Vec<Alert> {
        self.learnt.stats.events += 1;
        self.learnt.now = self.learnt.now.max(e.observed_time);
        if self.watermark().is_some_and(|wm| e.time < wm) {
            self.learnt.stats.late_events += 1;
        }
        self.learnt.watermarks.observe(&e.metadata.source, e.time, e.observed_time);
        let mut out = Vec::new();
        match e.class() {
            Some(EventClass::PhysicalAccess) => self.physical(index, e, &mut out),
            Some(EventClass::Authentication) => self.login(index, e, &mut out),
            Some(EventClass::DeviceConfigStateChange) => self.config_change(index, e, &mut out),
            _ => {}
        }
        if e.ot.as_ref().is_some_and(|o| o.access == OtAccess::Write) {
            self.ot_write(index, e);
        }
        let mut hits = Vec::new();
        self.sigma.on_event(index, e, &mut hits);
        self.sigma_alerts(hits, &mut out);
        out.extend(self.advance());
        out
    }

    /// Alerts of Sigma rules, with the rule's title, level and ATT&CK tags.
    fn sigma_alerts(&mut self, hits: Vec<SigmaHit>, out: &mut Vec<Alert>) {
        for h in hits {
            let rule = &self.sigma.rules().rules[h.rule];
            let key: Vec<String> = h.events.iter().map(u64::to_string).collect();
            self.learnt.stats.alerts += 1;
            // A critical asset raises the severity, as for the hand-written joins.
            let criticality = match h.entity.kind {
                EntityKind::Asset => self.inventory.asset(&h.entity.id).map(|a| a.criticality),
                _ => None,
            };
            out.push(Alert {
                id: format!("{}:{}", rule.id, key.join("-")),
                rule: rule.id.clone(),
                title: rule.title.clone(),
                severity_id: asset_severity(rule.severity_id, criticality),
                attack: rule.attack.clone(),
                time: h.time,
                summary: format!(
                    "{}: {} {}{}",
                    rule.title,
                    entity_word(h.entity.kind),
                    h.entity.id,
                    h.note.map(|n| format!("; {n}")).unwrap_or_default()
                ),
                entity: h.entity,
                zone: h.zone,
                events: h.events,
            });
        }
    }

    /// Processing time moves on (idle sources stop holding the watermark).
    pub fn on_tick(&mut self, now: i64) -> Vec<Alert> {
        self.learnt.now = self.learnt.now.max(now);
        let out = self.advance();
        self.drop_ledgered(out)
    }

    fn physical(&mut self, index: u64, e: &Event, out: &mut Vec<Alert>) {
        let Some(person) = e.person().map(str::to_owned) else { return };
        match e.activity_id {
            activity::BADGE_GRANTED => {
                self.learnt.presence.insert(
                    (person, String::new()),
                    Seen::at(e.time, index),
                    self.cfg.max_entries_per_key,
                );
            }
            activity::BADGE_DENIED => {
                let Some(zone) = e.zone.as_deref().map(String::from) else { return };
                let key = (person.clone(), zone.clone());
                let (denial, window) = (Seen::at(e.time, index), self.cfg.login_window_ms as i64);
                // Delivered after logons it precedes: those not yet alerted on alert now.
                let logons: Vec<Seen> = self
                    .learnt
                    .logins
                    .between_mut(&key, e.time, e.time + window)
                    .filter(|login| !login.alerted)
                    .map(|login| {
                        login.alerted = true;
                        *login
                    })
                    .collect();
                for login in logons {
                    out.push(self.badge_login_alert(&person, &zone, &[denial], login));
                }
                self.learnt.denials.insert(key, denial, self.cfg.max_entries_per_key);
            }
            _ => {}
        }
    }

    fn login(&mut self, index: u64, e: &Event, out: &mut Vec<Alert>) {
        if e.activity_id != activity::AUTH_LOGON || e.status_id == Some(status::FAILURE) {
            return;
        }
        let on_ews = e.device.as_ref().and_then(|d| d.kind.as_deref()) == Some(AssetKind::Ews.as_str());
        let (Some(person), Some(zone), true) =
            (e.person().map(str::to_owned), e.zone.as_deref().map(String::from), on_ews)
        else {
            return;
        };
        let key = (person.clone(), zone.clone());
        let window = self.cfg.login_window_ms as i64;
        let denials: Vec<Seen> = self.learnt.denials.between(&key, e.time - window, e.time).copied().collect();
        let mut login = Seen::at(e.time, index);
        if !denials.is_empty() {
            out.push(self.badge_login_alert(&person, &zone, &denials, login));
            login.alerted = true;
        }
        self.learnt.logins.insert(key, login, self.cfg.max_entries_per_key);
    }

    /// One alert per logon, with every denial in the window before it (in
    /// event-time order) as its evidence: three denials and a logon are one
    /// act to investigate, not three alerts.
    fn badge_login_alert(&mut self, person: &str, zone: &str, denials: &[Seen], login: Seen) -> Alert {
        let last = denials.last().map_or(login.time, |d| d.time);
        let gap = (login.time - last) / 1000;
        let denied = match denials.len() {
            1 => format!("was denied at a door of zone {zone}"),
            n => format!("was denied {n} times at doors of zone {zone}"),
        };
        let later = if denials.len() == 1 { "later" } else { "after the last denial" };
        self.alert(
            &BADGE_DENIED_THEN_EWS_LOGIN,
            Hit {
                severity_id: severity::HIGH,
                time: login.time,
                entity: Entity { kind: EntityKind::Person, id: person.to_owned() },
                zone: Some(zone.to_owned()),
                events: denials.iter().chain([&login]).map(|s| s.index).collect(),
                summary: format!(
                    "{person} {denied}, then logged on to an engineering workstation there {gap} s {later}"
                ),
            },
        )
    }

    fn config_change(&mut self, index: u64, e: &Event, out: &mut Vec<Alert>) {
        let Some(change) = &e.change else { return };
        if change.result != "different" {
            return;
        }
        let Some(asset_id) = e.device.as_ref().and_then(|d| d.asset.clone()) else { return };
        let asset = self.inventory.asset(&asset_id).cloned();
        if asset.as_ref().is_some_and(|a| a.kind != AssetKind::Plc) {
            return;
        }
        if let Some(a) = &asset
            && (self.inventory.maintenance_window_at(a, e.time).is_some()
                || self.inventory.open_ticket_at(a, e.time).is_some())
        {
            return;
        }
        let files = change.changed_files.join(", ");
        let who =
            e.actor.as_ref().and_then(|a| a.user.clone()).map(|u| format!(" (backup by {u})")).unwrap_or_default();
        out.push(self.alert(
            &PLC_CHANGE_OUTSIDE_WINDOW,
            Hit {
                severity_id: asset_severity(severity::HIGH, asset.as_ref().map(|a| a.criticality)),
                time: e.time,
                entity: Entity { kind: EntityKind::Asset, id: asset_id.to_string() },
                zone: e.zone.as_deref().map(String::from),
                events: vec![index],
                summary: format!("{asset_id} differs from its released program ({files}) with no maintenance window or open change ticket{who}"),
            },
        ));
    }

    fn ot_write(&mut self, index: u64, e: &Event) {
        let dst_is_plc = e.device.as_ref().and_then(|d| d.kind.as_deref()) == Some(AssetKind::Plc.as_str());
        let src_asset = e.src.as_ref().and_then(|s| s.asset.clone());
        let owner = src_asset.as_deref().and_then(|a| self.inventory.asset(a)).and_then(|a| a.owner.clone());
        let (true, Some(src_asset), Some(person)) = (dst_is_plc, src_asset, owner) else { return };
        let dst_asset = e.device.as_ref().and_then(|d| d.asset.clone()).unwrap_or_default();
        self.learnt.pending_writes.insert(
            (e.time, index),
            PendingWrite {
                time: e.time,
                index,
                person,
                src_asset: String::from(src_asset),
                dst_asset: String::from(dst_asset),
                zone: e.zone.as_deref().map(String::from),
            },
        );
    }

    /// Decides what the watermark has made final, and evicts old state.
    fn advance(&mut self) -> Vec<Alert> {
        let Some(wm) = self.watermark() else { return Vec::new() };
        let mut out = Vec::new();
        while let Some(entry) = self.learnt.pending_writes.first_entry() {
            if entry.key().0 > wm {
                break;
            }
            let w = entry.remove();
            let lookback = self.cfg.presence_lookback_ms as i64;
            let present = self
                .learnt
                .presence
                .between(&(w.person.clone(), String::new()), w.time - lookback, w.time)
                .next()
                .is_some();
            if present {
                continue;
            }
            let crit = self.inventory.asset(&w.dst_asset).map(|a| a.criticality);
            let hours = lookback / 3_600_000;
            out.push(self.alert(
                &OT_WRITE_OWNER_OFFSITE,
                Hit {
                    severity_id: asset_severity(severity::HIGH, crit),
                    time: w.time,
                    entity: Entity { kind: EntityKind::Asset, id: w.src_asset.clone() },
                    zone: w.zone.clone(),
                    events: vec![w.index],
                    summary: format!(
                        "write to {} from {}, whose owner {} has not badged in on site in the last {hours} h",
                        w.dst_asset, w.src_asset, w.person
                    ),
                },
            ));
        }
        let mut hits = Vec::new();
        self.sigma.advance(wm, &mut hits);
        self.sigma_alerts(hits, &mut out);
        // Swept once the watermark has moved half the shorter window, not at
        // every event: a sweep walks every key, and lookups bound time anyway.
        let (window, lookback) = (self.cfg.login_window_ms as i64, self.cfg.presence_lookback_ms as i64);
        if wm.saturating_sub(self.learnt.swept_at) >= (window.min(lookback) / 2).max(1) {
            self.learnt.denials.evict_before(wm - window);
            self.learnt.logins.evict_before(wm - window);
            self.learnt.presence.evict_before(wm - lookback);
            self.learnt.swept_at = wm;
        }
        out
    }
}

#[cfg(test)]
mod tests;
