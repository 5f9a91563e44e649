#![no_main]
//! Untrusted bytes read from the status topic as a collector's heartbeat,
//! kept and exported as the core does: never a panic, and whatever names a
//! rogue collector sends, every line of the exposition is one well-formed
//! sample or comment (no label escapes, no injected samples), and no series
//! is repeated.

use std::sync::atomic::AtomicU64;

use custos::metrics::{Collectors, IngestMetrics, render};
use ingest::heartbeat::Heartbeat;
use libfuzzer_sys::fuzz_target;

/// `name{key="value",...} number`, values escaped as the text format says.
fn well_formed(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("custos_") else { return false };
    let name_end = rest.find(['{', ' ']).unwrap_or(rest.len());
    if !rest[..name_end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return false;
    }
    let mut rest = &rest[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        let mut chars = labels.char_indices();
        loop {
            // A label name, `="`, an escaped value, `"`, then `,` or `}`.
            let mut key_len = 0;
            loop {
                match chars.next() {
                    Some((_, '=')) if key_len > 0 => break,
                    Some((_, c)) if c.is_ascii_lowercase() || c == '_' => key_len += 1,
                    _ => return false,
                }
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return false;
            }
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\' | '"' | 'n')) => {}
                        _ => return false,
                    },
                    Some((_, '"')) => break,
                    Some((_, '\n')) | None => return false,
                    Some(_) => {}
                }
            }
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    rest = &labels[i + 1..];
                    break;
                }
                _ => return false,
            }
        }
    }
    rest.strip_prefix(' ').is_some_and(|v| v.parse::<f64>().is_ok())
}

fuzz_target!(|data: &[u8]| {
    let Ok(beat) = serde_json::from_slice::<Heartbeat>(data) else { return };
    let collectors = Collectors::default();
    // Heard at 0, then again as sent (its clock right): the clock and
    // silence watches judge it at any time without a panic, and raise at
    // most one alert of each rule per collector and check.
    let (mut clocks, mut silences) = (custos::clocks::ClockWatch::default(), custos::silence::SilenceWatch::default());
    for heard_at in [0, beat.sent_at] {
        collectors.record(beat.clone(), heard_at);
        for now in [i64::MIN, -1, 0, 1, beat.sent_at, i64::MAX] {
            let heard = collectors.list();
            for h in &heard {
                let _ = (h.state(now), h.silent_after_ms(), h.clock_offset_ms());
            }
            assert!(clocks.check(&heard, now).len() <= heard.len());
            assert!(silences.check(&heard, now).len() <= 2 * heard.len());
        }
    }
    let zero = AtomicU64::new(0);
    let text = render(&IngestMetrics::default(), &collectors.list(), &zero, &zero, &zero, &zero, &zero, 0, None);
    let mut series = std::collections::HashSet::new();
    for line in text.lines() {
        assert!(line.starts_with("# ") || well_formed(line), "{line:?}");
        // Prometheus refuses a whole scrape that repeats a series.
        if let Some((name_and_labels, _)) = line.rsplit_once(' ').filter(|_| !line.starts_with('#')) {
            assert!(series.insert(name_and_labels.to_owned()), "a repeated series: {line:?}");
        }
    }
});
