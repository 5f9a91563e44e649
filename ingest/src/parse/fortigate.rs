//! FortiGate (FortiOS) key=value logs: `type` traffic, utm and event;
//! `eventtime` in s, ms, µs or ns; `date`/`time` with `tz` otherwise.

use crate::event::Text;
use std::borrow::Cow;

use super::syslog::Message;
use super::{ParseContext, ParseError, contains_ignore_case, kv};
use crate::event::{Endpoint, Event, EventClass, Finding, Unmapped, action, activity, severity, status};
use crate::time::{Millis, epoch_to_millis, parse_offset, parse_rfc3339};

const P: &str = "fortigate";

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
fn proto_name(p: &str) -> Text {
    match p {
        "1" => "icmp".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "58" => "ipv6-icmp".into(),
        other => crate::event::ascii_lowercase(other),
    }
}

// Field names as `kv::key_word`s, matched as numbers (`eventtime`, nine bytes, by name).
const DATE: u64 = kv::key_word("date");
const TIME: u64 = kv::key_word("time");
const TZ: u64 = kv::key_word("tz");
const TYPE: u64 = kv::key_word("type");
const ACTION: u64 = kv::key_word("action");
const LEVEL: u64 = kv::key_word("level");
const MSG: u64 = kv::key_word("msg");
const LOGDESC: u64 = kv::key_word("logdesc");
const ATTACK: u64 = kv::key_word("attack");
const ATTACKID: u64 = kv::key_word("attackid");
const USER: u64 = kv::key_word("user");
const SRCUSER: u64 = kv::key_word("srcuser");
const SRCIP: u64 = kv::key_word("srcip");
const SRCPORT: u64 = kv::key_word("srcport");
const SRCMAC: u64 = kv::key_word("srcmac");
const DSTIP: u64 = kv::key_word("dstip");
const DSTPORT: u64 = kv::key_word("dstport");
const DSTMAC: u64 = kv::key_word("dstmac");
const DEVNAME: u64 = kv::key_word("devname");
const SRCNAME: u64 = kv::key_word("srcname");
const STATUS: u64 = kv::key_word("status");
const VIRUS: u64 = kv::key_word("virus");
const SUBTYPE: u64 = kv::key_word("subtype");
const LOGID: u64 = kv::key_word("logid");
const DEVID: u64 = kv::key_word("devid");
const APP: u64 = kv::key_word("app");
const SERVICE: u64 = kv::key_word("service");
const PROTO: u64 = kv::key_word("proto");

/// The fields the mapping reads and does not keep in `unmapped`.
#[derive(Default)]
struct Known<'a> {
    date: Option<Cow<'a, str>>,
    time: Option<Cow<'a, str>>,
    eventtime: Option<Cow<'a, str>>,
    tz: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    action: Option<Cow<'a, str>>,
    level: Option<Cow<'a, str>>,
    msg: Option<Cow<'a, str>>,
    logdesc: Option<Cow<'a, str>>,
    attack: Option<Cow<'a, str>>,
    attackid: Option<Cow<'a, str>>,
    user: Option<Cow<'a, str>>,
    srcip: Option<Cow<'a, str>>,
    srcport: Option<Cow<'a, str>>,
    srcmac: Option<Cow<'a, str>>,
    dstip: Option<Cow<'a, str>>,
    dstport: Option<Cow<'a, str>>,
    dstmac: Option<Cow<'a, str>>,
    devname: Option<Cow<'a, str>>,
}

/// Vendor fields the mapping reads that are also kept in `unmapped`.
#[derive(Default)]
struct Vendor<'a> {
    srcname: Option<Cow<'a, str>>,
    status: Option<Cow<'a, str>>,
    virus: Option<Cow<'a, str>>,
    subtype: Option<Cow<'a, str>>,
    logid: Option<Cow<'a, str>>,
    devid: Option<Cow<'a, str>>,
    app: Option<Cow<'a, str>>,
    service: Option<Cow<'a, str>>,
    proto: Option<Cow<'a, str>>,
}

impl Vendor<'_> {
    fn get<'s>(field: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
        field.as_deref().filter(|v| !v.is_empty())
    }
}

/// Maps a FortiGate key=value body to an event in one pass over its pairs;
/// `None` when the body is not FortiGate's (not key=value, or without the
/// `logid` and `devid` every FortiGate log carries).
pub fn parse(
    body: &str,
    raw: &[u8],
    header: &Message<'_>,
    ctx: &ParseContext<'_>,
) -> Option<Result<Event, ParseError>> {
    let (mut k, mut v) = (Known::default(), Vendor::default());
    // Sized from the body: its vendor fields are a part of it, each name
    // stored with the prefix (`fortigate.`, ten bytes) on a field a dozen bytes long.
    let mut unmapped = Unmapped::with_capacity(body.len() / 12, body.len() + body.len() / 12 * 10);
    let mut pairs = kv::Pairs::new(body);
    // Vendor fields go straight to `unmapped`, without a list in between.
    let mut vendor = unmapped.prefixed("fortigate.");
    for pair in pairs.by_ref() {
        let (word, key, value) = (pair.word, pair.key, pair.value());
        let slot = match word {
            DATE => &mut k.date,
            TIME => &mut k.time,
            0 if key == "eventtime" => &mut k.eventtime,
            TZ => &mut k.tz,
            TYPE => &mut k.kind,
            ACTION => &mut k.action,
            LEVEL => &mut k.level,
            MSG => &mut k.msg,
            LOGDESC => &mut k.logdesc,
            ATTACK => &mut k.attack,
            ATTACKID => &mut k.attackid,
            USER | SRCUSER => &mut k.user,
            SRCIP => &mut k.srcip,
            SRCPORT => &mut k.srcport,
            SRCMAC => &mut k.srcmac,
            DSTIP => &mut k.dstip,
            DSTPORT => &mut k.dstport,
            DSTMAC => &mut k.dstmac,
            DEVNAME => &mut k.devname,
            _ => {
                // As in `unmapped`, the last of repeated fields counts.
                let read = match word {
                    SRCNAME => &mut v.srcname,
                    STATUS => &mut v.status,
                    VIRUS => &mut v.virus,
                    SUBTYPE => &mut v.subtype,
                    LOGID => &mut v.logid,
                    DEVID => &mut v.devid,
                    APP => &mut v.app,
                    SERVICE => &mut v.service,
                    PROTO => &mut v.proto,
                    _ => {
                        vendor.push_keyed(word.swap_bytes(), key, value);
                        continue;
                    }
                };
                *read = Some(value.clone());
                vendor.push_keyed(word.swap_bytes(), key, value);
                continue;
            }
        };
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value);
        }
    }
    drop(vendor);
    if pairs.malformed() || v.logid.is_none() || v.devid.is_none() {
        return None;
    }
    map(k, &v, unmapped, raw, header, ctx)
}

/// The event from the fields `parse` sorted out. It returns what `parse`
/// does, so that the event is built in its caller's slot (a ~1 KB move less).
fn map(
    k: Known<'_>,
    v: &Vendor<'_>,
    unmapped: Unmapped,
    raw: &[u8],
    header: &Message<'_>,
    ctx: &ParseContext<'_>,
) -> Option<Result<Event, ParseError>> {
    let [srcname, status_v, virus, subtype, logid, devid, app, service, proto] =
        [&v.srcname, &v.status, &v.virus, &v.subtype, &v.logid, &v.devid, &v.app, &v.service, &v.proto]
            .map(Vendor::get);
    let time = match event_time(&k, header, ctx) {
        Ok(time) => time,
        Err(e) => return Some(Err(e)),
    };
    let kind = k.kind.as_deref().unwrap_or("");
    let act = k.action.as_deref().unwrap_or("");
    let denied = matches!(act, "deny" | "blocked" | "block" | "dropped" | "ip-conn");
    let (class, activity_id) = match kind {
        "traffic" => (EventClass::NetworkActivity, if denied { activity::NET_REFUSE } else { activity::NET_TRAFFIC }),
        "utm" | "anomaly" => (EventClass::DetectionFinding, activity::FINDING_CREATE),
        "event" if k.logdesc.as_deref().is_some_and(|d| contains_ignore_case(d, "login")) => {
            (EventClass::Authentication, activity::AUTH_LOGON)
        }
        _ => (EventClass::Base, activity::OTHER),
    };
    let mut e = Event::new(class, activity_id, time, ctx.received_at, raw);
    e.severity_id = severity_id(k.level.as_deref().unwrap_or("information"));
    e.metadata.vendor = Some("Fortinet".into());
    e.metadata.product = "FortiGate".into();
    e.metadata.parser = "syslog/fortigate".into();
    e.message = Text::from(k.msg.as_deref().or(k.logdesc.as_deref()).unwrap_or(kind));
    match class {
        EventClass::NetworkActivity => e.action_id = Some(if denied { action::DENIED } else { action::ALLOWED }),
        EventClass::DetectionFinding => {
            e.finding = Some(Finding {
                uid: k.attackid.as_deref().or(logid).map(Text::from),
                title: Text::from(k.attack.as_deref().or(virus).or(k.msg.as_deref()).unwrap_or("FortiGate UTM event")),
                category: subtype.map(Text::from),
            });
        }
        EventClass::Authentication => {
            e.status_id = Some(if status_v == Some("success") { status::SUCCESS } else { status::FAILURE });
        }
        _ => {}
    }
    if let Some(u) = k.user.as_deref() {
        e.actor_mut().user = Some(Text::from(u));
    }
    e.src = Endpoint::from_fields(k.srcip.as_deref(), k.srcport.as_deref(), k.srcmac.as_deref(), srcname);
    e.dst = Endpoint::from_fields(k.dstip.as_deref(), k.dstport.as_deref(), k.dstmac.as_deref(), None);
    e.protocol = app.or(service).map(crate::event::ascii_lowercase).or_else(|| proto.map(proto_name));
    let d = e.device_mut();
    d.hostname = k.devname.as_deref().map(Text::from);
    d.vendor = Some("Fortinet".into());
    d.model = devid.map(Text::from);
    d.kind = Some("firewall".into());
    e.unmapped = unmapped;
    Some(Ok(e))
}

/// `eventtime` (s, ms, µs or ns), else `date` and `time` in `tz`, else the syslog header's time.
fn event_time(k: &Known<'_>, header: &Message<'_>, ctx: &ParseContext<'_>) -> Result<Millis, ParseError> {
    Ok(if let Some(t) = k.eventtime.as_deref() {
        let n: i64 = t.parse().map_err(|_| ParseError::new(P, format!("eventtime {t:?} is not a number")))?;
        epoch_to_millis(n)
    } else if let (Some(d), Some(t)) = (k.date.as_deref(), k.time.as_deref()) {
        let offset = k.tz.as_deref().and_then(parse_offset).unwrap_or(ctx.default_offset_min);
        let sign = if offset < 0 { '-' } else { '+' };
        let iso = format!("{d}T{t}{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60);
        parse_rfc3339(&iso).ok_or_else(|| ParseError::new(P, format!("bad date/time {d:?} {t:?}")))?
    } else {
        header.time.unwrap_or(ctx.received_at)
    })
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
        assert_eq!(e.unmapped.get_str("fortigate.policyid"), Some("7"));
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
    fn escapes_long_names_and_repeated_fields() {
        let line = br#"<189>Nov 26 10:00:00 fw01 devid="FG-A" logid="1" type="utm" attackid=42 attack="say \"hi\"" a_rather_long_vendor_key=x devid="FG-B" level="alert""#;
        let e = Format::Syslog.parse(line, &CTX).expect("parses");
        let finding = e.finding.as_ref().expect("utm is a finding");
        assert_eq!(finding.title, r#"say "hi""#);
        assert_eq!(finding.uid.as_deref(), Some("42"));
        assert_eq!(e.unmapped.get_str("fortigate.a_rather_long_vendor_key"), Some("x"));
        // The last of a repeated vendor field counts, in the mapping and in `unmapped`.
        assert_eq!(e.device.as_ref().and_then(|d| d.model.as_deref()), Some("FG-B"));
        assert_eq!(e.unmapped.get_str("fortigate.devid"), Some("FG-B"));
        assert_eq!(e.severity_id, crate::event::severity::CRITICAL);
    }

    #[test]
    fn bad_eventtime_is_an_error() {
        let line = br#"<189>Nov 26 10:00:00 fw01 eventtime=soon devid="FG" logid="1" type="traffic""#;
        let err = Format::Syslog.parse(line, &CTX).expect_err("bad eventtime");
        assert!(err.reason.contains("eventtime"), "{err}");
    }
}
