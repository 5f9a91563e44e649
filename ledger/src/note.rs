//! C2SP `signed-note` with Ed25519 and the `tlog-checkpoint` body.
//!
//! Key id = SHA-256(name || 0x0A || 0x01 || public key)[..4]. A verifier key
//! is written `name+<key id hex>+<base64(0x01 || public key)>`; a signature
//! line is `— name base64(key id || signature)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::LedgerError;
use crate::merkle::Hash;

const ED25519_ALG: u8 = 0x01;
const DASH: &str = "\u{2014} ";

fn bad(what: impl Into<String>) -> LedgerError {
    LedgerError::Note(what.into())
}

/// Key id = SHA-256(name || 0x0A || key type || public key)[..4].
fn typed_key_id(name: &str, key_type: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', key_type]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    typed_key_id(name, ED25519_ALG, public)
}

/// Parses a public key `name+<id hex>+<base64(key type || key)>` of `key_type`,
/// checking that the id matches; `what` names the kind of key in errors.
fn parse_public(text: &str, key_type: u8, what: &str) -> Result<(String, [u8; 4], VerifyingKey), LedgerError> {
    let text = text.trim();
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(format!("{what} {text:?} is not name+id+key")));
    };
    let raw = B64.decode(key_b64).map_err(|e| bad(format!("{what} {name}: {e}")))?;
    let (alg, public) = raw.split_first().ok_or_else(|| bad(format!("empty {what}")))?;
    let public: [u8; 32] = public.try_into().map_err(|_| bad(format!("{what} {name}: not 32 bytes")))?;
    if *alg != key_type {
        return Err(bad(format!("{what} {name}: key type {alg}, want {key_type}")));
    }
    let id = typed_key_id(name, key_type, &public);
    if hex::encode(id) != id_hex {
        return Err(bad(format!("{what} {name}: key id {id_hex} does not match the key")));
    }
    let key = VerifyingKey::from_bytes(&public).map_err(|e| bad(format!("{what} {name}: {e}")))?;
    Ok((name.to_owned(), id, key))
}

fn encode_public(name: &str, key_type: u8, id: &[u8; 4], key: &VerifyingKey) -> String {
    let mut raw = vec![key_type];
    raw.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", hex::encode(id), B64.encode(raw))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

/// A public key that checks note signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub id: [u8; 4],
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `name+hexid+base64key`, checking that the id matches the key.
    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        let (name, id, key) = parse_public(text, ED25519_ALG, "verifier key")?;
        Ok(Self { name, id, key })
    }

    pub fn encode(&self) -> String {
        encode_public(&self.name, ED25519_ALG, &self.id, &self.key)
    }
}

/// The Ed25519 key that signs checkpoints.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({})", self.name)
    }
}

impl NoteSigner {
    /// A fresh key from the operating system's random source.
    pub fn generate(name: &str) -> Result<Self, LedgerError> {
        if !valid_name(name) {
            return Err(bad(format!("key name {name:?} must be non-empty, without spaces or '+'")));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| bad(format!("no randomness for a key: {e}")))?;
        Ok(Self { name: name.to_owned(), key: SigningKey::from_bytes(&seed) })
    }

    /// Parses `PRIVATE+KEY+name+hexid+base64(0x01 || seed)`.
    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("signing key does not start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("signing key is not PRIVATE+KEY+name+id+key"));
        };
        let raw = B64.decode(b64).map_err(|e| bad(format!("signing key: {e}")))?;
        let seed: [u8; 32] =
            raw.get(1..).and_then(|s| s.try_into().ok()).ok_or_else(|| bad("signing key: not 32 bytes"))?;
        if raw.first() != Some(&ED25519_ALG) {
            return Err(bad("signing key: not Ed25519"));
        }
        let signer = Self { name: name.to_owned(), key: SigningKey::from_bytes(&seed) };
        if hex::encode(signer.verifier().id) != id_hex {
            return Err(bad("signing key: key id does not match"));
        }
        Ok(signer)
    }

    pub fn encode(&self) -> String {
        let mut raw = vec![ED25519_ALG];
        raw.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{}+{}", self.name, hex::encode(self.verifier().id), B64.encode(raw))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> VerifierKey {
        let public = self.key.verifying_key();
        VerifierKey { name: self.name.clone(), id: key_id(&self.name, public.as_bytes()), key: public }
    }

    /// Signs a note body (which must end in a newline) and returns the signed note.
    pub fn sign(&self, body: &str) -> String {
        let sig = self.key.sign(body.as_bytes());
        let mut blob = self.verifier().id.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        format!("{body}\n{DASH}{} {}\n", self.name, B64.encode(blob))
    }
}

/// A signed note's body (through its last line's newline) and its signature lines.
fn split_note(note: &str) -> Result<(&str, &str), LedgerError> {
    let split = note.find("\n\n").ok_or_else(|| bad("note has no blank line before its signatures"))?;
    Ok((&note[..split + 1], &note[split + 2..]))
}

/// Splits a signed note and checks it: at least one signature must be by a
/// known key and every signature by a known key must verify.
/// Returns the body and the names of the keys that signed it.
pub fn open<'a>(note: &'a str, keys: &[VerifierKey]) -> Result<(&'a str, Vec<String>), LedgerError> {
    let (body, sigs) = split_note(note)?;
    let mut signed_by = Vec::new();
    for line in sigs.lines() {
        let rest = line
            .strip_prefix(DASH)
            .ok_or_else(|| bad(format!("signature line {line:?} does not start with an em dash")))?;
        let (name, b64) = rest.split_once(' ').ok_or_else(|| bad("signature line without a signature"))?;
        let blob = B64.decode(b64).map_err(|e| bad(format!("signature by {name}: {e}")))?;
        let Some(key) = keys.iter().find(|k| k.name == name && blob.get(..4) == Some(&k.id[..])) else {
            // A signature or witness cosignature by a key we do not know is not
            // ours to judge (cosignatures are checked by `cosignatures`).
            continue;
        };
        if blob.len() != 68 {
            return Err(bad(format!("signature by {name}: {} bytes, want 68", blob.len())));
        }
        let sig = Signature::from_slice(&blob[4..]).map_err(|e| bad(format!("signature by {name}: {e}")))?;
        key.key.verify(body.as_bytes(), &sig).map_err(|_| bad(format!("signature by {name} does not verify")))?;
        signed_by.push(name.to_owned());
    }
    if signed_by.is_empty() {
        return Err(bad("note carries no signature by a known key"));
    }
    Ok((body, signed_by))
}

/// Signature type of C2SP `tlog-cosignature` (cosignature/v1, Ed25519).
const COSIGNATURE_ALG: u8 = 0x04;

/// A witness's public key: `name+<key id hex>+<base64(0x04 || public key)>`,
/// key id = SHA-256(name || 0x0A || 0x04 || public key)[..4].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    pub name: String,
    pub id: [u8; 4],
    key: VerifyingKey,
}

fn witness_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    typed_key_id(name, COSIGNATURE_ALG, public)
}

impl WitnessKey {
    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        let (name, id, key) = parse_public(text, COSIGNATURE_ALG, "witness key")?;
        Ok(Self { name, id, key })
    }

    pub fn encode(&self) -> String {
        encode_public(&self.name, COSIGNATURE_ALG, &self.id, &self.key)
    }
}

/// The message a witness signs: `cosignature/v1`, the time, then the body.
fn cosigned_message(time: u64, body: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{body}")
}

/// Witness cosignatures (C2SP `tlog-cosignature`) on a checkpoint note by the
/// given witnesses: each found must verify. Returns (witness, time in
/// seconds) of each; a note without them gives an empty list.
pub fn cosignatures(note: &str, witnesses: &[WitnessKey]) -> Result<Vec<(String, u64)>, LedgerError> {
    let (body, sigs) = split_note(note)?;
    let mut out = Vec::new();
    for line in sigs.lines() {
        let Some((name, b64)) = line.strip_prefix(DASH).and_then(|r| r.split_once(' ')) else { continue };
        let Ok(blob) = B64.decode(b64) else { continue };
        let Some(w) = witnesses.iter().find(|w| w.name == name && blob.get(..4) == Some(&w.id[..])) else {
            continue;
        };
        if blob.len() != 76 {
            return Err(bad(format!("cosignature by {name}: {} bytes, want 76", blob.len())));
        }
        let time = u64::from_be_bytes(blob[4..12].try_into().map_err(|_| bad("cosignature time"))?);
        let sig = Signature::from_slice(&blob[12..]).map_err(|e| bad(format!("cosignature by {name}: {e}")))?;
        w.key
            .verify(cosigned_message(time, body).as_bytes(), &sig)
            .map_err(|_| bad(format!("cosignature by witness {name} does not verify")))?;
        out.push((name.to_owned(), time));
    }
    Ok(out)
}

/// A witness's signing side, for tests and for running a witness.
pub struct WitnessSigner {
    name: String,
    key: SigningKey,
}

impl WitnessSigner {
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Self {
        Self { name: name.to_owned(), key: SigningKey::from_bytes(&seed) }
    }

    pub fn verifier(&self) -> WitnessKey {
        let public = self.key.verifying_key();
        WitnessKey { name: self.name.clone(), id: witness_id(&self.name, public.as_bytes()), key: public }
    }

    /// Adds this witness's cosignature (at `time`, seconds) to a signed note.
    pub fn cosign(&self, note: &str, time: u64) -> Result<String, LedgerError> {
        let (body, _) = split_note(note)?;
        let sig = self.key.sign(cosigned_message(time, body).as_bytes());
        let mut blob = self.verifier().id.to_vec();
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!("{note}{DASH}{} {}\n", self.name, B64.encode(blob)))
    }
}

/// A tlog-checkpoint body with Custos' extension lines: the hash-chain head and
/// the signing time, so both are covered by the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub chain: Hash,
    /// Unix milliseconds when the checkpoint was signed.
    pub time_ms: i64,
}

impl Checkpoint {
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\ncustos-chain {}\ncustos-time {}\n",
            self.origin,
            self.size,
            B64.encode(self.root),
            B64.encode(self.chain),
            self.time_ms
        )
    }

    /// The checkpoint a signed note carries, its signatures not checked
    /// ([`open`] checks them).
    pub fn of_note(note: &str) -> Result<Self, LedgerError> {
        Self::parse_body(split_note(note)?.0)
    }

    pub fn parse_body(body: &str) -> Result<Self, LedgerError> {
        let lines: Vec<&str> = body.strip_suffix('\n').unwrap_or(body).split('\n').collect();
        let [origin, size, root, rest @ ..] = lines.as_slice() else {
            return Err(bad("checkpoint has fewer than 3 lines"));
        };
        let size = size.parse().map_err(|_| bad(format!("checkpoint size {size:?} is not a number")))?;
        let hash = |b: &str, what: &str| -> Result<Hash, LedgerError> {
            B64.decode(b)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| bad(format!("checkpoint {what} is not a base64 SHA-256")))
        };
        let ext = |prefix: &str| rest.iter().find_map(|l| l.strip_prefix(prefix));
        let chain = hash(ext("custos-chain ").ok_or_else(|| bad("checkpoint has no custos-chain line"))?, "chain")?;
        let time_ms = ext("custos-time ")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("checkpoint has no custos-time line"))?;
        Ok(Self { origin: (*origin).to_owned(), size, root: hash(root, "root")?, chain, time_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_open_and_reject_tampering() {
        let s = NoteSigner::generate("custos.example/ledger").expect("key");
        let cp =
            Checkpoint { origin: "custos.example/ledger".into(), size: 3, root: [7; 32], chain: [9; 32], time_ms: 5 };
        let note = s.sign(&cp.body());
        assert!(note.contains("\n\n\u{2014} custos.example/ledger "));
        let keys = [s.verifier()];
        let (body, by) = open(&note, &keys).expect("verifies");
        assert_eq!(Checkpoint::parse_body(body).expect("body"), cp);
        assert_eq!(by, vec!["custos.example/ledger".to_owned()]);
        let tampered = note.replacen("\n3\n", "\n4\n", 1);
        assert!(open(&tampered, &keys).is_err());
        let other = NoteSigner::generate("custos.example/ledger").expect("key");
        assert!(open(&note, &[other.verifier()]).is_err(), "an unknown key is not trusted");
    }

    #[test]
    fn keys_round_trip_and_ids_are_checked() {
        let s = NoteSigner::generate("a").expect("key");
        let again = NoteSigner::parse(&s.encode()).expect("parse");
        assert_eq!(again.verifier(), s.verifier());
        let v = VerifierKey::parse(&s.verifier().encode()).expect("parse");
        assert_eq!(v, s.verifier());
        let wrong_id = format!("a+00000000+{}", s.verifier().encode().rsplit('+').next().unwrap_or(""));
        assert!(VerifierKey::parse(&wrong_id).is_err());
        assert!(NoteSigner::generate("has space").is_err());
    }

    /// The example keys published with Go's sumdb note package (the reference
    /// implementation of signed-note): the id in each string must match.
    #[test]
    fn reference_key_vectors() {
        let v = VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .expect("reference verifier key");
        assert_eq!(hex::encode(v.id), "c74f20a3");
        let s = NoteSigner::parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .expect("reference signer key");
        assert_eq!(s.verifier(), v);
    }

    #[test]
    fn witness_cosignatures_verify_and_do_not_disturb_the_log_signature() {
        let log = NoteSigner::generate("example.com/log").expect("key");
        let note = log.sign("example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
        let witness = WitnessSigner::from_seed("witness.example", [7u8; 32]);
        let wkey = WitnessKey::parse(&witness.verifier().encode()).expect("witness key round trips");
        let cosigned = witness.cosign(&note, 1_795_687_200).expect("cosign");
        assert!(open(&cosigned, &[log.verifier()]).is_ok(), "the log's own signature still checks");
        assert_eq!(
            cosignatures(&cosigned, std::slice::from_ref(&wkey)).expect("verifies"),
            [("witness.example".to_owned(), 1_795_687_200)]
        );
        assert_eq!(cosignatures(&note, std::slice::from_ref(&wkey)).expect("none"), []);
        let tampered = cosigned.replacen("\n5\n", "\n6\n", 1);
        assert!(cosignatures(&tampered, std::slice::from_ref(&wkey)).is_err(), "a changed body fails the cosignature");
        let other = WitnessSigner::from_seed("witness.example", [8u8; 32]).verifier();
        assert_eq!(cosignatures(&cosigned, &[other]).expect("another key's line is not ours"), []);
        assert!(WitnessKey::parse(&log.verifier().encode()).is_err(), "a log key is not a witness key");
    }
}
