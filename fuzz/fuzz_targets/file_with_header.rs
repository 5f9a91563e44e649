#![no_main]
//! Whole untrusted files in the formats whose files carry a header (Zeek TSV,
//! CSV exports): split as the file tail splits them, then parsed with the
//! header each record is read under. Never panics.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else { return };
    let format =
        [ingest::Format::ZeekTsv, ingest::Format::GenetecCsv, ingest::Format::CcureCsv][usize::from(selector) % 3];
    for (header, line) in ingest::source::tail::split_records(file, format) {
        let mut raw = ingest::RawRecord::new("fuzz".into(), format, 1_795_000_000_000, line.to_vec());
        raw.header = header;
        let _ = ingest::normalize(raw, &custos_fuzz::PLANT, 0);
    }
});
