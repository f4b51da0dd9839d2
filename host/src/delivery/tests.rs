//! Delivery tests: the bytes land, the fsync order holds, failures undo.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::disk::{Disk, RealDisk};
use super::{Spool, SpoolError};

/// One recorded filesystem operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Write(PathBuf),
    Sync(PathBuf),
    Rename(PathBuf, PathBuf),
    SyncDir(PathBuf),
}

type FailWhen = Box<dyn Fn(&Event) -> bool + Send + Sync>;

/// The real disk, recording every operation and failing those `fail` picks.
#[derive(Default)]
struct RecordingDisk {
    events: Mutex<Vec<Event>>,
    fail: Mutex<Option<FailWhen>>,
}

impl std::fmt::Debug for RecordingDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingDisk").field("events", &self.events).finish_non_exhaustive()
    }
}

impl RecordingDisk {
    fn fail_when(&self, when: impl Fn(&Event) -> bool + Send + Sync + 'static) {
        *self.fail.lock().unwrap() = Some(Box::new(when));
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Records `event`, then fails it if asked to.
    fn record(&self, event: Event) -> io::Result<()> {
        let fail = self.fail.lock().unwrap().as_ref().is_some_and(|when| when(&event));
        self.events.lock().unwrap().push(event);
        if fail { Err(io::Error::other("injected failure")) } else { Ok(()) }
    }
}

impl Disk for RecordingDisk {
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<File> {
        self.record(Event::Write(path.to_path_buf()))?;
        RealDisk.write(path, data)
    }

    fn sync(&self, file: &File, path: &Path) -> io::Result<()> {
        self.record(Event::Sync(path.to_path_buf()))?;
        RealDisk.sync(file, path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.record(Event::Rename(from.to_path_buf(), to.to_path_buf()))?;
        RealDisk.rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.record(Event::SyncDir(path.to_path_buf()))?;
        RealDisk.sync_dir(path)
    }
}

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("postern-spool-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn recording_spool(root: &Path) -> (Spool, Arc<RecordingDisk>) {
    let disk = Arc::new(RecordingDisk::default());
    let spool = Spool::with_disk(root, "mx.example:25/a", disk.clone()).unwrap();
    (spool, disk)
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
}

fn position(events: &[Event], event: &Event) -> usize {
    events.iter().position(|e| e == event).unwrap_or_else(|| panic!("{event:?} not in {events:?}"))
}

const MESSAGE: &[u8] = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
const VERDICT: &[u8] = br#"{"action":"accept"}"#;

#[test]
fn delivers_exact_bytes_and_leaves_tmp_empty() {
    let tmp = TempDir::new();
    let spool = Spool::open(&tmp.0.join("a/b/spool"), "mx.example").unwrap();
    assert_eq!(spool.root(), tmp.0.join("a/b/spool"));
    let delivered = spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    let ws = spool.root().join("acme");
    assert_eq!(delivered.message, ws.join("new").join(&delivered.id));
    assert_eq!(delivered.verdict, ws.join("verdicts").join(format!("{}.json", delivered.id)));
    assert_eq!(std::fs::read(&delivered.message).unwrap(), MESSAGE);
    assert_eq!(std::fs::read(&delivered.verdict).unwrap(), VERDICT);
    assert!(ws.join("cur").is_dir());
    assert!(entries(&ws.join("tmp")).is_empty());
    assert_eq!(spool.list_new("acme").unwrap(), vec![delivered.message.clone()]);
    assert!(spool.list_new("other").unwrap().is_empty());

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&delivered.message).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o640, 0, "mode {mode:o}");
}

#[test]
fn id_is_maildir_style_with_escaped_hostname() {
    let tmp = TempDir::new();
    let (spool, _) = recording_spool(&tmp.0);
    let id = spool.deliver("acme", MESSAGE, VERDICT).unwrap().id;
    assert!(id.ends_with(".mx.example\\07225\\057a"), "{id}");
    let (secs, rest) = id.split_once(".M").unwrap();
    assert!(secs.parse::<u64>().is_ok(), "{id}");
    assert!(rest.contains(&format!("P{}Q", std::process::id())), "{id}");
}

#[test]
fn fsync_order_write_sync_rename_then_dirs() {
    let tmp = TempDir::new();
    let (spool, disk) = recording_spool(&tmp.0);
    let delivered = spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    let events = disk.events();
    let ws = tmp.0.join("acme");
    let id = &delivered.id;

    let tmp_message = ws.join("tmp").join(id);
    let tmp_verdict = ws.join("tmp").join(format!("{id}.json"));
    let m_write = position(&events, &Event::Write(tmp_message.clone()));
    let m_sync = position(&events, &Event::Sync(tmp_message.clone()));
    let m_rename = position(&events, &Event::Rename(tmp_message, delivered.message.clone()));
    let v_write = position(&events, &Event::Write(tmp_verdict.clone()));
    let v_sync = position(&events, &Event::Sync(tmp_verdict.clone()));
    let v_rename = position(&events, &Event::Rename(tmp_verdict, delivered.verdict.clone()));
    let new_sync = position(&events, &Event::SyncDir(ws.join("new")));
    let verdicts_sync = position(&events, &Event::SyncDir(ws.join("verdicts")));

    assert!(m_write < m_sync && m_sync < m_rename, "{events:?}");
    assert!(v_write < v_sync && v_sync < v_rename, "{events:?}");
    // The verdict is in place before the message appears in new/.
    assert!(v_rename < m_rename, "{events:?}");
    assert!(new_sync > m_rename && new_sync > v_rename, "{events:?}");
    assert!(verdicts_sync > m_rename && verdicts_sync > v_rename, "{events:?}");
    // The directory syncs are the last operations: deliver returned after them.
    assert_eq!(events.len() - 2, new_sync.min(verdicts_sync), "{events:?}");

    // The second delivery to the workspace does no directory set-up.
    let before = disk.events().len();
    spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    let second = &disk.events()[before..];
    assert_eq!(second.len(), 8, "{second:?}");
    assert!(!second.contains(&Event::SyncDir(tmp.0.clone())), "{second:?}");
}

fn assert_nothing_delivered(spool: &Spool, root: &Path) {
    let ws = root.join("acme");
    assert!(spool.list_new("acme").unwrap().is_empty());
    assert!(entries(&ws.join("tmp")).is_empty(), "{:?}", entries(&ws.join("tmp")));
    assert!(entries(&ws.join("verdicts")).is_empty(), "{:?}", entries(&ws.join("verdicts")));
}

#[test]
fn failing_message_sync_undoes_everything() {
    let tmp = TempDir::new();
    let (spool, disk) = recording_spool(&tmp.0);
    disk.fail_when(|e| matches!(e, Event::Sync(p) if !p.to_string_lossy().ends_with(".json")));
    let err = spool.deliver("acme", MESSAGE, VERDICT).unwrap_err();
    assert!(matches!(err, SpoolError::Io { op: "sync", .. }), "{err}");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(!disk.events().iter().any(|e| matches!(e, Event::Rename(_, to) if to.starts_with(tmp.0.join("acme/new")))));
    assert_nothing_delivered(&spool, &tmp.0);
}

#[test]
fn failing_rename_undoes_everything() {
    let tmp = TempDir::new();
    let (spool, disk) = recording_spool(&tmp.0);
    disk.fail_when(|e| matches!(e, Event::Rename(_, to) if to.parent().is_some_and(|p| p.ends_with("new"))));
    let err = spool.deliver("acme", MESSAGE, VERDICT).unwrap_err();
    assert!(matches!(err, SpoolError::Io { op: "rename into", .. }), "{err}");
    assert_nothing_delivered(&spool, &tmp.0);
}

#[test]
fn failing_dir_sync_undoes_everything() {
    let tmp = TempDir::new();
    let (spool, disk) = recording_spool(&tmp.0);
    disk.fail_when(|e| matches!(e, Event::SyncDir(p) if p.ends_with("new")));
    let err = spool.deliver("acme", MESSAGE, VERDICT).unwrap_err();
    assert!(matches!(err, SpoolError::Io { op: "sync directory", .. }), "{err}");
    assert_nothing_delivered(&spool, &tmp.0);

    // Once the disk recovers, delivery works again.
    *disk.fail.lock().unwrap() = None;
    spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    assert_eq!(spool.list_new("acme").unwrap().len(), 1);
}

#[test]
fn vanished_directories_are_recreated() {
    let tmp = TempDir::new();
    let spool = Spool::open(&tmp.0, "mx").unwrap();
    spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    std::fs::remove_dir_all(tmp.0.join("acme/new")).unwrap();
    let second = spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    assert_eq!(spool.list_new("acme").unwrap(), vec![second.message.clone()]);
    // The first attempt's verdict was undone: only the second one remains,
    // besides the first delivery's.
    assert_eq!(entries(&tmp.0.join("acme/verdicts")).len(), 2);
    assert!(entries(&tmp.0.join("acme/tmp")).is_empty());

    std::fs::remove_dir_all(tmp.0.join("acme")).unwrap();
    let third = spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    assert_eq!(spool.list_new("acme").unwrap(), vec![third.message]);
}

#[test]
fn invalid_workspace_is_refused() {
    let tmp = TempDir::new();
    let spool = Spool::open(&tmp.0, "mx").unwrap();
    for bad in ["../x", "", "a/b", ".", "..", "/abs", "Acme", "a\0b"] {
        let err = spool.deliver(bad, MESSAGE, VERDICT).unwrap_err();
        assert!(matches!(&err, SpoolError::InvalidWorkspace(w) if w == bad), "{bad:?}: {err}");
        assert!(matches!(spool.list_new(bad), Err(SpoolError::InvalidWorkspace(_))), "{bad:?}");
    }
    assert!(entries(&tmp.0).is_empty(), "{:?}", entries(&tmp.0));
}

#[test]
fn ids_are_distinct_across_threads() {
    let tmp = TempDir::new();
    let spool = Spool::open(&tmp.0, "mx").unwrap();
    let a = spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    let b = spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    assert_ne!(a.id, b.id);

    let threads: Vec<_> = (0..4)
        .map(|_| {
            let spool = spool.clone();
            std::thread::spawn(move || {
                (0..50).map(|_| spool.deliver("busy", MESSAGE, VERDICT).unwrap().id).collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: std::collections::HashSet<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(ids.len(), 200);
    assert_eq!(spool.list_new("busy").unwrap().len(), 200);
    assert_eq!(entries(&tmp.0.join("busy/verdicts")).len(), 200);
    assert!(entries(&tmp.0.join("busy/tmp")).is_empty());
}

#[test]
fn root_that_is_a_file_is_refused() {
    let tmp = TempDir::new();
    std::fs::create_dir_all(&tmp.0).unwrap();
    let file = tmp.0.join("plain");
    std::fs::write(&file, b"x").unwrap();
    let err = Spool::open(&file, "mx").unwrap_err();
    assert!(matches!(&err, SpoolError::Io { path, .. } if path == &file), "{err}");
    assert!(Spool::open(&file.join("below"), "mx").is_err());
}

#[test]
fn spool_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Spool>();
}

#[test]
fn concurrent_deliveries_share_their_directory_syncs() {
    let tmp = TempDir::new();
    let (spool, disk) = recording_spool(&tmp.0);
    spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    // Hold the committer in a slow sync so the others queue behind it and
    // are committed together.
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = slow.clone();
    disk.fail_when(move |e| {
        if matches!(e, Event::SyncDir(_)) && flag.swap(false, Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        false
    });
    let before = disk.events().len();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let spool = spool.clone();
            std::thread::spawn(move || spool.deliver("acme", MESSAGE, VERDICT).unwrap())
        })
        .collect();
    let ids: std::collections::HashSet<String> = threads.into_iter().map(|t| t.join().unwrap().id).collect();
    assert_eq!(ids.len(), 8);
    for id in &ids {
        assert_eq!(std::fs::read(tmp.0.join("acme/new").join(id)).unwrap(), MESSAGE);
    }
    let events = &disk.events()[before..];
    let new_syncs = events.iter().filter(|e| **e == Event::SyncDir(tmp.0.join("acme/new"))).count();
    assert!(new_syncs < 8, "8 deliveries, {new_syncs} syncs of new/: {events:?}");
    // Every file was still synced before its rename.
    for id in &ids {
        let m = tmp.0.join("acme/tmp").join(id);
        let sync = position(events, &Event::Sync(m.clone()));
        let rename = position(events, &Event::Rename(m, tmp.0.join("acme/new").join(id)));
        assert!(sync < rename);
    }
}

#[test]
fn the_real_disk_delivers_unnamed_files_linked_into_place() {
    let tmp = TempDir::new();
    let spool = Spool::open(&tmp.0, "mx.test").unwrap();
    let delivered = spool.deliver("acme", MESSAGE, VERDICT).unwrap();
    assert_eq!(std::fs::read(&delivered.message).unwrap(), MESSAGE);
    assert_eq!(std::fs::read(&delivered.verdict).unwrap(), VERDICT);
    assert!(entries(&tmp.0.join("acme/tmp")).is_empty(), "nothing named in tmp/");
    assert_eq!(entries(&tmp.0.join("acme/new")), vec![delivered.message.clone()]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&delivered.message).unwrap().permissions().mode() & 0o777, 0o640);
}
