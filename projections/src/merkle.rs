//! RFC 9162 (Certificate Transparency 2.0) Merkle trees over ledger records: the tree
//! head of a sequence of leaves, computed as the leaves stream past in memory that grows
//! with the logarithm of their number, and consistency proofs that a tree of `m` leaves
//! is a prefix of a tree of `n` leaves (RFC 9162 section 2.1.4).
//!
//! Hashes (RFC 9162 section 2.1.1): a leaf is `SHA-256(0x00 || data)`, an inner node
//! `SHA-256(0x01 || left || right)`, the empty tree `SHA-256()`. For `n > 1` leaves the
//! left subtree holds the largest power of two smaller than `n`.

use ledger_core::chain::Hash32;
use sha2::{Digest, Sha256};

/// `SHA-256(0x00 || data)`: the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Hash32 {
    Hash32::from_bytes(Sha256::new().chain_update([0u8]).chain_update(data).finalize().into())
}

/// `SHA-256(0x01 || left || right)`: the hash of an inner node.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    Hash32::from_bytes(
        Sha256::new()
            .chain_update([1u8])
            .chain_update(left.as_bytes())
            .chain_update(right.as_bytes())
            .finalize()
            .into(),
    )
}

/// The root of the empty tree, `SHA-256()` of nothing.
pub fn empty_root() -> Hash32 {
    Hash32::digest(&[])
}

/// The tree head of leaves pushed one at a time, in order. Holds one hash per bit set in
/// the number of leaves (the complete subtrees so far, as a binary counter holds carries).
#[derive(Debug, Clone, Default)]
pub struct TreeBuilder {
    /// `(size, hash)` of complete subtrees, sizes strictly decreasing powers of two.
    stack: Vec<(u64, Hash32)>,
    size: u64,
}

impl TreeBuilder {
    /// An empty tree.
    pub fn new() -> Self {
        TreeBuilder::default()
    }

    /// Appends a leaf whose data is `data`.
    pub fn push(&mut self, data: &[u8]) {
        self.push_leaf_hash(leaf_hash(data));
    }

    /// Appends a leaf by its leaf hash ([`leaf_hash`]).
    pub fn push_leaf_hash(&mut self, hash: Hash32) {
        let mut node = (1u64, hash);
        while let Some(&(size, left)) = self.stack.last() {
            if size != node.0 {
                break;
            }
            self.stack.pop();
            node = (size * 2, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// Leaves pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree head (RFC 9162 `MTH`) of the leaves pushed so far.
    pub fn root(&self) -> Hash32 {
        let mut nodes = self.stack.iter().rev();
        let Some(&(_, mut acc)) = nodes.next() else { return empty_root() };
        for (_, left) in nodes {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The leaf ranges `[start, end)` whose subtree hashes make the consistency proof from a
/// tree of `old` leaves to one of `new` leaves (RFC 9162 section 2.1.4.1, `PROOF(m,
/// D[n])`), in proof order. Empty when `old == 0` or `old == new` (nothing to prove) and
/// when `old > new` (nothing can be).
pub fn consistency_ranges(old: u64, new: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if old == 0 || old >= new {
        return out;
    }
    subproof(old, 0, new, true, &mut out);
    out
}

/// `SUBPROOF(m, D[start:end], b)`, appending ranges in proof order.
fn subproof(m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if m == n {
        if !whole {
            out.push((start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, start, start + k, whole, out);
        out.push((start + k, end));
    } else {
        subproof(m - k, start + k, end, false, out);
        out.push((start, start + k));
    }
}

/// Computes the hashes of a set of disjoint leaf ranges from leaves streamed in order
/// (the ranges of a consistency proof), each with a [`TreeBuilder`] of its own.
#[derive(Debug, Clone)]
pub struct RangeHasher {
    /// `(start, end, builder)`, in the order the proof lists them.
    ranges: Vec<(u64, u64, TreeBuilder)>,
    next: u64,
}

impl RangeHasher {
    /// Hashers for `ranges` (`[start, end)` leaf indexes from 0).
    pub fn new(ranges: &[(u64, u64)]) -> Self {
        RangeHasher { ranges: ranges.iter().map(|&(s, e)| (s, e, TreeBuilder::new())).collect(), next: 0 }
    }

    /// Feeds the next leaf (index 0 first) by its leaf hash.
    pub fn push_leaf_hash(&mut self, hash: Hash32) {
        let index = self.next;
        self.next += 1;
        if let Some((_, _, builder)) = self.ranges.iter_mut().find(|(s, e, _)| (*s..*e).contains(&index)) {
            builder.push_leaf_hash(hash);
        }
    }

    /// The ranges' hashes in order; `None` if fewer leaves were fed than a range needs.
    pub fn finish(self) -> Option<Vec<Hash32>> {
        self.ranges.into_iter().map(|(s, e, b)| (b.size() == e - s).then(|| b.root())).collect()
    }
}

/// Whether `proof` shows that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root` (RFC 9162 section
/// 2.1.4.2). Sizes equal: the roots must be equal and the proof empty.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash32,
    new_root: &Hash32,
    proof: &[Hash32],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    // Steps 1 to 7 of RFC 9162 section 2.1.4.2.
    let mut path: Vec<Hash32> = proof.to_vec();
    if old_size.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let Some((&first, rest)) = path.split_first() else { return false };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &fr == old_root && &sr == new_root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 9162's `MTH` by its recursive definition, the oracle for the streaming form.
    fn mth(leaves: &[Vec<u8>]) -> Hash32 {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    fn proof(all: &[Vec<u8>], old: u64) -> Vec<Hash32> {
        let ranges = consistency_ranges(old, all.len() as u64);
        let mut hasher = RangeHasher::new(&ranges);
        for leaf in all {
            hasher.push_leaf_hash(leaf_hash(leaf));
        }
        hasher.finish().expect("all leaves fed")
    }

    #[test]
    fn known_vectors() {
        // TC0: the empty tree is SHA-256 of nothing.
        assert_eq!(empty_root().to_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        // TC1: one empty leaf is SHA-256(0x00) (RFC 6962 test data, Go's merkle tests).
        let mut one = TreeBuilder::new();
        one.push(b"");
        assert_eq!(one.root().to_hex(), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    #[test]
    fn proof_ranges_follow_the_rfc_example() {
        // RFC 9162 2.1.5: the proof between the trees of 3 and 7 leaves is [c, d, g, l]:
        // leaf 2, leaf 3, leaves 0..2, leaves 4..7.
        assert_eq!(consistency_ranges(3, 7), vec![(2, 3), (3, 4), (0, 2), (4, 7)]);
        // ... of 4 and 7: [l] (the old root is the first node itself).
        assert_eq!(consistency_ranges(4, 7), vec![(4, 7)]);
        // ... of 6 and 7: [i, j, k]: leaves 4..6, leaf 6, leaves 0..4.
        assert_eq!(consistency_ranges(6, 7), vec![(4, 6), (6, 7), (0, 4)]);
    }

    proptest! {
        #[test]
        fn streaming_root_is_the_recursive_root(n in 0usize..200) {
            let all = leaves(n);
            let mut builder = TreeBuilder::new();
            for leaf in &all {
                builder.push(leaf);
            }
            prop_assert_eq!(builder.root(), mth(&all));
        }

        #[test]
        fn proofs_verify_and_a_changed_prefix_does_not(new in 1u64..150, old_frac in 0.0f64..=1.0, flip in 0usize..150) {
            let old = ((new as f64 * old_frac) as u64).clamp(1, new);
            let all = leaves(new as usize);
            let (old_root, new_root) = (mth(&all[..old as usize]), mth(&all));
            let p = proof(&all, old);
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &p));
            // A history rewritten inside the old tree is no extension of it.
            let mut rewritten = all.clone();
            let at = flip % old as usize;
            rewritten[at].push(b'!');
            let p2 = proof(&rewritten, old);
            prop_assert!(!verify_consistency(old, new, &old_root, &mth(&rewritten), &p2));
            // Nor is any proof node changed.
            if !p.is_empty() {
                let mut bad = p.clone();
                let i = flip % bad.len();
                bad[i] = leaf_hash(b"other");
                prop_assert!(!verify_consistency(old, new, &old_root, &new_root, &bad));
            }
        }
    }
}
