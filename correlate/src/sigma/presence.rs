//! Who is on site, and in which zone and area, from badge events: a granted
//! badge at a door puts the person in its area (or takes them out when the
//! reader is an exit: `direction` out, Request To Exit); presence times out
//! after `timeout_ms` without a badge. Queried "as of" an event time, so the
//! answer does not depend on the order badge events arrived in.

use std::collections::HashMap;

use ingest::Event;
use ingest::event::{EventClass, activity};
use serde::{Deserialize, Serialize};

use crate::state::pairs;

/// Where a person was as of a badge event; `None` after leaving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    time: i64,
    place: Option<Place>,
}

/// The zone and area of the door a person went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub zone: Option<String>,
    pub area: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Presence {
    timeout_ms: i64,
    #[serde(with = "pairs")]
    people: HashMap<String, Vec<Mark>>,
}

impl Presence {
    pub fn new(timeout_ms: i64) -> Self {
        Self { timeout_ms, people: HashMap::new() }
    }

    /// Takes in a physical-access event (others are ignored).
    pub fn observe(&mut self, e: &Event) {
        if e.class() != Some(EventClass::PhysicalAccess) {
            return;
        }
        let Some(person) = e.person() else { return };
        let leaving = e.activity_id == activity::REQUEST_TO_EXIT
            || e.unmapped.get_str("badge.direction").is_some_and(|d| d.eq_ignore_ascii_case("out"));
        let place = match e.activity_id {
            _ if leaving => None,
            activity::BADGE_GRANTED => {
                Some(Place { zone: e.zone.as_deref().map(String::from), area: e.area.as_deref().map(String::from) })
            }
            _ => return,
        };
        let marks = self.people.entry(person.to_owned()).or_default();
        // Kept in time order: late badge events slot in where they belong.
        let at = marks.partition_point(|m| m.time <= e.time);
        marks.insert(at, Mark { time: e.time, place });
    }

    /// Where `person` was at `t`: on site (with the place) or not.
    pub fn at(&self, person: &str, t: i64) -> Option<&Place> {
        let marks = self.people.get(person)?;
        let last = &marks[..marks.partition_point(|m| m.time <= t)];
        let m = last.last()?;
        (t - m.time <= self.timeout_ms).then_some(m.place.as_ref()).flatten()
    }

    /// Forgets marks that no query at or after `t` can need.
    pub fn prune(&mut self, t: i64) {
        let horizon = t - self.timeout_ms;
        self.people.retain(|_, marks| {
            // Keep the last mark before the horizon (it says where they were).
            let cut = marks.partition_point(|m| m.time < horizon).saturating_sub(1);
            marks.drain(..cut);
            marks.last().is_some_and(|m| m.time >= horizon)
        });
    }

    pub fn people(&self) -> usize {
        self.people.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn badge(person: &str, activity_id: u32, t: i64, zone: &str, direction: &str) -> Event {
        let mut e = Event::new(EventClass::PhysicalAccess, activity_id, t, t, b"badge");
        e.actor_mut().person = Some(person.into());
        e.zone = Some(zone.into());
        e.area = Some(format!("{zone}-area").into());
        e.unmapped.insert("badge.direction", direction);
        e
    }

    #[test]
    fn in_out_timeout_and_late_events() {
        let mut p = Presence::new(1_000);
        p.observe(&badge("alice", activity::BADGE_GRANTED, 100, "cell-1", "in"));
        assert_eq!(p.at("alice", 50), None, "not yet");
        assert_eq!(p.at("alice", 150).and_then(|pl| pl.zone.as_deref()), Some("cell-1"));
        assert_eq!(p.at("alice", 1_200), None, "timed out");
        // A late exit, arriving after a query time was already asked about.
        p.observe(&badge("alice", activity::REQUEST_TO_EXIT, 500, "cell-1", "out"));
        assert_eq!(p.at("alice", 600), None);
        assert!(p.at("alice", 400).is_some(), "still inside before she left");
        p.observe(&badge("bob", activity::BADGE_DENIED, 100, "cell-1", "in"));
        assert_eq!(p.at("bob", 150), None, "a denied badge does not let anyone in");
        p.prune(10_000);
        assert_eq!(p.people(), 0);
    }
}
