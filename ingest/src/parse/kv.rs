//! `key=value` bodies as firewalls write them: values bare or in double quotes,
//! separated by spaces. Shared by the FortiGate parser and others like it.

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
