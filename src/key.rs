//! Sort keys shared by the stages: a text's first eight bytes as an integer, the sort of texts
//! by those keys, and a prefetch hint.
//!
//! A leaf module: the parser computes every record's keys once, the partitioner routes by
//! them, products are cached by them, the reduce and the CSV sink sort by them. Integer order
//! of [`prefix_key`] is byte order of the first eight bytes, so most comparisons of customer ids
//! and product codes are one integer compare, and sorts are radix sorts.

/// The first eight bytes, zero-padded, as a big-endian integer: integer order is byte order for
/// them, and for text of at most eight bytes without NUL (which the parser guarantees) the key is
/// unique.
///
/// Short texts are read as two overlapping loads of the largest width that fits (no byte loop,
/// no copy through memory).
#[inline]
pub fn prefix_key(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let be = |from: usize, width: usize| {
        bytes[from..from + width]
            .iter()
            .fold(0u64, |key, &b| (key << 8) | u64::from(b))
    };
    match n {
        8.. => u64::from_be_bytes(bytes[..8].try_into().expect("eight bytes")),
        4..8 => (be(0, 4) << 32) | (be(n - 4, 4) << (8 * (8 - n))),
        2..4 => (be(0, 2) << 48) | (be(n - 2, 2) << (8 * (8 - n))),
        1 => u64::from(bytes[0]) << 56,
        _ => 0,
    }
}

/// Sorts `entries` into the byte order of the texts they stand for. An entry holds its text's
/// [`prefix_key`] in the high 64 bits and where to find the text in the low 64: one integer sort
/// orders every pair of entries whose keys differ, and then each run of equal keys for which
/// `may_differ` holds (texts longer than eight bytes can share a key) is ordered by `text_of`.
pub fn sort_by_text<'t>(
    entries: &mut [u128],
    may_differ: impl Fn(&[u128]) -> bool,
    text_of: impl Fn(u128) -> &'t [u8],
) {
    radix_sort_high(entries);
    let mut i = 0;
    while i < entries.len() {
        let key = entries[i] >> 64;
        let j = i + entries[i..].iter().take_while(|&&e| e >> 64 == key).count();
        if j - i > 1 && may_differ(&entries[i..j]) {
            entries[i..j].sort_by(|&a, &b| text_of(a).cmp(text_of(b)));
        }
        i = j;
    }
}

/// When every entry of `entries` (as [`sort_by_text`] takes them) has the same key and their texts
/// share eight bytes or more (zero-padded ids, a `CUSTOMER-` prefix), no key tells two apart and
/// a sort would compare every text: each entry is then keyed by the [`prefix_key`] of its text
/// after the shared bytes, which orders them as their whole texts do, and its low 64 bits are
/// made `relabel(low bits, text after the shared bytes)`; otherwise the entries are left as they
/// are.
pub fn rekey_past_shared_bytes<'t>(
    entries: &mut [u128],
    text_of: impl Fn(u128) -> &'t [u8],
    relabel: impl Fn(u64, &[u8]) -> u64,
) {
    let Some(&first) = entries.first() else {
        return;
    };
    if entries.iter().any(|&e| e >> 64 != first >> 64) {
        return;
    }
    let first = text_of(first);
    let shared = entries.iter().fold(first.len(), |shared, &e| {
        common_prefix_len(&first[..shared], text_of(e))
    });
    if shared < 8 {
        return; // some text is no longer than the shared key: the keys already order them
    }
    for e in entries.iter_mut() {
        let rest = &text_of(*e)[shared..];
        *e = (u128::from(prefix_key(rest)) << 64) | u128::from(relabel(*e as u64, rest));
    }
}

/// How many first bytes `a` and `b` share.
pub fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    let words = a.chunks_exact(8).zip(b.chunks_exact(8));
    let same = words.take_while(|(x, y)| x == y).count() * 8;
    same + a[same..]
        .iter()
        .zip(&b[same..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// Sorts `entries` by their high 64 bits and then bit 63 (the flag of a text longer than eight
/// bytes in the reduce's index), leaving the other bits in no particular order: a
/// least-significant-digit radix sort that passes only over the bytes in which the keys differ
/// (a partition's customers share most of theirs), far cheaper than comparison sorting.
fn radix_sort_high(entries: &mut [u128]) {
    if entries.len() < 64 {
        entries.sort_unstable_by_key(|&e| ((e >> 64) as u64, (e as u64) >> 63));
        return;
    }
    let first = (entries[0] >> 64) as u64;
    let differ = entries
        .iter()
        .fold(0, |d, &e| d | ((e >> 64) as u64 ^ first));
    let flagged = entries.iter().any(|&e| (e as u64) >> 63 == 1);
    let mut scratch = vec![0u128; entries.len()];
    let (mut from, mut to) = (&mut *entries, &mut scratch[..]);
    let mut passes = 0;
    // The flag first (it is the least significant part), then each byte of the key that varies.
    let digits = flagged.then_some((63, 1)).into_iter().chain(
        (0..8)
            .filter(|b| (differ >> (8 * b)) & 0xff != 0)
            .map(|b| (64 + 8 * b, 0xff)),
    );
    for (shift, mask) in digits {
        let digit = |e: u128| ((e >> shift) as usize) & mask;
        let mut starts = [0usize; 256];
        for &e in from.iter() {
            starts[digit(e)] += 1;
        }
        let mut sum = 0;
        for start in &mut starts {
            (*start, sum) = (sum, sum + *start);
        }
        for &e in from.iter() {
            let d = digit(e);
            to[starts[d]] = e;
            starts[d] += 1;
        }
        std::mem::swap(&mut from, &mut to);
        passes += 1;
    }
    if passes % 2 == 1 {
        entries.copy_from_slice(&scratch);
    }
}

/// Asks the CPU to bring the cache line at the start of `bytes` in, without waiting for it.
#[inline]
pub fn prefetch_read(bytes: &[u8]) {
    prefetch_at(bytes.as_ptr());
}

/// [`prefetch_read`] of the line that holds `at`, which may be memory not yet written (a
/// buffer's spare capacity): the hint reads nothing the program sees.
#[inline]
pub fn prefetch_at(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is only a hint: it never faults and has no visible effect; SSE is
        // part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn radix_sort_orders_by_key_then_flag_and_keeps_every_entry(
            // Keys that differ in a few bytes (as in a partition), some flagged entries, and
            // sizes on both sides of the small-slice cut-over.
            parts in proptest::collection::vec(
                (0u64..4, 0u8..3, proptest::bool::ANY, proptest::num::u64::ANY),
                0..300,
            ),
            base in proptest::num::u64::ANY,
        ) {
            let entries: Vec<u128> = parts
                .iter()
                .map(|&(low, byte, flag, place)| {
                    let key = base ^ low ^ (u64::from(byte) << 40);
                    let place = (place >> 1) | (u64::from(flag) << 63);
                    (u128::from(key) << 64) | u128::from(place)
                })
                .collect();
            let mut sorted = entries.clone();
            radix_sort_high(&mut sorted);
            let order = |e: &u128| ((e >> 64) as u64, (*e as u64) >> 63);
            proptest::prop_assert!(sorted.windows(2).all(|w| order(&w[0]) <= order(&w[1])));
            let (mut a, mut b) = (entries, sorted.clone());
            a.sort_unstable();
            b.sort_unstable();
            proptest::prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn prefix_keys_are_the_first_eight_bytes_zero_padded() {
        let text = b"ABCDEFGHIJ";
        for n in 0..=text.len() {
            let mut key = [0u8; 8];
            let m = n.min(8);
            key[..m].copy_from_slice(&text[..m]);
            assert_eq!(prefix_key(&text[..n]), u64::from_be_bytes(key), "{n} bytes");
        }
    }
}
