//! The built-in rule pack (`correlate/rules/`), compiled into the binary so
//! the demo and a fresh install have it; a `rules_dir` replaces it.

use std::path::Path;

use super::detection::Placeholders;
use super::rule::{RuleSet, parse_file};

/// (file name, text) of every built-in rule file.
pub const FILES: [(&str, &str); 23] = [
    ("badge-duress-or-antipassback.yml", include_str!("../../rules/badge-duress-or-antipassback.yml")),
    ("conduit-violation.yml", include_str!("../../rules/conduit-violation.yml")),
    ("custos-sign-in.yml", include_str!("../../rules/custos-sign-in.yml")),
    ("denied-connections-to-plc.yml", include_str!("../../rules/denied-connections-to-plc.yml")),
    ("denied-then-door-forced.yml", include_str!("../../rules/denied-then-door-forced.yml")),
    ("denied-then-logon.yml", include_str!("../../rules/denied-then-logon.yml")),
    ("dnp3-restart.yml", include_str!("../../rules/dnp3-restart.yml")),
    ("door-forced-or-held-at-control-room.yml", include_str!("../../rules/door-forced-or-held-at-control-room.yml")),
    ("hmi-logon-brute-force.yml", include_str!("../../rules/hmi-logon-brute-force.yml")),
    ("ids-alert-on-plc.yml", include_str!("../../rules/ids-alert-on-plc.yml")),
    ("it-to-cell-allowed.yml", include_str!("../../rules/it-to-cell-allowed.yml")),
    ("modbus-sweep.yml", include_str!("../../rules/modbus-sweep.yml")),
    ("ot-write-from-non-engineering-host.yml", include_str!("../../rules/ot-write-from-non-engineering-host.yml")),
    ("plc-backup-job-error.yml", include_str!("../../rules/plc-backup-job-error.yml")),
    ("plc-changed-since-last-backup.yml", include_str!("../../rules/plc-changed-since-last-backup.yml")),
    ("presence.yml", include_str!("../../rules/presence.yml")),
    ("program-download-on-the-wire.yml", include_str!("../../rules/program-download-on-the-wire.yml")),
    ("remote-logon-to-ot-host.yml", include_str!("../../rules/remote-logon-to-ot-host.yml")),
    ("repeated-badge-denials.yml", include_str!("../../rules/repeated-badge-denials.yml")),
    ("tailgating.yml", include_str!("../../rules/tailgating.yml")),
    ("transfer-without-backup-change.yml", include_str!("../../rules/transfer-without-backup-change.yml")),
    ("unknown-device-in-cell.yml", include_str!("../../rules/unknown-device-in-cell.yml")),
    ("vendor-in-control-room.yml", include_str!("../../rules/vendor-in-control-room.yml")),
];

/// The built-in pack, compiled against `placeholders`.
pub fn rules(placeholders: &Placeholders) -> Result<RuleSet, Vec<String>> {
    let files = FILES
        .iter()
        .map(|(name, text)| parse_file(&Path::new("builtin").join(name), text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| vec![e])?;
    RuleSet::compile(&files, placeholders)
}
