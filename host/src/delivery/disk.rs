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
    /// Creates an unnamed file in `dir` holding `data` (Linux `O_TMPFILE`),
    /// or `None` where the filesystem cannot: the caller then writes a named
    /// file into `tmp/`.
    fn write_unnamed(&self, _dir: &Path, _data: &[u8]) -> io::Result<Option<File>> {
        Ok(None)
    }
    /// Gives an unnamed file its name `to` (in the directory it was made in).
    fn link(&self, _file: &File, to: &Path) -> io::Result<()> {
        Err(io::Error::other(format!("cannot link {}: unnamed files not supported", to.display())))
    }
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

    // An unnamed file never shows in a directory until it is complete and
    // synced, and needs no temporary name, no rename across directories (a
    // filesystem-wide lock) and no second directory entry.
    fn write_unnamed(&self, dir: &Path, data: &[u8]) -> io::Result<Option<File>> {
        use rustix::fs::{CWD, Mode, OFlags};
        let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
        match rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(FILE_MODE)) {
            Ok(fd) => {
                let mut file = File::from(fd);
                file.write_all(data)?;
                Ok(Some(file))
            }
            // Not supported by this kernel or filesystem.
            Err(e)
                if e == rustix::io::Errno::OPNOTSUPP
                    || e == rustix::io::Errno::ISDIR
                    || e == rustix::io::Errno::INVAL =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn link(&self, file: &File, to: &Path) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // Through /proc: linking an fd directly (AT_EMPTY_PATH) needs
        // CAP_DAC_READ_SEARCH, the /proc path does not.
        let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        rustix::fs::linkat(
            rustix::fs::CWD,
            proc_path.as_str(),
            rustix::fs::CWD,
            to,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
        .map_err(io::Error::from)
    }
}
