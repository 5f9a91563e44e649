//! Evidence bundles: selected records, each with its RFC 9162 inclusion proof
//! against one signed checkpoint, the verifier keys, a human-readable report
//! and instructions — one tar file an inspector verifies without the server.
//!
//! Records and proofs are covered by the checkpoint signature; the report,
//! the selection and the instructions by a signed manifest (a signed note
//! listing every file's SHA-256), so any change to any byte fails.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::LedgerError;
use crate::merkle::{Hash, leaf_hash, verify_inclusion};
use crate::note::{Checkpoint, NoteSigner, VerifierKey, open};

/// One selected record: its index, exact bytes (canonical JSON text) and proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRecord {
    pub index: u64,
    pub record_text: String,
    pub inclusion_proof: Vec<String>,
}

/// A record as a line of `records.jsonl`: the fields of [`BundleRecord`]
/// in its order (the proof kept as hashes until written as hex), so it
/// reads back as one.
#[derive(Serialize)]
struct Line<'a> {
    index: u64,
    record_text: &'a str,
    inclusion_proof: HexHashes<'a>,
}

struct HexHashes<'a>(&'a [Hash]);

impl Serialize for HexHashes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(hex::encode))
    }
}

const INSTRUCTIONS: &str = "\
Custos evidence bundle
======================

Check it with:   custos verify THIS-FILE.tar     (add --key VKEY to pin the ledger key)

What that checks, so it can also be done by hand:
1. manifest.txt is a signed note (C2SP signed-note, Ed25519) by a key in keys.vkey; it
   lists the SHA-256 of every other file in the bundle, and nothing else is present.
2. checkpoint.txt is a signed note by a key in keys.vkey; its body is a C2SP
   tlog-checkpoint: origin, tree size, base64 root hash (RFC 9162 Merkle tree).
3. Every line of records.jsonl holds a record's exact text; its leaf hash is
   SHA-256(0x00 || text) and its inclusion proof (hex hashes) leads to the
   checkpoint's root (RFC 9162 section 2.1.3.2) at its index.
4. Each record is canonical JSON (RFC 8785) {\"kind\", \"recorded_at\", \"data\"}.
report.html lists the records for people; selection.json says how they were chosen.
";

const FILES: [&str; 6] =
    ["checkpoint.txt", "keys.vkey", "records.jsonl", "selection.json", "report.html", "VERIFY.txt"];

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn bad(what: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt { index: None, what: what.into() }
}

/// The manifest's body: the format line, then each file's SHA-256 and name.
fn manifest_body<'a>(hashes: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut manifest = String::from("custos-evidence-bundle/1\n");
    for (hash, name) in hashes {
        manifest.push_str(&format!("{hash} {name}\n"));
    }
    manifest
}

/// Writes a bundle as it is made, to a file (or any `Write + Seek`): a bundle
/// of a hundred thousand records is hundreds of megabytes, which need not be
/// held in memory. [`BundleWriter::begin`], then [`BundleWriter::record`] for
/// each record, then [`BundleWriter::finish`].
///
/// The manifest's entry comes first in the archive but is known last: it is
/// reserved at its known length (hex digests, one Ed25519 signature) and
/// written over at the end, as is each entry's header once its size is known.
pub struct BundleWriter<'s, W: Write + Seek> {
    tar: Tar<W>,
    signer: &'s NoteSigner,
    /// Where the manifest's reserved contents start, and their length.
    manifest: (u64, usize),
    /// SHA-256 of the files written so far, in [`FILES`] order.
    hashes: Vec<String>,
    records: OpenEntry,
    line: Vec<u8>,
}

impl<'s, W: Write + Seek> BundleWriter<'s, W> {
    /// Starts a bundle of records proven against the signed `checkpoint`.
    pub fn begin(out: W, checkpoint: &str, keys: &str, signer: &'s NoteSigner) -> Result<Self, LedgerError> {
        let mut tar = Tar { out, at: 0 };
        let placeholder = "0".repeat(64);
        let manifest_len = signer.sign(&manifest_body(FILES.iter().map(|f| (placeholder.as_str(), *f)))).len();
        let mut manifest = tar.open("manifest.txt")?;
        tar.write(&mut manifest, &vec![0; manifest_len])?;
        let manifest_at = manifest.header_at + 512;
        tar.close(manifest)?;
        let mut hashes = Vec::with_capacity(FILES.len());
        for (name, text) in [(FILES[0], checkpoint), (FILES[1], keys)] {
            hashes.push(tar.file(name, text.as_bytes())?);
        }
        let records = tar.open(FILES[2])?;
        Ok(Self { tar, signer, manifest: (manifest_at, manifest_len), hashes, records, line: Vec::new() })
    }

    /// Adds a line to `records.jsonl`: a record's index, exact text and
    /// inclusion proof (as the hex of [`BundleRecord`]).
    pub fn record(&mut self, index: u64, text: &str, proof: &[Hash]) -> Result<(), LedgerError> {
        self.line.clear();
        let line = Line { index, record_text: text, inclusion_proof: HexHashes(proof) };
        serde_json::to_writer(&mut self.line, &line).map_err(|e| LedgerError::Record(e.to_string()))?;
        self.line.push(b'\n');
        self.tar.write(&mut self.records, &self.line)
    }

    /// Writes the selection, the report, the instructions and the signed
    /// manifest; returns the output, its whole archive written.
    pub fn finish(mut self, selection: &serde_json::Value, report_html: &str) -> Result<W, LedgerError> {
        let selection = serde_json::to_string_pretty(selection).map_err(|e| LedgerError::Record(e.to_string()))?;
        self.hashes.push(self.tar.close(self.records)?);
        for (name, text) in [(FILES[3], selection.as_str()), (FILES[4], report_html), (FILES[5], INSTRUCTIONS)] {
            self.hashes.push(self.tar.file(name, text.as_bytes())?);
        }
        let manifest = self.signer.sign(&manifest_body(self.hashes.iter().map(String::as_str).zip(FILES)));
        if manifest.len() != self.manifest.1 {
            return Err(LedgerError::Record("bundle: the signed manifest is not the length reserved for it".into()));
        }
        self.tar.write_at(self.manifest.0, manifest.as_bytes())?;
        self.tar.finish()
    }
}

/// A tar archive in the one byte form of a bundle: ustar entries with fixed
/// metadata (mode 0644, time 0), each padded to 512 bytes, two zero blocks
/// at the end, so a verifier can rebuild it and compare every byte.
struct Tar<W> {
    out: W,
    /// The archive's length so far.
    at: u64,
}

/// An entry being written: where its header goes, and its contents so far.
struct OpenEntry {
    header: tar::Header,
    header_at: u64,
    len: u64,
    sha256: Sha256,
}

fn write_error(e: std::io::Error) -> LedgerError {
    LedgerError::Io { path: "evidence bundle".into(), what: "write".into(), source: e }
}

impl<W: Write + Seek> Tar<W> {
    /// Begins an entry; its header is written when it is closed.
    fn open(&mut self, name: &str) -> Result<OpenEntry, LedgerError> {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).map_err(|e| LedgerError::Record(format!("bundle {name}: {e}")))?;
        header.set_mode(0o644);
        header.set_mtime(0);
        let header_at = self.at;
        self.out.write_all(&[0; 512]).map_err(write_error)?;
        self.at += 512;
        Ok(OpenEntry { header, header_at, len: 0, sha256: Sha256::new() })
    }

    fn write(&mut self, entry: &mut OpenEntry, bytes: &[u8]) -> Result<(), LedgerError> {
        self.out.write_all(bytes).map_err(write_error)?;
        entry.sha256.update(bytes);
        entry.len += bytes.len() as u64;
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Pads the entry, writes its header; returns the SHA-256 of its contents.
    fn close(&mut self, mut entry: OpenEntry) -> Result<String, LedgerError> {
        let pad = self.at.next_multiple_of(512) - self.at;
        self.out.write_all(&[0; 512][..pad as usize]).map_err(write_error)?;
        self.at += pad;
        entry.header.set_size(entry.len);
        entry.header.set_cksum();
        self.write_at(entry.header_at, entry.header.as_bytes())?;
        Ok(hex::encode(entry.sha256.finalize()))
    }

    /// A whole entry at once.
    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<String, LedgerError> {
        let mut entry = self.open(name)?;
        self.write(&mut entry, bytes)?;
        self.close(entry)
    }

    /// Writes over bytes already written at `at`, then goes back to the end.
    fn write_at(&mut self, at: u64, bytes: &[u8]) -> Result<(), LedgerError> {
        self.out.seek(SeekFrom::Start(at)).map_err(write_error)?;
        self.out.write_all(bytes).map_err(write_error)?;
        self.out.seek(SeekFrom::Start(self.at)).map_err(write_error)?;
        Ok(())
    }

    fn finish(mut self) -> Result<W, LedgerError> {
        self.out.write_all(&[0; 1024]).map_err(write_error)?;
        self.out.flush().map_err(write_error)?;
        Ok(self.out)
    }
}

/// The checkpoint note inside a bundle (for witness checks).
pub fn bundle_checkpoint(bundle: impl Read) -> Result<String, LedgerError> {
    let mut archive = tar::Archive::new(bundle);
    for entry in archive.entries().map_err(|e| bad(format!("not a bundle: {e}")))? {
        let mut entry = entry.map_err(|e| bad(format!("not a bundle: {e}")))?;
        if entry.path().is_ok_and(|p| p.as_os_str() == "checkpoint.txt") {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(|e| bad(format!("checkpoint.txt: {e}")))?;
            return Ok(text);
        }
    }
    Err(bad("checkpoint.txt is missing"))
}

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    pub records: usize,
    pub tree_size: u64,
    /// The signed tree's root.
    pub root: crate::merkle::Hash,
    pub origin: String,
    pub kinds: BTreeMap<String, u64>,
    pub signed_by: Vec<String>,
    /// `selection.json` as signed (how the records were chosen).
    pub selection: String,
}

/// Verifies a bundle's bytes offline (see [`verify_bundle_from`]).
pub fn verify_bundle(bytes: &[u8], trusted: Option<&[VerifierKey]>) -> Result<BundleReport, LedgerError> {
    verify_bundle_from(bytes, trusted)
}

/// Verifies a bundle offline as it is read, holding only its small files
/// and one record at a time: a bundle of 100,000 records is 340 MB, and an
/// inspector checks it on a laptop. `trusted` pins the keys; otherwise the
/// bundle's own `keys.vkey` is used (and named in the report).
///
/// The archive must be the one byte form the writer makes: the manifest,
/// then [`FILES`] in order, each header as the writer would make it for that
/// name and size, padding and the two closing blocks zero, nothing after.
pub fn verify_bundle_from(bundle: impl Read, trusted: Option<&[VerifierKey]>) -> Result<BundleReport, LedgerError> {
    verify_bundle_seeing(bundle, trusted, &mut |_, _| {})
}

/// [`verify_bundle_from`], handing `see` each record's index and text once
/// its inclusion proof holds (what a caller checks further, such as the
/// records `selection.json` names, without reading the bundle twice).
pub fn verify_bundle_seeing(
    bundle: impl Read,
    trusted: Option<&[VerifierKey]>,
    see: &mut dyn FnMut(u64, &str),
) -> Result<BundleReport, LedgerError> {
    let mut tar = CanonicalTar { input: std::io::BufReader::with_capacity(1 << 20, bundle) };
    let mut small: BTreeMap<&str, String> = BTreeMap::new();
    let mut records: Option<RecordsCheck<'_>> = None;
    for name in std::iter::once("manifest.txt").chain(FILES) {
        let size = tar.header(name)?;
        if name != "records.jsonl" {
            let mut text = String::new();
            tar.contents(size, |chunk| {
                text.push_str(std::str::from_utf8(chunk).map_err(|_| bad(format!("{name} is not UTF-8")))?);
                Ok(())
            })?;
            small.insert(name, text);
            continue;
        }
        // Everything records are checked against comes before them.
        let text = |name: &str| small.get(name).map(String::as_str).unwrap_or_default();
        let listed: Vec<VerifierKey> = text("keys.vkey").lines().map(VerifierKey::parse).collect::<Result<_, _>>()?;
        let keys = trusted.unwrap_or(&listed);
        let (manifest, _) = open(text("manifest.txt"), keys).map_err(|e| bad(format!("manifest.txt: {e}")))?;
        let hashes = manifest_hashes(manifest)?;
        for (name, hash) in hashes.iter().filter(|(name, _)| small.contains_key(name)) {
            if sha256_hex(text(name).as_bytes()) != *hash {
                return Err(bad(format!("{name} has changed since the bundle was made")));
            }
        }
        let (body, signed_by) = open(text("checkpoint.txt"), keys).map_err(|e| bad(format!("checkpoint.txt: {e}")))?;
        let mut check = RecordsCheck::new(hashes, Checkpoint::parse_body(body)?, signed_by, &mut *see);
        tar.contents(size, |chunk| check.take(chunk))?;
        records = Some(check);
    }
    tar.end()?;
    let check = records.ok_or_else(|| bad("records.jsonl is missing"))?;
    // 1. The manifest names exactly the bundle's files, with their hashes.
    for (name, hash) in &check.hashes {
        let actual = match *name {
            "records.jsonl" => hex::encode(check.sha256.clone().finalize()),
            other => sha256_hex(small.get(other).map(String::as_bytes).unwrap_or_default()),
        };
        if actual != *hash {
            return Err(bad(format!("{name} has changed since the bundle was made")));
        }
    }
    // 2. Every record is in the signed tree.
    let mut report = check.finish()?;
    report.selection = small.remove("selection.json").unwrap_or_default();
    Ok(report)
}

/// Reads a tar archive that must be in the bundle's one byte form.
struct CanonicalTar<R: Read> {
    input: std::io::BufReader<R>,
}

fn not_canonical(what: impl std::fmt::Display) -> LedgerError {
    bad(format!("the bundle's bytes differ from its canonical form ({what})"))
}

impl<R: Read> CanonicalTar<R> {
    fn block(&mut self) -> Result<[u8; 512], LedgerError> {
        let mut block = [0u8; 512];
        self.input.read_exact(&mut block).map_err(|e| not_canonical(format!("cut short: {e}")))?;
        Ok(block)
    }

    /// The next entry's header, which must be `name`'s; returns its size.
    fn header(&mut self, name: &str) -> Result<u64, LedgerError> {
        let block = self.block()?;
        let found = tar::Header::from_byte_slice(&block);
        let found_name = found.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        if found_name != name {
            let missing = if block == [0; 512] {
                format!("{name} is missing")
            } else {
                format!("{found_name:?} where {name} belongs")
            };
            return Err(not_canonical(missing));
        }
        let size = found.size().map_err(|e| not_canonical(format!("{name}: {e}")))?;
        let mut canonical = tar::Header::new_ustar();
        canonical.set_path(name).map_err(|e| not_canonical(format!("{name}: {e}")))?;
        canonical.set_mode(0o644);
        canonical.set_mtime(0);
        canonical.set_size(size);
        canonical.set_cksum();
        if canonical.as_bytes()[..] != block[..] {
            return Err(not_canonical(format!("the header of {name}")));
        }
        Ok(size)
    }

    /// Hands the entry's `size` bytes to `take` in chunks; checks its padding.
    fn contents(
        &mut self,
        size: u64,
        mut take: impl FnMut(&[u8]) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut left = size;
        let mut chunk = vec![0u8; (64 << 10).min(size as usize)];
        while left > 0 {
            let n = chunk.len().min(left as usize);
            self.input.read_exact(&mut chunk[..n]).map_err(|e| not_canonical(format!("cut short: {e}")))?;
            take(&chunk[..n])?;
            left -= n as u64;
        }
        let pad = (size.next_multiple_of(512) - size) as usize;
        let mut padding = [0u8; 512];
        self.input.read_exact(&mut padding[..pad]).map_err(|e| not_canonical(format!("cut short: {e}")))?;
        if padding[..pad].iter().any(|b| *b != 0) {
            return Err(not_canonical("padding"));
        }
        Ok(())
    }

    /// Two zero blocks, then the end of the input.
    fn end(mut self) -> Result<(), LedgerError> {
        for _ in 0..2 {
            if self.block()? != [0; 512] {
                return Err(not_canonical("an entry after the last bundle file"));
            }
        }
        let mut more = [0u8; 1];
        match self.input.read(&mut more) {
            Ok(0) => Ok(()),
            Ok(_) => Err(not_canonical("bytes after the end of the archive")),
            Err(e) => Err(not_canonical(format!("read: {e}"))),
        }
    }
}

/// `records.jsonl` checked line by line as it streams past: each record's
/// inclusion proof against the checkpoint, and the file's SHA-256 for the
/// manifest. A bad line is reported only if the file is the one the
/// manifest names (else the change itself is the finding).
struct RecordsCheck<'s> {
    /// The manifest's `(name, SHA-256)` of every file but itself.
    hashes: Vec<(&'static str, String)>,
    cp: Checkpoint,
    signed_by: Vec<String>,
    sha256: Sha256,
    line: Vec<u8>,
    lines: usize,
    kinds: BTreeMap<String, u64>,
    first_fault: Option<LedgerError>,
    see: &'s mut dyn FnMut(u64, &str),
}

/// The `(name, SHA-256)` a verified manifest lists, which must be [`FILES`], each once.
fn manifest_hashes(manifest: &str) -> Result<Vec<(&'static str, String)>, LedgerError> {
    let mut lines = manifest.lines();
    if lines.next() != Some("custos-evidence-bundle/1") {
        return Err(bad("manifest.txt is not a custos evidence bundle manifest"));
    }
    let mut hashes = Vec::new();
    for l in lines {
        let (hash, name) = l.split_once(' ').ok_or_else(|| bad(format!("manifest line {l:?}")))?;
        let Some(file) = FILES.iter().find(|f| **f == name) else {
            return Err(bad(format!("{name} is in the manifest but not in the bundle")));
        };
        if hashes.iter().any(|(n, _)| n == file) {
            return Err(bad(format!("{name} appears twice in the manifest")));
        }
        hashes.push((*file, hash.to_owned()));
    }
    if let Some(f) = FILES.iter().find(|f| !hashes.iter().any(|(n, _)| n == *f)) {
        return Err(bad(format!("{f} is not in the signed manifest")));
    }
    Ok(hashes)
}

impl<'s> RecordsCheck<'s> {
    fn new(
        hashes: Vec<(&'static str, String)>,
        cp: Checkpoint,
        signed_by: Vec<String>,
        see: &'s mut dyn FnMut(u64, &str),
    ) -> Self {
        Self {
            hashes,
            cp,
            signed_by,
            sha256: Sha256::new(),
            line: Vec::new(),
            lines: 0,
            kinds: BTreeMap::new(),
            first_fault: None,
            see,
        }
    }

    fn take(&mut self, chunk: &[u8]) -> Result<(), LedgerError> {
        self.sha256.update(chunk);
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..end]);
            let line = std::mem::take(&mut self.line);
            self.record(&line);
            self.line = line;
            self.line.clear();
            rest = &rest[end + 1..];
        }
        if self.line.len() + rest.len() > 4 * crate::MAX_RECORD {
            return Err(bad(format!("records.jsonl line {} is longer than any record", self.lines + 1)));
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// Checks one line; the first fault is kept for [`Self::finish`].
    fn record(&mut self, line: &[u8]) {
        self.lines += 1;
        if self.first_fault.is_some() {
            return;
        }
        if let Err(e) = self.check(line) {
            self.first_fault = Some(e);
        }
    }

    fn check(&mut self, line: &[u8]) -> Result<(), LedgerError> {
        let r: BundleRecord =
            serde_json::from_slice(line).map_err(|e| bad(format!("records.jsonl line {}: {e}", self.lines)))?;
        let at = |what: String| LedgerError::Corrupt { index: Some(r.index), what };
        let proof: Vec<Hash> = r
            .inclusion_proof
            .iter()
            .map(|h| hex::decode(h).ok().and_then(|b| b.try_into().ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| at("inclusion proof is not a list of 32-byte hex hashes".into()))?;
        let leaf = leaf_hash(r.record_text.as_bytes());
        if !verify_inclusion(r.index, self.cp.size, &leaf, &proof, &self.cp.root) {
            return Err(at(format!(
                "the record is not in the signed tree of size {} (inclusion proof fails)",
                self.cp.size
            )));
        }
        let rec = crate::record::decode(r.record_text.as_bytes()).map_err(|e| at(e.to_string()))?;
        *self.kinds.entry(rec.kind.name().to_owned()).or_insert(0u64) += 1;
        (self.see)(r.index, &r.record_text);
        Ok(())
    }

    fn finish(mut self) -> Result<BundleReport, LedgerError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.record(&line);
        }
        if let Some(fault) = self.first_fault {
            return Err(fault);
        }
        Ok(BundleReport {
            records: self.lines,
            tree_size: self.cp.size,
            root: self.cp.root,
            origin: self.cp.origin,
            kinds: self.kinds,
            signed_by: self.signed_by,
            selection: String::new(),
        })
    }
}
