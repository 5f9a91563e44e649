//! Enrichment: fills zone, asset, person and door details from the inventory so
//! that correlation rules can join cyber and physical events on shared keys.

use crate::event::{BADGE_DIRECTION, Endpoint, Event, EventClass};
use crate::inventory::{Asset, Door, Inventory};
use crate::parse::pacs::areas_crossed;

fn endpoint_asset<'a>(inv: &'a Inventory, ep: &Endpoint) -> Option<&'a Asset> {
    ep.ip
        .as_ref()
        .and_then(|ip| inv.asset_by_ip(ip))
        .or_else(|| ep.hostname.as_deref().and_then(|h| inv.asset_by_host(h)))
}

fn fill_endpoint(inv: &Inventory, ep: &mut Endpoint) {
    if let Some(a) = endpoint_asset(inv, ep) {
        ep.asset = Some(a.id.clone());
        ep.zone = Some(a.zone.clone());
        if ep.hostname.is_none() {
            ep.hostname.clone_from(&a.hostname);
        }
    } else if let Some(z) = ep.ip.as_ref().and_then(|ip| inv.zone_by_ip(ip)) {
        // A device the inventory does not list, in a zone's address range.
        ep.zone = Some(z.id.clone());
    }
}

/// The direction through door `d` of a badge event that names the areas its
/// holder entered and left, when the inventory knows those names: into the
/// door's area is in, out of it is out.
fn pacs_direction(inv: &Inventory, e: &Event, d: &Door) -> Option<&'static str> {
    if inv.areas.is_empty() {
        return None;
    }
    let (entered, exited) = areas_crossed(e);
    let is_doors = |name: Option<String>| name.and_then(|n| inv.area_by_pacs(&n)).is_some_and(|a| a.id == d.area);
    if is_doors(entered) {
        Some("in")
    } else if is_doors(exited) {
        Some("out")
    } else {
        None
    }
}

/// Enriches one event in place. Unknown entities are left as the source named them.
pub fn enrich(inv: &Inventory, e: &mut Event) {
    if let Some(src) = e.src.as_mut() {
        fill_endpoint(inv, src);
    }
    if let Some(dst) = e.dst.as_mut() {
        fill_endpoint(inv, dst);
    }
    // The device an event is about: named by the source, or for logins and OT
    // operations the destination host.
    let device_asset = {
        let named = e.device.as_ref().and_then(|d| {
            d.asset
                .as_deref()
                .and_then(|a| inv.asset(a))
                .or_else(|| d.ip.as_ref().and_then(|ip| inv.asset_by_ip(ip)))
                .or_else(|| d.hostname.as_deref().and_then(|h| inv.asset_by_host(h)))
        });
        let by_dst = || {
            let about_dst = e.class() == Some(EventClass::Authentication) || e.ot.is_some();
            about_dst.then(|| e.dst.as_ref().and_then(|d| endpoint_asset(inv, d))).flatten()
        };
        named.or_else(by_dst)
    };
    if let Some(a) = device_asset {
        let d = e.device_mut();
        d.asset = Some(a.id.clone());
        d.kind = Some(a.kind.as_str().into());
        if d.hostname.is_none() {
            d.hostname.clone_from(&a.hostname);
        }
        if d.vendor.is_none() {
            d.vendor = a.vendor.clone().map(Into::into);
        }
        if d.model.is_none() {
            d.model.clone_from(&a.model);
        }
    }
    if let Some(actor) = e.actor.as_mut()
        && actor.person.is_none()
    {
        let person = actor
            .credential_uid
            .as_deref()
            .and_then(|b| inv.person_by_badge(b))
            .or_else(|| actor.user.as_deref().and_then(|u| inv.person_by_account(u)));
        actor.person = person.map(|p| p.id.clone());
    }
    let door = e.door.as_deref().and_then(|d| inv.door(d));
    if let Some(d) = door {
        e.area = Some(d.area.clone());
        if e.unmapped.get_str(BADGE_DIRECTION).is_none()
            && let Some(way) = pacs_direction(inv, e, d).or(d.exit.then_some("out"))
        {
            e.unmapped.insert(BADGE_DIRECTION, way);
        }
        if let Some(opens) = &d.opens {
            e.unmapped.insert(crate::event::READER_OPENS, opens.as_str());
        }
    }
    if e.zone.is_none() {
        e.zone = device_asset
            .map(|a| a.zone.clone())
            .or_else(|| door.map(|d| d.zone.clone()))
            .or_else(|| e.dst.as_ref().and_then(|d| d.zone.clone()))
            .or_else(|| e.src.as_ref().and_then(|s| s.zone.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, Event, EventClass, activity};

    fn inv() -> Inventory {
        Inventory::from_toml(crate::inventory::tests::SAMPLE).expect("valid")
    }

    #[test]
    fn login_resolves_person_device_and_zone() {
        let mut e = Event::new(EventClass::Authentication, activity::AUTH_LOGON, 0, 0, b"x");
        e.actor = Some(Actor { user: Some("PLANT\\ALICE".into()), ..Actor::default() });
        e.dst_mut().hostname = Some("ews-01".into());
        enrich(&inv(), &mut e);
        assert_eq!(e.person(), Some("alice"));
        assert_eq!(e.device.as_ref().and_then(|d| d.asset.as_deref()), Some("EWS-01"));
        assert_eq!(e.device.as_ref().and_then(|d| d.kind.as_deref()), Some("ews"));
        assert_eq!(e.zone.as_deref(), Some("cell-1"));
    }

    #[test]
    fn badge_resolves_door_area_and_person() {
        let mut e = Event::new(EventClass::PhysicalAccess, activity::BADGE_DENIED, 0, 0, b"x");
        e.actor_mut().credential_uid = Some("1001".into());
        e.door = Some("D1".into());
        enrich(&inv(), &mut e);
        assert_eq!(e.person(), Some("alice"));
        assert_eq!(e.area.as_deref(), Some("control-room"));
        assert_eq!(e.zone.as_deref(), Some("cell-1"));
        assert_eq!(e.unmapped.get_str("badge.direction"), None, "an entry reader");
    }

    /// An exit reader gives its events the direction out, unless they say
    /// their own.
    #[test]
    fn an_exit_reader_takes_people_out() {
        let mut e = Event::new(EventClass::PhysicalAccess, activity::BADGE_GRANTED, 0, 0, b"x");
        e.door = Some("D1-EXIT".into());
        let mut own = e.clone();
        enrich(&inv(), &mut e);
        assert_eq!(e.unmapped.get_str("badge.direction"), Some("out"));
        assert_eq!(e.area.as_deref(), Some("control-room"));
        assert_eq!(e.unmapped.get_str("reader.opens"), Some("D1"), "the door it opens");
        own.unmapped.insert("badge.direction", "in");
        enrich(&inv(), &mut own);
        assert_eq!(own.unmapped.get_str("badge.direction"), Some("in"));
    }

    /// The areas a Gallagher or Lenel event says its holder entered and left
    /// give its direction, once the inventory's `[[areas]]` knows their names.
    #[test]
    fn access_control_areas_give_the_direction() {
        let at = |door: &str, fields: &[(&str, serde_json::Value)]| {
            let mut e = Event::new(EventClass::PhysicalAccess, activity::BADGE_GRANTED, 0, 0, b"x");
            e.door = Some(door.into());
            for (k, v) in fields {
                e.unmapped.insert(k, v.clone());
            }
            enrich(&inv(), &mut e);
            e.unmapped.get_str("badge.direction").map(str::to_owned)
        };
        let j = serde_json::Value::from;
        assert_eq!(at("D1", &[("gallagher.entryAccessZone", j("control room"))]).as_deref(), Some("in"));
        assert_eq!(
            at("D1", &[("gallagher.entryAccessZone", j("Car park")), ("gallagher.exitAccessZone", j("Control Room"))])
                .as_deref(),
            Some("out"),
            "left the door's area for one the inventory does not know"
        );
        assert_eq!(
            at("D1", &[("lenel.areaenteredid", 0.into()), ("lenel.areaexitedid", 3.into())]).as_deref(),
            Some("out"),
            "a Lenel area id, as a number"
        );
        assert_eq!(at("D1", &[("lenel.areaenteredid", j("3"))]).as_deref(), Some("in"), "or as text");
        assert_eq!(
            at("D1", &[("badge.area_exited", j("Control Room"))]).as_deref(),
            Some("out"),
            "the badge JSON's own, or a CSV mapping's column"
        );
        assert_eq!(at("D1", &[("lenel.areaenteredid", 7.into())]), None, "an area the inventory does not name");
        assert_eq!(
            at("D1-EXIT", &[("gallagher.entryAccessZone", j("Control Room"))]).as_deref(),
            Some("in"),
            "the event's own areas before the reader's exit flag"
        );
        assert_eq!(at("D1-EXIT", &[("lenel.areaenteredid", 7.into())]).as_deref(), Some("out"), "else the flag");
        assert_eq!(
            at("D1", &[("badge.direction", j("out")), ("lenel.areaenteredid", 3.into())]).as_deref(),
            Some("out"),
            "a direction of its own first"
        );
        assert_eq!(at("D9", &[("lenel.areaenteredid", 3.into())]), None, "a door the inventory does not place");
    }

    #[test]
    fn unknown_entities_stay_as_named() {
        let mut e = Event::new(EventClass::NetworkActivity, activity::NET_TRAFFIC, 0, 0, b"x");
        e.src_mut().ip = "192.0.2.1".parse().ok();
        e.actor_mut().user = Some("stranger".into());
        enrich(&inv(), &mut e);
        assert_eq!(e.src.as_ref().and_then(|s| s.asset.clone()), None);
        assert_eq!(e.person(), None);
        assert_eq!(e.zone, None);
    }
}
