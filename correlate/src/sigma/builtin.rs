//! The built-in rule pack (`correlate/rules/`), compiled into the binary so
//! the demo and a fresh install have it; a `rules_dir` replaces it.

use std::path::Path;

use super::detection::Placeholders;
use super::rule::{RuleSet, parse_file};

/// (file name, text) of every built-in rule file.
pub const FILES: [(&str, &str); 8] = [
    ("badge-duress-or-antipassback.yml", include_str!("../../rules/badge-duress-or-antipassback.yml")),
    ("denied-then-logon.yml", include_str!("../../rules/denied-then-logon.yml")),
    ("door-forced-or-held-at-control-room.yml", include_str!("../../rules/door-forced-or-held-at-control-room.yml")),
    ("hmi-logon-brute-force.yml", include_str!("../../rules/hmi-logon-brute-force.yml")),
    ("ids-alert-on-plc.yml", include_str!("../../rules/ids-alert-on-plc.yml")),
    ("modbus-sweep.yml", include_str!("../../rules/modbus-sweep.yml")),
    ("ot-write-from-non-engineering-host.yml", include_str!("../../rules/ot-write-from-non-engineering-host.yml")),
    ("repeated-badge-denials.yml", include_str!("../../rules/repeated-badge-denials.yml")),
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
