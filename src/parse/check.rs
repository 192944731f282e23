//! The field checks of contract §2: texts of 1 to 255 bytes of UTF-8 without NUL, real
//! calendar dates, units that fit 32 bits. The common case of each is checked in straight-line
//! code on machine words; anything in doubt gets the full check, which says what is wrong.

use super::MAX_TEXT_BYTES;
use super::scan::Span;
use crate::date::{DateError, parse_date};
use crate::key::prefix_key;

/// A good text's prefix key, from the word its check loaded when it is that short; `None` when
/// the text at `data[start..end]` needs the full check.
#[inline(always)]
pub(super) fn text_key(data: &[u8], Span { start, end }: Span) -> Option<u64> {
    match short_word(data, start, end - start) {
        Some(word) => is_ascii_without_nul(word, end - start).then(|| word.swap_bytes()),
        None => is_plain_text(&data[start..end]).then(|| prefix_key(&data[start..end])),
    }
}

/// The units at `data[start..end]` when they are plain digits; `None` when they need the full
/// check.
#[inline(always)]
pub(super) fn units_value(data: &[u8], Span { start, end }: Span) -> Option<i32> {
    match short_word(data, start, end - start) {
        Some(word) => digits_value(word, end - start),
        None => small_units(&data[start..end]),
    }
}

fn shown(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    if text.chars().count() > 40 {
        format!("`{}…`", text.chars().take(40).collect::<String>())
    } else {
        format!("`{text}`")
    }
}

/// The 1 to 8 bytes of `data[start..start + len]` as a little-endian word, zero above them, when
/// eight bytes can be read at `start` (one load instead of a loop over the bytes).
#[inline]
fn short_word(data: &[u8], start: usize, len: usize) -> Option<u64> {
    if !(1..=8).contains(&len) {
        return None;
    }
    let word = u64::from_le_bytes(data.get(start..start + 8)?.try_into().expect("eight bytes"));
    Some(word & (u64::MAX >> (8 * (8 - len))))
}

/// Whether the low `bytes` bytes of `word` (1 to 8) are ASCII without NUL.
#[inline]
fn is_ascii_without_nul(word: u64, bytes: usize) -> bool {
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // High bit of each byte: set for bytes of 0x80 and above, or (second term) for non-zero ones.
    let mask = HIGHS >> (8 * (8 - bytes)); // the low `bytes` bytes
    word & mask == 0 && (((word & LOWS) + LOWS) | word) & mask == mask
}

/// The value of the 1 to 8 ASCII digits in the low `len` bytes of `word` (first digit lowest),
/// without a branch per digit; `None` when any of them is not a digit.
#[inline]
pub(super) fn digits_value(word: u64, len: usize) -> Option<i32> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Move the digits to the top bytes and fill the bytes below them with '0's: the same number
    // written with eight digits.
    let padded = (word << (8 * (8 - len))) | ZEROS.checked_shr(8 * len as u32).unwrap_or(0);
    let all_digits = padded & 0xf0f0_f0f0_f0f0_f0f0 == ZEROS
        && (padded + 0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0 == ZEROS;
    if !all_digits {
        return None;
    }
    // Combine neighbouring digits, then pairs, then quads (the first digit is the lowest byte).
    let v = padded & 0x0f0f_0f0f_0f0f_0f0f;
    let v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    let v = (v * 10_000 + (v >> 32)) & 0xffff_ffff;
    Some(v as i32)
}

/// `unitsSold` of one to nine digits without a sign — the common case, which always fits an
/// `i32`; `None` for anything else (then [`check_units`] decides).
#[inline]
fn small_units(value: &[u8]) -> Option<i32> {
    if !(1..=9).contains(&value.len()) {
        return None;
    }
    let mut n = 0u32;
    let mut bad = 0u32;
    for &b in value {
        let digit = u32::from(b.wrapping_sub(b'0'));
        bad |= u32::from(digit > 9);
        n = n.wrapping_mul(10).wrapping_add(digit);
    }
    (bad == 0).then_some(n as i32)
}

/// Whether `value` is 1 to 255 bytes of ASCII without NUL: the common case of a good text field,
/// checked eight bytes at a time.
#[inline]
pub(super) fn is_plain_text(value: &[u8]) -> bool {
    if !(1..=MAX_TEXT_BYTES).contains(&value.len()) {
        return false;
    }
    let mut words = value.chunks_exact(8);
    let whole = words
        .by_ref()
        .all(|w| is_ascii_without_nul(u64::from_le_bytes(w.try_into().expect("eight bytes")), 8));
    let rest = words.remainder();
    whole
        && (rest.is_empty() || {
            let word = rest
                .iter()
                .rev()
                .fold(0u64, |word, &b| (word << 8) | u64::from(b));
            is_ascii_without_nul(word, rest.len())
        })
}

pub(super) fn check_text(value: &[u8]) -> Result<&[u8], String> {
    if is_plain_text(value) {
        return Ok(value);
    }
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "is {} bytes long; at most {MAX_TEXT_BYTES} are allowed",
            value.len()
        ));
    }
    if let Some(i) = memchr::memchr(0, value) {
        return Err(format!(
            "holds a NUL byte (at byte {}), which PostgreSQL text cannot store",
            i + 1
        ));
    }
    if let Err(e) = std::str::from_utf8(value) {
        return Err(format!(
            "is not valid UTF-8 (bad byte 0x{:02x} at byte {})",
            value[e.valid_up_to()],
            e.valid_up_to() + 1
        ));
    }
    Ok(value)
}

pub(super) fn check_date(value: &[u8]) -> Result<i32, String> {
    parse_date(value).map_err(|e| match e {
        DateError::Shape => format!("{} is not a date of the form YYYY-MM-DD", shown(value)),
        DateError::NoSuchDay => format!("{} is not a day of the calendar", shown(value)),
    })
}

/// Parses a base-10 integer with an optional sign that fits `i32`.
pub fn check_units(value: &[u8]) -> Result<i32, String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    let (negative, digits) = match value {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, value),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("{} is not a whole number", shown(value)));
    }
    let mut magnitude: i64 = 0;
    for &d in digits {
        magnitude = magnitude * 10 + i64::from(d - b'0');
        if magnitude > 1 << 31 {
            break;
        }
    }
    let n = if negative { -magnitude } else { magnitude };
    i32::try_from(n).map_err(|_| {
        format!(
            "{} does not fit a 32-bit integer ({} to {})",
            shown(value),
            i32::MIN,
            i32::MAX
        )
    })
}
