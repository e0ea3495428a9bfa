//! Whether a ZooKeeper history kept ZooKeeper's guarantees: every acknowledged create
//! survives; a session's writes apply in the order it made them; a session never sees the
//! ensemble go back (the zxid its replies carry never decreases); a read after `sync` sees
//! every write acknowledged before the `sync` began.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// What a session asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "op")]
pub enum ZkRequest {
    /// Create a znode (sequential ones recorded under the name the server gave them).
    Create {
        /// Its path.
        path: String,
    },
    /// Set a znode's data; acknowledged with the version it made.
    SetData {
        /// Its path.
        path: String,
        /// The version the write made (when acknowledged).
        version: i32,
    },
    /// Bring the server the session talks to up to date with the leader.
    Sync,
    /// Read a znode's data, as of the version read.
    Read {
        /// Its path.
        path: String,
        /// The version read.
        version: i32,
    },
}

/// One operation of one session, with its call and, when acknowledged, its return and the
/// zxid its reply carried (ms on the history's clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZkOperation {
    /// The session.
    pub session: u32,
    /// What it asked.
    pub request: ZkRequest,
    /// When it was called.
    pub call_ms: u64,
    /// When it was acknowledged, and the zxid of the reply; none when its outcome is unknown
    /// or it failed.
    pub acknowledged: Option<(u64, i64)>,
}

/// A guarantee the history broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZkBroke {
    /// An acknowledged create is not there at the end.
    #[error("session {session} created {path} (acknowledged at {at_ms} ms), and it is gone")]
    CreateLost {
        /// The session.
        session: u32,
        /// The znode.
        path: String,
        /// When it was acknowledged.
        at_ms: u64,
    },
    /// A session's later write applied before its earlier one.
    #[error("session {session}'s write to {later} (zxid {later_zxid:#x}) applied before its earlier write to {earlier} (zxid {earlier_zxid:#x})")]
    OutOfOrder {
        /// The session.
        session: u32,
        /// The earlier write's znode.
        earlier: String,
        /// Its zxid.
        earlier_zxid: i64,
        /// The later write's znode.
        later: String,
        /// Its zxid.
        later_zxid: i64,
    },
    /// A reply carried a lower zxid than one the session had seen.
    #[error("session {session} went back from zxid {from:#x} to {to:#x} (reply at {at_ms} ms)")]
    WentBack {
        /// The session.
        session: u32,
        /// The zxid seen before.
        from: i64,
        /// The lower one after.
        to: i64,
        /// When.
        at_ms: u64,
    },
    /// A read after `sync` missed a write acknowledged before the `sync` began.
    #[error("session {session} read {path} at version {read} after a sync begun at {sync_ms} ms, but session {writer} had written version {written} by {written_ms} ms")]
    StaleAfterSync {
        /// The reading session.
        session: u32,
        /// The znode.
        path: String,
        /// The version read.
        read: i32,
        /// When the sync began.
        sync_ms: u64,
        /// The session that wrote the newer version.
        writer: u32,
        /// The version it wrote.
        written: i32,
        /// When its write was acknowledged.
        written_ms: u64,
    },
}

/// Every guarantee `history` broke; `present` is every znode there at the end.
pub fn check_zookeeper(history: &[ZkOperation], present: &BTreeSet<String>) -> Vec<ZkBroke> {
    let mut broke = Vec::new();
    let mut sessions: BTreeMap<u32, Vec<&ZkOperation>> = BTreeMap::new();
    for op in history {
        sessions.entry(op.session).or_default().push(op);
    }
    for ops in sessions.values_mut() {
        ops.sort_by_key(|o| o.call_ms);
    }
    for op in history {
        if let (ZkRequest::Create { path }, Some((at_ms, _))) = (&op.request, op.acknowledged) {
            if !present.contains(path) {
                broke.push(ZkBroke::CreateLost {
                    session: op.session,
                    path: path.clone(),
                    at_ms,
                });
            }
        }
    }
    for (&session, ops) in &sessions {
        broke.extend(in_order(session, ops));
        broke.extend(never_back(session, ops));
        broke.extend(synced_reads(session, ops, history));
    }
    broke
}

fn written_path(request: &ZkRequest) -> Option<&str> {
    match request {
        ZkRequest::Create { path } | ZkRequest::SetData { path, .. } => Some(path),
        ZkRequest::Sync | ZkRequest::Read { .. } => None,
    }
}

/// A session's acknowledged writes carry increasing zxids in the order it made them.
fn in_order(session: u32, ops: &[&ZkOperation]) -> Vec<ZkBroke> {
    let writes: Vec<(&str, i64)> = ops
        .iter()
        .filter_map(|o| Some((written_path(&o.request)?, o.acknowledged?.1)))
        .collect();
    writes
        .windows(2)
        .filter(|w| w[1].1 <= w[0].1)
        .map(|w| ZkBroke::OutOfOrder {
            session,
            earlier: w[0].0.to_string(),
            earlier_zxid: w[0].1,
            later: w[1].0.to_string(),
            later_zxid: w[1].1,
        })
        .collect()
}

/// The zxids a session's replies carry never decrease.
fn never_back(session: u32, ops: &[&ZkOperation]) -> Vec<ZkBroke> {
    let mut replies: Vec<(u64, i64)> = ops.iter().filter_map(|o| o.acknowledged).collect();
    replies.sort_by_key(|(at, _)| *at);
    let mut broke = Vec::new();
    let mut highest: Option<i64> = None;
    for (at_ms, zxid) in replies {
        if let Some(from) = highest.filter(|&h| zxid < h) {
            broke.push(ZkBroke::WentBack {
                session,
                from,
                to: zxid,
                at_ms,
            });
        }
        highest = Some(highest.map_or(zxid, |h| h.max(zxid)));
    }
    broke
}

/// Each read that follows an acknowledged `sync` of its session sees every version of its
/// znode acknowledged (by any session) before that `sync` began.
fn synced_reads(session: u32, ops: &[&ZkOperation], history: &[ZkOperation]) -> Vec<ZkBroke> {
    let mut broke = Vec::new();
    let mut synced_at: Option<u64> = None;
    for op in ops {
        match (&op.request, op.acknowledged) {
            (ZkRequest::Sync, Some(_)) => synced_at = Some(op.call_ms),
            (ZkRequest::Read { path, version }, Some(_)) => {
                let Some(sync_ms) = synced_at else { continue };
                let newest = history
                    .iter()
                    .filter_map(|w| match (&w.request, w.acknowledged) {
                        (
                            ZkRequest::SetData {
                                path: p,
                                version: v,
                            },
                            Some((at, _)),
                        ) if p == path && at < sync_ms => Some((*v, at, w.session)),
                        _ => None,
                    })
                    .max();
                if let Some((written, written_ms, writer)) = newest.filter(|(v, _, _)| v > version)
                {
                    broke.push(ZkBroke::StaleAfterSync {
                        session,
                        path: path.clone(),
                        read: *version,
                        sync_ms,
                        writer,
                        written,
                        written_ms,
                    });
                }
            }
            _ => {}
        }
    }
    broke
}

#[cfg(test)]
mod tests;
