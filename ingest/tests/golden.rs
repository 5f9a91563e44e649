//! Golden tests: every file under `fixtures/<format>/` is read as the file tail
//! reads it, normalised against `fixtures/inventory.toml`, and compared with
//! the JSON beside it. `CUSTOS_BLESS=1 cargo test -p ingest --test golden`
//! rewrites the expected files; review the diff before committing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ingest::source::tail::split_records;
use ingest::{Format, Inventory, Normalizer, RawRecord};
use serde_json::Value;

const RECEIVED_AT: i64 = 1_795_687_260_000; // 2026-11-26T10:01:00Z

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Normalises one fixture file; returns the records as JSON.
fn run(format: Format, file: &Path, inventory: &Arc<Inventory>) -> Vec<Value> {
    let bytes = std::fs::read(file).expect("read fixture");
    let mut n = Normalizer::new(inventory.clone(), 0);
    split_records(&bytes, format)
        .into_iter()
        .map(|(header, line)| {
            let mut raw = RawRecord::new("fixture".into(), format, RECEIVED_AT, line.to_vec());
            raw.header = header;
            serde_json::to_value(n.normalize(raw).record).expect("json")
        })
        .collect()
}

#[test]
fn every_fixture_matches_its_golden_file() {
    let inventory = Arc::new(
        Inventory::from_toml(&std::fs::read_to_string(fixtures().join("inventory.toml")).expect("inventory"))
            .expect("valid"),
    );
    let bless = std::env::var_os("CUSTOS_BLESS").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let format = Format::from_name(&name).unwrap_or_else(|| panic!("fixtures/{name} is not a format name"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        for file in files {
            let got = run(format, &file, &inventory);
            let is_bad = file.file_stem().is_some_and(|s| s.to_string_lossy().starts_with("bad"));
            // Valid files parse completely; `bad*` files are all dead letters with a reason.
            for (i, rec) in got.iter().enumerate() {
                let dead = rec["kind"] == "dead_letter";
                if dead != is_bad {
                    failures.push(format!(
                        "{}: record {i} {}: {}",
                        file.display(),
                        if is_bad { "parsed but should not" } else { "is a dead letter" },
                        rec["record"]["reason"]
                    ));
                }
            }
            let expected_path = file.with_extension("json");
            let pretty = serde_json::to_string_pretty(&got).expect("json") + "\n";
            if bless {
                std::fs::write(&expected_path, &pretty).expect("write golden");
            } else {
                match std::fs::read_to_string(&expected_path) {
                    Ok(want) if want == pretty => {}
                    Ok(want) => {
                        let want: Vec<Value> = serde_json::from_str(&want).unwrap_or_default();
                        let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
                        failures.push(format!(
                            "{}: record {at} differs\n  got:  {}\n  want: {}",
                            file.display(),
                            got.get(at).map(Value::to_string).unwrap_or_default(),
                            want.get(at).map(Value::to_string).unwrap_or_default()
                        ));
                    }
                    Err(_) => failures.push(format!("{} is missing: run with CUSTOS_BLESS=1", expected_path.display())),
                }
            }
            checked += got.len();
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 90, "only {checked} fixture records");
}

/// Dead letters keep the exact bytes, including non-UTF-8 ones.
#[test]
fn dead_letters_keep_raw_bytes() {
    let inventory = Arc::new(Inventory::default());
    let got = run(Format::SuricataEve, &fixtures().join("suricata-eve/bad.log"), &inventory);
    let last = got.last().expect("records");
    assert_eq!(last["record"]["raw"]["base64"], "//4gbm90IGpzb24gYXQgYWxs");
}
