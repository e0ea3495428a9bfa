//! Copies between the two real directories: `durable` → `live` at start (what a reboot
//! finds), and one file's dirty ranges `live` → `durable` at its fsync.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::ranges::DirtyRanges;

/// Copy granularity; a block of zeros this size is left as a hole.
const BLOCK: usize = 64 * 1024;

/// Makes `live` an exact copy of `durable` (created empty if missing).
// That is the disk as a reboot after power loss finds it.
pub fn prepare(durable: &Path, live: &Path) -> io::Result<()> {
    fs::create_dir_all(durable)?;
    match fs::symlink_metadata(live) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(live)?,
        Ok(_) => fs::remove_file(live)?,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    copy_tree(durable, live)
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    // Owner-writable while filling it; the real mode is set once its entries are in.
    DirBuilder::new().mode(0o700).create(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if kind.is_file() {
            copy_file_sparse(&src, &dst)?;
        }
        // Devices, fifos and sockets are not data a power loss could keep: skipped.
    }
    fs::set_permissions(to, Permissions::from_mode(meta.mode() & 0o7777))
}

/// Copies a regular file, leaving all-zero blocks as holes so preallocated logs stay small.
pub fn copy_file_sparse(src: &Path, dst: &Path) -> io::Result<()> {
    let input = File::open(src)?;
    let meta = input.metadata()?;
    let output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)?;
    let mut buf = vec![0u8; BLOCK];
    let mut offset = 0u64;
    while offset < meta.len() {
        let n = read_full_at(&input, &mut buf, offset)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if chunk.iter().any(|&b| b != 0) {
            output.write_all_at(chunk, offset)?;
        }
        offset += n as u64;
    }
    output.set_len(meta.len())?;
    output.set_permissions(Permissions::from_mode(meta.mode() & 0o7777))
}

/// Reads until `buf` is full or the end of the file; returns how much was read.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What must reach `durable` for one file at its fsync.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirtyFile {
    /// Bytes written since the last sync.
    pub ranges: DirtyRanges,
    /// The smallest length it was truncated to since the last sync.
    // Durable is cut there first, so bytes past it that were not rewritten read back as
    // zeros, as on live.
    pub shrunk_to: Option<u64>,
    /// Its length changed (truncate, fallocate) since the last sync.
    pub size_changed: bool,
}

impl DirtyFile {
    /// Folds a later-failed sync's state back in (nothing is lost, some may be copied twice).
    pub fn absorb(&mut self, other: &DirtyFile) {
        self.ranges.merge(&other.ranges);
        self.shrunk_to = match (self.shrunk_to, other.shrunk_to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.size_changed |= other.size_changed;
    }
}

/// Brings `durable_path` up to `live`'s content for `dirty`, fdatasyncs it, returns bytes copied.
pub fn sync_file(live: &File, durable_path: &Path, dirty: &DirtyFile) -> io::Result<u64> {
    let live_meta = live.metadata()?;
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(live_meta.mode() & 0o7777)
            .open(durable_path)
    };
    let output = match open() {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Its directory's creation was never journalled (it predates the mount and
            // was lost): recreate the directories rather than lose the data.
            if let Some(parent) = durable_path.parent() {
                fs::create_dir_all(parent)?;
            }
            open()?
        }
        other => other?,
    };
    let length = live_meta.len();
    if let Some(shrunk) = dirty.shrunk_to {
        if shrunk < output.metadata()?.len() {
            output.set_len(shrunk)?;
        }
    }
    let mut buf = vec![0u8; BLOCK];
    let mut copied = 0u64;
    for (start, end) in dirty.ranges.iter() {
        let end = end.min(length);
        let mut offset = start;
        while offset < end {
            let want = usize::try_from(end - offset).map_or(BLOCK, |w| w.min(BLOCK));
            let n = read_full_at(live, &mut buf[..want], offset)?;
            if n == 0 {
                break;
            }
            output.write_all_at(&buf[..n], offset)?;
            offset += n as u64;
            copied += n as u64;
        }
    }
    output.set_len(length)?;
    output.sync_data()?;
    Ok(copied)
}

/// fsyncs a directory of `durable` so its entries survive a host crash too.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match File::open(path) {
        Ok(dir) => dir.sync_all(),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
