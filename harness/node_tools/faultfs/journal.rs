//! The metadata journal: namespace changes made on `live` that reach `durable` at the next
//! commit (any fsync), in the order they were made, like ext4's journal.

use std::collections::VecDeque;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One metadata operation; paths are relative to the filesystem's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalOp {
    /// A new, empty regular file.
    CreateFile {
        /// Where.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A new directory.
    Mkdir {
        /// Where.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file or symlink removed.
    Unlink {
        /// What.
        path: PathBuf,
    },
    /// An empty directory removed.
    Rmdir {
        /// What.
        path: PathBuf,
    },
    /// A rename, replacing `to` if it exists.
    Rename {
        /// The old name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
    },
    /// A new symbolic link.
    Symlink {
        /// Where.
        path: PathBuf,
        /// What it points to.
        target: PathBuf,
    },
    /// Permission bits changed.
    Chmod {
        /// What.
        path: PathBuf,
        /// The new permission bits.
        mode: u32,
    },
}

impl JournalOp {
    /// The directory whose entries this operation changes (fsynced after a commit).
    pub fn parent(&self) -> Option<&Path> {
        match self {
            JournalOp::CreateFile { path, .. }
            | JournalOp::Mkdir { path, .. }
            | JournalOp::Unlink { path }
            | JournalOp::Rmdir { path }
            | JournalOp::Symlink { path, .. } => path.parent(),
            JournalOp::Rename { to, .. } => to.parent(),
            JournalOp::Chmod { .. } => None,
        }
    }
}

// "Not there" means the operation was for a file that never became durable: skipped.
fn missing(e: &io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

fn skip_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if missing(&e) => Ok(()),
        other => other,
    }
}

/// Applies one operation to the tree rooted at `root`.
pub fn apply(root: &Path, op: &JournalOp) -> io::Result<()> {
    match op {
        JournalOp::CreateFile { path, mode } => {
            // Truncating: a journalled create always made a new, empty file.
            let made = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(*mode)
                .open(root.join(path));
            match made {
                Ok(file) => file.set_permissions(Permissions::from_mode(*mode)),
                Err(e) if missing(&e) => Ok(()),
                Err(e) => Err(e),
            }
        }
        JournalOp::Mkdir { path, mode } => {
            let full = root.join(path);
            match DirBuilder::new().mode(*mode).create(&full) {
                Ok(()) => fs::set_permissions(&full, Permissions::from_mode(*mode)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists || missing(&e) => Ok(()),
                Err(e) => Err(e),
            }
        }
        JournalOp::Unlink { path } => skip_missing(fs::remove_file(root.join(path))),
        JournalOp::Rmdir { path } => {
            let full = root.join(path);
            match fs::remove_dir(&full) {
                // Empty on live when it was removed: whatever durable still holds in it
                // belongs to files whose removal was skipped.
                Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => fs::remove_dir_all(&full),
                other => skip_missing(other),
            }
        }
        JournalOp::Rename { from, to } => {
            let source = root.join(from);
            if fs::symlink_metadata(&source).is_err() {
                return Ok(());
            }
            skip_missing(fs::rename(source, root.join(to)))
        }
        JournalOp::Symlink { path, target } => {
            match std::os::unix::fs::symlink(target, root.join(path)) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
                other => skip_missing(other),
            }
        }
        JournalOp::Chmod { path, mode } => skip_missing(fs::set_permissions(
            root.join(path),
            Permissions::from_mode(*mode),
        )),
    }
}

/// Applies `ops` in order, popping each once applied; returns how many were applied.
// Popping one by one leaves exactly the unapplied rest when one fails.
pub fn replay(root: &Path, ops: &mut VecDeque<JournalOp>) -> io::Result<u64> {
    let mut applied = 0;
    while let Some(op) = ops.front() {
        apply(root, op)?;
        ops.pop_front();
        applied += 1;
    }
    Ok(applied)
}
