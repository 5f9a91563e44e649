//! ArcSight Common Event Format:
//! `CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
//! `\|` and `\\` are escaped in the header; `\=`, `\\`, `\n`, `\r` in the extension.

use crate::event::Text;
use std::borrow::Cow;

use super::syslog::Message;
use super::{ParseContext, ParseError, contains_ignore_case};
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
    if memchr::memchr(b'\\', s.as_bytes()).is_none() {
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
    while fields.len() < 7 {
        let Some(n) = super::kv::find2(&bytes[i..], b'|', b'\\') else { break };
        i += n;
        if bytes[i] == b'|' {
            fields.push(unescape(&body[start..i], &['|', '\\']));
            start = i + 1;
            i += 1;
        } else {
            i += 2;
        }
        if i >= bytes.len() {
            break;
        }
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
    let n =
        b[at..].iter().position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'[' | b']')))?;
    (n > 0 && b[at + n] == b'=').then_some(n)
}

fn extension(ext: &str) -> Result<Vec<(&str, Cow<'_, str>)>, ParseError> {
    let b = ext.as_bytes();
    let mut out = Vec::with_capacity(16);
    let mut i = b.iter().position(|c| *c != b' ').unwrap_or(b.len());
    while i < b.len() {
        let klen = key_at(b, i).ok_or_else(|| err(format!("extension: expected key= at byte {i}")))?;
        let key = &ext[i..i + klen];
        let vstart = i + klen + 1;
        // The value runs to the last space before the next unescaped `key=`.
        let mut j = vstart;
        let mut vend = b.len();
        while let Some(n) = b.get(j..).and_then(|rest| super::kv::find2(rest, b' ', b'\\')) {
            j += n;
            if b[j] == b'\\' {
                j += 2;
            } else if key_at(b, j + 1).is_some() {
                vend = j;
                break;
            } else {
                j += 1;
            }
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
    matches!(sig, "4624" | "4625" | "4648" | "528" | "529" | "540")
        || ["logon", "logged on", "log on", "login", "logged in"].iter().any(|k| contains_ignore_case(name, k))
}

/// The extension keys the mapping reads; the rest go to `unmapped`.
#[derive(Default)]
struct Known<'a> {
    rt: Option<&'a str>,
    end: Option<&'a str>,
    act: Option<&'a str>,
    msg: Option<&'a str>,
    src: Option<&'a str>,
    shost: Option<&'a str>,
    spt: Option<&'a str>,
    smac: Option<&'a str>,
    dst: Option<&'a str>,
    dhost: Option<&'a str>,
    dpt: Option<&'a str>,
    dmac: Option<&'a str>,
    app: Option<&'a str>,
    proto: Option<&'a str>,
    suser: Option<&'a str>,
    duser: Option<&'a str>,
    cat: Option<&'a str>,
}

impl<'a> Known<'a> {
    /// Takes `key`'s value when the mapping reads it; `false` for a vendor field.
    fn take(&mut self, key: &str, value: &'a str) -> bool {
        let slot = match key {
            "rt" => &mut self.rt,
            "end" => &mut self.end,
            "act" => &mut self.act,
            "msg" => &mut self.msg,
            "src" => &mut self.src,
            "shost" => &mut self.shost,
            "spt" => &mut self.spt,
            "smac" => &mut self.smac,
            "dst" => &mut self.dst,
            "dhost" => &mut self.dhost,
            "dpt" => &mut self.dpt,
            "dmac" => &mut self.dmac,
            "app" => &mut self.app,
            "proto" => &mut self.proto,
            "suser" => &mut self.suser,
            "duser" => &mut self.duser,
            "cat" => &mut self.cat,
            _ => return false,
        };
        // Of repeated keys the last non-empty value wins.
        if !value.is_empty() {
            *slot = Some(value);
        }
        true
    }
}

/// Maps a CEF record (the syslog body from `CEF:` on) to an event.
pub fn parse(
    text: &str,
    raw: &[u8],
    header: Option<&Message<'_>>,
    ctx: &ParseContext<'_>,
) -> Result<Event, ParseError> {
    let cef = split(text)?;
    // One pass: mapped keys into `k`, custom-field labels (`cs1Label=Rule`)
    // aside, the rest kept for `unmapped`.
    let mut k = Known::default();
    let mut labels: Vec<(&str, &str)> = Vec::new();
    let mut vendor_fields: Vec<(&str, &str)> = Vec::with_capacity(cef.extension.len());
    for (key, v) in &cef.extension {
        let v = v.as_ref();
        if k.take(key, v) {
            continue;
        }
        match key.strip_suffix("Label") {
            Some(labelled) => labels.push((labelled, v)),
            None => vendor_fields.push((key, v)),
        }
    }
    let time =
        k.rt.and_then(cef_time)
            .or_else(|| k.end.and_then(cef_time))
            .or(header.and_then(|h| h.time))
            .unwrap_or(ctx.received_at);
    let sig = cef.signature_id.as_ref();
    let name = cef.name.as_ref();
    let (class, activity_id) = if is_logon(sig, name) {
        (EventClass::Authentication, activity::AUTH_LOGON)
    } else if k.act.is_some() && (k.src.is_some() || k.dst.is_some()) {
        (EventClass::NetworkActivity, activity::NET_TRAFFIC)
    } else {
        (EventClass::DetectionFinding, activity::FINDING_CREATE)
    };
    let mut e = Event::new(class, activity_id, time, ctx.received_at, raw);
    e.severity_id = severity_id(&cef.severity);
    e.message = Text::from(k.msg.unwrap_or(name));
    e.metadata.vendor = Some(cef.vendor.clone().into_owned().into());
    e.metadata.product = cef.product.clone().into_owned().into();
    e.metadata.version = Some(Text::from(cef.product_version.as_ref()));
    e.metadata.parser = "syslog/cef".into();
    let user = match class {
        EventClass::Authentication => {
            let failed = match sig {
                "4625" | "529" => true,
                "4624" | "4648" | "528" | "540" => false,
                _ => contains_ignore_case(name, "fail"),
            };
            e.status_id = Some(if failed { status::FAILURE } else { status::SUCCESS });
            // Windows logon events name the account that logged on as the destination user.
            k.duser.or(k.suser)
        }
        EventClass::NetworkActivity => {
            e.action_id = k.act.map(|a| {
                const ALLOWED: [&str; 6] = ["allow", "allowed", "accept", "accepted", "permit", "pass"];
                const DENIED: [&str; 7] = ["deny", "denied", "drop", "dropped", "block", "blocked", "reject"];
                if ALLOWED.iter().any(|w| a.eq_ignore_ascii_case(w)) {
                    action::ALLOWED
                } else if DENIED.iter().any(|w| a.eq_ignore_ascii_case(w)) {
                    action::DENIED
                } else {
                    activity::OTHER as u8
                }
            });
            k.suser
        }
        _ => {
            e.finding =
                Some(Finding { uid: Some(Text::from(sig)), title: Text::from(name), category: k.cat.map(Text::from) });
            k.suser
        }
    };
    if let Some(u) = user {
        e.actor_mut().user = Some(Text::from(u));
    }
    e.src = Endpoint::from_fields(k.src, k.spt, k.smac, k.shost);
    e.dst = Endpoint::from_fields(k.dst, k.dpt, k.dmac, k.dhost);
    e.protocol = k.app.or(k.proto).map(crate::event::ascii_lowercase);
    if class == EventClass::Authentication
        && let Some(dst) = &e.dst
    {
        // The host logged on to is the device the event is about.
        let (hostname, ip) = (dst.hostname.clone(), dst.ip);
        let d = e.device_mut();
        d.hostname = hostname;
        d.ip = ip;
    }
    // A custom field is named by its label when it has one (`cs2Label=LogonType cs2=2`).
    let named = vendor_fields
        .into_iter()
        .map(|(key, v)| (labels.iter().rev().find(|(l, _)| *l == key).map_or(key, |(_, label)| *label), v));
    e.unmapped.extend_prefixed("cef.", named);
    e.unmapped.insert("cef.signature_id", sig);
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
        assert_eq!(e.unmapped.get_str("cef.LogonType"), Some("2"));
        assert_eq!(e.severity_id, severity::LOW);
    }

    #[test]
    fn textual_rt_and_finding() {
        assert_eq!(cef_time("Nov 26 2026 10:00:00"), crate::time::parse_rfc3339("2026-11-26T10:00:00Z"));
        assert_eq!(cef_time("Nov 26 2026 10:00:00.250"), crate::time::parse_rfc3339("2026-11-26T10:00:00.250Z"));
        assert_eq!(severity_id("Very-High"), severity::CRITICAL);
    }
}
