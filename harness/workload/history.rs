//! What the workload recorded: every client operation with its call, its return and how it
//! ended, and every event each watch delivered — saved as `workload.json` beside the report
//! (and the ledger's `history.json`), so every checker can run again offline.

use std::io::Write;
use std::path::Path;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::consistency::watch::Watch;
use crate::consistency::zookeeper::ZkOperation;
use crate::spec::WorkloadSettings;

/// The version of the file's layout.
pub const WORKLOAD_VERSION: u32 = 1;
/// The file the history is saved as, in the run's report directory.
pub const WORKLOAD_FILE: &str = "workload.json";

/// What a client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "request")]
pub enum Request {
    /// Put a value (unique per write in the run).
    Put {
        /// The value.
        value: u64,
    },
    /// Delete the key.
    Delete,
    /// A transaction: when the key holds `expect` (none: the key is absent), put `value`.
    CompareAndSet {
        /// The value the key must hold.
        expect: Option<u64>,
        /// The value put when it does.
        value: u64,
    },
    /// Read the key; a serializable read is served by the member alone, a linearizable one
    /// through the leader.
    Get {
        /// Serializable (true) or linearizable.
        serializable: bool,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum OpOutcome {
    /// Answered; `revision` is the reply header's.
    Ok {
        /// The revision of the reply's header (for a write: the revision it made, when it
        /// changed anything).
        revision: i64,
        /// What it found or did.
        answer: OkAnswer,
    },
    /// Known not to have been applied (no leader, never connected, refused).
    Failed {
        /// What the client was told.
        error: String,
    },
    /// Sent, no answer that tells: it may or may not have been applied.
    Indeterminate {
        /// What the client was told.
        error: String,
    },
}

/// What an answered operation found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum OkAnswer {
    /// A put was applied.
    Written,
    /// A delete removed this many keys (0: the key was absent, and nothing changed).
    Deleted {
        /// Keys removed.
        count: i64,
    },
    /// A compare-and-set applied or found another value.
    Swapped {
        /// Whether it applied.
        applied: bool,
    },
    /// A get read this value (none: the key was absent).
    Read {
        /// The value.
        value: Option<u64>,
    },
}

/// One operation of one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientOp {
    /// The client.
    pub client: u32,
    /// The member it went through.
    pub member: CompactString,
    /// The key (the prefix and `k<n>`).
    pub key: CompactString,
    /// What was asked.
    pub request: Request,
    /// When it was called, ms on the run's clock.
    pub call_ms: u64,
    /// When it returned or gave up.
    pub return_ms: u64,
    /// How it ended.
    pub outcome: OpOutcome,
    /// It sends the client's previous operation again — a put whose outcome was unknown —
    /// with the same value (`retry_unknown_puts`): both sends may apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry: bool,
}

/// Everything the workload recorded in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadHistory {
    /// The layout's version.
    pub version: u32,
    /// The scenario.
    pub scenario: String,
    /// The run.
    pub run_id: String,
    /// How the workload ran.
    pub settings: WorkloadSettings,
    /// The revision the watches started after (the store's revision when the workload began).
    pub start_revision: i64,
    /// Every operation, in the order they were called.
    pub operations: Vec<ClientOp>,
    /// Every watch, with its connections and events.
    pub watches: Vec<Watch>,
    /// Whether the etcd clients ran (the topology runs etcd).
    #[serde(default = "ran")]
    pub etcd: bool,
    /// What the ZooKeeper sessions recorded, when the topology runs ZooKeeper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper: Option<ZkRecord>,
}

fn ran() -> bool {
    true
}

/// The ZooKeeper sessions' history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZkRecord {
    /// Every operation, in call order.
    pub operations: Vec<ZkOperation>,
    /// The znodes the workload's base held at the end (none when no server could list them).
    pub present: Option<std::collections::BTreeSet<String>>,
}

/// Why a history could not be saved or read.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a workload history.
    #[error("{path}: not a workload history: {source}")]
    Malformed {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A layout this build does not read.
    #[error(
        "{path}: workload history version {found}, this build reads version {WORKLOAD_VERSION}"
    )]
    Version {
        /// The file.
        path: String,
        /// Its version.
        found: u32,
    },
}

impl WorkloadHistory {
    /// The key of the n-th key of the workload.
    pub fn key(prefix: &str, n: u32) -> String {
        format!("{prefix}k{n}")
    }

    /// Writes `DIR/workload.json`, streamed: a long run's history is hundreds of megabytes, and
    /// is never held as one string.
    pub fn write(&self, dir: &Path) -> Result<(), WorkloadFileError> {
        let path = dir.join(WORKLOAD_FILE);
        let io = |source| WorkloadFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut out, self).map_err(|e| io(e.into()))?;
        out.flush().map_err(io)
    }

    /// Reads `DIR/workload.json`, streamed straight into its types, once. A file that does not
    /// fit them is read again for its version alone (every other field skipped), so a file of
    /// another layout is refused by its version rather than by the first field that differs.
    pub fn read(dir: &Path) -> Result<Self, WorkloadFileError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            #[serde(default)]
            version: u32,
        }
        let path = dir.join(WORKLOAD_FILE);
        let shown = path.display().to_string();
        let open = || {
            std::fs::File::open(&path)
                .map(std::io::BufReader::new)
                .map_err(|source| WorkloadFileError::Io {
                    path: shown.clone(),
                    source,
                })
        };
        let malformed = |source| WorkloadFileError::Malformed {
            path: shown.clone(),
            source,
        };
        let version = |found| WorkloadFileError::Version {
            path: shown.clone(),
            found,
        };
        match serde_json::from_reader::<_, Self>(open()?) {
            Ok(history) if history.version == WORKLOAD_VERSION => Ok(history),
            Ok(history) => Err(version(history.version)),
            Err(source) => match serde_json::from_reader::<_, VersionOnly>(open()?) {
                Ok(v) if v.version != WORKLOAD_VERSION => Err(version(v.version)),
                _ => Err(malformed(source)),
            },
        }
    }
}
