//! IBM QRadar LEEF 1.0 (`LEEF:1.0|Vendor|Product|Version|EventID|` + tab-separated
//! attributes) and 2.0 (`LEEF:2.0|...|EventID|Delimiter|`, the delimiter a
//! character or hex such as `x5E` / `0x5E`). `devTime` with `devTimeFormat`.

use super::syslog::Message;
use super::{ParseContext, ParseError};
use crate::event::Text;
use crate::event::{Endpoint, Event, EventClass, Finding, action, activity, severity, status};
use crate::time::{epoch_to_millis, parse_rfc3339};

const P: &str = "leef";

fn err(reason: impl Into<String>) -> ParseError {
    ParseError::new(P, reason)
}

fn delimiter(spec: &str) -> Result<char, ParseError> {
    let hex = spec.strip_prefix("0x").or_else(|| spec.strip_prefix("x")).or_else(|| spec.strip_prefix("X"));
    match (hex, spec.chars().count()) {
        (Some(h), _) if !h.is_empty() => u32::from_str_radix(h, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| err(format!("bad hex delimiter {spec:?}"))),
        (_, 1) => spec.chars().next().ok_or_else(|| err("empty delimiter")),
        (_, 0) => Ok('\t'),
        _ => Err(err(format!("delimiter {spec:?} is neither one character nor hex"))),
    }
}

/// `devTime` in the common `devTimeFormat`s: `MMM dd yyyy HH:mm:ss[.SSS] [zzz]`,
/// `yyyy-MM-dd'T'HH:mm:ss...` (RFC 3339) or epoch.
fn dev_time(v: &str) -> Option<i64> {
    if let Ok(n) = v.parse::<i64>() {
        return Some(epoch_to_millis(n));
    }
    if let Some(t) = parse_rfc3339(v) {
        return Some(t);
    }
    let (t, zone) = crate::time::parse_mmm_dd_yyyy(v)?;
    Some(t - zone.and_then(crate::time::parse_offset).unwrap_or(0) * 60_000)
}

/// Maps a LEEF record (the syslog body from `LEEF:` on) to an event.
pub fn parse(
    text: &str,
    raw: &[u8],
    header: Option<&Message<'_>>,
    ctx: &ParseContext<'_>,
) -> Result<Event, ParseError> {
    let body = text.strip_prefix("LEEF:").ok_or_else(|| err("does not start with LEEF:"))?;
    let mut parts = body.splitn(6, '|');
    let version = parts.next().unwrap_or("");
    let vendor = parts.next().ok_or_else(|| err("header ends before Vendor"))?;
    let product = parts.next().ok_or_else(|| err("header ends before Product"))?;
    let product_version = parts.next().ok_or_else(|| err("header ends before Version"))?;
    let rest = parts.next().ok_or_else(|| err("header ends before EventID"))?;
    let tail = parts.next().unwrap_or("");
    let (event_id, delim, attrs) = match version {
        "1.0" | "1" => (rest, '\t', tail),
        "2.0" | "2" => {
            // 2.0: EventID|Delimiter|attributes — `tail` holds `Delimiter|attributes`.
            let (spec, attrs) = tail.split_once('|').ok_or_else(|| err("LEEF 2.0 header ends before the delimiter"))?;
            (rest, delimiter(spec)?, attrs)
        }
        v => return Err(err(format!("unsupported LEEF version {v:?}"))),
    };
    let mut kv = super::kv::FieldMap::default();
    let mut order = Vec::new();
    for attr in attrs.split(delim).filter(|a| !a.is_empty()) {
        let (k, v) = attr.split_once('=').ok_or_else(|| err(format!("attribute {attr:?} is not key=value")))?;
        kv.insert(k, v);
        order.push((k, v));
    }
    let get = |k: &str| kv.get(k).copied().filter(|v| !v.is_empty());
    let time = get("devTime").and_then(dev_time).or(header.and_then(|h| h.time)).unwrap_or(ctx.received_at);
    let lower = event_id.to_ascii_lowercase();
    let (class, activity_id) =
        if ["logon", "login", "auth"].iter().any(|k| lower.contains(k)) && get("usrName").is_some() {
            (EventClass::Authentication, activity::AUTH_LOGON)
        } else if get("src").is_some()
            && get("dst").is_some()
            && get("cat").is_none_or(|c| !c.to_ascii_lowercase().contains("attack"))
        {
            (EventClass::NetworkActivity, activity::NET_TRAFFIC)
        } else {
            (EventClass::DetectionFinding, activity::FINDING_CREATE)
        };
    let mut e = Event::new(class, activity_id, time, ctx.received_at, raw);
    e.metadata.vendor = Some(vendor.to_owned().into());
    e.metadata.product = product.to_owned().into();
    e.metadata.version = Some(Text::from(product_version));
    e.metadata.parser = "leef".into();
    e.message = Text::from(event_id);
    e.severity_id = match get("sev").and_then(|s| s.parse::<u8>().ok()) {
        Some(0..=2) => severity::LOW,
        Some(3..=5) => severity::MEDIUM,
        Some(6..=8) => severity::HIGH,
        Some(9..=10) => severity::CRITICAL,
        _ => severity::INFORMATIONAL,
    };
    match class {
        EventClass::Authentication => {
            let failed = lower.contains("fail") || get("outcome").is_some_and(|o| o.eq_ignore_ascii_case("failure"));
            e.status_id = Some(if failed { status::FAILURE } else { status::SUCCESS });
        }
        EventClass::NetworkActivity => {
            e.action_id = get("action").map(|a| match a.to_ascii_lowercase().as_str() {
                "allow" | "allowed" | "accept" | "permit" => action::ALLOWED,
                "deny" | "denied" | "drop" | "block" | "blocked" | "reject" => action::DENIED,
                _ => activity::OTHER as u8,
            });
        }
        _ => {
            e.finding = Some(Finding {
                uid: Some(Text::from(event_id)),
                title: Text::from(event_id),
                category: get("cat").map(Text::from),
            })
        }
    }
    if let Some(u) = get("usrName") {
        e.actor_mut().user = Some(Text::from(u));
    }
    e.src = Endpoint::from_fields(get("src"), get("srcPort"), get("srcMAC"), None);
    e.dst = Endpoint::from_fields(get("dst"), get("dstPort"), get("dstMAC"), None);
    if class == EventClass::Authentication
        && let Some(dst) = e.dst.clone()
    {
        e.device_mut().ip = dst.ip;
    }
    e.protocol = get("proto").map(crate::event::ascii_lowercase);
    const MAPPED: [&str; 12] =
        ["devTime", "sev", "usrName", "src", "srcPort", "srcMAC", "dst", "dstPort", "dstMAC", "proto", "action", "cat"];
    for (k, v) in order {
        if !MAPPED.contains(&k) {
            e.unmapped.insert_prefixed("leef.", k, v);
        }
    }
    if let Some(c) = get("cat") {
        e.unmapped.insert("leef.cat", c);
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: ParseContext<'static> = ParseContext::new("leef", 1_795_000_000_000);

    #[test]
    fn leef_1_tabs_and_2_hex_delimiter() {
        let one = "LEEF:1.0|Vendor|Prod|1.2|Traffic|src=10.0.0.1\tdst=10.0.0.2\tdstPort=502\tproto=TCP\taction=block\tdevTime=1795000000123";
        let e = parse(one, one.as_bytes(), None, &CTX).expect("1.0");
        assert_eq!((e.class_uid, e.action_id, e.time), (4001, Some(action::DENIED), 1_795_000_000_123));
        let two = "LEEF:2.0|Vendor|Prod|1.2|UserLogon|x5E|usrName=alice^src=10.0.0.5^dst=10.10.1.20^devTime=Nov 26 2026 10:00:00^devTimeFormat=MMM dd yyyy HH:mm:ss";
        let e = parse(two, two.as_bytes(), None, &CTX).expect("2.0");
        assert_eq!(e.class_uid, 3002);
        assert_eq!(Some(e.time), parse_rfc3339("2026-11-26T10:00:00Z"));
        assert_eq!(e.unmapped.get_str("leef.devTimeFormat"), Some("MMM dd yyyy HH:mm:ss"));
        let caret = "LEEF:2.0|V|P|1|E|^|a=1^b=2";
        assert_eq!(parse(caret, caret.as_bytes(), None, &CTX).expect("caret").unmapped.len(), 2);
    }

    #[test]
    fn errors() {
        for (t, why) in [
            ("LEEF:3.0|V|P|1|E|", "unsupported LEEF version"),
            ("LEEF:1.0|V|P", "before Version"),
            ("LEEF:2.0|V|P|1|E|xZZ|a=1", "bad hex delimiter"),
            ("LEEF:1.0|V|P|1|E|novalue", "not key=value"),
        ] {
            let e = parse(t, t.as_bytes(), None, &CTX).expect_err("must fail");
            assert!(e.reason.contains(why), "{e}");
        }
    }
}
