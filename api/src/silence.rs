//! Collectors' silences, as evidence. A collector that falls silent without
//! a clean stop has died or lost the bus: what its sources receive meanwhile
//! does not reach the ledger (UDP syslog is lost; files and TCP senders may
//! resume). The audit trail must say so, and not only Prometheus, which
//! forgets: one alert when a collector falls silent, and one when it is
//! heard again, so the gap's start and end are both ledgered (and filed
//! with the collector's incident for the SOC; no control-room alarm by
//! default).

use std::collections::HashMap;

use correlate::{Alert, Entity, EntityKind, Incident};
use ingest::time::format_rfc3339;

use crate::metrics::{CollectorState, Heard};

/// The rule name of the alert about a collector fallen silent.
pub const RULE: &str = "custos-collector-silent";
/// The rule name of the alert about a silent collector heard again.
pub const HEARD_AGAIN: &str = "custos-collector-heard-again";

/// Alerts once when a collector's newest heartbeat has gone unfollowed past
/// [`Heard::silent_after_ms`], and once when a newer one is heard after
/// such an alert.
#[derive(Debug, Default)]
pub struct SilenceWatch {
    /// By collector (at most those [`crate::metrics::Collectors`] keeps): when
    /// the core read the heartbeat its silence was alerted after.
    alerted: HashMap<String, i64>,
}

impl SilenceWatch {
    /// Resumes from the incidents a start rebuilt from the ledger: a
    /// collector whose newest alert of the two rules says it fell silent is
    /// taken as still silent, so the first heartbeat heard after the start
    /// ends its gap with an alert. (One that fell silent in the two minutes
    /// before a stop, unalerted, is not known after it.)
    pub fn resumed<'a>(incidents: impl Iterator<Item = &'a Incident>) -> Self {
        let mut newest: HashMap<String, (i64, bool)> = HashMap::new();
        let ours = |i: &&Incident| i.rules.iter().any(|r| r == RULE || r == HEARD_AGAIN);
        for (rule, collector, heard_at) in
            incidents.filter(ours).flat_map(|i| i.alerts.iter().filter_map(|id| parse_id(id)))
        {
            // Heard again, then silent again, share a heartbeat: silent came after.
            let seen = (heard_at, rule == RULE);
            let kept = newest.entry(collector.to_owned()).or_insert(seen);
            *kept = (*kept).max(seen);
        }
        let alerted = newest.into_iter().filter(|(_, (_, silent))| *silent).map(|(c, (at, _))| (c, at)).collect();
        Self { alerted }
    }

    /// The alerts to raise at `now` (Unix ms, the core's clock).
    pub fn check(&mut self, collectors: &[Heard], now: i64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for c in collectors {
            let name = &c.beat.collector;
            let state = c.state(now);
            match self.alerted.get(name).copied() {
                None if state == CollectorState::Silent => {
                    self.alerted.insert(name.clone(), c.heard_at);
                    alerts.push(silent(c, now));
                }
                Some(last) if c.heard_at != last => {
                    self.alerted.remove(name);
                    alerts.push(heard_again(c, last, now));
                    if state == CollectorState::Silent {
                        // Heard once, then silent again, between two checks.
                        self.alerted.insert(name.clone(), c.heard_at);
                        alerts.push(silent(c, now));
                    }
                }
                _ => {}
            }
        }
        alerts
    }
}

/// The rule, collector and heartbeat time of one of these alerts' ids
/// (`rule:collector:heard_at`; a collector's name may hold colons).
fn parse_id(id: &str) -> Option<(&'static str, &str, i64)> {
    [RULE, HEARD_AGAIN].into_iter().find_map(|rule| {
        let (collector, heard_at) = id.strip_prefix(rule)?.strip_prefix(':')?.rsplit_once(':')?;
        Some((rule, collector, heard_at.parse().ok()?))
    })
}

fn alert(rule: &str, c: &Heard, title: &str, severity_id: u8, now: i64, summary: String) -> Alert {
    Alert {
        id: format!("{rule}:{}:{}", c.beat.collector, c.heard_at),
        rule: rule.into(),
        title: title.into(),
        severity_id,
        attack: Vec::new(),
        time: now,
        entity: Entity { kind: EntityKind::Asset, id: c.beat.collector.clone() },
        zone: Some("custos".into()),
        events: Vec::new(),
        summary,
    }
}

fn silent(c: &Heard, now: i64) -> Alert {
    alert(
        RULE,
        c,
        "A collector fell silent: what its sources receive may not reach the audit trail",
        4,
        now,
        format!(
            "collector {} sent no heartbeat after the one the core read at {} (it beats every {} s; silent after {} s without a clean stop): records its sources received since then may be missing, and UDP syslog sent meanwhile is lost; check the collector's host and its path to the bus",
            c.beat.collector,
            format_rfc3339(c.heard_at),
            c.beat.interval_ms() / 1000,
            c.silent_after_ms() / 1000,
        ),
    )
}

fn heard_again(c: &Heard, last: i64, now: i64) -> Alert {
    let how = if c.beat.stopped { "its last heartbeat says it stopped cleanly" } else { "it beats again" };
    alert(
        HEARD_AGAIN,
        c,
        "A silent collector is heard again: the gap in its records is bounded",
        1,
        now,
        format!(
            "collector {} heard again at {} after no heartbeat read since {} ({} s; {how}, started {}): records its sources received in between may be missing",
            c.beat.collector,
            format_rfc3339(c.heard_at),
            format_rfc3339(last),
            c.heard_at.saturating_sub(last) / 1000,
            format_rfc3339(c.beat.started_at),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Collectors;
    use ingest::heartbeat::Heartbeat;

    const MINUTE: i64 = 60_000;

    fn hear(c: &Collectors, name: &str, heard_at: i64, stopped: bool) {
        let beat =
            Heartbeat { collector: name.into(), sent_at: heard_at, started_at: 5, stopped, ..Heartbeat::default() };
        assert!(c.record(beat, heard_at));
    }

    fn rules(alerts: &[Alert]) -> Vec<(&str, &str)> {
        alerts.iter().map(|a| (a.rule.as_str(), a.entity.id.as_str())).collect()
    }

    #[test]
    fn one_alert_when_silent_and_one_when_heard_again() {
        let (mut w, c) = (SilenceWatch::default(), Collectors::default());
        hear(&c, "dmz-1", MINUTE, false);
        hear(&c, "dmz-2", MINUTE, false);
        // Two minutes after the last heartbeat is not yet silent (15 s beats).
        assert!(w.check(&c.list(), 3 * MINUTE).is_empty());
        hear(&c, "dmz-2", 3 * MINUTE, false);
        let raised = w.check(&c.list(), 3 * MINUTE + 1);
        assert_eq!(rules(&raised), [(RULE, "dmz-1")]);
        let a = &raised[0];
        assert_eq!((a.severity_id, a.zone.as_deref(), a.time), (4, Some("custos"), 3 * MINUTE + 1));
        assert_eq!(a.id, format!("{RULE}:dmz-1:{MINUTE}"));
        assert!(
            a.summary.starts_with(
                "collector dmz-1 sent no heartbeat after the one the core read at 1970-01-01T00:01:00.000Z (it beats every 15 s; silent after 120 s"
            ),
            "{}",
            a.summary
        );
        // Once per silence, however many checks.
        assert!(w.check(&c.list(), 4 * MINUTE).is_empty());
        // Heard again: the gap's end (as dmz-2 falls silent).
        hear(&c, "dmz-1", 12 * MINUTE, false);
        let raised = w.check(&c.list(), 12 * MINUTE);
        assert_eq!(rules(&raised), [(HEARD_AGAIN, "dmz-1"), (RULE, "dmz-2")]);
        assert_eq!(raised[0].severity_id, 1);
        assert!(
            raised[0].summary.starts_with(
                "collector dmz-1 heard again at 1970-01-01T00:12:00.000Z after no heartbeat read since 1970-01-01T00:01:00.000Z (660 s; it beats again"
            ),
            "{}",
            raised[0].summary
        );
        assert!(w.check(&c.list(), 13 * MINUTE).is_empty());
        // Silent again later: a new alert.
        assert_eq!(rules(&w.check(&c.list(), 20 * MINUTE)), [(RULE, "dmz-1")]);
    }

    /// A start takes up, from the incidents it rebuilt, which collectors
    /// were silent at the stop, by their newest alert of the two rules.
    #[test]
    fn a_start_resumes_the_silences_its_incidents_hold() {
        let c = Collectors::default();
        let mut before = SilenceWatch::default();
        let mut book = correlate::IncidentBook::new(3_600_000);
        let mut file = |alerts: Vec<Alert>| {
            alerts.iter().for_each(|a| {
                book.file(a);
            })
        };
        // Silent at the stop: "dmz:1" (a colon in its name) and dmz-3,
        // heard again and then silent again between two checks. dmz-2 was
        // heard again; dmz-4 too, two hours on, in an incident of its own.
        for name in ["dmz:1", "dmz-2", "dmz-3", "dmz-4"] {
            hear(&c, name, 0, false);
        }
        file(before.check(&c.list(), 5 * MINUTE));
        hear(&c, "dmz-2", 6 * MINUTE, false);
        file(before.check(&c.list(), 6 * MINUTE));
        hear(&c, "dmz-3", 7 * MINUTE, false);
        hear(&c, "dmz-2", 29 * MINUTE, false);
        file(before.check(&c.list(), 30 * MINUTE));
        hear(&c, "dmz-4", 150 * MINUTE, false);
        hear(&c, "dmz-2", 150 * MINUTE, false);
        file(before.check(&c.list(), 150 * MINUTE));
        assert!(book.list(None).any(|i| i.rules == [HEARD_AGAIN]), "dmz-4's end filed alone");
        let mut after = SilenceWatch::resumed(book.list(None));
        assert_eq!(after.alerted, before.alerted);
        assert_eq!(after.alerted.len(), 2, "{:?}", after.alerted);
        // After the start, the core hears each again.
        let c = Collectors::default();
        for name in ["dmz:1", "dmz-2", "dmz-3", "dmz-4"] {
            hear(&c, name, 200 * MINUTE, false);
        }
        let raised = after.check(&c.list(), 200 * MINUTE);
        assert_eq!(rules(&raised), [(HEARD_AGAIN, "dmz-3"), (HEARD_AGAIN, "dmz:1")]);
        assert!(
            raised[1].summary.contains("after no heartbeat read since 1970-01-01T00:00:00.000Z"),
            "{}",
            raised[1].summary
        );
        assert_eq!(parse_id("custos-collector-silent:a:b:7"), Some((RULE, "a:b", 7)));
        assert_eq!(parse_id("custos-collector-silentx:a:7"), None);
        assert_eq!(parse_id("custos-collector-clock-off:a:7"), None);
    }

    #[test]
    fn a_clean_stop_is_no_silence_and_ends_one() {
        let (mut w, c) = (SilenceWatch::default(), Collectors::default());
        hear(&c, "dmz-1", 0, true);
        assert!(w.check(&c.list(), 60 * MINUTE).is_empty(), "stopped, not silent");
        hear(&c, "dmz-2", 0, false);
        assert_eq!(rules(&w.check(&c.list(), 5 * MINUTE)), [(RULE, "dmz-2")]);
        // Its last heartbeat, read late, says it stopped: the gap ends there.
        hear(&c, "dmz-2", 6 * MINUTE, true);
        let raised = w.check(&c.list(), 6 * MINUTE);
        assert_eq!(rules(&raised), [(HEARD_AGAIN, "dmz-2")]);
        assert!(raised[0].summary.contains("its last heartbeat says it stopped cleanly"), "{}", raised[0].summary);
        // Heard once after a silence, then silent again before the next check.
        hear(&c, "dmz-3", 0, false);
        assert_eq!(rules(&w.check(&c.list(), 5 * MINUTE)), [(RULE, "dmz-3")]);
        hear(&c, "dmz-3", 6 * MINUTE, false);
        assert_eq!(rules(&w.check(&c.list(), 60 * MINUTE)), [(HEARD_AGAIN, "dmz-3"), (RULE, "dmz-3")]);
    }
}
