#![no_main]
//! Untrusted search requests (`q`, then a cursor, facets and `oldest` on the next lines)
//! against a small index, on a thread with a server worker's 2 MiB stack: a
//! page or a clear query error, never a panic or a stack overflow.

use std::sync::OnceLock;

use custos::search::{Cursor, SearchIndex, SearchRequest, Searcher};
use ingest::event::EventClass;
use libfuzzer_sys::fuzz_target;

fn searcher() -> &'static Searcher {
    static SEARCHER: OnceLock<Searcher> = OnceLock::new();
    SEARCHER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("custos-fuzz-search-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut index = SearchIndex::open(&dir).expect("index");
        for (i, raw) in ["login user=alice host=ews-1", "Door CR-1 access denied badge 4711", "write coil 7"]
            .into_iter()
            .enumerate()
        {
            let t = 1_800_000_000_000 + i as i64;
            let mut e = ingest::Event::new(EventClass::Authentication, 1, t, t, raw.as_bytes());
            e.zone = Some("control-room".into());
            e.message = raw.into();
            e.src_mut().ip = "10.0.0.7".parse().ok();
            index.add_event(i as u64, &e).expect("add");
        }
        index.commit().expect("commit");
        index.searcher()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines: Vec<&str> = text.splitn(4, '\n').collect();
    let q = lines[0].to_owned();
    let oldest_first = lines.get(3) == Some(&"oldest");
    let cursor = match lines.get(1).filter(|c| !c.is_empty()).map(|c| Cursor::parse(c, oldest_first)) {
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return,
        None => None,
    };
    let facets = lines.get(2).map(|f| f.split(',').map(|s| (*s).to_owned()).collect()).unwrap_or_default();
    let request = SearchRequest { q, cursor, facets, oldest_first, limit: 5, ..Default::default() };
    let searcher = searcher().clone();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = searcher.search(&request);
        })
        .expect("thread")
        .join()
        .expect("the search does not panic");
});
