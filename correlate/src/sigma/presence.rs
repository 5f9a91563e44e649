//! Who is on site, and in which zone and area, from badge events: a granted
//! badge at a door puts the person in its area (or takes them out when the
//! reader is an exit: `direction` out, Request To Exit); presence times out
//! after `timeout_ms` without a badge. Queried "as of" an event time, so the
//! answer does not depend on the order badge events arrived in.
//!
//! Door openings are kept for a while too (a door contact's "opened", a
//! forced door, or, at a door that reports no contact, a granted badge or a
//! held-open alarm), so that someone found inside an area they did not badge
//! into can be said to have come in behind whoever opened a door into it:
//! tailgating, inferred from one opening and two people inside. Badges granted at an exit reader
//! are kept as well: a door opened just after one was opened by someone
//! leaving, whom another may have slipped in past (reverse tailgating). An
//! exit reader named apart from its door carries the door's name in
//! `reader.opens` (the inventory's `[[doors]] opens`).

use std::collections::{BTreeSet, HashMap, VecDeque};

use ingest::Event;
use ingest::event::{EventClass, activity};
use ingest::time::format_rfc3339;
use serde::{Deserialize, Serialize};

use crate::state::pairs;

/// A door opening counts as let in by a badge granted at that door at most
/// this long before it.
const GRANT_TO_OPENING_MS: i64 = 30_000;
/// Door events kept at most (the oldest go first): a bound whatever the
/// look-back, against a flood of them.
const MAX_DOOR_EVENTS: usize = 100_000;
/// Doors remembered as reporting their contact, at most.
const MAX_CONTACT_DOORS: usize = 10_000;
/// Openings an inference names at most, newest first.
const MAX_OPENINGS: usize = 3;
/// Entries by no one a badge names, kept at most (the oldest go first).
const MAX_UNIDENTIFIED: usize = 10_000;

/// Where a person was as of a badge event; `None` after leaving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    time: i64,
    /// The badge event's ledger index: an event is not its own evidence.
    index: u64,
    place: Option<Place>,
}

/// The zone and area of the door a person went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub zone: Option<String>,
    pub area: Option<String>,
}

/// What happened at a door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum DoorWhat {
    /// The door contact reports it open.
    Opened,
    Forced,
    /// Held open past its time (an alarm of the access control system).
    HeldOpen,
    /// A badge granted to this person.
    Granted(String),
    /// A badge granted to this person at an exit reader: leaving.
    Left(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DoorEvent {
    time: i64,
    index: u64,
    door: String,
    place: Place,
    what: DoorWhat,
}

/// Someone on site, as their last badge event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnSite {
    pub person: String,
    pub place: Place,
    /// When they badged into it (Unix ms), and that event's ledger index.
    pub since: i64,
    pub index: u64,
}

/// An entry into a place that no badge names: a tailgate the access control
/// system detected (more through the door than badges read), or a door
/// forced open, not at an exit. A muster counts each as someone who may be
/// inside, unnamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnidentifiedEntry {
    pub door: String,
    pub place: Place,
    pub time: i64,
    pub index: u64,
    pub how: EntryWithoutBadge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryWithoutBadge {
    Tailgating,
    Forced,
}

impl EntryWithoutBadge {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tailgating => "tailgating",
            Self::Forced => "forced",
        }
    }
}

/// One door opening into a place, as an inference names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub door: String,
    pub time: i64,
    /// The opening's ledger index (the contact's report, the forced door, or the granted badge).
    pub index: u64,
    pub how: OpenedBy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenedBy {
    /// A badge granted to this person (with its ledger index, unless the
    /// badge itself is the opening: a door without a contact).
    Badge { person: String, index: Option<u64> },
    /// Opened for this person leaving (their badge at an exit reader, with
    /// its ledger index unless the badge itself is the opening).
    Leaving { person: String, index: Option<u64> },
    /// Forced open.
    Force,
    /// Held open past its time, at a door that reports no contact (where it
    /// does, the contact's opening is the one cited).
    HeldOpen,
    /// Opened with no badge granted just before: from inside, by Request To
    /// Exit or by hand.
    NoBadge,
}

/// Where to look for openings: into an area, or into any area of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inside<'a> {
    Area(&'a str),
    Zone(&'a str),
}

impl Inside<'_> {
    fn name(&self) -> &str {
        match self {
            Inside::Area(a) | Inside::Zone(a) => a,
        }
    }

    fn holds(&self, p: &Place) -> bool {
        match self {
            Inside::Area(a) => p.area.as_deref() == Some(*a),
            Inside::Zone(z) => p.zone.as_deref() == Some(*z),
        }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Presence {
    timeout_ms: i64,
    /// How far back from when someone is found inside openings are looked for.
    lookback_ms: i64,
    #[serde(with = "pairs")]
    people: HashMap<String, Vec<Mark>>,
    /// Door events in (time, index) order.
    doors: VecDeque<DoorEvent>,
    /// Doors that report their contact (opened, closed): at those, a granted
    /// badge is not an opening by itself.
    contact_doors: BTreeSet<String>,
    /// Entries no badge names, in (time, index) order.
    #[serde(default)]
    unidentified: VecDeque<UnidentifiedEntry>,
}

impl Presence {
    pub fn new(timeout_ms: i64, lookback_ms: i64) -> Self {
        Self {
            timeout_ms,
            lookback_ms,
            people: HashMap::new(),
            doors: VecDeque::new(),
            contact_doors: BTreeSet::new(),
            unidentified: VecDeque::new(),
        }
    }

    /// Takes in a physical-access event (others are ignored).
    pub fn observe(&mut self, index: u64, e: &Event) {
        if e.class() != Some(EventClass::PhysicalAccess) {
            return;
        }
        let here = || Place { zone: e.zone.as_deref().map(String::from), area: e.area.as_deref().map(String::from) };
        let person = e.person();
        let leaving = e.activity_id == activity::REQUEST_TO_EXIT || e.badged_out();
        // A door the inventory places nowhere is an opening into nowhere. An
        // exit reader with a name of its own reports for the door it opens.
        if let Some(door) = e.portal().filter(|_| e.area.is_some() || e.zone.is_some()) {
            // A contact's report, opened or closed, says the door has one;
            // only openings are kept.
            let contact = matches!(e.activity_id, activity::PORTAL_OPENED | activity::PORTAL_CLOSED);
            let what = match e.activity_id {
                activity::PORTAL_OPENED => Some(DoorWhat::Opened),
                activity::PORTAL_FORCED => Some(DoorWhat::Forced),
                activity::PORTAL_HELD_OPEN => Some(DoorWhat::HeldOpen),
                _ if e.badge_opened() && leaving => person.map(|p| DoorWhat::Left(p.to_owned())),
                _ if e.badge_opened() => person.map(|p| DoorWhat::Granted(p.to_owned())),
                _ => None,
            };
            if contact && self.contact_doors.len() < MAX_CONTACT_DOORS && !self.contact_doors.contains(door) {
                self.contact_doors.insert(door.to_owned());
            }
            let unnamed = match e.activity_id {
                activity::TAILGATING => Some(EntryWithoutBadge::Tailgating),
                activity::PORTAL_FORCED => Some(EntryWithoutBadge::Forced),
                _ => None,
            };
            if let Some(how) = unnamed.filter(|_| !leaving) {
                let u = UnidentifiedEntry { door: door.to_owned(), place: here(), time: e.time, index, how };
                let at = self.unidentified.partition_point(|x| (x.time, x.index) <= (u.time, u.index));
                self.unidentified.insert(at, u);
                if self.unidentified.len() > MAX_UNIDENTIFIED {
                    self.unidentified.pop_front();
                }
            }
            if let Some(what) = what {
                let d = DoorEvent { time: e.time, index, door: door.to_owned(), place: here(), what };
                let at = self.doors.partition_point(|x| (x.time, x.index) <= (d.time, d.index));
                self.doors.insert(at, d);
                if self.doors.len() > MAX_DOOR_EVENTS {
                    self.doors.pop_front();
                }
            }
        }
        let Some(person) = person else { return };
        // A denied badge opened nothing: at an exit reader its holder is
        // still inside.
        let place = match e.activity_id {
            _ if leaving && (e.badge_opened() || e.activity_id == activity::REQUEST_TO_EXIT) => None,
            _ if e.badge_opened() => Some(here()),
            _ => return,
        };
        let marks = self.people.entry(person.to_owned()).or_default();
        // Kept in time order: late badge events slot in where they belong.
        let at = marks.partition_point(|m| (m.time, m.index) <= (e.time, index));
        marks.insert(at, Mark { time: e.time, index, place });
    }

    /// The person's last badge event at or before `t`, other than event
    /// `index` itself (a badge at an exit reader is not evidence of where its
    /// holder was before it).
    fn last_mark(&self, person: &str, t: i64, index: u64) -> Option<&Mark> {
        let marks = self.people.get(person)?;
        let upto = &marks[..marks.partition_point(|m| m.time <= t)];
        upto.iter().rev().find(|m| m.index != index)
    }

    /// Where mark `m` puts its holder at `t`: its place, while a badge-in
    /// counts; nowhere after leaving.
    fn placed<'a>(&self, m: &'a Mark, t: i64) -> Option<&'a Place> {
        m.place.as_ref().filter(|_| t.saturating_sub(m.time) <= self.timeout_ms)
    }

    /// Where `person` was as of event `index` at `t`: on site (with the place) or not.
    pub fn at(&self, person: &str, t: i64, index: u64) -> Option<&Place> {
        self.placed(self.last_mark(person, t, index)?, t)
    }

    /// When `person` badged into `inside` with no badge event since, if that
    /// was longer ago than a badge-in counts for (so [`at`](Self::at) says
    /// they are not there): a long stay, or a way out without a badge.
    /// Remembered for as long again as a badge-in counts.
    pub fn stale_badge_in(&self, inside: Inside<'_>, person: &str, t: i64, index: u64) -> Option<i64> {
        let m = self.last_mark(person, t, index)?;
        let place = m.place.as_ref()?;
        (t.saturating_sub(m.time) > self.timeout_ms && inside.holds(place)).then_some(m.time)
    }

    pub fn timeout_ms(&self) -> i64 {
        self.timeout_ms
    }

    /// Who is on site at `t` by their badges, and where: each person whose
    /// last badge event at or before `t` put them somewhere, within the
    /// timeout; by person.
    pub fn on_site(&self, t: i64) -> Vec<OnSite> {
        let mut out: Vec<OnSite> = self
            .people
            .keys()
            .filter_map(|person| {
                // Asked as of no event: every badge event counts.
                let m = self.last_mark(person, t, u64::MAX)?;
                let place = self.placed(m, t)?;
                Some(OnSite { person: person.clone(), place: place.clone(), since: m.time, index: m.index })
            })
            .collect();
        out.sort_by(|a, b| a.person.cmp(&b.person));
        out
    }

    /// The entries no badge names that count at `t` (within the timeout, as
    /// a badge-in does), newest first.
    pub fn unidentified(&self, t: i64) -> Vec<UnidentifiedEntry> {
        let end = self.unidentified.partition_point(|u| u.time <= t);
        let start = self.unidentified.partition_point(|u| u.time < t.saturating_sub(self.timeout_ms));
        self.unidentified.range(start..end).rev().cloned().collect()
    }

    /// The door openings into `inside` that `person`, found inside at `t`
    /// (event `index`) without a badge of their own into it, may have come
    /// in behind: those after their last badge event and within the
    /// look-back, newest first, at most [`MAX_OPENINGS`].
    pub fn openings(&self, inside: Inside<'_>, person: &str, t: i64, index: u64) -> Vec<Opening> {
        let since =
            self.last_mark(person, t, index).map_or(i64::MIN, |m| m.time).max(t.saturating_sub(self.lookback_ms));
        let end = self.doors.partition_point(|d| d.time <= t);
        let start = self.doors.partition_point(|d| d.time <= since);
        let mut out = Vec::new();
        // The asking event is not evidence of itself (an exit badge is a door event too).
        let door_events = self.doors.range(start..end).rev().filter(|d| d.index != index && inside.holds(&d.place));
        for d in door_events {
            let how = match &d.what {
                DoorWhat::Forced => OpenedBy::Force,
                DoorWhat::Opened => {
                    // The newest badge granted at this door shortly before it opened.
                    let before = self.doors.partition_point(|x| (x.time, x.index) < (d.time, d.index));
                    let by = self
                        .doors
                        .range(..before)
                        .rev()
                        .take_while(|x| d.time.saturating_sub(x.time) <= GRANT_TO_OPENING_MS)
                        .filter(|x| x.door == d.door)
                        .find_map(|x| match &x.what {
                            DoorWhat::Granted(p) => Some(OpenedBy::Badge { person: p.clone(), index: Some(x.index) }),
                            DoorWhat::Left(p) => Some(OpenedBy::Leaving { person: p.clone(), index: Some(x.index) }),
                            _ => None,
                        });
                    match by {
                        // Their own way out is not their way in.
                        Some(OpenedBy::Leaving { person: p, .. }) if p == person => continue,
                        by => by.unwrap_or(OpenedBy::NoBadge),
                    }
                }
                // A door with a contact says when it opened; one without, its badge is the opening.
                DoorWhat::Granted(p) if p != person && !self.contact_doors.contains(&d.door) => {
                    OpenedBy::Badge { person: p.clone(), index: None }
                }
                DoorWhat::Left(p) if p != person && !self.contact_doors.contains(&d.door) => {
                    OpenedBy::Leaving { person: p.clone(), index: None }
                }
                DoorWhat::HeldOpen if !self.contact_doors.contains(&d.door) => OpenedBy::HeldOpen,
                DoorWhat::Granted(_) | DoorWhat::Left(_) | DoorWhat::HeldOpen => continue,
            };
            out.push(Opening { door: d.door.clone(), time: d.time, index: d.index, how });
            if out.len() == MAX_OPENINGS {
                break;
            }
        }
        out
    }

    /// Forgets marks and door events that no query at or after `t` can need.
    pub fn prune(&mut self, t: i64) {
        let horizon = t.saturating_sub(self.timeout_ms);
        // A badge-in past its time is kept as long again, to be named as such.
        let forget = horizon.saturating_sub(self.timeout_ms);
        self.people.retain(|_, marks| {
            // Keep the last mark before the horizon (it says where they were).
            let cut = marks.partition_point(|m| m.time < horizon).saturating_sub(1);
            marks.drain(..cut);
            marks.last().is_some_and(|m| m.time >= forget)
        });
        // An opening is looked for up to the look-back before a query, and
        // its badge up to a grant's reach before that.
        let keep_from = t.saturating_sub(self.lookback_ms).saturating_sub(GRANT_TO_OPENING_MS);
        let cut = self.doors.partition_point(|d| d.time < keep_from);
        self.doors.drain(..cut);
        // Kept, as badges are, for a question as of up to a timeout ago.
        let cut = self.unidentified.partition_point(|u| u.time < forget);
        self.unidentified.drain(..cut);
    }

    pub fn lookback_ms(&self) -> i64 {
        self.lookback_ms
    }

    pub fn people(&self) -> usize {
        self.people.len()
    }

    pub fn door_events(&self) -> usize {
        self.doors.len()
    }
}

/// An alert's words for someone found inside `inside` whose badge-in there,
/// at `since`, was longer ago than a badge-in counts for.
pub fn stale_words(inside: Inside<'_>, since: i64, t: i64, timeout_ms: i64) -> String {
    let minutes = |ms: i64| {
        let m = ms / 60_000;
        match (m / 60, m % 60) {
            (0, m) => format!("{m} min"),
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        }
    };
    format!(
        "badged into {} {} before, longer than a badge-in counts for ({}): a long stay, or a way out without a badge",
        inside.name(),
        minutes(t.saturating_sub(since)),
        minutes(timeout_ms)
    )
}

/// An alert's words for whom someone found inside `inside` came in behind.
pub fn entered_behind(inside: Inside<'_>, openings: &[Opening], lookback_ms: i64) -> String {
    let place = inside.name();
    let how = |o: &Opening| match &o.how {
        OpenedBy::Badge { person, .. } => format!(" on {person}'s badge"),
        OpenedBy::Leaving { person, .. } => format!(" as {person} left"),
        OpenedBy::Force => ", forced".to_owned(),
        OpenedBy::HeldOpen => String::new(),
        OpenedBy::NoBadge => ", with no badge granted before it".to_owned(),
    };
    let at = |o: &Opening| {
        let what = if o.how == OpenedBy::HeldOpen { "held open" } else { "opened" };
        format!("{} {what} at {}", o.door, format_rfc3339(o.time))
    };
    match openings {
        [] => format!(
            "no door into {place} opened since their last badge, within the {} minutes before",
            lookback_ms / 60_000
        ),
        [o] => match &o.how {
            OpenedBy::Badge { person, .. } => format!("came in behind {person}: {}", at(o)),
            OpenedBy::Leaving { person, .. } => format!("came in as {person} left: {}", at(o)),
            _ => format!("came in through {}{}", at(o), how(o)),
        },
        _ => {
            let each: Vec<String> = openings.iter().map(|o| format!("{}{}", at(o), how(o))).collect();
            format!("door openings into {place} before, newest first: {}", each.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn badge(person: &str, activity_id: u32, t: i64, zone: &str, direction: &str) -> Event {
        let mut e = Event::new(EventClass::PhysicalAccess, activity_id, t, t, b"badge");
        e.actor_mut().person = Some(person.into());
        e.zone = Some(zone.into());
        e.area = Some(format!("{zone}-area").into());
        e.door = Some(format!("{zone}-door").into());
        e.unmapped.insert("badge.direction", direction);
        e
    }

    /// A door's own report (contact opened or closed, forced): no person.
    fn door(zone: &str, activity_id: u32, t: i64) -> Event {
        let mut e = Event::new(EventClass::PhysicalAccess, activity_id, t, t, b"door");
        e.zone = Some(zone.into());
        e.area = Some(format!("{zone}-area").into());
        e.door = Some(format!("{zone}-door").into());
        e
    }

    #[test]
    fn in_out_timeout_and_late_events() {
        let mut p = Presence::new(1_000, MIN);
        p.observe(0, &badge("alice", activity::BADGE_GRANTED, 100, "cell-1", "in"));
        assert_eq!(p.at("alice", 50, 9), None, "not yet");
        assert_eq!(p.at("alice", 150, 9).and_then(|pl| pl.zone.as_deref()), Some("cell-1"));
        assert_eq!(p.at("alice", 1_200, 9), None, "timed out");
        // A late exit, arriving after a query time was already asked about.
        p.observe(1, &badge("alice", activity::REQUEST_TO_EXIT, 500, "cell-1", "out"));
        assert_eq!(p.at("alice", 600, 9), None);
        assert!(p.at("alice", 400, 9).is_some(), "still inside before she left");
        p.observe(2, &badge("bob", activity::BADGE_DENIED, 100, "cell-1", "in"));
        assert_eq!(p.at("bob", 150, 9), None, "a denied badge does not let anyone in");
        p.observe(3, &badge("carol", activity::BADGE_GRANTED, 100, "cell-1", "in"));
        p.observe(4, &badge("carol", activity::BADGE_DENIED, 300, "cell-1", "out"));
        assert!(p.at("carol", 400, 9).is_some(), "a denied badge does not let anyone out");
        // A duress code opens the door (its alarm is silent): whoever used it
        // is inside, and a muster must count them; not when it was refused.
        p.observe(5, &badge("dave", activity::DURESS, 100, "cell-1", "in"));
        assert!(p.at("dave", 150, 9).is_some(), "entered under duress");
        let mut refused = badge("erin", activity::DURESS, 100, "cell-1", "in");
        refused.status_id = Some(ingest::event::status::FAILURE);
        p.observe(6, &refused);
        assert_eq!(p.at("erin", 150, 9), None, "a duress code refused");
        p.prune(10_000);
        assert_eq!(p.people(), 0);
    }

    /// Tailgates and forced doors into a place are entries no badge names:
    /// counted for as long as a badge-in; one at an exit is someone leaving.
    #[test]
    fn unidentified_entries_count_for_the_timeout() {
        let mut p = Presence::new(60 * MIN, 15 * MIN);
        let t0 = 1_000 * MIN;
        let mut tailgate = door("cr", activity::TAILGATING, t0);
        tailgate.actor_mut().person = Some("alice".into());
        p.observe(0, &tailgate);
        p.observe(1, &door("lab", activity::PORTAL_FORCED, t0 + MIN));
        let mut out = door("lab", activity::PORTAL_FORCED, t0 + 2 * MIN);
        out.unmapped.insert("badge.direction", "out");
        p.observe(2, &out);
        p.observe(3, &door("cr", activity::PORTAL_HELD_OPEN, t0 + 3 * MIN));
        let mut nowhere = door("x", activity::TAILGATING, t0);
        (nowhere.zone, nowhere.area) = (None, None);
        p.observe(4, &nowhere);
        fn seen(p: &Presence, t: i64) -> Vec<(u64, &'static str)> {
            p.unidentified(t).iter().map(|u| (u.index, u.how.as_str())).collect()
        }
        assert_eq!(seen(&p, t0 + 5 * MIN), [(1, "forced"), (0, "tailgating")], "newest first");
        assert_eq!(p.unidentified(t0)[0].place.area.as_deref(), Some("cr-area"));
        assert_eq!(seen(&p, t0 - 1), [], "not yet");
        assert_eq!(seen(&p, t0 + 60 * MIN + 30_000), [(1, "forced")], "the tailgate's time is up");
        // Asked as of an hour ago, the question finds them after a prune.
        p.prune(t0 + 61 * MIN);
        assert_eq!(seen(&p, t0 + MIN), [(1, "forced"), (0, "tailgating")]);
        p.prune(t0 + 122 * MIN);
        assert_eq!(seen(&p, t0 + MIN), [], "forgotten after twice the timeout");
    }

    /// Asked as of a badge at an exit reader, where its holder was comes
    /// from their badges before it, not from the exit itself.
    #[test]
    fn an_exit_is_not_evidence_of_itself() {
        let mut p = Presence::new(12 * 60 * MIN, 15 * MIN);
        p.observe(0, &badge("alice", activity::BADGE_GRANTED, 100, "cell-1", "in"));
        p.observe(1, &badge("alice", activity::BADGE_GRANTED, 5_000, "cell-1", "out"));
        p.observe(2, &badge("carol", activity::BADGE_GRANTED, 5_000, "cell-1", "out"));
        assert!(p.at("alice", 5_000, 1).is_some(), "inside until her exit");
        assert_eq!(p.at("alice", 5_000, 7), None, "as of another event at that time: out");
        assert_eq!(p.at("carol", 5_000, 2), None, "never came in");
        // The same-millisecond badge-in of someone else's logon still counts.
        assert!(p.at("alice", 100, 8).is_some());
    }

    #[test]
    fn openings_name_who_held_the_door() {
        let mut p = Presence::new(12 * 60 * MIN, 15 * MIN);
        let t0 = 1_000 * MIN;
        // Carol's last badge: into the lab, at t0.
        p.observe(0, &badge("carol", activity::BADGE_GRANTED, t0, "lab", "in"));
        // The control room: Alice's badge, then its door opens and closes (a contact).
        p.observe(1, &badge("alice", activity::BADGE_GRANTED, t0 + MIN, "cr", "in"));
        p.observe(2, &door("cr", activity::PORTAL_OPENED, t0 + MIN + 2_000));
        p.observe(3, &door("cr", activity::PORTAL_CLOSED, t0 + MIN + 9_000));
        // Bob's badge with no opening after it: he did not go through.
        p.observe(4, &badge("bob", activity::BADGE_GRANTED, t0 + 2 * MIN, "cr", "in"));
        // Opened from inside, a minute after any badge, and held open: the
        // contact's opening is cited, not the alarm too.
        p.observe(5, &door("cr", activity::PORTAL_OPENED, t0 + 4 * MIN));
        p.observe(7, &door("cr", activity::PORTAL_HELD_OPEN, t0 + 4 * MIN + 30_000));
        let got = p.openings(Inside::Area("cr-area"), "carol", t0 + 10 * MIN, 9);
        let how: Vec<(u64, &OpenedBy)> = got.iter().map(|o| (o.index, &o.how)).collect();
        assert_eq!(
            how,
            [(5, &OpenedBy::NoBadge), (2, &OpenedBy::Badge { person: "alice".into(), index: Some(1) })],
            "newest first; Bob's badge opened nothing"
        );
        assert_eq!(got, p.openings(Inside::Zone("cr"), "carol", t0 + 10 * MIN, 9), "by zone alike");
        assert!(p.openings(Inside::Area("lab-area"), "carol", t0 + 10 * MIN, 9).is_empty());
        // Only after her last badge: a badge of hers at the lab after Alice's opening leaves one.
        p.observe(6, &badge("carol", activity::BADGE_GRANTED, t0 + 3 * MIN, "lab", "in"));
        assert_eq!(p.openings(Inside::Area("cr-area"), "carol", t0 + 10 * MIN, 9).len(), 1);
        // Within the look-back: 15 minutes.
        assert!(p.openings(Inside::Area("cr-area"), "carol", t0 + 20 * MIN, 9).is_empty());
        // A door without a contact: its badge is the opening; forced and held
        // doors count; at most three, newest first.
        for (i, (who, t)) in [("dan", 11), ("erin", 12), ("", 13), ("frank", 14), ("held", 14)].into_iter().enumerate()
        {
            let i = 10 + i as u64;
            match who {
                "" => p.observe(i, &door("hall", activity::PORTAL_FORCED, t0 + t * MIN)),
                "held" => p.observe(i, &door("hall", activity::PORTAL_HELD_OPEN, t0 + t * MIN + 40_000)),
                _ => p.observe(i, &badge(who, activity::BADGE_GRANTED, t0 + t * MIN, "hall", "in")),
            }
        }
        let got = p.openings(Inside::Area("hall-area"), "carol", t0 + 15 * MIN, 20);
        let how: Vec<(u64, &OpenedBy)> = got.iter().map(|o| (o.index, &o.how)).collect();
        assert_eq!(
            how,
            [
                (14, &OpenedBy::HeldOpen),
                (13, &OpenedBy::Badge { person: "frank".into(), index: None }),
                (12, &OpenedBy::Force),
            ]
        );
    }

    /// A door opened just after someone badged out was opened by them
    /// leaving: at an exit reader named apart from its door (`reader.opens`)
    /// or under the door's own name; at a door without a contact the exit
    /// badge is the opening. Neither the asking event nor the asker's own way
    /// out is cited.
    #[test]
    fn openings_as_someone_left() {
        let mut p = Presence::new(12 * 60 * MIN, 15 * MIN);
        let t0 = 1_000 * MIN;
        let mut exit_reader = badge("alice", activity::BADGE_GRANTED, t0 + MIN, "cr", "out");
        exit_reader.door = Some("cr-door-exit".into());
        exit_reader.unmapped.insert("reader.opens", "cr-door");
        p.observe(0, &badge("carol", activity::BADGE_GRANTED, t0, "lab", "in"));
        p.observe(1, &exit_reader);
        p.observe(2, &door("cr", activity::PORTAL_OPENED, t0 + MIN + 2_000));
        p.observe(3, &door("cr", activity::PORTAL_CLOSED, t0 + MIN + 9_000));
        // The hall's door has no contact: Dan's exit badge is the opening.
        p.observe(4, &badge("dan", activity::BADGE_GRANTED, t0 + 2 * MIN, "hall", "out"));
        let alice = OpenedBy::Leaving { person: "alice".into(), index: Some(1) };
        let got = p.openings(Inside::Area("cr-area"), "carol", t0 + 10 * MIN, 9);
        assert_eq!(got.iter().map(|o| (o.index, &o.how)).collect::<Vec<_>>(), [(2, &alice)]);
        let got = p.openings(Inside::Area("hall-area"), "carol", t0 + 10 * MIN, 9);
        let dan = OpenedBy::Leaving { person: "dan".into(), index: None };
        assert_eq!(got.iter().map(|o| (o.index, &o.how)).collect::<Vec<_>>(), [(4, &dan)]);
        assert!(p.openings(Inside::Area("hall-area"), "carol", t0 + 10 * MIN, 4).is_empty(), "not its own evidence");
        assert!(p.openings(Inside::Area("hall-area"), "dan", t0 + 10 * MIN, 9).is_empty(), "his own way out");
        // Carol leaves the control room by its exit reader; the door opens for her.
        let mut hers = exit_reader.clone();
        (hers.time, hers.actor_mut().person) = (t0 + 5 * MIN, Some("carol".into()));
        p.observe(5, &hers);
        p.observe(6, &door("cr", activity::PORTAL_OPENED, t0 + 5 * MIN + 1_000));
        assert!(p.openings(Inside::Area("cr-area"), "carol", t0 + 10 * MIN, 9).is_empty(), "her own way out");
    }

    /// Door events arriving late or out of order give the same openings.
    #[test]
    fn arrival_order_does_not_change_openings() {
        let t0 = 1_000 * MIN;
        let events = [
            (0, badge("alice", activity::BADGE_GRANTED, t0, "cr", "in")),
            (1, door("cr", activity::PORTAL_OPENED, t0 + 1_000)),
            (2, badge("bob", activity::BADGE_GRANTED, t0 + 20_000, "cr", "in")),
            (3, door("cr", activity::PORTAL_OPENED, t0 + 25_000)),
            (4, door("cr", activity::PORTAL_CLOSED, t0 + 40_000)),
        ];
        let answer = |order: &[usize]| {
            let mut p = Presence::new(12 * 60 * MIN, 15 * MIN);
            for &i in order {
                p.observe(events[i].0, &events[i].1);
            }
            p.openings(Inside::Area("cr-area"), "carol", t0 + MIN, 9)
        };
        let first = answer(&[0, 1, 2, 3, 4]);
        assert_eq!(first.len(), 2);
        assert_eq!(
            first[0].how,
            OpenedBy::Badge { person: "bob".into(), index: Some(2) },
            "the newest badge before it"
        );
        for order in [[4, 3, 2, 1, 0], [1, 3, 0, 4, 2], [2, 0, 4, 1, 3]] {
            assert_eq!(answer(&order), first, "{order:?}");
        }
    }

    #[test]
    fn prune_keeps_what_a_query_can_need() {
        let mut p = Presence::new(60 * MIN, 15 * MIN);
        let t0 = 1_000 * MIN;
        p.observe(0, &badge("alice", activity::BADGE_GRANTED, t0, "cr", "in"));
        p.observe(1, &door("cr", activity::PORTAL_OPENED, t0 + 1_000));
        p.prune(t0 + 15 * MIN);
        assert_eq!(p.door_events(), 2, "still within the look-back and a grant's reach");
        assert_eq!(p.openings(Inside::Area("cr-area"), "carol", t0 + 15 * MIN, 9).len(), 1);
        p.prune(t0 + 16 * MIN);
        assert_eq!(p.door_events(), 0);
        assert_eq!(p.people(), 1, "Alice's badge still says where she is");
    }

    /// A badge-in older than a badge-in counts for is named as such, for
    /// as long again; an exit since, or a badge-in elsewhere, is not one.
    #[test]
    fn a_stale_badge_in_is_named() {
        let mut p = Presence::new(12 * 60 * MIN, 15 * MIN);
        let t0 = 10_000 * MIN;
        p.observe(0, &badge("alice", activity::BADGE_GRANTED, t0, "cr", "in"));
        p.observe(1, &badge("bob", activity::BADGE_GRANTED, t0, "cr", "in"));
        p.observe(2, &badge("bob", activity::BADGE_GRANTED, t0 + MIN, "cr", "out"));
        let t = t0 + 13 * 60 * MIN;
        p.prune(t);
        assert_eq!(p.at("alice", t, 9), None, "past the 12 h");
        assert_eq!(p.stale_badge_in(Inside::Area("cr-area"), "alice", t, 9), Some(t0));
        assert_eq!(p.stale_badge_in(Inside::Zone("cr"), "alice", t, 9), Some(t0));
        assert_eq!(p.stale_badge_in(Inside::Area("lab-area"), "alice", t, 9), None);
        assert_eq!(p.stale_badge_in(Inside::Area("cr-area"), "bob", t, 9), None, "he left");
        assert_eq!(p.stale_badge_in(Inside::Area("cr-area"), "alice", t0 + MIN, 9), None, "not stale yet");
        p.prune(t0 + 24 * 60 * MIN + 1);
        assert_eq!(p.stale_badge_in(Inside::Area("cr-area"), "alice", t0 + 24 * 60 * MIN + 1, 9), None, "forgotten");
        assert_eq!(p.people(), 1, "bob's exit, a minute later, is kept a minute longer");
        p.prune(t0 + 25 * 60 * MIN);
        assert_eq!(p.people(), 0);
        assert_eq!(
            stale_words(Inside::Area("control-room-1"), t0, t0 + 13 * 60 * MIN + 5 * MIN, 12 * 60 * MIN),
            "badged into control-room-1 13 h 5 min before, longer than a badge-in counts for (12 h): a long stay, or a way out without a badge"
        );
    }

    /// Who is on site: everyone whose last badge put them somewhere, within
    /// the timeout, as of the time asked.
    #[test]
    fn who_is_on_site() {
        let mut p = Presence::new(60 * MIN, 15 * MIN);
        let t0 = 1_000 * MIN;
        p.observe(0, &badge("carol", activity::BADGE_GRANTED, t0, "lab", "in"));
        p.observe(1, &badge("alice", activity::BADGE_GRANTED, t0 + MIN, "cr", "in"));
        p.observe(2, &badge("bob", activity::BADGE_GRANTED, t0 + MIN, "cr", "in"));
        p.observe(3, &badge("bob", activity::BADGE_GRANTED, t0 + 2 * MIN, "cr", "out"));
        p.observe(4, &badge("carol", activity::BADGE_GRANTED, t0 + 3 * MIN, "cr", "in"));
        let who = |t| {
            p.on_site(t).into_iter().map(|o| (o.person, o.place.area.unwrap_or_default(), o.index)).collect::<Vec<_>>()
        };
        assert_eq!(who(t0 + 10 * MIN), [("alice".into(), "cr-area".into(), 1), ("carol".into(), "cr-area".into(), 4)]);
        assert_eq!(
            who(t0 + MIN),
            [
                ("alice".into(), "cr-area".into(), 1),
                ("bob".into(), "cr-area".into(), 2),
                ("carol".into(), "lab-area".into(), 0)
            ],
            "as of an earlier time"
        );
        assert_eq!(who(t0 + 62 * MIN), [("carol".into(), "cr-area".into(), 4)], "Alice's badge-in timed out");
    }

    #[test]
    fn words_for_an_alert() {
        let o = |index, how| Opening { door: "CR-DOOR-1".into(), time: 1_795_687_200_000, index, how };
        let alice = OpenedBy::Badge { person: "alice".into(), index: Some(1) };
        let inside = Inside::Area("control-room-1");
        assert_eq!(
            entered_behind(inside, &[o(2, alice.clone())], 15 * MIN),
            "came in behind alice: CR-DOOR-1 opened at 2026-11-26T10:00:00.000Z"
        );
        assert_eq!(
            entered_behind(inside, &[o(3, OpenedBy::Force), o(2, alice)], 15 * MIN),
            "door openings into control-room-1 before, newest first: CR-DOOR-1 opened at 2026-11-26T10:00:00.000Z, forced; CR-DOOR-1 opened at 2026-11-26T10:00:00.000Z on alice's badge"
        );
        let bob = OpenedBy::Leaving { person: "bob".into(), index: Some(1) };
        assert_eq!(
            entered_behind(inside, &[o(2, bob.clone())], 15 * MIN),
            "came in as bob left: CR-DOOR-1 opened at 2026-11-26T10:00:00.000Z"
        );
        assert_eq!(
            entered_behind(inside, &[o(3, OpenedBy::NoBadge), o(2, bob)], 15 * MIN),
            "door openings into control-room-1 before, newest first: CR-DOOR-1 opened at 2026-11-26T10:00:00.000Z, with no badge granted before it; CR-DOOR-1 opened at 2026-11-26T10:00:00.000Z as bob left"
        );
        assert_eq!(
            entered_behind(inside, &[o(3, OpenedBy::NoBadge)], 15 * MIN),
            "came in through CR-DOOR-1 opened at 2026-11-26T10:00:00.000Z, with no badge granted before it"
        );
        assert_eq!(
            entered_behind(inside, &[o(4, OpenedBy::HeldOpen)], 15 * MIN),
            "came in through CR-DOOR-1 held open at 2026-11-26T10:00:00.000Z"
        );
        assert_eq!(
            entered_behind(inside, &[], 15 * MIN),
            "no door into control-room-1 opened since their last badge, within the 15 minutes before"
        );
    }
}
