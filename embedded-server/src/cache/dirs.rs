//! Where the cache's files live: the data directories, the index file, moving a file when its pin
//! changes, and the background sweep of files no incarnation owns.

use std::path::{Path, PathBuf};

use super::resource::{Resource, State};
use super::table::Slot;
use super::{loggable_key, store, Cache};
use crate::error::Error;

/// The index's file name (SQLite adds `-wal` and `-shm` beside it).
pub(super) const INDEX_FILE: &str = "index.sqlite";

/// Beside the index: present only between a clean stop and the next start, holding the layout
/// the stop left (whether pinned files live apart).
const CLEAN_MARK: &str = "clean-stop";

/// The layout `dirs` stands for, as the clean mark records it.
fn layout(dirs: &DataDirs) -> &'static str {
    if dirs.pinned.is_some() {
        "apart"
    } else {
        "together"
    }
}

/// Removes the clean mark in `index_dir`; whether it was there, for the same layout as `dirs`
/// (then the last run left no stray or misplaced file); blocking.
pub(super) fn take_clean_mark(index_dir: &Path, dirs: &DataDirs) -> bool {
    let path = index_dir.join(CLEAN_MARK);
    let found = std::fs::read_to_string(&path).is_ok_and(|text| text == layout(dirs));
    if let Err(e) = store::remove(&path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the clean-stop mark");
        // Left in place it would wrongly vouch for a later run: sweep every time instead.
        return false;
    }
    found
}

/// Where data files live: evictable ones under `cache`, pinned ones under `pinned` when the app
/// keeps downloads apart (on Android the system may empty the cache directory at any time).
pub(super) struct DataDirs {
    pub(super) cache: PathBuf,
    pub(super) pinned: Option<PathBuf>,
}

impl DataDirs {
    /// The data directories under `dir` and, if given, `downloads`, created if missing.
    pub(super) fn create(dir: &Path, downloads: Option<&Path>) -> Result<Self, Error> {
        let dirs = Self {
            cache: dir.join("data"),
            pinned: downloads.map(|d| d.join("data")),
        };
        for data_dir in dirs.all() {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                Error::config_caused(format_args!("cannot create cache directory {}", data_dir.display()), e)
            })?;
        }
        Ok(dirs)
    }

    /// Every data directory.
    pub(super) fn all(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.cache).chain(&self.pinned)
    }

    /// The directory for a resource that is (not) pinned.
    fn dir(&self, pinned: bool) -> &Path {
        match (&self.pinned, pinned) {
            (Some(dir), true) => dir,
            _ => &self.cache,
        }
    }

    /// The data file of incarnation `generation` of `key` for a resource that is (not) pinned.
    pub(super) fn path(&self, key: &str, pinned: bool, generation: u64) -> PathBuf {
        store::data_path(self.dir(pinned), key, generation)
    }

    /// The data file of incarnation `generation` of `key` where it is: in the directory its pin
    /// calls for, else in the other one (a crash came between moving it and recording the pin);
    /// blocking (one or two `stat`s).
    pub(super) fn find(&self, key: &str, pinned: bool, generation: u64) -> PathBuf {
        let expected = self.path(key, pinned, generation);
        if self.pinned.is_none() || expected.exists() {
            return expected;
        }
        let other = self.path(key, !pinned, generation);
        if other.exists() {
            other
        } else {
            expected
        }
    }

    /// Renames the legacy (unsuffixed) data file of `key` to its name as incarnation
    /// `generation`, in whichever directory holds it; blocking. Missing files are fine.
    pub(super) fn rename_legacy(&self, key: &str, generation: u64) {
        for data_dir in self.all() {
            match std::fs::rename(
                store::legacy_data_path(data_dir, key),
                store::data_path(data_dir, key, generation),
            ) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(key = %loggable_key(key), error = %e, "cannot rename a data file; its bytes will be fetched again");
                }
                _ => {}
            }
        }
    }

    /// Unlinks the data file of incarnation `generation` of `key` from every directory.
    pub(super) fn remove_incarnation(&self, key: &str, generation: u64) {
        for data_dir in self.all() {
            remove_data_file(&store::data_path(data_dir, key, generation));
        }
    }
}

/// Carries an index kept in the cache directory (a layout from before the downloads directory
/// was set) over to `downloads`, unless `downloads` has one already; blocking.
pub(super) fn move_index(cache: &Path, downloads: &Path) -> Result<(), Error> {
    let (from, to) = (cache.join(INDEX_FILE), downloads.join(INDEX_FILE));
    if cache == downloads || !from.exists() {
        return Ok(());
    }
    if to.exists() {
        // Two indexes (the server ran with and without the downloads directory): using one would
        // treat the other's files as strays and delete them.
        return Err(Error::config(format!(
            "both {} and {} exist; keep the one to use and remove the other (with its -wal and -shm files)",
            from.display(),
            to.display()
        )));
    }
    tracing::info!(from = %from.display(), to = %to.display(), "moving the index to the downloads directory");
    // The main file last: until it is there, a crash leaves the index where it was.
    for suffix in ["-wal", "-shm", ""] {
        let (f, t) = (
            cache.join(format!("{INDEX_FILE}{suffix}")),
            downloads.join(format!("{INDEX_FILE}{suffix}")),
        );
        match std::fs::rename(&f, &t) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::config_caused(
                    format_args!("cannot move the index {} to {}", f.display(), t.display()),
                    e,
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Moves the data file of `res` to the directory its pin calls for, if no fill is writing it
/// (a fill holds the path it opened; the last fill to end calls this again). Runs under the
/// state lock, under which files are opened too; a rename keeps the inode, so files already
/// open stay valid. A file that cannot be moved (another file system) stays where it is and is
/// still found there.
pub(super) fn relocate(dirs: &DataDirs, res: &Resource, st: &mut State) {
    let target = dirs.path(&res.key, st.pinned, st.generation);
    if st.path == target || !st.fills.is_empty() || st.evicted {
        return;
    }
    match move_file(&st.path, &target) {
        Ok(()) => st.path = target,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => st.path = target,
        Err(e) => {
            tracing::warn!(key = %loggable_key(&res.key), error = %e, "cannot move a data file; it stays where it is");
        }
    }
}

/// Renames a data file into `to`'s shard directory, creating it if needed.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    to.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::rename(from, to))
}

/// Unlinks a data file no incarnation uses any more; a failure leaves a stray for the sweep.
pub(super) fn remove_data_file(path: &Path) {
    if let Err(e) = store::remove(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a data file");
    }
}

impl Cache {
    /// Marks the stop clean: every file is recorded or removed; blocking.
    pub(super) fn mark_clean(&self) {
        let path = self.index_dir.join(CLEAN_MARK);
        if let Err(e) = std::fs::write(&path, layout(&self.dirs)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the clean-stop mark; the next start sweeps");
        }
    }

    /// Deletes data files that no incarnation owns (bytes written just before a crash that no
    /// row records, a file whose unlink failed, an incarnation dropped just before a crash), so
    /// they do not hold space forever, and moves files found in the other data directory than
    /// their pin calls for (a layout from before the downloads directory was set); blocking, run
    /// in the background after start. Files of this process's incarnations (generations from
    /// `first_generation` on) are never touched: the code that made them removes them. An older
    /// file is kept only if the index has a row with its generation and key: such a row never
    /// reappears once gone, so the check cannot race. Returns how many files were deleted.
    pub(super) fn sweep_strays(&self) -> Result<usize, Error> {
        let mut removed = 0;
        for data_dir in self.dirs.all() {
            let in_pinned_dir = self.dirs.pinned.as_ref() == Some(data_dir);
            removed += store::sweep(data_dir, |digest, generation| match generation {
                // Shutting down: the rest waits for the next start.
                _ if self.cancel.is_cancelled() => Err(Error::Stopped),
                Some(g) if g >= self.first_generation => Ok(true),
                // A legacy name: the index upgrade renamed every file a row named.
                None => Ok(false),
                Some(g) => {
                    let Some(key) = self
                        .index
                        .has_generation(g)?
                        .filter(|key| store::key_digest(key) == digest)
                    else {
                        return Ok(false);
                    };
                    if self.dirs.pinned.is_some() {
                        self.place(&key, g, in_pinned_dir)?;
                    }
                    Ok(true)
                }
            })?;
        }
        if removed > 0 {
            tracing::info!(removed, "removed data files the index does not know");
        }
        Ok(removed)
    }

    /// Moves the data file of incarnation `generation` of `key`, found in the downloads
    /// directory (or not), to the directory its pin calls for; blocking. A resident resource is
    /// moved under its state lock; a cold one while the key is owned (busy), so no loader looks
    /// for the file in between; a busy one is left for the next start.
    fn place(&self, key: &str, generation: u64, in_pinned_dir: bool) -> Result<(), Error> {
        let mut table = self.table();
        match table.get(key) {
            Some(Slot::Ready(res)) => {
                let res = res.clone();
                drop(table);
                let mut st = res.lock();
                if st.generation == generation {
                    relocate(&self.dirs, &res, &mut st);
                }
                Ok(())
            }
            Some(Slot::Busy { .. }) => Ok(()),
            None => {
                let busy = self.mark_busy(&mut table, key);
                drop(table);
                let Some(row) = self.index.load_resource(key)? else {
                    return Ok(());
                };
                if row.generation == Some(generation) && row.pinned != in_pinned_dir {
                    let (from, to) = (
                        self.dirs.path(key, in_pinned_dir, generation),
                        self.dirs.path(key, row.pinned, generation),
                    );
                    if let Err(e) = move_file(&from, &to) {
                        tracing::warn!(key = %loggable_key(key), error = %e, "cannot move a data file; it stays where it is");
                    }
                }
                drop(busy);
                Ok(())
            }
        }
    }
}
