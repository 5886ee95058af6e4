//! Deterministic test data and byte comparison: seeded files whose every byte is known, so a test
//! compares what was served with the truth and a failure names the first differing offset
//! instead of printing megabytes of hex.

use sha2::{Digest, Sha256};

/// One kibibyte, in bytes.
pub const KIB: usize = 1024;
/// One mebibyte, in bytes.
pub const MIB: usize = 1024 * 1024;

/// `len` pseudo-random bytes from a xorshift64 generator seeded with `seed`: the same seed always
/// gives the same bytes, different seeds give different bytes.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Index of the first differing byte, or `None` when the shorter one is a prefix of the other
/// (lengths are not compared).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b.iter()).position(|(x, y)| x != y)
}

/// Asserts `got == want` byte for byte, reporting lengths and the first differing offset.
#[track_caller]
pub fn assert_bytes_eq(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    panic!(
        "{what}: bytes differ: got {} bytes (sha256 {}), want {} bytes (sha256 {}), \
         first difference at offset {:?}",
        got.len(),
        sha256_hex(got),
        want.len(),
        sha256_hex(want),
        first_difference(got, want)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_bytes_are_deterministic_and_seed_dependent() {
        assert_eq!(seeded_bytes(7, 1000), seeded_bytes(7, 1000));
        assert_ne!(seeded_bytes(7, 1000), seeded_bytes(8, 1000));
        assert_eq!(seeded_bytes(7, 13).len(), 13);
        assert_eq!(&seeded_bytes(7, 1000)[..13], &seeded_bytes(7, 13)[..]);
    }
}
