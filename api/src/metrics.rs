//! Prometheus metrics (`GET /metrics`, text format 0.0.4). Ingest counters are
//! kept per source and format / parser and updated once per batch, so the hot
//! path takes no lock per event.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ingest::heartbeat::{Heartbeat, MAX_COLLECTORS, ParserCounts, SourceCounts};
use ingest::{Ingested, Normalized, RawRecord};

#[derive(Debug, Default, Clone, Copy)]
struct SourceCounters {
    lines: u64,
    bytes: u64,
    dead_letters: u64,
    /// Receive time minus event time of the newest event, ms.
    lag_ms: i64,
}

/// Ingest counters by (source, format) and events by (source, parser).
#[derive(Debug, Default)]
pub struct IngestMetrics {
    sources: Mutex<BTreeMap<(String, &'static str), SourceCounters>>,
    parsers: Mutex<BTreeMap<(String, String), u64>>,
}

impl IngestMetrics {
    /// Counts one normalised batch (`raw` sizes taken before normalising).
    pub fn record_batch(&self, raw: &[(std::sync::Arc<str>, ingest::Format, usize)], out: &[Ingested]) {
        let mut per_source: HashMap<(&str, &'static str), SourceCounters> = HashMap::new();
        for (source, format, bytes) in raw {
            let c = per_source.entry((source, format.name())).or_default();
            c.lines += 1;
            c.bytes += *bytes as u64;
        }
        let mut per_parser: HashMap<(&str, &str), u64> = HashMap::new();
        let mut newest: HashMap<&str, (i64, i64)> = HashMap::new();
        for i in out {
            match &i.record {
                Normalized::Event(e) => {
                    *per_parser.entry((&e.metadata.source, &e.metadata.parser)).or_default() += 1;
                    let n = newest.entry(&e.metadata.source).or_insert((e.time, e.observed_time));
                    if e.time >= n.0 {
                        *n = (e.time, e.observed_time);
                    }
                }
                Normalized::DeadLetter(d) => {
                    per_source.entry((&d.source, d.format.name())).or_default().dead_letters += 1
                }
            }
        }
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        for ((source, format), c) in per_source {
            let t = sources.entry((source.to_owned(), format)).or_default();
            t.lines += c.lines;
            t.bytes += c.bytes;
            t.dead_letters += c.dead_letters;
            if let Some((time, observed)) = newest.get(source) {
                t.lag_ms = observed - time;
            }
        }
        drop(sources);
        let mut parsers = self.parsers.lock().unwrap_or_else(|e| e.into_inner());
        for ((source, parser), n) in per_parser {
            *parsers.entry((source.to_owned(), parser.to_owned())).or_default() += n;
        }
    }

    /// The counters as a collector's heartbeat carries them.
    pub fn counts(&self) -> (Vec<SourceCounts>, Vec<ParserCounts>) {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let sources = sources
            .iter()
            .map(|((source, format), c)| SourceCounts {
                source: source.clone(),
                format: (*format).to_owned(),
                lines: c.lines,
                bytes: c.bytes,
                dead_letters: c.dead_letters,
                lag_ms: c.lag_ms,
            })
            .collect();
        let parsers = self.parsers.lock().unwrap_or_else(|e| e.into_inner());
        let parsers = parsers
            .iter()
            .map(|((source, parser), n)| ParserCounts { source: source.clone(), parser: parser.clone(), events: *n })
            .collect();
        (sources, parsers)
    }

    /// Sizes of a raw batch, for [`IngestMetrics::record_batch`].
    pub fn sizes(batch: &[RawRecord]) -> Vec<(std::sync::Arc<str>, ingest::Format, usize)> {
        batch.iter().map(|r| (r.source.clone(), r.format, r.bytes.len())).collect()
    }
}

/// Records ledgered, by source: events and dead letters. Counted where they
/// are kept, so that the core of a split deployment counts what its
/// collectors (which serve no HTTP) sent.
#[derive(Debug, Default)]
pub struct LedgeredMetrics(Mutex<BTreeMap<String, [u64; 2]>>);

impl LedgeredMetrics {
    const KINDS: [&'static str; 2] = ["event", "dead_letter"];

    /// Counts one ledgered batch.
    pub fn record_batch(&self, batch: &[Ingested]) {
        // A batch mostly holds runs of one source: count the runs, then take
        // the lock once.
        let mut runs: Vec<(&str, [u64; 2])> = Vec::new();
        for i in batch {
            let (source, kind) = match &i.record {
                Normalized::Event(e) => (e.metadata.source.as_str(), 0),
                Normalized::DeadLetter(d) => (d.source.as_str(), 1),
            };
            match runs.last_mut() {
                Some((s, n)) if *s == source => n[kind] += 1,
                _ => {
                    let mut n = [0; 2];
                    n[kind] = 1;
                    runs.push((source, n));
                }
            }
        }
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (source, n) in runs {
            let c = match counts.get_mut(source) {
                Some(c) => c,
                None => counts.entry(source.to_owned()).or_default(),
            };
            c[0] += n[0];
            c[1] += n[1];
        }
    }

    /// Prometheus text for `custos_ledgered_records_total`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        family(&mut out, "custos_ledgered_records_total", "counter", "Records ledgered, by source and kind.");
        for (source, n) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (kind, n) in Self::KINDS.iter().zip(n) {
                let _ =
                    writeln!(out, "custos_ledgered_records_total{{source=\"{}\",kind=\"{kind}\"}} {n}", escape(source));
            }
        }
        out
    }
}

/// A collector's newest heartbeat, and when the core read it.
#[derive(Debug, Clone)]
pub struct Heard {
    pub beat: Heartbeat,
    /// The core's clock, milliseconds since the epoch: silence is judged on
    /// it, not on a collector's clock, which may be wrong.
    pub heard_at: i64,
    /// When (the core's clock) the core read the first of the heartbeats in
    /// a row, up to this one, that found the collector's clock off (see
    /// [`crate::clocks`]); none while it is on time or stopped.
    pub clock_off_since: Option<i64>,
}

/// A collector is silent after two minutes without a heartbeat at the
/// least, as `CustosCollectorSilent` says (deploy/prometheus).
pub const SILENT_AFTER_MIN_MS: i64 = 120_000;

/// What a collector's newest heartbeat says of it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectorState {
    /// Its heartbeats come.
    Running,
    /// Its last heartbeat said it stopped cleanly.
    Stopped,
    /// No heartbeat for longer than [`Heard::silent_after_ms`], without a
    /// word: it died, or lost the bus.
    Silent,
}

impl CollectorState {
    pub fn name(self) -> &'static str {
        match self {
            CollectorState::Running => "running",
            CollectorState::Stopped => "stopped",
            CollectorState::Silent => "silent",
        }
    }
}

impl Heard {
    /// How far the collector's clock is ahead of the core's, less the bus's
    /// delay (so a collector on time shows a few milliseconds behind).
    pub fn clock_offset_ms(&self) -> i64 {
        self.beat.sent_at.saturating_sub(self.heard_at)
    }

    /// How long after its newest heartbeat a collector is silent: two of
    /// its intervals and the bus's delivery timeout (as its own `/readyz`
    /// judges), and never under [`SILENT_AFTER_MIN_MS`]. A collector set to
    /// beat every ten minutes is not silent between two beats.
    pub fn silent_after_ms(&self) -> i64 {
        let delivery = ingest::bus::DELIVERY_TIMEOUT.as_millis() as i64;
        (2 * self.beat.interval_ms() as i64 + delivery).max(SILENT_AFTER_MIN_MS)
    }

    /// Its state at `now` (the core's clock).
    pub fn state(&self, now: i64) -> CollectorState {
        if self.beat.stopped {
            CollectorState::Stopped
        } else if now.saturating_sub(self.heard_at) > self.silent_after_ms() {
            CollectorState::Silent
        } else {
            CollectorState::Running
        }
    }
}

/// The newest heartbeat of each collector the core has heard from.
#[derive(Debug, Default)]
pub struct Collectors {
    newest: Mutex<BTreeMap<String, Heard>>,
    /// Counts the heartbeats kept, for those who look at each as it comes.
    kept: tokio::sync::watch::Sender<u64>,
}

impl Collectors {
    /// Keeps `beat`, read at `heard_at`, unless a newer one of its collector
    /// is kept (the topic is read again from its start when the core has no
    /// offsets). Refused: a blank name (its series would be the core's own),
    /// and new names beyond [`MAX_COLLECTORS`]. Returns whether kept.
    pub fn record(&self, beat: Heartbeat, heard_at: i64) -> bool {
        if beat.collector.trim().is_empty() {
            return false;
        }
        let mut all = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let known = all.len();
        match all.get_mut(&beat.collector) {
            Some(kept) if kept.beat.sent_at > beat.sent_at => return true,
            Some(kept) => {
                let clock_off_since = crate::clocks::off_since(Some(kept), &beat, heard_at);
                *kept = Heard { beat: beat.bounded(), heard_at, clock_off_since };
            }
            None if known >= MAX_COLLECTORS => return false,
            None => {
                let clock_off_since = crate::clocks::off_since(None, &beat, heard_at);
                all.insert(beat.collector.clone(), Heard { beat: beat.bounded(), heard_at, clock_off_since });
            }
        }
        self.kept.send_modify(|n| *n = n.wrapping_add(1));
        true
    }

    pub fn list(&self) -> Vec<Heard> {
        self.newest.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Each collector's newest heartbeat without its counts: what the clock
    /// and silence watches judge, as each heartbeat comes (up to 256
    /// collectors of 2,048 rows each would be megabytes to copy each time).
    pub fn judged(&self) -> Vec<Heard> {
        let all = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        all.values()
            .map(|h| {
                let b = &h.beat;
                let beat = Heartbeat {
                    collector: b.collector.clone(),
                    version: b.version.clone(),
                    started_at: b.started_at,
                    sent_at: b.sent_at,
                    stopped: b.stopped,
                    sources: Vec::new(),
                    parsers: Vec::new(),
                    udp_dropped: b.udp_dropped,
                    bus_redelivered: b.bus_redelivered,
                    source_restarts: BTreeMap::new(),
                    interval_ms: b.interval_ms,
                };
                Heard { beat, heard_at: h.heard_at, clock_off_since: h.clock_off_since }
            })
            .collect()
    }

    /// Changes each time a newer heartbeat is kept.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.kept.subscribe()
    }
}

/// Prometheus text for the control-room alarm board, in ISA-18.2's
/// measures: alarms raised by priority (their rate is the operator's load),
/// those standing by priority and state, and how long the oldest
/// unacknowledged one of each priority has stood.
pub fn render_alarms(raised: &[AtomicU64; 4], board: &[&correlate::AlarmState], now: i64) -> String {
    const STATES: [&str; 3] = ["unacknowledged", "acknowledged", "shelved"];
    let mut standing = [[0u64; 3]; 4];
    let mut oldest: [Option<i64>; 4] = [None; 4];
    for a in board {
        let p = usize::from(a.alarm.priority.clamp(1, 4)) - 1;
        let state = if a.shelved.as_ref().is_some_and(|s| s.until > now) {
            2
        } else if a.acknowledged.is_some() {
            1
        } else {
            oldest[p] = Some(oldest[p].map_or(a.alarm.raised_at, |o| o.min(a.alarm.raised_at)));
            0
        };
        standing[p][state] += 1;
    }
    let mut out = String::new();
    family(&mut out, "custos_alarms_raised_total", "counter", "Control-room alarms raised, by priority.");
    for (p, n) in raised.iter().enumerate() {
        let _ = writeln!(out, "custos_alarms_raised_total{{priority=\"{}\"}} {}", p + 1, n.load(Ordering::Relaxed));
    }
    family(&mut out, "custos_alarms_standing", "gauge", "Alarms on the board, by priority and state.");
    for (p, counts) in standing.iter().enumerate() {
        for (state, n) in STATES.iter().zip(counts) {
            let _ = writeln!(out, "custos_alarms_standing{{priority=\"{}\",state=\"{state}\"}} {n}", p + 1);
        }
    }
    family(
        &mut out,
        "custos_alarm_oldest_unacknowledged_seconds",
        "gauge",
        "How long the oldest unacknowledged, unshelved alarm of a priority has stood.",
    );
    for (p, raised_at) in oldest.iter().enumerate() {
        if let Some(t) = raised_at {
            let age = now.saturating_sub(*t) as f64 / 1000.0;
            let _ = writeln!(out, "custos_alarm_oldest_unacknowledged_seconds{{priority=\"{}\"}} {age:.3}", p + 1);
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A counter family (name, help) with this process's own value and each
/// collector's, from its newest heartbeat, labelled `collector`.
fn counter_by_collector(
    out: &mut String,
    (name, help): (&str, &str),
    own: u64,
    collectors: &[Heard],
    of: impl Fn(&Heartbeat) -> u64,
) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {own}");
    for c in collectors {
        let _ = writeln!(out, "{name}{{collector=\"{}\"}} {}", escape(&c.beat.collector), of(&c.beat));
    }
}

/// Renders every metric. The source families hold this process's own rows
/// and each collector's, labelled `collector`, so the rules on sources hold
/// for a split deployment as for one process.
#[allow(clippy::too_many_arguments)]
pub fn render(
    ingest: &IngestMetrics,
    collectors: &[Heard],
    udp_dropped: &AtomicU64,
    bus_redelivered: &AtomicU64,
    alerts: &AtomicU64,
    alarm_failures: &AtomicU64,
    late_events: &AtomicU64,
    ledger_records: u64,
    ledger_checkpoint_age_s: Option<f64>,
) -> String {
    let mut out = String::with_capacity(4096);
    let (own_sources, own_parsers) = ingest.counts();
    let by = |c: &Heard| format!("collector=\"{}\",", escape(&c.beat.collector));
    let sources: Vec<(String, &SourceCounts)> = own_sources
        .iter()
        .map(|s| (String::new(), s))
        .chain(collectors.iter().flat_map(|c| c.beat.sources.iter().map(move |s| (by(c), s))))
        .collect();
    let source_family =
        |out: &mut String, name: &str, kind: &str, help: &str, value: &dyn Fn(&SourceCounts) -> String| {
            family(out, name, kind, help);
            for (by, c) in &sources {
                let (source, format) = (escape(&c.source), escape(&c.format));
                let _ = writeln!(out, "{name}{{{by}source=\"{source}\",format=\"{format}\"}} {}", value(c));
            }
        };
    source_family(&mut out, "custos_source_lines_total", "counter", "Records read by a source.", &|c| {
        c.lines.to_string()
    });
    source_family(&mut out, "custos_source_bytes_total", "counter", "Bytes of the records a source read.", &|c| {
        c.bytes.to_string()
    });
    source_family(
        &mut out,
        "custos_dead_letters_total",
        "counter",
        "Records that could not be parsed (kept in the dead-letter store and the ledger).",
        &|c| c.dead_letters.to_string(),
    );
    source_family(
        &mut out,
        "custos_source_lag_seconds",
        "gauge",
        "Receive time minus event time of the newest event of a source.",
        &|c| format!("{:.3}", c.lag_ms as f64 / 1000.0),
    );
    family(&mut out, "custos_parser_events_total", "counter", "Events produced, by source and parser.");
    let parsers = own_parsers
        .iter()
        .map(|p| (String::new(), p))
        .chain(collectors.iter().flat_map(|c| c.beat.parsers.iter().map(move |p| (by(c), p))));
    for (by, p) in parsers {
        let (source, parser) = (escape(&p.source), escape(&p.parser));
        let _ = writeln!(out, "custos_parser_events_total{{{by}source=\"{source}\",parser=\"{parser}\"}} {}", p.events);
    }
    counter_by_collector(
        &mut out,
        (
            "custos_syslog_udp_dropped_total",
            "Syslog datagrams dropped because the raw topic was full (UDP has no backpressure).",
        ),
        udp_dropped.load(Ordering::Relaxed),
        collectors,
        |b| b.udp_dropped,
    );
    counter_by_collector(
        &mut out,
        (
            "custos_bus_redelivered_total",
            "Records sent to Kafka again: the brokers took none of them within the 30 s delivery timeout.",
        ),
        bus_redelivered.load(Ordering::Relaxed),
        collectors,
        |b| b.bus_redelivered,
    );
    render_collectors(&mut out, collectors);
    family(&mut out, "custos_alerts_total", "counter", "Alerts raised by correlation.");
    let _ = writeln!(out, "custos_alerts_total {}", alerts.load(Ordering::Relaxed));
    family(
        &mut out,
        "custos_late_events_total",
        "counter",
        "Events that reached correlation behind the watermark (beyond the allowed lateness).",
    );
    let _ = writeln!(out, "custos_late_events_total {}", late_events.load(Ordering::Relaxed));
    family(
        &mut out,
        "custos_alarm_delivery_failures_total",
        "counter",
        "Failed attempts to deliver an alarm (each is retried until delivered).",
    );
    let _ = writeln!(out, "custos_alarm_delivery_failures_total {}", alarm_failures.load(Ordering::Relaxed));
    family(&mut out, "custos_ledger_records", "gauge", "Records durably appended to the ledger.");
    let _ = writeln!(out, "custos_ledger_records {ledger_records}");
    if let Some(age) = ledger_checkpoint_age_s {
        family(&mut out, "custos_ledger_checkpoint_age_seconds", "gauge", "Age of the newest signed checkpoint.");
        let _ = writeln!(out, "custos_ledger_checkpoint_age_seconds {age:.3}");
    }
    out
}

/// Each collector's newest heartbeat: when it was sent (its clock) and read
/// (the core's), the difference, whether it said it stopped, and when it
/// started with which version. A collector that falls silent without saying
/// so has died, or lost the bus.
fn render_collectors(out: &mut String, collectors: &[Heard]) {
    type Part<'a> = &'a dyn Fn(&Heard) -> String;
    let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let no_labels: Part = &|_| String::new();
    // Name, help, labels after `collector`, value.
    let gauges: [(&str, &str, Part, Part); 6] = [
        (
            "custos_collector_heartbeat_timestamp_seconds",
            "When a collector sent its newest heartbeat (its clock).",
            no_labels,
            &|c| seconds(c.beat.sent_at),
        ),
        (
            "custos_collector_heard_timestamp_seconds",
            "When the core read a collector's newest heartbeat (the core's clock).",
            no_labels,
            &|c| seconds(c.heard_at),
        ),
        (
            "custos_collector_clock_offset_seconds",
            "A collector's clock ahead of the core's, less the bus's delay (its newest heartbeat's sending time minus when the core read it).",
            no_labels,
            &|c| seconds(c.clock_offset_ms()),
        ),
        (
            "custos_collector_heartbeat_interval_seconds",
            "How often a collector sends a heartbeat (15 s for one that does not say).",
            no_labels,
            &|c| seconds(c.beat.interval_ms() as i64),
        ),
        (
            "custos_collector_stopped",
            "1 when a collector's newest heartbeat said it stopped cleanly.",
            no_labels,
            &|c| u8::from(c.beat.stopped).to_string(),
        ),
        (
            "custos_collector_start_timestamp_seconds",
            "When a collector started, with the version it runs.",
            &|c| format!(",version=\"{}\"", escape(&c.beat.version)),
            &|c| seconds(c.beat.started_at),
        ),
    ];
    for (name, help, labels, value) in gauges {
        family(out, name, "gauge", help);
        for c in collectors {
            let _ = writeln!(out, "{name}{{collector=\"{}\"{}}} {}", escape(&c.beat.collector), labels(c), value(c));
        }
    }
}

/// How far the views that follow the ledger have got: the records search
/// and SQL answer over, and how many ledger records each has still to take
/// in (the gauge to alert on when indexing falls behind ingestion).
pub fn render_views(ledger_records: u64, searchable: u64, archived: u64) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "custos_view_records",
        "gauge",
        "Ledger records a view covers (search: searchable; archive: visible to SQL).",
    );
    let views = [("search", searchable), ("archive", archived)];
    for (view, n) in views {
        let _ = writeln!(out, "custos_view_records{{view=\"{view}\"}} {n}");
    }
    family(&mut out, "custos_view_lag_records", "gauge", "Ledger records a view has not taken in yet.");
    for (view, n) in views {
        let _ = writeln!(out, "custos_view_lag_records{{view=\"{view}\"}} {}", ledger_records.saturating_sub(n));
    }
    out
}

/// Room left in the data directory: the gauge to alert on before the ledger
/// cannot append (absent when it cannot be read).
pub fn render_room(available: Option<u64>) -> String {
    let mut out = String::new();
    if let Some(bytes) = available {
        family(&mut out, "custos_data_dir_available_bytes", "gauge", "Bytes free in the data directory's filesystem.");
        let _ = writeln!(out, "custos_data_dir_available_bytes {bytes}");
    }
    out
}

/// Prometheus text for the sign-in events ingest could not take, and for
/// requests refused for their token: unknown, expired, ended, each counted
/// (the events report them at most once a minute per address).
pub fn render_sign_ins(dropped: u64, tokens_refused: [u64; 3]) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "custos_sign_in_events_dropped_total",
        "counter",
        "Sign-ins to Custos whose security event ingest could not take (each is still an audit record).",
    );
    let _ = writeln!(out, "custos_sign_in_events_dropped_total {dropped}");
    family(
        &mut out,
        "custos_api_tokens_refused_total",
        "counter",
        "Requests refused for their bearer token, by reason (unknown; an expired API token or session; ended before its time).",
    );
    for (reason, n) in ["unknown", "expired", "ended"].into_iter().zip(tokens_refused) {
        let _ = writeln!(out, "custos_api_tokens_refused_total{{reason=\"{reason}\"}} {n}");
    }
    out
}

/// Seconds each API token issued for a time has left, by holder: the gauge
/// to alert on before a collector's or a SOAR's requests are refused.
pub fn render_token_expiry(expiring: &[(String, crate::auth::Role, i64)], now: i64) -> String {
    let mut out = String::new();
    if expiring.is_empty() {
        return out;
    }
    let help = "Seconds until an API token issued for a number of days stops working.";
    family(&mut out, "custos_api_token_valid_seconds", "gauge", help);
    for (name, role, until) in expiring {
        let seconds = (until - now).max(0) / 1000;
        let _ = writeln!(
            out,
            "custos_api_token_valid_seconds{{name=\"{}\",role=\"{}\"}} {seconds}",
            escape(name),
            role.name()
        );
    }
    out
}

/// How much of the ledger a restart would replay: the records after the
/// newest state snapshot (all of them when there is none).
/// How often each source ended on an error and was started again.
#[derive(Debug, Default)]
pub struct SourceRestarts(Mutex<BTreeMap<String, u64>>);

impl SourceRestarts {
    pub fn count(&self, source: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(source.to_owned()).or_default() += 1;
    }

    pub fn get(&self, source: &str) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(source).copied().unwrap_or(0)
    }

    /// Every source's count, for a heartbeat.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// This process's counts, and each collector's, labelled `collector`.
    pub fn render(&self, collectors: &[Heard]) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "custos_source_restarts_total",
            "counter",
            "Times a source ended on an error (a file it could not read) and was started again.",
        );
        let own = self.counts();
        let own = own.iter().map(|(s, n)| (String::new(), s, n));
        let theirs = collectors.iter().flat_map(|c| {
            let by = format!("collector=\"{}\",", escape(&c.beat.collector));
            c.beat.source_restarts.iter().map(move |(s, n)| (by.clone(), s, n))
        });
        for (by, source, n) in own.chain(theirs) {
            let _ = writeln!(out, "custos_source_restarts_total{{{by}source=\"{}\"}} {n}", escape(source));
        }
        out
    }
}

pub fn render_state(ledger_records: u64, snapshot_records: u64) -> String {
    let mut out = String::new();
    family(&mut out, "custos_state_snapshot_records", "gauge", "Ledger records the newest state snapshot covers.");
    let _ = writeln!(out, "custos_state_snapshot_records {snapshot_records}");
    family(
        &mut out,
        "custos_state_replay_records",
        "gauge",
        "Ledger records a start would replay: those after the newest state snapshot.",
    );
    let _ = writeln!(out, "custos_state_replay_records {}", ledger_records.saturating_sub(snapshot_records));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest::{Format, Inventory, normalize};

    /// Counters after one batch from source `fw`: a syslog line and a dead letter.
    fn firewall_counted() -> IngestMetrics {
        let m = IngestMetrics::default();
        let raws = vec![
            RawRecord::new("fw".into(), Format::Syslog, 2_000, b"<13>1 1970-01-01T00:00:01Z h a - - - hello".to_vec()),
            RawRecord::new("fw".into(), Format::Syslog, 2_000, b"garbage".to_vec()),
        ];
        let sizes = IngestMetrics::sizes(&raws);
        let out: Vec<Ingested> = raws.into_iter().map(|r| normalize(r, &Inventory::default(), 0)).collect();
        m.record_batch(&sizes, &out);
        m
    }

    #[test]
    fn counts_per_source_format_and_parser() {
        let m = firewall_counted();
        let [udp, bus, alerts, failures, late] = [3, 5, 0, 2, 1].map(AtomicU64::new);
        let text = render(&m, &[], &udp, &bus, &alerts, &failures, &late, 7, None);
        assert!(text.contains("custos_bus_redelivered_total 5\n"), "{text}");
        assert!(text.contains("custos_source_lines_total{source=\"fw\",format=\"syslog\"} 2"), "{text}");
        assert!(text.contains("custos_source_bytes_total{source=\"fw\",format=\"syslog\"} 49"), "{text}");
        assert!(text.contains("custos_dead_letters_total{source=\"fw\",format=\"syslog\"} 1"), "{text}");
        assert!(text.contains("custos_parser_events_total{source=\"fw\",parser=\"syslog/text\"} 1"), "{text}");
        assert!(text.contains("custos_source_lag_seconds{source=\"fw\",format=\"syslog\"} 1.000"), "{text}");
        assert!(text.contains("custos_syslog_udp_dropped_total 3"));
        assert!(text.contains("# TYPE custos_ledger_records gauge\ncustos_ledger_records 7"));
    }

    /// A collector's counters, as its heartbeat carries them, are exported
    /// beside the core's own under the same names, labelled by collector;
    /// an older heartbeat read late does not undo a newer one.
    #[test]
    fn collectors_counters_are_exported_by_collector() {
        let m = firewall_counted();
        let (sources, parsers) = m.counts();
        let beat = |sent_at: i64, stopped: bool| Heartbeat {
            collector: "dmz-\"1\"".into(),
            version: "0.1.0".into(),
            started_at: 1_000,
            sent_at,
            stopped,
            sources: sources.clone(),
            parsers: parsers.clone(),
            udp_dropped: 4,
            bus_redelivered: 6,
            source_restarts: BTreeMap::from([("fw".to_owned(), 2)]),
            interval_ms: Some(30_000),
        };
        let collectors = Collectors::default();
        // Read by the core 2.5 s after it was sent: the collector's clock is behind.
        assert!(collectors.record(beat(60_000, true), 62_500));
        assert!(collectors.record(beat(45_000, false), 63_000), "kept, as the newer one stays");
        // The process's own counters beside its collectors', the rest zero.
        let render_with = |own: &IngestMetrics| {
            let zero = AtomicU64::new(0);
            render(own, &collectors.list(), &zero, &zero, &zero, &zero, &zero, 0, None)
        };
        let text = render_with(&IngestMetrics::default());
        for line in [
            "custos_source_lines_total{collector=\"dmz-\\\"1\\\"\",source=\"fw\",format=\"syslog\"} 2\n",
            "custos_dead_letters_total{collector=\"dmz-\\\"1\\\"\",source=\"fw\",format=\"syslog\"} 1\n",
            "custos_source_lag_seconds{collector=\"dmz-\\\"1\\\"\",source=\"fw\",format=\"syslog\"} 1.000\n",
            "custos_parser_events_total{collector=\"dmz-\\\"1\\\"\",source=\"fw\",parser=\"syslog/text\"} 1\n",
            "custos_syslog_udp_dropped_total 0\ncustos_syslog_udp_dropped_total{collector=\"dmz-\\\"1\\\"\"} 4\n",
            "custos_bus_redelivered_total 0\ncustos_bus_redelivered_total{collector=\"dmz-\\\"1\\\"\"} 6\n",
            "custos_collector_heartbeat_timestamp_seconds{collector=\"dmz-\\\"1\\\"\"} 60.000\n",
            "custos_collector_heard_timestamp_seconds{collector=\"dmz-\\\"1\\\"\"} 62.500\n",
            "custos_collector_clock_offset_seconds{collector=\"dmz-\\\"1\\\"\"} -2.500\n",
            "custos_collector_stopped{collector=\"dmz-\\\"1\\\"\"} 1\n",
            "custos_collector_heartbeat_interval_seconds{collector=\"dmz-\\\"1\\\"\"} 30.000\n",
            "custos_collector_start_timestamp_seconds{collector=\"dmz-\\\"1\\\"\",version=\"0.1.0\"} 1.000\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        // Each family once: the collector's rows join the core's.
        assert_eq!(text.matches("# TYPE custos_source_lines_total counter").count(), 1);
        let own = SourceRestarts::default();
        own.count("tail");
        let restarts = own.render(&collectors.list());
        for line in [
            "custos_source_restarts_total{source=\"tail\"} 1\n",
            "custos_source_restarts_total{collector=\"dmz-\\\"1\\\"\",source=\"fw\"} 2\n",
        ] {
            assert!(restarts.contains(line), "{line} in {restarts}");
        }
        // Each series once, whatever a heartbeat repeats; no blank name.
        let mut twice = beat(80_000, false);
        twice.sources.push(twice.sources[0].clone());
        twice.parsers.push(twice.parsers[0].clone());
        assert!(collectors.record(twice, 70_000));
        let text = render_with(&m);
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series))
            .collect();
        let unique: std::collections::HashSet<&&str> = samples.iter().collect();
        assert_eq!(unique.len(), samples.len(), "{text}");
        assert!(!collectors.record(Heartbeat { collector: " ".into(), ..beat(1, false) }, 1), "a blank name");

        // A flood of names is bounded.
        for n in 1..MAX_COLLECTORS {
            assert!(collectors.record(Heartbeat { collector: format!("c{n}"), ..beat(1, false) }, 1));
        }
        assert!(!collectors.record(Heartbeat { collector: "one-too-many".into(), ..beat(1, false) }, 1));
        assert!(collectors.record(beat(90_000, false), 90_000), "a known collector is still heard");
        assert_eq!(collectors.list().len(), MAX_COLLECTORS);
        // What the watches judge: all but the counts.
        let judged = collectors.judged();
        let full = collectors.list();
        assert_eq!(judged.len(), full.len());
        for (j, f) in judged.iter().zip(&full) {
            assert!(j.beat.sources.is_empty() && j.beat.parsers.is_empty() && j.beat.source_restarts.is_empty());
            let counted = Heartbeat {
                sources: f.beat.sources.clone(),
                parsers: f.beat.parsers.clone(),
                source_restarts: f.beat.source_restarts.clone(),
                ..j.beat.clone()
            };
            assert_eq!((&counted, j.heard_at, j.clock_off_since), (&f.beat, f.heard_at, f.clock_off_since));
        }
    }

    /// Silence is judged on the core's clock against the collector's own
    /// interval (two of them and the delivery timeout, two minutes at the
    /// least); a collector that said it stopped is stopped, not silent.
    #[test]
    fn a_collector_is_silent_after_two_of_its_intervals_and_two_minutes_at_least() {
        let heard = |interval_ms: Option<u64>, stopped: bool| Heard {
            // Its clock an hour ahead changes nothing.
            beat: Heartbeat {
                collector: "dmz-1".into(),
                sent_at: 3_600_000,
                stopped,
                interval_ms,
                ..Heartbeat::default()
            },
            heard_at: 1_000,
            clock_off_since: None,
        };
        let state = |h: &Heard, now: i64| h.state(now).name();
        // The default 15 s, said or not: 2 × 15 s + 30 s is under two minutes.
        for h in [heard(None, false), heard(Some(15_000), false)] {
            assert_eq!(h.silent_after_ms(), SILENT_AFTER_MIN_MS);
            assert_eq!((state(&h, 121_000), state(&h, 121_001)), ("running", "silent"));
        }
        // Every ten minutes: silent after 20 m 30 s.
        let slow = heard(Some(600_000), false);
        assert_eq!(slow.silent_after_ms(), 1_230_000);
        assert_eq!((state(&slow, 1_231_000), state(&slow, 1_231_001)), ("running", "silent"));
        // A topic's nonsense is bounded: an hour at most, 1 ms at least.
        assert_eq!(heard(Some(u64::MAX), false).silent_after_ms(), 2 * 3_600_000 + 30_000);
        assert_eq!(heard(Some(0), false).silent_after_ms(), SILENT_AFTER_MIN_MS);
        // Stopped stays stopped however long; a clock stepped back is not silence.
        assert_eq!(state(&heard(None, true), i64::MAX), "stopped");
        assert_eq!(state(&heard(None, false), i64::MIN), "running");
    }

    /// Ledgered records by source and kind, over batches whose sources
    /// interleave.
    #[test]
    fn ledgered_records_by_source_and_kind() {
        let m = LedgeredMetrics::default();
        let record = |source: &str, line: &[u8]| {
            normalize(RawRecord::new(source.into(), Format::Syslog, 2_000, line.to_vec()), &Inventory::default(), 0)
        };
        let good = b"<13>1 1970-01-01T00:00:01Z h a - - - hello";
        m.record_batch(&[record("fw", good), record("fw", good), record("ids", good), record("fw", b"garbage")]);
        m.record_batch(&[record("ids", b"garbage"), record("ids", good)]);
        let text = m.render();
        assert!(text.starts_with("# HELP custos_ledgered_records_total "), "{text}");
        for line in [
            "custos_ledgered_records_total{source=\"fw\",kind=\"event\"} 2\n",
            "custos_ledgered_records_total{source=\"fw\",kind=\"dead_letter\"} 1\n",
            "custos_ledgered_records_total{source=\"ids\",kind=\"event\"} 2\n",
            "custos_ledgered_records_total{source=\"ids\",kind=\"dead_letter\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    /// The board's alarms by priority and state, and the oldest
    /// unacknowledged one of each priority (a shelf that has run out is
    /// no shelf).
    #[test]
    fn alarm_board_measures() {
        use correlate::{Alarm, AlarmKind, AlarmState, Shelf};
        let state = |priority: u8, raised_at: i64, acknowledged: bool, shelved_until: Option<i64>| AlarmState {
            alarm: Alarm {
                key: format!("k{raised_at}"),
                priority,
                area: "cell-1".into(),
                title: "t".into(),
                summary: "s".into(),
                raised_at,
                kind: AlarmKind::Alert { alert: "a".into(), rule: "r".into() },
            },
            repeats: 0,
            acknowledged: acknowledged.then(|| ("olga".to_owned(), raised_at + 1)),
            shelved: shelved_until.map(|until| Shelf { until, by: "olga".into(), reason: "repair".into() }),
        };
        let board = [
            state(1, 40_000, false, None),
            state(1, 10_000, false, None),
            state(1, 5_000, true, None),
            state(2, 20_000, false, Some(200_000)),
            state(2, 30_000, false, Some(50_000)),
        ];
        let raised = [AtomicU64::new(3), AtomicU64::new(2), AtomicU64::new(0), AtomicU64::new(0)];
        let text = render_alarms(&raised, &board.iter().collect::<Vec<_>>(), 100_000);
        for line in [
            "custos_alarms_raised_total{priority=\"1\"} 3\n",
            "custos_alarms_raised_total{priority=\"4\"} 0\n",
            "custos_alarms_standing{priority=\"1\",state=\"unacknowledged\"} 2\n",
            "custos_alarms_standing{priority=\"1\",state=\"acknowledged\"} 1\n",
            "custos_alarms_standing{priority=\"2\",state=\"shelved\"} 1\n",
            "custos_alarms_standing{priority=\"2\",state=\"unacknowledged\"} 1\n",
            "custos_alarm_oldest_unacknowledged_seconds{priority=\"1\"} 90.000\n",
            "custos_alarm_oldest_unacknowledged_seconds{priority=\"2\"} 70.000\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("oldest_unacknowledged_seconds{priority=\"3\"}"), "{text}");
    }

    #[test]
    fn views_report_their_position_and_lag() {
        let text = render_views(1_000, 900, 1_000);
        assert!(text.contains("# TYPE custos_view_records gauge\n"), "{text}");
        assert!(text.contains("custos_view_records{view=\"search\"} 900\n"), "{text}");
        assert!(text.contains("custos_view_records{view=\"archive\"} 1000\n"), "{text}");
        assert!(text.contains("custos_view_lag_records{view=\"search\"} 100\n"), "{text}");
        assert!(text.contains("custos_view_lag_records{view=\"archive\"} 0\n"), "{text}");
        // A position read just before the ledger's size never shows as negative lag.
        assert!(render_views(5, 6, 5).contains("custos_view_lag_records{view=\"search\"} 0\n"));
    }
}

/// Request counts and latencies by route (the route's pattern, not the path,
/// so ids do not make new series).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    by_route: Mutex<BTreeMap<(String, String), RouteStats>>,
}

/// Upper bounds (seconds) of the latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

#[derive(Debug, Default, Clone)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_s: f64,
}

impl HttpMetrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut m = self.by_route.lock().unwrap_or_else(|e| e.into_inner());
        let r = m.entry((route.to_owned(), method.to_owned())).or_default();
        *r.by_status.entry(status).or_default() += 1;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(r.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        r.count += 1;
        r.sum_s += seconds;
    }

    /// Prometheus text for `custos_http_requests_total` and
    /// `custos_http_request_duration_seconds`.
    pub fn render(&self) -> String {
        let m = self.by_route.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = String::new();
        family(&mut out, "custos_http_requests_total", "counter", "API requests, by route, method and status.");
        for ((route, method), r) in &m {
            for (status, n) in &r.by_status {
                let _ = writeln!(
                    out,
                    "custos_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        family(
            &mut out,
            "custos_http_request_duration_seconds",
            "histogram",
            "API request latency, by route and method.",
        );
        for ((route, method), r) in &m {
            let labels = format!("route=\"{}\",method=\"{method}\"", escape(route));
            for (bound, n) in LATENCY_BUCKETS.iter().zip(r.buckets) {
                let _ = writeln!(out, "custos_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "custos_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", r.count);
            let _ = writeln!(out, "custos_http_request_duration_seconds_sum{{{labels}}} {:.6}", r.sum_s);
            let _ = writeln!(out, "custos_http_request_duration_seconds_count{{{labels}}} {}", r.count);
        }
        out
    }
}
