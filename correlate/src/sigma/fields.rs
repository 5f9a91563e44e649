//! The Sigma field names rules may use, mapped to the event contract.
//! Resolved once when a rule is compiled, so matching reads a struct field
//! instead of looking a name up per event.

use std::net::IpAddr;

use ingest::Event;

/// A value read from an event for matching.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Text(&'a str),
    Int(i64),
    Ip(IpAddr),
}

/// A contract field (or a vendor field in `unmapped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    ClassUid,
    ActivityId,
    SeverityId,
    StatusId,
    ActionId,
    Message,
    ActorUser,
    ActorCredential,
    ActorPerson,
    SrcIp,
    SrcPort,
    SrcHostname,
    SrcAsset,
    SrcZone,
    DstIp,
    DstPort,
    DstHostname,
    DstAsset,
    DstZone,
    DeviceAsset,
    DeviceHostname,
    DeviceIp,
    DeviceKind,
    DeviceVendor,
    Zone,
    Door,
    Area,
    Protocol,
    OtFunctionCode,
    OtFunction,
    OtUnitId,
    OtAddress,
    OtAccess,
    FindingUid,
    FindingTitle,
    FindingCategory,
    ChangeResult,
    ChangePreviousResult,
    Product,
    Vendor,
    Parser,
    Source,
    /// A vendor field, by its full name in `unmapped` (`fortigate.policyid`).
    Unmapped(String),
}

/// Every contract field name with the Sigma-style aliases rules may use.
/// The README's field-mapping table is this list.
pub const NAMES: &[(&str, &[&str])] = &[
    ("class_uid", &[]),
    ("activity_id", &[]),
    ("severity_id", &[]),
    ("status_id", &[]),
    ("action_id", &[]),
    ("message", &["Message"]),
    ("actor.user", &["User", "user", "TargetUserName"]),
    ("actor.credential_uid", &["badge", "CardNumber"]),
    ("actor.person", &["person"]),
    ("src.ip", &["src_ip", "SourceIp"]),
    ("src.port", &["src_port", "SourcePort"]),
    ("src.hostname", &["SourceHostname"]),
    ("src.asset", &["src_asset"]),
    ("src.zone", &["src_zone"]),
    ("dst.ip", &["dst_ip", "DestinationIp"]),
    ("dst.port", &["dst_port", "DestinationPort"]),
    ("dst.hostname", &["DestinationHostname"]),
    ("dst.asset", &["dst_asset"]),
    ("dst.zone", &["dst_zone"]),
    ("device.asset", &["asset"]),
    ("device.hostname", &["Hostname", "ComputerName"]),
    ("device.ip", &[]),
    ("device.kind", &["asset_kind"]),
    ("device.vendor", &[]),
    ("zone", &[]),
    ("door", &[]),
    ("area", &[]),
    ("protocol", &[]),
    ("ot.function_code", &["function_code"]),
    ("ot.function", &[]),
    ("ot.unit_id", &[]),
    ("ot.address", &[]),
    ("ot.access", &[]),
    ("finding.uid", &["signature_id"]),
    ("finding.title", &["signature"]),
    ("finding.category", &[]),
    ("change.result", &[]),
    ("change.previous_result", &[]),
    ("metadata.product", &["product"]),
    ("metadata.vendor", &["vendor"]),
    ("metadata.parser", &["parser"]),
    ("metadata.source", &["source"]),
];

impl Field {
    /// The field a rule's name refers to. Names that are neither contract
    /// fields nor aliases are vendor fields (`unmapped.` is optional).
    pub fn resolve(name: &str) -> Self {
        let canonical =
            NAMES.iter().find(|(n, aliases)| *n == name || aliases.contains(&name)).map_or(name, |(n, _)| *n);
        match canonical {
            "class_uid" => Self::ClassUid,
            "activity_id" => Self::ActivityId,
            "severity_id" => Self::SeverityId,
            "status_id" => Self::StatusId,
            "action_id" => Self::ActionId,
            "message" => Self::Message,
            "actor.user" => Self::ActorUser,
            "actor.credential_uid" => Self::ActorCredential,
            "actor.person" => Self::ActorPerson,
            "src.ip" => Self::SrcIp,
            "src.port" => Self::SrcPort,
            "src.hostname" => Self::SrcHostname,
            "src.asset" => Self::SrcAsset,
            "src.zone" => Self::SrcZone,
            "dst.ip" => Self::DstIp,
            "dst.port" => Self::DstPort,
            "dst.hostname" => Self::DstHostname,
            "dst.asset" => Self::DstAsset,
            "dst.zone" => Self::DstZone,
            "device.asset" => Self::DeviceAsset,
            "device.hostname" => Self::DeviceHostname,
            "device.ip" => Self::DeviceIp,
            "device.kind" => Self::DeviceKind,
            "device.vendor" => Self::DeviceVendor,
            "zone" => Self::Zone,
            "door" => Self::Door,
            "area" => Self::Area,
            "protocol" => Self::Protocol,
            "ot.function_code" => Self::OtFunctionCode,
            "ot.function" => Self::OtFunction,
            "ot.unit_id" => Self::OtUnitId,
            "ot.address" => Self::OtAddress,
            "ot.access" => Self::OtAccess,
            "finding.uid" => Self::FindingUid,
            "finding.title" => Self::FindingTitle,
            "finding.category" => Self::FindingCategory,
            "change.result" => Self::ChangeResult,
            "change.previous_result" => Self::ChangePreviousResult,
            "metadata.product" => Self::Product,
            "metadata.vendor" => Self::Vendor,
            "metadata.parser" => Self::Parser,
            "metadata.source" => Self::Source,
            other => Self::Unmapped(other.strip_prefix("unmapped.").unwrap_or(other).to_owned()),
        }
    }

    /// The field's value in `e`, `None` when the event does not have it.
    pub fn get<'a>(&self, e: &'a Event) -> Option<Value<'a>> {
        let text = |s: Option<&'a str>| s.map(Value::Text);
        let int = |n: Option<i64>| n.map(Value::Int);
        let src = e.src.as_ref();
        let dst = e.dst.as_ref();
        let dev = e.device.as_ref();
        let ot = e.ot.as_ref();
        let finding = e.finding.as_ref();
        match self {
            Self::ClassUid => int(Some(i64::from(e.class_uid))),
            Self::ActivityId => int(Some(i64::from(e.activity_id))),
            Self::SeverityId => int(Some(i64::from(e.severity_id))),
            Self::StatusId => int(e.status_id.map(i64::from)),
            Self::ActionId => int(e.action_id.map(i64::from)),
            Self::Message => text(Some(&e.message)),
            Self::ActorUser => text(e.actor.as_ref().and_then(|a| a.user.as_deref())),
            Self::ActorCredential => text(e.actor.as_ref().and_then(|a| a.credential_uid.as_deref())),
            Self::ActorPerson => text(e.person()),
            Self::SrcIp => src.and_then(|s| s.ip).map(Value::Ip),
            Self::SrcPort => int(src.and_then(|s| s.port).map(i64::from)),
            Self::SrcHostname => text(src.and_then(|s| s.hostname.as_deref())),
            Self::SrcAsset => text(src.and_then(|s| s.asset.as_deref())),
            Self::SrcZone => text(src.and_then(|s| s.zone.as_deref())),
            Self::DstIp => dst.and_then(|s| s.ip).map(Value::Ip),
            Self::DstPort => int(dst.and_then(|s| s.port).map(i64::from)),
            Self::DstHostname => text(dst.and_then(|s| s.hostname.as_deref())),
            Self::DstAsset => text(dst.and_then(|s| s.asset.as_deref())),
            Self::DstZone => text(dst.and_then(|s| s.zone.as_deref())),
            Self::DeviceAsset => text(dev.and_then(|d| d.asset.as_deref())),
            Self::DeviceHostname => text(dev.and_then(|d| d.hostname.as_deref())),
            Self::DeviceIp => dev.and_then(|d| d.ip).map(Value::Ip),
            Self::DeviceKind => text(dev.and_then(|d| d.kind.as_deref())),
            Self::DeviceVendor => text(dev.and_then(|d| d.vendor.as_deref())),
            Self::Zone => text(e.zone.as_deref()),
            Self::Door => text(e.door.as_deref()),
            Self::Area => text(e.area.as_deref()),
            Self::Protocol => text(e.protocol.as_deref()),
            Self::OtFunctionCode => int(ot.and_then(|o| o.function_code).map(i64::from)),
            Self::OtFunction => text(ot.and_then(|o| o.function.as_deref())),
            Self::OtUnitId => int(ot.and_then(|o| o.unit_id).map(i64::from)),
            Self::OtAddress => int(ot.and_then(|o| o.address).map(i64::from)),
            Self::OtAccess => ot.map(|o| {
                Value::Text(match o.access {
                    ingest::event::OtAccess::Read => "read",
                    ingest::event::OtAccess::Write => "write",
                    ingest::event::OtAccess::Other => "other",
                })
            }),
            Self::FindingUid => text(finding.and_then(|f| f.uid.as_deref())),
            Self::FindingTitle => text(finding.map(|f| f.title.as_str())),
            Self::FindingCategory => text(finding.and_then(|f| f.category.as_deref())),
            Self::ChangeResult => text(e.change.as_ref().map(|c| c.result.as_str())),
            Self::ChangePreviousResult => text(e.change.as_ref().and_then(|c| c.previous_result.as_deref())),
            Self::Product => text(Some(&e.metadata.product)),
            Self::Vendor => text(e.metadata.vendor.as_deref()),
            Self::Parser => text(Some(&e.metadata.parser)),
            Self::Source => text(Some(&e.metadata.source)),
            Self::Unmapped(name) => {
                let v = e.unmapped.get(name)?;
                match v.as_str() {
                    Some(t) => Some(Value::Text(t)),
                    None => v.to_json().as_i64().map(Value::Int),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_contract_fields() {
        assert_eq!(Field::resolve("DestinationPort"), Field::DstPort);
        assert_eq!(Field::resolve("dst.port"), Field::DstPort);
        assert_eq!(Field::resolve("unmapped.fortigate.policyid"), Field::Unmapped("fortigate.policyid".into()));
        assert_eq!(Field::resolve("fortigate.policyid"), Field::Unmapped("fortigate.policyid".into()));
    }
}
