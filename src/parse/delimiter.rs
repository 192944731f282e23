//! The field delimiter, validated once from the command line.

use std::fmt;
use std::str::FromStr;

/// The field delimiter: one ASCII byte that is not a quote or a line end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiter(pub(super) u8);

impl Delimiter {
    /// A comma, as CSV has it (and a PostgreSQL source's `COPY … (FORMAT csv)` writes).
    pub const COMMA: Delimiter = Delimiter(b',');

    /// The byte.
    pub fn as_byte(self) -> u8 {
        self.0
    }
}

impl Default for Delimiter {
    fn default() -> Self {
        Delimiter(b'|')
    }
}

impl FromStr for Delimiter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let byte = match s {
            "\\t" | "tab" | "TAB" => b'\t',
            _ if s.len() == 1 && s.is_ascii() => s.as_bytes()[0],
            _ => {
                return Err(format!(
                    "`{s}` is not one ASCII character (use `\\t` for a tab)"
                ));
            }
        };
        match byte {
            b'"' | b'\r' | b'\n' | 0 => {
                Err(format!("`{}` cannot be a delimiter", s.escape_default()))
            }
            _ => Ok(Delimiter(byte)),
        }
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b'\t' => f.write_str("\\t"),
            b => write!(f, "{}", b as char),
        }
    }
}
