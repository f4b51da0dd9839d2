//! Durable delivery: accepted mail goes into one Maildir per workspace, with
//! its verdict JSON beside it. The SMTP/LMTP server answers "250" only after
//! [`Spool::deliver`] returns, so a message is on stable storage (file and
//! directory entry fsynced) before it is acknowledged.
//!
//! Layout under the spool root:
//! - `<workspace>/tmp/`, `new/`, `cur/`: a standard Maildir;
//! - `<workspace>/verdicts/<id>.json`: the verdict of `new/<id>`.

mod disk;

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use disk::{Disk, RealDisk};

/// Permissions of the directories the spool creates (files are 0o640).
const DIR_MODE: u32 = 0o750;

/// The Maildir subdirectories plus the verdicts, created together.
const SUBDIRS: [&str; 4] = ["tmp", "new", "cur", "verdicts"];

/// Process-wide delivery counter: the `Q` part of an id, unique even when two
/// deliveries share the same microsecond.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Why a message cannot be stored (the caller answers 451).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The workspace id is not `[a-z0-9_-]{1,64}` (it would name a path).
    #[error("invalid workspace id {0:?}")]
    InvalidWorkspace(String),
    /// A filesystem operation failed.
    #[error("spool: cannot {op} {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("write", "sync", "rename into", …).
        op: &'static str,
        /// Why.
        source: io::Error,
    },
}

impl SpoolError {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpoolError {
        let path = path.to_path_buf();
        move |source| SpoolError::Io { path, op, source }
    }

    /// A directory or file that should exist does not: it may have been
    /// removed under us, so the workspace directories are worth re-creating.
    fn is_not_found(&self) -> bool {
        matches!(self, SpoolError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Where a delivered message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The Maildir unique name, `<secs>.M<micros>P<pid>Q<counter>.<host>`.
    pub id: String,
    /// `root/<workspace>/new/<id>`.
    pub message: PathBuf,
    /// `root/<workspace>/verdicts/<id>.json`.
    pub verdict: PathBuf,
}

/// The spool: one Maildir per workspace under `root`. Cheap to clone (shared
/// state), usable from any thread.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// Sanitised for a file name (Maildir rules).
    hostname: String,
    /// Workspaces whose directories this process has created (or found) and
    /// fsynced: the hot path then does no mkdir.
    ready: Mutex<HashSet<String>>,
    disk: Arc<dyn Disk>,
    /// Deliveries waiting for the group committer.
    queue: mpsc::Sender<Job>,
}

/// Synced files waiting for the group committer to put them in place.
#[derive(Debug)]
struct Job {
    id: String,
    paths: Paths,
    /// Synced unnamed files to link into place (else named ones in `tmp/`).
    unnamed: Option<Unnamed>,
    reply: mpsc::SyncSender<Result<Delivered, SpoolError>>,
}

/// The verdict and message as unnamed files (`O_TMPFILE`), synced.
#[derive(Debug)]
struct Unnamed {
    verdict: std::fs::File,
    message: std::fs::File,
}

/// Most deliveries made durable together.
const MAX_BATCH: usize = 256;

impl Spool {
    /// Opens (creating if needed, with parents) the spool root. Errors if it
    /// cannot be created or is not a writable directory. `hostname` ends every
    /// message id ("localhost" if empty).
    pub fn open(root: &Path, hostname: &str) -> Result<Spool, SpoolError> {
        Spool::with_disk(root, hostname, Arc::new(RealDisk))
    }

    /// [`Spool::open`] with the filesystem operations of `disk` (tests record
    /// and fail them).
    pub(crate) fn with_disk(root: &Path, hostname: &str, disk: Arc<dyn Disk>) -> Result<Spool, SpoolError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root)
            .map_err(SpoolError::io("create spool root", root))?;
        let meta = std::fs::metadata(root).map_err(SpoolError::io("inspect spool root", root))?;
        if !meta.is_dir() {
            let source = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(SpoolError::Io { path: root.to_path_buf(), op: "use spool root", source });
        }
        // Permission bits do not tell the whole story (read-only mounts, ACLs,
        // running as root): try to create a file instead.
        let probe = root.join(format!(".postern-probe-{}-{}", std::process::id(), next_counter()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(SpoolError::io("write into spool root", root))?;
        let _ = std::fs::remove_file(&probe);
        let (queue, jobs) = mpsc::channel();
        let inner = Arc::new(Inner {
            root: root.to_path_buf(),
            hostname: maildir_hostname(hostname),
            ready: Mutex::new(HashSet::new()),
            disk,
            queue,
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("postern-spool".into())
            .spawn(move || committer(weak, jobs))
            .map_err(SpoolError::io("start the spool committer for", root))?;
        Ok(Spool { inner })
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Stores one message for `workspace` with its verdict JSON beside it;
    /// returns only once both files and their directories are fsynced.
    /// Blocking (callers use `spawn_blocking`). On error nothing is left in
    /// `tmp/`, `new/` or `verdicts/` (best effort).
    ///
    /// Each caller writes and syncs its own files (in parallel: the device
    /// overlaps them); the renames into place and the directory syncs are
    /// grouped (group commit): deliveries that arrive while a batch's
    /// directories are being synced share the next sync.
    pub fn deliver(
        &self,
        workspace: &str,
        message: impl AsRef<[u8]>,
        verdict_json: impl AsRef<[u8]>,
    ) -> Result<Delivered, SpoolError> {
        let dir = self.workspace_dir(workspace)?;
        self.ensure_dirs(workspace, &dir)?;
        let id = self.next_id();
        let (message, verdict_json) = (message.as_ref(), verdict_json.as_ref());
        let result = self
            .write_synced(&Paths::new(&dir, &id), message, verdict_json)
            .and_then(|unnamed| self.commit(&dir, &id, unnamed));
        match result {
            Err(e) if e.is_not_found() => {
                // A directory vanished since it was created: create it again
                // and retry once, with the same id (the attempt was undone).
                self.forget(workspace);
                self.ensure_dirs(workspace, &dir)?;
                self.try_deliver(&dir, &id, message, verdict_json)
            }
            result => result,
        }
    }

    /// Writes both files and syncs them: unnamed in their final directories
    /// where the filesystem can (returned, to be linked into place), else
    /// named in `tmp/`. Undoes on failure.
    fn write_synced(&self, paths: &Paths, message: &[u8], verdict_json: &[u8]) -> Result<Option<Unnamed>, SpoolError> {
        let disk = &self.inner.disk;
        let dir_of = |p: &Path| p.parent().unwrap_or(p).to_path_buf();
        let (verdicts, new) = (dir_of(&paths.verdict), dir_of(&paths.message));
        let unnamed = (|| {
            let Some(v) =
                disk.write_unnamed(&verdicts, verdict_json).map_err(SpoolError::io("write into", &verdicts))?
            else {
                return Ok(None);
            };
            let Some(m) = disk.write_unnamed(&new, message).map_err(SpoolError::io("write into", &new))? else {
                return Ok(None);
            };
            disk.sync(&v, &paths.verdict).map_err(SpoolError::io("sync", &paths.verdict))?;
            disk.sync(&m, &paths.message).map_err(SpoolError::io("sync", &paths.message))?;
            Ok(Some(Unnamed { verdict: v, message: m }))
        })();
        match unnamed {
            Ok(Some(files)) => return Ok(Some(files)),
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        let result = (|| {
            let v =
                disk.write(&paths.tmp_verdict, verdict_json).map_err(SpoolError::io("write", &paths.tmp_verdict))?;
            let m = disk.write(&paths.tmp_message, message).map_err(SpoolError::io("write", &paths.tmp_message))?;
            disk.sync(&v, &paths.tmp_verdict).map_err(SpoolError::io("sync", &paths.tmp_verdict))?;
            disk.sync(&m, &paths.tmp_message).map_err(SpoolError::io("sync", &paths.tmp_message))
        })();
        if result.is_err() {
            paths.remove_all();
        }
        result.map(|()| None)
    }

    /// Hands the synced files to the group committer and waits for them to
    /// be renamed into place with their directories synced.
    fn commit(&self, dir: &Path, id: &str, unnamed: Option<Unnamed>) -> Result<Delivered, SpoolError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let paths = Paths::new(dir, id);
        let stopped = |paths: &Paths| {
            paths.remove_all();
            SpoolError::Io {
                path: self.inner.root.clone(),
                op: "deliver into",
                source: io::Error::other("the spool committer stopped"),
            }
        };
        let job = Job { id: id.to_string(), paths, unnamed, reply };
        if let Err(mpsc::SendError(job)) = self.inner.queue.send(job) {
            return Err(stopped(&job.paths));
        }
        answer.recv().unwrap_or_else(|_| Err(stopped(&Paths::new(dir, id))))
    }

    /// Renames a batch into place, then syncs each directory once. A failure
    /// fails only the deliveries it touches, which are undone.
    fn commit_batch(&self, jobs: Vec<Job>) {
        let disk = &self.inner.disk;
        let mut work: Vec<(Job, Result<(), SpoolError>)> = jobs
            .into_iter()
            .map(|job| {
                let p = &job.paths;
                // The verdict lands first: whoever picks a message up from
                // new/ can rely on its verdict being there.
                let placed = match &job.unnamed {
                    Some(files) => {
                        disk.link(&files.verdict, &p.verdict).map_err(SpoolError::io("link into", &p.verdict)).and_then(
                            |()| disk.link(&files.message, &p.message).map_err(SpoolError::io("link into", &p.message)),
                        )
                    }
                    None => disk
                        .rename(&p.tmp_verdict, &p.verdict)
                        .map_err(SpoolError::io("rename into", &p.verdict))
                        .and_then(|()| {
                            disk.rename(&p.tmp_message, &p.message).map_err(SpoolError::io("rename into", &p.message))
                        }),
                };
                (job, placed)
            })
            .collect();
        let mut synced: Vec<(PathBuf, Option<(io::ErrorKind, String)>)> = Vec::new();
        for (job, result) in &mut work {
            if result.is_err() {
                continue;
            }
            for renamed in [&job.paths.message, &job.paths.verdict] {
                let parent = renamed.parent().unwrap_or(renamed).to_path_buf();
                if !synced.iter().any(|(dir, _)| *dir == parent) {
                    let failure = disk.sync_dir(&parent).err().map(|e| (e.kind(), e.to_string()));
                    synced.push((parent.clone(), failure));
                }
                if let Some((_, Some((kind, why)))) = synced.iter().find(|(dir, _)| *dir == parent) {
                    let source = io::Error::new(*kind, why.clone());
                    *result = Err(SpoolError::Io { path: parent, op: "sync directory", source });
                }
            }
        }
        for (job, result) in work {
            let outcome = match result {
                Ok(()) => Ok(Delivered {
                    id: job.id.clone(),
                    message: job.paths.message.clone(),
                    verdict: job.paths.verdict.clone(),
                }),
                Err(e) => {
                    job.paths.remove_all();
                    Err(e)
                }
            };
            // The waiting thread may have gone; nothing to do then.
            let _ = job.reply.send(outcome);
        }
    }

    /// The files in `root/<workspace>/new/`, sorted (empty if the workspace
    /// never received mail).
    pub fn list_new(&self, workspace: &str) -> Result<Vec<PathBuf>, SpoolError> {
        let new = self.workspace_dir(workspace)?.join("new");
        let entries = match std::fs::read_dir(&new) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SpoolError::io("list", &new)(e)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(SpoolError::io("list", &new))?;
            // Maildir readers skip dot files; so do we.
            if !entry.file_name().as_encoded_bytes().starts_with(b".") {
                paths.push(entry.path());
            }
        }
        paths.sort();
        Ok(paths)
    }

    fn workspace_dir(&self, workspace: &str) -> Result<PathBuf, SpoolError> {
        // is_valid_id allows no '/', '.' or empty id, so no path traversal;
        // the explicit dot check keeps that true if the id rules ever widen.
        if !crate::directory::is_valid_id(workspace) || workspace == "." || workspace == ".." {
            return Err(SpoolError::InvalidWorkspace(workspace.to_string()));
        }
        Ok(self.inner.root.join(workspace))
    }

    /// Creates the workspace's directories once per process, fsyncing the
    /// parents so the new entries survive a crash along with the first mail.
    fn ensure_dirs(&self, workspace: &str, dir: &Path) -> Result<(), SpoolError> {
        if self.lock_ready().contains(workspace) {
            return Ok(());
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true).mode(DIR_MODE);
        for sub in SUBDIRS {
            let path = dir.join(sub);
            builder.create(&path).map_err(SpoolError::io("create directory", &path))?;
        }
        let disk = &self.inner.disk;
        disk.sync_dir(dir).map_err(SpoolError::io("sync directory", dir))?;
        disk.sync_dir(&self.inner.root).map_err(SpoolError::io("sync directory", &self.inner.root))?;
        self.lock_ready().insert(workspace.to_string());
        Ok(())
    }

    fn forget(&self, workspace: &str) {
        self.lock_ready().remove(workspace);
    }

    fn lock_ready(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set is valid whatever a panicking holder did: at worst a
        // workspace is created twice.
        self.inner.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_id(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            next_counter(),
            self.inner.hostname
        )
    }

    /// One attempt; on failure removes whatever it may have left, including
    /// files already renamed into place: the caller answers 451 and the
    /// client retries, so a half-delivered message would be a duplicate.
    fn try_deliver(&self, dir: &Path, id: &str, message: &[u8], verdict_json: &[u8]) -> Result<Delivered, SpoolError> {
        let paths = Paths::new(dir, id);
        let result = self.write_all(&paths, message, verdict_json);
        if result.is_err() {
            paths.remove_all();
        }
        result.map(|()| Delivered { id: id.to_string(), message: paths.message, verdict: paths.verdict })
    }

    fn write_all(&self, paths: &Paths, message: &[u8], verdict_json: &[u8]) -> Result<(), SpoolError> {
        let disk = &self.inner.disk;
        // Both files are written before either is synced, and both renamed
        // before either directory is synced: on a journalling filesystem the
        // first sync of each pair commits the work of both, so a delivery
        // costs two journal commits instead of four.
        let verdict =
            disk.write(&paths.tmp_verdict, verdict_json).map_err(SpoolError::io("write", &paths.tmp_verdict))?;
        let msg = disk.write(&paths.tmp_message, message).map_err(SpoolError::io("write", &paths.tmp_message))?;
        disk.sync(&verdict, &paths.tmp_verdict).map_err(SpoolError::io("sync", &paths.tmp_verdict))?;
        disk.sync(&msg, &paths.tmp_message).map_err(SpoolError::io("sync", &paths.tmp_message))?;
        drop((verdict, msg));
        // The verdict lands first: whoever picks a message up from new/ can
        // rely on its verdict being there.
        disk.rename(&paths.tmp_verdict, &paths.verdict).map_err(SpoolError::io("rename into", &paths.verdict))?;
        disk.rename(&paths.tmp_message, &paths.message).map_err(SpoolError::io("rename into", &paths.message))?;
        for renamed in [&paths.message, &paths.verdict] {
            let parent = renamed.parent().unwrap_or(renamed);
            disk.sync_dir(parent).map_err(SpoolError::io("sync directory", parent))?;
        }
        Ok(())
    }
}

/// Every path one delivery touches.
#[derive(Debug)]
struct Paths {
    tmp_verdict: PathBuf,
    tmp_message: PathBuf,
    verdict: PathBuf,
    message: PathBuf,
}

impl Paths {
    fn new(dir: &Path, id: &str) -> Paths {
        let tmp = dir.join("tmp");
        Paths {
            tmp_verdict: tmp.join(format!("{id}.json")),
            tmp_message: tmp.join(id),
            verdict: dir.join("verdicts").join(format!("{id}.json")),
            message: dir.join("new").join(id),
        }
    }
}

impl Paths {
    /// Best-effort undo of a failed delivery.
    fn remove_all(&self) {
        for path in [&self.tmp_verdict, &self.tmp_message, &self.verdict, &self.message] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The group committer's loop: takes every delivery queued so far (at most
/// [`MAX_BATCH`]), commits them together, and again; ends with the spool.
fn committer(spool: Weak<Inner>, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match spool.upgrade() {
            Some(inner) => Spool { inner }.commit_batch(batch),
            None => return,
        }
    }
}

fn next_counter() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// The host part of a Maildir name: '/' and ':' are escaped as octal, as the
/// Maildir specification asks (':' starts the info part in `cur/`).
fn maildir_hostname(hostname: &str) -> String {
    if hostname.is_empty() {
        return "localhost".to_string();
    }
    hostname.replace('/', "\\057").replace(':', "\\072")
}

#[cfg(test)]
mod tests;
