//! File-system steps that must survive a power cut, in one place.
//!
//! A file's data is made durable by `fsync` on the file, but its *name* lives in the directory:
//! a rename (or a new file, or a new directory) is on disk only once the directory itself is
//! synced. Without that, a power cut after a rename can bring back the old name or none at all
//! (a WAL segment, a received snapshot, a compiled guest module gone although the code went on
//! as if it were there). Every rename that publishes a file goes through [`rename`].

use std::fs::File;
use std::path::Path;

use crate::error::IoError;

/// Makes a directory's entries (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(IoError::at("syncing directory", dir))
}

/// Renames `from` to `to` and syncs the directory of `to`, so the new name survives a power cut.
/// The caller has synced the file's data first.
pub fn rename(from: &Path, to: &Path) -> Result<(), IoError> {
    std::fs::rename(from, to).map_err(|e| IoError::rename(from, to, e))?;
    sync_dir(parent(to))
}

/// Creates `dir` and its missing ancestors, syncing the parent of each one created (a new
/// member's `member/wal/` must not vanish in a power cut after the member voted).
pub fn create_dir_all(dir: &Path) -> Result<(), IoError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(up) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(up)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => sync_dir(parent(dir)),
        // Created meanwhile by someone else: theirs to sync.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(IoError::new("creating", dir, e)),
    }
}

/// Syncs the parent of `dir` and of each of its next `levels - 1` ancestors, so that `dir` and
/// those ancestors keep their names in a power cut whoever created them.
pub fn sync_ancestors(dir: &Path, levels: usize) -> Result<(), IoError> {
    let mut at = dir;
    for _ in 0..levels {
        let up = parent(at);
        sync_dir(up)?;
        if up == Path::new(".") || up.parent().is_none() {
            break;
        }
        at = up;
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn creates_nested_directories_and_renames() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        super::create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        super::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("x.tmp"), b"x").unwrap();
        super::rename(&deep.join("x.tmp"), &deep.join("x")).unwrap();
        assert_eq!(std::fs::read(deep.join("x")).unwrap(), b"x");
        assert!(super::rename(&deep.join("missing"), &deep.join("y")).is_err());
    }
}
