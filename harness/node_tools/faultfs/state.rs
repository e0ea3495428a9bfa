//! The filesystem's state and operations, free of FUSE plumbing: every operation is done
//! on `live` at once and remembered (journal, dirty ranges) until an fsync makes it durable.
//! Tests drive this directly to check the durability model without mounting.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::disk::{self, DirtyFile};
use super::journal::{self, JournalOp};
use super::tree::Tree;
use super::{FaultfsStats, Latencies};

/// One directory entry as `readdir` reports it.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The FUSE inode number when the kernel holds one, else the real one.
    // Only shown as `d_ino`: the kernel looks the name up before using the entry.
    pub ino: u64,
    /// What it is.
    pub kind: fuser::FileType,
    /// Its name.
    pub name: OsString,
}

/// A lock that survives a panicked holder: the tables stay usable for the other threads.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

pub(super) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| errno(libc::EINVAL))
}

/// The filesystem: two directories, the inode table, open handles and what is not durable.
#[derive(Debug)]
pub struct Core {
    pub(super) durable: PathBuf,
    pub(super) live: PathBuf,
    pub(super) tree: Mutex<Tree>,
    pub(super) files: Mutex<HashMap<u64, Arc<File>>>,
    pub(super) dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    pub(super) next_fh: AtomicU64,
    pub(super) dirty: Mutex<HashMap<u64, DirtyFile>>,
    /// Held by every write to `durable`; false once the power is lost.
    // So no later write reaches durable: an fsync sleeping when the power went then fails.
    pub(super) powered: Mutex<bool>,
    pub(super) latencies: Mutex<Latencies>,
    pub(super) fsyncs: AtomicU64,
    pub(super) journal_ops: AtomicU64,
    pub(super) bytes_synced: AtomicU64,
}

impl Core {
    /// Boots the disk: `live` becomes a copy of `durable` (what survived), then serves it.
    pub fn start(durable: &Path, live: &Path) -> io::Result<Core> {
        disk::prepare(durable, live)?;
        Ok(Core {
            durable: durable.to_path_buf(),
            live: live.to_path_buf(),
            tree: Mutex::new(Tree::new()),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            dirty: Mutex::new(HashMap::new()),
            powered: Mutex::new(true),
            latencies: Mutex::new(Latencies::default()),
            fsyncs: AtomicU64::new(0),
            journal_ops: AtomicU64::new(0),
            bytes_synced: AtomicU64::new(0),
        })
    }

    /// Changes the injected latencies (takes effect for the next operation).
    pub fn set_latencies(&self, latencies: Latencies) {
        *lock(&self.latencies) = latencies;
    }

    /// The injected latencies now.
    pub fn latencies(&self) -> Latencies {
        *lock(&self.latencies)
    }

    /// From now on nothing reaches `durable`: what a power cut does.
    pub fn lose_power(&self) {
        *lock(&self.powered) = false;
    }

    /// The counters now.
    pub fn stats(&self) -> FaultfsStats {
        let pending = lock(&self.tree).journal.len() as u64;
        let dirty = lock(&self.dirty);
        FaultfsStats {
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            journal_ops_committed: self.journal_ops.load(Ordering::Relaxed),
            bytes_synced: self.bytes_synced.load(Ordering::Relaxed),
            dirty_bytes: dirty.values().map(|d| d.ranges.bytes()).sum(),
            dirty_files: dirty.len() as u64,
            pending_journal_ops: pending,
        }
    }

    fn file(&self, fh: u64) -> io::Result<Arc<File>> {
        lock(&self.files)
            .get(&fh)
            .cloned()
            .ok_or_else(|| errno(libc::EBADF))
    }

    fn add_file(&self, file: File) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.files).insert(fh, Arc::new(file));
        fh
    }

    pub(super) fn forget_dirty(&self, ino: Option<u64>) {
        if let Some(ino) = ino {
            lock(&self.dirty).remove(&ino);
        }
    }

    /// Finds `name` in `parent` and gives the kernel a reference to it.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> io::Result<(u64, Metadata)> {
        let mut tree = lock(&self.tree);
        let path = tree.child(parent, name)?;
        let meta = fs::symlink_metadata(self.live.join(&path))?;
        Ok((tree.remember(&path), meta))
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        let mut tree = lock(&self.tree);
        let keep = lock(&self.dirty).contains_key(&ino);
        if tree.forget(ino, n, keep) {
            self.forget_dirty(Some(ino));
        }
    }

    /// Attributes of `ino`, through its open handle when there is one (it may be unlinked).
    pub fn getattr(&self, ino: u64, fh: Option<u64>) -> io::Result<Metadata> {
        if let Some(file) = fh.and_then(|fh| self.file(fh).ok()) {
            return file.metadata();
        }
        let path = lock(&self.tree).path(ino)?;
        fs::symlink_metadata(self.live.join(path))
    }

    /// chmod, chown, truncate and utimes, in that order; returns the new attributes.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &self,
        ino: u64,
        fh: Option<u64>,
        mode: Option<u32>,
        owner: (Option<u32>, Option<u32>),
        size: Option<u64>,
        times: [libc::timespec; 2],
    ) -> io::Result<Metadata> {
        let handle = fh.and_then(|fh| self.file(fh).ok());
        if let Some(mode) = mode {
            let perm = Permissions::from_mode(mode & 0o7777);
            let mut tree = lock(&self.tree);
            match (tree.path(ino), &handle) {
                (Ok(path), _) => {
                    fs::set_permissions(self.live.join(&path), perm)?;
                    tree.journal.push_back(JournalOp::Chmod {
                        path,
                        mode: mode & 0o7777,
                    });
                }
                // Unlinked: no name for the journal to record.
                (Err(_), Some(file)) => file.set_permissions(perm)?,
                (Err(e), None) => return Err(e),
            }
        }
        if owner.0.is_some() || owner.1.is_some() {
            let path = lock(&self.tree).path(ino)?;
            std::os::unix::fs::lchown(self.live.join(path), owner.0, owner.1)?;
        }
        if let Some(size) = size {
            match &handle {
                Some(file) => self.truncate(ino, file, size)?,
                None => {
                    let path = lock(&self.tree).path(ino)?;
                    let file = OpenOptions::new().write(true).open(self.live.join(path))?;
                    self.truncate(ino, &file, size)?;
                }
            }
        }
        if times.iter().any(|t| t.tv_nsec != libc::UTIME_OMIT) {
            let rc = match &handle {
                // SAFETY: the fd is open (held by `file`) and `times` has the two entries.
                Some(file) => unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) },
                None => {
                    let path = cstring(&self.live.join(lock(&self.tree).path(ino)?))?;
                    let flags = libc::AT_SYMLINK_NOFOLLOW;
                    // SAFETY: `path` is NUL-terminated and `times` has the two entries.
                    unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), flags) }
                }
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        self.getattr(ino, fh)
    }

    fn truncate(&self, ino: u64, file: &File, size: u64) -> io::Result<()> {
        let before = file.metadata()?.len();
        file.set_len(size)?;
        let mut dirty = lock(&self.dirty);
        let entry = dirty.entry(ino).or_default();
        entry.size_changed = true;
        if size < before {
            entry.ranges.truncate(size);
            entry.shrunk_to = Some(entry.shrunk_to.map_or(size, |s| s.min(size)));
        }
        Ok(())
    }

    /// Opens a regular file on `live` read-write, whatever the caller asked.
    // The kernel has checked permissions, fsync reads through the handle, and append offsets
    // come from the kernel (an O_APPEND backing file would ignore them).
    fn open_live(full: &Path, create_mode: Option<u32>) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if let Some(mode) = create_mode {
            options.create_new(true).mode(mode);
        }
        options.open(full)
    }

    /// Creates (or, without O_EXCL, opens) a regular file and opens it.
    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> io::Result<(u64, Metadata, u64)> {
        let perm = mode & !umask & 0o7777;
        let mut tree = lock(&self.tree);
        let path = tree.child(parent, name)?;
        let full = self.live.join(&path);
        let (file, created) = match Self::open_live(&full, Some(perm)) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && flags & libc::O_EXCL == 0 => {
                (Self::open_live(&full, None)?, false)
            }
            Err(e) => return Err(e),
        };
        if created {
            // Our own umask must not narrow what the caller asked for.
            file.set_permissions(Permissions::from_mode(perm))?;
            let journalled = path.clone();
            tree.journal.push_back(JournalOp::CreateFile {
                path: journalled,
                mode: perm,
            });
        }
        let ino = tree.remember(&path);
        drop(tree);
        if !created && flags & libc::O_TRUNC != 0 {
            self.truncate(ino, &file, 0)?;
        }
        let meta = file.metadata()?;
        Ok((ino, meta, self.add_file(file)))
    }

    /// mknod: regular files only (what the servers this disk is for create).
    pub fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> io::Result<(u64, Metadata)> {
        let kind = mode & libc::S_IFMT;
        if kind != 0 && kind != libc::S_IFREG {
            return Err(errno(libc::EOPNOTSUPP));
        }
        let (ino, meta, fh) = self.create(parent, name, mode, umask, libc::O_EXCL)?;
        self.release(fh);
        Ok((ino, meta))
    }

    /// Opens an existing file.
    pub fn open(&self, ino: u64, flags: i32) -> io::Result<u64> {
        let file = {
            let tree = lock(&self.tree);
            Self::open_live(&self.live.join(tree.path(ino)?), None)?
        };
        if flags & libc::O_TRUNC != 0 {
            self.truncate(ino, &file, 0)?;
        }
        Ok(self.add_file(file))
    }

    /// Closes a file handle.
    pub fn release(&self, fh: u64) {
        lock(&self.files).remove(&fh);
    }

    /// pread: up to `size` bytes at `offset` (fewer only at the end of the file).
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        let file = self.file(fh)?;
        let mut buf = vec![0u8; size as usize];
        let n = disk::read_full_at(&file, &mut buf, offset)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// pwrite at any offset (past the end leaves a hole); the bytes become dirty.
    pub fn write(&self, ino: u64, fh: u64, offset: u64, data: &[u8]) -> io::Result<u32> {
        let delay = self.latencies().write_latency_ms;
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let file = self.file(fh)?;
        file.write_all_at(data, offset)?;
        let end = offset.saturating_add(data.len() as u64);
        lock(&self.dirty)
            .entry(ino)
            .or_default()
            .ranges
            .insert(offset, end);
        u32::try_from(data.len()).map_err(|_| errno(libc::EINVAL))
    }

    /// fallocate mode 0 (allocate, extending the file); other modes are not supported.
    pub fn fallocate(&self, ino: u64, fh: u64, offset: u64, len: u64, mode: i32) -> io::Result<()> {
        if mode != 0 {
            return Err(errno(libc::EOPNOTSUPP));
        }
        let file = self.file(fh)?;
        let before = file.metadata()?.len();
        let (off, length) = match (i64::try_from(offset), i64::try_from(len)) {
            (Ok(o), Ok(l)) => (o, l),
            _ => return Err(errno(libc::EFBIG)),
        };
        // SAFETY: the fd is open (held by `file`); fallocate reads no memory of ours.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, off, length) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // The new bytes are zeros on live and read back as zeros from a longer durable
        // file too: only the length is dirty.
        if offset.saturating_add(len) > before {
            lock(&self.dirty).entry(ino).or_default().size_changed = true;
        }
        Ok(())
    }

    /// fsync/fdatasync of a file: sleep the latency, commit the journal, sync its data.
    pub fn fsync(&self, ino: u64, fh: u64) -> io::Result<()> {
        self.fsync_delay();
        let file = self.file(fh).ok();
        self.commit_and_sync(Some(ino), file.as_deref())
    }

    /// fsync of a directory: sleep the latency, commit the journal.
    pub fn fsyncdir(&self, ino: u64) -> io::Result<()> {
        self.fsync_delay();
        self.commit_and_sync(None, None)?;
        match lock(&self.tree).path(ino) {
            Ok(path) => disk::sync_dir(&self.durable.join(path)),
            Err(_) => Ok(()),
        }
    }

    fn fsync_delay(&self) {
        let delay = self.latencies().fsync_latency_ms;
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// What an orderly shutdown does: commit the journal and sync every dirty file.
    pub fn sync_all(&self) -> io::Result<()> {
        self.commit_and_sync(None, None)?;
        let inos: Vec<u64> = lock(&self.dirty).keys().copied().collect();
        for ino in inos {
            self.commit_and_sync(Some(ino), None)?;
        }
        Ok(())
    }

    /// Commits the journal, then syncs file `ino`'s dirty data if given.
    // The data is read from `handle`, or from its live path when there is no handle.
    fn commit_and_sync(&self, ino: Option<u64>, handle: Option<&File>) -> io::Result<()> {
        let powered = lock(&self.powered);
        if !*powered {
            return Err(errno(libc::EIO));
        }
        // Taken together: the path is then the one durable has once these ops are applied,
        // and any later rename is in the journal for the next commit.
        let (mut ops, path) = {
            let mut tree = lock(&self.tree);
            let path = ino.and_then(|ino| tree.path(ino).ok());
            (std::mem::take(&mut tree.journal), path)
        };
        self.commit(&mut ops)?;
        let (Some(ino), Some(path)) = (ino, path) else {
            return Ok(());
        };
        let Some(dirty) = lock(&self.dirty).remove(&ino) else {
            return Ok(());
        };
        let opened;
        let source = match handle {
            Some(file) => file,
            None => match File::open(self.live.join(&path)) {
                Ok(file) => {
                    opened = file;
                    &opened
                }
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            },
        };
        match disk::sync_file(source, &self.durable.join(&path), &dirty) {
            Ok(copied) => {
                self.bytes_synced.fetch_add(copied, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                lock(&self.dirty).entry(ino).or_default().absorb(&dirty);
                Err(e)
            }
        }
    }

    fn commit(&self, ops: &mut std::collections::VecDeque<JournalOp>) -> io::Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let parents: BTreeSet<PathBuf> = ops
            .iter()
            .filter_map(|op| op.parent().map(Path::to_path_buf))
            .collect();
        let before = ops.len();
        let result = journal::replay(&self.durable, ops);
        let applied = (before - ops.len()) as u64;
        self.journal_ops.fetch_add(applied, Ordering::Relaxed);
        if let Err(e) = result {
            // The rest goes back in front of what was journalled meanwhile, in order.
            let mut tree = lock(&self.tree);
            while let Some(op) = ops.pop_back() {
                tree.journal.push_front(op);
            }
            return Err(e);
        }
        parents
            .iter()
            .try_for_each(|p| disk::sync_dir(&self.durable.join(p)))
    }
}
