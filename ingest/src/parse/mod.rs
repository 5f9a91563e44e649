//! Parsers: pure functions from a source's bytes to a normalised [`Event`].
//! No I/O and no clock: the receive time and the sender's time zone arrive in
//! [`ParseContext`]. Anything that does not parse becomes a [`DeadLetter`] with
//! a reason; nothing panics on input.

pub mod asa;
pub mod badge;
pub mod cef;
pub mod csv;
pub mod eve;
pub mod filterlog;
pub mod fortigate;
pub mod json;
pub mod kv;
pub mod leef;
pub mod netfilter;
pub mod pacs;
pub mod panos;
pub mod plc;
pub mod syslog;
pub mod zeek;

use crate::event::Text;
use serde::{Deserialize, Serialize};

use crate::event::{Event, Raw};
use crate::time::Millis;

/// Why a record could not be read. The message is what a dead letter shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parser}: {reason}")]
pub struct ParseError {
    pub parser: &'static str,
    pub reason: String,
}

impl ParseError {
    pub fn new(parser: &'static str, reason: impl Into<String>) -> Self {
        Self { parser, reason: reason.into() }
    }
}

/// What a parser may know besides the bytes.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext<'a> {
    /// The configured source name, copied into `metadata.source`.
    pub source: &'a str,
    /// When Custos received the record.
    pub received_at: Millis,
    /// UTC offset in minutes for timestamps that carry none (RFC 3164, PAN-OS).
    pub default_offset_min: i64,
    /// The file's header lines, for formats that need them (Zeek TSV, CSV exports).
    pub header: Option<&'a [u8]>,
    /// The header already parsed, when the caller caches it (Zeek TSV).
    pub zeek_header: Option<&'a zeek::Header>,
    /// The source's column mapping, for `badge-csv`.
    pub badge_mapping: Option<&'a pacs::BadgeMapping>,
}

impl<'a> ParseContext<'a> {
    pub const fn new(source: &'a str, received_at: Millis) -> Self {
        Self { source, received_at, default_offset_min: 0, header: None, zeek_header: None, badge_mapping: None }
    }
}

/// Which parser reads a source's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// RFC 5424 / RFC 3164 syslog; the body is detected: CEF, LEEF, FortiGate,
    /// netfilter, pfSense filterlog, PAN-OS, Cisco ASA, or plain text.
    Syslog,
    /// CEF records without a syslog header, one per line.
    Cef,
    /// LEEF records without a syslog header, one per line.
    Leef,
    /// Suricata EVE JSON, one record per line.
    SuricataEve,
    /// Zeek TSV logs (the file's `#` header is read).
    ZeekTsv,
    /// Zeek JSON logs.
    ZeekJson,
    /// Badge events in Custos' JSON form.
    BadgeJson,
    /// Gallagher Command Centre REST events.
    Gallagher,
    /// Lenel OnGuard access events.
    Lenel,
    /// Genetec Security Center CSV export.
    GenetecCsv,
    /// C•CURE 9000 CSV journal export.
    CcureCsv,
    /// Any delimited badge export, read through the source's `mapping`.
    BadgeCsv,
    /// PLC backup comparison reports from the backup watcher.
    PlcBackup,
    /// Change-detection job results in the style of octoplant / versiondog.
    OctoplantJob,
}

impl Format {
    pub const ALL: [Format; 14] = [
        Self::Syslog,
        Self::Cef,
        Self::Leef,
        Self::SuricataEve,
        Self::ZeekTsv,
        Self::ZeekJson,
        Self::BadgeJson,
        Self::Gallagher,
        Self::Lenel,
        Self::GenetecCsv,
        Self::CcureCsv,
        Self::BadgeCsv,
        Self::PlcBackup,
        Self::OctoplantJob,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Syslog => "syslog",
            Self::Cef => "cef",
            Self::Leef => "leef",
            Self::SuricataEve => "suricata-eve",
            Self::ZeekTsv => "zeek-tsv",
            Self::ZeekJson => "zeek-json",
            Self::BadgeJson => "badge-json",
            Self::Gallagher => "gallagher",
            Self::Lenel => "lenel",
            Self::GenetecCsv => "genetec-csv",
            Self::CcureCsv => "ccure-csv",
            Self::BadgeCsv => "badge-csv",
            Self::PlcBackup => "plc-backup",
            Self::OctoplantJob => "octoplant-job",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the file's leading lines are a header the records need.
    pub fn header_lines(self) -> HeaderLines {
        match self {
            Self::ZeekTsv => HeaderLines::Hash,
            Self::GenetecCsv | Self::CcureCsv | Self::BadgeCsv => HeaderLines::First,
            _ => HeaderLines::None,
        }
    }

    /// Parses one record in this format.
    pub fn parse(self, bytes: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
        let mut event = match self {
            Self::Syslog => syslog::parse_event(bytes, ctx),
            Self::Cef => cef::parse(utf8("cef", bytes)?.trim_end(), bytes, None, ctx),
            Self::Leef => leef::parse(utf8("leef", bytes)?.trim_end(), bytes, None, ctx),
            Self::SuricataEve => eve::parse(bytes, ctx),
            Self::ZeekTsv => match ctx.zeek_header {
                Some(h) => zeek::parse_tsv(bytes, h, ctx),
                None => {
                    let h = zeek::parse_header(
                        ctx.header
                            .ok_or_else(|| ParseError::new("zeek", "record without the file's #fields header"))?,
                    )?;
                    zeek::parse_tsv(bytes, &h, ctx)
                }
            },
            Self::ZeekJson => zeek::parse_json(bytes, ctx),
            Self::BadgeJson => badge::parse(bytes, ctx),
            Self::Gallagher => pacs::gallagher(bytes, ctx),
            Self::Lenel => pacs::lenel(bytes, ctx),
            Self::GenetecCsv => pacs::delimited(bytes, &pacs::GENETEC_CSV, ctx.header, ctx),
            Self::CcureCsv => pacs::delimited(bytes, &pacs::CCURE_CSV, ctx.header, ctx),
            Self::BadgeCsv => {
                let m = ctx
                    .badge_mapping
                    .ok_or_else(|| ParseError::new("badge-csv", "the source has no mapping configured"))?;
                pacs::delimited(bytes, m, ctx.header, ctx)
            }
            Self::PlcBackup => plc::parse(bytes, ctx),
            Self::OctoplantJob => plc::parse_job(bytes, ctx),
        }?;
        event.metadata.source = Text::from(ctx.source);
        Ok(event)
    }
}

/// How a format's files begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderLines {
    None,
    /// Lines starting with `#` (Zeek) are header, wherever they appear.
    Hash,
    /// The first line of the file is the header (CSV exports).
    First,
}

/// A record that could not be parsed, kept with its reason and raw bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub source: String,
    pub format: Format,
    pub reason: String,
    pub observed_time: Millis,
    pub raw: Raw,
}

/// Does `haystack` contain `needle` (ASCII) in any letter case? (No lowercase copy.)
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Text of a byte slice for a parser that needs UTF-8, or the error naming it.
fn utf8<'a>(parser: &'static str, bytes: &'a [u8]) -> Result<&'a str, ParseError> {
    std::str::from_utf8(bytes)
        .map_err(|e| ParseError::new(parser, format!("not valid UTF-8 at byte {}", e.valid_up_to())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Random bytes never panic a parser: they parse or give a reason.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let header = b"#fields\tts\tid.orig_h\n#types\ttime\taddr\n";
            let mapping = pacs::BadgeMapping { columns: vec!["t".into(), "r".into(), "d".into()], ..pacs::GENETEC_CSV.clone() };
            let ctx = ParseContext { header: Some(header), badge_mapping: Some(&mapping), ..ParseContext::new("p", 1_700_000_000_000) };
            for f in Format::ALL {
                if let Err(e) = f.parse(&bytes, &ctx) {
                    prop_assert!(!e.reason.is_empty());
                }
            }
        }

        /// Syslog-shaped noise reaches the body parsers too.
        #[test]
        fn syslog_shaped_noise_never_panics(body in "[ -~]{0,200}") {
            let ctx = ParseContext::new("p", 1_700_000_000_000);
            for prefix in [
                "<134>1 2026-11-26T10:00:00Z fw app - - - ",
                "<13>Nov 26 10:00:00 host tag: ",
                "<13>Nov 26 10:00:00 host CEF:0|",
                "<13>Nov 26 10:00:00 host LEEF:2.0|V|P|1|E|x5E|",
                "<13>Nov 26 10:00:00 host filterlog: 5,,,1000,em0,match,block,in,4,",
                "<13>Nov 26 10:00:00 host kernel: DROP IN=eth0 SRC=10.0.0.1 DST=10.0.0.2 PROTO=",
                "<13>Nov 26 10:00:00 host %ASA-4-106023: Deny tcp src ",
                "<13>Nov 26 10:00:00 host 1,2026/11/26 10:00:00,0011,TRAFFIC,end,",
                "<13>1 - - - - - - devid=x logid=y ",
            ] {
                let line = format!("{prefix}{body}");
                let _ = Format::Syslog.parse(line.as_bytes(), &ctx);
            }
        }
    }
}
