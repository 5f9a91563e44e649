use super::*;
use ingest::{Format, Normalized, RawRecord, normalize};

const INVENTORY: &str = r#"
[[zones]]
id = "cell-1"
[[people]]
id = "mallory"
badges = ["4711"]
accounts = ["mallory"]
[[people]]
id = "bob"
badges = ["2002"]
[[assets]]
id = "EWS-01"
hostname = "ews-01"
kind = "ews"
zone = "cell-1"
ip = ["10.10.1.20"]
[[assets]]
id = "HMI-01"
kind = "hmi"
zone = "cell-1"
[[assets]]
id = "PLC-01"
kind = "plc"
zone = "cell-1"
ip = ["10.10.1.10"]
criticality = "critical"
[[assets]]
id = "PLC-02"
kind = "plc"
zone = "cell-1"
[[assets]]
id = "PLC-03"
kind = "plc"
zone = "cell-1"
[[assets]]
id = "LAPTOP-7"
kind = "laptop"
zone = "cell-1"
ip = ["10.10.1.50"]
owner = "bob"
[[doors]]
id = "CR-DOOR-1"
area = "control-room"
zone = "cell-1"
[[doors]]
id = "CR-DOOR-1-EXIT"
area = "control-room"
zone = "cell-1"
exit = true
opens = "CR-DOOR-1"
[[areas]]
id = "control-room"
pacs = ["Control Room", "3"]
[[maintenance_windows]]
id = "MW-1"
assets = ["PLC-02"]
start = "2026-11-26T09:00:00Z"
end = "2026-11-26T11:00:00Z"
[[change_tickets]]
id = "CHG-7"
assets = ["PLC-03"]
state = "open"
start = "2026-11-26T09:00:00Z"
end = "2026-11-26T11:00:00Z"
"#;

const T0: i64 = 1_795_687_200_000; // 2026-11-26T10:00:00Z

fn iso(ms: i64) -> String {
    ingest::time::format_rfc3339(ms)
}

struct Harness {
    engine: Engine,
    inventory: Arc<Inventory>,
    next: u64,
}

impl Harness {
    fn new() -> Self {
        let inventory = Arc::new(Inventory::from_toml(INVENTORY).expect("inventory"));
        // The hand-written joins alone; Sigma rules are tested below and in `sigma`.
        let engine = Engine::with_rules(inventory.clone(), EngineConfig::default(), crate::sigma::RuleSet::default());
        Self { engine, inventory, next: 0 }
    }

    /// Feeds one source line observed at `observed`; returns (its index, alerts).
    fn feed(&mut self, source: &str, format: Format, line: &str, observed: i64) -> (u64, Vec<Alert>) {
        let raw = RawRecord::new(source.into(), format, observed, line.as_bytes().to_vec());
        let Normalized::Event(e) = normalize(raw, &self.inventory, 0).record else { panic!("{line} did not parse") };
        let index = self.next;
        self.next += 1;
        (index, self.engine.on_event(index, &e))
    }

    fn badge(&mut self, t: i64, badge: &str, result: &str, observed: i64) -> (u64, Vec<Alert>) {
        let line = format!(r#"{{"time":"{}","badge":"{badge}","door":"CR-DOOR-1","result":"{result}"}}"#, iso(t));
        self.feed("badge", Format::BadgeJson, &line, observed)
    }

    fn login(&mut self, t: i64, user: &str, host: &str, sig: &str, observed: i64) -> (u64, Vec<Alert>) {
        let line = format!(
            "<13>1 {} {host} win - - - CEF:0|Microsoft|Windows|10|{sig}|An account logon|3|duser={user} dhost={host}",
            iso(t)
        );
        self.feed("syslog", Format::Syslog, &line, observed)
    }

    fn plc(&mut self, t: i64, asset: &str, result: &str) -> (u64, Vec<Alert>) {
        let line = format!(
            r#"{{"asset":"{asset}","backup":"b{t}","time":"{}","compared_with":"released","result":"{result}","changed_files":["OB1"]}}"#,
            iso(t)
        );
        self.feed("plc", Format::PlcBackup, &line, t + 1000)
    }

    fn modbus(&mut self, t: i64, src: &str, code: u8, observed: i64) -> (u64, Vec<Alert>) {
        let line = format!(
            r#"{{"timestamp":"{}","event_type":"modbus","src_ip":"{src}","dest_ip":"10.10.1.10","dest_port":502,"modbus":{{"request":{{"unit_id":1,"function_raw":{code}}}}}}}"#,
            iso(t)
        );
        self.feed("eve", Format::SuricataEve, &line, observed)
    }
}

fn rules(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.rule.as_str()).collect()
}

#[test]
fn badge_denied_then_ews_login_within_window() {
    let mut h = Harness::new();
    let (deny, a) = h.badge(T0, "4711", "denied", T0);
    assert!(a.is_empty());
    let (login, a) = h.login(T0 + 120_000, "mallory", "ews-01", "4624", T0 + 120_000);
    assert_eq!(rules(&a), ["badge-denied-then-ews-login"]);
    assert_eq!(a[0].events, vec![deny, login]);
    assert_eq!(a[0].attack, vec!["T0859".to_owned()]);
    assert_eq!(a[0].entity, Entity { kind: EntityKind::Person, id: "mallory".into() });
    assert_eq!(a[0].zone.as_deref(), Some("cell-1"));
}

#[test]
fn badge_login_in_either_arrival_order() {
    let mut h = Harness::new();
    // The badge system delivers late: the login arrives first.
    let (_, a) = h.login(T0 + 60_000, "mallory", "ews-01", "4624", T0 + 60_000);
    assert!(a.is_empty());
    let (_, a) = h.badge(T0, "4711", "denied", T0 + 61_000);
    assert_eq!(rules(&a), ["badge-denied-then-ews-login"]);
}

/// Three denials, then a logon: one alert holding all four events, and a
/// denial delivered late for that logon adds none. Logons seen before any
/// denial alert, each once, when a denial before them arrives.
#[test]
fn badge_login_alerts_once_per_logon() {
    let mut h = Harness::new();
    let denials: Vec<u64> = (0..3).map(|k| h.badge(T0 + k * 1_000, "4711", "denied", T0 + k * 1_000).0).collect();
    let (login, a) = h.login(T0 + 5_000, "mallory", "ews-01", "4624", T0 + 5_000);
    assert_eq!(rules(&a), ["badge-denied-then-ews-login"]);
    assert_eq!(a[0].events, [denials.clone(), vec![login]].concat());
    assert_eq!(
        a[0].summary,
        "mallory was denied 3 times at doors of zone cell-1, then logged on to an engineering workstation there 3 s after the last denial"
    );
    assert!(h.badge(T0 + 4_000, "4711", "denied", T0 + 6_000).1.is_empty(), "late denial, logon already alerted");
    // A second logon is a second act: one more alert, with the four denials before it.
    let (_, a) = h.login(T0 + 9_000, "mallory", "ews-01", "4624", T0 + 9_000);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].events.len(), 5);

    let mut h = Harness::new();
    let (first, a) = h.login(T0 + 60_000, "mallory", "ews-01", "4624", T0 + 60_000);
    assert!(a.is_empty());
    let (second, _) = h.login(T0 + 70_000, "mallory", "ews-01", "4624", T0 + 70_000);
    let (deny, a) = h.badge(T0, "4711", "denied", T0 + 71_000);
    assert_eq!(a.iter().map(|a| a.events.clone()).collect::<Vec<_>>(), [vec![deny, first], vec![deny, second]]);
    assert!(h.badge(T0 + 1_000, "4711", "denied", T0 + 72_000).1.is_empty(), "both logons already alerted");
}

#[test]
fn badge_login_negative_cases() {
    let mut h = Harness::new();
    h.badge(T0, "4711", "denied", T0);
    // Too late, failed logon, and a logon on a host that is not an EWS.
    assert!(h.login(T0 + 6 * 60_000, "mallory", "ews-01", "4624", T0 + 6 * 60_000).1.is_empty());
    assert!(h.login(T0 + 60_000, "mallory", "ews-01", "4625", T0 + 60_000).1.is_empty());
    assert!(h.login(T0 + 60_000, "mallory", "HMI-01", "4624", T0 + 60_000).1.is_empty());
    // A granted badge is not a denial.
    let mut h = Harness::new();
    h.badge(T0, "4711", "granted", T0);
    assert!(h.login(T0 + 60_000, "mallory", "ews-01", "4624", T0 + 60_000).1.is_empty());
}

#[test]
fn plc_change_outside_window() {
    let mut h = Harness::new();
    let (i, a) = h.plc(T0, "PLC-01", "different");
    assert_eq!(rules(&a), ["plc-change-outside-window"]);
    assert_eq!(a[0].events, vec![i]);
    assert_eq!(a[0].severity_id, severity::CRITICAL, "critical asset raises the severity");
    assert_eq!(a[0].attack, vec!["T0843".to_owned(), "T0889".to_owned()]);
}

#[test]
fn plc_change_covered_by_window_or_ticket_or_equal_is_quiet() {
    let mut h = Harness::new();
    assert!(h.plc(T0, "PLC-02", "different").1.is_empty(), "inside the maintenance window");
    assert!(h.plc(T0, "PLC-03", "different").1.is_empty(), "covered by an open ticket");
    assert!(h.plc(T0, "PLC-01", "equal").1.is_empty(), "equal to released");
    assert_eq!(
        rules(&h.plc(T0 + 2 * 3_600_000, "PLC-02", "different").1),
        ["plc-change-outside-window"],
        "after the window ends"
    );
}

#[test]
fn ot_write_owner_offsite_waits_for_the_watermark() {
    let mut h = Harness::new();
    let (i, a) = h.modbus(T0, "10.10.1.50", 6, T0);
    assert!(a.is_empty(), "undecided until the watermark passes the write");
    let a = h.engine.on_tick(T0 + 60_000);
    assert_eq!(rules(&a), ["ot-write-owner-offsite"]);
    assert_eq!(a[0].events, vec![i]);
    assert_eq!(a[0].attack, vec!["T0855".to_owned()]);
}

#[test]
fn ot_write_negative_cases() {
    let mut h = Harness::new();
    h.badge(T0 - 3_600_000, "2002", "granted", T0 - 3_600_000);
    h.modbus(T0, "10.10.1.50", 16, T0);
    assert!(h.engine.on_tick(T0 + 60_000).is_empty(), "owner badged in an hour before");
    let mut h = Harness::new();
    h.modbus(T0, "10.10.1.50", 3, T0);
    h.modbus(T0, "10.10.1.20", 6, T0);
    assert!(h.engine.on_tick(T0 + 60_000).is_empty(), "a read, and a write from a host without owner");
}

#[test]
fn late_badge_within_lateness_prevents_the_alert() {
    let mut h = Harness::new();
    h.modbus(T0, "10.10.1.50", 6, T0);
    // The badge system delivers the morning's grant 3 s later (within 5 s lateness).
    h.badge(T0 - 600_000, "2002", "granted", T0 + 3_000);
    assert!(h.engine.on_tick(T0 + 60_000).is_empty());
}

#[test]
fn events_behind_the_watermark_are_counted_late() {
    let mut h = Harness::new();
    h.modbus(T0, "10.10.1.50", 6, T0);
    assert_eq!(rules(&h.engine.on_tick(T0 + 60_000)), ["ot-write-owner-offsite"]);
    h.badge(T0 - 60_000, "2002", "granted", T0 + 61_000);
    assert_eq!(h.engine.stats().late_events, 1);
}

#[test]
fn state_is_evicted_behind_the_watermark() {
    let mut h = Harness::new();
    for k in 0..50 {
        h.badge(T0 + k, "4711", "denied", T0 + k);
    }
    assert!(h.engine.stats().state_entries >= 50);
    h.engine.on_tick(T0 + 3_600_000);
    h.login(T0 + 3_600_000, "mallory", "ews-01", "4624", T0 + 3_600_000);
    h.engine.on_tick(T0 + 2 * 3_600_000);
    assert!(h.engine.stats().state_entries <= 2, "{:?}", h.engine.stats());
}

/// The built-in Sigma pack runs inside the engine: a write from the vendor
/// laptop is also `custos-ot-write-non-ews`, at once, with its ATT&CK tags.
#[test]
fn builtin_sigma_rules_alert_through_the_engine() {
    let mut h = Harness::new();
    h.engine = Engine::new(h.inventory.clone(), EngineConfig::default());
    let (i, a) = h.modbus(T0, "10.10.1.50", 6, T0);
    assert_eq!(rules(&a), ["custos-ot-write-non-ews"]);
    assert_eq!(a[0].events, vec![i]);
    assert_eq!(a[0].attack, ["T0855".to_owned(), "T0836".to_owned()]);
    assert_eq!(a[0].entity, Entity { kind: EntityKind::Asset, id: "PLC-01".into() });
    assert_eq!(a[0].severity_id, severity::CRITICAL, "level high, raised: PLC-01 is critical");
    assert_eq!(a[0].id, format!("custos-ot-write-non-ews:{i}"));
}

/// Tailgating inferred: someone leaves an area they never badged into, and
/// the alert names whom they came in behind, from the door's contact; a
/// logon inside the zone names the openings into the zone alike.
#[test]
fn tailgating_names_who_held_the_door() {
    let mut h = Harness::new();
    h.engine = Engine::new(h.inventory.clone(), EngineConfig::default());
    let mut a = Vec::new();
    let mut keep = |(index, alerts): (u64, Vec<Alert>)| {
        a.extend(alerts);
        index
    };
    let bob = keep(h.badge(T0, "2002", "granted", T0));
    let line = |t: i64, result: &str| format!(r#"{{"time":"{}","door":"CR-DOOR-1","result":"{result}"}}"#, iso(t));
    let opened = keep(h.feed("badge", Format::BadgeJson, &line(T0 + 2_000, "door_opened"), T0 + 2_000));
    keep(h.feed("badge", Format::BadgeJson, &line(T0 + 8_000, "door_closed"), T0 + 8_000));
    // Bob's badge again, but the door stays shut: not an opening.
    keep(h.badge(T0 + 60_000, "2002", "granted", T0 + 60_000));
    let logon = keep(h.login(T0 + 120_000, "mallory", "ews-01", "4624", T0 + 120_000));
    let exit = format!(
        r#"{{"time":"{}","badge":"4711","door":"CR-DOOR-1","result":"granted","direction":"out"}}"#,
        iso(T0 + 600_000)
    );
    let out = keep(h.feed("badge", Format::BadgeJson, &exit, T0 + 600_000));
    // Bob leaves the way he came: no finding.
    keep(h.feed("badge", Format::BadgeJson, &exit.replace("4711", "2002"), T0 + 601_000));
    a.extend(h.engine.on_tick(T0 + 3_600_000));
    a.sort_by_key(|a| a.time);
    assert_eq!(rules(&a), ["custos-logon-without-badge-in", "custos-tailgating-inferred"]);
    assert_eq!(a[1].events, [out, opened, bob], "the exit, the door's opening and the badge that opened it");
    assert_eq!(a[1].entity, Entity { kind: EntityKind::Person, id: "mallory".into() });
    assert_eq!(
        a[1].summary,
        "Left an area they never badged into (tailgating inferred): person mallory; came in behind bob: CR-DOOR-1 opened at 2026-11-26T10:00:02.000Z"
    );
    assert_eq!(a[0].events, [logon, opened, bob], "the zone's door opened before the logon");
}

/// Reverse tailgating: the control room's door opens just after Bob badges
/// out at its exit reader, and Mallory, never badged in, then logs on inside:
/// the alert says she came in as Bob left, citing his exit badge.
#[test]
fn reverse_tailgating_names_who_was_leaving() {
    let mut h = Harness::new();
    h.engine = Engine::new(h.inventory.clone(), EngineConfig::default());
    let mut a = Vec::new();
    let mut keep = |(index, alerts): (u64, Vec<Alert>)| {
        a.extend(alerts);
        index
    };
    keep(h.badge(T0, "2002", "granted", T0));
    let line = |t: i64, door: &str, extra: &str| format!(r#"{{"time":"{}","door":"{door}",{extra}}}"#, iso(t));
    let exit = line(T0 + 60_000, "CR-DOOR-1-EXIT", r#""badge":"2002","result":"granted""#);
    let left = keep(h.feed("badge", Format::BadgeJson, &exit, T0 + 60_000));
    let opened = line(T0 + 61_000, "CR-DOOR-1", r#""result":"door_opened""#);
    let opened = keep(h.feed("badge", Format::BadgeJson, &opened, T0 + 61_000));
    keep(h.feed("badge", Format::BadgeJson, &line(T0 + 68_000, "CR-DOOR-1", r#""result":"door_closed""#), T0 + 68_000));
    let logon = keep(h.login(T0 + 120_000, "mallory", "ews-01", "4624", T0 + 120_000));
    a.extend(h.engine.on_tick(T0 + 3_600_000));
    assert_eq!(rules(&a), ["custos-logon-without-badge-in"], "Bob left by the exit reader he was given");
    assert_eq!(a[0].events, [logon, opened, left], "the logon, the door's opening and the exit badge before it");
    assert!(
        a[0].summary.ends_with("; came in as bob left: CR-DOOR-1 opened at 2026-11-26T10:01:01.000Z"),
        "{}",
        a[0].summary
    );
}

/// Gallagher and Lenel say which area a badge let its holder into and out
/// of: at the control room's one door, with no exit reader in the
/// inventory, Bob's way out (Gallagher) and Mallory's (Lenel) take them out,
/// so their logons afterwards are by people not badged in. Carol's denied
/// exit leaves her inside.
#[test]
fn access_control_areas_take_people_in_and_out() {
    let mut h = Harness::new();
    let plant = INVENTORY.replace("badges = [\"2002\"]", "badges = [\"2002\"]\naccounts = [\"bob\"]");
    let plant = format!("{plant}\n[[people]]\nid = \"carol\"\nbadges = [\"3003\"]\naccounts = [\"carol\"]\n");
    h.inventory = Arc::new(Inventory::from_toml(&plant).expect("inventory"));
    h.engine = Engine::new(h.inventory.clone(), EngineConfig::default());
    let mut a = Vec::new();
    let mut keep = |(index, alerts): (u64, Vec<Alert>)| {
        a.extend(alerts);
        index
    };
    let gallagher = |t: i64, card: &str, result: &str, into: &str, from: &str| {
        format!(
            r#"{{"time":"{}","type":{{"name":"{result}"}},"door":{{"name":"CR-DOOR-1"}},"card":{{"number":"{card}"}},"entryAccessZone":{{"name":"{into}"}},"exitAccessZone":{{"name":"{from}"}}}}"#,
            iso(t)
        )
    };
    let lenel = |t: i64, card: &str, result: &str, into: u32, from: u32| {
        format!(
            r#"{{"TimeStamp":"{}","Device":"CR-DOOR-1","CardNumber":"{card}","AccessResult":"{result}","AreaEnteredID":{into},"AreaExitedID":{from}}}"#,
            iso(t)
        )
    };
    for (card, t) in [("2002", T0), ("3003", T0 + 1_000)] {
        keep(h.feed("pacs", Format::Gallagher, &gallagher(t, card, "Access Granted", "Control Room", "Corridor"), t));
    }
    keep(h.feed("pacs", Format::Lenel, &lenel(T0 + 2_000, "4711", "Granted", 3, 0), T0 + 2_000));
    let t = T0 + 600_000;
    keep(h.feed("pacs", Format::Gallagher, &gallagher(t, "2002", "Access Granted", "Corridor", "Control Room"), t));
    keep(h.feed("pacs", Format::Gallagher, &gallagher(t, "3003", "Access Denied", "Corridor", "Control Room"), t));
    keep(h.feed("pacs", Format::Lenel, &lenel(t, "4711", "Granted", 0, 3), t));
    let mut logons = Vec::new();
    for (i, user) in ["bob", "mallory", "carol"].into_iter().enumerate() {
        let at = t + 60_000 + i as i64;
        logons.push(keep(h.login(at, user, "ews-01", "4624", at)));
    }
    a.extend(h.engine.on_tick(t + 3_600_000));
    let outside: Vec<_> = a.iter().filter(|a| a.rule == "custos-logon-without-badge-in").map(|a| a.events[0]).collect();
    assert_eq!(outside, logons[..2], "Bob and Mallory left; Carol, denied the way out, did not");
}

/// A shift longer than a badge-in counts for (12 h): the exit still alerts
/// (a way out without a badge and a tailgate back in look the same), but
/// says when they badged in, so the analyst sees a long stay at a glance.
#[test]
fn a_long_stay_is_named_as_such() {
    let mut h = Harness::new();
    h.engine = Engine::new(h.inventory.clone(), EngineConfig::default());
    let mut a = h.badge(T0, "2002", "granted", T0).1;
    let later = T0 + 13 * 3_600_000;
    a.extend(h.engine.on_tick(later - 60_000));
    let exit = format!(r#"{{"time":"{}","badge":"2002","door":"CR-DOOR-1-EXIT","result":"granted"}}"#, iso(later));
    let out = h.feed("badge", Format::BadgeJson, &exit, later);
    a.extend(out.1);
    a.extend(h.engine.on_tick(later + 3_600_000));
    assert_eq!(rules(&a), ["custos-tailgating-inferred"]);
    assert_eq!(a[0].events, [out.0], "no openings cited");
    assert!(
        a[0].summary.ends_with("; badged into control-room 13 h before, longer than a badge-in counts for (12 h): a long stay, or a way out without a badge"),
        "{}",
        a[0].summary
    );
}

/// A rule reload starts the correlation windows afresh, but who is on
/// site is what the badge events said: someone badged in before the reload
/// is still inside after it.
#[test]
fn a_rule_reload_keeps_who_is_on_site() {
    for badged_in in [true, false] {
        let mut h = Harness::new();
        h.engine = Engine::new(h.inventory.clone(), EngineConfig::default());
        let mut a = Vec::new();
        if badged_in {
            a.extend(h.badge(T0, "4711", "granted", T0).1);
        }
        let rules = h.engine.load_rules().expect("built-in rules");
        h.engine.replace_rules(rules);
        a.extend(h.login(T0 + 60_000, "mallory", "ews-01", "4624", T0 + 60_000).1);
        a.extend(h.engine.on_tick(T0 + 3_600_000));
        let logon_alerts = a.iter().filter(|a| a.rule == "custos-logon-without-badge-in").count();
        assert_eq!(logon_alerts, usize::from(!badged_in), "badged in before the reload: {badged_in}");
    }
}

/// A restart anywhere in the stream: the new engine replays what was
/// ledgered before the stop (the ledger is its input log), drops replayed
/// alerts already ledgered, and goes on. Together the alerts are exactly those
/// of an uninterrupted run: none twice, none missing — for every cut point.
/// Events that set off several rules, one of them delivered late.
fn restart_stream(h: &Harness) -> Vec<ingest::Event> {
    let lines: Vec<(&str, Format, String, i64)> = vec![
        (
            "badge",
            Format::BadgeJson,
            format!(r#"{{"time":"{}","badge":"4711","door":"CR-DOOR-1","result":"denied"}}"#, iso(T0)),
            T0,
        ),
        (
            "badge",
            Format::BadgeJson,
            format!(r#"{{"time":"{}","badge":"4711","door":"CR-DOOR-1","result":"denied"}}"#, iso(T0 + 1_000)),
            T0 + 1_000,
        ),
        (
            "badge",
            Format::BadgeJson,
            format!(r#"{{"time":"{}","badge":"4711","door":"CR-DOOR-1","result":"denied"}}"#, iso(T0 + 2_000)),
            T0 + 2_000,
        ),
        (
            "syslog",
            Format::Syslog,
            format!(
                "<13>1 {} ews-01 win - - - CEF:0|Microsoft|Windows|10|4624|An account logon|3|duser=mallory dhost=ews-01",
                iso(T0 + 3_000)
            ),
            T0 + 3_000,
        ),
        (
            "eve",
            Format::SuricataEve,
            format!(
                r#"{{"timestamp":"{}","event_type":"modbus","src_ip":"10.10.1.50","dest_ip":"10.10.1.10","dest_port":502,"modbus":{{"request":{{"unit_id":1,"function_raw":6}}}}}}"#,
                iso(T0 + 4_000)
            ),
            T0 + 4_000,
        ),
        (
            "plc",
            Format::PlcBackup,
            format!(
                r#"{{"asset":"PLC-01","backup":"b1","time":"{}","compared_with":"released","result":"different","changed_files":["OB1"]}}"#,
                iso(T0 + 5_000)
            ),
            T0 + 6_000,
        ),
        (
            "badge",
            Format::BadgeJson,
            format!(r#"{{"time":"{}","badge":"2002","door":"CR-DOOR-1","result":"forced"}}"#, iso(T0 + 7_000)),
            T0 + 7_000,
        ),
        // Late: the badge system delivers a denial from before the logon.
        (
            "badge",
            Format::BadgeJson,
            format!(r#"{{"time":"{}","badge":"4711","door":"CR-DOOR-1","result":"denied"}}"#, iso(T0 + 2_500)),
            T0 + 8_000,
        ),
        // Bob's badge opens the control room door; Mallory, never badged in, leaves by it.
        (
            "badge",
            Format::BadgeJson,
            format!(r#"{{"time":"{}","badge":"2002","door":"CR-DOOR-1","result":"granted"}}"#, iso(T0 + 8_500)),
            T0 + 8_500,
        ),
        (
            "badge",
            Format::BadgeJson,
            format!(r#"{{"time":"{}","door":"CR-DOOR-1","result":"door opened"}}"#, iso(T0 + 9_000)),
            T0 + 9_000,
        ),
        (
            "badge",
            Format::BadgeJson,
            format!(
                r#"{{"time":"{}","badge":"4711","door":"CR-DOOR-1","result":"granted","direction":"out"}}"#,
                iso(T0 + 60_000)
            ),
            T0 + 60_000,
        ),
        (
            "eve",
            Format::SuricataEve,
            format!(
                r#"{{"timestamp":"{}","event_type":"modbus","src_ip":"10.10.1.50","dest_ip":"10.10.1.10","dest_port":502,"modbus":{{"request":{{"unit_id":1,"function_raw":16}}}}}}"#,
                iso(T0 + 90_000)
            ),
            T0 + 90_000,
        ),
    ];
    lines
        .iter()
        .map(|(source, format, line, observed)| {
            let raw = RawRecord::new((*source).into(), *format, *observed, line.as_bytes().to_vec());
            let Normalized::Event(e) = normalize(raw, &h.inventory, 0).record else { panic!("{line} did not parse") };
            *e
        })
        .collect()
}

#[test]
fn restart_by_replay_gives_the_same_alerts_at_every_cut() {
    let h = Harness::new();
    let events = restart_stream(&h);
    let engine = || Engine::new(h.inventory.clone(), EngineConfig::default());
    let end = T0 + 3_600_000;
    let run = |engine: &mut Engine, from: usize, to: usize| -> Vec<String> {
        let mut ids = Vec::new();
        for (i, e) in events.iter().enumerate().take(to).skip(from) {
            ids.extend(engine.on_event(i as u64, e).into_iter().map(|a| a.id));
        }
        ids
    };
    let mut whole = engine();
    let mut expected = run(&mut whole, 0, events.len());
    expected.extend(whole.on_tick(end).into_iter().map(|a| a.id));
    expected.sort();
    assert!(expected.len() >= 5, "the stream sets off several rules: {expected:?}");
    for cut in 0..=events.len() {
        // `lost`: the crash came after the last event was ledgered but before
        // the alerts it set off were.
        for lost in [false, true] {
            let mut before = engine();
            let mut ledgered: Vec<String> = run(&mut before, 0, cut.saturating_sub(usize::from(lost)));
            if lost && cut > 0 {
                run(&mut before, cut - 1, cut);
            }
            drop(before);
            let mut after = engine();
            let replayed: Vec<String> =
                run(&mut after, 0, cut).into_iter().filter(|id| !ledgered.contains(id)).collect();
            ledgered.extend(replayed);
            ledgered.extend(run(&mut after, cut, events.len()));
            ledgered.extend(after.on_tick(end).into_iter().map(|a| a.id));
            ledgered.sort();
            assert_eq!(ledgered, expected, "restart after {cut} events (alerts of the last lost: {lost})");
        }
    }
}

/// The live run decided a write on a processing-time tick; the replay after a
/// restart has no such tick, so the write is still pending afterwards. Once
/// told what the ledger holds, the engine does not raise it a second time.
#[test]
fn an_alert_decided_by_a_tick_before_a_restart_is_not_raised_again() {
    let mut live = Harness::new();
    let (i, _) = live.modbus(T0, "10.10.1.50", 6, T0);
    let first = live.engine.on_tick(T0 + 60_000);
    assert_eq!(rules(&first), ["ot-write-owner-offsite"]);

    let mut restarted = Harness::new();
    let (j, replayed) = restarted.modbus(T0, "10.10.1.50", 6, T0);
    assert_eq!(i, j);
    assert!(replayed.is_empty(), "undecided in the replay");
    restarted.engine.suppress_ledgered([first[0].id.clone()].into(), j);
    assert!(restarted.engine.on_tick(T0 + 60_000).is_empty(), "already in the ledger");
    // A new write (after the replay) still alerts.
    let (_, a) = restarted.modbus(T0 + 61_000, "10.10.1.50", 6, T0 + 61_000);
    assert!(a.is_empty());
    assert_eq!(rules(&restarted.engine.on_tick(T0 + 200_000)), ["ot-write-owner-offsite"]);
}

/// A restart from a state snapshot anywhere in the stream: the engine saved
/// after `cut` events, written out and read back into a new engine, goes on
/// to raise exactly the alerts an uninterrupted run raises after that point,
/// and ends in the same state, byte for byte.
#[test]
fn a_saved_state_resumes_exactly_at_every_cut() {
    let h = Harness::new();
    let events = restart_stream(&h);
    let engine = || Engine::new(h.inventory.clone(), EngineConfig::default());
    let end = T0 + 3_600_000;
    let run = |engine: &mut Engine, from: usize| -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for (i, e) in events.iter().enumerate().skip(from) {
            ids.extend(engine.on_event(i as u64, e).into_iter().map(|a| a.id));
        }
        ids.extend(engine.on_tick(end).into_iter().map(|a| a.id));
        ids
    };
    let mut whole = engine();
    let mut expected = Vec::new();
    let mut after_cut = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let ids: Vec<String> = whole.on_event(i as u64, e).into_iter().map(|a| a.id).collect();
        after_cut.push(expected.len());
        expected.extend(ids);
    }
    after_cut.push(expected.len());
    expected.extend(whole.on_tick(end).into_iter().map(|a| a.id));
    let final_state = serde_json::to_string(&whole.save_state()).expect("state");
    assert!(expected.len() >= 5, "the stream sets off several rules: {expected:?}");
    for cut in 0..=events.len() {
        let mut before = engine();
        for (i, e) in events.iter().enumerate().take(cut) {
            before.on_event(i as u64, e);
        }
        let saved = serde_json::to_string(&before.save_state()).expect("state");
        let mut resumed = engine();
        resumed.restore_state(serde_json::from_str(&saved).expect("read back")).expect("same rules");
        assert_eq!(run(&mut resumed, cut), expected[after_cut[cut]..], "resumed after {cut} events");
        assert_eq!(serde_json::to_string(&resumed.save_state()).expect("state"), final_state, "state after {cut}");
    }
}

/// A state saved with other Sigma rules is refused, and the engine keeps its own.
#[test]
fn a_state_saved_with_other_rules_is_refused() {
    let h = Harness::new();
    let mut full = Engine::new(h.inventory.clone(), EngineConfig::default());
    for (i, e) in restart_stream(&h).iter().enumerate() {
        full.on_event(i as u64, e);
    }
    let mut bare = Engine::with_rules(h.inventory.clone(), EngineConfig::default(), RuleSet::default());
    let err = bare.restore_state(full.save_state()).expect_err("refused");
    assert!(err.contains("other Sigma rules"), "{err}");
    assert_eq!(bare.stats().events, 0);
}

/// An inventory reloaded while running (a change ticket opened): its facts
/// count from the next event on, and the Sigma correlation windows carry
/// over, as the rules are the same.
#[test]
fn a_reloaded_inventory_counts_from_the_next_event_and_keeps_the_windows() {
    let mut h = Harness::new();
    h.engine = Engine::new(h.inventory.clone(), EngineConfig::default());
    // Two of the three denials the Sigma rule wants, before the reload.
    for t in [T0, T0 + 60_000] {
        let mut alerts = h.badge(t, "4711", "denied", t).1;
        alerts.extend(h.engine.on_tick(t + 1_000));
        assert!(!rules(&alerts).contains(&"custos-repeated-badge-denials"));
    }
    assert!(rules(&h.plc(T0, "PLC-01", "different").1).contains(&"plc-change-outside-window"), "no ticket yet");

    let ticket = "\n[[change_tickets]]\nid = \"CHG-8\"\nassets = [\"PLC-01\"]\nstate = \"open\"\nstart = \"2026-11-26T09:00:00Z\"\nend = \"2026-11-26T11:00:00Z\"\n";
    let reloaded = Arc::new(Inventory::from_toml(&format!("{INVENTORY}{ticket}")).expect("inventory"));
    let running = h.engine.rules().rules.len();
    let compiled = h.engine.rules_for(&reloaded).expect("the running rule files compile against it");
    assert_eq!(compiled.rules.len(), running);
    h.engine.replace_inventory(reloaded.clone(), compiled);
    h.inventory = reloaded;

    let covered = h.plc(T0 + 60_000, "PLC-01", "different").1;
    assert!(!rules(&covered).contains(&"plc-change-outside-window"), "the new ticket covers the change");
    let mut third = h.badge(T0 + 120_000, "4711", "denied", T0 + 120_000).1;
    third.extend(h.engine.on_tick(T0 + 3_600_000));
    assert!(rules(&third).contains(&"custos-repeated-badge-denials"), "the window kept two denials: {third:?}");
}
