//! Ledger behaviour through its public API: durability across reopen, torn
//! tails, key rotation, and tamper detection by the offline verifier.

use std::path::Path;

use ledger::{Ledger, LedgerOptions, NoteSigner, RecordKind, for_each_record, record, verify_dir};
use proptest::prelude::*;

const ORIGIN: &str = "custos.test/ledger";

fn records(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            record::encode(
                RecordKind::Audit,
                i as i64,
                &serde_json::json!({"what": format!("{tag}-{i}"), "pad": "x".repeat(i % 50)}),
            )
            .unwrap_or_default()
        })
        .collect()
}

/// The files of `dir`, by name.
fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("dir").filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    files
}

fn checkpoint_count(dir: &Path) -> u64 {
    ledger::for_each_checkpoint_note(dir, |_| Ok(())).expect("notes")
}

fn all_records(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for_each_record(dir, |_, r| out.push(r.to_vec())).expect("scan");
    out
}

async fn write(dir: &Path, signer: NoteSigner, batches: &[Vec<Vec<u8>>]) -> u64 {
    let (l, _) = Ledger::open(dir, ORIGIN, signer, LedgerOptions { segment_bytes: 2048, ..LedgerOptions::default() })
        .expect("open");
    for b in batches {
        let range = l.append(b.clone()).await.expect("append");
        assert_eq!(range.end - range.start, b.len() as u64);
    }
    l.close().await.expect("close");
    l.size()
}

/// Records read in a batch are exactly those read one by one, in index
/// order, each once: runs near each other and far apart, groups of 16 that
/// span segments (of 2 KiB here), duplicates and any order asked for.
#[tokio::test]
async fn records_read_in_a_batch_are_those_read_one_by_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    let size = write(dir.path(), NoteSigner::parse(&key).expect("key"), &[records(300, "a")]).await;
    let (l, _) = Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), LedgerOptions::default())
        .expect("open");
    let mut lcg = 7u64;
    let scattered: Vec<u64> = (0..60)
        .map(|_| {
            lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (lcg >> 33) % size
        })
        .collect();
    let sets: Vec<Vec<u64>> = vec![
        (0..size).collect(),
        (0..size).step_by(15).collect(),
        (0..size).step_by(16).collect(),
        (3..size).step_by(17).collect::<Vec<u64>>().into_iter().rev().collect(),
        scattered,
        vec![size - 1, 0, size - 1],
        vec![],
    ];
    for set in sets {
        let mut got = Vec::new();
        l.records_at(&set, |i, bytes| got.push((i, bytes))).expect("batch");
        let mut want: Vec<u64> = set.clone();
        want.sort_unstable();
        want.dedup();
        let want: Vec<(u64, Vec<u8>)> = want.into_iter().map(|i| (i, l.record(i).expect("record"))).collect();
        assert_eq!(got, want, "{set:?}");
    }
    assert!(l.records_at(&[1, size], |_, _| {}).is_err(), "past the end");
}

#[tokio::test]
async fn appends_survive_reopen_and_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    let n1 = write(dir.path(), NoteSigner::parse(&key).expect("key"), &[records(10, "a"), records(30, "b")]).await;
    assert_eq!(n1, 41, "key record + 40");
    let n2 = write(dir.path(), NoteSigner::parse(&key).expect("key"), &[records(5, "c")]).await;
    assert_eq!(n2, 46, "indices continue after reopen");
    let report = verify_dir(dir.path(), None).expect("verifies");
    assert_eq!(report.records, 46);
    assert_eq!(report.unsigned_tail(), 0);
    assert!(std::fs::read_dir(dir.path().join("segments")).expect("segments").count() > 1, "segments rolled");
    let got = all_records(dir.path());
    assert_eq!(got[1..41], [records(10, "a"), records(30, "b")].concat()[..]);
}

#[tokio::test]
async fn torn_tail_is_truncated_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    write(dir.path(), NoteSigner::parse(&key).expect("key"), &[records(3, "a")]).await;
    let last = std::fs::read_dir(dir.path().join("segments"))
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .max()
        .expect("segment");
    // A crash mid-write: half a frame header and some payload.
    let mut f = std::fs::OpenOptions::new().append(true).open(&last).expect("open");
    std::io::Write::write_all(&mut f, &[200, 0, 0, 0, 1, 2]).expect("write");
    drop(f);
    assert!(verify_dir(dir.path(), None).is_err(), "the verifier reports a torn tail");
    let (l, report) = Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), LedgerOptions::default())
        .expect("reopen");
    assert_eq!(report.truncated_bytes, 6);
    assert_eq!(l.size(), 4);
    l.close().await.expect("close");
    verify_dir(dir.path(), None).expect("verifies after recovery");
}

#[tokio::test]
async fn key_rotation_keeps_history_verifiable() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), NoteSigner::generate(ORIGIN).expect("key"), &[records(3, "a")]).await;
    let (l, report) =
        Ledger::open(dir.path(), ORIGIN, NoteSigner::generate(ORIGIN).expect("key"), LedgerOptions::default())
            .expect("reopen");
    assert!(report.introduced_key.is_some(), "a new key is introduced by a key record");
    l.append(records(2, "b")).await.expect("append");
    l.close().await.expect("close");
    let r = verify_dir(dir.path(), None).expect("verifies");
    assert_eq!(r.keys.len(), 2);
    assert_eq!(r.kinds.get("key"), Some(&2));
}

#[tokio::test]
async fn every_byte_flip_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), NoteSigner::generate(ORIGIN).expect("key"), &[records(4, "a"), records(4, "b")]).await;
    verify_dir(dir.path(), None).expect("intact");
    let mut files = vec![dir.path().join("keys.vkey")];
    files.extend(files_in(&dir.path().join("checkpoints")));
    files.extend(files_in(&dir.path().join("segments")));
    let mut checked = 0;
    for file in files {
        let original = std::fs::read(&file).expect("read");
        let stride = (original.len() / 120).max(1);
        for pos in (0..original.len()).step_by(stride) {
            for flip in [0x01u8, 0x80] {
                let mut bytes = original.clone();
                bytes[pos] ^= flip;
                std::fs::write(&file, &bytes).expect("write");
                let result = verify_dir(dir.path(), None);
                assert!(result.is_err(), "flipping bit {flip:#x} of byte {pos} in {} went unnoticed", file.display());
                checked += 1;
            }
        }
        std::fs::write(&file, &original).expect("restore");
    }
    assert!(checked > 300, "checked {checked} flips");
    verify_dir(dir.path(), None).expect("intact again");
}

#[tokio::test]
async fn a_foreign_trusted_key_rejects_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), NoteSigner::generate(ORIGIN).expect("key"), &[records(2, "a")]).await;
    let stranger = NoteSigner::generate(ORIGIN).expect("key").verifier();
    let err = verify_dir(dir.path(), Some(&[stranger])).expect_err("untrusted");
    assert!(err.to_string().contains("no signature by a known key"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    /// Model: the ledger holds exactly the concatenation of what was appended,
    /// across any pattern of batches and reopenings, and always verifies.
    #[test]
    fn matches_a_vector_model(sessions in proptest::collection::vec(proptest::collection::vec(0usize..20, 0..4), 1..4)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = NoteSigner::generate(ORIGIN).expect("key").encode();
        let mut model: Vec<Vec<u8>> = Vec::new();
        for (s, batches) in sessions.iter().enumerate() {
            let batches: Vec<Vec<Vec<u8>>> = batches.iter().enumerate().map(|(b, n)| records(*n, &format!("{s}-{b}"))).collect();
            rt.block_on(write(dir.path(), NoteSigner::parse(&key).expect("key"), &batches));
            model.extend(batches.into_iter().flatten());
        }
        let got = all_records(dir.path());
        prop_assert_eq!(&got[1..], &model[..]);
        let report = verify_dir(dir.path(), None).expect("verifies");
        prop_assert_eq!(report.records, model.len() as u64 + 1);
    }
}

/// Proofs served from the stored tree hashes (and records read back through
/// the index) agree with proofs over all leaf hashes in memory, verify against
/// the roots, and survive a reopen — across many segments.
#[tokio::test]
async fn proofs_from_stored_hashes_match_and_verify() {
    use ledger::merkle::{
        consistency_proof_over, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    let open = || {
        Ledger::open(
            dir.path(),
            ORIGIN,
            NoteSigner::parse(&key).expect("key"),
            LedgerOptions { segment_bytes: 4096, ..LedgerOptions::default() },
        )
        .expect("open")
        .0
    };
    let l = open();
    for b in 0..12 {
        l.append(records(37 + b * 11, &format!("g{b}"))).await.expect("append");
    }
    let check = |l: &Ledger| {
        let all = all_records(dir.path());
        let leaves: Vec<_> = all.iter().map(|r| leaf_hash(r)).collect();
        let n = leaves.len() as u64;
        for size in [1, 15, 16, 17, 255, 256, 257, n / 2, n - 1, n] {
            let r = root(&leaves[..size as usize]);
            for index in [0, size / 3, size.saturating_sub(16), size - 1] {
                let p = l.inclusion_proof(index, size).expect("proof");
                assert_eq!(
                    Some(&p),
                    inclusion_proof(&leaves[..size as usize], index as usize).as_ref(),
                    "{index} in {size}"
                );
                assert!(verify_inclusion(index, size, &leaves[index as usize], &p, &r));
                assert_eq!(l.record(index).expect("record"), all[index as usize]);
            }
            assert_eq!(l.root_at(size).expect("root"), r, "root of {size}");
            let c = l.consistency_proof(size, n).expect("consistency");
            assert_eq!(Some(&c), consistency_proof_over(&leaves, size, n).as_ref());
            assert!(verify_consistency(size, n, &c, &r, &root(&leaves)));
        }
        // Range reads (what the search index and archive follow) cross segments.
        for (start, end) in [(0, n), (5, 6), (15, 4200.min(n)), (n - 3, n)] {
            let mut got = Vec::new();
            l.read_range(start, end, |i, r| got.push((i, r))).expect("read range");
            let want: Vec<_> = (start..end).map(|i| (i, all[i as usize].clone())).collect();
            assert_eq!(got, want, "{start}..{end}");
        }
        assert!(l.read_range(n - 1, n + 1, |_, _| {}).is_err(), "beyond the ledger");
        assert_eq!(l.root_at(0).expect("empty"), ledger::merkle::empty_root());
        assert!(l.root_at(n + 1).is_err(), "size beyond the ledger");
        assert!(l.inclusion_proof(n, n).is_err(), "index >= size");
        assert!(l.inclusion_proof(0, n + 1).is_err(), "size beyond the ledger");
        assert!(l.record(n).is_err());
    };
    check(&l);
    l.close().await.expect("close");
    drop(l);
    assert!(std::fs::read_dir(dir.path().join("segments")).expect("segments").count() > 10, "many segments");
    let l = open();
    check(&l);
    // A snapshot's batch of proofs (one memo for all) equals the writer's, one by one.
    let snap = l.snapshot().expect("snapshot");
    let n = snap.size();
    for size in [1, 17, 256, n / 2 + 5, n] {
        let indices: Vec<u64> = (0..size).chain([0, size - 1, size / 2]).collect();
        let batch = snap.inclusion_proofs(&indices, size).expect("proofs");
        for (i, p) in indices.iter().zip(&batch) {
            assert_eq!(p, &l.inclusion_proof(*i, size).expect("proof"), "{i} in {size}");
        }
    }
    assert!(snap.inclusion_proofs(&[n], n).is_err(), "index >= size");
    l.close().await.expect("close");
}

/// A bundle exported by an earlier version (the fuzz seed, written by the
/// tar crate's builder) still verifies: the archive is rebuilt and compared
/// byte for byte, so its one byte form has not changed.
#[test]
fn a_bundle_exported_before_still_verifies() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/evidence_bundle/export-one-record.tar");
    let bytes = std::fs::read(&path).expect("seed bundle");
    let report = ledger::verify_bundle(&bytes, None).expect("verifies");
    assert_eq!(report.records, 1);
}

/// An evidence bundle verifies offline and fails after a change to any byte.
#[tokio::test]
async fn evidence_bundle_verifies_and_every_change_fails() {
    use ledger::{BundleWriter, verify_bundle};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    write(dir.path(), NoteSigner::parse(&key).expect("key"), &[records(30, "a"), records(25, "b")]).await;
    let (reopened, _) =
        Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), LedgerOptions::default())
            .expect("open");
    let snap = reopened.snapshot().expect("snapshot");
    let (note, cp) = snap.latest_checkpoint().expect("signed");
    assert_eq!(cp.size, snap.size());
    let indices = [1u64, 7, 30, 54];
    let proofs = snap.inclusion_proofs(&indices, cp.size).expect("proofs");
    let signer = NoteSigner::parse(&key).expect("key");
    let mut bundle = BundleWriter::begin(std::io::Cursor::new(Vec::new()), &note, snap.keys(), &signer).expect("begin");
    for (i, proof) in indices.iter().zip(proofs) {
        let text = String::from_utf8(snap.record(*i).expect("record")).expect("utf-8");
        bundle.record(*i, &text, &proof).expect("record");
    }
    let selection = serde_json::json!({"indices": [1, 7, 30, 54]});
    let bytes = bundle.finish(&selection, "<html><body>4 records</body></html>").expect("bundle").into_inner();
    let report = verify_bundle(&bytes, None).expect("verifies");
    assert_eq!((report.records, report.tree_size), (4, 56));
    assert_eq!(report.kinds.get("audit"), Some(&4));
    // A pinned key that did not sign it is refused.
    let other = NoteSigner::generate(ORIGIN).expect("key").verifier();
    assert!(verify_bundle(&bytes, Some(&[other])).is_err());
    // Every byte matters: headers, contents, padding.
    let mut caught = 0;
    for at in (0..bytes.len()).step_by((bytes.len() / 400).max(1)) {
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        assert!(verify_bundle(&b, None).is_err(), "a change at byte {at} of {} went unnoticed", bytes.len());
        caught += 1;
    }
    assert!(caught >= 300, "{caught} positions");
    assert!(verify_bundle(&bytes[..bytes.len() - 1], None).is_err(), "a cut bundle");
    let longer = [bytes.as_slice(), &[0u8; 512]].concat();
    let err = verify_bundle(&longer, None).expect_err("bytes after the end").to_string();
    assert!(err.contains("canonical form"), "{err}");
    // A changed record is reported as a change, not as the proof it breaks.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text.find("\"record_text\"").expect("a record line") + 20;
    let mut changed = bytes.clone();
    changed[at] ^= 0x01;
    let err = verify_bundle(&changed, None).expect_err("changed").to_string();
    assert!(err.contains("records.jsonl has changed since the bundle was made"), "{err}");
    // A bundle made with a wrong proof, its manifest signed over it, names the record.
    let mut bad = BundleWriter::begin(std::io::Cursor::new(Vec::new()), &note, snap.keys(), &signer).expect("begin");
    let text = String::from_utf8(snap.record(7).expect("record")).expect("utf-8");
    let wrong = snap.inclusion_proofs(&[8], cp.size).expect("proof").remove(0);
    bad.record(7, &text, &wrong).expect("record");
    let bad = bad.finish(&selection, "").expect("bundle").into_inner();
    let err = verify_bundle(&bad, None).expect_err("wrong proof").to_string();
    assert!(err.contains("at index 7") && err.contains("inclusion proof fails"), "{err}");
}

/// One writer at a time: a second open of the same ledger is refused while
/// the first is alive, and allowed once it is gone.
#[tokio::test]
async fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    let open = || Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), LedgerOptions::default());
    let (first, _) = open().expect("first");
    let err = open().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("open in another process"), "{err}");
    first.close().await.expect("close");
    drop(first);
    let (again, _) = open().expect("after the first is gone");
    again.close().await.expect("close");
}

/// Opening checks the records against the newest signed checkpoint, whose
/// root binds every record below it: a record changed under an older
/// checkpoint, its frame's CRC made to match, is refused.
#[tokio::test]
async fn opening_refuses_records_that_no_longer_match_an_older_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    let opts = LedgerOptions { checkpoint_interval: std::time::Duration::ZERO, ..LedgerOptions::default() };
    let (l, _) = Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), opts.clone()).expect("open");
    // Enough records in one segment for opening to hash them on every core.
    for batch in [records(3, "a"), records(6000, "many"), records(3, "b"), records(3, "c")] {
        l.append(batch).await.expect("append");
    }
    l.close().await.expect("close");
    drop(l);
    assert!(checkpoint_count(dir.path()) >= 5, "a checkpoint per append");
    let (l, _) = Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), opts.clone()).expect("open");
    let leaves: Vec<_> = all_records(dir.path()).iter().map(|r| ledger::merkle::leaf_hash(r)).collect();
    assert_eq!(l.root_at(l.size()).expect("root"), ledger::merkle::root(&leaves), "the tree rebuilt on open");
    assert_eq!(l.size(), 6010);
    l.close().await.expect("close");
    drop(l);
    let segment = std::fs::read_dir(dir.path().join("segments")).expect("dir").filter_map(Result::ok).next();
    let segment = segment.expect("a segment").path();
    let mut bytes = std::fs::read(&segment).expect("read");
    let at = bytes.windows(3).position(|w| w == b"a-1").expect("record a-1");
    bytes[at + 2] = b'7';
    // Every frame's CRC made right again: only the Merkle roots can tell.
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("len")) as usize;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[pos..pos + 4]), &bytes[pos + 8..pos + 8 + len]);
        bytes[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos += 8 + len;
    }
    std::fs::write(&segment, &bytes).expect("write");
    let refused = Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), opts).err();
    let message = refused.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("do not match the signed checkpoint of size"), "{message}");
    assert!(verify_dir(dir.path(), None).is_err());
}

/// Checkpoints roll into files like segments; opening reads only the newest
/// file (months of per-second notes would otherwise be read at every start),
/// while the offline verifier reads and checks every one, file by file.
#[tokio::test]
async fn checkpoints_roll_into_files_and_verify_reads_them_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    let opts = LedgerOptions {
        checkpoint_interval: std::time::Duration::ZERO,
        checkpoint_file_bytes: 600,
        ..LedgerOptions::default()
    };
    let (l, _) = Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), opts.clone()).expect("open");
    for i in 0..12 {
        l.append(records(2, &format!("r{i}"))).await.expect("append");
    }
    l.close().await.expect("close");
    let latest = l.latest_checkpoint().expect("signed");
    drop(l);
    let files = files_in(&dir.path().join("checkpoints"));
    assert!(files.len() >= 4, "rolled into {} files", files.len());
    let mut sizes = Vec::new();
    ledger::for_each_checkpoint_note(dir.path(), |n| {
        sizes.push(ledger::Checkpoint::of_note(n)?.size);
        Ok(())
    })
    .expect("notes");
    assert_eq!(sizes.len(), 13, "the key record's checkpoint and one per append");
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "oldest first across files: {sizes:?}");
    assert_eq!(sizes.last(), Some(&25));
    // Each file is named by the tree size it was begun at: the first when the
    // ledger was created, the others at a roll, by the size of their first note.
    for (i, f) in files.iter().enumerate() {
        let named: u64 = f.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("numbered");
        assert!(if i == 0 { named == 0 } else { sizes.contains(&named) }, "{}", f.display());
    }
    let report = verify_dir(dir.path(), None).expect("verifies");
    assert_eq!((report.checkpoints, report.signed_size, report.records), (13, 25, 25));

    let (l, _) = Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), opts.clone()).expect("reopen");
    assert_eq!(l.latest_checkpoint(), Some(latest), "the newest note is found in the newest file");
    l.append(records(1, "after")).await.expect("append");
    l.close().await.expect("close");
    drop(l);
    assert_eq!(verify_dir(dir.path(), None).expect("verifies").checkpoints, 14);

    // A damaged note in the oldest file: the verifier names it; opening does
    // not read that file (the newest note's root binds the same records).
    let oldest = &files[0];
    let mut bytes = std::fs::read(oldest).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0x20;
    std::fs::write(oldest, &bytes).expect("write");
    let err = verify_dir(dir.path(), None).expect_err("damaged checkpoint");
    assert!(err.to_string().contains(&oldest.display().to_string()), "{err}");
    Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), opts).expect("opens");
}

/// A ledger written before checkpoints rolled has one `checkpoints.log`: the
/// verifier reads it as the oldest file, and the next writer moves it into
/// `checkpoints/` and carries on.
#[tokio::test]
async fn a_single_checkpoint_log_from_before_rolling_is_read_and_moved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    write(dir.path(), NoteSigner::parse(&key).expect("key"), &[records(3, "a")]).await;
    write(dir.path(), NoteSigner::parse(&key).expect("key"), &[records(3, "b")]).await;
    let files = files_in(&dir.path().join("checkpoints"));
    assert_eq!(files.len(), 1);
    let legacy = dir.path().join("checkpoints.log");
    std::fs::rename(&files[0], &legacy).expect("move");
    std::fs::remove_dir(dir.path().join("checkpoints")).expect("rmdir");
    let before = verify_dir(dir.path(), None).expect("verifies the legacy layout");
    assert_eq!(before.records, 7);

    write(dir.path(), NoteSigner::parse(&key).expect("key"), &[records(2, "c")]).await;
    assert!(!legacy.exists(), "moved");
    let moved = files_in(&dir.path().join("checkpoints"));
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(moved[0].ends_with("00000000000000000000.log"), "{moved:?}");
    let after = verify_dir(dir.path(), None).expect("verifies");
    assert_eq!((after.checkpoints, after.records), (before.checkpoints + 1, 9));
}

/// A crash can leave the newest checkpoint file empty (begun, no note yet) or
/// with a torn last note: opening finds the newest whole note, in that file or
/// the one before, and writing carries on in the newest file.
#[tokio::test]
async fn an_empty_or_torn_newest_checkpoint_file_is_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NoteSigner::generate(ORIGIN).expect("key").encode();
    let open = || {
        Ledger::open(dir.path(), ORIGIN, NoteSigner::parse(&key).expect("key"), LedgerOptions::default()).expect("open")
    };
    let (l, _) = open();
    l.append(records(3, "a")).await.expect("append");
    l.close().await.expect("close");
    let signed = l.latest_checkpoint();
    drop(l);
    let begun = dir.path().join("checkpoints").join(format!("{:020}", 4) + ".log");
    std::fs::write(&begun, b"").expect("an empty newest file");
    let (l, _) = open();
    assert_eq!(l.latest_checkpoint(), signed, "the newest note is in the file before");
    l.append(records(2, "b")).await.expect("append");
    l.close().await.expect("close");
    drop(l);
    assert!(std::fs::metadata(&begun).expect("newest").len() > 0, "notes went on in the newest file");

    let whole = std::fs::read(&begun).expect("read");
    std::fs::write(&begun, [&whole[..], &whole[..40]].concat()).expect("a torn note after it");
    let (l, _) = open();
    assert_eq!(l.size(), 6, "the key record and five");
    l.close().await.expect("close");
    drop(l);
    let report = verify_dir(dir.path(), None).expect("verifies");
    assert_eq!((report.records, report.signed_size), (6, 6));
}
