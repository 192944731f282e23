//! A customer's state for incremental loads: everything its row depends on, so that new
//! transactions can be merged into it without reading the old ones again — the total units of
//! every product it bought, and its distinct purchase days as runs of consecutive days.
//!
//! The state is stored as one `bytea` a customer (see `docs/incremental.md` for why not arrays or
//! a row per product): a version byte, then
//! `n varint, n × (len u8, code, total zigzag varint)` with the codes in byte order, then
//! `m varint, m × (gap varint, length varint)` with the runs in day order, the first gap being
//! the zigzag of the first run's start day and each later one the days between the end of the
//! run before and the start of this one (at least 1: runs are maximal).

use super::rules::favourite_product;
use crate::error::{Error, Result};
use crate::partition::{put_varint, unzigzag, zigzag};

/// The encoding's version, its first byte.
const VERSION: u8 = 1;

/// One customer's state, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerState {
    /// Product codes in byte order, with their total units.
    pub totals: Vec<(Vec<u8>, i64)>,
    /// Maximal runs of consecutive days, `(first day, days)`, in day order, apart by a day or more.
    pub runs: Vec<(i32, u32)>,
}

impl CustomerState {
    /// The state of `totals` (any order; each code once) and `days` (any order, repeats
    /// allowed; sorted in place). (The reduce encodes without making it: [`Self::encode_new`].)
    #[cfg(test)]
    pub fn new<'a>(totals: impl IntoIterator<Item = (&'a [u8], i64)>, days: &mut [i32]) -> Self {
        let mut totals: Vec<(Vec<u8>, i64)> =
            totals.into_iter().map(|(c, t)| (c.to_vec(), t)).collect();
        totals.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        CustomerState {
            totals,
            runs: runs_of(days),
        }
    }

    /// The favourite product: the greatest total, ties to the smallest code (contract §3).
    pub fn favourite(&self) -> &[u8] {
        favourite_product(self.totals.iter().map(|(c, t)| (c.as_slice(), *t)))
    }

    /// The longest run of consecutive days.
    pub fn longest_streak(&self) -> i32 {
        self.runs.iter().map(|&(_, n)| n as i32).max().unwrap_or(0)
    }

    /// `self` and `other` together, as if their transactions had been read in one run: totals
    /// of the same code summed, the days' union. `customer` names an overflow.
    pub fn merge(&self, other: &CustomerState, customer: &[u8]) -> Result<CustomerState> {
        let mut totals = Vec::with_capacity(self.totals.len() + other.totals.len());
        let (mut a, mut b) = (
            self.totals.iter().peekable(),
            other.totals.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => a.next().cloned(),
                (None, Some(_)) => b.next().cloned(),
                (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                    std::cmp::Ordering::Less => a.next().cloned(),
                    std::cmp::Ordering::Greater => b.next().cloned(),
                    std::cmp::Ordering::Equal => {
                        let sum = x.1.checked_add(y.1);
                        let (x, _) = (a.next().expect("peeked"), b.next());
                        let sum = sum.ok_or_else(|| Error::product_total_overflow(customer))?;
                        Some((x.0.clone(), sum))
                    }
                },
            };
            totals.extend(next);
        }
        let mut runs: Vec<(i32, u32)> = Vec::with_capacity(self.runs.len() + other.runs.len());
        let mut all: Vec<(i32, u32)> = self.runs.iter().chain(&other.runs).copied().collect();
        all.sort_unstable();
        for (start, len) in all {
            let end = i64::from(start) + i64::from(len); // one past the run's last day
            match runs.last_mut() {
                Some((s, n)) if i64::from(start) <= i64::from(*s) + i64::from(*n) => {
                    *n = (*n).max((end - i64::from(*s)) as u32);
                }
                _ => runs.push((start, len)),
            }
        }
        Ok(CustomerState { totals, runs })
    }

    /// Appends the state's bytes to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let totals = self
            .totals
            .iter()
            .map(|(code, total)| (code.as_slice(), *total));
        encode_parts(buf, totals, &self.runs);
    }

    /// Appends the bytes of the state of `totals` (any order; each code once; sorted in place)
    /// and `days` (any order, repeats allowed; sorted in place) to `buf`, without making the
    /// state: what the reduce hands on for each customer.
    pub fn encode_new(buf: &mut Vec<u8>, totals: &mut [(&[u8], i64)], days: &mut [i32]) {
        totals.sort_unstable_by(|a, b| a.0.cmp(b.0));
        encode_parts(buf, totals.iter().copied(), &runs_of(days));
    }

    /// The state in `bytes`, or why they are not one.
    pub fn decode(bytes: &[u8]) -> Result<CustomerState, String> {
        let mut r = Reader { bytes };
        match r.byte()? {
            VERSION => {}
            v => return Err(format!("state version {v}; this custagg reads {VERSION}")),
        }
        let n = r.varint()?;
        let mut totals = Vec::with_capacity(n.min(1 << 16) as usize);
        for _ in 0..n {
            let len = usize::from(r.byte()?);
            let code = r.take(len)?.to_vec();
            totals.push((code, unzigzag(r.varint()?)));
        }
        let m = r.varint()?;
        let mut runs = Vec::with_capacity(m.min(1 << 16) as usize);
        let mut end: Option<i64> = None;
        for _ in 0..m {
            let gap = r.varint()?;
            let start = match end {
                None => unzigzag(gap),
                Some(end) => end + gap as i64,
            };
            let len = r.varint()?;
            let (start, len) = match (i32::try_from(start), u32::try_from(len)) {
                (Ok(s), Ok(n)) if n > 0 => (s, n),
                _ => return Err("a run of days out of range".into()),
            };
            end = Some(i64::from(start) + i64::from(len));
            runs.push((start, len));
        }
        if !r.bytes.is_empty() {
            return Err(format!("{} bytes after the state", r.bytes.len()));
        }
        Ok(CustomerState { totals, runs })
    }
}

/// The encoding of totals in code order and maximal runs in day order.
fn encode_parts<'a>(
    buf: &mut Vec<u8>,
    totals: impl ExactSizeIterator<Item = (&'a [u8], i64)>,
    runs: &[(i32, u32)],
) {
    buf.push(VERSION);
    put_varint(buf, totals.len() as u64);
    for (code, total) in totals {
        buf.push(code.len() as u8);
        buf.extend_from_slice(code);
        put_varint(buf, zigzag(total));
    }
    put_varint(buf, runs.len() as u64);
    let mut end = None;
    for &(start, len) in runs {
        let gap = match end {
            None => zigzag(i64::from(start)),
            Some(end) => (i64::from(start) - end) as u64,
        };
        put_varint(buf, gap);
        put_varint(buf, u64::from(len));
        end = Some(i64::from(start) + i64::from(len));
    }
}

/// The maximal runs of consecutive days among `days` (sorted in place).
fn runs_of(days: &mut [i32]) -> Vec<(i32, u32)> {
    days.sort_unstable();
    let mut runs: Vec<(i32, u32)> = Vec::new();
    for &day in days.iter() {
        match runs.last_mut() {
            Some((start, n)) if i64::from(*start) + i64::from(*n) == i64::from(day) => *n += 1,
            Some((start, n)) if i64::from(*start) + i64::from(*n) > i64::from(day) => {}
            _ => runs.push((day, 1)),
        }
    }
    runs
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let (&b, rest) = self.bytes.split_first().ok_or("the state ends early")?;
        self.bytes = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("the state ends early".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.byte()?;
            if shift > 63 {
                return Err("a number too long".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reduce::longest_streak;

    fn state(totals: &[(&str, i64)], days: &[i32]) -> CustomerState {
        let mut days = days.to_vec();
        CustomerState::new(totals.iter().map(|(c, t)| (c.as_bytes(), *t)), &mut days)
    }

    #[test]
    fn round_trips() {
        let s = state(
            &[("B", 5), ("A", -3), ("PURA250", i64::MAX)],
            &[10, 11, 11, 14, 15, 16, -40_000, i32::MAX, i32::MIN],
        );
        assert_eq!(
            s.runs,
            [(i32::MIN, 1), (-40_000, 1), (10, 2), (14, 3), (i32::MAX, 1)]
        );
        let mut bytes = Vec::new();
        s.encode(&mut bytes);
        assert_eq!(CustomerState::decode(&bytes), Ok(s));
        assert!(CustomerState::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(
            CustomerState::decode(&[2])
                .unwrap_err()
                .contains("version 2")
        );
        bytes.push(0);
        assert!(CustomerState::decode(&bytes).is_err());
    }

    #[test]
    fn encoding_without_the_state_is_the_same() {
        let mut days = [14, 10, 11, 11, 16, 15];
        let mut totals: Vec<(&[u8], i64)> = vec![(b"B", 5), (b"A", -3), (b"PURA250", 7)];
        let (mut direct, mut via) = (Vec::new(), Vec::new());
        CustomerState::encode_new(&mut direct, &mut totals, &mut days);
        state(&[("B", 5), ("A", -3), ("PURA250", 7)], &days).encode(&mut via);
        assert_eq!(direct, via);
    }

    #[test]
    fn merging_equals_reading_together() {
        // Day 10 in one part and 11 in the other make one run; a tie is broken by the code.
        let a = state(&[("B", 5), ("C", 1)], &[10, 20, 30]);
        let b = state(&[("A", 5), ("C", 1)], &[11, 29, 31, 20]);
        let merged = a.merge(&b, b"c").unwrap();
        assert_eq!(
            merged,
            state(&[("A", 5), ("B", 5), ("C", 2)], &[10, 11, 20, 29, 30, 31])
        );
        assert_eq!(merged.favourite(), b"A");
        assert_eq!(merged.longest_streak(), 3);
        assert_eq!(b.merge(&a, b"c").unwrap(), merged);
        let over = state(&[("A", i64::MAX)], &[1]);
        assert!(over.merge(&over, b"c").is_err());
    }

    #[test]
    fn merges_of_random_days_are_their_union() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i32
        };
        for _ in 0..500 {
            let a: Vec<i32> = (0..next() % 12).map(|_| next() % 40).collect();
            let b: Vec<i32> = (0..next() % 12 + 1).map(|_| next() % 40).collect();
            let mut all = [a.clone(), b.clone()].concat();
            let (sa, sb) = (state(&[("X", 1)], &a), state(&[("X", 1)], &b));
            let merged = sa.merge(&sb, b"c").unwrap();
            assert_eq!(merged, state(&[("X", 2)], &all));
            assert_eq!(merged.longest_streak(), longest_streak(&mut all));
        }
    }
}
