//! `unmapped`: the vendor fields an event's contract has no home for, kept by
//! name in sorted order (the JSON form is a map sorted by key).
//!
//! Parsers fill it for every field of every record, so it is built for speed:
//! names and text values are appended to one string and the fields refer to
//! them by offset. A record's vendor fields cost a few allocations in all,
//! not two per field (measured: a 25-field FortiGate line parses 1.5× faster).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::parse::kv::word8;

/// One vendor field's value: text as the source wrote it, or JSON (numbers,
/// nested objects of JSON sources), as a value or as the source's JSON text.
#[derive(Debug, Clone, Copy)]
pub enum FieldValue<'a> {
    Text(&'a str),
    /// A whole number (syslog facility, ports), kept without a JSON tree.
    Int(i64),
    Json(&'a serde_json::Value),
    /// JSON text kept as read, not built into a tree (EVE's nested objects).
    Raw(&'a RawValue),
}

impl<'a> FieldValue<'a> {
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Self::Text(t) => Some(t),
            Self::Json(v) => v.as_str(),
            Self::Int(_) | Self::Raw(_) => None,
        }
    }

    /// The value as a JSON tree (built for raw JSON text).
    pub fn to_json(&self) -> serde_json::Value {
        match *self {
            Self::Text(t) => t.into(),
            Self::Int(n) => n.into(),
            Self::Json(v) => v.clone(),
            Self::Raw(r) => serde_json::from_str(r.get()).unwrap_or_default(),
        }
    }
}

/// Equal as JSON, whatever form each side is kept in.
impl PartialEq for FieldValue<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Text(a), Self::Text(b)) => a == b,
            (Self::Int(a), Self::Int(b)) => a == b,
            (Self::Json(a), Self::Json(b)) => a == b,
            (Self::Raw(a), Self::Raw(b)) if a.get() == b.get() => true,
            _ => self.to_json() == other.to_json(),
        }
    }
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(t) => s.serialize_str(t),
            Self::Int(n) => s.serialize_i64(*n),
            Self::Json(v) => v.serialize(s),
            // Streamed through the serializer as values, not pasted as text,
            // so that canonical JSON (RFC 8785) still sorts and normalises it.
            Self::Raw(r) => {
                let mut de = serde_json::Deserializer::from_str(r.get());
                serde_transcode::transcode(&mut de, s)
            }
        }
    }
}

/// A value handed to `insert`.
pub enum NewValue<'a> {
    Text(&'a str),
    Owned(String),
    Json(serde_json::Value),
    Raw(&'a RawValue),
}

impl<'a> From<&'a RawValue> for NewValue<'a> {
    fn from(v: &'a RawValue) -> Self {
        Self::Raw(v)
    }
}

impl From<String> for NewValue<'_> {
    fn from(v: String) -> Self {
        Self::Owned(v)
    }
}

impl<'a> From<&'a str> for NewValue<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}
impl<'a> From<std::borrow::Cow<'a, str>> for NewValue<'a> {
    fn from(v: std::borrow::Cow<'a, str>) -> Self {
        match v {
            std::borrow::Cow::Borrowed(t) => Self::Text(t),
            std::borrow::Cow::Owned(t) => Self::Owned(t),
        }
    }
}
impl<'a> From<&'a String> for NewValue<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(v)
    }
}
impl<'a> From<&'a std::borrow::Cow<'a, str>> for NewValue<'a> {
    fn from(v: &'a std::borrow::Cow<'a, str>) -> Self {
        Self::Text(v)
    }
}
impl From<u8> for NewValue<'_> {
    fn from(v: u8) -> Self {
        Self::Json(v.into())
    }
}
impl From<serde_json::Value> for NewValue<'_> {
    fn from(v: serde_json::Value) -> Self {
        Self::Json(v)
    }
}

/// Fields being added to an `Unmapped` under one prefix (`Unmapped::prefixed`);
/// they are sorted into place when this is dropped.
pub struct Prefixed<'u, 'p> {
    unmapped: &'u mut Unmapped,
    prefix: &'p str,
    old: usize,
    /// Sort keys of the fields pushed with `push_keyed`, while all have one.
    keys: [u64; KEYED],
    keyed: bool,
}

/// How many fields a batch sorts by their integer keys.
const KEYED: usize = 32;

impl Prefixed<'_, '_> {
    #[inline]
    pub fn push<'v>(&mut self, name: &str, value: impl Into<NewValue<'v>>) {
        self.keyed = false;
        let entry = self.unmapped.push(self.prefix, name, value.into());
        self.unmapped.fields.push(entry);
    }

    /// `push` with `name`'s sort key: its bytes big-endian in a `u64`,
    /// zero-padded, for names of one to eight bytes; 0 for none. A batch
    /// whose fields all have keys is sorted by comparing integers, not names.
    #[inline]
    pub fn push_keyed<'v>(&mut self, key: u64, name: &str, value: impl Into<NewValue<'v>>) {
        let at = self.unmapped.fields.len() - self.old;
        match self.keys.get_mut(at) {
            Some(k) if key != 0 => *k = key,
            _ => self.keyed = false,
        }
        let entry = self.unmapped.push(self.prefix, name, value.into());
        self.unmapped.fields.push(entry);
    }
}

impl Drop for Prefixed<'_, '_> {
    fn drop(&mut self) {
        let new = &mut self.unmapped.fields[self.old..];
        let sorted = self.keyed && new.len() <= KEYED;
        if sorted {
            // Insertion sort, keys and fields swapped together; stable.
            let keys = &mut self.keys[..new.len()];
            for i in 1..keys.len() {
                let mut j = i;
                while j > 0 && keys[j - 1] > keys[j] {
                    keys.swap(j - 1, j);
                    new.swap(j - 1, j);
                    j -= 1;
                }
            }
        }
        self.unmapped.place_new(self.old, self.prefix, sorted);
    }
}

/// Where a string lives in `Unmapped::text`.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Text(Span),
    /// Small whole numbers, the most common JSON values, need no `json` entry.
    Int(i32),
    /// Index into `Unmapped::json`.
    Json(u32),
    /// JSON text in `Unmapped::text`, checked when it was read.
    Raw(Span),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    name: Span,
    value: Slot,
}

/// Vendor fields by name; names are unique and kept sorted.
#[derive(Debug, Clone, Default)]
pub struct Unmapped {
    text: String,
    fields: Vec<Entry>,
    json: Vec<serde_json::Value>,
}

impl Unmapped {
    /// Room for `fields` fields with `text` bytes of names and values, for
    /// parsers that know roughly how much a record holds before reading it.
    pub fn with_capacity(fields: usize, text: usize) -> Self {
        Self { text: String::with_capacity(text), fields: Vec::with_capacity(fields), json: Vec::new() }
    }

    /// Sets `name` to `value`, replacing an earlier value of that name.
    pub fn insert<'v>(&mut self, name: &str, value: impl Into<NewValue<'v>>) {
        self.insert_prefixed("", name, value);
    }

    /// `insert` of `prefix` + `name` (`fortigate.` + `policyid`).
    pub fn insert_prefixed<'v>(&mut self, prefix: &str, name: &str, value: impl Into<NewValue<'v>>) {
        let entry = self.push(prefix, name, value.into());
        let full = self.str(entry.name);
        match self.fields.binary_search_by(|e| name_cmp(self.str(e.name).as_bytes(), full.as_bytes())) {
            Ok(i) => self.fields[i] = entry,
            Err(i) => self.fields.insert(i, entry),
        }
    }

    /// `insert_prefixed` for many fields at once (see `prefixed`).
    pub fn extend_prefixed<'a, 'v, V: Into<NewValue<'v>>>(
        &mut self,
        prefix: &str,
        fields: impl IntoIterator<Item = (&'a str, V)>,
    ) {
        let fields = fields.into_iter();
        let n = fields.size_hint().0;
        // Growing the text a doubling at a time costs more than the fields.
        self.text.reserve(n * (prefix.len() + 24));
        self.fields.reserve(n);
        let mut batch = self.prefixed(prefix);
        for (name, value) in fields {
            batch.push(name, value);
        }
    }

    /// A batch of fields named `prefix` + name, for a parser's loop over its
    /// fields: they are appended as they come and sorted into place once,
    /// when the batch is dropped, instead of an ordered insert per field.
    pub fn prefixed<'u, 'p>(&'u mut self, prefix: &'p str) -> Prefixed<'u, 'p> {
        let old = self.fields.len();
        Prefixed { unmapped: self, prefix, old, keys: [0; KEYED], keyed: true }
    }

    /// Sorts the fields from `old` on into place (`sorted`: they are sorted
    /// among themselves already); of two fields with one name, the later
    /// replaces the earlier.
    fn place_new(&mut self, old: usize, prefix: &str, sorted: bool) {
        let text = self.text.as_bytes();
        let name = |e: &Entry| name_bytes(text, e.name);
        // Stable sorts, so that of two fields with one name the later stays
        // after the earlier. The new names share the prefix, so they are
        // sorted by what follows it; a sort of sorted runs is one pass.
        let skip = prefix.len();
        let suffix = |e: &Entry| name(e).get(skip..).unwrap_or_default();
        if !sorted {
            self.fields[old..].sort_by(|a, b| name_cmp(suffix(a), suffix(b)));
        }
        if old > 0 {
            self.fields.sort_by(|a, b| name_cmp(name(a), name(b)));
        }
        self.fields.dedup_by(|later, earlier| {
            let same = name(later) == name(earlier);
            if same {
                *earlier = *later;
            }
            same
        });
    }

    pub fn get(&self, name: &str) -> Option<FieldValue<'_>> {
        let i = self.fields.binary_search_by(|e| name_cmp(self.str(e.name).as_bytes(), name.as_bytes())).ok()?;
        Some(self.value(self.fields[i].value))
    }

    /// The text of a field (a JSON string counts as text).
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, FieldValue<'_>)> {
        self.fields.iter().map(|e| (self.str(e.name), self.value(e.value)))
    }

    /// Stores `prefix` + `name` and the value; the caller places the entry.
    /// A replaced field's text stays in `text` until the event is dropped
    /// (replacing is rare: a syslog field a vendor field shadows). Inlined:
    /// its entry came back through memory otherwise, and stalled (measured).
    #[inline]
    fn push(&mut self, prefix: &str, name: &str, value: NewValue<'_>) -> Entry {
        let name = self.append(&[prefix, name]);
        let value = match value {
            NewValue::Text(t) => Slot::Text(self.append(&[t])),
            NewValue::Owned(t) | NewValue::Json(serde_json::Value::String(t)) => Slot::Text(self.append(&[&t])),
            NewValue::Json(serde_json::Value::Number(n)) => match n.as_i64().and_then(|n| i32::try_from(n).ok()) {
                Some(n) => Slot::Int(n),
                None => self.push_json(n.into()),
            },
            NewValue::Json(v) => self.push_json(v),
            NewValue::Raw(r) => Slot::Raw(self.append(&[r.get()])),
        };
        Entry { name, value }
    }

    fn push_json(&mut self, v: serde_json::Value) -> Slot {
        self.json.push(v);
        Slot::Json(index(self.json.len() - 1))
    }

    fn append(&mut self, parts: &[&str]) -> Span {
        let start = index(self.text.len());
        for p in parts {
            self.text.push_str(p);
        }
        Span { start, len: index(self.text.len()) - start }
    }

    fn str(&self, s: Span) -> &str {
        self.text.get(s.range()).unwrap_or_default()
    }

    fn value(&self, slot: Slot) -> FieldValue<'_> {
        match slot {
            Slot::Text(s) => FieldValue::Text(self.str(s)),
            Slot::Int(n) => FieldValue::Int(n.into()),
            Slot::Json(i) => self.json.get(i as usize).map_or(FieldValue::Text(""), FieldValue::Json),
            Slot::Raw(s) => raw_json(self.str(s)),
        }
    }
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// A name's bytes, for comparing (no char boundary checks).
fn name_bytes(text: &[u8], s: Span) -> &[u8] {
    text.get(s.range()).unwrap_or_default()
}

/// `a.cmp(b)` for field names, eight bytes at a time and inlined: names are a
/// few bytes long, and a `memcmp` call per comparison cost more than the
/// comparisons themselves (measured on FortiGate lines).
#[inline]
fn name_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in x.by_ref().zip(y.by_ref()) {
        let (p, q) = (u64::from_be_bytes(word8(p)), u64::from_be_bytes(word8(q)));
        if p != q {
            return p.cmp(&q);
        }
    }
    let done = a.len().min(b.len()) / 8 * 8;
    a[done..].iter().cmp(b[done..].iter())
}

/// `text` (JSON checked when it was stored) as a raw JSON value.
fn raw_json(text: &str) -> FieldValue<'_> {
    // `RawValue` has no unchecked constructor from `&str`; reading it back
    // borrows (no copy) and only re-scans the text.
    serde_json::from_str::<&RawValue>(text).map_or(FieldValue::Text(""), FieldValue::Raw)
}

/// A `u32` offset; one event's vendor text is far below 4 GiB (records are
/// capped well before that by every source).
fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Equal when the fields are, however the text happens to be laid out.
impl PartialEq for Unmapped {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Serialize for Unmapped {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.fields.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Unmapped {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Unmapped;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of vendor field names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unmapped, A::Error> {
                let mut u = Unmapped::default();
                // Appended and sorted once (they are written sorted, so that is one pass).
                let mut batch = u.prefixed("");
                while let Some((k, ValueIn(v))) = map.next_entry::<std::borrow::Cow<'de, str>, ValueIn<'de>>()? {
                    batch.push(&k, v);
                }
                drop(batch);
                Ok(u)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// A vendor field's value as read: text borrowed from the input where it
/// can be, no JSON tree but for nested values. Reading a value as a
/// `serde_json::Value` allocated a string per field, a large part of
/// reading events back from the ledger for search and the archive.
struct ValueIn<'de>(NewValue<'de>);

impl<'de> Deserialize<'de> for ValueIn<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde::de::{Error, SeqAccess};
        use serde_json::Value;

        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = ValueIn<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ValueIn(NewValue::Text(v)))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ValueIn(NewValue::Owned(v.to_owned())))
            }
            fn visit_string<E: Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ValueIn(NewValue::Owned(v)))
            }
            fn visit_bool<E: Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ValueIn(NewValue::Json(v.into())))
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ValueIn(NewValue::Json(v.into())))
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ValueIn(NewValue::Json(v.into())))
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ValueIn(NewValue::Json(v.into())))
            }
            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                Ok(ValueIn(NewValue::Json(Value::Null)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq)).map(|v| ValueIn(NewValue::Json(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(MapAccessDeserializer::new(map)).map(|v| ValueIn(NewValue::Json(v)))
            }
        }
        d.deserialize_any(Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn name_cmp_orders_as_str_does(a in "[a-z._]{0,20}", b in "[a-z._]{0,20}", shared in "[a-z.]{0,12}") {
            let (a, b) = (format!("{shared}{a}"), format!("{shared}{b}"));
            proptest::prop_assert_eq!(name_cmp(a.as_bytes(), b.as_bytes()), a.cmp(&b));
            proptest::prop_assert_eq!(name_cmp(a.as_bytes(), a.as_bytes()), std::cmp::Ordering::Equal);
        }
    }

    #[test]
    fn insert_keeps_names_sorted_and_unique() {
        let mut u = Unmapped::default();
        u.insert("b", "2");
        u.insert_prefixed("a.", "x", "1");
        u.insert("b", "3");
        u.insert("c", 7u8);
        let names: Vec<&str> = u.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["a.x", "b", "c"]);
        assert_eq!(u.get_str("b"), Some("3"));
        assert_eq!(u.get("c"), Some(FieldValue::Int(7)));
        assert_eq!(u.get("c"), Some(FieldValue::Json(&7.into())), "equal as JSON");
        assert!(!u.contains_key("a"));
    }

    #[test]
    fn keyed_batch_matches_inserts() {
        let fields = [("zz", "1"), ("a", "2"), ("zz", "3"), ("m", "4"), ("a_longer_name", "5"), ("ab", "6")];
        let key = |n: &str| if n.len() <= 8 { crate::parse::kv::key_word(n).swap_bytes() } else { 0 };
        for skip_long in [true, false] {
            let mut keyed = Unmapped::default();
            keyed.insert("p.m", "0");
            let mut one = Unmapped::default();
            one.insert("p.m", "0");
            {
                let mut batch = keyed.prefixed("p.");
                for (k, v) in fields.iter().filter(|(k, _)| !(skip_long && k.len() > 8)) {
                    batch.push_keyed(key(k), k, *v);
                    one.insert_prefixed("p.", k, *v);
                }
            }
            assert_eq!(keyed, one, "skip_long {skip_long}");
            assert_eq!(keyed.get_str("p.zz"), Some("3"));
            let names: Vec<&str> = keyed.iter().map(|(k, _)| k).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted);
        }
    }

    #[test]
    fn bulk_build_matches_inserts() {
        let fields = [("z", "1"), ("a", "2"), ("z", "3"), ("m", "4")];
        let mut bulk = Unmapped::default();
        bulk.insert("p.m", "0");
        bulk.insert("q", "5");
        bulk.extend_prefixed("p.", fields);
        let mut one = Unmapped::default();
        one.insert("p.m", "0");
        one.insert("q", "5");
        for (k, v) in fields {
            one.insert_prefixed("p.", k, v);
        }
        assert_eq!(bulk, one);
        let names: Vec<&str> = bulk.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["p.a", "p.m", "p.z", "q"]);
        assert_eq!(bulk.get_str("p.z"), Some("3"));
        assert_eq!(bulk.get_str("p.m"), Some("4"));
    }

    #[test]
    fn reads_every_json_value_borrowed_or_not() {
        let text = r#"{"z":"plain","e":"say \"hi\"","n":-7,"big":18446744073709551615,"f":1.5,"b":true,"nil":null,"arr":[1,"x"],"obj":{"k":{"j":2}},"z":"later"}"#;
        let borrowed: Unmapped = serde_json::from_str(text).expect("reads");
        let streamed: Unmapped = serde_json::from_reader(text.as_bytes()).expect("reads");
        assert_eq!(borrowed, streamed);
        let names: Vec<&str> = borrowed.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["arr", "b", "big", "e", "f", "n", "nil", "obj", "z"]);
        assert_eq!(borrowed.get_str("z"), Some("later"), "the later of a repeated name counts");
        assert_eq!(borrowed.get_str("e"), Some(r#"say "hi""#));
        let json = serde_json::to_value(&borrowed).expect("writes");
        assert_eq!(json["big"], serde_json::json!(18_446_744_073_709_551_615_u64));
        assert_eq!(json["obj"], serde_json::json!({"k": {"j": 2}}));
        assert_eq!(json["arr"], serde_json::json!([1, "x"]));
        assert_eq!(json["nil"], serde_json::Value::Null);
        assert_eq!(json["f"], serde_json::json!(1.5));
    }

    #[test]
    fn json_is_a_sorted_map_and_round_trips() {
        let mut u = Unmapped::default();
        u.insert("n", 5u8);
        u.insert("s", serde_json::json!("text"));
        u.insert("obj", serde_json::json!({"k": [1, 2]}));
        let json = serde_json::to_string(&u).unwrap_or_default();
        assert_eq!(json, r#"{"n":5,"obj":{"k":[1,2]},"s":"text"}"#);
        let back: Unmapped = serde_json::from_str(r#"{"s":"text","obj":{"k":[1,2]},"n":5}"#).expect("parses");
        assert_eq!(back, u);
        assert_eq!(back.get_str("s"), Some("text"));
    }
}
