//! Sigma detection: selections of field conditions with modifiers, and the
//! condition expression over them, compiled once per rule.

use std::collections::HashMap;
use std::net::IpAddr;

use ingest::Event;
use regex::Regex;
use serde_norway::Value as Yaml;

use super::fields::{Field, Value};

/// Values `|expand` placeholders (`%plc_assets%`) stand for.
pub type Placeholders = HashMap<String, Vec<String>>;

#[derive(Debug, Clone)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// One value pattern of a field condition.
#[derive(Debug, Clone)]
enum Matcher {
    /// Whole value; `num` / `ip` are the pattern read as those, when it reads.
    Equals {
        text: String,
        num: Option<i64>,
        ip: Option<IpAddr>,
        cased: bool,
    },
    Contains {
        text: String,
        cased: bool,
    },
    StartsWith {
        text: String,
        cased: bool,
    },
    EndsWith {
        text: String,
        cased: bool,
    },
    Regex(Regex),
    Cidr {
        net: IpAddr,
        prefix: u8,
    },
    Number(Cmp, i64),
    /// `field|exists: true/false`.
    Exists(bool),
    /// `field: null`: the field is absent.
    Absent,
}

fn eq_ci(a: &str, b: &str, cased: bool) -> bool {
    if cased { a == b } else { a.eq_ignore_ascii_case(b) }
}

fn contains_ci(hay: &str, needle: &str, cased: bool) -> bool {
    if cased {
        return memchr::memmem::find(hay.as_bytes(), needle.as_bytes()).is_some();
    }
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else { return true };
    if h.len() < n.len() {
        return false;
    }
    // Candidates are where the first byte occurs in either case (SIMD search);
    // only those are compared in full.
    let last_start = h.len() - n.len();
    memchr::memchr2_iter(first.to_ascii_lowercase(), first.to_ascii_uppercase(), &h[..=last_start])
        .any(|at| h[at..at + n.len()].eq_ignore_ascii_case(n))
}

fn in_cidr(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl Matcher {
    fn matches(&self, v: Option<&Value<'_>>) -> bool {
        let text_of = |v: &Value<'_>, f: &dyn Fn(&str) -> bool| match v {
            Value::Text(t) => f(t),
            Value::Int(n) => f(&n.to_string()),
            Value::Ip(ip) => f(&ip.to_string()),
        };
        match (self, v) {
            (Self::Exists(want), v) => v.is_some() == *want,
            (Self::Absent, v) => v.is_none(),
            (_, None) => false,
            (Self::Equals { num: Some(n), .. }, Some(Value::Int(x))) => n == x,
            (Self::Equals { ip: Some(ip), .. }, Some(Value::Ip(x))) => ip == x,
            (Self::Equals { text, cased, .. }, Some(v)) => text_of(v, &|t| eq_ci(t, text, *cased)),
            (Self::Contains { text, cased }, Some(v)) => text_of(v, &|t| contains_ci(t, text, *cased)),
            (Self::StartsWith { text, cased }, Some(v)) => text_of(v, &|t| {
                t.len() >= text.len() && t.is_char_boundary(text.len()) && eq_ci(&t[..text.len()], text, *cased)
            }),
            (Self::EndsWith { text, cased }, Some(v)) => text_of(v, &|t| {
                let at = t.len().wrapping_sub(text.len());
                t.len() >= text.len() && t.is_char_boundary(at) && eq_ci(&t[at..], text, *cased)
            }),
            (Self::Regex(re), Some(v)) => text_of(v, &|t| re.is_match(t)),
            (Self::Cidr { net, prefix }, Some(Value::Ip(ip))) => in_cidr(*ip, *net, *prefix),
            (Self::Cidr { net, prefix }, Some(Value::Text(t))) => t.parse().is_ok_and(|ip| in_cidr(ip, *net, *prefix)),
            (Self::Cidr { .. }, Some(Value::Int(_))) => false,
            (Self::Number(cmp, n), Some(v)) => {
                let x = match v {
                    Value::Int(x) => Some(*x),
                    Value::Text(t) => t.trim().parse().ok(),
                    Value::Ip(_) => None,
                };
                x.is_some_and(|x| match cmp {
                    Cmp::Gt => x > *n,
                    Cmp::Gte => x >= *n,
                    Cmp::Lt => x < *n,
                    Cmp::Lte => x <= *n,
                })
            }
        }
    }
}

/// `field|modifiers: values`: the values are alternatives unless `|all`.
#[derive(Debug, Clone)]
struct FieldCondition {
    field: Field,
    matchers: Vec<Matcher>,
    all: bool,
}

impl FieldCondition {
    fn matches(&self, e: &Event) -> bool {
        if self.matchers.is_empty() {
            return false;
        }
        let v = self.field.get(e);
        if self.all {
            self.matchers.iter().all(|m| m.matches(v.as_ref()))
        } else {
            self.matchers.iter().any(|m| m.matches(v.as_ref()))
        }
    }
}

/// A named selection.
#[derive(Debug, Clone)]
enum Selection {
    /// A map: every field condition holds.
    All(Vec<FieldCondition>),
    /// A list of maps: one of them holds.
    Any(Vec<Vec<FieldCondition>>),
    /// A list of keywords: one appears in the message or the raw record.
    Keywords(Vec<String>),
}

impl Selection {
    fn matches(&self, e: &Event) -> bool {
        match self {
            Self::All(conds) => conds.iter().all(|c| c.matches(e)),
            Self::Any(maps) => maps.iter().any(|conds| conds.iter().all(|c| c.matches(e))),
            Self::Keywords(words) => {
                let raw = std::str::from_utf8(&e.raw.0).unwrap_or_default();
                words.iter().any(|w| contains_ci(&e.message, w, false) || contains_ci(raw, w, false))
            }
        }
    }
}

/// The condition expression, with selections by index.
#[derive(Debug, Clone)]
enum Condition {
    Selection(usize),
    Not(Box<Condition>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    fn eval(&self, hits: &mut [Option<bool>], sels: &[(String, Selection)], e: &Event) -> bool {
        match self {
            Self::Selection(i) => *hits[*i].get_or_insert_with(|| sels[*i].1.matches(e)),
            Self::Not(c) => !c.eval(hits, sels, e),
            Self::And(cs) => cs.iter().all(|c| c.eval(hits, sels, e)),
            Self::Or(cs) => cs.iter().any(|c| c.eval(hits, sels, e)),
        }
    }
}

/// A compiled `detection:` block.
#[derive(Debug, Clone)]
pub struct Detection {
    selections: Vec<(String, Selection)>,
    condition: Condition,
}

impl Detection {
    pub fn matches(&self, e: &Event) -> bool {
        // Each selection is evaluated at most once per event.
        let mut hits = [None; 16];
        if self.selections.len() <= hits.len() {
            return self.condition.eval(&mut hits[..self.selections.len()], &self.selections, e);
        }
        let mut hits = vec![None; self.selections.len()];
        self.condition.eval(&mut hits, &self.selections, e)
    }

    /// Compiles a `detection:` mapping.
    pub fn compile(detection: &Yaml, placeholders: &Placeholders) -> Result<Self, String> {
        let map = detection.as_mapping().ok_or("detection must be a mapping")?;
        let mut selections = Vec::new();
        let mut condition = None;
        for (k, v) in map {
            let name = k.as_str().ok_or("detection keys must be strings")?;
            if name == "condition" {
                condition = Some(match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Sequence(list) if list.len() == 1 => {
                        list[0].as_str().ok_or("condition must be a string")?.to_owned()
                    }
                    _ => return Err("condition must be one string (lists of conditions are not supported)".into()),
                });
            } else if name == "timeframe" {
                return Err("detection timeframe is deprecated in Sigma: use a correlation rule with timespan".into());
            } else {
                let sel = selection(v, placeholders).map_err(|e| format!("selection {name}: {e}"))?;
                selections.push((name.to_owned(), sel));
            }
        }
        let text = condition.ok_or("detection has no condition")?;
        let names: Vec<&str> = selections.iter().map(|(n, _)| n.as_str()).collect();
        let condition = ConditionParser::new(&text, &names)?.parse()?;
        Ok(Self { selections, condition })
    }
}

fn scalar_text(v: &Yaml) -> Result<Option<String>, String> {
    Ok(match v {
        Yaml::Null => None,
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => return Err("values must be scalars or lists of scalars".into()),
    })
}

fn selection(v: &Yaml, placeholders: &Placeholders) -> Result<Selection, String> {
    match v {
        Yaml::Mapping(_) => Ok(Selection::All(field_conditions(v, placeholders)?)),
        Yaml::Sequence(items) if items.iter().all(Yaml::is_mapping) => {
            Ok(Selection::Any(items.iter().map(|m| field_conditions(m, placeholders)).collect::<Result<_, _>>()?))
        }
        Yaml::Sequence(items) => Ok(Selection::Keywords(
            items
                .iter()
                .map(|i| scalar_text(i)?.ok_or_else(|| "a keyword is null".to_owned()))
                .collect::<Result<_, _>>()?,
        )),
        _ => Err("a selection is a mapping, a list of mappings or a list of keywords".into()),
    }
}

fn field_conditions(v: &Yaml, placeholders: &Placeholders) -> Result<Vec<FieldCondition>, String> {
    let map = v.as_mapping().ok_or("expected a mapping")?;
    let mut out = Vec::new();
    for (k, values) in map {
        let key = k.as_str().ok_or("field names must be strings")?;
        let mut parts = key.split('|');
        let field = Field::resolve(parts.next().unwrap_or_default());
        let mods: Vec<&str> = parts.collect();
        let mut values: Vec<Option<String>> = match values {
            Yaml::Sequence(list) => list.iter().map(scalar_text).collect::<Result<_, _>>()?,
            other => vec![scalar_text(other)?],
        };
        if values.is_empty() {
            return Err(format!("{key}: no values"));
        }
        if mods.contains(&"expand") {
            values = expand(values, placeholders)?;
        }
        let all = mods.contains(&"all");
        let matchers = values
            .iter()
            .map(|v| matcher(v.as_deref(), &mods))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{key}: {e}"))?;
        // A placeholder the inventory has no values for (no vendors yet) leaves
        // no matchers: the condition then matches nothing, and the rule loads.
        out.push(FieldCondition { field, matchers, all });
    }
    Ok(out)
}

fn expand(values: Vec<Option<String>>, placeholders: &Placeholders) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    for v in values {
        match v.as_deref().and_then(|s| s.strip_prefix('%')).and_then(|s| s.strip_suffix('%')) {
            Some(name) => {
                let list = placeholders.get(name).ok_or_else(|| format!("unknown placeholder %{name}%"))?;
                out.extend(list.iter().cloned().map(Some));
            }
            None => out.push(v),
        }
    }
    Ok(out)
}

/// Sigma wildcards (`*`, `?`, `\` escapes) as an anchored regex, or `None`
/// when the value has none.
fn wildcard_regex(v: &str, cased: bool) -> Option<String> {
    if !v.contains(['*', '?']) {
        return None;
    }
    let mut re = String::from(if cased { "^" } else { "(?i)^" });
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '\\' => match chars.next() {
                Some(n @ ('*' | '?' | '\\')) => re.push_str(&regex::escape(&n.to_string())),
                Some(n) => {
                    re.push_str(&regex::escape("\\"));
                    re.push_str(&regex::escape(&n.to_string()));
                }
                None => re.push_str(&regex::escape("\\")),
            },
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    Some(re)
}

const MODIFIERS: [&str; 14] = [
    "contains",
    "startswith",
    "endswith",
    "all",
    "re",
    "cidr",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "cased",
    "expand",
    "i",
];

fn matcher(v: Option<&str>, mods: &[&str]) -> Result<Matcher, String> {
    if let Some(m) = mods.iter().find(|m| !MODIFIERS.contains(m)) {
        return Err(format!("unknown or unsupported modifier |{m}"));
    }
    let cased = mods.contains(&"cased");
    let Some(v) = v else {
        return Ok(Matcher::Absent);
    };
    let text = v.to_owned();
    let num = |v: &str| v.trim().parse::<i64>().map_err(|_| format!("{v:?} is not an integer"));
    Ok(if mods.contains(&"exists") {
        Matcher::Exists(v.parse().map_err(|_| format!("|exists takes true or false, not {v:?}"))?)
    } else if mods.contains(&"re") {
        // Sigma regexes are case-sensitive unless `|i`.
        let re = if mods.contains(&"i") { format!("(?i){v}") } else { v.to_owned() };
        Matcher::Regex(Regex::new(&re).map_err(|e| format!("bad regex: {e}"))?)
    } else if mods.contains(&"cidr") {
        let (net, prefix) = v.split_once('/').ok_or_else(|| format!("{v:?} is not a CIDR range"))?;
        let net: IpAddr = net.parse().map_err(|_| format!("{v:?} is not a CIDR range"))?;
        let prefix: u8 = prefix.parse().map_err(|_| format!("{v:?} is not a CIDR range"))?;
        if prefix > if net.is_ipv4() { 32 } else { 128 } {
            return Err(format!("{v:?}: prefix too long"));
        }
        Matcher::Cidr { net, prefix }
    } else if mods.contains(&"gt") {
        Matcher::Number(Cmp::Gt, num(v)?)
    } else if mods.contains(&"gte") {
        Matcher::Number(Cmp::Gte, num(v)?)
    } else if mods.contains(&"lt") {
        Matcher::Number(Cmp::Lt, num(v)?)
    } else if mods.contains(&"lte") {
        Matcher::Number(Cmp::Lte, num(v)?)
    } else if mods.contains(&"contains") {
        match wildcard_regex(&format!("*{v}*"), cased) {
            Some(re) if v.contains(['*', '?']) => Matcher::Regex(Regex::new(&re).map_err(|e| e.to_string())?),
            _ => Matcher::Contains { text, cased },
        }
    } else if mods.contains(&"startswith") && !v.contains(['*', '?']) {
        Matcher::StartsWith { text, cased }
    } else if mods.contains(&"endswith") && !v.contains(['*', '?']) {
        Matcher::EndsWith { text, cased }
    } else {
        let pattern = if mods.contains(&"startswith") {
            format!("{v}*")
        } else if mods.contains(&"endswith") {
            format!("*{v}")
        } else {
            v.to_owned()
        };
        match wildcard_regex(&pattern, cased) {
            Some(re) => Matcher::Regex(Regex::new(&re).map_err(|e| e.to_string())?),
            None => Matcher::Equals { num: v.trim().parse().ok(), ip: v.parse().ok(), text, cased },
        }
    })
}

/// Recursive descent over `sel1 and not (sel2 or 1 of sel3*)`.
struct ConditionParser<'a> {
    tokens: Vec<String>,
    at: usize,
    names: &'a [&'a str],
    /// `not`s and parentheses open where the parser is.
    depth: usize,
}

/// Levels a condition may nest: the parser and every match recurse once per
/// level, and a rule file nesting thousands would overflow the stack.
const MAX_CONDITION_DEPTH: usize = 64;

impl<'a> ConditionParser<'a> {
    fn new(text: &str, names: &'a [&'a str]) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let mut word = String::new();
        for c in text.chars() {
            if c == '(' || c == ')' || c.is_whitespace() {
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word));
                }
                if !c.is_whitespace() {
                    tokens.push(c.to_string());
                }
            } else {
                word.push(c);
            }
        }
        if !word.is_empty() {
            tokens.push(word);
        }
        if tokens.is_empty() {
            return Err("condition is empty".into());
        }
        Ok(Self { tokens, at: 0, names, depth: 0 })
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn parse(mut self) -> Result<Condition, String> {
        let c = self.or()?;
        match self.peek() {
            None => Ok(c),
            Some(t) => Err(format!("condition: unexpected {t:?}")),
        }
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some("or") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Condition::Or(parts) })
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut parts = vec![self.unary()?];
        while self.peek() == Some("and") {
            self.at += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Condition::And(parts) })
    }

    /// Parses with `part` one level deeper, refusing past [`MAX_CONDITION_DEPTH`].
    fn deeper(&mut self, part: fn(&mut Self) -> Result<Condition, String>) -> Result<Condition, String> {
        if self.depth == MAX_CONDITION_DEPTH {
            return Err(format!("condition: nests deeper than {MAX_CONDITION_DEPTH} levels of `not` and parentheses"));
        }
        self.depth += 1;
        let c = part(self);
        self.depth -= 1;
        c
    }

    fn unary(&mut self) -> Result<Condition, String> {
        match self.next().as_deref() {
            Some("not") => {
                let c = self.deeper(Self::unary)?;
                Ok(Condition::Not(Box::new(c)))
            }
            Some("(") => {
                let c = self.deeper(Self::or)?;
                match self.next().as_deref() {
                    Some(")") => Ok(c),
                    _ => Err("condition: missing )".into()),
                }
            }
            Some(q @ ("1" | "any" | "all")) if self.peek() == Some("of") => {
                self.at += 1;
                let target = self.next().ok_or("condition: `of` needs a target")?;
                let picked: Vec<Condition> = self
                    .names
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| {
                        if target == "them" {
                            !n.starts_with('_')
                        } else if let Some(prefix) = target.strip_suffix('*') {
                            n.starts_with(prefix)
                        } else {
                            **n == target
                        }
                    })
                    .map(|(i, _)| Condition::Selection(i))
                    .collect();
                if picked.is_empty() {
                    return Err(format!("condition: no selection matches {target:?}"));
                }
                Ok(if q == "all" { Condition::And(picked) } else { Condition::Or(picked) })
            }
            Some(name) if !matches!(name, "and" | "or" | ")") => {
                let i = self
                    .names
                    .iter()
                    .position(|n| *n == name)
                    .ok_or_else(|| format!("condition names {name:?}, which is not a selection"))?;
                Ok(Condition::Selection(i))
            }
            Some(t) => Err(format!("condition: unexpected {t:?}")),
            None => Err("condition ends too early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest::event::{EventClass, activity};

    fn event() -> Event {
        let mut e = Event::new(EventClass::NetworkActivity, activity::NET_TRAFFIC, 0, 0, b"Modbus WRITE to PLC");
        e.message = "write multiple registers".into();
        e.src_mut().ip = "10.20.0.5".parse().ok();
        e.dst_mut().port = Some(502);
        e.device_mut().asset = Some("PLC-01".into());
        e.unmapped.insert("fortigate.policyid", "12");
        e
    }

    fn det(yaml: &str) -> Result<Detection, String> {
        let v: Yaml = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        let mut ph = Placeholders::new();
        ph.insert("plc_assets".into(), vec!["PLC-01".into(), "PLC-02".into()]);
        ph.insert("no_assets".into(), vec![]);
        Detection::compile(&v, &ph)
    }

    #[test]
    fn modifiers_and_conditions() {
        let e = event();
        for (yaml, want) in [
            ("sel: {dst.port: 502}\ncondition: sel", true),
            ("sel: {DestinationPort: '502'}\ncondition: sel", true),
            ("sel: {src.ip|cidr: 10.20.0.0/16}\ncondition: sel", true),
            ("sel: {src.ip|cidr: 10.10.0.0/16}\ncondition: sel", false),
            ("sel: {message|contains: MULTIPLE}\ncondition: sel", true),
            ("sel: {message|contains|cased: MULTIPLE}\ncondition: sel", false),
            ("sel: {message: 'write*registers'}\ncondition: sel", true),
            ("sel: {message|startswith: write}\ncondition: sel", true),
            ("sel: {message|endswith: [nope, registers]}\ncondition: sel", true),
            ("sel: {message|contains|all: [write, nope]}\ncondition: sel", false),
            ("sel: {message|re: '^w.*s$'}\ncondition: sel", true),
            ("sel: {dst.port|gte: 500}\ncondition: sel", true),
            ("sel: {dst.port|lt: 500}\ncondition: sel", false),
            ("sel: {zone: null}\ncondition: sel", true),
            ("sel: {zone|exists: true}\ncondition: sel", false),
            ("sel: {device.asset|expand: '%plc_assets%'}\ncondition: sel", true),
            ("sel: {device.asset|expand: '%no_assets%'}\ncondition: sel", false),
            ("sel: {device.asset|expand|all: '%no_assets%'}\ncondition: sel", false),
            ("sel: {fortigate.policyid: 12}\ncondition: sel", true),
            ("kw: [registers]\ncondition: kw", true),
            ("kw: [WRITE to plc]\ncondition: kw", true),
            ("a: {dst.port: 502}\nb: {dst.port: 1}\ncondition: a and not b", true),
            ("a: {dst.port: 502}\nb: {dst.port: 1}\ncondition: a and b", false),
            ("sel_a: {dst.port: 1}\nsel_b: {dst.port: 502}\ncondition: 1 of sel_*", true),
            ("sel_a: {dst.port: 1}\nsel_b: {dst.port: 502}\ncondition: all of sel_*", false),
            ("a: {dst.port: 1}\n_f: {dst.port: 502}\ncondition: 1 of them", false),
            ("a: {dst.port: 1}\nb: {dst.port: 502}\nc: {zone: null}\ncondition: (a or b) and c", true),
            ("m: [{dst.port: 1}, {dst.port: 502, message|contains: write}]\ncondition: m", true),
        ] {
            let d = det(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(d.matches(&e), want, "{yaml}");
        }
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for (yaml, why) in [
            ("sel: {x|frobnicate: 1}\ncondition: sel", "modifier |frobnicate"),
            ("sel: {x: 1}\ncondition: sel and other", "not a selection"),
            ("sel: {x: 1}\ncondition: (sel", "missing )"),
            ("sel: {x: 1}", "no condition"),
            ("sel: {x|re: '('}\ncondition: sel", "bad regex"),
            ("sel: {x|cidr: 10.0.0.0/40}\ncondition: sel", "prefix too long"),
            ("sel: {x|gt: many}\ncondition: sel", "not an integer"),
            ("sel: {x|expand: '%nope%'}\ncondition: sel", "unknown placeholder"),
            ("sel: {x: []}\ncondition: sel", "no values"),
        ] {
            let e = det(yaml).expect_err(yaml);
            assert!(e.contains(why), "{yaml}: {e}");
        }
    }

    #[test]
    fn conditions_nest_64_levels_and_no_deeper() {
        let event = event();
        let nested = |levels: usize| {
            let (nots, parens) = (levels / 2 + 1, levels - levels / 2 - 1);
            format!("sel: {{x: 1}}\ncondition: {}{}sel{}", "not ".repeat(nots), "(".repeat(parens), ")".repeat(parens))
        };
        let d = det(&nested(MAX_CONDITION_DEPTH)).expect("at the limit");
        assert!(d.matches(&event), "33 nots of a selection that does not match");
        let e = det(&nested(MAX_CONDITION_DEPTH + 1)).expect_err("past the limit");
        assert!(e.contains("deeper than 64"), "{e}");
        // A rule file nesting many thousands is refused, not a stack overflow.
        assert!(det(&nested(100_000)).is_err());
    }
}
