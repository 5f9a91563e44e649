//! The plant inventory: zones, assets, people, doors, maintenance windows and
//! change tickets, read from a TOML file. Enrichment and correlation join on it.
//! Loading checks every cross-reference and names the key that is wrong.

use crate::event::Text;
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
    pub id: Text,
    #[serde(default)]
    pub name: String,
    /// Purdue level (0 process .. 4 business), when known.
    #[serde(default)]
    pub level: Option<u8>,
    /// Address ranges (`10.10.1.0/24`) of the zone: devices the inventory
    /// does not list still get their zone from these.
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(skip)]
    parsed_networks: Vec<(IpAddr, u8)>,
}

/// An IEC 62443 conduit: the traffic allowed from one zone into another.
/// Traffic inside a zone needs no conduit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conduit {
    pub id: String,
    /// Zone id, or `*` for any zone (and addresses in no zone).
    pub from: String,
    /// Zone id, or `*`.
    pub to: String,
    /// Allowed protocols (`modbus`, `s7comm`, `https`, …); empty = any.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Allowed industrial function codes; empty = any.
    #[serde(default)]
    pub function_codes: Vec<u16>,
}

impl Conduit {
    fn carries(&self, from: Option<&str>, to: &str, protocol: Option<&str>, function_code: Option<u16>) -> bool {
        let zone_ok = |want: &str, got: Option<&str>| want == "*" || Some(want) == got;
        zone_ok(&self.from, from)
            && zone_ok(&self.to, Some(to))
            && (self.protocols.is_empty()
                || protocol.is_some_and(|p| self.protocols.iter().any(|x| x.eq_ignore_ascii_case(p))))
            && (self.function_codes.is_empty() || function_code.is_none_or(|c| self.function_codes.contains(&c)))
    }
}

/// `ip` in `net/prefix`.
fn in_network(ip: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
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
    pub id: Text,
    #[serde(default)]
    pub hostname: Option<Text>,
    #[serde(default)]
    pub ip: Vec<IpAddr>,
    #[serde(default)]
    pub mac: Option<String>,
    pub kind: AssetKind,
    pub zone: Text,
    #[serde(default)]
    pub criticality: Criticality,
    /// The person responsible for (or assigned to) this host.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub model: Option<Text>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub id: Text,
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
    /// The door's (or reader's) name as the access control system reports it.
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub area: Text,
    pub zone: Text,
    /// An exit reader: a badge here takes its holder out of `area`. Events
    /// that carry no direction of their own are given `badge.direction` out.
    /// Default false.
    #[serde(default)]
    pub exit: bool,
    /// The door this reader opens, when the access control system names the
    /// reader apart from its door (an exit reader `CR-DOOR-1-EXIT` of the
    /// door `CR-DOOR-1`, whose contact reports under the door's name): events
    /// here are given `reader.opens`, so that a door opening just after an
    /// exit badge is known to be that person leaving. Another entry of the
    /// same area. Default: none (the reader is the door).
    #[serde(default)]
    pub opens: Option<Text>,
}

/// An area of the doors, with the names the access control system gives it,
/// so that the areas a badge event says its holder entered and left (a
/// Gallagher access zone, a Lenel OnGuard area id) tell its direction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    /// The `area` of one or more doors.
    pub id: Text,
    #[serde(default)]
    pub name: String,
    /// What the access control system calls this area, compared without
    /// case: Gallagher access zone names (`entryAccessZone` /
    /// `exitAccessZone`), Lenel OnGuard area ids (`AreaEnteredID` /
    /// `AreaExitedID`). A badge at one of the area's doors is then an entry
    /// when it says its holder entered this area, an exit when they left it.
    /// Default: none.
    #[serde(default)]
    pub pacs: Vec<String>,
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
    area_by_pacs: HashMap<String, usize>,
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
    pub areas: Vec<Area>,
    #[serde(default)]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    #[serde(default)]
    pub change_tickets: Vec<ChangeTicket>,
    #[serde(default)]
    pub conduits: Vec<Conduit>,
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
        for (i, z) in self.zones.iter_mut().enumerate() {
            insert_unique(&mut ix.zone_by_id, z.id.to_string(), i, format!("zones[{i}].id"), "zone id")?;
            z.parsed_networks = z
                .networks
                .iter()
                .map(|n| {
                    let bad = || {
                        invalid(
                            format!("zones[{i}].networks"),
                            format!("{n:?} is not an address range like 10.10.1.0/24"),
                        )
                    };
                    let (ip, len) = n.split_once('/').ok_or_else(bad)?;
                    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
                    let len: u8 = len.parse().map_err(|_| bad())?;
                    if len > if ip.is_ipv4() { 32 } else { 128 } {
                        return Err(bad());
                    }
                    Ok((ip, len))
                })
                .collect::<Result<_, _>>()?;
        }
        for (i, p) in self.people.iter().enumerate() {
            insert_unique(&mut ix.person_by_id, p.id.to_string(), i, format!("people[{i}].id"), "person id")?;
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
            insert_unique(&mut ix.asset_by_id, a.id.to_string(), i, format!("assets[{i}].id"), "asset id")?;
            if !ix.zone_by_id.contains_key(a.zone.as_str()) {
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
            ix.asset_by_host.insert(a.id.as_str().to_ascii_lowercase(), i);
            if let Some(h) = &a.hostname {
                insert_unique(
                    &mut ix.asset_by_host,
                    h.as_str().to_ascii_lowercase(),
                    i,
                    format!("assets[{i}].hostname"),
                    &format!("hostname {h:?}"),
                )?;
            }
        }
        for (i, d) in self.doors.iter().enumerate() {
            insert_unique(&mut ix.door_by_id, d.id.to_string(), i, format!("doors[{i}].id"), "door id")?;
            if !ix.zone_by_id.contains_key(d.zone.as_str()) {
                return Err(invalid(format!("doors[{i}].zone"), format!("unknown zone {:?}", d.zone)));
            }
        }
        for (i, d) in self.doors.iter().enumerate() {
            let Some(opens) = &d.opens else { continue };
            match ix.door_by_id.get(opens.as_str()).map(|&j| &self.doors[j]) {
                Some(door) if door.id == d.id => {
                    return Err(invalid(format!("doors[{i}].opens"), "a reader opens another door entry, not itself"));
                }
                Some(door) if door.area != d.area => {
                    return Err(invalid(
                        format!("doors[{i}].opens"),
                        format!("door {opens:?} is in area {:?}, the reader in {:?}", door.area, d.area),
                    ));
                }
                Some(_) => {}
                None => return Err(invalid(format!("doors[{i}].opens"), format!("unknown door {opens:?}"))),
            }
        }
        let mut area_ids = HashMap::new();
        for (i, a) in self.areas.iter().enumerate() {
            insert_unique(&mut area_ids, a.id.as_str(), i, format!("areas[{i}].id"), "area id")?;
            if !self.doors.iter().any(|d| d.area == a.id) {
                return Err(invalid(format!("areas[{i}].id"), format!("no door is in area {:?}", a.id)));
            }
            for name in &a.pacs {
                insert_unique(
                    &mut ix.area_by_pacs,
                    name.to_lowercase(),
                    i,
                    format!("areas[{i}].pacs"),
                    &format!("access control area {name:?}"),
                )?;
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
        for (i, c) in self.conduits.iter().enumerate() {
            for (end, z) in [("from", &c.from), ("to", &c.to)] {
                if z != "*" && !ix.zone_by_id.contains_key(z) {
                    return Err(invalid(format!("conduits[{i}].{end}"), format!("unknown zone {z:?}")));
                }
            }
        }
        self.index = ix;
        Ok(())
    }

    /// The zone whose networks hold `ip` (the longest prefix wins).
    pub fn zone_by_ip(&self, ip: &IpAddr) -> Option<&Zone> {
        self.zones
            .iter()
            .flat_map(|z| z.parsed_networks.iter().map(move |n| (z, *n)))
            .filter(|(_, n)| in_network(*ip, *n))
            .max_by_key(|(_, (_, len))| *len)
            .map(|(z, _)| z)
    }

    /// Whether traffic from zone `from` (`None`: an address in no zone) into
    /// zone `to` with `protocol` / `function_code` is allowed: inside a zone
    /// always, across zones only through a conduit that carries it.
    pub fn conduit_allows(
        &self,
        from: Option<&str>,
        to: &str,
        protocol: Option<&str>,
        function_code: Option<u16>,
    ) -> bool {
        from == Some(to) || self.conduits.iter().any(|c| c.carries(from, to, protocol, function_code))
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
    /// The area the access control system calls `name` (any case).
    pub fn area_by_pacs(&self, name: &str) -> Option<&Area> {
        self.index.area_by_pacs.get(&name.to_lowercase()).map(|i| &self.areas[*i])
    }
    pub fn zone(&self, id: &str) -> Option<&Zone> {
        self.index.zone_by_id.get(id).map(|i| &self.zones[*i])
    }

    /// The maintenance window covering a change to `asset` at `t`, if any.
    pub fn maintenance_window_at(&self, asset: &Asset, t: Millis) -> Option<&MaintenanceWindow> {
        self.maintenance_windows.iter().find(|w| {
            (w.assets.iter().any(|a| *a == asset.id) || w.zones.iter().any(|z| *z == asset.zone))
                && (w.span.0..=w.span.1).contains(&t)
        })
    }

    /// The open change ticket covering a change to `asset` at `t`, if any.
    pub fn open_ticket_at(&self, asset: &Asset, t: Millis) -> Option<&ChangeTicket> {
        self.change_tickets.iter().find(|c| {
            c.state == TicketState::Open
                && c.assets.iter().any(|a| *a == asset.id)
                && (c.span.0..=c.span.1).contains(&t)
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
        [[doors]]
        id = "D1-EXIT"
        area = "control-room"
        zone = "cell-1"
        exit = true
        opens = "D1"
        [[areas]]
        id = "control-room"
        pacs = ["Control Room", "3"]
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
        assert_eq!(inv.area_by_pacs("CONTROL ROOM").map(|a| a.id.as_str()), Some("control-room"), "any case");
        assert_eq!(inv.area_by_pacs("3").map(|a| a.id.as_str()), Some("control-room"));
        assert!(inv.area_by_pacs("0").is_none());
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
            (SAMPLE.replace("opens = \"D1\"", "opens = \"D9\""), "doors[1].opens"),
            (SAMPLE.replace("opens = \"D1\"", "opens = \"D1-EXIT\""), "doors[1].opens"),
            (
                SAMPLE.replace("\"D1-EXIT\"\n        area = \"control-room\"", "\"D1-EXIT\"\n        area = \"hall\""),
                "doors[1].opens",
            ),
            (SAMPLE.replace("id = \"control-room\"", "id = \"hall\""), "areas[0].id"),
            (format!("{SAMPLE}\n[[areas]]\nid = \"control-room\"\n"), "areas[1].id"),
            (
                format!(
                    "{SAMPLE}\n[[doors]]\nid = \"H1\"\narea = \"hall\"\nzone = \"cell-1\"\n\
                     [[areas]]\nid = \"hall\"\npacs = [\"control room\"]\n"
                ),
                "areas[1].pacs",
            ),
        ];
        for (text, key) in cases {
            let e = Inventory::from_toml(&text).expect_err("must fail").to_string();
            assert!(e.contains(key), "{e} should name {key}");
        }
    }

    #[test]
    fn zones_by_network_and_conduits() {
        let inv = Inventory::from_toml(
            r#"
[[zones]]
id = "cell-1"
networks = ["10.10.0.0/16", "10.10.1.0/24"]
[[zones]]
id = "dmz"
networks = ["10.10.1.128/25"]
[[conduits]]
id = "C1"
from = "dmz"
to = "cell-1"
protocols = ["modbus"]
function_codes = [3, 4]
[[conduits]]
id = "C2"
from = "*"
to = "dmz"
protocols = ["https"]
"#,
        )
        .expect("valid");
        let zone = |ip: &str| inv.zone_by_ip(&ip.parse().expect("ip")).map(|z| z.id.as_str());
        assert_eq!(zone("10.10.1.200"), Some("dmz"), "longest prefix wins");
        assert_eq!(zone("10.10.1.5"), Some("cell-1"));
        assert_eq!(zone("10.20.0.1"), None);
        assert!(inv.conduit_allows(Some("cell-1"), "cell-1", Some("s7comm"), Some(0x29)), "inside a zone");
        assert!(inv.conduit_allows(Some("dmz"), "cell-1", Some("modbus"), Some(3)));
        assert!(!inv.conduit_allows(Some("dmz"), "cell-1", Some("modbus"), Some(16)), "a write is not carried");
        assert!(!inv.conduit_allows(Some("dmz"), "cell-1", Some("s7comm"), None));
        assert!(inv.conduit_allows(None, "dmz", Some("HTTPS"), None), "from anywhere");
        assert!(!inv.conduit_allows(None, "cell-1", Some("modbus"), Some(3)));
        for (bad, key) in [
            ("[[zones]]\nid = \"z\"\nnetworks = [\"10.0.0.0/33\"]", "zones[0].networks"),
            ("[[zones]]\nid = \"z\"\n[[conduits]]\nid = \"c\"\nfrom = \"z\"\nto = \"nowhere\"", "conduits[0].to"),
        ] {
            let e = Inventory::from_toml(bad).expect_err(bad).to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}
