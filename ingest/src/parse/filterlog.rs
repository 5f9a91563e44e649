//! pfSense / OPNsense `filterlog`: positional CSV (the pfSense book's "raw
//! filter log format"). Common head, then IPv4 or IPv6 fields, then a
//! protocol tail for TCP, UDP or ICMP.

use super::syslog::Message;
use super::{ParseContext, ParseError};
use crate::event::{Event, EventClass, action, activity, severity};

const P: &str = "filterlog";

fn err(reason: impl Into<String>) -> ParseError {
    ParseError::new(P, reason)
}

pub fn parse(body: &str, raw: &[u8], header: &Message<'_>, ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    let f: Vec<&str> = body.trim().split(',').collect();
    let at =
        |i: usize, what: &str| f.get(i).copied().ok_or_else(|| err(format!("line ends before {what} (field {i})")));
    // rule, subrule, anchor, tracker, interface, reason, action, direction, ip version
    let (rule, tracker, iface, reason, act, dir, ipver) = (
        at(0, "rule")?,
        at(3, "tracker")?,
        at(4, "interface")?,
        at(5, "reason")?,
        at(6, "action")?,
        at(7, "direction")?,
        at(8, "ip version")?,
    );
    // Field index of protocol name, source address, and the start of the tail.
    let (proto_at, src_at) = match ipver {
        "4" => (16, 18), // tos, ecn, ttl, id, offset, flags, proto id, proto name, length, src, dst
        "6" => (12, 15), // class, flow label, hop limit, proto name, proto id, length, src, dst
        v => return Err(err(format!("ip version {v:?} is neither 4 nor 6"))),
    };
    let proto = crate::event::ascii_lowercase(at(proto_at, "protocol")?);
    let src = at(src_at, "source address")?.parse().map_err(|_| err(format!("bad source address {:?}", f[src_at])))?;
    let dst = at(src_at + 1, "destination address")?
        .parse()
        .map_err(|_| err(format!("bad destination address {:?}", f[src_at + 1])))?;
    let denied = matches!(act, "block" | "reject");
    if !denied && act != "pass" {
        return Err(err(format!("action {act:?} is not pass, block or reject")));
    }
    let mut e = Event::new(
        EventClass::NetworkActivity,
        if denied { activity::NET_REFUSE } else { activity::NET_TRAFFIC },
        header.time.unwrap_or(ctx.received_at),
        ctx.received_at,
        raw,
    );
    e.action_id = Some(if denied { action::DENIED } else { action::ALLOWED });
    e.severity_id = if denied { severity::LOW } else { severity::INFORMATIONAL };
    e.metadata.product = "filterlog".into();
    e.metadata.vendor = Some("pfSense/OPNsense".into());
    e.metadata.parser = "syslog/filterlog".into();
    e.message = crate::event::format_text!("{act} {dir} on {iface} ({reason})");
    e.src_mut().ip = Some(src);
    e.dst_mut().ip = Some(dst);
    e.protocol = Some(proto.clone());
    let tail = src_at + 2;
    if matches!(proto.as_str(), "tcp" | "udp") {
        e.src_mut().port = f.get(tail).and_then(|v| v.parse().ok());
        e.dst_mut().port = f.get(tail + 1).and_then(|v| v.parse().ok());
        if proto == "tcp"
            && let Some(flags) = f.get(tail + 3).filter(|v| !v.is_empty())
        {
            e.unmapped.insert("filterlog.tcp_flags", *flags);
        }
    } else if proto.starts_with("icmp")
        && let Some(t) = f.get(tail)
    {
        e.unmapped.insert("filterlog.icmp_type", *t);
    }
    e.unmapped.insert("filterlog.rule", rule);
    e.unmapped.insert("filterlog.tracker", tracker);
    e.unmapped.insert("filterlog.interface", iface);
    e.unmapped.insert("filterlog.direction", dir);
    Ok(e)
}
