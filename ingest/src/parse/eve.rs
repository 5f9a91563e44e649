//! Suricata EVE JSON records: `alert`, `flow`, `anomaly`, `modbus`, `dnp3`, `enip`.
//! OT details (function code, unit id, read / write) go into `ot`.

use crate::event::Text;
use std::borrow::Cow;

use serde_json::value::RawValue;

use super::json::{self, Members};
use super::{ParseContext, ParseError};
use crate::event::{Event, EventClass, Finding, NewValue, OtAccess, OtOperation, action, activity, severity};
use crate::time::parse_rfc3339;

const P: &str = "suricata-eve";

fn err(reason: impl Into<String>) -> ParseError {
    ParseError::new(P, reason)
}

/// Modbus function codes that change a device: write coil(s) / register(s),
/// mask write, read/write multiple, and the program / firmware functions.
pub fn modbus_access(code: u16) -> OtAccess {
    match code {
        1..=4 | 7 | 11 | 12 | 17 | 20 | 24 | 43 => OtAccess::Read,
        5 | 6 | 15 | 16 | 21 | 22 | 23 | 90 | 125 | 126 => OtAccess::Write,
        _ => OtAccess::Other,
    }
}

/// DNP3 application function codes that write or operate (IEEE 1815).
pub fn dnp3_access(code: u16) -> OtAccess {
    match code {
        1 | 129 | 130 => OtAccess::Read,
        2..=6 | 7..=12 | 13..=18 | 20..=22 | 24 | 27 | 31 => OtAccess::Write,
        _ => OtAccess::Other,
    }
}

fn u16_of(v: Option<&RawValue>) -> Option<u16> {
    json::unsigned(v?).and_then(|n| u16::try_from(n).ok())
}

fn text_of<'a>(m: &Members<'a>, name: &str) -> Option<Cow<'a, str>> {
    json::text(json::member(m, name)?)
}

/// The members of a nested object (`None` when it is not one).
fn nested<'a>(m: &Members<'a>, name: &str) -> Option<Members<'a>> {
    json::object(json::member(m, name)?.get()).ok()
}

fn modbus_ot(obj: &Members<'_>) -> Option<OtOperation> {
    let request = nested(obj, "request");
    let req = request.as_ref().unwrap_or(obj);
    let code = u16_of(json::member(req, "function_raw")).or_else(|| u16_of(json::member(req, "function_code")));
    let name = text_of(req, "function_code").map(Cow::into_owned);
    let access_text = text_of(req, "access_type").unwrap_or_default();
    let access = if access_text.contains("WRITE") {
        OtAccess::Write
    } else if access_text.contains("READ") {
        OtAccess::Read
    } else {
        code.map_or(OtAccess::Other, modbus_access)
    };
    let address = nested(req, "write")
        .or_else(|| nested(req, "read"))
        .and_then(|w| json::unsigned(json::member(&w, "address")?))
        .and_then(|a| u32::try_from(a).ok());
    Some(OtOperation {
        function_code: code,
        function: name,
        unit_id: u16_of(json::member(req, "unit_id")),
        address,
        access,
    })
}

fn dnp3_ot(obj: &Members<'_>) -> Option<OtOperation> {
    let app = nested(obj, "application")?;
    let code = u16_of(json::member(&app, "function_code"));
    Some(OtOperation {
        function_code: code,
        function: None,
        unit_id: u16_of(json::member(obj, "dst")),
        address: None,
        access: code.map_or(OtAccess::Other, dnp3_access),
    })
}

fn enip_ot(obj: &Members<'_>) -> Option<OtOperation> {
    // CIP services: 0x4C Read Tag, 0x4D Write Tag, 0x4E Read Modify Write, 0x10 Set Attribute Single.
    let service = nested(obj, "cip").and_then(|c| json::member(&c, "service")).or_else(|| json::member(obj, "service"));
    let code = u16_of(service);
    let access = match code {
        Some(0x4C | 0x52 | 0x0E | 0x01) => OtAccess::Read,
        Some(0x4D | 0x4E | 0x53 | 0x10 | 0x02) => OtAccess::Write,
        _ => OtAccess::Other,
    };
    Some(OtOperation { function_code: code, function: None, unit_id: None, address: None, access })
}

/// Members read by the mapping and not kept in `unmapped`.
const MAPPED: [&str; 7] = ["timestamp", "event_type", "src_ip", "src_port", "dest_ip", "dest_port", "app_proto"];

/// Parses one EVE JSON line. The line is read as (name, JSON text) members,
/// not into a tree: only the values the mapping needs are decoded.
pub fn parse(bytes: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| err(format!("not JSON: {e}")))?;
    let obj = json::object(text).map_err(err)?;
    let ts = text_of(&obj, "timestamp").ok_or_else(|| err("missing timestamp"))?;
    let time = parse_rfc3339(&ts).ok_or_else(|| err(format!("bad timestamp {ts:?}")))?;
    let event_type = text_of(&obj, "event_type").ok_or_else(|| err("missing event_type"))?;
    let event_type = event_type.as_ref();
    let section = nested(&obj, event_type);
    let (class, activity_id) = match event_type {
        "alert" | "anomaly" => (EventClass::DetectionFinding, activity::FINDING_CREATE),
        "flow" | "netflow" => (EventClass::NetworkActivity, activity::NET_CLOSE),
        _ if json::member(&obj, "src_ip").is_some() => (EventClass::NetworkActivity, activity::NET_TRAFFIC),
        _ => (EventClass::Base, activity::OTHER),
    };
    let mut e = Event::new(class, activity_id, time, ctx.received_at, bytes);
    e.metadata.vendor = Some("OISF".into());
    e.metadata.product = "Suricata".into();
    e.metadata.parser = match event_type {
        "alert" => "suricata-eve/alert".into(),
        "flow" => "suricata-eve/flow".into(),
        "anomaly" => "suricata-eve/anomaly".into(),
        "modbus" => "suricata-eve/modbus".into(),
        "dnp3" => "suricata-eve/dnp3".into(),
        "enip" => "suricata-eve/enip".into(),
        other => format!("suricata-eve/{other}").into(),
    };
    e.message = Text::from(event_type);
    if let Some(ip) = text_of(&obj, "src_ip").and_then(|s| crate::event::parse_ip(&s)) {
        e.src_mut().ip = Some(ip);
        e.src_mut().port = u16_of(json::member(&obj, "src_port"));
    }
    if let Some(ip) = text_of(&obj, "dest_ip").and_then(|s| crate::event::parse_ip(&s)) {
        e.dst_mut().ip = Some(ip);
        e.dst_mut().port = u16_of(json::member(&obj, "dest_port"));
    }
    e.protocol = text_of(&obj, "app_proto")
        .filter(|p| p != "failed")
        .or(matches!(event_type, "modbus" | "dnp3" | "enip").then_some(Cow::Borrowed(event_type)))
        .or_else(|| text_of(&obj, "proto"))
        .map(|p| crate::event::ascii_lowercase(&p));
    match (event_type, &section) {
        ("alert", Some(a)) => {
            e.severity_id = match json::member(a, "severity").and_then(json::unsigned) {
                Some(1) => severity::HIGH,
                Some(2) => severity::MEDIUM,
                Some(3) => severity::LOW,
                _ => severity::UNKNOWN,
            };
            e.action_id = match text_of(a, "action").as_deref() {
                Some("blocked") => Some(action::DENIED),
                Some("allowed") => Some(action::ALLOWED),
                _ => None,
            };
            let title = text_of(a, "signature").map_or_else(|| Text::from("Suricata alert"), Text::from);
            e.message.clone_from(&title);
            e.finding = Some(Finding {
                uid: json::member(a, "signature_id")
                    .map(|s| json::text(s).map_or_else(|| Text::from(s.get()), Text::from)),
                title,
                category: text_of(a, "category").map(Text::from),
            });
        }
        ("anomaly", Some(a)) => {
            let title = text_of(a, "event").map_or_else(|| Text::from("anomaly"), Text::from);
            e.severity_id = severity::LOW;
            e.finding = Some(Finding { uid: None, title, category: text_of(a, "type").map(Text::from) });
        }
        ("modbus", Some(m)) => e.ot = modbus_ot(m),
        ("dnp3", Some(d)) => e.ot = dnp3_ot(d),
        ("enip", Some(d)) => e.ot = enip_ot(d),
        _ => {}
    }
    if let Some(op) = &e.ot {
        e.message = crate::event::format_text!(
            "{event_type} {}",
            if op.access == OtAccess::Write { "write" } else { "operation" }
        );
    }
    // The rest goes to `unmapped`: strings as text, anything else as its JSON text.
    let rest = obj.iter().filter(|(k, _)| !MAPPED.contains(&k.0.as_ref())).map(|(k, v)| {
        let value = match json::text(v) {
            Some(Cow::Borrowed(t)) => NewValue::Text(t),
            Some(Cow::Owned(t)) => NewValue::Owned(t),
            None => NewValue::Raw(v),
        };
        (k.0.as_ref(), value)
    });
    e.unmapped.extend_prefixed("eve.", rest);
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: ParseContext<'static> = ParseContext::new("eve", 1_795_000_000_000);

    #[test]
    fn modbus_write_request() {
        let line = br#"{"timestamp":"2026-11-26T10:00:00.250000+0000","flow_id":1,"event_type":"modbus","src_ip":"10.10.1.50","src_port":50123,"dest_ip":"10.10.1.10","dest_port":502,"proto":"TCP","modbus":{"id":1,"request":{"transaction_id":7,"protocol_id":0,"unit_id":1,"function_raw":6,"function_code":"WrSingleReg","access_type":"WRITE | SINGLE","write":{"address":40001,"data":12}}}}"#;
        let e = parse(line, &CTX).expect("parses");
        assert_eq!((e.class_uid, e.activity_id), (4001, 6));
        assert_eq!(Some(e.time), parse_rfc3339("2026-11-26T10:00:00.250Z"));
        let ot = e.ot.expect("ot details");
        assert_eq!(ot.access, OtAccess::Write);
        assert_eq!(ot.function_code, Some(6));
        assert_eq!(ot.unit_id, Some(1));
        assert_eq!(ot.address, Some(40001));
        assert_eq!(e.protocol.as_deref(), Some("modbus"));
    }

    #[test]
    fn modbus_read_by_code_only() {
        let line = br#"{"timestamp":"2026-11-26T10:00:00Z","event_type":"modbus","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","modbus":{"request":{"function_code":3}}}"#;
        assert_eq!(parse(line, &CTX).expect("parses").ot.map(|o| o.access), Some(OtAccess::Read));
    }

    #[test]
    fn alert_becomes_finding() {
        let line = br#"{"timestamp":"2026-11-26T10:00:00Z","event_type":"alert","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":502,"proto":"TCP","alert":{"action":"allowed","signature_id":2100001,"signature":"OT Modbus write from unknown host","category":"Attempted Administrator Privilege Gain","severity":1}}"#;
        let e = parse(line, &CTX).expect("parses");
        assert_eq!(e.class_uid, 2004);
        assert_eq!(e.severity_id, severity::HIGH);
        let f = e.finding.expect("finding");
        assert_eq!(f.uid.as_deref(), Some("2100001"));
        assert_eq!(f.title, "OT Modbus write from unknown host");
    }

    #[test]
    fn flow_and_dnp3() {
        let flow = br#"{"timestamp":"2026-11-26T10:00:00Z","event_type":"flow","src_ip":"fe80::1","dest_ip":"fe80::2","proto":"UDP","flow":{"pkts_toserver":3}}"#;
        let e = parse(flow, &CTX).expect("parses");
        assert_eq!((e.class_uid, e.activity_id), (4001, 2));
        assert!(e.unmapped.contains_key("eve.flow"));
        let dnp3 = br#"{"timestamp":"2026-11-26T10:00:00Z","event_type":"dnp3","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","dnp3":{"type":"request","dst":10,"application":{"function_code":5}}}"#;
        assert_eq!(parse(dnp3, &CTX).expect("parses").ot.map(|o| o.access), Some(OtAccess::Write));
    }

    #[test]
    fn errors_name_the_problem() {
        for (line, why) in [
            (&b"{not json"[..], "not JSON"),
            (b"[1,2]", "not a JSON object"),
            (b"{\"event_type\":\"flow\"}", "missing timestamp"),
            (b"{\"timestamp\":\"yesterday\",\"event_type\":\"flow\"}", "bad timestamp"),
            (b"{\"timestamp\":\"2026-11-26T10:00:00Z\"}", "missing event_type"),
        ] {
            let e = parse(line, &CTX).expect_err("must fail");
            assert!(e.reason.contains(why), "{e}");
        }
    }
}
