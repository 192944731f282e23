//! The SIMD splitter: records without quotes or stray carriage returns — nearly all of them in
//! practice — are split from bit masks of the delimiter, line feeds, quotes and carriage returns
//! (AVX2 or SSE2, 64 bytes at a time), without looking at each byte. Quotes that enclose whole
//! fields are stripped here too, as files that quote every field have them. Anything else goes
//! to csv-core (see `quoted`); both give the same fields for the records this module takes.

/// A field of a record: its bytes are `data[start..end]` of the chunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub start: usize,
    pub end: usize,
}

/// A record the splitter took: where the next record starts, and how many fields it had
/// (which may be more than the spans it was given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Split {
    pub next: usize,
    pub fields: usize,
}

/// Splits the record at `data[start..]` at `delimiter` into `spans` (byte ranges of `data`), if it
/// holds no quote and no carriage return other than one before its line feed. Returns the
/// position after the record and its number of fields (which may exceed `spans.len()`), or
/// `None` when the record needs the full CSV parser.
pub(super) fn split_plain(
    specials: &mut Specials<'_>,
    start: usize,
    spans: &mut [Span],
) -> Option<Split> {
    let data = specials.data;
    let mut count = 0;
    let mut field_start = start;
    let mut push = |end: usize, field_start: usize, count: &mut usize| {
        if let Some(span) = spans.get_mut(*count) {
            *span = Span {
                start: field_start,
                end,
            };
        }
        *count += 1;
    };
    specials.seek(start);
    loop {
        let Some(j) = specials.next() else {
            push(data.len(), field_start, &mut count);
            return Some(Split {
                next: data.len(),
                fields: count,
            });
        };
        match data[j] {
            b'\n' => {
                push(j, field_start, &mut count);
                return Some(Split {
                    next: j + 1,
                    fields: count,
                });
            }
            b'\r' if data.get(j + 1) == Some(&b'\n') => {
                push(j, field_start, &mut count);
                return Some(Split {
                    next: j + 2,
                    fields: count,
                });
            }
            b'\r' if j + 1 == data.len() => {
                push(j, field_start, &mut count);
                return Some(Split {
                    next: data.len(),
                    fields: count,
                });
            }
            b if b == specials.delimiter => {
                push(j, field_start, &mut count);
                field_start = j + 1;
            }
            _ => return None, // a quote, or a carriage return inside the line
        }
    }
}

/// The fast way through a chunk's plain records: bit masks of a 128-byte window of the chunk —
/// delimiters, line feeds, and the bytes that need the general path (quotes, and carriage returns
/// not followed by a line feed) — from which a record's fields come out of a few bit operations,
/// without looking at each special byte. The window moves on by 64 bytes as records are taken.
pub(super) struct Window<'d> {
    data: &'d [u8],
    delimiter: u8,
    /// Where the window starts.
    base: usize,
    delimiters: u128,
    line_feeds: u128,
    quotes: u128,
    carriage_returns: u128,
    /// Quotes, and carriage returns not followed by a line feed (one at the window's last byte
    /// counts, as its next byte is not known yet).
    odd: u128,
}

/// How far ahead of the window the parser asks for the chunk's bytes.
const PREFETCH_BYTES: usize = 1024;

impl<'d> Window<'d> {
    pub(super) fn new(data: &'d [u8], delimiter: u8) -> Self {
        let mut window = Window {
            data,
            delimiter,
            base: 0,
            delimiters: 0,
            line_feeds: 0,
            quotes: 0,
            carriage_returns: 0,
            odd: 0,
        };
        window.fill(0);
        window
    }

    /// Starts the window at `base`.
    fn fill(&mut self, base: usize) {
        self.base = base;
        let low = class_masks(self.data, base, self.delimiter);
        let high = class_masks(self.data, base + 64, self.delimiter);
        let join = |i: usize| u128::from(low[i]) | (u128::from(high[i]) << 64);
        (self.delimiters, self.line_feeds) = (join(0), join(1));
        (self.quotes, self.carriage_returns) = (join(2), join(3));
        self.set_odd();
    }

    /// Moves the window on by 64 bytes.
    fn slide(&mut self) {
        self.base += 64;
        // Hardware prefetchers stop at page borders: ask for the bytes a little ahead.
        if let Some(ahead) = self.data.get(self.base + PREFETCH_BYTES..) {
            crate::key::prefetch_read(ahead);
        }
        let high = class_masks(self.data, self.base + 64, self.delimiter);
        let slide = |old: u128, new: u64| (old >> 64) | (u128::from(new) << 64);
        self.delimiters = slide(self.delimiters, high[0]);
        self.line_feeds = slide(self.line_feeds, high[1]);
        self.quotes = slide(self.quotes, high[2]);
        self.carriage_returns = slide(self.carriage_returns, high[3]);
        self.set_odd();
    }

    fn set_odd(&mut self) {
        self.odd = self.quotes | (self.carriage_returns & !(self.line_feeds >> 1));
    }

    /// Splits the record at `start` into `spans`, like [`split_plain`], when it is plain, lies
    /// within the window and has exactly `spans.len()` fields; `None` sends it the general way.
    ///
    /// A record shorter than 64 bytes — nearly all of them — is split with the masks' 64 bits
    /// from `start` (one shift of each 128-bit mask, the rest on machine words); a longer one
    /// with the whole 128-bit masks.
    #[inline]
    pub(super) fn split(&mut self, start: usize, spans: &mut [Span]) -> Option<Split> {
        if start - self.base >= 64 {
            if start - self.base < 128 {
                self.slide();
            } else {
                self.fill(start);
            }
        }
        let shift = start - self.base; // below 64
        let line_feeds = (self.line_feeds >> shift) as u64;
        if line_feeds != 0 {
            let len = line_feeds.trailing_zeros() as usize;
            let inside = |mask: u128| (mask >> shift) as u64 & ((1u64 << len) - 1);
            return self.take_record(start, len, inside, spans);
        }
        let line_feeds = self.line_feeds >> shift;
        if line_feeds == 0 {
            return None; // longer than the window, or the chunk's last record without a line end
        }
        let len = line_feeds.trailing_zeros() as usize;
        let inside = |mask: u128| (mask >> shift) & ((1u128 << len) - 1);
        self.take_record(start, len, inside, spans)
    }

    /// Splits the record of `len` bytes at `start`, whose bits of a window mask `inside` gives
    /// (bit `i`: `start + i`), by [`Window::take_fields`], or by [`Window::take_quoted_fields`]
    /// when it holds quotes or a stray carriage return.
    #[inline(always)]
    fn take_record<M: MaskWord>(
        &self,
        start: usize,
        len: usize,
        inside: impl Fn(u128) -> M,
        spans: &mut [Span],
    ) -> Option<Split> {
        let (delimiters, odd) = (inside(self.delimiters), inside(self.odd));
        if !odd.is_zero() {
            let quotes = inside(self.quotes);
            return self.take_quoted_fields(start, len, delimiters, odd, quotes, spans);
        }
        self.take_fields(start, len, delimiters, spans)
    }

    /// [`Window::take_fields`] for a record with quotes (`quotes`; `odd` are those and any
    /// carriage return not before a line feed): when every quote opens or closes a whole field
    /// (`"…"` between two delimiters, with no quote, delimiter or line break inside), as files that
    /// quote every field have them, the fields are the texts between the quotes — what RFC 4180
    /// reads there. Any other quoting, or a stray carriage return, goes the general way: a
    /// delimiter or line break inside quotes leaves a field that opens with a quote and does not
    /// close with one, and a doubled quote leaves quotes inside a field.
    #[inline(never)]
    fn take_quoted_fields<M: MaskWord>(
        &self,
        start: usize,
        len: usize,
        delimiters: M,
        odd: M,
        quotes: M,
        spans: &mut [Span],
    ) -> Option<Split> {
        if odd != quotes {
            return None;
        }
        let split = self.take_fields(start, len, delimiters, spans)?;
        let mut enclosing = M::default();
        for span in spans.iter_mut() {
            let Span { start: a, end: b } = *span;
            if a < b && quotes.has(a - start) {
                if b - a < 2 {
                    return None;
                }
                enclosing = enclosing.with(a - start).with(b - 1 - start);
                *span = Span {
                    start: a + 1,
                    end: b - 1,
                };
            }
        }
        (enclosing == quotes).then_some(split)
    }

    /// Fills `spans` with the fields of the plain record of `len` bytes at `start` whose
    /// delimiters are the set bits of `delimiters` (bit `i`: `start + i`), when it has exactly
    /// `spans.len()` fields.
    #[inline(always)]
    fn take_fields<M: MaskWord>(
        &self,
        start: usize,
        len: usize,
        mut delimiters: M,
        spans: &mut [Span],
    ) -> Option<Split> {
        let count = spans.len();
        let (last, fields) = spans.split_last_mut()?;
        // One delimiter per field but the last, and none left over (a count of the mask's bits
        // would do, but without the POPCNT instruction in the baseline it costs more than this).
        let mut field_start = start;
        for span in fields {
            if delimiters.is_zero() {
                return None;
            }
            let end = start + delimiters.lowest();
            *span = Span {
                start: field_start,
                end,
            };
            field_start = end + 1;
            delimiters = delimiters.without_lowest();
        }
        if !delimiters.is_zero() {
            return None;
        }
        let line_feed = start + len;
        let crlf = line_feed > field_start && self.data[line_feed - 1] == b'\r';
        *last = Span {
            start: field_start,
            end: line_feed - usize::from(crlf),
        };
        Some(Split {
            next: line_feed + 1,
            fields: count,
        })
    }
}

/// The bit operations [`Window::take_fields`] needs, on a 64- or a 128-bit mask.
trait MaskWord: Copy + Default + PartialEq {
    fn is_zero(self) -> bool;
    /// The index of the lowest set bit (the mask is not zero).
    fn lowest(self) -> usize;
    /// The mask without its lowest set bit.
    fn without_lowest(self) -> Self;
    /// Whether bit `i` is set.
    fn has(self, i: usize) -> bool;
    /// The mask with bit `i` set.
    fn with(self, i: usize) -> Self;
}

macro_rules! mask_word {
    ($($t:ty),*) => {$(
        impl MaskWord for $t {
            #[inline(always)]
            fn is_zero(self) -> bool {
                self == 0
            }
            #[inline(always)]
            fn lowest(self) -> usize {
                self.trailing_zeros() as usize
            }
            #[inline(always)]
            fn without_lowest(self) -> Self {
                self & (self - 1)
            }
            #[inline(always)]
            fn has(self, i: usize) -> bool {
                (self >> i) & 1 == 1
            }
            #[inline(always)]
            fn with(self, i: usize) -> Self {
                self | (1 << i)
            }
        }
    )*};
}

mask_word!(u64, u128);

/// The bytes [`class_masks`] marks, in the order of its masks.
fn classes(delimiter: u8) -> [u8; 4] {
    [delimiter, b'\n', b'"', b'\r']
}

/// Masks of the delimiter, line feeds, quotes and carriage returns among the up to 64 bytes from
/// `from` (bit `i` for `data[from + i]`).
#[inline]
fn class_masks(data: &[u8], from: usize, delimiter: u8) -> [u64; 4] {
    match data.get(from..from + 64) {
        Some(window) => class_masks64(window.try_into().expect("64 bytes"), delimiter),
        None => class_masks_bytewise(data.get(from..).unwrap_or_default(), delimiter),
    }
}

/// [`class_masks`] of up to 64 bytes, one byte at a time.
fn class_masks_bytewise(bytes: &[u8], delimiter: u8) -> [u64; 4] {
    let classes = classes(delimiter);
    let mut masks = [0u64; 4];
    for (i, &b) in bytes.iter().enumerate() {
        for (mask, &class) in masks.iter_mut().zip(&classes) {
            *mask |= u64::from(b == class) << i;
        }
    }
    masks
}

#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn class_masks64(window: &[u8; 64], delimiter: u8) -> [u64; 4] {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above; std caches the answer).
        return unsafe { class_masks64_avx2(window, delimiter) };
    }
    // SAFETY: SSE2 is part of the x86_64 baseline, so every CPU that runs this code has it.
    unsafe { class_masks64_sse2(window, delimiter) }
}

/// [`class_masks`] of a whole window with AVX2: a 32-byte compare and a `movemask` per class
/// and half window.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) fn class_masks64_avx2(window: &[u8; 64], delimiter: u8) -> [u64; 4] {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    let classes = classes(delimiter).map(|b| _mm256_set1_epi8(b as i8));
    let (low, high) = window.split_at(32);
    // SAFETY: each half is 32 readable bytes; the load has no alignment requirement.
    let (low, high) = unsafe {
        (
            _mm256_loadu_si256(low.as_ptr().cast::<__m256i>()),
            _mm256_loadu_si256(high.as_ptr().cast::<__m256i>()),
        )
    };
    classes.map(|class| {
        let bits = |v| u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, class)) as u32);
        bits(low) | (bits(high) << 32)
    })
}

/// [`class_masks`] of a whole window with SSE2: a 16-byte compare and a `movemask` per class
/// and 16 bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
pub(super) fn class_masks64_sse2(window: &[u8; 64], delimiter: u8) -> [u64; 4] {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8};
    let classes = classes(delimiter).map(|b| _mm_set1_epi8(b as i8));
    let mut masks = [0u64; 4];
    for (k, part) in window.chunks_exact(16).enumerate() {
        let word = |i: usize| i64::from_le_bytes(part[i..i + 8].try_into().expect("eight bytes"));
        let v = _mm_set_epi64x(word(8), word(0));
        for (mask, class) in masks.iter_mut().zip(classes) {
            *mask |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, class)) as u16) << (16 * k);
        }
    }
    masks
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn class_masks64(window: &[u8; 64], delimiter: u8) -> [u64; 4] {
    class_masks_bytewise(window, delimiter)
}

/// The positions of the delimiter, quotes, CR and LF in a chunk, in order, found 64 bytes at a
/// time: one bit mask per window, from which each position is taken with a count of trailing
/// zeros. Every byte is looked at once, however short the fields.
pub(super) struct Specials<'d> {
    data: &'d [u8],
    delimiter: u8,
    /// Where the window of `bits` starts.
    base: usize,
    /// Bit `i` set: `data[base + i]` is special and not taken yet.
    bits: u64,
}

impl<'d> Specials<'d> {
    pub(super) fn new(data: &'d [u8], delimiter: u8) -> Self {
        Specials {
            data,
            delimiter,
            base: 0,
            bits: special_mask(data, 0, delimiter),
        }
    }

    /// Goes to `pos`: positions before it are dropped.
    #[inline]
    pub(super) fn seek(&mut self, pos: usize) {
        if (self.base..self.base + 64).contains(&pos) {
            self.bits &= u64::MAX << (pos - self.base);
        } else {
            self.base = pos;
            self.bits = special_mask(self.data, pos, self.delimiter);
        }
    }

    /// The next special position, if any.
    #[inline]
    pub(super) fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.base += 64;
            if self.base >= self.data.len() {
                return None;
            }
            self.bits = special_mask(self.data, self.base, self.delimiter);
        }
        let at = self.base + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(at)
    }
}

/// Bit `i` set when `data[from + i]` is the delimiter, a quote, CR or LF (for the up to 64 bytes
/// from `from`).
#[inline]
fn special_mask(data: &[u8], from: usize, delimiter: u8) -> u64 {
    class_masks(data, from, delimiter)
        .into_iter()
        .fold(0, |bits, mask| bits | mask)
}
