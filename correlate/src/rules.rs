//! The built-in rules' descriptions. Their logic lives in the engine; the
//! Sigma rule language replaces these hand-written joins later.

/// A built-in rule's metadata.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RuleInfo {
    pub id: &'static str,
    pub title: &'static str,
    pub attack: &'static [&'static str],
    pub description: &'static str,
}

pub const BADGE_DENIED_THEN_EWS_LOGIN: RuleInfo = RuleInfo {
    id: "badge-denied-then-ews-login",
    title: "Badge denied, then the same person logs in on an engineering workstation in that zone",
    attack: &["T0859"],
    description: "A badge is denied at a door of zone Z and, within the join window (default 5 minutes), \
                  the same person's account logs on to an engineering workstation in Z. Either order of arrival.",
};

pub const PLC_CHANGE_OUTSIDE_WINDOW: RuleInfo = RuleInfo {
    id: "plc-change-outside-window",
    title: "PLC program changed outside any maintenance window or open change ticket",
    attack: &["T0843", "T0889"],
    description: "A PLC backup differs from the released version and no maintenance window or open change \
                  ticket covers the asset at the time of the backup.",
};

pub const OT_WRITE_OWNER_OFFSITE: RuleInfo = RuleInfo {
    id: "ot-write-owner-offsite",
    title: "Industrial write to a PLC from a host whose owner is not on site",
    attack: &["T0855"],
    description: "A Modbus / DNP3 / CIP write reaches a PLC from a host whose assigned person has no granted \
                  badge event within the look-back (default 12 hours) before the write. Decided once the \
                  watermark passes the write, so late badge events are taken into account.",
};

/// Every built-in rule.
pub const BUILTIN_RULES: [RuleInfo; 3] =
    [BADGE_DENIED_THEN_EWS_LOGIN, PLC_CHANGE_OUTSIDE_WINDOW, OT_WRITE_OWNER_OFFSITE];
