//! Evidence bundles: selected records, each with its RFC 9162 inclusion proof
//! against one signed checkpoint, the verifier keys, a human-readable report
//! and instructions — one tar file an inspector verifies without the server.
//!
//! Records and proofs are covered by the checkpoint signature; the report,
//! the selection and the instructions by a signed manifest (a signed note
//! listing every file's SHA-256), so any change to any byte fails.

use std::collections::BTreeMap;
use std::io::Read;

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

/// A record chosen for a bundle, as it is written: its index, exact text and
/// inclusion proof (written as the hex of [`BundleRecord`], and kept as
/// hashes until then: a third of the size, over a hundred thousand records).
pub struct Selected {
    pub index: u64,
    pub text: String,
    pub proof: Vec<Hash>,
}

/// A [`Selected`] record as a line of `records.jsonl`: the fields of
/// [`BundleRecord`] in its order, so it reads back as one.
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

/// What goes into a bundle.
pub struct Bundle {
    /// The signed checkpoint note all proofs are against.
    pub checkpoint: String,
    /// `keys.vkey` of the ledger.
    pub keys: String,
    pub records: Vec<Selected>,
    /// How the records were chosen (who, when, range, filters).
    pub selection: serde_json::Value,
    pub report_html: String,
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

/// Writes the bundle as a tar archive, signing its manifest with `signer`.
///
/// Written in place, in one buffer: the records go straight into their
/// entry, and the manifest's entry, which comes first, is reserved at its
/// known length (hex digests, one Ed25519 signature) and filled in last. A
/// bundle of many records is hundreds of megabytes; a separate records file
/// and archive would hold it twice.
pub fn write_bundle(b: &Bundle, signer: &NoteSigner) -> Result<Vec<u8>, LedgerError> {
    let selection = serde_json::to_string_pretty(&b.selection).map_err(|e| LedgerError::Record(e.to_string()))?;
    let estimate: usize = b.records.iter().map(|r| r.text.len() * 11 / 10 + r.proof.len() * 67 + 64).sum::<usize>()
        + b.report_html.len()
        + selection.len()
        + b.checkpoint.len()
        + b.keys.len()
        + INSTRUCTIONS.len()
        + 16 * 512;
    let mut tar = Tar(Vec::with_capacity(estimate));
    let placeholder = "0".repeat(64);
    let manifest_len = signer.sign(&manifest_body(FILES.iter().map(|f| (placeholder.as_str(), *f)))).len();
    let manifest_at = tar.entry("manifest.txt", |out| {
        out.resize(out.len() + manifest_len, 0);
        Ok(())
    })?;
    let mut hashes = Vec::with_capacity(FILES.len());
    for name in FILES {
        let range = match name {
            "records.jsonl" => tar.entry(name, |out| {
                for r in &b.records {
                    let line = Line { index: r.index, record_text: &r.text, inclusion_proof: HexHashes(&r.proof) };
                    serde_json::to_writer(&mut *out, &line).map_err(|e| LedgerError::Record(e.to_string()))?;
                    out.push(b'\n');
                }
                Ok(())
            })?,
            _ => {
                let bytes = match name {
                    "checkpoint.txt" => b.checkpoint.as_bytes(),
                    "keys.vkey" => b.keys.as_bytes(),
                    "selection.json" => selection.as_bytes(),
                    "report.html" => b.report_html.as_bytes(),
                    _ => INSTRUCTIONS.as_bytes(),
                };
                tar.entry(name, |out| {
                    out.extend_from_slice(bytes);
                    Ok(())
                })?
            }
        };
        hashes.push(sha256_hex(&tar.0[range]));
    }
    let manifest = signer.sign(&manifest_body(hashes.iter().map(String::as_str).zip(FILES)));
    if manifest.len() != manifest_len {
        return Err(LedgerError::Record("bundle: the signed manifest is not the length reserved for it".into()));
    }
    tar.0[manifest_at].copy_from_slice(manifest.as_bytes());
    Ok(tar.finish())
}

/// A tar archive in the one byte form of a bundle: ustar entries with fixed
/// metadata (mode 0644, time 0), each padded to 512 bytes, two zero blocks
/// at the end, so a verifier can rebuild it and compare every byte.
struct Tar(Vec<u8>);

impl Tar {
    /// Appends an entry whose contents `body` writes straight into the
    /// archive; returns where they are.
    fn entry(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut Vec<u8>) -> Result<(), LedgerError>,
    ) -> Result<std::ops::Range<usize>, LedgerError> {
        let header_at = self.0.len();
        self.0.resize(header_at + 512, 0);
        body(&mut self.0)?;
        let (start, end) = (header_at + 512, self.0.len());
        let mut h = tar::Header::new_ustar();
        h.set_path(name).map_err(|e| LedgerError::Record(format!("bundle {name}: {e}")))?;
        h.set_size((end - start) as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        self.0[header_at..start].copy_from_slice(h.as_bytes());
        self.0.resize(end.next_multiple_of(512), 0);
        Ok(start..end)
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.resize(self.0.len() + 1024, 0);
        self.0
    }
}

/// The one byte form of a bundle's files, in manifest order.
fn tar_of<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone) -> Result<Vec<u8>, LedgerError> {
    let size =
        files.clone().into_iter().map(|(_, bytes)| 512 + bytes.len().next_multiple_of(512)).sum::<usize>() + 1024;
    let mut tar = Tar(Vec::with_capacity(size));
    for (name, bytes) in files {
        tar.entry(name, |out| {
            out.extend_from_slice(bytes);
            Ok(())
        })?;
    }
    Ok(tar.finish())
}

/// The checkpoint note inside a bundle (for witness checks).
pub fn bundle_checkpoint(bytes: &[u8]) -> Result<String, LedgerError> {
    let mut archive = tar::Archive::new(bytes);
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
    pub origin: String,
    pub kinds: BTreeMap<String, u64>,
    pub signed_by: Vec<String>,
}

/// Verifies a bundle's bytes offline. `trusted` pins the keys; otherwise the
/// bundle's own `keys.vkey` is used (and named in the report).
pub fn verify_bundle(bytes: &[u8], trusted: Option<&[VerifierKey]>) -> Result<BundleReport, LedgerError> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().map_err(|e| bad(format!("not a bundle: {e}")))? {
        let mut entry = entry.map_err(|e| bad(format!("not a bundle: {e}")))?;
        let name = entry.path().map_err(|e| bad(format!("bundle entry name: {e}")))?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| bad(format!("bundle entry {name}: {e}")))?;
        if files.insert(name.clone(), data).is_some() {
            return Err(bad(format!("{name} appears twice")));
        }
    }
    let text = |name: &str| -> Result<&str, LedgerError> {
        let b = files.get(name).ok_or_else(|| bad(format!("{name} is missing")))?;
        std::str::from_utf8(b).map_err(|_| bad(format!("{name} is not UTF-8")))
    };
    let listed: Vec<VerifierKey> = text("keys.vkey")?.lines().map(VerifierKey::parse).collect::<Result<_, _>>()?;
    let keys = trusted.unwrap_or(&listed);
    // 1. The manifest: signed, and naming exactly the other files with their hashes.
    let (manifest, _) = open(text("manifest.txt")?, keys).map_err(|e| bad(format!("manifest.txt: {e}")))?;
    let mut lines = manifest.lines();
    if lines.next() != Some("custos-evidence-bundle/1") {
        return Err(bad("manifest.txt is not a custos evidence bundle manifest"));
    }
    let mut named = Vec::new();
    for l in lines {
        let (hash, name) = l.split_once(' ').ok_or_else(|| bad(format!("manifest line {l:?}")))?;
        let data = files.get(name).ok_or_else(|| bad(format!("{name} is in the manifest but not in the bundle")))?;
        if sha256_hex(data) != hash {
            return Err(bad(format!("{name} has changed since the bundle was made")));
        }
        named.push(name.to_owned());
    }
    if let Some(extra) = files.keys().find(|f| *f != "manifest.txt" && !named.contains(f)) {
        return Err(bad(format!("{extra} is not in the signed manifest")));
    }
    if FILES.iter().any(|f| !named.iter().any(|n| n == f)) {
        return Err(bad("the manifest does not list every bundle file"));
    }
    // Headers and padding are not in any hash: the bytes must be the canonical form.
    let order = std::iter::once("manifest.txt").chain(named.iter().map(String::as_str));
    let rebuilt = tar_of(order.map(|n| (n, files.get(n).map(Vec::as_slice).unwrap_or_default())))?;
    if rebuilt != bytes {
        return Err(bad("the bundle's bytes differ from its canonical form (a header or padding was changed)"));
    }
    // 2. The checkpoint.
    let (body, signed_by) = open(text("checkpoint.txt")?, keys).map_err(|e| bad(format!("checkpoint.txt: {e}")))?;
    let cp = Checkpoint::parse_body(body)?;
    // 3. Every record against it.
    let mut kinds = BTreeMap::new();
    let mut count = 0;
    for (n, line) in text("records.jsonl")?.lines().enumerate() {
        let r: BundleRecord =
            serde_json::from_str(line).map_err(|e| bad(format!("records.jsonl line {}: {e}", n + 1)))?;
        let at = |what: String| LedgerError::Corrupt { index: Some(r.index), what };
        let proof: Vec<Hash> = r
            .inclusion_proof
            .iter()
            .map(|h| hex::decode(h).ok().and_then(|b| b.try_into().ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| at("inclusion proof is not a list of 32-byte hex hashes".into()))?;
        let leaf = leaf_hash(r.record_text.as_bytes());
        if !verify_inclusion(r.index, cp.size, &leaf, &proof, &cp.root) {
            return Err(at(format!(
                "the record is not in the signed tree of size {} (inclusion proof fails)",
                cp.size
            )));
        }
        let rec = crate::record::decode(r.record_text.as_bytes()).map_err(|e| at(e.to_string()))?;
        *kinds.entry(rec.kind.name().to_owned()).or_insert(0u64) += 1;
        count += 1;
    }
    Ok(BundleReport { records: count, tree_size: cp.size, origin: cp.origin, kinds, signed_by })
}
