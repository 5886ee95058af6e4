//! Sparse data files: one per resource, bytes written at their offsets as they arrive.
//!
//! File names are the SHA-256 of the cache key followed by the incarnation's generation
//! (`<sha256>.<generation in hex>`), sharded by the first byte, so no URL or ID ever becomes a
//! path (nothing a client sends can name a file outside the cache directory), no directory grows
//! huge, and two incarnations of one key never share a file: bytes of an evicted or dropped
//! incarnation can never be read as, or overwrite, bytes of its successor (see `cache`'s
//! invariant). Files of older builds carry no suffix and are renamed by the index upgrade. All calls here
//! block; callers run them where blocking is acceptable.

use std::fs::{self, File, OpenOptions};
use std::io;
#[cfg(unix)]
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The data file of incarnation `generation` of `key` under `data_dir`.
pub(crate) fn data_path(data_dir: &Path, key: &str, generation: u64) -> PathBuf {
    let digest = key_digest(key);
    data_dir.join(&digest[..2]).join(format!("{digest}.{generation:x}"))
}

/// The data file of `key` as builds before per-incarnation files named it (no suffix).
pub(crate) fn legacy_data_path(data_dir: &Path, key: &str) -> PathBuf {
    let digest = key_digest(key);
    data_dir.join(&digest[..2]).join(digest)
}

/// Whether `name` is a data file name this module gives (`<64 hex>` or `<64 hex>.<hex>`) in the
/// shard `prefix`.
fn is_data_file_name(name: &str, prefix: &str) -> bool {
    let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let (digest, suffix) = match name.split_once('.') {
        Some((d, g)) => (d, Some(g)),
        None => (name, None),
    };
    digest.len() == 64
        && is_hex(digest)
        && digest.starts_with(prefix)
        && suffix.is_none_or(|g| g.len() <= 16 && is_hex(g))
}

/// Opens (creating if needed) the data file for writing at offsets.
pub(crate) fn open_for_write(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Opens an existing data file for writing at offsets (NotFound if there is none).
pub(crate) fn open_existing(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Writes all of `buf` at `offset`.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(buf, offset)
}

/// Reads exactly `len` bytes at `offset`; a file shorter than that is an error.
pub(crate) fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// SHA-256 of the first `len` bytes of a file, lowercase hex; a file shorter than that is an
/// error (`UnexpectedEof`).
pub(crate) fn sha256_prefix(file: File, len: u64) -> io::Result<String> {
    use std::io::Read;
    let mut file = file.take(len);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut hashed = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        hashed += n as u64;
    }
    if hashed < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the data file holds {hashed} of {len} bytes"),
        ));
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The file's length, 0 if it does not exist or is not a regular file.
pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path)
        .ok()
        .filter(fs::Metadata::is_file)
        .map_or(0, |m| m.len())
}

/// Deletes the file; a missing file is fine.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The hex SHA-256 of a cache key, which names its data files.
pub(crate) fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Deletes every data file under `data_dir` that `keep(digest, generation)` does not keep
/// (`generation` is `None` for a legacy name); blocking. Only names this module gives (`XX/XX…`,
/// 64 hex digits and an optional `.generation`, in the shard of their first two) are touched.
/// Returns how many files were deleted; stops at the first error of `keep`.
pub(crate) fn sweep(
    data_dir: &Path,
    mut keep: impl FnMut(&str, Option<u64>) -> Result<bool, crate::error::Error>,
) -> Result<usize, crate::error::Error> {
    let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let Ok(shards) = fs::read_dir(data_dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for shard in shards.flatten() {
        let shard_name = shard.file_name();
        let Some(prefix) = shard_name.to_str().filter(|s| s.len() == 2 && is_hex(s)) else {
            continue;
        };
        let Ok(files) = fs::read_dir(shard.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            let Some(name) = name.to_str().filter(|n| is_data_file_name(n, prefix)) else {
                continue;
            };
            let (digest, generation) = match name.split_once('.') {
                Some((d, g)) => (d, u64::from_str_radix(g, 16).ok()),
                None => (name, None),
            };
            if !file.file_type().is_ok_and(|t| t.is_file()) || keep(digest, generation)? {
                continue;
            }
            if remove(&file.path()).is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_writes_read_back_and_paths_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let path = data_path(dir.path(), "http://h/../../etc/passwd", 0x1f);
        assert!(path.to_str().unwrap().ends_with(".1f"));
        assert_ne!(path, data_path(dir.path(), "http://h/../../etc/passwd", 0x20));
        assert!(path.starts_with(dir.path()));
        let f = open_for_write(&path).unwrap();
        write_at(&f, b"world", 1000).unwrap();
        write_at(&f, b"hello", 0).unwrap();
        assert_eq!(read_at(&f, 1000, 5).unwrap(), b"world");
        assert_eq!(read_at(&f, 0, 5).unwrap(), b"hello");
        assert!(read_at(&f, 1003, 5).is_err());
        assert_eq!(file_len(&path), 1005);
        remove(&path).unwrap();
        remove(&path).unwrap();
    }

    #[test]
    fn only_data_files_the_sweep_does_not_keep_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let kept = data_path(dir.path(), "kept", 7);
        let stray = data_path(dir.path(), "stray", 7);
        let old_incarnation = data_path(dir.path(), "kept", 6);
        let legacy = legacy_data_path(dir.path(), "legacy");
        for path in [&kept, &stray, &old_incarnation, &legacy] {
            write_at(&open_for_write(path).unwrap(), b"x", 0).unwrap();
        }
        // Not names this module gives: left alone.
        let foreign = [
            dir.path().join("notes.txt"),
            kept.parent().unwrap().join("README"),
            dir.path().join("zz").join(kept.file_name().unwrap()),
            kept.with_extension("tmp"),
        ];
        for path in &foreign {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"y").unwrap();
        }
        let keep = |digest: &str, generation: Option<u64>| Ok(digest == key_digest("kept") && generation == Some(7));
        assert_eq!(sweep(dir.path(), keep).unwrap(), 3);
        assert!(kept.exists() && !stray.exists() && !old_incarnation.exists() && !legacy.exists());
        assert!(foreign.iter().all(|p| p.exists()));
        assert_eq!(sweep(&dir.path().join("missing"), keep).unwrap(), 0);
    }
}
