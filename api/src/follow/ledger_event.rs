//! An event read back from the ledger with its vendor fields left as text.
//!
//! Search does not index `unmapped`, and the archive stores it as one JSON
//! text column. Decoding it into fields only to write them out again was 39%
//! of the follower's and the archive's work on parsed plant records (a
//! FortiGate traffic log has 24 vendor fields), so the follower takes the
//! ledger's own JSON text of it instead: the canonical (RFC 8785) form that
//! the evidence holds, byte for byte.

use std::borrow::Cow;
use std::fmt;

use ingest::Event;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};
use serde_json::value::RawValue;

/// The key whose value is set aside.
const ASIDE: &str = "unmapped";

/// An event whose `unmapped` is empty, with that field's JSON text beside it.
pub struct LedgerEvent {
    pub event: Event,
    /// `unmapped` as the ledger holds it; `None` when the event has none.
    pub unmapped: Option<Box<str>>,
}

impl<'de> Deserialize<'de> for LedgerEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut unmapped = None;
        let event = Event::deserialize(Aside { inner: d, unmapped: &mut unmapped })?;
        Ok(Self { event, unmapped })
    }
}

/// A deserializer that hands an object to its visitor without the
/// [`ASIDE`] entry, keeping that entry's text. Only structs and maps are
/// wrapped: an event is one, and anything else fails as it would have.
struct Aside<'s, D> {
    inner: D,
    unmapped: &'s mut Option<Box<str>>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Aside<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(AsideVisitor { visitor, unmapped: self.unmapped })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct enum identifier ignored_any
    }
}

struct AsideVisitor<'s, V> {
    visitor: V,
    unmapped: &'s mut Option<Box<str>>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for AsideVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(AsideMap { map, unmapped: self.unmapped })
    }
}

struct AsideMap<'s, A> {
    map: A,
    unmapped: &'s mut Option<Box<str>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for AsideMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<Cow<'de, str>>()? else { return Ok(None) };
            if key == ASIDE {
                let text: &RawValue = self.map.next_value()?;
                if !text.get().starts_with('{') {
                    return Err(de::Error::custom("unmapped: expected a map of vendor fields"));
                }
                *self.unmapped = Some(text.get().into());
                continue;
            }
            return match key {
                Cow::Borrowed(k) => seed.deserialize(de::value::BorrowedStrDeserializer::new(k)),
                Cow::Owned(k) => seed.deserialize(de::value::StringDeserializer::new(k)),
            }
            .map(Some);
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest::event::EventClass;
    use ledger::record::Record;

    fn event_with(unmapped: &[(&str, &str)]) -> Event {
        let mut e =
            Event::new(EventClass::NetworkActivity, 6, 1_700_000_000_000, 1_700_000_000_001, b"a \"quoted\" line");
        e.message = "forward traffic".into();
        e.zone = Some("cell-1".into());
        for (k, v) in unmapped {
            e.unmapped.insert(k, *v);
        }
        e
    }

    fn read(e: &Event) -> (Record<LedgerEvent>, Vec<u8>) {
        let bytes = ledger::record::encode(ledger::RecordKind::Event, 7, e).expect("encode");
        (serde_json::from_slice(&bytes).expect("read back"), bytes)
    }

    #[test]
    fn unmapped_is_set_aside_as_the_ledgers_text_and_the_rest_read_as_usual() {
        let e = event_with(&[("fortigate.policyid", "12"), ("fortigate.vd", "root"), ("fortigate.msg", "tab\there")]);
        let (r, bytes) = read(&e);
        let text = r.data.unmapped.expect("unmapped kept");
        // The very bytes the ledger holds …
        assert!(String::from_utf8(bytes).expect("utf-8").contains(&format!("\"unmapped\":{text}")));
        // … of the same fields.
        let expected = serde_json::to_value(&e.unmapped).expect("json");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).expect("json"), expected);
        let mut rest = e.clone();
        rest.unmapped = Default::default();
        assert_eq!(r.data.event, rest);
        assert_eq!(r.recorded_at, 7);
    }

    /// Every event the parsers' golden files hold (vendor fields of every
    /// format: nested JSON, escapes, non-ASCII) reads back the same both ways.
    #[test]
    fn every_golden_event_reads_back_the_same_with_vendor_fields_aside() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/fixtures");
        let (mut events, mut with_vendor_fields) = (0, 0);
        for dir in std::fs::read_dir(&fixtures).expect("fixtures") {
            for file in std::fs::read_dir(dir.expect("entry").path()).into_iter().flatten() {
                let path = file.expect("entry").path();
                if path.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                let items: Vec<serde_json::Value> =
                    serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("golden json");
                for item in items.into_iter().filter(|i| i["kind"] == "event") {
                    let e: Event = serde_json::from_value(item["record"].clone()).expect("golden event");
                    let (r, bytes) = read(&e);
                    let mut rest = e.clone();
                    rest.unmapped = Default::default();
                    assert_eq!(r.data.event, rest, "{}", path.display());
                    match r.data.unmapped {
                        Some(text) => {
                            with_vendor_fields += 1;
                            assert!(String::from_utf8_lossy(&bytes).contains(&format!("\"unmapped\":{text}")));
                            let back: serde_json::Value = serde_json::from_str(&text).expect("json");
                            assert_eq!(back, serde_json::to_value(&e.unmapped).expect("json"), "{}", path.display());
                        }
                        None => assert!(e.unmapped.is_empty(), "{}", path.display()),
                    }
                    events += 1;
                }
            }
        }
        assert!(events >= 60 && with_vendor_fields >= 50, "{events} events, {with_vendor_fields} with vendor fields");
    }

    #[test]
    fn an_event_without_vendor_fields_has_none() {
        let e = event_with(&[]);
        let (r, _) = read(&e);
        assert!(r.data.unmapped.is_none());
        assert_eq!(r.data.event, e);
    }

    #[test]
    fn what_is_not_an_event_still_fails() {
        for text in [
            r#"{"kind":"event","recorded_at":1,"data":[1,2]}"#,
            r#"{"kind":"event","recorded_at":1,"data":{"unmapped":{}}}"#,
            r#"{"kind":"event","recorded_at":1,"data":{"unmapped":null}}"#,
        ] {
            assert!(serde_json::from_str::<Record<LedgerEvent>>(text).is_err(), "{text}");
        }
    }
}
