//! FortiGate (FortiOS) key=value logs: `type` traffic, utm and event;
//! `eventtime` in s, ms, µs or ns; `date`/`time` with `tz` otherwise.

use std::borrow::Cow;

use super::syslog::Message;
use super::{ParseContext, ParseError};
use crate::event::{Endpoint, Event, EventClass, Finding, action, activity, severity, status};
use crate::time::{epoch_to_millis, parse_offset, parse_rfc3339};

const P: &str = "fortigate";

/// FortiGate logs always carry `logid` and `devid`.
pub fn looks_like(pairs: &[(&str, Cow<'_, str>)]) -> bool {
    pairs.iter().any(|(k, _)| *k == "logid") && pairs.iter().any(|(k, _)| *k == "devid")
}

fn severity_id(level: &str) -> u8 {
    match level {
        "emergency" => severity::FATAL,
        "alert" | "critical" => severity::CRITICAL,
        "error" => severity::HIGH,
        "warning" => severity::MEDIUM,
        "notice" => severity::LOW,
        _ => severity::INFORMATIONAL,
    }
}

/// IANA protocol number to name for the protocols firewalls log most.
fn proto_name(p: &str) -> String {
    match p {
        "1" => "icmp".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "58" => "ipv6-icmp".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// Maps FortiGate pairs to an event.
pub fn map(
    pairs: &[(&str, Cow<'_, str>)],
    raw: &[u8],
    header: &Message<'_>,
    ctx: &ParseContext<'_>,
) -> Result<Event, ParseError> {
    let kv: super::kv::FieldMap<'_> = pairs.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    let get = |k: &str| kv.get(k).copied().filter(|v| !v.is_empty());
    let time = if let Some(t) = get("eventtime") {
        let n: i64 = t.parse().map_err(|_| ParseError::new(P, format!("eventtime {t:?} is not a number")))?;
        epoch_to_millis(n)
    } else if let (Some(d), Some(t)) = (get("date"), get("time")) {
        let offset = get("tz").and_then(parse_offset).unwrap_or(ctx.default_offset_min);
        let sign = if offset < 0 { '-' } else { '+' };
        let iso = format!("{d}T{t}{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60);
        parse_rfc3339(&iso).ok_or_else(|| ParseError::new(P, format!("bad date/time {d:?} {t:?}")))?
    } else {
        header.time.unwrap_or(ctx.received_at)
    };
    let kind = get("type").unwrap_or("");
    let act = get("action").unwrap_or("");
    let denied = matches!(act, "deny" | "blocked" | "block" | "dropped" | "ip-conn");
    let (class, activity_id) = match kind {
        "traffic" => (EventClass::NetworkActivity, if denied { activity::NET_REFUSE } else { activity::NET_TRAFFIC }),
        "utm" | "anomaly" => (EventClass::DetectionFinding, activity::FINDING_CREATE),
        "event" if get("logdesc").is_some_and(|d| d.to_ascii_lowercase().contains("login")) => {
            (EventClass::Authentication, activity::AUTH_LOGON)
        }
        _ => (EventClass::Base, activity::OTHER),
    };
    let mut e = Event::new(class, activity_id, time, ctx.received_at, raw);
    e.severity_id = severity_id(get("level").unwrap_or("information"));
    e.metadata.vendor = Some("Fortinet".into());
    e.metadata.product = "FortiGate".into();
    e.metadata.parser = "syslog/fortigate".into();
    e.message = get("msg").or(get("logdesc")).unwrap_or(kind).to_owned();
    match class {
        EventClass::NetworkActivity => {
            e.action_id = Some(if denied { action::DENIED } else { action::ALLOWED });
        }
        EventClass::DetectionFinding => {
            e.finding = Some(Finding {
                uid: get("attackid").or(get("logid")).map(str::to_owned),
                title: get("attack").or(get("virus")).or(get("msg")).unwrap_or("FortiGate UTM event").to_owned(),
                category: get("subtype").map(str::to_owned),
            });
        }
        EventClass::Authentication => {
            e.status_id = Some(if get("status") == Some("success") { status::SUCCESS } else { status::FAILURE });
        }
        _ => {}
    }
    if let Some(u) = get("user").or(get("srcuser")) {
        e.actor_mut().user = Some(u.to_owned());
    }
    e.src = Endpoint::from_fields(get("srcip"), get("srcport"), get("srcmac"), get("srcname"));
    e.dst = Endpoint::from_fields(get("dstip"), get("dstport"), get("dstmac"), None);
    e.protocol = get("app").or(get("service")).map(str::to_ascii_lowercase).or_else(|| get("proto").map(proto_name));
    let d = e.device_mut();
    d.hostname = get("devname").map(str::to_owned);
    d.vendor = Some("Fortinet".into());
    d.model = get("devid").map(str::to_owned);
    d.kind = Some("firewall".into());
    const MAPPED: [&str; 20] = [
        "date",
        "time",
        "eventtime",
        "tz",
        "type",
        "action",
        "level",
        "msg",
        "logdesc",
        "attack",
        "attackid",
        "user",
        "srcuser",
        "srcip",
        "srcport",
        "srcmac",
        "dstip",
        "dstport",
        "dstmac",
        "devname",
    ];
    for (k, v) in pairs {
        if !MAPPED.contains(k) {
            e.unmapped.insert(format!("fortigate.{k}"), v.as_ref().into());
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use crate::parse::{Format, ParseContext};

    const CTX: ParseContext<'static> = ParseContext::new("fw", 1_795_000_000_000);

    #[test]
    fn traffic_deny_with_ns_eventtime() {
        let line = br#"<189>1 2026-11-26T10:00:00Z fw01 - - - - date=2026-11-26 time=10:00:00 devname="FGT-CELL" devid="FG100F" eventtime=1795000000123456789 tz="+0100" logid="0000000013" type="traffic" subtype="forward" level="warning" srcip=10.20.0.5 srcport=51515 dstip=10.10.1.10 dstport=502 proto=6 action="deny" policyid=7 service="Modbus""#;
        let e = Format::Syslog.parse(line, &CTX).expect("parses");
        assert_eq!((e.class_uid, e.activity_id), (4001, 5));
        assert_eq!(e.action_id, Some(2));
        assert_eq!(e.time, 1_795_000_000_123);
        assert_eq!(e.src.as_ref().and_then(|s| s.port), Some(51515));
        assert_eq!(e.dst.as_ref().and_then(|s| s.ip).map(|i| i.to_string()).as_deref(), Some("10.10.1.10"));
        assert_eq!(e.protocol.as_deref(), Some("modbus"));
        assert_eq!(e.unmapped.get("fortigate.policyid"), Some(&"7".into()));
        assert_eq!(e.metadata.parser, "syslog/fortigate");
        assert_eq!(e.metadata.source, "fw");
    }

    #[test]
    fn date_time_and_tz_without_eventtime() {
        let line = br#"<189>Nov 26 10:00:00 fw01 date=2026-11-26 time=11:00:00 tz="+0100" devid="FG" logid="1" type="traffic" action="accept""#;
        let e = Format::Syslog.parse(line, &CTX).expect("parses");
        assert_eq!(Some(e.time), crate::time::parse_rfc3339("2026-11-26T10:00:00Z"));
        assert_eq!(e.action_id, Some(1));
    }

    #[test]
    fn bad_eventtime_is_an_error() {
        let line = br#"<189>Nov 26 10:00:00 fw01 eventtime=soon devid="FG" logid="1" type="traffic""#;
        let err = Format::Syslog.parse(line, &CTX).expect_err("bad eventtime");
        assert!(err.reason.contains("eventtime"), "{err}");
    }
}
