//! The inode table: FUSE inode numbers ↔ paths relative to the root, with the kernel's
//! lookup counts, and the journal of metadata operations not yet committed.
//!
//! Both live behind one lock so that a namespace change on `live`, its journal entry and its
//! table update happen as one step: the journal's order is then the order `live` saw.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use super::journal::JournalOp;

/// The root's inode number (fixed by FUSE).
pub const ROOT: u64 = 1;

/// One inode the kernel knows.
#[derive(Debug)]
struct Node {
    /// `None` once unlinked or replaced by a rename: open handles may still use it.
    path: Option<PathBuf>,
    lookups: u64,
}

/// Inode numbers, their paths and the pending journal.
#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// Metadata operations made on `live` since the last commit, oldest first.
    pub journal: VecDeque<JournalOp>,
}

fn not_found() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A table holding only the root.
    pub fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                path: Some(PathBuf::new()),
                lookups: 1,
            },
        );
        let mut by_path = HashMap::new();
        by_path.insert(PathBuf::new(), ROOT);
        Tree {
            nodes,
            by_path,
            next_ino: ROOT + 1,
            journal: VecDeque::new(),
        }
    }

    /// The path of `ino`, or ENOENT if it is unknown or no longer linked.
    pub fn path(&self, ino: u64) -> io::Result<PathBuf> {
        self.nodes
            .get(&ino)
            .and_then(|n| n.path.clone())
            .ok_or_else(not_found)
    }

    /// The path of `name` inside directory `parent`.
    pub fn child(&self, parent: u64, name: &OsStr) -> io::Result<PathBuf> {
        let name = Path::new(name);
        // The kernel sends single components; anything else would escape the root.
        if name.components().count() != 1 || name.file_name().is_none() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(self.path(parent)?.join(name))
    }

    /// The inode number at `path`, if the kernel holds one.
    pub fn ino_of(&self, path: &Path) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// Gives the kernel a reference to the inode at `path` (allocating a number if needed).
    pub fn remember(&mut self, path: &Path) -> u64 {
        if let Some(&ino) = self.by_path.get(path) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.lookups += 1;
                return ino;
            }
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                path: Some(path.to_path_buf()),
                lookups: 1,
            },
        );
        self.by_path.insert(path.to_path_buf(), ino);
        ino
    }

    /// Drops `n` kernel references; returns true when the inode was removed from the table.
    // `keep`: an unreferenced but still-linked inode that is dirty stays, because its number
    // keys the dirty ranges and the next lookup must find the same one.
    pub fn forget(&mut self, ino: u64, n: u64, keep: bool) -> bool {
        if ino == ROOT {
            return false;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return false;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups > 0 || (keep && node.path.is_some()) {
            return false;
        }
        if let Some(path) = node.path.take() {
            self.by_path.remove(&path);
        }
        self.nodes.remove(&ino);
        true
    }

    /// Records that `path` was removed; returns the inode that lost its name, if any.
    pub fn unlinked(&mut self, path: &Path) -> Option<u64> {
        let ino = self.by_path.remove(path)?;
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.path = None;
        }
        Some(ino)
    }

    /// Records a rename of `from` (and all under it) to `to`; returns the inode `to` named before.
    pub fn renamed(&mut self, from: &Path, to: &Path) -> Option<u64> {
        let replaced = self.unlinked(to);
        let moved: Vec<(PathBuf, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, &ino)| (p.clone(), ino))
            .collect();
        for (old, ino) in moved {
            self.by_path.remove(&old);
            let new = match old.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
                Ok(rest) => to.join(rest),
                Err(_) => continue,
            };
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.path = Some(new.clone());
            }
            self.by_path.insert(new, ino);
        }
        replaced
    }
}
