//! The plant inventory: zones, assets, people, doors, maintenance windows and
//! change tickets, read from a TOML file. Enrichment and correlation join on it.
//! Loading checks every cross-reference and names the key that is wrong.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::time::{Millis, parse_rfc3339};

/// A problem in the inventory file, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("inventory is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("inventory {key}: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: String, problem: impl Into<String>) -> InventoryError {
    InventoryError::Invalid { key, problem: problem.into() }
}

/// An IEC 62443 zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Purdue level (0 process .. 4 business), when known.
    #[serde(default)]
    pub level: Option<u8>,
}

/// What an asset is; rules key on engineering workstations and PLCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    Plc,
    Hmi,
    Ews,
    Historian,
    Server,
    Workstation,
    Laptop,
    Network,
    Other,
}

impl AssetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plc => "plc",
            Self::Hmi => "hmi",
            Self::Ews => "ews",
            Self::Historian => "historian",
            Self::Server => "server",
            Self::Workstation => "workstation",
            Self::Laptop => "laptop",
            Self::Network => "network",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    pub id: String,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub ip: Vec<IpAddr>,
    #[serde(default)]
    pub mac: Option<String>,
    pub kind: AssetKind,
    pub zone: String,
    #[serde(default)]
    pub criticality: Criticality,
    /// The person responsible for (or assigned to) this host.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub badges: Vec<String>,
    /// Accounts; matched case-insensitively, with or without a `DOMAIN\` prefix.
    #[serde(default)]
    pub accounts: Vec<String>,
    #[serde(default)]
    pub employer: Option<String>,
    /// An external vendor / contractor.
    #[serde(default)]
    pub vendor: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Door {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub area: String,
    pub zone: String,
}

/// A period in which changes to the named assets (or every asset of the named
/// zones) are planned. Times are RFC 3339 strings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub id: String,
    #[serde(default)]
    pub assets: Vec<String>,
    #[serde(default)]
    pub zones: Vec<String>,
    pub start: String,
    pub end: String,
    #[serde(skip)]
    span: (Millis, Millis),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    Open,
    Closed,
}

/// A change ticket from the plant's change management: while `open`, it
/// authorises changes to its assets between `start` and `end`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeTicket {
    pub id: String,
    pub assets: Vec<String>,
    pub state: TicketState,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub summary: String,
    #[serde(skip)]
    span: (Millis, Millis),
}

#[derive(Debug, Default, Clone)]
struct Index {
    asset_by_id: HashMap<String, usize>,
    asset_by_ip: HashMap<IpAddr, usize>,
    asset_by_host: HashMap<String, usize>,
    person_by_id: HashMap<String, usize>,
    person_by_badge: HashMap<String, usize>,
    person_by_account: HashMap<String, usize>,
    door_by_id: HashMap<String, usize>,
    zone_by_id: HashMap<String, usize>,
}

/// The whole inventory with lookup indexes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub assets: Vec<Asset>,
    #[serde(default)]
    pub people: Vec<Person>,
    #[serde(default)]
    pub doors: Vec<Door>,
    #[serde(default)]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    #[serde(default)]
    pub change_tickets: Vec<ChangeTicket>,
    #[serde(skip)]
    index: Index,
}

/// Accounts compare without case and without a `DOMAIN\` or `@domain` part.
fn account_key(account: &str) -> String {
    let a = account.rsplit('\\').next().unwrap_or(account);
    let a = a.split('@').next().unwrap_or(a);
    a.to_ascii_lowercase()
}

fn span(key: &str, start: &str, end: &str) -> Result<(Millis, Millis), InventoryError> {
    let s = parse_rfc3339(start)
        .ok_or_else(|| invalid(format!("{key}.start"), format!("{start:?} is not an RFC 3339 time")))?;
    let e =
        parse_rfc3339(end).ok_or_else(|| invalid(format!("{key}.end"), format!("{end:?} is not an RFC 3339 time")))?;
    if e < s {
        return Err(invalid(format!("{key}.end"), "ends before it starts"));
    }
    Ok((s, e))
}

fn insert_unique<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, usize>,
    k: K,
    i: usize,
    key: String,
    what: &str,
) -> Result<(), InventoryError> {
    match map.insert(k, i) {
        Some(prev) if prev != i => Err(invalid(key, format!("{what} is already used by another entry"))),
        _ => Ok(()),
    }
}

impl Inventory {
    /// Parses and checks an inventory; errors name the offending key.
    pub fn from_toml(text: &str) -> Result<Self, InventoryError> {
        let mut inv: Inventory = toml::from_str(text)?;
        inv.build()?;
        Ok(inv)
    }

    fn build(&mut self) -> Result<(), InventoryError> {
        let mut ix = Index::default();
        for (i, z) in self.zones.iter().enumerate() {
            insert_unique(&mut ix.zone_by_id, z.id.clone(), i, format!("zones[{i}].id"), "zone id")?;
        }
        for (i, p) in self.people.iter().enumerate() {
            insert_unique(&mut ix.person_by_id, p.id.clone(), i, format!("people[{i}].id"), "person id")?;
            for b in &p.badges {
                insert_unique(
                    &mut ix.person_by_badge,
                    b.clone(),
                    i,
                    format!("people[{i}].badges"),
                    &format!("badge {b:?}"),
                )?;
            }
            for a in &p.accounts {
                insert_unique(
                    &mut ix.person_by_account,
                    account_key(a),
                    i,
                    format!("people[{i}].accounts"),
                    &format!("account {a:?}"),
                )?;
            }
        }
        for (i, a) in self.assets.iter().enumerate() {
            insert_unique(&mut ix.asset_by_id, a.id.clone(), i, format!("assets[{i}].id"), "asset id")?;
            if !ix.zone_by_id.contains_key(&a.zone) {
                return Err(invalid(format!("assets[{i}].zone"), format!("unknown zone {:?}", a.zone)));
            }
            if let Some(o) = &a.owner
                && !ix.person_by_id.contains_key(o)
            {
                return Err(invalid(format!("assets[{i}].owner"), format!("unknown person {o:?}")));
            }
            for ip in &a.ip {
                insert_unique(&mut ix.asset_by_ip, *ip, i, format!("assets[{i}].ip"), &format!("ip {ip}"))?;
            }
            ix.asset_by_host.insert(a.id.to_ascii_lowercase(), i);
            if let Some(h) = &a.hostname {
                insert_unique(
                    &mut ix.asset_by_host,
                    h.to_ascii_lowercase(),
                    i,
                    format!("assets[{i}].hostname"),
                    &format!("hostname {h:?}"),
                )?;
            }
        }
        for (i, d) in self.doors.iter().enumerate() {
            insert_unique(&mut ix.door_by_id, d.id.clone(), i, format!("doors[{i}].id"), "door id")?;
            if !ix.zone_by_id.contains_key(&d.zone) {
                return Err(invalid(format!("doors[{i}].zone"), format!("unknown zone {:?}", d.zone)));
            }
        }
        for (i, w) in self.maintenance_windows.iter_mut().enumerate() {
            let key = format!("maintenance_windows[{i}]");
            w.span = span(&key, &w.start, &w.end)?;
            if let Some(a) = w.assets.iter().find(|a| !ix.asset_by_id.contains_key(*a)) {
                return Err(invalid(format!("{key}.assets"), format!("unknown asset {a:?}")));
            }
            if let Some(z) = w.zones.iter().find(|z| !ix.zone_by_id.contains_key(*z)) {
                return Err(invalid(format!("{key}.zones"), format!("unknown zone {z:?}")));
            }
        }
        for (i, t) in self.change_tickets.iter_mut().enumerate() {
            let key = format!("change_tickets[{i}]");
            t.span = span(&key, &t.start, &t.end)?;
            if let Some(a) = t.assets.iter().find(|a| !ix.asset_by_id.contains_key(*a)) {
                return Err(invalid(format!("{key}.assets"), format!("unknown asset {a:?}")));
            }
        }
        self.index = ix;
        Ok(())
    }

    pub fn asset(&self, id: &str) -> Option<&Asset> {
        self.index.asset_by_id.get(id).map(|i| &self.assets[*i])
    }
    pub fn asset_by_ip(&self, ip: &IpAddr) -> Option<&Asset> {
        self.index.asset_by_ip.get(ip).map(|i| &self.assets[*i])
    }
    /// By hostname or asset id, case-insensitively; a domain suffix is ignored.
    pub fn asset_by_host(&self, host: &str) -> Option<&Asset> {
        let h = host.to_ascii_lowercase();
        let short = h.split('.').next().unwrap_or(&h);
        self.index.asset_by_host.get(&h).or_else(|| self.index.asset_by_host.get(short)).map(|i| &self.assets[*i])
    }
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.index.person_by_id.get(id).map(|i| &self.people[*i])
    }
    pub fn person_by_badge(&self, badge: &str) -> Option<&Person> {
        self.index.person_by_badge.get(badge).map(|i| &self.people[*i])
    }
    pub fn person_by_account(&self, account: &str) -> Option<&Person> {
        self.index.person_by_account.get(&account_key(account)).map(|i| &self.people[*i])
    }
    pub fn door(&self, id: &str) -> Option<&Door> {
        self.index.door_by_id.get(id).map(|i| &self.doors[*i])
    }
    pub fn zone(&self, id: &str) -> Option<&Zone> {
        self.index.zone_by_id.get(id).map(|i| &self.zones[*i])
    }

    /// The maintenance window covering a change to `asset` at `t`, if any.
    pub fn maintenance_window_at(&self, asset: &Asset, t: Millis) -> Option<&MaintenanceWindow> {
        self.maintenance_windows.iter().find(|w| {
            (w.assets.contains(&asset.id) || w.zones.contains(&asset.zone)) && (w.span.0..=w.span.1).contains(&t)
        })
    }

    /// The open change ticket covering a change to `asset` at `t`, if any.
    pub fn open_ticket_at(&self, asset: &Asset, t: Millis) -> Option<&ChangeTicket> {
        self.change_tickets.iter().find(|c| {
            c.state == TicketState::Open && c.assets.contains(&asset.id) && (c.span.0..=c.span.1).contains(&t)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"
        [[zones]]
        id = "cell-1"
        level = 1
        [[people]]
        id = "alice"
        badges = ["1001"]
        accounts = ["alice", "PLANT\\alice.adm"]
        [[assets]]
        id = "PLC-01"
        kind = "plc"
        zone = "cell-1"
        ip = ["10.10.1.10"]
        [[assets]]
        id = "EWS-01"
        hostname = "ews-01.plant.local"
        kind = "ews"
        zone = "cell-1"
        owner = "alice"
        [[doors]]
        id = "D1"
        area = "control-room"
        zone = "cell-1"
        [[maintenance_windows]]
        id = "MW-1"
        zones = ["cell-1"]
        start = "2026-11-26T08:00:00Z"
        end = "2026-11-26T10:00:00Z"
        [[change_tickets]]
        id = "CHG-1"
        assets = ["PLC-01"]
        state = "open"
        start = "2026-11-27T08:00:00Z"
        end = "2026-11-27T10:00:00Z"
    "#;

    #[test]
    fn lookups() {
        let inv = Inventory::from_toml(SAMPLE).expect("valid");
        assert_eq!(inv.person_by_account("PLANT\\Alice").map(|p| p.id.as_str()), Some("alice"));
        assert_eq!(inv.person_by_account("alice.adm@plant.local").map(|p| p.id.as_str()), Some("alice"));
        assert_eq!(inv.person_by_badge("1001").map(|p| p.id.as_str()), Some("alice"));
        assert_eq!(inv.asset_by_host("EWS-01").map(|a| a.id.as_str()), Some("EWS-01"));
        assert_eq!(inv.asset_by_ip(&"10.10.1.10".parse().expect("ip")).map(|a| a.id.as_str()), Some("PLC-01"));
        let plc = inv.asset("PLC-01").expect("plc");
        let t = |s: &str| parse_rfc3339(s).unwrap_or_default();
        assert!(inv.maintenance_window_at(plc, t("2026-11-26T09:00:00Z")).is_some());
        assert!(inv.maintenance_window_at(plc, t("2026-11-26T11:00:00Z")).is_none());
        assert!(inv.open_ticket_at(plc, t("2026-11-27T09:00:00Z")).is_some());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (SAMPLE.replace("zone = \"cell-1\"\n        ip", "zone = \"cell-9\"\n        ip"), "assets[0].zone"),
            (SAMPLE.replace("owner = \"alice\"", "owner = \"bob\""), "assets[1].owner"),
            (SAMPLE.replace("2026-11-26T10:00:00Z", "tomorrow"), "maintenance_windows[0].end"),
            (SAMPLE.replace("assets = [\"PLC-01\"]", "assets = [\"PLC-99\"]"), "change_tickets[0].assets"),
            (format!("{SAMPLE}\n[[zones]]\nid = \"cell-1\"\n"), "zones[1].id"),
            (format!("{SAMPLE}\nsurprise = 1\n"), "unknown field"),
        ];
        for (text, key) in cases {
            let e = Inventory::from_toml(&text).expect_err("must fail").to_string();
            assert!(e.contains(key), "{e} should name {key}");
        }
    }
}
