//! `key=value` bodies as firewalls write them: values bare or in double quotes,
//! separated by spaces. Shared by the FortiGate parser and others like it.

use std::borrow::Cow;

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

/// Where the first `x` or `y` is in `b`, eight bytes at a time (SWAR).
/// Fields are a few bytes apart: too close for SIMD searches to pay for their
/// set-up, too far apart for a byte loop to be cheap (both measured).
pub fn find2(b: &[u8], x: u8, y: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // High bit set in each byte of `w` that is zero (exact for the lowest one).
    let zero_bytes = |w: u64| w.wrapping_sub(LO) & !w & HI;
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for chunk in words.by_ref() {
        let w = u64::from_le_bytes(word8(chunk));
        let hits = zero_bytes(w ^ (LO * u64::from(x))) | zero_bytes(w ^ (LO * u64::from(y)));
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words.remainder().iter().position(|c| *c == x || *c == y).map(|n| at + n)
}

/// A key of one to eight bytes as one number (its bytes little-endian), so
/// that a parser can look up many field names in one integer `match`
/// instead of comparing strings one after another; 0 for longer keys.
pub const fn key_word(key: &str) -> u64 {
    let b = key.as_bytes();
    if b.len() > 8 {
        return 0;
    }
    let mut w = 0u64;
    let mut i = 0;
    while i < b.len() {
        w |= (b[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// One `key=value` pair: `word` is `key_word(key)`; `value` is as written
/// between the quotes, `escaped` when it holds backslash escapes (see `value`).
pub struct Pair<'a> {
    pub word: u64,
    pub key: &'a str,
    pub value: &'a str,
    pub escaped: bool,
}

impl<'a> Pair<'a> {
    /// The value with `\"` and `\\` unescaped.
    pub fn value(&self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(self.value.replace("\\\"", "\"").replace("\\\\", "\\"))
        } else {
            Cow::Borrowed(self.value)
        }
    }
}

/// The `k1=v1 k2="v 2" k3=` pairs of a body, borrowing from it, in order.
/// Quotes are removed; a backslash escapes a quote inside quotes. Iteration
/// stops at the first text that is not key=value shaped, and `malformed` says so.
pub struct Pairs<'a> {
    text: &'a str,
    at: usize,
    malformed: bool,
}

impl<'a> Pairs<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text, at: 0, malformed: text.trim().is_empty() }
    }

    /// Did the body stop being key=value shaped (or was it empty)?
    pub fn malformed(&self) -> bool {
        self.malformed
    }

    #[inline]
    fn next_pair(&mut self) -> Option<Pair<'a>> {
        let (text, b) = (self.text, self.text.as_bytes());
        let mut i = self.at;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        if i >= b.len() {
            self.at = i;
            return None;
        }
        let key_end = i + find2(&b[i..], b'=', b' ')?;
        if b[key_end] != b'=' || key_end == i {
            return None;
        }
        let key = &text[i..key_end];
        // One load where eight bytes follow the key's start (all but a body's last key).
        let word = match (key.len(), b.get(i..i + 8)) {
            (1..=7, Some(w)) => u64::from_le_bytes(word8(w)) & ((1 << (8 * key.len())) - 1),
            (8, Some(w)) => u64::from_le_bytes(word8(w)),
            _ => key_word(key),
        };
        i = key_end + 1;
        if b.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut end = start;
            let mut escaped = false;
            loop {
                end += find2(b.get(end..)?, b'"', b'\\')?;
                if b[end] == b'"' {
                    break;
                }
                escaped = true;
                end += 2;
            }
            self.at = end + 1;
            Some(Pair { word, key, value: &text[start..end], escaped })
        } else {
            let end = find2(&b[i..], b' ', b' ').map_or(b.len(), |n| i + n);
            self.at = end;
            Some(Pair { word, key, value: &text[i..end], escaped: false })
        }
    }
}

/// Eight bytes as an array. `copy_from_slice`, not `try_into`: the latter
/// measured 5% slower on FortiGate lines as compiled.
pub(crate) fn word8(b: &[u8]) -> [u8; 8] {
    let mut w = [0; 8];
    w.copy_from_slice(b);
    w
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Pair<'a>;

    // Inlined into the parser's loop: returned through memory, a pair cost a
    // store-forwarding stall each (measured).
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.malformed {
            return None;
        }
        let pair = self.next_pair();
        if pair.is_none() && self.at < self.text.len() {
            self.malformed = true;
        }
        pair
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Option<Vec<(String, String)>> {
        let mut it = Pairs::new(text);
        let out = it
            .by_ref()
            .map(|p| {
                assert_eq!(p.word, key_word(p.key), "{}", p.key);
                (p.key.to_owned(), p.value().into_owned())
            })
            .collect();
        (!it.malformed()).then_some(out)
    }

    #[test]
    fn splits_quoted_and_bare() {
        let flat = pairs(r#"a=1 b="two words" c= d="q\"x" eightchr=8 ninechars=9 last=z  "#).unwrap_or_default();
        let flat: Vec<(&str, &str)> = flat.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            flat,
            vec![
                ("a", "1"),
                ("b", "two words"),
                ("c", ""),
                ("d", "q\"x"),
                ("eightchr", "8"),
                ("ninechars", "9"),
                ("last", "z")
            ]
        );
        assert_eq!(key_word("ninechars"), 0);
        assert_eq!(key_word("ab"), u64::from(b'a') | u64::from(b'b') << 8);
    }

    #[test]
    fn find2_agrees_with_a_byte_loop() {
        let text = b"abc=def ghi\"jk=l mnopqrstuvwxyz=0123456789 \\\"";
        for start in 0..text.len() {
            for (x, y) in [(b'=', b' '), (b'"', b'\\'), (b' ', b' '), (b'z', b'\0')] {
                let expect = text[start..].iter().position(|c| *c == x || *c == y);
                assert_eq!(find2(&text[start..], x, y), expect, "{start} {x} {y}");
            }
        }
    }

    #[test]
    fn rejects_non_kv() {
        assert!(pairs("hello world").is_none());
        assert!(pairs("a=1 trailing").is_none());
        assert!(pairs("a=\"unterminated").is_none());
        assert!(pairs("a=\"ends in a backslash\\").is_none());
        assert!(pairs("").is_none());
        assert!(pairs("   ").is_none());
    }
}
