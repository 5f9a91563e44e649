//! Cisco ASA / FTD `%ASA-<severity>-<message id>: text`. Mapped message ids:
//! 106023 / 106100 (access lists), 302013 / 302014 (TCP built / teardown),
//! 302015 / 302016 (UDP), 113004 / 113015 (AAA authentication). Others keep
//! their text as a base event with the id.

use super::syslog::Message;
use super::{ParseContext, ParseError};
use crate::event::Text;
use crate::event::{Event, EventClass, action, activity, status};

const P: &str = "cisco-asa";

pub fn looks_like(body: &str) -> bool {
    // Every syslog body is asked, so: find each `%`, then look at what follows.
    let b = body.as_bytes();
    memchr::memchr_iter(b'%', b).any(|i| matches!(b.get(i + 1..i + 5), Some(b"ASA-" | b"FTD-")))
}

/// `iface:ip/port` or `iface/ip(port)`.
fn endpoint(tok: &str) -> Option<(String, std::net::IpAddr, Option<u16>)> {
    let tok = tok.trim_end_matches([',', ')']);
    let (iface, rest) = tok.split_once([':', '/'])?;
    let (ip, port) = match rest.split_once(['/', '(']) {
        Some((ip, port)) => (ip, port.trim_end_matches(')').parse().ok()),
        None => (rest, None),
    };
    Some((iface.to_owned(), ip.parse().ok()?, port))
}

fn after<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1)).copied()
}

pub fn parse(body: &str, raw: &[u8], header: &Message<'_>, ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    let start = body.find("%ASA-").or_else(|| body.find("%FTD-")).ok_or_else(|| ParseError::new(P, "no %ASA- tag"))?;
    let tag_end = body[start..].find(':').map(|i| start + i).ok_or_else(|| ParseError::new(P, "tag without ':'"))?;
    let tag = &body[start + 1..tag_end];
    let mut parts = tag.split('-');
    let (_, sev, id) = (parts.next(), parts.next(), parts.next());
    let sev: u8 = sev
        .and_then(|s| s.parse().ok())
        .filter(|s| *s <= 7)
        .ok_or_else(|| ParseError::new(P, format!("bad severity in {tag:?}")))?;
    let id = id
        .filter(|i| i.len() == 6 && i.bytes().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| ParseError::new(P, format!("bad message id in {tag:?}")))?;
    let text = body[tag_end + 1..].trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    let time = header.time.unwrap_or(ctx.received_at);
    let mut e = match id {
        "106023" | "106100" | "302013" | "302014" | "302015" | "302016" => {
            let denied = text.starts_with("Deny") || text.contains(" denied ");
            let activity_id = match id {
                "302013" | "302015" => activity::NET_OPEN,
                "302014" | "302016" => activity::NET_CLOSE,
                _ if denied => activity::NET_REFUSE,
                _ => activity::NET_TRAFFIC,
            };
            let mut e = Event::new(EventClass::NetworkActivity, activity_id, time, ctx.received_at, raw);
            e.action_id = Some(if denied { action::DENIED } else { action::ALLOWED });
            // 106023: "src IF:IP/P dst IF:IP/P"; 106100: "IF/IP(P) -> IF/IP(P)"; 3020xx: "for IF:IP/P ... to IF:IP/P".
            let (s, d) = match id {
                "106023" => (after(&words, "src"), after(&words, "dst")),
                "106100" => {
                    (words.iter().position(|w| *w == "->").and_then(|i| words.get(i - 1)).copied(), after(&words, "->"))
                }
                _ => (after(&words, "for"), after(&words, "to")),
            };
            let (s, d) = (s.and_then(endpoint), d.and_then(endpoint));
            let (Some(s), Some(d)) = (s, d) else {
                return Err(ParseError::new(P, format!("%ASA-{sev}-{id}: cannot read the source and destination")));
            };
            e.src_mut().ip = Some(s.1);
            e.src_mut().port = s.2;
            e.dst_mut().ip = Some(d.1);
            e.dst_mut().port = d.2;
            e.unmapped.insert("asa.src_interface", s.0);
            e.unmapped.insert("asa.dst_interface", d.0);
            e.protocol = words
                .iter()
                .find(|w| matches!(w.to_ascii_lowercase().as_str(), "tcp" | "udp" | "icmp"))
                .map(|w| crate::event::ascii_lowercase(w));
            if let Some(acl) = after(&words, "access-group").or_else(|| after(&words, "access-list")) {
                e.unmapped.insert("asa.acl", acl.trim_matches('"'));
            }
            e
        }
        "113004" | "113015" => {
            let mut e = Event::new(EventClass::Authentication, activity::AUTH_LOGON, time, ctx.received_at, raw);
            e.status_id = Some(if id == "113004" { status::SUCCESS } else { status::FAILURE });
            let field = |name: &str| {
                text.split(" : ")
                    .find_map(|p| p.trim().strip_prefix(name))
                    .map(|v| v.trim_start_matches([' ', '=']).trim().to_owned())
            };
            e.actor_mut().user = field("user =").or_else(|| field("user")).map(Text::from);
            if let Some(ip) = field("user IP =").and_then(|v| v.parse().ok()) {
                e.src_mut().ip = Some(ip);
            }
            if let Some(reason) = field("reason =") {
                e.unmapped.insert("asa.reason", reason);
            }
            e
        }
        _ => Event::new(EventClass::Base, activity::OTHER, time, ctx.received_at, raw),
    };
    e.severity_id = super::syslog::severity_id(sev);
    e.metadata.vendor = Some("Cisco".into());
    e.metadata.product = if tag.starts_with("FTD") { "Firepower Threat Defense".into() } else { "ASA".into() };
    e.metadata.parser = "syslog/cisco-asa".into();
    e.message = Text::from(text);
    e.unmapped.insert("asa.message_id", id);
    Ok(e)
}
