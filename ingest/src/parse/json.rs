//! Reading JSON records without building a tree: the top-level object as
//! (name, raw JSON text) pairs borrowed from the line, and typed reads of the
//! few values a mapping needs. Nested objects are kept as text for `unmapped`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::value::RawValue;

/// A JSON string, borrowed from the line unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of a JSON object, in order, values as raw JSON text.
pub type Members<'a> = Vec<(Text<'a>, &'a RawValue)>;

/// The top-level members of a JSON object record, or why it is not one.
pub fn object(text: &str) -> Result<Members<'_>, String> {
    struct Object;
    impl<'de> Visitor<'de> for Object {
        type Value = Members<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
            let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
            while let Some(member) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                members.push(member);
            }
            Ok(members)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match de.deserialize_map(Object).and_then(|m| de.end().map(|()| m)) {
        Ok(members) => Ok(members),
        Err(_) if serde_json::from_str::<IgnoredAny>(text).is_ok() => Err("record is not a JSON object".to_owned()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// A string value (`None` for any other JSON type).
pub fn text<'a>(raw: &'a RawValue) -> Option<Cow<'a, str>> {
    raw.get().starts_with('"').then(|| serde_json::from_str::<Text<'a>>(raw.get()).ok()).flatten().map(|t| t.0)
}

/// A non-negative integer value.
pub fn unsigned(raw: &RawValue) -> Option<u64> {
    raw.get().parse().ok()
}

/// The last member named `name` (JSON leaves duplicates to the reader; the
/// last one wins, as in most parsers).
pub fn member<'a>(members: &[(Text<'a>, &'a RawValue)], name: &str) -> Option<&'a RawValue> {
    members.iter().rev().find(|(k, _)| k.0 == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_borrow_and_keep_order() {
        let m = object(r#"{"b":1,"a\n":"x\"y","o":{"k":[1,2]}}"#).expect("object");
        let names: Vec<&str> = m.iter().map(|(k, _)| k.0.as_ref()).collect();
        assert_eq!(names, ["b", "a\n", "o"]);
        assert!(matches!(m[0].0.0, Cow::Borrowed(_)));
        assert_eq!(unsigned(m[0].1), Some(1));
        assert_eq!(text(m[1].1).as_deref(), Some("x\"y"));
        assert_eq!(text(m[2].1), None);
        assert_eq!(member(&m, "o").map(RawValue::get), Some(r#"{"k":[1,2]}"#));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(object("[1,2]").expect_err("array").contains("not a JSON object"));
        assert!(object("{\"a\":").expect_err("cut").starts_with("not JSON"));
        assert!(object("{} x").expect_err("trailing").starts_with("not JSON"));
    }
}
