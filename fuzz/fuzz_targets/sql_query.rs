#![no_main]
//! Untrusted SQL against a small archive, as `POST /api/v1/query/sql` runs it,
//! on a thread with a server worker's 2 MiB stack: rows or a clear error,
//! never a panic or a stack overflow (at most 128 operators reach DataFusion).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use custos::archive::Archive;
use custos::sql::{SqlEngine, SqlLimits};
use ingest::event::EventClass;
use libfuzzer_sys::fuzz_target;

fn archive() -> &'static PathBuf {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("custos-fuzz-sql-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut archive = Archive::open(&dir).expect("archive");
        for i in 0..20u64 {
            let t = 1_800_000_000_000 + i as i64 * 3_600_000;
            let mut e = ingest::Event::new(EventClass::PhysicalAccess, 1, t, t, b"Door CR-1 access granted");
            e.zone = Some(if i % 2 == 0 { "control-room" } else { "cell-1" }.into());
            e.actor_mut().person = Some("alice".into());
            archive.add_event(i, t, &e, None);
        }
        archive.flush().expect("flush");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    let sql = sql.to_owned();
    let dir = archive().clone();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let limits = SqlLimits { timeout: Duration::from_secs(5), max_rows: 100, memory_bytes: 64 << 20 };
            let _ = runtime.block_on(SqlEngine::new(&dir).query(&sql, limits));
        })
        .expect("thread")
        .join()
        .expect("the query does not panic");
});
