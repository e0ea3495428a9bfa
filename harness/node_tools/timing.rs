//! The timers the harness verifies a slow network or a slow disk with, run on the node itself
//! so that nothing between the harness and the node (an engine's exec, an SSH hop) is timed:
//! how long a TCP handshake to a peer takes, and how long an fsync takes.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What one series of timings measured, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// The fastest sample.
    pub min_us: u64,
    /// The median sample.
    pub median_us: u64,
    /// The slowest sample.
    pub max_us: u64,
    /// How many samples were taken.
    pub samples: u32,
    /// How many of them timed out (counted at the timeout).
    pub timed_out: u32,
}

impl Timings {
    /// The summary of some samples; None when there are none.
    pub fn of(samples: &[Duration], timed_out: u32) -> Option<Self> {
        let mut micros: Vec<u64> = samples.iter().map(|d| d.as_micros() as u64).collect();
        micros.sort_unstable();
        Some(Self {
            min_us: *micros.first()?,
            median_us: micros[micros.len() / 2],
            max_us: *micros.last()?,
            samples: micros.len() as u32,
            timed_out,
        })
    }

    /// The fastest sample.
    pub fn min(&self) -> Duration {
        Duration::from_micros(self.min_us)
    }
}

/// Why a timing could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum TimingError {
    /// The file to fsync could not be written or synced.
    #[error("failed to {action} {path}: {source}")]
    File {
        /// What was attempted.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A connection attempt failed in a way that says nothing about the round trip.
    #[error("failed to connect to {to}: {source}")]
    Connect {
        /// The peer.
        to: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing was asked for.
    #[error("no samples were asked for")]
    NoSamples,
}

/// Times `count` TCP handshakes to `to`. A refusal (a reset from a closed port) ends a
/// handshake as surely as an accept, and is what the harness aims at: the peer's kernel
/// answers, whatever runs there. An attempt that times out counts at the timeout.
pub fn connect_times(
    to: SocketAddr,
    count: u32,
    timeout: Duration,
) -> Result<Timings, TimingError> {
    let mut samples = Vec::new();
    let mut timed_out = 0;
    for _ in 0..count {
        let start = Instant::now();
        match TcpStream::connect_timeout(&to, timeout) {
            Ok(_) => samples.push(start.elapsed()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                samples.push(start.elapsed())
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                timed_out += 1;
                samples.push(timeout);
            }
            Err(source) => return Err(TimingError::Connect { to, source }),
        }
    }
    Timings::of(&samples, timed_out).ok_or(TimingError::NoSamples)
}

/// Times `count` fsyncs of a 4 KiB write each, in a file created in `dir` and removed after.
pub fn fsync_times(dir: &Path, count: u32) -> Result<Timings, TimingError> {
    let path = dir.join(format!(".succession-fsync-{}", std::process::id()));
    let fail = |action: &'static str| {
        let path = path.clone();
        move |source| TimingError::File {
            action,
            path,
            source,
        }
    };
    let mut file = std::fs::File::create(&path).map_err(fail("create"))?;
    let block = [0x5au8; 4096];
    let mut samples = Vec::new();
    for _ in 0..count {
        file.write_all(&block).map_err(fail("write"))?;
        let start = Instant::now();
        file.sync_data().map_err(fail("fsync"))?;
        samples.push(start.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path).map_err(fail("remove"))?;
    Timings::of(&samples, 0).ok_or(TimingError::NoSamples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_summarise_their_samples() {
        let samples: Vec<Duration> = [5, 1, 9, 3, 7]
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect();
        let t = Timings::of(&samples, 1).unwrap();
        assert_eq!((t.min_us, t.median_us, t.max_us), (1000, 5000, 9000));
        assert_eq!((t.samples, t.timed_out), (5, 1));
        assert_eq!(Timings::of(&[], 0), None);
    }

    #[test]
    fn a_refused_connection_is_timed() {
        // A port just closed: the loopback kernel refuses it at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        drop(listener);
        let t = connect_times(to, 3, Duration::from_secs(1)).unwrap();
        assert_eq!((t.samples, t.timed_out), (3, 0));
        assert!(t.max_us < 1_000_000);
    }

    #[test]
    fn fsyncs_are_timed_in_the_directory_asked() {
        let dir = tempfile::tempdir().unwrap();
        let t = fsync_times(dir.path(), 3).unwrap();
        assert_eq!(t.samples, 3);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
