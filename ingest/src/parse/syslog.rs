//! Syslog headers, RFC 5424 (with structured data) and RFC 3164, and the body
//! dispatch: CEF, FortiGate key=value, or plain text.

use crate::event::Text;
use std::borrow::Cow;
use std::sync::LazyLock;

use super::{ParseContext, ParseError, asa, cef, filterlog, fortigate, leef, netfilter, panos, utf8};
use crate::event::{Event, EventClass, activity, severity};
use crate::time::{Millis, parse_rfc3164, parse_rfc3339};

const P: &str = "syslog";

/// Which header form a message used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Rfc5424,
    Rfc3164,
}

/// One structured-data element `[id name="value" ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    pub id: &'a str,
    pub params: Vec<(&'a str, Cow<'a, str>)>,
}

/// A parsed syslog message; fields borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub flavor: Flavor,
    pub facility: u8,
    pub severity: u8,
    /// Header time; `None` when the sender gave none (`-`, or a bad 3164 stamp).
    pub time: Option<Millis>,
    pub hostname: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Vec<SdElement<'a>>,
    pub msg: &'a [u8],
}

fn err(reason: impl Into<String>) -> ParseError {
    ParseError::new(P, reason)
}

fn nil(s: &str) -> Option<&str> {
    (s != "-" && !s.is_empty()).then_some(s)
}

/// Splits off the next space-delimited token.
fn token<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str), ParseError> {
    // A byte search: `split_once(' ')` compares each hit through a `memcmp` call.
    let at = s.bytes().position(|c| c == b' ').ok_or_else(|| err(format!("message ends before {what}")))?;
    Ok((&s[..at], &s[at + 1..]))
}

/// Parses the header of one syslog message (one frame, without the transport framing).
pub fn parse_message<'a>(bytes: &'a [u8], ctx: &ParseContext<'_>) -> Result<Message<'a>, ParseError> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if bytes.first() != Some(&b'<') {
        return Err(err("missing <PRI> at start"));
    }
    let close = bytes.iter().take(5).position(|c| *c == b'>').ok_or_else(|| err("unterminated <PRI>"))?;
    let pri: u16 = std::str::from_utf8(&bytes[1..close])
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .filter(|p| *p <= 191)
        .ok_or_else(|| err("PRI is not a number from 0 to 191"))?;
    let (facility, sev) = ((pri / 8) as u8, (pri % 8) as u8);
    let rest = &bytes[close + 1..];
    if rest.starts_with(b"1 ") {
        parse_5424(&rest[2..], facility, sev)
    } else {
        Ok(parse_3164(rest, facility, sev, ctx))
    }
}

fn parse_5424(rest: &[u8], facility: u8, severity: u8) -> Result<Message<'_>, ParseError> {
    // The header is ASCII; MSG may be anything, so only the header is decoded.
    let header_end = header_len_5424(rest).ok_or_else(|| err("RFC 5424 header is incomplete"))?;
    let header = utf8(P, &rest[..header_end])?;
    let (ts, h) = token(header, "HOSTNAME")?;
    let (host, h) = token(h, "APP-NAME")?;
    let (app, h) = token(h, "PROCID")?;
    let (procid, h) = token(h, "MSGID")?;
    let (msgid, sd_text) = token(h, "STRUCTURED-DATA")?;
    let time = match ts {
        "-" => None,
        t => Some(parse_rfc3339(t).ok_or_else(|| err(format!("bad RFC 5424 TIMESTAMP {t:?}")))?),
    };
    let structured_data = parse_sd(sd_text)?;
    let mut msg = &rest[header_end..];
    msg = msg.strip_prefix(b" ").unwrap_or(msg);
    msg = msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(msg);
    Ok(Message {
        flavor: Flavor::Rfc5424,
        facility,
        severity,
        time,
        hostname: nil(host),
        app_name: nil(app),
        procid: nil(procid),
        msgid: nil(msgid),
        structured_data,
        msg,
    })
}

/// Length of `TIMESTAMP HOST APP PROCID MSGID SD` at the start of `b`.
fn header_len_5424(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    for _ in 0..5 {
        i += b[i..].iter().position(|c| *c == b' ')? + 1;
    }
    if b.get(i) == Some(&b'-') {
        return Some(i + 1);
    }
    // Structured data: one or more [..] with \" \\ \] escapes inside values.
    while b.get(i) == Some(&b'[') {
        let mut in_quotes = false;
        loop {
            i += 1;
            match *b.get(i)? {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
        }
        i += 1;
    }
    Some(i)
}

fn parse_sd(text: &str) -> Result<Vec<SdElement<'_>>, ParseError> {
    if text == "-" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(body) = rest.strip_prefix('[') {
        let id_end = body.find([' ', ']']).ok_or_else(|| err("unterminated SD-ELEMENT"))?;
        let id = &body[..id_end];
        let mut params = Vec::new();
        let mut p = &body[id_end..];
        loop {
            p = p.trim_start_matches(' ');
            if let Some(after) = p.strip_prefix(']') {
                rest = after;
                break;
            }
            let eq = p.find("=\"").ok_or_else(|| err(format!("SD-PARAM without =\"value\" in [{id}]")))?;
            let name = &p[..eq];
            let vb = &p.as_bytes()[eq + 2..];
            let mut j = 0;
            let mut escaped = false;
            while j < vb.len() && vb[j] != b'"' {
                if vb[j] == b'\\' {
                    escaped = true;
                    j += 1;
                }
                j += 1;
            }
            if j >= vb.len() {
                return Err(err(format!("unterminated SD-PARAM value in [{id}]")));
            }
            let raw = &p[eq + 2..eq + 2 + j];
            let value = if escaped {
                Cow::Owned(raw.replace("\\\"", "\"").replace("\\]", "]").replace("\\\\", "\\"))
            } else {
                Cow::Borrowed(raw)
            };
            params.push((name, value));
            p = &p[eq + 3 + j..];
        }
        out.push(SdElement { id, params });
    }
    if !rest.is_empty() {
        return Err(err("STRUCTURED-DATA is neither - nor [..]"));
    }
    Ok(out)
}

fn parse_3164<'a>(rest: &'a [u8], facility: u8, severity: u8, ctx: &ParseContext<'_>) -> Message<'a> {
    let stamp = rest.get(..15).and_then(|s| std::str::from_utf8(s).ok());
    let time = stamp.and_then(|s| parse_rfc3164(s, ctx.received_at, ctx.default_offset_min));
    let mut m = Message {
        flavor: Flavor::Rfc3164,
        facility,
        severity,
        time,
        hostname: None,
        app_name: None,
        procid: None,
        msgid: None,
        structured_data: Vec::new(),
        msg: rest,
    };
    if time.is_none() {
        // RFC 3164 §4.3.3: without a valid TIMESTAMP the whole rest is the MSG.
        return m;
    }
    let after = rest.get(16..).unwrap_or_default();
    let Some(sp) = after.iter().position(|c| *c == b' ') else {
        m.msg = after;
        return m;
    };
    m.hostname = std::str::from_utf8(&after[..sp]).ok().and_then(nil);
    let content = &after[sp + 1..];
    m.msg = content;
    // TAG: up to 32 alphanumerics (plus -_./), then "[pid]" and/or ":".
    let tag_len = content.iter().take(48).position(|c| !(c.is_ascii_alphanumeric() || b"-_./".contains(c)));
    if let Some(n) = tag_len.filter(|n| *n > 0) {
        let tag = std::str::from_utf8(&content[..n]).ok();
        let mut k = n;
        let mut pid = None;
        if content.get(k) == Some(&b'[')
            && let Some(close) = content[k..].iter().position(|c| *c == b']')
        {
            pid = std::str::from_utf8(&content[k + 1..k + close]).ok();
            k += close + 1;
        }
        if content.get(k) == Some(&b':') {
            m.app_name = tag;
            m.procid = pid;
            k += 1;
            m.msg = content[k..].strip_prefix(b" ").unwrap_or(&content[k..]);
        }
    }
    m
}

/// OCSF severity for a syslog severity (0 emergency .. 7 debug).
pub fn severity_id(syslog_severity: u8) -> u8 {
    match syslog_severity {
        0 => severity::FATAL,
        1 | 2 => severity::CRITICAL,
        3 => severity::HIGH,
        4 => severity::MEDIUM,
        5 => severity::LOW,
        _ => severity::INFORMATIONAL,
    }
}

// Every message body is searched for format markers, so the searchers are built once.
/// `EF:` ends both `CEF:` and `LEEF:`, so one pass over the body finds either.
static EF_MARKER: LazyLock<memchr::memmem::Finder<'static>> = LazyLock::new(|| memchr::memmem::Finder::new("EF:"));
/// Every FortiGate log has a `logid`; other key=value bodies skip the full read.
static FORTIGATE_MARKER: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new("logid="));

/// A CEF or LEEF header in `body`: the first `CEF:` anywhere wins over a `LEEF:`.
fn cef_or_leef(body: &str) -> Option<(usize, bool)> {
    let b = body.as_bytes();
    let mut leef = None;
    let mut from = 0;
    // `find` per hit rather than `find_iter`, which copies the searcher each call.
    while let Some(n) = EF_MARKER.find(&b[from..]) {
        let at = from + n;
        if at >= 1 && b[at - 1] == b'C' {
            return Some((at - 1, true));
        }
        if leef.is_none() && at >= 2 && &b[at - 2..at] == b"LE" {
            leef = Some((at - 2, false));
        }
        from = at + 3;
    }
    leef
}

/// Parses a syslog message and its body into one event.
pub fn parse_event(bytes: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    let m = parse_message(bytes, ctx)?;
    // Valid UTF-8 is the norm and is checked fast; only other bytes take the lossy path.
    let body = match std::str::from_utf8(m.msg) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(m.msg),
    };
    let body = body.trim_end_matches(['\r', '\n']);
    // Built in place and returned as is, without `?` on the way: an event is
    // about a kilobyte, and each move of it showed in the parse profile.
    let mut parsed = if let Some((start, is_cef)) = cef_or_leef(body) {
        if is_cef {
            cef::parse(&body[start..], bytes, Some(&m), ctx)
        } else {
            leef::parse(&body[start..], bytes, Some(&m), ctx)
        }
    } else if m.app_name == Some("filterlog") {
        filterlog::parse(body, bytes, &m, ctx)
    } else if asa::looks_like(body) {
        asa::parse(body, bytes, &m, ctx)
    } else if let Some(fortigate) =
        FORTIGATE_MARKER.find(body.as_bytes()).and_then(|_| fortigate::parse(body, bytes, &m, ctx))
    {
        fortigate
    } else if netfilter::looks_like(body) {
        netfilter::parse(body, bytes, &m, ctx)
    } else if panos::looks_like(body) {
        panos::parse(body, bytes, &m, ctx)
    } else {
        let mut e =
            Event::new(EventClass::Base, activity::OTHER, m.time.unwrap_or(ctx.received_at), ctx.received_at, bytes);
        e.severity_id = severity_id(m.severity);
        e.message = Text::from(body);
        e.metadata.product = m.app_name.map_or("syslog".into(), |a| a.to_owned().into());
        e.metadata.parser = "syslog/text".into();
        Ok(e)
    };
    if let Ok(event) = &mut parsed {
        add_header_fields(event, &m);
    }
    parsed
}

/// What the syslog header says that the body's parser did not.
fn add_header_fields(event: &mut Event, m: &Message<'_>) {
    if event.device.is_none() {
        event.device_mut().hostname = m.hostname.map(Text::from);
    }
    for sd in &m.structured_data {
        for (k, v) in &sd.params {
            event.unmapped.insert(&format!("sd.{}.{}", sd.id, k), v.as_ref());
        }
    }
    if let Some(app) = m.app_name {
        event.unmapped.insert("syslog.app_name", app);
    }
    event.unmapped.insert("syslog.facility", m.facility);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cef_wins_over_leef_and_one_scan_finds_either() {
        assert_eq!(cef_or_leef("LEEF:2.0|x CEF:0|y"), Some((11, true)));
        assert_eq!(cef_or_leef("tag: LEEF:1.0|a|b"), Some((5, false)));
        assert_eq!(cef_or_leef("EF: xEF: nothing"), None);
        assert_eq!(cef_or_leef("CEF:0|a"), Some((0, true)));
    }

    const CTX: ParseContext<'static> = ParseContext::new("t", 1_795_000_000_000);

    #[test]
    fn rfc5424_with_structured_data() {
        let line = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appl\"ication" eventID="1011"][x@1 a="]"] An application event"#;
        let m = parse_message(line, &CTX).expect("parses");
        assert_eq!((m.facility, m.severity), (20, 5));
        assert_eq!(m.time, parse_rfc3339("2003-10-11T22:14:15.003Z"));
        assert_eq!(m.hostname, Some("mymachine.example.com"));
        assert_eq!(m.app_name, Some("evntslog"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid, Some("ID47"));
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.structured_data[0].params[1], ("eventSource", Cow::Borrowed("Appl\"ication")));
        assert_eq!(m.structured_data[1].params[0].1, "]");
        assert_eq!(m.msg, b"An application event");
    }

    #[test]
    fn rfc5424_nil_fields_and_bom() {
        let m = parse_message(b"<13>1 - - - - - - \xEF\xBB\xBFhello", &CTX).expect("parses");
        assert_eq!(m.time, None);
        assert_eq!(m.hostname, None);
        assert_eq!(m.msg, b"hello");
    }

    #[test]
    fn rfc3164_with_tag_and_pid() {
        let m = parse_message(b"<34>Oct 11 22:14:15 mymachine su[231]: 'su root' failed", &CTX).expect("parses");
        assert_eq!(m.flavor, Flavor::Rfc3164);
        assert_eq!(m.hostname, Some("mymachine"));
        assert_eq!(m.app_name, Some("su"));
        assert_eq!(m.procid, Some("231"));
        assert_eq!(m.msg, b"'su root' failed");
        assert_eq!(m.time, parse_rfc3339("2026-10-11T22:14:15Z"));
    }

    #[test]
    fn rfc3164_without_timestamp_keeps_whole_message() {
        let m = parse_message(b"<13>just text", &CTX).expect("parses");
        assert_eq!(m.time, None);
        assert_eq!(m.msg, b"just text");
    }

    #[test]
    fn rejects_bad_headers() {
        for (line, why) in [
            (&b"no pri"[..], "missing <PRI>"),
            (b"<999>1 - - - - - -", "PRI is not"),
            (b"<13>1 2003-99-11T22:14:15Z h a p m -", "bad RFC 5424 TIMESTAMP"),
            (b"<13>1 - h a", "header is incomplete"),
            (b"<13>1 - h a p m [x y]", "SD-PARAM"),
        ] {
            let e = parse_message(line, &CTX).expect_err("must fail");
            assert!(e.reason.contains(why), "{e} should mention {why}");
        }
    }

    #[test]
    fn plain_text_body_is_a_base_event_with_header_time() {
        let e = parse_event(b"<14>1 2026-11-26T10:00:00Z ews-01 sshd 42 - - Accepted publickey", &CTX).expect("parses");
        assert_eq!(e.class_uid, 0);
        assert_eq!(e.time, parse_rfc3339("2026-11-26T10:00:00Z").unwrap_or_default());
        assert_eq!(e.message, "Accepted publickey");
        assert_eq!(e.device.and_then(|d| d.hostname).as_deref(), Some("ews-01"));
        assert_eq!(e.metadata.parser, "syslog/text");
    }
}
