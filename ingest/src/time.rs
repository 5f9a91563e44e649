//! Timestamps as UTC milliseconds since the Unix epoch, and the few text forms
//! that log sources use. Pure functions: no clock is read here.

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

/// Month abbreviations as logs write them.
pub const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// 1..=12 for a month abbreviation, any case.
pub fn month_number(abbrev: &str) -> Option<u32> {
    MONTHS.iter().position(|m| abbrev.eq_ignore_ascii_case(m)).map(|i| i as u32 + 1)
}

/// Reads `MMM dd yyyy HH:mm:ss[.SSS] [zone]` (CEF `rt`, LEEF `devTime`) as UTC,
/// returning the trailing zone token too, for callers that honour it.
pub fn parse_mmm_dd_yyyy(v: &str) -> Option<(Millis, Option<&str>)> {
    let mut parts = v.split_whitespace();
    let (month, day, year, clock) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let month = month_number(month)?;
    let day: u32 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let t = parse_rfc3339(&format!("{year:04}-{month:02}-{day:02}T{clock}Z"))?;
    Some((t, parts.next()))
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats as RFC 3339 with millisecond precision in UTC, e.g. `2026-11-26T11:40:49.123Z`.
pub fn format_rfc3339(ms: Millis) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, frac) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z")
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0i64, |acc, c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
}

fn valid_clock(mo: i64, d: i64, h: i64, mi: i64, s: i64) -> bool {
    (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && s <= 60
}

/// Parses RFC 3339 / ISO 8601 timestamps as sources write them:
/// `2026-11-26T11:40:49Z`, `...49.532140+0000` (Suricata), `...49.5+01:00`,
/// and a space instead of `T`. Fractions beyond milliseconds are truncated.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    let (y, mo, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (h, mi, sec) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || !valid_clock(mo, d, h, mi, sec) {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                frac_ms = frac_ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            frac_ms *= 10;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            let om = match (b.get(i + 3), b.len() - i) {
                (Some(b':'), 6) => digits(b, i + 4, 2)?,
                (_, 5) => digits(b, i + 3, 2)?,
                _ => return None,
            };
            let m = oh * 60 + om;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

/// Parses an RFC 3164 timestamp `Mmm dd hh:mm:ss` (day may be space padded).
/// The year is not in the message: the year that puts the time closest to
/// `reference` (the receive time) is chosen, so December logs read in January
/// land in the previous year. `offset_min` is the sender's UTC offset.
pub fn parse_rfc3164(s: &str, reference: Millis, offset_min: i64) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() != 15 || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let month = MONTHS.iter().position(|m| m.as_bytes() == &b[0..3])? as i64 + 1;
    let day = match b[4] {
        b' ' => digits(b, 5, 1)?,
        _ => digits(b, 4, 2)?,
    };
    let (h, mi, sec) = (digits(b, 7, 2)?, digits(b, 10, 2)?, digits(b, 13, 2)?);
    if !valid_clock(month, day, h, mi, sec) {
        return None;
    }
    let (ref_year, _, _) = civil_from_days(reference.div_euclid(86_400_000));
    [ref_year, ref_year - 1, ref_year + 1]
        .into_iter()
        .map(|y| {
            let days = days_from_civil(y, month as u32, day as u32);
            (days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60) * 1000
        })
        .min_by_key(|t| (t - reference).abs())
}

/// Interprets a numeric epoch of unknown unit (s, ms, µs or ns) by its magnitude,
/// as FortiGate's `eventtime` and CEF's `rt` come in several units.
pub fn epoch_to_millis(v: i64) -> Millis {
    match v.unsigned_abs() {
        0..=99_999_999_999 => v * 1000,
        100_000_000_000..=99_999_999_999_999 => v,
        100_000_000_000_000..=99_999_999_999_999_999 => v / 1000,
        _ => v / 1_000_000,
    }
}

/// Parses a UTC offset such as `+0100`, `-05:00` or `Z` into minutes.
pub fn parse_offset(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest: Vec<u8> = b[1..].iter().copied().filter(|c| *c != b':').collect();
    if rest.len() != 4 {
        return None;
    }
    Some(sign * (digits(&rest, 0, 2)? * 60 + digits(&rest, 2, 2)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_forms() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-09-18T06:13:41.532140+0000"), Some(1_695_017_621_532));
        assert_eq!(parse_rfc3339("2023-09-18T08:13:41.5+02:00"), Some(1_695_017_621_500));
        assert_eq!(parse_rfc3339("2023-09-18 06:13:41Z"), Some(1_695_017_621_000));
        assert_eq!(parse_rfc3339("2023-13-18T06:13:41Z"), None);
        assert_eq!(parse_rfc3339("2023-09-18T06:13:41"), None);
        assert_eq!(parse_rfc3339("2023-09-18T06:13:41.Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 1_695_017_621_532, -86_400_001, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
        assert_eq!(format_rfc3339(1_695_017_621_532), "2023-09-18T06:13:41.532Z");
    }

    #[test]
    fn rfc3164_infers_year_near_reference() {
        let jan_2027 = parse_rfc3339("2027-01-01T00:05:00Z").unwrap_or_default();
        let got = parse_rfc3164("Dec 31 23:59:00", jan_2027, 0);
        assert_eq!(got, parse_rfc3339("2026-12-31T23:59:00Z"));
        let got = parse_rfc3164("Nov  6 10:00:00", jan_2027, 60);
        assert_eq!(got, parse_rfc3339("2026-11-06T09:00:00Z"));
        assert_eq!(parse_rfc3164("Foo  6 10:00:00", jan_2027, 0), None);
    }

    #[test]
    fn epoch_units() {
        assert_eq!(epoch_to_millis(1_700_000_000), 1_700_000_000_000);
        assert_eq!(epoch_to_millis(1_700_000_000_123), 1_700_000_000_123);
        assert_eq!(epoch_to_millis(1_700_000_000_123_456), 1_700_000_000_123);
        assert_eq!(epoch_to_millis(1_700_000_000_123_456_789), 1_700_000_000_123);
        assert_eq!(parse_offset("+0100"), Some(60));
        assert_eq!(parse_offset("-05:30"), Some(-330));
    }
}
