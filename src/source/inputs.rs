//! The run's inputs: every `--source` expanded — a file, a directory (its regular files, sorted
//! by name), a glob (expanded here, sorted), `-` for standard input, or a PostgreSQL table or
//! query — into one list, read as if its files stood one after another.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::postgres::{PgSource, Select};
use crate::db::TableName;
use crate::error::{Error, Result};

/// One `--source` as given, before it is expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// A file, a directory or a glob.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
    /// A table or query of a PostgreSQL database.
    Postgres(PgSource),
}

/// One input of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file: plain text, gzip, zstd or Parquet (told from its first bytes).
    File(PathBuf),
    /// Standard input.
    Stdin,
    /// A table or query of a PostgreSQL database.
    Postgres(PgSource),
}

impl Input {
    /// How messages name the input.
    pub fn shown(&self) -> PathBuf {
        match self {
            Input::File(path) => path.clone(),
            Input::Stdin => PathBuf::from("<stdin>"),
            Input::Postgres(source) => PathBuf::from(source.shown()),
        }
    }
}

/// Most inputs of one run (a bad row's place packs the input's index with its byte offset:
/// see [`crate::rejects::position`]).
pub const MAX_INPUTS: usize = (1 << 20) - 1;

impl FromStr for SourceSpec {
    type Err = String;

    /// `-`, a `postgres://` or `postgresql://` URL with `?table=[schema.]name`, or a path.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "-" {
            return Ok(SourceSpec::Stdin);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let (url, table) = split_table_parameter(s)?;
            let table = table.ok_or_else(|| {
                "a PostgreSQL source names its table: postgresql://host/db?table=schema.name \
                 (or use --source-query with --source-db-url)"
                    .to_string()
            })?;
            let table: TableName = table.parse()?;
            return Ok(SourceSpec::Postgres(PgSource {
                url,
                select: Select::Table(table),
                sslmode: None,
            }));
        }
        if s.is_empty() {
            return Err("an empty path".into());
        }
        Ok(SourceSpec::Path(PathBuf::from(s)))
    }
}

/// The URL without its `table=` parameter, and that parameter's value.
fn split_table_parameter(url: &str) -> Result<(String, Option<String>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut table = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("table", value)) if table.is_none() => table = Some(value.to_string()),
            Some(("table", _)) => return Err("`table=` is given twice in the URL".into()),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, table))
}

/// The inputs of `specs`, in order: a directory's regular files (not those whose name starts
/// with `.`) sorted by name, a glob's matches sorted; standard input at most once.
pub fn expand(specs: &[SourceSpec]) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for spec in specs {
        match spec {
            SourceSpec::Stdin if inputs.contains(&Input::Stdin) => {
                return Err(Error::Usage(
                    "`--source -` (standard input) is given twice".into(),
                ));
            }
            SourceSpec::Stdin => inputs.push(Input::Stdin),
            SourceSpec::Postgres(source) => inputs.push(Input::Postgres(source.clone())),
            SourceSpec::Path(path) => {
                inputs.extend(expand_path(path)?.into_iter().map(Input::File))
            }
        }
    }
    if inputs.len() > MAX_INPUTS {
        return Err(Error::Usage(format!(
            "{} input files; one run reads at most {MAX_INPUTS}",
            inputs.len()
        )));
    }
    Ok(inputs)
}

/// The files that `path` stands for.
fn expand_path(path: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let files = directory_files(path)?;
            if files.is_empty() {
                return Err(Error::Input {
                    path: path.into(),
                    message: "is a directory without any regular file to read".into(),
                });
            }
            Ok(files)
        }
        Ok(_) => Ok(vec![path.into()]),
        Err(e) => {
            let text = path.to_string_lossy();
            if !text.contains(['*', '?', '[']) {
                return Err(Error::io(path, "cannot open the source file", e));
            }
            let files = glob_files(&text)?;
            if files.is_empty() {
                return Err(Error::Usage(format!("--source '{text}' matches no file")));
            }
            Ok(files)
        }
    }
}

fn directory_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list the directory", e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "cannot list the directory", e))?;
        let hidden = entry.file_name().as_encoded_bytes().starts_with(b".");
        let path = entry.path();
        // Follows links, as opening the file will.
        if !hidden && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn glob_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let paths = glob::glob(pattern)
        .map_err(|e| Error::Usage(format!("--source '{pattern}' is not a valid glob: {e}")))?;
    let mut files = Vec::new();
    for path in paths {
        let path = path.map_err(|e| {
            let io = std::io::Error::new(e.error().kind(), e.error().to_string());
            Error::io(e.path(), "cannot read while expanding the glob", io)
        })?;
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_from_text() {
        assert_eq!("-".parse(), Ok(SourceSpec::Stdin));
        assert_eq!(
            "day.csv.gz".parse(),
            Ok(SourceSpec::Path("day.csv.gz".into()))
        );
        let pg: SourceSpec = "postgresql://u@h:5433/ops?sslmode=disable&table=sales.tx"
            .parse()
            .unwrap();
        let SourceSpec::Postgres(pg) = pg else {
            panic!("{pg:?}")
        };
        assert_eq!(pg.url, "postgresql://u@h:5433/ops?sslmode=disable");
        assert_eq!(pg.select, Select::Table("sales.tx".parse().unwrap()));
        for bad in [
            "postgresql://h/db",
            "postgres://h/db?table=a;drop",
            "postgres://h/db?table=a&table=b",
        ] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn directories_and_globs_are_sorted_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.csv", "a.csv.gz", ".hidden", "c.txt"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.csv")).unwrap();
        let names = |inputs: Vec<Input>| -> Vec<String> {
            inputs
                .iter()
                .map(|i| match i {
                    Input::File(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let all = expand(&[SourceSpec::Path(dir.path().into())]).unwrap();
        assert_eq!(names(all), ["a.csv.gz", "b.csv", "c.txt"]);
        let pattern = dir.path().join("*.csv*");
        let globbed = expand(&[SourceSpec::Path(pattern)]).unwrap();
        assert_eq!(names(globbed), ["a.csv.gz", "b.csv"]);
        let none = expand(&[SourceSpec::Path(dir.path().join("*.parquet"))]).unwrap_err();
        assert_eq!(none.exit_code(), 2, "{none}");
        let missing = expand(&[SourceSpec::Path(dir.path().join("nope.csv"))]).unwrap_err();
        assert!(missing.to_string().contains("nope.csv"), "{missing}");
        let twice = expand(&[SourceSpec::Stdin, SourceSpec::Stdin]).unwrap_err();
        assert_eq!(twice.exit_code(), 2);
    }
}
