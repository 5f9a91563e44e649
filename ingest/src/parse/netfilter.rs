//! Linux netfilter (iptables / nftables) `LOG` target lines:
//! `[prefix] IN=eth0 OUT= MAC=.. SRC=.. DST=.. LEN=.. TOS=.. TTL=.. ID=.. DF PROTO=TCP SPT=.. DPT=.. SYN ...`.
//! The log prefix (set by the rule) decides allowed / denied when it says so.

use super::syslog::Message;
use super::{ParseContext, ParseError};
use crate::event::Text;
use crate::event::{Event, EventClass, action, activity, severity};

const P: &str = "netfilter";

/// Netfilter lines carry `SRC=`, `DST=` and `PROTO=`.
pub fn looks_like(body: &str) -> bool {
    body.contains("SRC=") && body.contains(" DST=") && body.contains("PROTO=")
}

pub fn parse(body: &str, raw: &[u8], header: &Message<'_>, ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    // Skip a kernel timestamp `[12345.678901]` and keep the prefix before the first KEY=.
    let mut text = body.trim_start();
    if text.starts_with('[')
        && let Some(close) = text.find(']')
    {
        text = text[close + 1..].trim_start();
    }
    let first_kv =
        text.find("IN=").or_else(|| text.find("SRC=")).ok_or_else(|| ParseError::new(P, "no IN= or SRC= field"))?;
    let prefix = text[..first_kv].trim();
    let mut pairs = Vec::with_capacity(24);
    let mut flags = Vec::new();
    for tok in text[first_kv..].split_whitespace() {
        match tok.split_once('=') {
            Some((k, v)) => pairs.push((k, v)),
            None => flags.push(tok),
        }
    }
    let get = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v).filter(|v| !v.is_empty());
    let src: std::net::IpAddr = get("SRC")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ParseError::new(P, "SRC is missing or not an IP address"))?;
    let dst: std::net::IpAddr = get("DST")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ParseError::new(P, "DST is missing or not an IP address"))?;
    let upper = prefix.to_ascii_uppercase();
    let verdict = if ["DROP", "REJECT", "DENY", "BLOCK"].iter().any(|w| upper.contains(w)) {
        Some(action::DENIED)
    } else if ["ACCEPT", "ALLOW", "PASS", "PERMIT"].iter().any(|w| upper.contains(w)) {
        Some(action::ALLOWED)
    } else {
        None
    };
    let activity_id = if verdict == Some(action::DENIED) { activity::NET_REFUSE } else { activity::NET_TRAFFIC };
    let mut e = Event::new(
        EventClass::NetworkActivity,
        activity_id,
        header.time.unwrap_or(ctx.received_at),
        ctx.received_at,
        raw,
    );
    e.action_id = verdict;
    e.severity_id = if verdict == Some(action::DENIED) { severity::LOW } else { severity::INFORMATIONAL };
    e.metadata.product = "netfilter".into();
    e.metadata.vendor = Some("Linux".into());
    e.metadata.parser = "syslog/netfilter".into();
    e.message = if prefix.is_empty() { Text::from("netfilter log") } else { Text::from(prefix) };
    e.src_mut().ip = Some(src);
    e.src_mut().port = get("SPT").and_then(|v| v.parse().ok());
    e.dst_mut().ip = Some(dst);
    e.dst_mut().port = get("DPT").and_then(|v| v.parse().ok());
    if let Some(mac) = get("MAC") {
        // MAC= is dst(6) : src(6) : ethertype(2) as colon-separated hex.
        let octets: Vec<&str> = mac.split(':').collect();
        if octets.len() >= 12 {
            e.dst_mut().mac = Some(Text::from(octets[..6].join(":")));
            e.src_mut().mac = Some(Text::from(octets[6..12].join(":")));
        }
    }
    e.protocol = get("PROTO").map(crate::event::ascii_lowercase);
    let rest = pairs.iter().filter(|(k, _)| !matches!(*k, "SRC" | "DST" | "SPT" | "DPT" | "PROTO"));
    e.unmapped.extend_prefixed("netfilter.", rest.copied());
    if !flags.is_empty() {
        e.unmapped.insert("netfilter.flags", flags.join(" "));
    }
    if !prefix.is_empty() {
        e.unmapped.insert("netfilter.prefix", prefix);
    }
    Ok(e)
}
