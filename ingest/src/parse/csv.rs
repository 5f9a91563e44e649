//! Delimited fields as firewalls and badge exports write them: a field may be
//! double-quoted, may then contain the delimiter, and `""` is a quote inside.

use std::borrow::Cow;

/// Splits one line into fields. Returns `None` for an unterminated quote.
pub fn split(line: &str, delim: u8) -> Option<Vec<Cow<'_, str>>> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(64);
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut j = start;
            let mut escaped = false;
            loop {
                match b.get(j) {
                    None => return None,
                    Some(b'"') if b.get(j + 1) == Some(&b'"') => {
                        escaped = true;
                        j += 2;
                    }
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            let raw = &line[start..j];
            out.push(if escaped { Cow::Owned(raw.replace("\"\"", "\"")) } else { Cow::Borrowed(raw) });
            i = j + 1;
            match b.get(i) {
                None => return Some(out),
                Some(c) if *c == delim => i += 1,
                // Text after a closing quote: keep it, as exporters are not always strict.
                Some(_) => {
                    let end = b[i..].iter().position(|c| *c == delim).map_or(b.len(), |p| i + p);
                    if let Some(last) = out.last_mut() {
                        *last = Cow::Owned(format!("{last}{}", &line[i..end]));
                    }
                    if end == b.len() {
                        return Some(out);
                    }
                    i = end + 1;
                }
            }
        } else {
            let end = b[i..].iter().position(|c| *c == delim).map_or(b.len(), |p| i + p);
            out.push(Cow::Borrowed(&line[i..end]));
            if end == b.len() {
                return Some(out);
            }
            i = end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_with_delimiters_and_quotes() {
        let f = split(r#"a,"b,c",,"say ""hi""",e"#, b',').unwrap_or_default();
        assert_eq!(f, vec!["a", "b,c", "", "say \"hi\"", "e"]);
        assert_eq!(split("x;y", b';').unwrap_or_default(), vec!["x", "y"]);
        assert_eq!(split("trailing,", b',').unwrap_or_default(), vec!["trailing", ""]);
        assert!(split("\"open", b',').is_none());
    }
}
