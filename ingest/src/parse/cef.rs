//! ArcSight Common Event Format:
//! `CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
//! `\|` and `\\` are escaped in the header; `\=`, `\\`, `\n`, `\r` in the extension.

use std::borrow::Cow;

use super::syslog::Message;
use super::{ParseContext, ParseError};
use crate::event::{Endpoint, Event, EventClass, Finding, action, activity, severity, status};
use crate::time::{Millis, epoch_to_millis};

const P: &str = "cef";

fn err(reason: impl Into<String>) -> ParseError {
    ParseError::new(P, reason)
}

/// The seven header fields and the extension pairs of one CEF record.
#[derive(Debug, PartialEq, Eq)]
pub struct Cef<'a> {
    pub version: Cow<'a, str>,
    pub vendor: Cow<'a, str>,
    pub product: Cow<'a, str>,
    pub product_version: Cow<'a, str>,
    pub signature_id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub severity: Cow<'a, str>,
    pub extension: Vec<(&'a str, Cow<'a, str>)>,
}

fn unescape<'a>(s: &'a str, escapable: &[char]) -> Cow<'a, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') if escapable.contains(&'n') => out.push('\n'),
            Some('r') if escapable.contains(&'r') => out.push('\r'),
            Some(e) if escapable.contains(&e) => out.push(e),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Splits a CEF record (starting at `CEF:`) into header and extension.
pub fn split(text: &str) -> Result<Cef<'_>, ParseError> {
    let body = text.strip_prefix("CEF:").ok_or_else(|| err("does not start with CEF:"))?;
    let mut fields = Vec::with_capacity(7);
    let bytes = body.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() && fields.len() < 7 {
        match bytes[i] {
            b'\\' => i += 1,
            b'|' => {
                fields.push(unescape(&body[start..i], &['|', '\\']));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if fields.len() < 7 {
        return Err(err(format!("header has {} of 7 |-separated fields", fields.len())));
    }
    let ext = body.get(start..).unwrap_or_default();
    let mut it = fields.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok(Cef {
        version: next(),
        vendor: next(),
        product: next(),
        product_version: next(),
        signature_id: next(),
        name: next(),
        severity: next(),
        extension: extension(ext)?,
    })
}

/// Is `b[at..]` the start of `key=` (a key is letters, digits, `_ . - [ ]`)?
fn key_at(b: &[u8], at: usize) -> Option<usize> {
    let n = b[at..].iter().position(|c| !(c.is_ascii_alphanumeric() || b"_.-[]".contains(c)))?;
    (n > 0 && b[at + n] == b'=').then_some(n)
}

fn extension(ext: &str) -> Result<Vec<(&str, Cow<'_, str>)>, ParseError> {
    let b = ext.as_bytes();
    let mut out = Vec::new();
    let mut i = b.iter().position(|c| *c != b' ').unwrap_or(b.len());
    while i < b.len() {
        let klen = key_at(b, i).ok_or_else(|| err(format!("extension: expected key= at byte {i}")))?;
        let key = &ext[i..i + klen];
        let vstart = i + klen + 1;
        // The value runs to the last space before the next unescaped `key=`.
        let mut j = vstart;
        let mut vend = b.len();
        while j < b.len() {
            match b[j] {
                b'\\' => j += 1,
                b' ' if key_at(b, j + 1).is_some() => {
                    vend = j;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        out.push((key, unescape(ext[vstart..vend].trim_end(), &['=', '\\', 'n', 'r'])));
        i = (vend + 1).min(b.len());
    }
    Ok(out)
}

fn severity_id(s: &str) -> u8 {
    match s.trim().to_ascii_lowercase().as_str() {
        "low" => severity::LOW,
        "medium" => severity::MEDIUM,
        "high" => severity::HIGH,
        "very-high" | "very high" => severity::CRITICAL,
        n => match n.parse::<u8>() {
            Ok(0..=3) => severity::LOW,
            Ok(4..=6) => severity::MEDIUM,
            Ok(7..=8) => severity::HIGH,
            Ok(9..=10) => severity::CRITICAL,
            _ => severity::UNKNOWN,
        },
    }
}

/// CEF time fields: epoch milliseconds or `MMM dd yyyy HH:mm:ss[.SSS]` (read as UTC).
fn cef_time(v: &str) -> Option<Millis> {
    if let Ok(n) = v.parse::<i64>() {
        return Some(epoch_to_millis(n));
    }
    crate::time::parse_mmm_dd_yyyy(v).map(|(t, _zone)| t)
}

fn is_logon(sig: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(sig, "4624" | "4625" | "4648" | "528" | "529" | "540")
        || ["logon", "logged on", "log on", "login", "logged in"].iter().any(|k| name.contains(k))
}

/// Maps a CEF record (the syslog body from `CEF:` on) to an event.
pub fn parse(
    text: &str,
    raw: &[u8],
    header: Option<&Message<'_>>,
    ctx: &ParseContext<'_>,
) -> Result<Event, ParseError> {
    let cef = split(text)?;
    let ext: super::kv::FieldMap<'_> = cef.extension.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    let get = |k: &str| ext.get(k).copied().filter(|v| !v.is_empty());
    let time = get("rt")
        .and_then(cef_time)
        .or_else(|| get("end").and_then(cef_time))
        .or(header.and_then(|h| h.time))
        .unwrap_or(ctx.received_at);
    let sig = cef.signature_id.as_ref();
    let name = cef.name.as_ref();
    let act = get("act").map(str::to_ascii_lowercase);
    let (class, activity_id) = if is_logon(sig, name) {
        (EventClass::Authentication, activity::AUTH_LOGON)
    } else if act.is_some() && (get("src").is_some() || get("dst").is_some()) {
        (EventClass::NetworkActivity, activity::NET_TRAFFIC)
    } else {
        (EventClass::DetectionFinding, activity::FINDING_CREATE)
    };
    let mut e = Event::new(class, activity_id, time, ctx.received_at, raw);
    e.severity_id = severity_id(&cef.severity);
    e.message = get("msg").unwrap_or(name).to_owned();
    e.metadata.vendor = Some(cef.vendor.clone().into_owned().into());
    e.metadata.product = cef.product.clone().into_owned().into();
    e.metadata.version = Some(cef.product_version.clone().into_owned());
    e.metadata.parser = "syslog/cef".into();
    match class {
        EventClass::Authentication => {
            let failed = sig == "4625" || sig == "529" || name.to_ascii_lowercase().contains("fail");
            e.status_id = Some(if failed { status::FAILURE } else { status::SUCCESS });
            // Windows logon events name the account that logged on as the destination user.
            e.actor_mut().user = get("duser").or(get("suser")).map(str::to_owned);
        }
        EventClass::NetworkActivity => {
            e.action_id = act.as_deref().map(|a| match a {
                "allow" | "allowed" | "accept" | "accepted" | "permit" | "pass" => action::ALLOWED,
                "deny" | "denied" | "drop" | "dropped" | "block" | "blocked" | "reject" => action::DENIED,
                _ => activity::OTHER as u8,
            });
            e.actor_mut().user = get("suser").map(str::to_owned);
        }
        _ => {
            e.finding = Some(Finding {
                uid: Some(sig.to_owned()),
                title: name.to_owned(),
                category: get("cat").map(str::to_owned),
            });
            e.actor_mut().user = get("suser").map(str::to_owned);
        }
    }
    if e.actor.as_ref().is_some_and(|a| a.user.is_none()) {
        e.actor = None;
    }
    e.src = Endpoint::from_fields(get("src"), get("spt"), get("smac"), get("shost"));
    e.dst = Endpoint::from_fields(get("dst"), get("dpt"), get("dmac"), get("dhost"));
    e.protocol = get("app").or(get("proto")).map(str::to_ascii_lowercase);
    if class == EventClass::Authentication
        && let Some(dst) = e.dst.clone()
    {
        // The host logged on to is the device the event is about.
        let d = e.device_mut();
        d.hostname = dst.hostname;
        d.ip = dst.ip;
    }
    const MAPPED: [&str; 17] = [
        "rt", "end", "act", "msg", "src", "shost", "spt", "smac", "dst", "dhost", "dpt", "dmac", "app", "proto",
        "suser", "duser", "cat",
    ];
    for (k, v) in &cef.extension {
        if MAPPED.contains(k) || k.ends_with("Label") {
            continue;
        }
        let label = ext.get(format!("{k}Label").as_str()).copied().unwrap_or(k);
        e.unmapped.insert(super::prefixed("cef.", label), v.as_ref().into());
    }
    e.unmapped.insert("cef.signature_id".into(), sig.into());
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_extension_escapes() {
        let c = split(r"CEF:0|Sec\|Co|Thing\\X|1.0|100|Name with = sign|7|src=10.0.0.1 msg=a\=b c\\d\nend cs1Label=Rule cs1=Allow all act=blocked").expect("parses");
        assert_eq!(c.vendor, "Sec|Co");
        assert_eq!(c.product, "Thing\\X");
        assert_eq!(c.name, "Name with = sign");
        let ext: Vec<(&str, &str)> = c.extension.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        assert_eq!(
            ext,
            vec![
                ("src", "10.0.0.1"),
                ("msg", "a=b c\\d\nend"),
                ("cs1Label", "Rule"),
                ("cs1", "Allow all"),
                ("act", "blocked")
            ]
        );
    }

    #[test]
    fn short_header_is_an_error() {
        let e = split("CEF:0|a|b|c").expect_err("too short");
        assert!(e.reason.contains("3 of 7"), "{e}");
        assert!(split("CEF:0|a|b|c|d|e|f|=novalue").is_err());
    }

    #[test]
    fn windows_logon_becomes_authentication() {
        let ctx = ParseContext::new("s", 1_700_000_000_000);
        let text = "CEF:0|Microsoft|Microsoft Windows|10|4624|An account was successfully logged on|3|rt=1700000000123 duser=mallory dhost=EWS-01 dst=10.10.1.20 shost=EWS-01 cs2Label=LogonType cs2=2";
        let m = super::super::syslog::parse_message(b"<13>1 - h - - - - x", &ctx).expect("header");
        let e = parse(text, text.as_bytes(), Some(&m), &ctx).expect("parses");
        assert_eq!(e.class_uid, 3002);
        assert_eq!(e.activity_id, 1);
        assert_eq!(e.status_id, Some(status::SUCCESS));
        assert_eq!(e.time, 1_700_000_000_123);
        assert_eq!(e.actor.and_then(|a| a.user).as_deref(), Some("mallory"));
        assert_eq!(e.device.and_then(|d| d.hostname).as_deref(), Some("EWS-01"));
        assert_eq!(e.unmapped.get("cef.LogonType"), Some(&"2".into()));
        assert_eq!(e.severity_id, severity::LOW);
    }

    #[test]
    fn textual_rt_and_finding() {
        assert_eq!(cef_time("Nov 26 2026 10:00:00"), crate::time::parse_rfc3339("2026-11-26T10:00:00Z"));
        assert_eq!(cef_time("Nov 26 2026 10:00:00.250"), crate::time::parse_rfc3339("2026-11-26T10:00:00.250Z"));
        assert_eq!(severity_id("Very-High"), severity::CRITICAL);
    }
}
