//! The filesystem operations a delivery is made of, behind a trait so tests
//! can record their order and make any one of them fail.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Permissions of delivered files: the owner writes, its group (the readers
/// of the spool) reads, nobody else.
pub(crate) const FILE_MODE: u32 = 0o640;

/// The four operations a durable delivery needs.
pub(crate) trait Disk: Send + Sync + std::fmt::Debug {
    /// Creates `path`, which must not exist yet, with [`FILE_MODE`] and writes
    /// all of `data` into it; the open file is returned for [`Disk::sync`].
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<File>;
    /// Flushes `file` (at `path`) to stable storage.
    fn sync(&self, file: &File, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to` atomically (same filesystem).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Flushes the directory `path`, making the entries renamed into it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RealDisk;

impl Disk for RealDisk {
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<File> {
        // create_new: an existing file means an id collision, never overwrite.
        let mut file = OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path)?;
        file.write_all(data)?;
        Ok(file)
    }

    fn sync(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}
