//! Equality of byte strings for the SDK's hot paths (keys, column and table names).
//!
//! `==` on slices calls the C library's `memcmp`, which WASI libc implements one byte at a
//! time: in a component, comparing a UUID key cost more than hashing it.

/// Whether `a` and `b` hold the same bytes, compared eight at a time.
pub(crate) fn equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut a_words, mut b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |chunk: &[u8]| u64::from_ne_bytes(chunk.try_into().expect("chunks of eight bytes"));
    a_words.by_ref().zip(b_words.by_ref()).all(|(x, y)| word(x) == word(y))
        && a_words.remainder().iter().zip(b_words.remainder()).fold(0, |differ, (x, y)| differ | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::equal;

    #[test]
    fn equal_is_string_equality() {
        let texts = ["", "a", "b", "order_id", "order_ie", "order_id_", "3f1c0e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b"];
        for a in texts {
            for b in texts {
                assert_eq!(equal(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
        // A difference at every position of words and remainder.
        let base = "0123456789abcdefghijklmnopqrstuvwxyz";
        for i in 0..base.len() {
            let mut changed = base.as_bytes().to_vec();
            changed[i] = b'_';
            assert!(!equal(base, std::str::from_utf8(&changed).unwrap()), "a difference at {i}");
        }
    }
}
