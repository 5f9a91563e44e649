#![no_main]
//! What `custos probe` reads: its URL (the first line) and the answer of
//! whatever listens there (the rest). Never a panic; a URL it takes writes
//! back to one it takes the same way, with a path that cannot split the
//! request line; an answer it takes has a real status code.

use custos::health::{ProbeUrl, read_answer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (url, answer) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(url) = std::str::from_utf8(url)
        && let Ok(parsed) = ProbeUrl::parse(url)
    {
        assert!(parsed.path.starts_with('/'), "{parsed:?}");
        let head = format!("{}{}", parsed.host, parsed.path);
        assert!(!head.chars().any(|c| c.is_ascii_control() || c == ' '), "{parsed:?}");
        assert!(parsed.port != 0 && !parsed.host.is_empty(), "{parsed:?}");
        let host = if parsed.host.contains(':') { format!("[{}]", parsed.host) } else { parsed.host.clone() };
        let again = format!("http://{host}:{}{}", parsed.port, parsed.path);
        assert_eq!(ProbeUrl::parse(&again).as_ref(), Ok(&parsed), "{again}");
    }
    if let Ok(a) = read_answer(answer) {
        assert!((100..=599).contains(&a.status), "{a:?}");
    }
});
