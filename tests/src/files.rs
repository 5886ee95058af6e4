//! The files a test looks at under a cache directory, and the small disks it puts them on.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// Every regular file under `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A tmpfs of a fixed size mounted on a temporary directory; unmounted on drop (after whatever
/// was declared later, such as the server using it, has been dropped).
pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax, e.g. `8m`); panics, never skips, when it cannot.
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `mount` ({e}): the disk-full tests need mount(8) and root"));
        assert!(
            out.status.success(),
            "the disk-full tests mount a {size} tmpfs to fill a real disk and needs root (CAP_SYS_ADMIN): \
             `mount -t tmpfs -o size={size} tmpfs {}` failed: {}. Run the tests as root (CI does).",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { dir }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a child not yet reaped): detach it so the mount does not outlive the test.
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}
