//! RFC 9162 §2.1 Merkle tree maths. Pure: no I/O, no clock.
//!
//! leaf hash = SHA-256(0x00 || record), node hash = SHA-256(0x01 || left || right).

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(record: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(record);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Root of a tree over the given leaf hashes (the recursive MTH definition).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// Largest power of two strictly smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest
/// first. Appending is O(1) amortised; the root is O(log n). This is what the
/// ledger writer keeps instead of the whole tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (height, hash) of each perfect subtree, from the left.
    peaks: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        self.push_observed(leaf, |_, _| {});
    }

    /// `push`, telling `completed(height, hash)` of every perfect subtree the
    /// leaf completes (the stored tree hashes reuse these instead of hashing
    /// the same nodes again).
    pub fn push_observed(&mut self, leaf: Hash, mut completed: impl FnMut(u32, &Hash)) {
        let mut cur = (0u32, leaf);
        while let Some(&(h, left)) = self.peaks.last() {
            if h != cur.0 {
                break;
            }
            self.peaks.pop();
            cur = (h + 1, node_hash(&left, &cur.1));
            completed(cur.0, &cur.1);
        }
        self.peaks.push(cur);
        self.size += 1;
    }

    /// The tree head for the current size.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(&(_, mut acc)) = it.next() else { return empty_root() };
        for (_, left) in it {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Where proofs get subtree hashes from: the MTH of leaves `start..end`
/// (ranges the RFC 9162 recursion asks for). Leaves in memory, or the
/// ledger's stored tree hashes.
pub trait Subtrees {
    fn subtree(&self, start: u64, end: u64) -> Hash;
}

impl Subtrees for [Hash] {
    fn subtree(&self, start: u64, end: u64) -> Hash {
        root(&self[start as usize..end as usize])
    }
}

/// Largest power of two strictly smaller than `n` (n ≥ 2), for sizes.
fn split_u64(n: u64) -> u64 {
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// RFC 9162 §2.1.3.1 inclusion proof for leaf `index` in the tree of `size`.
pub fn inclusion_path(tree: &(impl Subtrees + ?Sized), index: u64, size: u64) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let (mut lo, mut hi, mut m) = (0, size, index);
    let mut stack = Vec::new();
    while hi - lo > 1 {
        let k = split_u64(hi - lo);
        if m < k {
            stack.push(tree.subtree(lo + k, hi));
            hi = lo + k;
        } else {
            stack.push(tree.subtree(lo, lo + k));
            lo += k;
            m -= k;
        }
    }
    stack.reverse();
    Some(stack)
}

/// RFC 9162 §2.1.3.1 inclusion proof for leaf `index` in the tree over `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    inclusion_path(leaves, index as u64, leaves.len() as u64)
}

/// RFC 9162 §2.1.4.1 consistency proof from the tree of `old` leaves to the
/// tree of `new` leaves (`0 < old <= new`); empty when they are equal.
pub fn consistency_path(tree: &(impl Subtrees + ?Sized), old: u64, new: u64) -> Option<Vec<Hash>> {
    if old == 0 || old > new {
        return None;
    }
    // SUBPROOF(m, D[lo..hi], whole): walk down, collecting from the bottom up.
    let (mut m, mut lo, hi0) = (old, 0u64, new);
    let mut hi = hi0;
    let mut whole = true;
    let mut tail = Vec::new();
    loop {
        let n = hi - lo;
        if m == n {
            if !whole {
                tail.push(tree.subtree(lo, hi));
            }
            break;
        }
        let k = split_u64(n);
        if m <= k {
            tail.push(tree.subtree(lo + k, hi));
            hi = lo + k;
        } else {
            tail.push(tree.subtree(lo, lo + k));
            lo += k;
            m -= k;
            whole = false;
        }
    }
    tail.reverse();
    Some(tail)
}

/// RFC 9162 §2.1.4.1 consistency proof between the trees over the first
/// `old` and `new` of `leaves`.
pub fn consistency_proof_over(leaves: &[Hash], old: u64, new: u64) -> Option<Vec<Hash>> {
    consistency_path(leaves.get(..new as usize)?, old, new)
}

/// RFC 9162 §2.1.4.2: checks that the tree of `new` leaves with `new_root`
/// extends the tree of `old` leaves with `old_root`. Rejects `old > new`,
/// proofs of the wrong length and any wrong element.
pub fn verify_consistency(old: u64, new: u64, proof: &[Hash], old_root: &Hash, new_root: &Hash) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        // Every tree extends the empty one.
        return proof.is_empty();
    }
    let mut path = proof.iter();
    let first = if old.is_power_of_two() {
        *old_root
    } else {
        match path.next() {
            Some(h) => *h,
            None => return false,
        }
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

/// RFC 9162 §2.1.3.2: checks that `leaf` is at `index` in the tree of `size` with `root`.
/// Rejects `index >= size` and proofs of the wrong length.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The RFC 6962 test leaves used by certificate-transparency and transparency-dev/merkle.
    fn kat_leaves() -> Vec<Hash> {
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
            .iter()
            .map(|h| leaf_hash(&hex::decode(h).unwrap_or_default()))
            .collect()
    }

    /// Roots of the first 1..=8 of those leaves.
    const KAT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn rfc6962_known_answers() {
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let leaves = kat_leaves();
        let mut f = Frontier::default();
        for (n, want) in KAT_ROOTS.iter().enumerate() {
            f.push(leaves[n]);
            assert_eq!(hex::encode(root(&leaves[..=n])), *want, "recursive root of {} leaves", n + 1);
            assert_eq!(hex::encode(f.root()), *want, "frontier root of {} leaves", n + 1);
        }
    }

    #[test]
    fn rfc6962_inclusion_path() {
        // Leaf 0 in the tree of 8: path of 3 hashes, as in the reference vectors.
        let leaves = kat_leaves();
        let proof = inclusion_proof(&leaves, 0).unwrap_or_default();
        assert_eq!(
            proof.iter().map(hex::encode).collect::<Vec<_>>(),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        let root8 = root(&leaves);
        assert!(verify_inclusion(0, 8, &leaves[0], &proof, &root8));
        assert!(!verify_inclusion(8, 8, &leaves[0], &proof, &root8), "index >= size is rejected");
        assert!(!verify_inclusion(1, 8, &leaves[0], &proof, &root8));
        assert!(!verify_inclusion(0, 8, &leaves[0], &proof[..2], &root8), "short proof is rejected");
    }

    /// The consistency proofs of the RFC 6962 reference implementation's tests.
    #[test]
    fn rfc6962_consistency_known_answers() {
        let leaves = kat_leaves();
        let hexes = |p: &[Hash]| p.iter().map(hex::encode).collect::<Vec<_>>();
        for (old, new, want) in [
            (1u64, 1u64, vec![]),
            (
                1,
                8,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                vec![
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                vec![
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ] {
            let proof = consistency_path(&leaves[..new as usize], old, new).unwrap_or_default();
            assert_eq!(hexes(&proof), want, "consistency {old} → {new}");
            let (r1, r2) = (root(&leaves[..old as usize]), root(&leaves[..new as usize]));
            assert!(verify_consistency(old, new, &proof, &r1, &r2));
            assert!(old == new || !verify_consistency(new, old, &proof, &r2, &r1), "old > new is rejected");
        }
        assert!(consistency_path(&leaves[..], 0, 8).is_none());
        assert!(consistency_path(&leaves[..], 9, 8).is_none());
    }

    proptest! {
        #[test]
        fn every_consistency_proof_verifies_and_tamper_fails(n in 1usize..45, seed in any::<u8>()) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&[seed, i as u8, (i >> 8) as u8])).collect();
            let r2 = root(&leaves);
            for m in 1..=n {
                let r1 = root(&leaves[..m]);
                let p = consistency_path(&leaves[..], m as u64, n as u64).unwrap_or_default();
                prop_assert!(verify_consistency(m as u64, n as u64, &p, &r1, &r2));
                for i in 0..p.len() {
                    let mut bad = p.clone();
                    bad[i] = leaf_hash(&bad[i]);
                    prop_assert!(!verify_consistency(m as u64, n as u64, &bad, &r1, &r2), "element {i} of {m}→{n}");
                }
                if !p.is_empty() {
                    prop_assert!(!verify_consistency(m as u64, n as u64, &p[..p.len() - 1], &r1, &r2), "short");
                }
                // A different old tree is not consistent.
                let other = leaf_hash(&r1);
                prop_assert!(m == n || !verify_consistency(m as u64, n as u64, &p, &other, &r2));
            }
        }

        #[test]
        fn every_inclusion_proof_verifies_and_tamper_fails(n in 1usize..70, seed in any::<u8>()) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&[seed, i as u8, (i >> 8) as u8])).collect();
            let r = root(&leaves);
            let mut f = Frontier::default();
            leaves.iter().for_each(|l| f.push(*l));
            prop_assert_eq!(f.root(), r);
            for i in 0..n {
                let p = inclusion_proof(&leaves, i).unwrap_or_default();
                prop_assert!(verify_inclusion(i as u64, n as u64, &leaves[i], &p, &r));
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0] = leaf_hash(first);
                    prop_assert!(!verify_inclusion(i as u64, n as u64, &leaves[i], &bad, &r));
                }
            }
        }
    }
}
