//! Palo Alto Networks PAN-OS syslog CSV, TRAFFIC and THREAT logs (positional
//! fields per "Syslog field descriptions"; quoted fields may hold commas).

use crate::event::Text;
use std::borrow::Cow;

use super::syslog::Message;
use super::{ParseContext, ParseError, csv};
use crate::event::{Event, EventClass, Finding, action, activity, severity};

const P: &str = "pan-os";

/// PAN-OS CSV has the log type in field 3 and a `yyyy/mm/dd` receive time in field 1.
pub fn looks_like(body: &str) -> bool {
    let mut it = body.splitn(5, ',');
    let (_, recv, _, kind) = (it.next(), it.next(), it.next(), it.next());
    matches!(kind, Some("TRAFFIC" | "THREAT"))
        && recv.is_some_and(|r| r.len() >= 10 && r.as_bytes().get(4) == Some(&b'/'))
}

/// `yyyy/mm/dd hh:mm:ss` in the device's zone.
fn panos_time(v: &str, offset_min: i64) -> Option<i64> {
    let iso = format!("{}T{}Z", v.get(..10)?.replace('/', "-"), v.get(11..19)?);
    crate::time::parse_rfc3339(&iso).map(|t| t - offset_min * 60_000)
}

pub fn parse(body: &str, raw: &[u8], header: &Message<'_>, ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    let f = csv::split(body.trim(), b',').ok_or_else(|| ParseError::new(P, "unterminated quoted field"))?;
    if f.len() < 31 {
        return Err(ParseError::new(P, format!("{} fields, a TRAFFIC or THREAT log has at least 31", f.len())));
    }
    let g = |i: usize| f.get(i).map(Cow::as_ref).filter(|v| !v.is_empty());
    let kind = g(3).unwrap_or("");
    let time = g(6).and_then(|t| panos_time(t, ctx.default_offset_min)).or(header.time).unwrap_or(ctx.received_at);
    let act = g(30).unwrap_or("");
    let denied = act.starts_with("deny")
        || act.starts_with("drop")
        || act.starts_with("reset")
        || act == "block-url"
        || act == "blocked";
    let (class, activity_id) = match kind {
        "TRAFFIC" => (EventClass::NetworkActivity, if denied { activity::NET_REFUSE } else { activity::NET_TRAFFIC }),
        "THREAT" => (EventClass::DetectionFinding, activity::FINDING_CREATE),
        other => return Err(ParseError::new(P, format!("log type {other:?} is neither TRAFFIC nor THREAT"))),
    };
    let mut e = Event::new(class, activity_id, time, ctx.received_at, raw);
    e.metadata.vendor = Some("Palo Alto Networks".into());
    e.metadata.product = "PAN-OS".into();
    e.metadata.parser = if kind == "TRAFFIC" { "syslog/pan-os/traffic".into() } else { "syslog/pan-os/threat".into() };
    e.action_id = Some(if denied { action::DENIED } else { action::ALLOWED });
    e.src_mut().ip = g(7).and_then(crate::event::parse_ip);
    e.dst_mut().ip = g(8).and_then(crate::event::parse_ip);
    e.src_mut().port = g(24).and_then(|v| v.parse().ok());
    e.dst_mut().port = g(25).and_then(|v| v.parse().ok());
    if let Some(u) = g(12) {
        e.actor_mut().user = Some(Text::from(u));
    }
    e.protocol =
        g(14).filter(|a| *a != "incomplete" && *a != "not-applicable").or(g(29)).map(crate::event::ascii_lowercase);
    if kind == "THREAT" {
        let sev = g(34).unwrap_or("");
        e.severity_id = match sev {
            "critical" => severity::CRITICAL,
            "high" => severity::HIGH,
            "medium" => severity::MEDIUM,
            "low" => severity::LOW,
            _ => severity::INFORMATIONAL,
        };
        let threat = g(32).unwrap_or("threat");
        e.message = Text::from(threat);
        e.finding =
            Some(Finding { uid: Some(Text::from(threat)), title: Text::from(threat), category: g(33).map(Text::from) });
    } else {
        e.severity_id = if denied { severity::LOW } else { severity::INFORMATIONAL };
        e.message = crate::event::format_text!("{} {act}", g(4).unwrap_or("traffic"));
    }
    const NAMES: [(usize, &str); 11] = [
        (2, "serial"),
        (4, "subtype"),
        (11, "rule"),
        (13, "dst_user"),
        (15, "vsys"),
        (16, "from_zone"),
        (17, "to_zone"),
        (18, "inbound_if"),
        (19, "outbound_if"),
        (22, "session_id"),
        (30, "action"),
    ];
    for (i, name) in NAMES {
        if let Some(v) = g(i) {
            e.unmapped.insert_prefixed("panos.", name, v);
        }
    }
    let tail: &[(usize, &str)] = if kind == "TRAFFIC" {
        &[(31, "bytes"), (34, "packets"), (37, "category")]
    } else {
        &[(31, "misc"), (35, "direction")]
    };
    for (i, name) in tail {
        if let Some(v) = g(*i) {
            e.unmapped.insert_prefixed("panos.", name, v);
        }
    }
    Ok(e)
}
