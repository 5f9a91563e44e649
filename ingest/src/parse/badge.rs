//! Badge (physical access control) events in Custos' JSON form, as pushed by a
//! PACS webhook or bridge:
//! `{"time": RFC 3339, "badge": "4711", "door": "CR-1", "result": "denied", "reason": "..."}`.
//! Optional: `person`, `name`, `direction` (`in` / `out`, or a word of
//! [`direction_for`]), `area_entered` / `area_exited` (the badge system's
//! names of the areas crossed, which the inventory's `[[areas]]` map),
//! `controller`; anything else is kept in `unmapped`.

use crate::event::Text;
use serde_json::Value;

use super::{ParseContext, ParseError};
use crate::event::{Event, EventClass, activity, severity, status};
use crate::time::parse_rfc3339;

const P: &str = "badge-json";

fn err(reason: impl Into<String>) -> ParseError {
    ParseError::new(P, reason)
}

/// Physical-access activity and severity for a result word.
pub fn activity_for(result: &str) -> Option<(u32, u8)> {
    Some(match result.to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
        "granted" | "access_granted" | "admitted" => (activity::BADGE_GRANTED, severity::INFORMATIONAL),
        "denied" | "access_denied" | "rejected" => (activity::BADGE_DENIED, severity::LOW),
        "forced" | "portal_forced" | "door_forced_open" => (activity::PORTAL_FORCED, severity::HIGH),
        "held_open" | "portal_held_open" | "door_open_too_long" => (activity::PORTAL_HELD_OPEN, severity::MEDIUM),
        "request_to_exit" | "rex" => (activity::REQUEST_TO_EXIT, severity::INFORMATIONAL),
        "duress" => (activity::DURESS, severity::CRITICAL),
        "antipassback" | "antipassback_violation" => (activity::ANTIPASSBACK_VIOLATION, severity::MEDIUM),
        "tamper" | "hardware_tamper" => (activity::TAMPER, severity::HIGH),
        "opened" | "door_opened" | "door_open" | "portal_opened" => (activity::PORTAL_OPENED, severity::INFORMATIONAL),
        "closed" | "door_closed" | "portal_closed" => (activity::PORTAL_CLOSED, severity::INFORMATIONAL),
        "tailgate" | "tailgating" | "tailgate_detected" | "piggybacking" | "multiple_passage" => {
            (activity::TAILGATING, severity::HIGH)
        }
        _ => return None,
    })
}

/// `in` or `out` for a direction word of a badge system, any case: entry,
/// entrance, ingress, inbound; exit, egress, outbound, leave.
pub fn direction_for(word: &str) -> Option<&'static str> {
    Some(match word.trim().to_ascii_lowercase().as_str() {
        "in" | "entry" | "enter" | "entrance" | "ingress" | "inbound" => "in",
        "out" | "exit" | "egress" | "outbound" | "leave" => "out",
        _ => return None,
    })
}

/// What a badge event whose direction is not a known word says.
pub fn unknown_direction(word: &str) -> String {
    format!("unknown direction {word:?} (in / entry or out / exit)")
}

/// Parses one badge event (a JSON object).
pub fn parse(bytes: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| err(format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| err("badge event is not a JSON object"))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let ts = text("time").ok_or_else(|| err("missing time"))?;
    let time = parse_rfc3339(ts).ok_or_else(|| err(format!("bad time {ts:?}")))?;
    let result = text("result").ok_or_else(|| err("missing result"))?;
    let (activity_id, sev) = activity_for(result).ok_or_else(|| err(format!("unknown result {result:?}")))?;
    let door = text("door").ok_or_else(|| err("missing door"))?;
    let mut e = Event::new(EventClass::PhysicalAccess, activity_id, time, ctx.received_at, bytes);
    e.severity_id = sev;
    e.door = Some(Text::from(door));
    e.status_id = match activity_id {
        activity::BADGE_GRANTED => Some(status::SUCCESS),
        activity::BADGE_DENIED => Some(status::FAILURE),
        _ => None,
    };
    if let Some(badge) = text("badge") {
        e.actor_mut().credential_uid = Some(Text::from(badge));
    }
    if let Some(person) = text("person") {
        e.actor_mut().person = Some(Text::from(person));
    }
    let reason = text("reason").map(|r| format!(": {r}")).unwrap_or_default();
    e.message = crate::event::format_text!("{result} at {door}{reason}");
    e.metadata.product = text("controller").map_or("PACS".into(), |c| c.to_owned().into());
    e.metadata.parser = P.into();
    match obj.get("direction") {
        Some(Value::String(word)) if !word.is_empty() => {
            let way = direction_for(word).ok_or_else(|| err(unknown_direction(word)))?;
            e.unmapped.insert(crate::event::BADGE_DIRECTION, way);
        }
        None | Some(Value::Null | Value::String(_)) => {}
        Some(other) => return Err(err(format!("direction is not text: {other}"))),
    }
    for (k, val) in obj {
        if !matches!(k.as_str(), "time" | "result" | "door" | "badge" | "person" | "direction") {
            e.unmapped.insert_prefixed("badge.", k, val.clone());
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: ParseContext<'static> = ParseContext::new("badge", 1_795_000_000_000);

    #[test]
    fn denied_with_reason() {
        let e = parse(br#"{"time":"2026-11-26T10:00:00Z","badge":"4711","door":"CR-DOOR-1","result":"denied","reason":"not authorised","direction":"in"}"#, &CTX).expect("parses");
        assert_eq!((e.class_uid, e.activity_id, e.type_uid), (9001, 2, 900_102));
        assert_eq!(e.status_id, Some(status::FAILURE));
        assert_eq!(e.door.as_deref(), Some("CR-DOOR-1"));
        assert_eq!(e.actor.and_then(|a| a.credential_uid).as_deref(), Some("4711"));
        assert_eq!(e.message, "denied at CR-DOOR-1: not authorised");
        assert_eq!(e.unmapped.get_str("badge.direction"), Some("in"));
        let exit =
            br#"{"time":"2026-11-26T10:00:00Z","badge":"4711","door":"D1","result":"granted","direction":"Exit"}"#;
        assert_eq!(
            parse(exit, &CTX).expect("parses").unmapped.get_str("badge.direction"),
            Some("out"),
            "a word of its own"
        );
        let odd = br#"{"time":"2026-11-26T10:00:00Z","badge":"4711","door":"D1","result":"granted","direction":"up"}"#;
        let bad = parse(odd, &CTX).expect_err("unknown direction");
        assert!(bad.reason.contains(r#"unknown direction "up""#), "{bad}");
        let number = br#"{"time":"2026-11-26T10:00:00Z","badge":"4711","door":"D1","result":"granted","direction":1}"#;
        assert!(parse(number, &CTX).expect_err("a number").reason.contains("direction is not text: 1"));
    }

    #[test]
    fn every_activity_word() {
        for (w, a) in [
            ("Access Granted", 1),
            ("forced", 3),
            ("held-open", 4),
            ("rex", 5),
            ("duress", 6),
            ("antipassback", 7),
            ("tamper", 8),
            ("Door opened", 9),
            ("door closed", 10),
            ("Tailgate Detected", 11),
        ] {
            assert_eq!(activity_for(w).map(|x| x.0), Some(a), "{w}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        for (line, why) in [
            (&br#"{"badge":"1","door":"d","result":"granted"}"#[..], "missing time"),
            (br#"{"time":"2026-11-26T10:00:00Z","door":"d","result":"teleported"}"#, "unknown result"),
            (br#"{"time":"2026-11-26T10:00:00Z","result":"granted"}"#, "missing door"),
            (b"\"just a string\"", "not a JSON object"),
        ] {
            let e = parse(line, &CTX).expect_err("must fail");
            assert!(e.reason.contains(why), "{e}");
        }
    }
}
