//! Physical access control (PACS) exports: Gallagher Command Centre REST
//! events, Lenel OnGuard access events, and delimited exports (Genetec
//! Security Center, C•CURE 9000 or any other) read through a [`BadgeMapping`].

use crate::event::Text;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use super::badge::{activity_for, direction_for, unknown_direction};
use super::{ParseContext, ParseError, csv};
use crate::event::{Event, EventClass, activity, status};
use crate::time::{Millis, days_from_civil, parse_rfc3339};

fn err(parser: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError::new(parser, reason)
}

/// The fields every badge event needs, however the vendor names them.
struct Badge<'a> {
    time: Millis,
    result: &'a str,
    reason: Option<String>,
    door: String,
    badge: Option<String>,
    person_name: Option<String>,
}

fn build(parser: &'static str, b: Badge<'_>, raw: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    // "Access denied: insufficient privileges" → result word + reason.
    let (word, inline_reason) = match b.result.split_once(':') {
        Some((w, r)) => (w.trim(), Some(r.trim().to_owned())),
        None => (b.result.trim(), None),
    };
    let (activity_id, sev) =
        activity_for(word).ok_or_else(|| err(parser, format!("unknown access result {word:?}")))?;
    let mut e = Event::new(EventClass::PhysicalAccess, activity_id, b.time, ctx.received_at, raw);
    e.severity_id = sev;
    e.status_id = match activity_id {
        activity::BADGE_GRANTED => Some(status::SUCCESS),
        activity::BADGE_DENIED => Some(status::FAILURE),
        _ => None,
    };
    let reason = b.reason.or(inline_reason).filter(|r| !r.is_empty());
    e.message = crate::event::format_text!(
        "{word} at {}{}",
        b.door,
        reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
    );
    e.door = Some(Text::from(b.door));
    if let Some(badge) = b.badge.filter(|x| !x.is_empty()) {
        e.actor_mut().credential_uid = Some(Text::from(badge));
    }
    if let Some(name) = b.person_name.filter(|x| !x.is_empty()) {
        e.unmapped.insert("badge.person_name", name);
    }
    if let Some(r) = reason {
        e.unmapped.insert("badge.reason", r);
    }
    e.metadata.parser = parser.into();
    Ok(e)
}

/// A Gallagher Command Centre REST `/api/events` item.
pub fn gallagher(bytes: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    const P: &str = "gallagher";
    let v: Value = serde_json::from_slice(bytes).map_err(|e| err(P, format!("not JSON: {e}")))?;
    let name_of = |k: &str| v.get(k).and_then(|o| o.get("name")).and_then(Value::as_str).map(str::to_owned);
    let ts = v.get("time").and_then(Value::as_str).ok_or_else(|| err(P, "missing time"))?;
    let time = parse_rfc3339(ts).ok_or_else(|| err(P, format!("bad time {ts:?}")))?;
    // The event type names the outcome ("Card Event" types: "Access Granted", "Access Denied", "Door Forced Open" ...).
    let result = name_of("eventType").or_else(|| name_of("type")).ok_or_else(|| err(P, "missing type / eventType"))?;
    let door = name_of("door").or_else(|| name_of("source")).ok_or_else(|| err(P, "missing door and source"))?;
    let badge = v
        .get("card")
        .and_then(|c| c.get("number"))
        .and_then(|n| n.as_str().map(str::to_owned).or_else(|| n.as_u64().map(|x| x.to_string())));
    let mut e = build(
        P,
        Badge { time, result: &result, reason: None, door, badge, person_name: name_of("cardholder") },
        bytes,
        ctx,
    )?;
    e.metadata.vendor = Some("Gallagher".into());
    e.metadata.product = "Command Centre".into();
    for k in ["id", "priority", "message"] {
        if let Some(x) = v.get(k) {
            e.unmapped.insert_prefixed("gallagher.", k, x.clone());
        }
    }
    for k in ["entryAccessZone", "exitAccessZone", "operator"] {
        if let Some(n) = name_of(k) {
            e.unmapped.insert_prefixed("gallagher.", k, n);
        }
    }
    Ok(e)
}

/// A Lenel OnGuard access event (OpenAccess / DataConduIT field names, any case,
/// with or without underscores).
pub fn lenel(bytes: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    const P: &str = "lenel";
    let v: Value = serde_json::from_slice(bytes).map_err(|e| err(P, format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| err(P, "event is not a JSON object"))?;
    let norm: BTreeMap<String, &Value> =
        obj.iter().map(|(k, v)| (k.to_ascii_lowercase().replace('_', ""), v)).collect();
    let text =
        |k: &str| norm.get(k).and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())));
    let ts = text("timestamp").ok_or_else(|| err(P, "missing TimeStamp"))?;
    let time = parse_rfc3339(&ts).ok_or_else(|| err(P, format!("bad TimeStamp {ts:?}")))?;
    let duress = norm.get("duress").and_then(|d| d.as_bool()).unwrap_or(false);
    let access = text("accessresult");
    let result = match (duress, &access) {
        (true, _) => "duress".to_owned(),
        (false, Some(a)) => a.clone(),
        (false, None) => return Err(err(P, "missing AccessResult")),
    };
    let door = text("device").or_else(|| text("reader")).ok_or_else(|| err(P, "missing Device"))?;
    let mut e = build(
        P,
        Badge { time, result: &result, reason: text("subtype"), door, badge: text("cardnumber"), person_name: None },
        bytes,
        ctx,
    )?;
    // A duress code keeps what the reader did: a door opened under duress
    // lets its holder in, a refused one does not.
    if duress {
        e.status_id = match access.as_deref().and_then(activity_for).map(|(a, _)| a) {
            Some(activity::BADGE_GRANTED) => Some(status::SUCCESS),
            Some(activity::BADGE_DENIED) => Some(status::FAILURE),
            _ => None,
        };
    }
    e.metadata.vendor = Some("Lenel".into());
    e.metadata.product = "OnGuard".into();
    for k in ["panel", "type", "areaenteredid", "areaexitedid"] {
        if let Some(x) = norm.get(k) {
            e.unmapped.insert_prefixed("lenel.", k, (*x).clone());
        }
    }
    Ok(e)
}

/// The fields naming the area a badge event's holder entered, and the one
/// they left: the badge JSON's `area_entered` / `area_exited` (a `badge-csv`
/// mapping's columns land there too), and the vendors' own, kept in
/// `unmapped` as they sent them.
const AREA_ENTERED: [&str; 3] = ["badge.area_entered", "gallagher.entryAccessZone", "lenel.areaenteredid"];
const AREA_EXITED: [&str; 3] = ["badge.area_exited", "gallagher.exitAccessZone", "lenel.areaexitedid"];

/// The areas, as the access control system names them, that a badge event
/// says its holder entered and left: a Gallagher access zone's name, a Lenel
/// area id (a number or text).
pub fn areas_crossed(e: &Event) -> (Option<String>, Option<String>) {
    let named = |fields: [&str; 3]| {
        fields.iter().find_map(|f| {
            let v = e.unmapped.get(f)?;
            match v.as_str() {
                Some(s) => Some(s.to_owned()).filter(|s| !s.is_empty()),
                // A Lenel area id may come as a number.
                None => match v.to_json() {
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                },
            }
        })
    };
    (named(AREA_ENTERED), named(AREA_EXITED))
}

/// How to read a delimited badge export: which column holds what.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BadgeMapping {
    /// Field delimiter. Default `,`.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Column names in order; when empty the file's first line is the header.
    #[serde(default)]
    pub columns: Vec<String>,
    pub time: String,
    /// `rfc3339` (default), `epoch`, or a pattern of %Y %m %d %H %M %S %b %f and literals.
    #[serde(default = "default_time_format")]
    pub time_format: String,
    /// UTC offset of times without one, in minutes. Default 0.
    #[serde(default)]
    pub time_offset_min: i64,
    /// Column with the result word ("Access granted", "Card Rejected", ...).
    pub result: String,
    pub door: String,
    #[serde(default)]
    pub badge: Option<String>,
    #[serde(default)]
    pub person: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Extra result words of this vendor → a known word (granted, denied, forced, held_open, rex, duress, antipassback, tamper,
    /// door_opened, door_closed, tailgate); another word fails at start-up.
    #[serde(default, deserialize_with = "known_results")]
    pub results: BTreeMap<String, String>,
    /// Column with the direction through the door (in / entry, out / exit, any case):
    /// an exit takes its holder out of the door's area. Default: none.
    #[serde(default)]
    pub direction: Option<String>,
    /// Extra direction words of this vendor → `in` or `out`; another word fails at start-up.
    #[serde(default, deserialize_with = "known_directions")]
    pub directions: BTreeMap<String, String>,
    /// Columns with the area the holder entered and the one they left, as
    /// the access control system names them (the inventory's `[[areas]]
    /// pacs` names): they give the direction at any reader. Default: none.
    #[serde(default)]
    pub area_entered: Option<String>,
    #[serde(default)]
    pub area_exited: Option<String>,
}

/// A mapping's extra words, each checked to lead to a word Custos knows.
fn known_words<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &str,
    known: impl Fn(&str) -> bool,
    told: &str,
) -> Result<BTreeMap<String, String>, D::Error> {
    let words = BTreeMap::<String, String>::deserialize(d)?;
    match words.iter().find(|(_, to)| !known(to)) {
        Some((from, to)) => Err(serde::de::Error::custom(format!("{key}.{from:?}: unknown word {to:?} ({told})"))),
        None => Ok(words),
    }
}

fn known_results<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    known_words(d, "results", |w| activity_for(w).is_some(), "granted, denied, forced, held_open, rex, …")
}

fn known_directions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    known_words(d, "directions", |w| direction_for(w).is_some(), "in or out")
}

fn default_delimiter() -> char {
    ','
}
fn default_time_format() -> String {
    "rfc3339".into()
}

/// Genetec Security Center event export (Security Desk report, CSV).
pub static GENETEC_CSV: LazyLock<BadgeMapping> = LazyLock::new(|| BadgeMapping {
    delimiter: ',',
    columns: Vec::new(),
    time: "Event timestamp".into(),
    time_format: "%m/%d/%Y %H:%M:%S".into(),
    time_offset_min: 0,
    result: "Event".into(),
    door: "Door".into(),
    badge: Some("Credential".into()),
    person: Some("Cardholder".into()),
    reason: None,
    results: BTreeMap::new(),
    direction: None,
    directions: BTreeMap::new(),
    area_entered: None,
    area_exited: None,
});

/// C•CURE 9000 journal export (CSV).
pub static CCURE_CSV: LazyLock<BadgeMapping> = LazyLock::new(|| BadgeMapping {
    delimiter: ',',
    columns: Vec::new(),
    time: "Date/Time".into(),
    time_format: "%Y-%m-%d %H:%M:%S".into(),
    time_offset_min: 0,
    result: "Message Type".into(),
    door: "Door".into(),
    badge: Some("Card Number".into()),
    person: Some("Personnel".into()),
    reason: Some("Reason".into()),
    results: [("Card Admitted".to_owned(), "granted".to_owned()), ("Card Rejected".to_owned(), "denied".to_owned())]
        .into(),
    direction: None,
    directions: BTreeMap::new(),
    area_entered: None,
    area_exited: None,
});

/// Parses `v` with a strftime-like `pattern` (%Y %m %d %H %M %S %b %f).
pub fn parse_pattern(v: &str, pattern: &str, offset_min: i64) -> Option<Millis> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut ms) = (1970i64, 1u32, 1u32, 0i64, 0i64, 0i64, 0i64);
    let vb = v.as_bytes();
    let mut i = 0;
    let mut p = pattern.chars().peekable();
    let number = |i: &mut usize, max: usize| -> Option<i64> {
        let start = *i;
        while *i < vb.len() && *i - start < max && vb[*i].is_ascii_digit() {
            *i += 1;
        }
        (start != *i).then(|| v[start..*i].parse().ok()).flatten()
    };
    while let Some(c) = p.next() {
        if c != '%' {
            if vb.get(i) != Some(&(c as u8)) {
                return None;
            }
            i += 1;
            continue;
        }
        match p.next()? {
            'Y' => y = number(&mut i, 4)?,
            'm' => mo = number(&mut i, 2)? as u32,
            'd' => d = number(&mut i, 2)? as u32,
            'H' => h = number(&mut i, 2)?,
            'M' => mi = number(&mut i, 2)?,
            'S' => s = number(&mut i, 2)?,
            'f' => {
                let start = i;
                let n = number(&mut i, 9)?;
                let digits = (i - start) as u32;
                ms = if digits >= 3 { n / 10i64.pow(digits - 3) } else { n * 10i64.pow(3 - digits) };
            }
            'b' => {
                let word = v.get(i..i + 3)?;
                mo = crate::time::month_number(word)?;
                i += 3;
            }
            _ => return None,
        }
    }
    if i != vb.len() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some((days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60) * 1000 + ms)
}

/// One delimited export line read through `mapping`; `header` is the file's first line when the mapping names no columns.
pub fn delimited(
    bytes: &[u8],
    mapping: &BadgeMapping,
    header: Option<&[u8]>,
    ctx: &ParseContext<'_>,
) -> Result<Event, ParseError> {
    const P: &str = "badge-csv";
    let line =
        std::str::from_utf8(bytes).map_err(|e| err(P, format!("not valid UTF-8 at byte {}", e.valid_up_to())))?;
    let delim = u8::try_from(mapping.delimiter).map_err(|_| err(P, "delimiter must be one ASCII character"))?;
    let owned_header;
    let columns: Vec<&str> = if mapping.columns.is_empty() {
        let h = header.ok_or_else(|| err(P, "the mapping names no columns and the file has no header line"))?;
        let h = std::str::from_utf8(h).map_err(|_| err(P, "header line is not UTF-8"))?;
        owned_header = csv::split(h.trim_start_matches('\u{feff}'), delim)
            .ok_or_else(|| err(P, "header line has an unterminated quote"))?;
        owned_header.iter().map(|c| c.trim()).collect()
    } else {
        mapping.columns.iter().map(String::as_str).collect()
    };
    let values = csv::split(line, delim).ok_or_else(|| err(P, "unterminated quoted field"))?;
    if values.len() != columns.len() {
        return Err(err(P, format!("{} fields, the header has {}", values.len(), columns.len())));
    }
    let get = |name: &str| columns.iter().position(|c| *c == name).map(|i| values[i].trim()).filter(|v| !v.is_empty());
    let need = |name: &str| get(name).ok_or_else(|| err(P, format!("column {name:?} is missing or empty")));
    let tv = need(&mapping.time)?;
    let time = match mapping.time_format.as_str() {
        "rfc3339" => parse_rfc3339(tv),
        "epoch" => tv.parse::<i64>().ok().map(crate::time::epoch_to_millis),
        pattern => parse_pattern(tv, pattern, mapping.time_offset_min),
    }
    .ok_or_else(|| err(P, format!("time {tv:?} does not match {:?}", mapping.time_format)))?;
    let result_raw = need(&mapping.result)?;
    let result = mapping.results.get(result_raw).map_or(result_raw, String::as_str);
    let badge = Badge {
        time,
        result,
        reason: mapping.reason.as_deref().and_then(get).map(str::to_owned),
        door: need(&mapping.door)?.to_owned(),
        badge: mapping.badge.as_deref().and_then(get).map(str::to_owned),
        person_name: mapping.person.as_deref().and_then(get).map(str::to_owned),
    };
    let direction = match mapping.direction.as_deref().and_then(get) {
        Some(word) => {
            let known = mapping.directions.get(word).map_or(word, String::as_str);
            Some(direction_for(known).ok_or_else(|| err(P, unknown_direction(word)))?)
        }
        None => None,
    };
    let mut e = build(P, badge, bytes, ctx)?;
    e.metadata.product = "PACS export".into();
    if let Some(d) = direction {
        e.unmapped.insert(crate::event::BADGE_DIRECTION, d);
    }
    for (column, field) in [(&mapping.area_entered, AREA_ENTERED[0]), (&mapping.area_exited, AREA_EXITED[0])] {
        if let Some(area) = column.as_deref().and_then(get) {
            e.unmapped.insert(field, area);
        }
    }
    let used: Vec<&str> = [
        Some(mapping.time.as_str()),
        Some(&mapping.result),
        Some(&mapping.door),
        mapping.badge.as_deref(),
        mapping.person.as_deref(),
        mapping.reason.as_deref(),
        mapping.direction.as_deref(),
        mapping.area_entered.as_deref(),
        mapping.area_exited.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (c, v) in columns.iter().zip(values.iter()) {
        if !used.contains(c) && !v.is_empty() {
            e.unmapped.insert_prefixed("badge.", c, v.as_ref());
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: ParseContext<'static> = ParseContext::new("pacs", 1_795_000_000_000);

    #[test]
    fn gallagher_event() {
        let line = br#"{"id":"9001","time":"2026-11-26T10:00:00Z","message":"Access denied","priority":5,"type":{"id":"20002","name":"Card Event"},"eventType":{"id":"20003","name":"Access Denied"},"source":{"name":"CR-DOOR-1 Reader"},"door":{"name":"CR-DOOR-1"},"cardholder":{"name":"Mallory Moss"},"card":{"number":"4711"},"entryAccessZone":{"name":"Control Room"}}"#;
        let e = gallagher(line, &CTX).expect("parses");
        assert_eq!((e.class_uid, e.activity_id), (9001, activity::BADGE_DENIED));
        assert_eq!(e.door.as_deref(), Some("CR-DOOR-1"));
        assert_eq!(e.actor.and_then(|a| a.credential_uid).as_deref(), Some("4711"));
        assert_eq!(e.unmapped.get_str("gallagher.entryAccessZone"), Some("Control Room"));
    }

    #[test]
    fn lenel_event_any_case_and_duress() {
        let e = lenel(br#"{"TimeStamp":"2026-11-26T10:00:00Z","Panel":"P1","Device":"CR-DOOR-1","CardNumber":4711,"AccessResult":"Granted","Duress":false}"#, &CTX).expect("parses");
        assert_eq!(e.activity_id, activity::BADGE_GRANTED);
        assert_eq!(e.actor.and_then(|a| a.credential_uid).as_deref(), Some("4711"));
        let d = lenel(br#"{"time_stamp":"2026-11-26T10:00:00Z","device":"D","card_number":"1","access_result":"Granted","duress":true}"#, &CTX).expect("parses");
        assert_eq!((d.activity_id, d.status_id), (activity::DURESS, Some(status::SUCCESS)));
        assert!(d.badge_opened(), "a door opened under duress");
        let refused = lenel(br#"{"time_stamp":"2026-11-26T10:00:00Z","device":"D","card_number":"1","access_result":"Denied","duress":true}"#, &CTX).expect("parses");
        assert_eq!((refused.activity_id, refused.status_id), (activity::DURESS, Some(status::FAILURE)));
        assert!(!refused.badge_opened());
    }

    #[test]
    fn genetec_and_ccure_exports() {
        let header = b"Event timestamp,Event,Door,Cardholder,Credential,Site";
        let e = delimited(
            b"11/26/2026 10:00:00,Access denied: Insufficient privileges,CR-DOOR-1,\"Moss, Mallory\",4711,Plant A",
            &GENETEC_CSV,
            Some(header),
            &CTX,
        )
        .expect("genetec");
        assert_eq!(e.activity_id, activity::BADGE_DENIED);
        assert_eq!(e.unmapped.get_str("badge.reason"), Some("Insufficient privileges"));
        assert_eq!(e.unmapped.get_str("badge.person_name"), Some("Moss, Mallory"));
        assert_eq!(e.unmapped.get_str("badge.Site"), Some("Plant A"));
        let h2 = b"Date/Time,Message Type,Door,Personnel,Card Number,Reason";
        let c = delimited(
            b"2026-11-26 10:00:00,Card Rejected,CR-DOOR-1,Mallory Moss,4711,Clearance",
            &CCURE_CSV,
            Some(h2),
            &CTX,
        )
        .expect("ccure");
        assert_eq!(c.activity_id, activity::BADGE_DENIED);
        let f = delimited(b"11/26/2026 10:00:00,Door forced open,CR-DOOR-1,,,", &GENETEC_CSV, Some(header), &CTX)
            .expect("forced");
        assert_eq!(f.activity_id, activity::PORTAL_FORCED);
        let bad =
            delimited(b"11/26/2026 10:00:00,Access granted,CR", &GENETEC_CSV, Some(header), &CTX).expect_err("short");
        assert!(bad.reason.contains("3 fields, the header has 6"), "{bad}");
    }

    /// A direction column: the known words in any case, and the mapping's
    /// own; an unknown word is a dead letter naming it; an empty cell is no direction.
    #[test]
    fn a_direction_column() {
        let mapping: BadgeMapping = toml::from_str(
            r#"
time = "When"
result = "What"
door = "Door"
badge = "Card"
direction = "Way"
directions = { "Hinaus" = "out" }
"#,
        )
        .expect("mapping");
        let header = b"When,What,Door,Card,Way";
        let way = |line: &[u8]| {
            delimited(line, &mapping, Some(header), &CTX)
                .map(|e| e.unmapped.get_str("badge.direction").map(str::to_owned))
        };
        assert_eq!(way(b"2026-11-26T10:00:00Z,granted,D1,4711,EXIT"), Ok(Some("out".into())));
        assert_eq!(way(b"2026-11-26T10:00:00Z,granted,D1,4711,Entry"), Ok(Some("in".into())));
        assert_eq!(way(b"2026-11-26T10:00:00Z,granted,D1,4711,Hinaus"), Ok(Some("out".into())));
        assert_eq!(way(b"2026-11-26T10:00:00Z,granted,D1,4711,"), Ok(None));
        let bad = way(b"2026-11-26T10:00:00Z,granted,D1,4711,sideways").expect_err("unknown");
        assert!(bad.reason.contains(r#"unknown direction "sideways""#), "{bad}");
        let e = delimited(b"2026-11-26T10:00:00Z,granted,D1,4711,out", &mapping, Some(header), &CTX).expect("parses");
        assert_eq!(e.unmapped.get_str("badge.Way"), None, "the column is read, not kept beside");
        for (words, key) in [
            ("directions = { x = \"sideways\" }", "directions.\"x\""),
            ("results = { x = \"grantd\" }", "results.\"x\""),
        ] {
            let text = format!("time = \"t\"\nresult = \"r\"\ndoor = \"d\"\n{words}\n");
            let e = toml::from_str::<BadgeMapping>(&text).expect_err(words).to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    /// Columns naming the areas entered and left land where enrichment
    /// reads them (the inventory's `[[areas]]` then gives the direction).
    #[test]
    fn area_columns() {
        let mapping: BadgeMapping = toml::from_str(
            "time = \"When\"\nresult = \"What\"\ndoor = \"Door\"\narea_entered = \"Into\"\narea_exited = \"From\"\n",
        )
        .expect("mapping");
        let header = b"When,What,Door,Into,From";
        let e = delimited(b"2026-11-26T10:00:00Z,granted,D1,Corridor,Control Room", &mapping, Some(header), &CTX)
            .expect("parses");
        assert_eq!(areas_crossed(&e), (Some("Corridor".into()), Some("Control Room".into())));
        assert_eq!(e.unmapped.get_str("badge.Into"), None, "the column is read, not kept beside");
        let e = delimited(b"2026-11-26T10:00:00Z,granted,D1,,", &mapping, Some(header), &CTX).expect("parses");
        assert_eq!(areas_crossed(&e), (None, None), "empty cells name no area");
    }

    #[test]
    fn time_patterns() {
        assert_eq!(
            parse_pattern("26-Nov-2026 10:00:00.5", "%d-%b-%Y %H:%M:%S.%f", 60),
            parse_rfc3339("2026-11-26T09:00:00.500Z")
        );
        assert_eq!(parse_pattern("2026-11-26", "%Y-%m-%d %H", 0), None);
        assert_eq!(parse_pattern("2026-13-26", "%Y-%m-%d", 0), None);
    }
}
