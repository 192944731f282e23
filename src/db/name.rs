//! Table names, validated before the database is touched: the sink's target and the table a
//! PostgreSQL source reads.

use std::fmt;
use std::str::FromStr;

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER: usize = 63;

/// A validated target table: `name` or `schema.name`.
///
/// Each part starts with an ASCII letter or `_` and holds only ASCII letters, digits and `_`, at
/// most 63 bytes; it is folded to lower case, as SQL folds an unquoted name, and always quoted
/// when used. Anything else is refused before the database is touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    /// The schema, when given.
    pub schema: Option<String>,
    /// The table.
    pub table: String,
}

impl FromStr for TableName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let part = |p: &str| -> Result<String, String> {
            let ok_start = p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
            let ok_rest = p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok_start || !ok_rest {
                return Err(format!(
                    "`{}` is not a table name: use letters, digits and _ (starting with a letter \
                     or _), as `name` or `schema.name`",
                    s.escape_default()
                ));
            }
            if p.len() > MAX_IDENTIFIER {
                return Err(format!(
                    "`{p}` is {} bytes long; PostgreSQL names hold at most {MAX_IDENTIFIER}",
                    p.len()
                ));
            }
            Ok(p.to_ascii_lowercase())
        };
        match s.split_once('.') {
            Some((schema, table)) => Ok(TableName {
                schema: Some(part(schema)?),
                table: part(table)?,
            }),
            None => Ok(TableName {
                schema: None,
                table: part(s)?,
            }),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert_eq!(
            "Customers".parse::<TableName>().unwrap(),
            TableName {
                schema: None,
                table: "customers".into()
            }
        );
        let t: TableName = "etl.select".parse().unwrap();
        assert_eq!(
            (t.schema.as_deref(), t.table.as_str()),
            (Some("etl"), "select")
        );
        for bad in [
            "customers; DROP TABLE x",
            "a.b.c",
            "\"quoted\"",
            "",
            ".x",
            "x.",
            "1abc",
            "naïve",
            "a b",
            "x'--",
        ] {
            assert!(bad.parse::<TableName>().is_err(), "{bad}");
        }
        let long = "x".repeat(64);
        assert!(
            long.parse::<TableName>()
                .unwrap_err()
                .contains("at most 63")
        );
        assert!("x".repeat(63).parse::<TableName>().is_ok());
    }
}
