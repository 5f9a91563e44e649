//! Who is on site now, and where (`GET /api/v1/presence`): correlation's
//! presence, as the badge events made it, asked of the stage that owns the
//! engine, which answers between ledger batches.

use std::sync::Arc;

use correlate::sigma::{OnSite, UnidentifiedEntry};
use ingest::Inventory;
use tokio::sync::{mpsc, oneshot};

/// A question for the engine's owner: who is on site at `at` (Unix ms).
pub struct OnSiteAsk {
    pub at: i64,
    pub reply: oneshot::Sender<OnSiteAnswer>,
}

/// Who is on site by their badges, the entries no badge names (tailgates,
/// forced doors), how long a badge-in counts for, and the inventory
/// correlation runs on (whose people give a muster their names).
#[derive(Debug, Clone)]
pub struct OnSiteAnswer {
    pub people: Vec<OnSite>,
    pub unidentified: Vec<UnidentifiedEntry>,
    pub timeout_ms: i64,
    pub inventory: Arc<Inventory>,
}

/// Asks the engine's owner who is on site.
#[derive(Clone)]
pub struct OnSiteAsks(mpsc::Sender<OnSiteAsk>);

impl OnSiteAsks {
    /// A handle and the receiving end its owner serves (a few questions may wait).
    pub fn channel() -> (Self, mpsc::Receiver<OnSiteAsk>) {
        let (tx, rx) = mpsc::channel(8);
        (Self(tx), rx)
    }

    /// Who is on site at `at`; `None` once correlation has stopped.
    pub async fn at(&self, at: i64) -> Option<OnSiteAnswer> {
        let (reply, answer) = oneshot::channel();
        self.0.send(OnSiteAsk { at, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// One person of a muster list: on site by their badge, seen inside (a
/// logon) without one, or an entry no badge names (no person).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mustered<'a> {
    /// `on_site`, `seen_without_badge` or `unidentified_entry`.
    pub status: &'static str,
    pub person: &'a str,
    /// The door of an unidentified entry, and how it was made (`tailgating`, `forced`).
    pub door: Option<(&'a str, &'static str)>,
    pub zone: Option<&'a str>,
    pub area: Option<&'a str>,
    /// When their badge put them there, or when the logon saw them (Unix ms).
    pub since: i64,
    /// The ledger index of that badge event, or of the alert.
    pub ledger_index: u64,
}

/// What the inventory says of a person a muster counts: printed name,
/// employer, and whether they are an external vendor.
pub fn who(inventory: &Inventory, person: &str) -> (Option<String>, Option<String>, bool) {
    match inventory.person(person) {
        Some(p) => (Some(p.name.clone()).filter(|n| !n.is_empty()), p.employer.clone(), p.vendor),
        None => (None, None, false),
    }
}

/// The muster list as CSV (RFC 4180), for printing or for an evacuation
/// system: a header, then one line per person.
pub fn muster_csv(people: &[Mustered<'_>], inventory: &Inventory) -> String {
    let mut out = String::from("status,person,name,employer,vendor,zone,area,since,ledger_index,door,how\r\n");
    for m in people {
        let (name, employer, vendor) = who(inventory, m.person);
        let fields = [
            m.status,
            m.person,
            name.as_deref().unwrap_or(""),
            employer.as_deref().unwrap_or(""),
            match (m.person.is_empty(), vendor) {
                (true, _) => "",
                (false, true) => "true",
                (false, false) => "false",
            },
            m.zone.unwrap_or(""),
            m.area.unwrap_or(""),
            &ingest::time::format_rfc3339(m.since),
            &m.ledger_index.to_string(),
            m.door.map_or("", |d| d.0),
            m.door.map_or("", |d| d.1),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One CSV field: quoted when it holds a delimiter, a quote or a line break;
/// one a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets
/// a leading `'`, as names come from badge systems and inventories.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_owned() };
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_muster_list_as_csv() {
        let inventory = Inventory::from_toml(
            "[[people]]\nid = \"bob\"\nname = \"Berg, Bob\"\nemployer = \"=HYPERLINK(\\\"x\\\")\"\nvendor = true\n",
        )
        .expect("inventory");
        let people = [
            Mustered {
                status: "on_site",
                person: "bob",
                door: None,
                zone: Some("cell-1"),
                area: Some("control-room-1"),
                since: 1_795_687_200_000,
                ledger_index: 7,
            },
            Mustered {
                status: "seen_without_badge",
                person: "eve",
                door: None,
                zone: Some("cell-1"),
                area: None,
                since: 1_795_687_260_000,
                ledger_index: 9,
            },
            Mustered {
                status: "unidentified_entry",
                person: "",
                door: Some(("CR-DOOR-1", "tailgating")),
                zone: Some("cell-1"),
                area: Some("control-room-1"),
                since: 1_795_687_320_000,
                ledger_index: 11,
            },
        ];
        assert_eq!(
            muster_csv(&people, &inventory),
            "status,person,name,employer,vendor,zone,area,since,ledger_index,door,how\r\n\
             on_site,bob,\"Berg, Bob\",\"'=HYPERLINK(\"\"x\"\")\",true,cell-1,control-room-1,2026-11-26T10:00:00.000Z,7,,\r\n\
             seen_without_badge,eve,,,false,cell-1,,2026-11-26T10:01:00.000Z,9,,\r\n\
             unidentified_entry,,,,,cell-1,control-room-1,2026-11-26T10:02:00.000Z,11,CR-DOOR-1,tailgating\r\n"
        );
    }

    /// The owner answers with the engine's list; once it has stopped, the
    /// question has no answer (the API says 503), and nothing waits forever.
    #[tokio::test]
    async fn asked_and_answered_or_stopped() {
        let (asks, mut owner) = OnSiteAsks::channel();
        let serving = tokio::spawn(async move {
            let ask = owner.recv().await.expect("one question");
            assert_eq!(ask.at, 42);
            let inventory = Arc::new(Inventory::default());
            let _ =
                ask.reply.send(OnSiteAnswer { people: Vec::new(), unidentified: Vec::new(), timeout_ms: 7, inventory });
            // Then the stage stops.
        });
        assert_eq!(asks.at(42).await.map(|a| (a.people, a.timeout_ms)), Some((Vec::new(), 7)));
        serving.await.expect("owner");
        assert!(asks.at(43).await.is_none(), "correlation stopped");
    }
}
