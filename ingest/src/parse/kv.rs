//! `key=value` bodies as firewalls write them: values bare or in double quotes,
//! separated by spaces. Shared by the FortiGate parser and others like it.

/// FNV-1a: a fast hash for the short field names parsers look up per record
/// (SipHash's flooding resistance buys nothing for keys we look up by name).
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A field map keyed by name, with the fast hasher.
pub type FieldMap<'a> = std::collections::HashMap<&'a str, &'a str, std::hash::BuildHasherDefault<Fnv>>;

/// Splits `k1=v1 k2="v 2" k3=` into pairs, borrowing from the input.
/// Quotes are removed; a backslash escapes a quote inside quotes.
/// Returns `None` when the text is not key=value shaped at all.
pub fn pairs(text: &str) -> Option<Vec<(&str, std::borrow::Cow<'_, str>)>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(32);
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' || i == key_start {
            return None;
        }
        let key = &text[key_start..i];
        i += 1;
        if b.get(i) == Some(&b'"') {
            i += 1;
            let start = i;
            let mut escaped = false;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    escaped = true;
                    i += 1;
                }
                i += 1;
            }
            if i >= b.len() {
                return None;
            }
            let v = &text[start..i];
            let value = if escaped {
                std::borrow::Cow::Owned(v.replace("\\\"", "\"").replace("\\\\", "\\"))
            } else {
                std::borrow::Cow::Borrowed(v)
            };
            out.push((key, value));
            i += 1;
        } else {
            let start = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            out.push((key, std::borrow::Cow::Borrowed(&text[start..i])));
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_and_bare() {
        let p = pairs(r#"a=1 b="two words" c= d="q\"x""#).unwrap_or_default();
        let flat: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        assert_eq!(flat, vec![("a", "1"), ("b", "two words"), ("c", ""), ("d", "q\"x")]);
    }

    #[test]
    fn rejects_non_kv() {
        assert!(pairs("hello world").is_none());
        assert!(pairs("a=\"unterminated").is_none());
        assert!(pairs("").is_none());
    }
}
