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

/// The fields the mapping reads; everything else goes to `unmapped`.
#[derive(Default)]
struct Known<'a> {
    date: Option<&'a str>,
    time: Option<&'a str>,
    eventtime: Option<&'a str>,
    tz: Option<&'a str>,
    kind: Option<&'a str>,
    action: Option<&'a str>,
    level: Option<&'a str>,
    msg: Option<&'a str>,
    logdesc: Option<&'a str>,
    attack: Option<&'a str>,
    attackid: Option<&'a str>,
    user: Option<&'a str>,
    srcip: Option<&'a str>,
    srcport: Option<&'a str>,
    srcmac: Option<&'a str>,
    dstip: Option<&'a str>,
    dstport: Option<&'a str>,
    dstmac: Option<&'a str>,
    devname: Option<&'a str>,
}

/// Maps FortiGate pairs to an event (one pass over the pairs, no lookup table).
pub fn map(
    pairs: &[(&str, Cow<'_, str>)],
    raw: &[u8],
    header: &Message<'_>,
    ctx: &ParseContext<'_>,
) -> Result<Event, ParseError> {
    let mut k = Known::default();
    let (mut srcname, mut status_v, mut virus, mut subtype, mut logid, mut devid, mut app, mut service, mut proto) =
        (None, None, None, None, None, None, None, None, None);
    let mut rest: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
    for (key, v) in pairs {
        let v = v.as_ref();
        let val = (!v.is_empty()).then_some(v);
        let slot = match *key {
            "date" => &mut k.date,
            "time" => &mut k.time,
            "eventtime" => &mut k.eventtime,
            "tz" => &mut k.tz,
            "type" => &mut k.kind,
            "action" => &mut k.action,
            "level" => &mut k.level,
            "msg" => &mut k.msg,
            "logdesc" => &mut k.logdesc,
            "attack" => &mut k.attack,
            "attackid" => &mut k.attackid,
            "user" | "srcuser" => &mut k.user,
            "srcip" => &mut k.srcip,
            "srcport" => &mut k.srcport,
            "srcmac" => &mut k.srcmac,
            "dstip" => &mut k.dstip,
            "dstport" => &mut k.dstport,
            "dstmac" => &mut k.dstmac,
            "devname" => &mut k.devname,
            other => {
                // Read by the mapping and also kept as vendor fields.
                match other {
                    "srcname" => srcname = val,
                    "status" => status_v = val,
                    "virus" => virus = val,
                    "subtype" => subtype = val,
                    "logid" => logid = val,
                    "devid" => devid = val,
                    "app" => app = val,
                    "service" => service = val,
                    "proto" => proto = val,
                    _ => {}
                }
                rest.push((other, v));
                continue;
            }
        };
        if slot.is_none() {
            *slot = val;
        }
    }
    let time = if let Some(t) = k.eventtime {
        let n: i64 = t.parse().map_err(|_| ParseError::new(P, format!("eventtime {t:?} is not a number")))?;
        epoch_to_millis(n)
    } else if let (Some(d), Some(t)) = (k.date, k.time) {
        let offset = k.tz.and_then(parse_offset).unwrap_or(ctx.default_offset_min);
        let sign = if offset < 0 { '-' } else { '+' };
        let iso = format!("{d}T{t}{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60);
        parse_rfc3339(&iso).ok_or_else(|| ParseError::new(P, format!("bad date/time {d:?} {t:?}")))?
    } else {
        header.time.unwrap_or(ctx.received_at)
    };
    let kind = k.kind.unwrap_or("");
    let act = k.action.unwrap_or("");
    let denied = matches!(act, "deny" | "blocked" | "block" | "dropped" | "ip-conn");
    let (class, activity_id) = match kind {
        "traffic" => (EventClass::NetworkActivity, if denied { activity::NET_REFUSE } else { activity::NET_TRAFFIC }),
        "utm" | "anomaly" => (EventClass::DetectionFinding, activity::FINDING_CREATE),
        "event" if k.logdesc.is_some_and(|d| d.to_ascii_lowercase().contains("login")) => {
            (EventClass::Authentication, activity::AUTH_LOGON)
        }
        _ => (EventClass::Base, activity::OTHER),
    };
    let mut e = Event::new(class, activity_id, time, ctx.received_at, raw);
    e.severity_id = severity_id(k.level.unwrap_or("information"));
    e.metadata.vendor = Some("Fortinet".into());
    e.metadata.product = "FortiGate".into();
    e.metadata.parser = "syslog/fortigate".into();
    e.message = k.msg.or(k.logdesc).unwrap_or(kind).to_owned();
    match class {
        EventClass::NetworkActivity => e.action_id = Some(if denied { action::DENIED } else { action::ALLOWED }),
        EventClass::DetectionFinding => {
            e.finding = Some(Finding {
                uid: k.attackid.or(logid).map(str::to_owned),
                title: k.attack.or(virus).or(k.msg).unwrap_or("FortiGate UTM event").to_owned(),
                category: subtype.map(str::to_owned),
            });
        }
        EventClass::Authentication => {
            e.status_id = Some(if status_v == Some("success") { status::SUCCESS } else { status::FAILURE });
        }
        _ => {}
    }
    if let Some(u) = k.user {
        e.actor_mut().user = Some(u.to_owned());
    }
    e.src = Endpoint::from_fields(k.srcip, k.srcport, k.srcmac, srcname);
    e.dst = Endpoint::from_fields(k.dstip, k.dstport, k.dstmac, None);
    e.protocol = app.or(service).map(str::to_ascii_lowercase).or_else(|| proto.map(proto_name));
    let d = e.device_mut();
    d.hostname = k.devname.map(str::to_owned);
    d.vendor = Some("Fortinet".into());
    d.model = devid.map(str::to_owned);
    d.kind = Some("firewall".into());
    // Built in one go: the map is empty here, and a bulk build beats inserts.
    e.unmapped = rest.into_iter().map(|(key, v)| (super::prefixed("fortigate.", key), v.into())).collect();
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
