//! Namespace operations of [`Core`]: each is done on `live` and journalled under the tree
//! lock, so the journal's order is the order `live` saw.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, Metadata, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::journal::JournalOp;
use super::state::{cstring, errno, lock, Core, DirEntry};
use super::tree::ROOT;

impl Core {
    /// mkdir.
    pub fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> io::Result<(u64, Metadata)> {
        let perm = mode & !umask & 0o7777;
        let mut tree = lock(&self.tree);
        let path = tree.child(parent, name)?;
        let full = self.live.join(&path);
        DirBuilder::new().mode(perm).create(&full)?;
        fs::set_permissions(&full, Permissions::from_mode(perm))?;
        let meta = fs::symlink_metadata(&full)?;
        tree.journal.push_back(JournalOp::Mkdir {
            path: path.clone(),
            mode: perm,
        });
        Ok((tree.remember(&path), meta))
    }

    /// symlink.
    pub fn symlink(&self, parent: u64, name: &OsStr, target: &Path) -> io::Result<(u64, Metadata)> {
        let mut tree = lock(&self.tree);
        let path = tree.child(parent, name)?;
        let full = self.live.join(&path);
        std::os::unix::fs::symlink(target, &full)?;
        let meta = fs::symlink_metadata(&full)?;
        tree.journal.push_back(JournalOp::Symlink {
            path: path.clone(),
            target: target.to_path_buf(),
        });
        Ok((tree.remember(&path), meta))
    }

    /// readlink.
    pub fn readlink(&self, ino: u64) -> io::Result<Vec<u8>> {
        let path = lock(&self.tree).path(ino)?;
        Ok(fs::read_link(self.live.join(path))?
            .into_os_string()
            .into_encoded_bytes())
    }

    /// unlink.
    pub fn unlink(&self, parent: u64, name: &OsStr) -> io::Result<()> {
        let mut tree = lock(&self.tree);
        let path = tree.child(parent, name)?;
        fs::remove_file(self.live.join(&path))?;
        tree.journal
            .push_back(JournalOp::Unlink { path: path.clone() });
        self.forget_dirty(tree.unlinked(&path));
        Ok(())
    }

    /// rmdir.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> io::Result<()> {
        let mut tree = lock(&self.tree);
        let path = tree.child(parent, name)?;
        fs::remove_dir(self.live.join(&path))?;
        tree.journal
            .push_back(JournalOp::Rmdir { path: path.clone() });
        tree.unlinked(&path);
        Ok(())
    }

    /// rename, replacing the target unless `flags` has RENAME_NOREPLACE.
    // RENAME_EXCHANGE and RENAME_WHITEOUT are not supported: no server this is for uses them.
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> io::Result<()> {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(errno(libc::EINVAL));
        }
        let mut tree = lock(&self.tree);
        let from = tree.child(parent, name)?;
        let to = tree.child(new_parent, new_name)?;
        let (live_from, live_to) = (self.live.join(&from), self.live.join(&to));
        if flags == 0 {
            fs::rename(&live_from, &live_to)?;
        } else {
            let (a, b) = (cstring(&live_from)?, cstring(&live_to)?);
            let (cwd, p1, p2) = (libc::AT_FDCWD, a.as_ptr(), b.as_ptr());
            // SAFETY: both paths are NUL-terminated and outlive the call.
            if unsafe { libc::renameat2(cwd, p1, cwd, p2, flags) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if from == to {
            return Ok(());
        }
        tree.journal.push_back(JournalOp::Rename {
            from: from.clone(),
            to: to.clone(),
        });
        self.forget_dirty(tree.renamed(&from, &to));
        Ok(())
    }

    /// opendir: the entries are listed now and served from this snapshot.
    pub fn opendir(&self, ino: u64) -> io::Result<u64> {
        let path = lock(&self.tree).path(ino)?;
        let mut listed = Vec::new();
        for entry in fs::read_dir(self.live.join(&path))? {
            let entry = entry?;
            let kind = fuser::FileType::from_std(entry.file_type()?);
            listed.push((entry.file_name(), entry.ino(), kind));
        }
        let tree = lock(&self.tree);
        let parent = path.parent().and_then(|p| tree.ino_of(p)).unwrap_or(ROOT);
        let dir = fuser::FileType::Directory;
        let mut entries = vec![
            DirEntry {
                ino,
                kind: dir,
                name: ".".into(),
            },
            DirEntry {
                ino: parent,
                kind: dir,
                name: "..".into(),
            },
        ];
        for (name, real_ino, kind) in listed {
            let ino = tree.ino_of(&path.join(&name)).unwrap_or(real_ino);
            let kind = kind.unwrap_or(fuser::FileType::RegularFile);
            entries.push(DirEntry { ino, kind, name });
        }
        drop(tree);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(fh, Arc::new(entries));
        Ok(fh)
    }

    /// The listing taken at opendir.
    pub fn readdir(&self, fh: u64) -> io::Result<Arc<Vec<DirEntry>>> {
        lock(&self.dirs)
            .get(&fh)
            .cloned()
            .ok_or_else(|| errno(libc::EBADF))
    }

    /// releasedir.
    pub fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }

    /// statvfs of the disk holding `live`.
    pub fn statfs(&self) -> io::Result<libc::statvfs> {
        let path = cstring(&self.live)?;
        // SAFETY: statvfs is plain data; an all-zero value is valid and is overwritten.
        let mut out: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `out` is a valid place to write.
        if unsafe { libc::statvfs(path.as_ptr(), &mut out) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(out)
    }
}
