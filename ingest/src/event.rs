//! The normalised event contract, aligned with OCSF 1.x names and integer enums,
//! and its Arrow schema for the Parquet archive.
//!
//! Every event keeps `raw`, the source's record byte for byte (ALCOA+ "original"):
//! evidence must show what the source said, not only what Custos understood.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::Millis;

mod unmapped;
pub use unmapped::{FieldValue, NewValue, Prefixed, Unmapped};

/// Text in the contract: names, addresses, short messages. Up to 24 bytes are
/// kept inline, without an allocation, and most of an event's text is that
/// short: a FortiGate event's eight allocations became three.
pub type Text = compact_str::CompactString;

/// `s` in ASCII lower case, built inline when short (protocol names).
pub fn ascii_lowercase(s: &str) -> Text {
    let mut t = Text::from(s);
    t.make_ascii_lowercase();
    t
}

/// `format!` for `Text`: short results are built inline.
pub use compact_str::format_compact as format_text;

/// OCSF event classes Custos emits. `PhysicalAccess` is Custos' extension class:
/// OCSF has no physical-access class yet (ocsf-schema issue 1735 proposes category 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventClass {
    Base,
    DetectionFinding,
    Authentication,
    NetworkActivity,
    DeviceConfigStateChange,
    PhysicalAccess,
}

impl EventClass {
    pub const fn uid(self) -> u32 {
        match self {
            Self::Base => 0,
            Self::DetectionFinding => 2004,
            Self::Authentication => 3002,
            Self::NetworkActivity => 4001,
            Self::DeviceConfigStateChange => 5019,
            Self::PhysicalAccess => 9001,
        }
    }
    pub const fn category_uid(self) -> u32 {
        self.uid() / 1000
    }
    pub fn from_uid(uid: u32) -> Option<Self> {
        [
            Self::Base,
            Self::DetectionFinding,
            Self::Authentication,
            Self::NetworkActivity,
            Self::DeviceConfigStateChange,
            Self::PhysicalAccess,
        ]
        .into_iter()
        .find(|c| c.uid() == uid)
    }
}

/// Activity ids per class (OCSF values; physical access uses Custos' vocabulary).
pub mod activity {
    pub const OTHER: u32 = 99;
    pub const FINDING_CREATE: u32 = 1;
    pub const AUTH_LOGON: u32 = 1;
    pub const AUTH_LOGOFF: u32 = 2;
    pub const NET_OPEN: u32 = 1;
    pub const NET_CLOSE: u32 = 2;
    pub const NET_REFUSE: u32 = 5;
    pub const NET_TRAFFIC: u32 = 6;
    pub const CONFIG_LOG: u32 = 1;
    pub const BADGE_GRANTED: u32 = 1;
    pub const BADGE_DENIED: u32 = 2;
    pub const PORTAL_FORCED: u32 = 3;
    pub const PORTAL_HELD_OPEN: u32 = 4;
    pub const REQUEST_TO_EXIT: u32 = 5;
    pub const DURESS: u32 = 6;
    pub const ANTIPASSBACK_VIOLATION: u32 = 7;
    pub const TAMPER: u32 = 8;
    /// A door contact reports the door open, or closed again.
    pub const PORTAL_OPENED: u32 = 9;
    pub const PORTAL_CLOSED: u32 = 10;
    /// An anti-tailgating sensor (people counter, mantrap, speed gate) saw
    /// more people through than badges granted.
    pub const TAILGATING: u32 = 11;
}

/// OCSF `severity_id`.
pub mod severity {
    pub const UNKNOWN: u8 = 0;
    pub const INFORMATIONAL: u8 = 1;
    pub const LOW: u8 = 2;
    pub const MEDIUM: u8 = 3;
    pub const HIGH: u8 = 4;
    pub const CRITICAL: u8 = 5;
    pub const FATAL: u8 = 6;
}

/// OCSF `status_id`: 1 success, 2 failure.
pub mod status {
    pub const SUCCESS: u8 = 1;
    pub const FAILURE: u8 = 2;
}

/// OCSF `action_id` on network activity: 1 allowed, 2 denied.
pub mod action {
    pub const ALLOWED: u8 = 1;
    pub const DENIED: u8 = 2;
}

/// Who acted: an account, a credential (badge) and the person both resolve to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Text>,
    /// Badge / card number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_uid: Option<Text>,
    /// Person id from the inventory (filled by enrichment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Text>,
}

/// A network endpoint, enriched with the inventory asset and zone it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<Text>,
}

impl Endpoint {
    /// An endpoint from text fields as sources log them; `None` when none is
    /// usable. An address or port that does not parse is left out.
    pub fn from_fields(
        ip: Option<&str>,
        port: Option<&str>,
        mac: Option<&str>,
        hostname: Option<&str>,
    ) -> Option<Self> {
        let (ip, port) = (ip.and_then(parse_ip), port.and_then(|v| v.parse().ok()));
        if ip.is_none() && port.is_none() && mac.is_none() && hostname.is_none() {
            return None;
        }
        Some(Self { ip, port, mac: mac.map(Text::from), hostname: hostname.map(Text::from), ..Self::default() })
    }
}

/// An IP address as sources write it. Dotted IPv4, nearly every address in
/// a plant's logs, is read here in one pass; anything else by the standard
/// parser, which tries IPv4 and then IPv6 (twice the time, measured).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let b = text.as_bytes();
    let (mut octets, mut n, mut value, mut digits) = ([0u8; 4], 0, 0u32, 0);
    for &c in b {
        match c {
            b'0'..=b'9' if digits < 3 => {
                // A leading zero is ambiguous (octal to some), so the standard parser decides.
                if digits == 1 && value == 0 {
                    return text.parse().ok();
                }
                value = value * 10 + u32::from(c - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && n < 3 => {
                octets[n] = u8::try_from(value).ok()?;
                (n, value, digits) = (n + 1, 0, 0);
            }
            _ => return text.parse().ok(),
        }
    }
    if n != 3 || digits == 0 {
        return text.parse().ok();
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(IpAddr::from(octets))
}

/// The asset the event is about (target of a login, PLC whose program changed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// plc, hmi, ews, historian, server, workstation, network, other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Text>,
}

/// Read / write classification of an industrial protocol operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtAccess {
    Read,
    Write,
    Other,
}

/// Industrial protocol details (Modbus, DNP3, S7, ENIP/CIP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtOperation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<u32>,
    pub access: OtAccess,
}

/// A detection (IDS signature, Custos rule).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<Text>,
    pub title: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Text>,
}

/// A PLC program / configuration comparison (Device Config State Change).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigChange {
    /// Identifier of the backup that was compared.
    pub backup: String,
    /// What it was compared with: `released`.
    pub compared_with: String,
    /// `equal`, `different` or `error`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_files: Vec<String>,
    /// The backup before this one, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_backup: Option<String>,
    /// `equal` or `different` against the previous backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_result: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_since_previous: Vec<String>,
}

/// Where the event came from and how it was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Constant names (`FortiGate`, `syslog/cef`) are borrowed, not allocated per event.
    pub product: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Text>,
    /// The configured source (collector) name, e.g. `syslog-udp`.
    pub source: Text,
    /// The parser that produced the event, e.g. `syslog/cef`.
    pub parser: Cow<'static, str>,
}

/// The original record, byte for byte. Serialised as a string when it is UTF-8
/// and as `{"base64": "..."}` otherwise, so JSON never alters it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Raw(pub Vec<u8>);

impl Serialize for Raw {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut m = BTreeMap::new();
                m.insert("base64", base64::engine::general_purpose::STANDARD.encode(&self.0));
                m.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum: serde buffers an untagged
        // value before trying its forms, which cost a copy of every raw record.
        struct Form;

        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = Raw;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a string or {"base64": "..."}"#)
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Raw, E> {
                Ok(Raw(text.as_bytes().to_vec()))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Raw, E> {
                Ok(Raw(text.into_bytes()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut bytes = None;
                use crate::parse::json::Text;
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    if key != "base64" || bytes.is_some() {
                        return Err(serde::de::Error::custom(format!("raw: unexpected field {key:?}")));
                    }
                    let Text(text) = map.next_value::<Text<'de>>()?;
                    let decoded = base64::engine::general_purpose::STANDARD.decode(text.as_bytes());
                    bytes = Some(decoded.map_err(serde::de::Error::custom)?);
                }
                bytes.map(Raw).ok_or_else(|| serde::de::Error::missing_field("base64"))
            }
        }

        d.deserialize_any(Form)
    }
}

/// Serde for byte fields in `Raw`'s form (a string when UTF-8, else
/// `{"base64": ...}`), so raw records on the bus stay compact and readable.
pub mod raw_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => s.serialize_str(text),
            Err(_) => super::Raw(bytes.to_vec()).serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        super::Raw::deserialize(d).map(|r| r.0)
    }
}

/// One normalised event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub class_uid: u32,
    pub category_uid: u32,
    pub activity_id: u32,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: u64,
    /// Event time from the source, UTC ms.
    pub time: Millis,
    /// When Custos received the record, UTC ms.
    pub observed_time: Millis,
    pub severity_id: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_id: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<u8>,
    #[serde(default)]
    pub message: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// IEC 62443 zone the event belongs to (filled by enrichment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ot: Option<OtOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<Finding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Boxed: rare, and large enough to make every event bigger to move.
    pub change: Option<Box<ConfigChange>>,
    pub metadata: Metadata,
    /// Vendor fields with no home in the contract: kept, not dropped.
    #[serde(default, skip_serializing_if = "Unmapped::is_empty")]
    pub unmapped: Unmapped,
    pub raw: Raw,
}

impl Event {
    /// A new event of `class` / `activity` whose `raw` is `raw`; `type_uid`,
    /// `category_uid` and the raw digest are derived here so they always agree.
    pub fn new(class: EventClass, activity_id: u32, time: Millis, observed_time: Millis, raw: &[u8]) -> Self {
        let raw = Raw(raw.to_vec());
        Self {
            class_uid: class.uid(),
            category_uid: class.category_uid(),
            activity_id,
            type_uid: u64::from(class.uid()) * 100 + u64::from(activity_id),
            time,
            observed_time,
            severity_id: severity::INFORMATIONAL,
            status_id: None,
            action_id: None,
            message: Text::default(),
            actor: None,
            src: None,
            dst: None,
            device: None,
            zone: None,
            door: None,
            area: None,
            protocol: None,
            ot: None,
            finding: None,
            change: None,
            metadata: Metadata::default(),
            unmapped: Unmapped::default(),
            raw,
        }
    }

    pub fn class(&self) -> Option<EventClass> {
        EventClass::from_uid(self.class_uid)
    }

    pub fn actor_mut(&mut self) -> &mut Actor {
        self.actor.get_or_insert_with(Actor::default)
    }
    pub fn src_mut(&mut self) -> &mut Endpoint {
        self.src.get_or_insert_with(Endpoint::default)
    }
    pub fn dst_mut(&mut self) -> &mut Endpoint {
        self.dst.get_or_insert_with(Endpoint::default)
    }
    pub fn device_mut(&mut self) -> &mut Device {
        self.device.get_or_insert_with(Device::default)
    }
    /// The person behind the event, once enrichment has resolved one.
    pub fn person(&self) -> Option<&str> {
        self.actor.as_ref()?.person.as_deref()
    }
    /// A badge event's way through its door is out (the event's own
    /// direction, or the inventory's exit reader): its holder leaves the area.
    pub fn badged_out(&self) -> bool {
        // Any case: events ledgered before directions were normalised.
        self.unmapped.get_str(BADGE_DIRECTION).is_some_and(|d| d.eq_ignore_ascii_case("out"))
    }
    /// A badge that opened its door for its holder: granted, or a duress
    /// code, which opens the door by design (the alarm is silent) unless the
    /// reader says access was denied.
    pub fn badge_opened(&self) -> bool {
        match self.activity_id {
            activity::BADGE_GRANTED => true,
            activity::DURESS => self.status_id != Some(status::FAILURE),
            _ => false,
        }
    }
    /// The door a physical-access event happened at: the one its reader
    /// opens (the inventory's `opens`), else the door it names.
    pub fn portal(&self) -> Option<&str> {
        self.unmapped.get_str(READER_OPENS).or(self.door.as_deref())
    }
}

/// `unmapped` name of a badge event's direction, `in` or `out` (parsers and
/// the inventory's exit readers set it).
pub const BADGE_DIRECTION: &str = "badge.direction";
/// `unmapped` name of the door an exit reader named apart from it opens (the
/// inventory's `[[doors]] opens`).
pub const READER_OPENS: &str = "reader.opens";

/// Arrow schema of the Parquet archive: the event flattened into columns, so that
/// SQL reads `src_ip` rather than digging into nested JSON. `unmapped` is kept
/// as a JSON string and `raw` as bytes.
pub fn arrow_schema() -> arrow_schema::Schema {
    use arrow_schema::{DataType as T, Field, TimeUnit};
    let ts = || T::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let s = |name: &str| Field::new(name, T::Utf8, true);
    let u16f = |name: &str| Field::new(name, T::UInt16, true);
    arrow_schema::Schema::new(vec![
        Field::new("ledger_index", T::UInt64, false),
        Field::new("class_uid", T::UInt32, false),
        Field::new("category_uid", T::UInt32, false),
        Field::new("activity_id", T::UInt32, false),
        Field::new("type_uid", T::UInt64, false),
        Field::new("time", ts(), false),
        Field::new("observed_time", ts(), false),
        Field::new("severity_id", T::UInt8, false),
        Field::new("status_id", T::UInt8, true),
        Field::new("action_id", T::UInt8, true),
        Field::new("message", T::Utf8, false),
        s("actor_user"),
        s("actor_credential_uid"),
        s("actor_person"),
        s("src_ip"),
        u16f("src_port"),
        s("src_mac"),
        s("src_hostname"),
        s("src_asset"),
        s("src_zone"),
        s("dst_ip"),
        u16f("dst_port"),
        s("dst_mac"),
        s("dst_hostname"),
        s("dst_asset"),
        s("dst_zone"),
        s("device_asset"),
        s("device_hostname"),
        s("device_ip"),
        s("device_kind"),
        s("device_vendor"),
        s("device_model"),
        s("zone"),
        s("door"),
        s("area"),
        s("protocol"),
        u16f("ot_function_code"),
        s("ot_function"),
        u16f("ot_unit_id"),
        Field::new("ot_address", T::UInt32, true),
        s("ot_access"),
        s("finding_uid"),
        s("finding_title"),
        s("finding_category"),
        s("change_backup"),
        s("change_compared_with"),
        s("change_result"),
        Field::new("change_changed_files", T::List(Field::new("item", T::Utf8, true).into()), true),
        s("change_previous_backup"),
        s("change_previous_result"),
        Field::new("change_changed_since_previous", T::List(Field::new("item", T::Utf8, true).into()), true),
        Field::new("metadata_product", T::Utf8, false),
        s("metadata_vendor"),
        s("metadata_version"),
        Field::new("metadata_source", T::Utf8, false),
        Field::new("metadata_parser", T::Utf8, false),
        s("unmapped"),
        Field::new("raw", T::Binary, false),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn parse_ip_agrees_with_the_standard_parser(text in "[0-9a-f.:]{0,20}", v4 in proptest::prelude::any::<[u8; 4]>()) {
            proptest::prop_assert_eq!(parse_ip(&text), text.parse::<IpAddr>().ok(), "{}", text);
            let dotted = format!("{}.{}.{}.{}", v4[0], v4[1], v4[2], v4[3]);
            proptest::prop_assert_eq!(parse_ip(&dotted), Some(IpAddr::from(v4)));
        }
    }

    fn sample() -> Event {
        let mut e = Event::new(EventClass::Authentication, activity::AUTH_LOGON, 1000, 2000, b"line \xff");
        e.actor_mut().user = Some("jdoe".into());
        e.dst_mut().ip = "10.0.0.1".parse().ok();
        e.ot = Some(OtOperation {
            function_code: Some(6),
            function: None,
            unit_id: Some(1),
            address: Some(40001),
            access: OtAccess::Write,
        });
        e.finding = Some(Finding::default());
        e.change = Some(Box::new(ConfigChange {
            previous_backup: Some("b0".into()),
            previous_result: Some("equal".into()),
            changed_since_previous: vec!["x".into()],
            ..ConfigChange::default()
        }));
        e.device = Some(Device::default());
        e.src = Some(Endpoint::default());
        e
    }

    #[test]
    fn derived_ids_agree() {
        let e = sample();
        assert_eq!(e.type_uid, 300_201);
        assert_eq!(e.category_uid, 3);
        assert_eq!(e.class(), Some(EventClass::Authentication));
    }

    #[test]
    fn raw_survives_json_byte_for_byte() {
        let e = sample();
        let json = serde_json::to_string(&e).unwrap_or_default();
        assert!(json.contains(r#""raw":{"base64":"bGluZSD/"}"#), "{json}");
        let back: Event = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, e);
        assert_eq!(back.raw.0, b"line \xff");
    }

    #[test]
    fn raw_reads_text_escapes_and_base64_and_refuses_anything_else() {
        let raw = |json: &str| serde_json::from_str::<Raw>(json).map(|r| r.0).map_err(|e| e.to_string());
        assert_eq!(raw(r#""a=1 b=\"x\"""#), Ok(b"a=1 b=\"x\"".to_vec()));
        assert_eq!(raw(r#"{"base64":"bGluZSD/"}"#), Ok(b"line \xff".to_vec()));
        for bad in [r#"{"base64":"%%"}"#, r#"{"hex":"00"}"#, r#"{}"#, "7", r#"{"base64":"AA==","base64":"AA=="}"#] {
            assert!(raw(bad).is_err(), "{bad} must be refused");
        }
    }

    /// Every leaf of the JSON form has an Arrow column named by its path with `_`.
    #[test]
    fn arrow_schema_covers_every_field() {
        let schema = arrow_schema();
        let json = serde_json::to_value(sample()).unwrap_or_default();
        let mut missing = Vec::new();
        let obj = json.as_object().cloned().unwrap_or_default();
        for (k, v) in obj {
            match v {
                serde_json::Value::Object(inner) if k != "unmapped" && k != "raw" => {
                    for ik in inner.keys() {
                        let name = format!("{k}_{ik}");
                        if schema.field_with_name(&name).is_err() {
                            missing.push(name);
                        }
                    }
                }
                _ => {
                    if schema.field_with_name(&k).is_err() {
                        missing.push(k);
                    }
                }
            }
        }
        assert!(missing.is_empty(), "columns missing for {missing:?}");
    }
}
