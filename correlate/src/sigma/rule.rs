//! Rule files: Sigma YAML documents (detection and correlation rules, one or
//! more per file, `---` separated) with Custos' `custos:` block, loaded and
//! checked into a [`RuleSet`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ingest::Inventory;
use ingest::event::severity;
use ingest::inventory::{AssetKind, Criticality};
use serde::Deserialize;
use serde_norway::Value as Yaml;

use super::detection::{Detection, Placeholders};
use crate::alert::EntityKind;

/// An example in a rule's `custos.examples`: events (contract JSON, only the
/// fields that matter) and the rule ids the engine must alert with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    #[serde(default)]
    pub name: Option<String>,
    pub events: Vec<serde_json::Value>,
    pub expect: Vec<String>,
}

/// What the engine does with a correlation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorrelationKind {
    EventCount,
    ValueCount(String),
    Temporal,
    TemporalOrdered,
    /// Custos: the first rule's match with no match of the second for the same
    /// group within `timespan` (`custos.absence`).
    Absence(Direction),
}

/// Where the missing match is looked for, relative to the first rule's match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Within the span before it (decided as soon as the watermark reaches it).
    Before,
    /// Within the span after it (decided when the watermark passes the span).
    After,
    /// Either side.
    Around,
}

/// A compiled Sigma correlation rule.
#[derive(Debug, Clone)]
pub struct Correlation {
    pub kind: CorrelationKind,
    /// Indices of the referenced rules in the rule set.
    pub rules: Vec<usize>,
    /// Group-by field names per referenced rule (aliases resolved).
    pub group_by: Vec<Vec<String>>,
    /// The group-by names as the rule writes them (aliases not resolved):
    /// what a correlation chained on this one groups by.
    pub group_names: Vec<String>,
    pub timespan_ms: i64,
    /// `gte` threshold (`gt: n` is stored as `n + 1`), for sliding windows.
    pub min: u64,
    /// `lt` / `lte` / `eq` thresholds: counted over a window opened by a
    /// group's first match and judged when the watermark passes its end.
    pub at_end: Option<EndThreshold>,
}

/// A count judged at the end of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndThreshold {
    /// Fewer than n.
    Below(u64),
    /// Exactly n.
    Exactly(u64),
}

impl EndThreshold {
    pub fn holds(self, count: u64) -> bool {
        match self {
            Self::Below(n) => count < n,
            Self::Exactly(n) => count == n,
        }
    }
}

impl Correlation {
    /// How long a group's matches are kept: an absence looked for on both
    /// sides needs a span before the first match and one after it.
    pub fn keep_ms(&self) -> i64 {
        match self.kind {
            CorrelationKind::Absence(Direction::Around) => 2 * self.timespan_ms,
            _ => self.timespan_ms,
        }
    }
}

/// `custos.lookup`: inventory conditions on the asset a detection is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The field naming the asset (default `device.asset`).
    pub asset: String,
    /// No match while a maintenance window covers the asset.
    pub unless_maintenance_window: bool,
    /// No match while an open change ticket covers the asset.
    pub unless_open_change_ticket: bool,
    /// Only assets of these criticalities (any when empty).
    pub criticality: Vec<Criticality>,
}

/// `custos.presence`: the rule alerts only if the person is (or is not) on
/// site, or in the event's zone or area, as of the event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceCheck {
    /// A field naming the person, or the asset whose inventory owner is meant.
    pub person: PersonFrom,
    pub must_be: MustBe,
    /// The field with the zone for `in_zone` / `outside_zone` (default `zone`).
    pub zone: String,
    /// The field with the area for `in_area` / `outside_area` (default `area`).
    pub area: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonFrom {
    Field(String),
    OwnerOf(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MustBe {
    OnSite,
    OffSite,
    InZone,
    OutsideZone,
    InArea,
    OutsideArea,
}

/// One rule of a set, detection or correlation.
#[derive(Debug, Clone)]
pub struct SigmaRule {
    pub id: String,
    pub name: Option<String>,
    pub title: String,
    pub severity_id: u8,
    pub attack: Vec<String>,
    pub file: PathBuf,
    /// `logsource.category` mapped to an OCSF class, when given.
    pub class_uid: Option<u32>,
    pub product: Option<String>,
    pub detection: Option<Detection>,
    pub correlation: Option<Correlation>,
    /// Whether matches become alerts. A detection rule a correlation uses
    /// does not alert on its own unless a correlation using it says
    /// `generate: true` (or, in a `custos.absence`, lists it in `generate`).
    pub alerts: bool,
    pub entity: (EntityKind, String),
    pub lookup: Option<Lookup>,
    /// `custos.conduit: violation`: match only traffic between zones that no
    /// inventory conduit carries (IEC 62443 zones and conduits).
    pub conduit_violation: bool,
    pub presence: Option<PresenceCheck>,
    pub examples: Vec<Example>,
}

/// A file's rules before linking (correlations name rules by id or name).
#[derive(Debug, Clone)]
pub struct RuleFile {
    pub path: PathBuf,
    pub docs: Vec<Yaml>,
    pub text: String,
}

/// Compiled, linked rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<SigmaRule>,
    /// Each file's path and text as read, in path order: what the rules are,
    /// before the inventory's placeholders were filled in.
    pub files: Vec<(String, String)>,
}

impl RuleSet {
    /// Every file's path and text in one string (a state snapshot names it).
    pub fn source(&self) -> String {
        self.files.iter().map(|(path, text)| format!("{path}\n{text}\n")).collect()
    }
}

/// `file:line: message`, the line found by the text the error is about.
fn located(file: &RuleFile, needle: Option<&str>, msg: &str) -> String {
    let line = needle.and_then(|n| file.text.lines().position(|l| l.contains(n))).map_or(1, |i| i + 1);
    format!("{}:{line}: {msg}", file.path.display())
}

/// Placeholder values for `|expand` from the inventory: `%<kind>_assets%`
/// (plc, hmi, ews, …), `%vendor_people%`, `%zones%`.
pub fn placeholders(inv: &Inventory) -> Placeholders {
    let mut p = Placeholders::new();
    for a in &inv.assets {
        p.entry(format!("{}_assets", a.kind.as_str())).or_default().push(a.id.to_string());
    }
    p.insert("vendor_people".into(), inv.people.iter().filter(|x| x.vendor).map(|x| x.id.to_string()).collect());
    p.insert("zones".into(), inv.zones.iter().map(|z| z.id.to_string()).collect());
    for kind in [AssetKind::Plc, AssetKind::Hmi, AssetKind::Ews] {
        p.entry(format!("{}_assets", kind.as_str())).or_default();
    }
    p
}

/// Reads one rule file (several YAML documents allowed).
pub fn parse_file(path: &Path, text: &str) -> Result<RuleFile, String> {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = Yaml::deserialize(doc).map_err(|e| {
            let line = e.location().map_or(1, |l| l.line());
            format!("{}:{line}: {e}", path.display())
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(RuleFile { path: path.to_owned(), docs, text: text.to_owned() })
}

/// Loads every `*.yml` / `*.yaml` file under `dir` (sorted, so ids are stable)
/// and links them; all errors are returned, each as `file:line: message`.
pub fn load_dir(dir: &Path, placeholders: &Placeholders) -> Result<RuleSet, Vec<String>> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| vec![format!("{}: {e}", d.display())])?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display())).and_then(|t| parse_file(&p, &t))
        {
            Ok(f) => files.push(f),
            Err(e) => errors.push(e),
        }
    }
    match RuleSet::compile(&files, placeholders) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => Err(errors),
        Err(mut more) => {
            errors.append(&mut more);
            Err(errors)
        }
    }
}

fn severity_of(level: Option<&str>) -> Result<u8, String> {
    Ok(match level.unwrap_or("medium") {
        "informational" => severity::INFORMATIONAL,
        "low" => severity::LOW,
        "medium" => severity::MEDIUM,
        "high" => severity::HIGH,
        "critical" => severity::CRITICAL,
        other => return Err(format!("level {other:?} is not informational, low, medium, high or critical")),
    })
}

/// `logsource.category` → OCSF class.
fn class_of(category: &str) -> Result<u32, String> {
    Ok(match category {
        "physical_access" => 9001,
        "authentication" => 3002,
        "network_activity" | "firewall" | "network_connection" => 4001,
        "detection_finding" | "ids" => 2004,
        "config_change" | "plc_backup" => 5019,
        other => {
            return Err(format!(
                "logsource category {other:?} is not one of physical_access, authentication, network_activity, \
                 firewall, detection_finding, ids, config_change, plc_backup"
            ));
        }
    })
}

/// `5m`, `30s`, `2h`, `1d` in ms.
fn timespan(s: &str) -> Result<i64, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n.parse().map_err(|_| format!("timespan {s:?} is not like 30s, 5m, 2h or 1d"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("timespan {s:?} is not like 30s, 5m, 2h or 1d")),
    };
    Ok(n * unit_ms)
}

fn str_at<'a>(v: &'a Yaml, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

impl RuleSet {
    /// Compiles and links the documents of `files`.
    pub fn compile(files: &[RuleFile], placeholders: &Placeholders) -> Result<Self, Vec<String>> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        // Correlations are linked after every detection rule is known.
        let mut pending = Vec::new();
        for file in files {
            for doc in &file.docs {
                match Self::rule(file, doc, placeholders) {
                    Ok((rule, corr)) => {
                        if let Some(c) = corr {
                            pending.push((rules.len(), file, c));
                        }
                        rules.push(rule);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        let mut seen = HashSet::new();
        for r in &rules {
            if !seen.insert(r.id.clone()) {
                errors.push(located(&files[0], Some(&r.id), &format!("rule id {} is used twice", r.id)));
            }
        }
        let index: HashMap<String, usize> = rules
            .iter()
            .enumerate()
            .flat_map(|(i, r)| [Some((r.id.clone(), i)), r.name.clone().map(|n| (n, i))])
            .flatten()
            .collect();
        let (mut used, mut kept) = (HashSet::new(), HashSet::new());
        for (at, file, c) in pending {
            match Self::link(&c, &index, &rules) {
                Ok((corr, referenced, keep)) => {
                    used.extend(referenced);
                    kept.extend(keep);
                    rules[at].correlation = Some(corr);
                }
                Err(e) => errors.push(located(file, Some("correlation:"), &e)),
            }
        }
        for r in used.difference(&kept) {
            rules[*r].alerts = false;
        }
        // Chains must end in detection rules: a correlation may not reach itself.
        for (i, r) in rules.iter().enumerate() {
            let mut stack: Vec<usize> = r.correlation.iter().flat_map(|c| c.rules.clone()).collect();
            let mut seen = HashSet::new();
            while let Some(x) = stack.pop() {
                if x == i {
                    errors.push(format!(
                        "{}: correlation {} refers back to itself through its rules",
                        r.file.display(),
                        r.id
                    ));
                    break;
                }
                if seen.insert(x) {
                    stack.extend(rules[x].correlation.iter().flat_map(|c| c.rules.iter().copied()));
                }
            }
        }
        let files = files.iter().map(|f| (f.path.display().to_string(), f.text.clone())).collect();
        if errors.is_empty() { Ok(Self { rules, files }) } else { Err(errors) }
    }

    fn rule(file: &RuleFile, doc: &Yaml, placeholders: &Placeholders) -> Result<(SigmaRule, Option<Yaml>), String> {
        let err = |needle: Option<&str>, msg: String| located(file, needle, &msg);
        let title = str_at(doc, &["title"]).ok_or_else(|| err(None, "rule has no title".into()))?.to_owned();
        let id = str_at(doc, &["id"]).ok_or_else(|| err(Some(&title), format!("rule {title:?} has no id")))?.to_owned();
        let severity_id = severity_of(str_at(doc, &["level"])).map_err(|e| err(Some("level:"), e))?;
        let attack: Vec<String> = doc
            .get("tags")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(Yaml::as_str)
            .filter_map(|t| t.strip_prefix("attack."))
            .filter(|t| t.len() > 1 && t[1..].chars().all(|c| c.is_ascii_digit() || c == '.'))
            .map(str::to_ascii_uppercase)
            .collect();
        let custos = doc.get("custos");
        let examples: Vec<Example> = match custos.and_then(|c| c.get("examples")) {
            Some(v) => {
                serde_norway::from_value(v.clone()).map_err(|e| err(Some("examples:"), format!("examples: {e}")))?
            }
            None => Vec::new(),
        };
        let entity = match custos.and_then(|c| c.get("entity")) {
            None => (EntityKind::Asset, "device.asset".to_owned()),
            Some(v) => {
                let kind = match str_at(v, &["kind"]) {
                    Some("person") => EntityKind::Person,
                    Some("asset") => EntityKind::Asset,
                    Some("zone") => EntityKind::Zone,
                    other => {
                        return Err(err(
                            Some("entity:"),
                            format!("entity kind {other:?} is not person, asset or zone"),
                        ));
                    }
                };
                let field = str_at(v, &["field"]).ok_or_else(|| err(Some("entity:"), "entity needs a field".into()))?;
                (kind, field.to_owned())
            }
        };
        let lookup = match custos.and_then(|c| c.get("lookup")) {
            None => None,
            Some(l) => Some(Self::lookup(l).map_err(|e| err(Some("lookup:"), e))?),
        };
        let mut rule = SigmaRule {
            id,
            name: str_at(doc, &["name"]).map(str::to_owned),
            title,
            severity_id,
            attack,
            file: file.path.clone(),
            class_uid: None,
            product: None,
            detection: None,
            correlation: None,
            alerts: true,
            entity,
            lookup,
            conduit_violation: match custos.and_then(|c| c.get("conduit")) {
                None => false,
                Some(Yaml::String(s)) if s == "violation" => true,
                Some(_) => return Err(err(Some("conduit:"), "conduit takes one value: violation".into())),
            },
            presence: match custos.and_then(|c| c.get("presence")) {
                None => None,
                Some(p) => Some(Self::presence(p).map_err(|e| err(Some("presence:"), e))?),
            },
            examples,
        };
        if let Some(corr) = doc.get("correlation") {
            return Ok((rule, Some(corr.clone())));
        }
        if let Some(absence) = custos.and_then(|c| c.get("absence")) {
            return Ok((rule, Some(Self::absence_as_correlation(absence).map_err(|e| err(Some("absence:"), e))?)));
        }
        if let Some(cat) = str_at(doc, &["logsource", "category"]) {
            rule.class_uid = Some(class_of(cat).map_err(|e| err(Some("category:"), e))?);
        }
        rule.product = str_at(doc, &["logsource", "product"]).filter(|p| *p != "custos").map(str::to_owned);
        let detection = doc.get("detection").ok_or_else(|| err(Some(&rule.title), "rule has no detection".into()))?;
        rule.detection = Some(Detection::compile(detection, placeholders).map_err(|e| {
            // Point at the first word of the message that appears in the file.
            let needle = e.split([' ', ':']).find(|w| w.len() > 2 && file.text.contains(*w)).map(str::to_owned);
            err(needle.as_deref().or(Some("detection:")), format!("detection: {e}"))
        })?);
        Ok((rule, None))
    }

    /// `custos.presence: {person | owner_of, must_be, zone, area}`.
    fn presence(p: &Yaml) -> Result<PresenceCheck, String> {
        let person = match (str_at(p, &["person"]), str_at(p, &["owner_of"])) {
            (Some(f), None) => PersonFrom::Field(f.to_owned()),
            (None, Some(f)) => PersonFrom::OwnerOf(f.to_owned()),
            _ => return Err("presence needs one of person (a field) or owner_of (an asset field)".into()),
        };
        let must_be = match str_at(p, &["must_be"]) {
            Some("on_site") => MustBe::OnSite,
            Some("off_site") => MustBe::OffSite,
            Some("in_zone") => MustBe::InZone,
            Some("outside_zone") => MustBe::OutsideZone,
            Some("in_area") => MustBe::InArea,
            Some("outside_area") => MustBe::OutsideArea,
            other => {
                return Err(format!(
                    "must_be {other:?} is not on_site, off_site, in_zone, outside_zone, in_area or outside_area"
                ));
            }
        };
        Ok(PresenceCheck {
            person,
            must_be,
            zone: str_at(p, &["zone"]).unwrap_or("zone").to_owned(),
            area: str_at(p, &["area"]).unwrap_or("area").to_owned(),
        })
    }

    /// `custos.lookup: {asset, unless: [maintenance_window, open_change_ticket], criticality: [..]}`.
    fn lookup(l: &Yaml) -> Result<Lookup, String> {
        let mut out = Lookup {
            asset: str_at(l, &["asset"]).unwrap_or("device.asset").to_owned(),
            unless_maintenance_window: false,
            unless_open_change_ticket: false,
            criticality: Vec::new(),
        };
        for u in l.get("unless").and_then(Yaml::as_sequence).into_iter().flatten() {
            match u.as_str() {
                Some("maintenance_window") => out.unless_maintenance_window = true,
                Some("open_change_ticket") => out.unless_open_change_ticket = true,
                other => return Err(format!("unless {other:?} is not maintenance_window or open_change_ticket")),
            }
        }
        if let Some(c) = l.get("criticality") {
            out.criticality = serde_norway::from_value(c.clone())
                .map_err(|e| format!("criticality: {e} (a list of low, medium, high, critical)"))?;
        }
        Ok(out)
    }

    /// `custos.absence` in the shape of a correlation, so it links the same way:
    /// `{rule, missing, within, direction, group-by, aliases}`.
    fn absence_as_correlation(a: &Yaml) -> Result<Yaml, String> {
        let mut m = serde_norway::Mapping::new();
        let get = |k: &str| a.get(k).cloned().ok_or_else(|| format!("absence needs {k}"));
        m.insert("type".into(), "custos_absence".into());
        m.insert("rules".into(), Yaml::Sequence(vec![get("rule")?, get("missing")?]));
        m.insert("timespan".into(), get("within")?);
        m.insert("direction".into(), a.get("direction").cloned().unwrap_or_else(|| "after".into()));
        for k in ["group-by", "aliases", "generate"] {
            if let Some(v) = a.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
        Ok(Yaml::Mapping(m))
    }

    fn link(
        c: &Yaml,
        index: &HashMap<String, usize>,
        rules: &[SigmaRule],
    ) -> Result<(Correlation, Vec<usize>, Vec<usize>), String> {
        let kind_name = str_at(c, &["type"]).ok_or("correlation has no type")?;
        let names: Vec<&str> = match c.get("rules") {
            Some(Yaml::Sequence(l)) => l.iter().filter_map(Yaml::as_str).collect(),
            Some(Yaml::String(s)) => vec![s.as_str()],
            _ => return Err("correlation needs rules".into()),
        };
        let referenced: Vec<usize> = names
            .iter()
            .map(|n| index.get(*n).copied().ok_or_else(|| format!("correlation refers to unknown rule {n:?}")))
            .collect::<Result<_, _>>()?;

        let group: Vec<String> = match c.get("group-by") {
            Some(Yaml::Sequence(l)) => l.iter().filter_map(Yaml::as_str).map(str::to_owned).collect(),
            None => Vec::new(),
            _ => return Err("group-by must be a list of field names".into()),
        };
        let aliases = c.get("aliases").and_then(Yaml::as_mapping);
        let group_by = referenced
            .iter()
            .zip(&names)
            .map(|(r, name)| {
                group
                    .iter()
                    .map(|g| {
                        let alias = aliases.and_then(|a| a.get(g.as_str()));
                        let mapped = alias
                            .and_then(|a| a.get(*name).or_else(|| a.get(rules[*r].id.as_str())))
                            .and_then(Yaml::as_str);
                        match (alias, mapped) {
                            (Some(_), None) => Err(format!("alias {g} does not name a field for rule {name}")),
                            (_, m) => Ok(m.unwrap_or(g).to_owned()),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timespan_ms = timespan(str_at(c, &["timespan"]).ok_or("correlation needs a timespan")?)?;
        let cond = c.get("condition");
        let (min, at_end) = match cond.and_then(Yaml::as_mapping) {
            None if matches!(kind_name, "temporal" | "temporal_ordered" | "custos_absence") => (1, None),
            None => return Err("event_count and value_count need a condition".into()),
            Some(m) => {
                let num = |k: &str| m.get(k).and_then(Yaml::as_u64);
                match (num("gte"), num("gt"), num("lt"), num("lte"), num("eq")) {
                    (Some(n), ..) => (n, None),
                    (_, Some(n), ..) => (n + 1, None),
                    (_, _, Some(n), ..) => (1, Some(EndThreshold::Below(n))),
                    (_, _, _, Some(n), _) => (1, Some(EndThreshold::Below(n + 1))),
                    (.., Some(n)) => (1, Some(EndThreshold::Exactly(n))),
                    _ => return Err("condition needs one of gte, gt, lt, lte or eq with a count".into()),
                }
            }
        };
        if at_end.is_some() && !matches!(kind_name, "event_count" | "value_count") {
            return Err("lt, lte and eq are for event_count and value_count".into());
        }
        let kind = match kind_name {
            "event_count" => CorrelationKind::EventCount,
            "value_count" => CorrelationKind::ValueCount(
                cond.and_then(|m| m.get("field"))
                    .and_then(Yaml::as_str)
                    .ok_or("value_count needs condition.field")?
                    .to_owned(),
            ),
            "temporal" => CorrelationKind::Temporal,
            "temporal_ordered" => CorrelationKind::TemporalOrdered,
            "custos_absence" => CorrelationKind::Absence(match str_at(c, &["direction"]) {
                Some("before") => Direction::Before,
                Some("after") => Direction::After,
                Some("around") => Direction::Around,
                other => return Err(format!("absence direction {other:?} is not before, after or around")),
            }),
            other => {
                return Err(format!(
                    "correlation type {other:?} is not event_count, value_count, temporal or temporal_ordered"
                ));
            }
        };
        // Which referenced rules keep alerting on their own: all (`true`),
        // none (`false`, the default) or those named.
        let keep: Vec<usize> = match c.get("generate") {
            None | Some(Yaml::Bool(false)) => Vec::new(),
            Some(Yaml::Bool(true)) => referenced.clone(),
            Some(Yaml::Sequence(l)) => l
                .iter()
                .map(|n| {
                    let name = n.as_str().unwrap_or_default();
                    index
                        .get(name)
                        .copied()
                        .filter(|i| referenced.contains(i))
                        .ok_or_else(|| format!("generate names {name:?}, which this correlation does not use"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("generate is true, false or a list of the rules to keep alerting".into()),
        };
        let group_names = group;
        Ok((
            Correlation { kind, rules: referenced.clone(), group_by, timespan_ms, min, at_end, group_names },
            referenced,
            keep,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> Result<RuleSet, Vec<String>> {
        let f = parse_file(Path::new("r.yml"), text).map_err(|e| vec![e])?;
        RuleSet::compile(&[f], &Placeholders::new())
    }

    #[test]
    fn lint_messages_name_file_and_line() {
        let e = set("title: t\nid: a\nlogsource: {category: physical_access}\ndetection:\n  sel: {door|frob: x}\n  condition: sel\n")
            .expect_err("bad modifier");
        assert!(e[0].starts_with("r.yml:5: "), "{e:?}");
        let e = set("title: t\nid: a\nlogsource: {category: nowhere}\ndetection: {sel: {x: 1}, condition: sel}\n")
            .expect_err("category");
        assert!(e[0].starts_with("r.yml:3: ") && e[0].contains("nowhere"), "{e:?}");
        let e = set("title: t\nid: a\ndetection: {sel: {x: 1}, condition: sel}\n---\ntitle: c\nid: b\ncorrelation:\n  type: event_count\n  rules: [zz]\n  timespan: 5m\n  condition: {gte: 2}\n").expect_err("unknown");
        assert!(e[0].starts_with("r.yml:7: ") && e[0].contains("unknown rule \"zz\""), "{e:?}");
        let e = set("title: t\nid: a\ndetection: [\n").expect_err("yaml");
        assert!(e[0].starts_with("r.yml:"), "{e:?}");
    }

    #[test]
    fn correlation_links_and_silences_its_base_rules() {
        let s = set("title: t\nid: a\nname: base\ntags: [attack.t0855, attack.impact]\ndetection: {sel: {x: 1}, condition: sel}\n---\ntitle: c\nid: b\ncorrelation:\n  type: value_count\n  rules: [base]\n  group-by: [user]\n  timespan: 2m\n  condition: {gt: 2, field: dst.ip}\n").expect("compiles");
        assert!(!s.rules[0].alerts);
        assert_eq!(s.rules[0].attack, ["T0855"]);
        let c = s.rules[1].correlation.as_ref().expect("correlation");
        assert_eq!((c.min, c.timespan_ms, c.kind.clone()), (3, 120_000, CorrelationKind::ValueCount("dst.ip".into())));
    }
}
