//! Sparse data files: one per resource, bytes written at their offsets as they arrive.
//!
//! File names are the SHA-256 of the cache key, sharded by the first byte, so no URL or ID ever
//! becomes a path (nothing a client sends can name a file outside the cache directory), and no
//! directory grows huge. All calls here block; callers run them where blocking is acceptable.

use std::fs::{self, File, OpenOptions};
use std::io;
#[cfg(unix)]
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The data file for `key` under `data_dir`.
pub(crate) fn data_path(data_dir: &Path, key: &str) -> PathBuf {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    data_dir.join(&digest[..2]).join(&digest)
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

/// Flushes the file's data to stable storage, if the file exists.
pub(crate) fn sync(path: &Path) -> io::Result<()> {
    match File::open(path) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The file's length, 0 if it does not exist.
pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Deletes the file; a missing file is fine.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Empties the file (its stale bytes are dropped), keeping it in place.
pub(crate) fn truncate(path: &Path) -> io::Result<()> {
    match OpenOptions::new().write(true).open(path) {
        Ok(f) => f.set_len(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_writes_read_back_and_paths_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let path = data_path(dir.path(), "http://h/../../etc/passwd");
        assert!(path.starts_with(dir.path()));
        let f = open_for_write(&path).unwrap();
        write_at(&f, b"world", 1000).unwrap();
        write_at(&f, b"hello", 0).unwrap();
        assert_eq!(read_at(&f, 1000, 5).unwrap(), b"world");
        assert_eq!(read_at(&f, 0, 5).unwrap(), b"hello");
        assert!(read_at(&f, 1003, 5).is_err());
        sync(&path).unwrap();
        assert_eq!(file_len(&path), 1005);
        truncate(&path).unwrap();
        assert_eq!(file_len(&path), 0);
        remove(&path).unwrap();
        remove(&path).unwrap();
    }
}
