//! faultfs: a disk whose writes are lost on power loss unless synced, modelled on ext4 with
//! a journal, served as a FUSE passthrough filesystem.
//!
//! - Two real directories on the node: `durable` (what survives a power loss) and `live`
//!   (what processes see through the mount). At start `live` is removed and made a copy of
//!   `durable` (modes, sizes and holes kept; `durable` is created empty if missing), and
//!   the mount serves `live`.
//! - Every operation goes to `live` at once.
//! - Metadata operations (create/mknod, mkdir, unlink, rmdir, rename, symlink, chmod) are
//!   appended to an in-memory journal, in order. Data changes (write, truncate, fallocate)
//!   are kept per inode as merged dirty byte ranges plus "length changed".
//! - fsync/fdatasync of a file first commits the journal (replays it on `durable`; an
//!   operation whose source is missing there is skipped: it was for a file that never became
//!   durable), then copies that file's dirty ranges to `durable`, sets the durable length to
//!   the live one and fdatasyncs it. fsyncdir commits the journal.
//! - So a file created and written without fsync vanishes after a power loss, a file keeps
//!   exactly what it had at its last fsync, metadata becomes durable at the next fsync of
//!   anything (ext4's journal commit), data only when its own file is fsynced.
//! - Power loss is SIGKILL of the daemon: nothing more reaches `durable`, and the next start
//!   makes `live` a copy of it. A clean stop (SIGTERM, SIGINT) unmounts (so nothing more
//!   arrives), then commits the journal and syncs every dirty file, as a shutdown would.
//! - Memory is bounded: at most 65,536 dirty ranges per file, merged into one covering range
//!   past that (more is copied at the next fsync, never less).
//! - Not modelled: ownership and timestamps (passed through to `live`, never journalled, not
//!   kept by the copy at start; everything runs as root). Hard links, special files and
//!   xattrs are not supported.
//! - fsync and fsyncdir sleep `fsync_latency_ms` first; write sleeps `write_latency_ms`.
//!   SIGHUP re-reads them from the control file and writes the counters to the stats file.
//!   Four worker threads serve requests, so a sleeping fsync does not stall other files.

mod disk;
mod fuse;
mod journal;
mod namespace;
mod ranges;
mod state;
mod tree;

#[cfg(test)]
mod mount_tests;
#[cfg(test)]
mod tests;

use std::ffi::{CString, OsString};
use std::fs;
use std::io::{self, ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, Session, SessionUnmounter};

use self::fuse::FaultFs;
use self::state::Core;

/// What the daemon is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultfsOptions {
    /// What survives a power loss.
    pub durable: PathBuf,
    /// What the mount serves; replaced by a copy of `durable` at start.
    pub live: PathBuf,
    /// Where the filesystem is mounted.
    pub mount: PathBuf,
    /// JSON [`Latencies`], re-read on SIGHUP; missing means no latency.
    pub control: PathBuf,
    /// Where [`FaultfsStats`] are written on SIGHUP and at a clean stop.
    pub stats: PathBuf,
    /// The mount's source name (shown in /proc/mounts).
    pub fsname: String,
}

/// The control file's contents.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Copy, Debug, PartialEq)]
#[serde(default)]
pub struct Latencies {
    /// How long fsync, fdatasync and fsyncdir sleep before doing their work.
    pub fsync_latency_ms: u64,
    /// How long each write sleeps.
    pub write_latency_ms: u64,
}

/// The counters written to the stats file.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultfsStats {
    /// fsync, fdatasync and fsyncdir calls.
    pub fsyncs: u64,
    /// Journal operations applied to `durable`.
    pub journal_ops_committed: u64,
    /// Data bytes copied to `durable`.
    pub bytes_synced: u64,
    /// Bytes written but not yet synced, now.
    pub dirty_bytes: u64,
    /// Files with unsynced changes, now.
    pub dirty_files: u64,
    /// Journal operations not yet committed, now.
    pub pending_journal_ops: u64,
}

/// Why the filesystem could not start, run or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum FaultfsError {
    /// `live` could not be made a copy of `durable`.
    #[error("failed to prepare {} from {}: {source}", .live.display(), .durable.display())]
    Prepare {
        /// The durable directory.
        durable: PathBuf,
        /// The live directory.
        live: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The FUSE mount failed.
    #[error("failed to mount {}: {source}", .mount.display())]
    Mount {
        /// The mount point.
        mount: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The FUSE mount could not be removed.
    #[error("failed to unmount {}: {source}", .mount.display())]
    Unmount {
        /// The mount point.
        mount: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The control file exists but could not be read.
    #[error("failed to read the control file {}: {source}", .path.display())]
    Control {
        /// The control file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The control file is not the expected JSON.
    #[error("failed to parse the control file {}: {source}", .path.display())]
    ControlParse {
        /// The control file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The stats file could not be written.
    #[error("failed to write the stats file {}: {source}", .path.display())]
    Stats {
        /// The stats file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The clean stop could not bring `durable` up to date.
    #[error("failed to sync to {}: {source}", .durable.display())]
    Sync {
        /// The durable directory.
        durable: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("failed to install the signal handlers: {0}")]
    Signals(io::Error),
}

/// Reads the control file; a missing file means no latency.
pub fn read_control(path: &Path) -> Result<Latencies, FaultfsError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| FaultfsError::ControlParse {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Latencies::default()),
        Err(source) => Err(FaultfsError::Control {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes the counters as JSON, atomically (a reader never sees half a file).
pub fn write_stats(path: &Path, stats: &FaultfsStats) -> Result<(), FaultfsError> {
    let fail = |source| FaultfsError::Stats {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_vec(stats).map_err(|e| fail(io::Error::other(e)))?;
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(".tmp");
    fs::write(&tmp, text).map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)
}

fn detach(mount: &Path) -> io::Result<()> {
    let path = CString::new(mount.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `path` is NUL-terminated and outlives the call.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Detaches a dead mount left by a killed daemon.
// Its mount point fails with ENOTCONN, which cannot be mounted over until detached.
fn clear_stale_mount(mount: &Path) {
    if let Err(e) = fs::metadata(mount) {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            let _ = detach(mount);
        }
    }
}

/// The filesystem mounted, served by background threads.
#[derive(Debug)]
pub struct Mounted {
    core: Arc<Core>,
    mount: PathBuf,
    durable: PathBuf,
    unmounter: SessionUnmounter,
    session: Option<JoinHandle<io::Result<()>>>,
}

/// Mounts and serves from background threads until stopped; dropping the handle loses power.
pub fn mount_in_background(options: &FaultfsOptions) -> Result<Mounted, FaultfsError> {
    let mount_error = |source| FaultfsError::Mount {
        mount: options.mount.clone(),
        source,
    };
    clear_stale_mount(&options.mount);
    fs::create_dir_all(&options.mount).map_err(mount_error)?;
    let core =
        Core::start(&options.durable, &options.live).map_err(|source| FaultfsError::Prepare {
            durable: options.durable.clone(),
            live: options.live.clone(),
            source,
        })?;
    core.set_latencies(read_control(&options.control)?);
    let core = Arc::new(core);
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(options.fsname.clone()),
        MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(4);
    let fs = FaultFs {
        core: Arc::clone(&core),
    };
    let mut session = Session::new(fs, &options.mount, &config).map_err(mount_error)?;
    let unmounter = session.unmount_callable();
    let session = std::thread::Builder::new()
        .name("faultfs".into())
        .spawn(move || session.run())
        .map_err(mount_error)?;
    Ok(Mounted {
        core,
        mount: options.mount.clone(),
        durable: options.durable.clone(),
        unmounter,
        session: Some(session),
    })
}

impl Mounted {
    /// Where it is mounted.
    pub fn mount_point(&self) -> &Path {
        &self.mount
    }

    /// Changes the injected latencies.
    pub fn set_latencies(&self, latencies: Latencies) {
        self.core.set_latencies(latencies);
    }

    /// The injected latencies now.
    pub fn latencies(&self) -> Latencies {
        self.core.latencies()
    }

    /// The counters now.
    pub fn stats(&self) -> FaultfsStats {
        self.core.stats()
    }

    /// Unmounts and waits for the worker threads.
    // A mount still in use is cut off the way a dying daemon's closed /dev/fuse does it
    // (abort the connection), then detached.
    fn stop_session(&mut self) -> Result<(), FaultfsError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let device = fs::metadata(&self.mount).map(|m| m.dev()).ok();
        let mut result = Ok(());
        if self.unmounter.unmount().is_err() {
            if let Some(dev) = device {
                let abort = format!("/sys/fs/fuse/connections/{}/abort", libc::minor(dev));
                let _ = fs::write(abort, "1");
            }
            result = detach(&self.mount).map_err(|source| FaultfsError::Unmount {
                mount: self.mount.clone(),
                source,
            });
        }
        // Without fusectl a detached-but-busy mount keeps its threads until its files are
        // closed: do not wait for that (the state is shared and safe to use meanwhile).
        let deadline = Instant::now() + Duration::from_secs(2);
        while !session.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if session.is_finished() {
            let _ = session.join();
        }
        result
    }

    /// A clean stop: unmount, then commit the journal and sync every dirty file.
    pub fn clean_stop(mut self) -> Result<FaultfsStats, FaultfsError> {
        let stopped = self.stop_session();
        let synced = self.core.sync_all().map_err(|source| FaultfsError::Sync {
            durable: self.durable.clone(),
            source,
        });
        stopped?;
        synced?;
        Ok(self.core.stats())
    }

    /// A power loss: unmount without syncing anything; nothing more reaches `durable`.
    pub fn lose_power(mut self) -> Result<(), FaultfsError> {
        self.core.lose_power();
        self.stop_session()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.session.is_some() {
            self.core.lose_power();
            let _ = self.stop_session();
        }
    }
}

/// Runs until SIGTERM/SIGINT (clean stop), blocking; SIGHUP re-reads control, writes stats.
// Prints `mounted <mount>` on stdout once mounted: the launcher waits for that line.
pub fn run(options: &FaultfsOptions) -> Result<(), FaultfsError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Installed before mounting: a stop signal that comes early must still be a clean stop.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(FaultfsError::Signals)?;
    let mounted = mount_in_background(options)?;
    let mut stdout = io::stdout();
    let _ = writeln!(stdout, "mounted {}", options.mount.display());
    let _ = stdout.flush();
    for signal in signals.forever() {
        if signal != SIGHUP {
            break;
        }
        match read_control(&options.control) {
            Ok(latencies) => mounted.set_latencies(latencies),
            Err(e) => eprintln!("faultfs: {e} (keeping {:?})", mounted.latencies()),
        }
        if let Err(e) = write_stats(&options.stats, &mounted.stats()) {
            eprintln!("faultfs: {e}");
        }
    }
    let stats = mounted.clean_stop()?;
    write_stats(&options.stats, &stats)
}
