//! One CSV field written as RFC 4180 wants it, shared by the CSV sink's rows and the rejects
//! file.

use std::io::{self, Write};

/// Writes one CSV field, quoted as RFC 4180 asks when it holds a comma, a quote or a line end.
pub fn write_field(out: &mut impl Write, value: &[u8]) -> io::Result<()> {
    if !value
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        return out.write_all(value);
    }
    out.write_all(b"\"")?;
    for part in value.split_inclusive(|&b| b == b'"') {
        out.write_all(part)?;
        if part.ends_with(b"\"") {
            out.write_all(b"\"")?;
        }
    }
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: &str) -> String {
        let mut out = Vec::new();
        write_field(&mut out, v.as_bytes()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quoting_only_where_needed() {
        assert_eq!(field("0023938"), "0023938");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("a|b"), "a|b");
    }
}
