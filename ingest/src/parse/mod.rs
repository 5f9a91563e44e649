//! Parsers: pure functions from a source's bytes to a normalised [`Event`].
//! No I/O and no clock: the receive time and the sender's time zone arrive in
//! [`ParseContext`]. Anything that does not parse becomes a [`DeadLetter`] with
//! a reason; nothing panics on input.

pub mod badge;
pub mod cef;
pub mod eve;
pub mod fortigate;
pub mod kv;
pub mod plc;
pub mod syslog;

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
    /// UTC offset in minutes for timestamps that carry none (RFC 3164).
    pub default_offset_min: i64,
}

/// Which parser reads a source's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// RFC 5424 / RFC 3164 syslog; the body is detected (CEF, FortiGate key=value, text).
    Syslog,
    /// Suricata EVE JSON, one record per line.
    SuricataEve,
    /// Badge (physical access) events as Custos JSON.
    BadgeJson,
    /// PLC backup comparison reports from the backup watcher.
    PlcBackup,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Syslog => "syslog",
            Self::SuricataEve => "suricata-eve",
            Self::BadgeJson => "badge-json",
            Self::PlcBackup => "plc-backup",
        }
    }

    /// Parses one record in this format.
    pub fn parse(self, bytes: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
        let mut event = match self {
            Self::Syslog => syslog::parse_event(bytes, ctx),
            Self::SuricataEve => eve::parse(bytes, ctx),
            Self::BadgeJson => badge::parse(bytes, ctx),
            Self::PlcBackup => plc::parse(bytes, ctx),
        }?;
        event.metadata.source = ctx.source.to_owned();
        Ok(event)
    }
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

/// Text of a byte slice for a parser that needs UTF-8, or the error naming it.
fn utf8<'a>(parser: &'static str, bytes: &'a [u8]) -> Result<&'a str, ParseError> {
    std::str::from_utf8(bytes)
        .map_err(|e| ParseError::new(parser, format!("not valid UTF-8 at byte {}", e.valid_up_to())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Format; 4] = [Format::Syslog, Format::SuricataEve, Format::BadgeJson, Format::PlcBackup];

    proptest! {
        /// Random bytes never panic a parser: they parse or give a reason.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let ctx = ParseContext { source: "p", received_at: 1_700_000_000_000, default_offset_min: 0 };
            for f in ALL {
                if let Err(e) = f.parse(&bytes, &ctx) {
                    prop_assert!(!e.reason.is_empty());
                }
            }
        }

        /// Syslog-shaped noise reaches the body parsers too.
        #[test]
        fn syslog_shaped_noise_never_panics(body in "[ -~]{0,200}") {
            let ctx = ParseContext { source: "p", received_at: 1_700_000_000_000, default_offset_min: 0 };
            for prefix in ["<134>1 2026-11-26T10:00:00Z fw app - - - ", "<13>Nov 26 10:00:00 host tag: ", "<13>Nov 26 10:00:00 host CEF:0|", "<13>1 - - - - - - devid=x "] {
                let line = format!("{prefix}{body}");
                let _ = Format::Syslog.parse(line.as_bytes(), &ctx);
            }
        }
    }
}
