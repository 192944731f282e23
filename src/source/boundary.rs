//! Record boundaries by quote parity: with RFC 4180 quoting, a line feed ends a record exactly
//! when an even number of quote bytes stands before it.

/// The position just after the first line feed at or after `from` that stands outside quotes,
/// given whether `from` itself is inside a quoted field.
pub fn find_boundary(data: &[u8], from: usize, in_quotes: bool) -> Option<usize> {
    let mut pos = from;
    let mut in_quotes = in_quotes;
    loop {
        if in_quotes {
            pos += memchr::memchr(b'"', &data[pos..])? + 1;
            in_quotes = false;
        } else {
            let i = memchr::memchr2(b'"', b'\n', &data[pos..])?;
            let byte = data[pos + i];
            pos += i + 1;
            if byte == b'\n' {
                return Some(pos);
            }
            in_quotes = true;
        }
    }
}

/// Counts line feeds (SIMD).
pub fn count_newlines(bytes: &[u8]) -> u64 {
    bytecount::count(bytes, b'\n') as u64
}

/// The position after the last line feed outside quotes in `buf`, which starts outside quotes.
pub(super) fn last_boundary(buf: &[u8]) -> Option<usize> {
    let total_quotes = bytecount::count(buf, b'"') as u64;
    let mut quotes_after = 0u64;
    let mut end = buf.len();
    while let Some(i) = memchr::memrchr2(b'"', b'\n', &buf[..end]) {
        if buf[i] == b'"' {
            quotes_after += 1;
        } else if (total_quotes - quotes_after).is_multiple_of(2) {
            return Some(i + 1);
        }
        end = i;
    }
    None
}
