//! A file's content hash, which names it in an incremental load's ledger: BLAKE3 of the bytes
//! as stored (a gzip file's compressed bytes), so a file copied or renamed is still known.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The size of the file at `path` and `blake3:` with the hex digest of its bytes, read in
/// pieces of [`PIECE`] bytes (a map would count the whole file in the process's memory) and
/// hashed on the current rayon pool.
pub fn content_hash(path: &Path) -> Result<(u64, String)> {
    let error = |e| Error::io(path, "cannot read the source file to hash it", e);
    let mut file = File::open(path).map_err(error)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0; PIECE];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(error(e)),
            }
        }
        hasher.update_rayon(&buf[..filled]);
        if filled < buf.len() {
            break;
        }
    }
    Ok((
        hasher.count(),
        format!("blake3:{}", hasher.finalize().to_hex()),
    ))
}

/// Bytes hashed at a time: enough for the threads to share.
const PIECE: usize = 8 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_same_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, "custId|x\n1|2\n").unwrap();
        std::fs::write(&b, "custId|x\n1|2\n").unwrap();
        std::fs::write(&c, "custId|x\n1|3\n").unwrap();
        let (size, hash) = content_hash(&a).unwrap();
        assert_eq!(size, 13);
        assert!(
            hash.starts_with("blake3:") && hash.len() == 7 + 64,
            "{hash}"
        );
        assert_eq!(content_hash(&b).unwrap().1, hash);
        assert_ne!(content_hash(&c).unwrap().1, hash);
        assert!(content_hash(&dir.path().join("d")).is_err());
    }
}
