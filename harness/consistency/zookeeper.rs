//! Whether a ZooKeeper history kept ZooKeeper's guarantees: every acknowledged create
//! survives; a session's writes apply in the order it made them; a session never sees the
//! ensemble go back (its writes get zxids above what it has seen, its reads never show a znode
//! older than what it has seen); a read after `sync` sees every write acknowledged before the
//! `sync` began.

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
    /// A read without `sync`, claimed up to date, missed a write acknowledged before it began.
    #[error("session {session} read {path} at version {read} ({call_ms}–{read_ms} ms, no sync: claimed up to date), but session {writer} had written version {written} by {written_ms} ms")]
    StaleUnsynced {
        /// The reading session.
        session: u32,
        /// The znode.
        path: String,
        /// The version read.
        read: i32,
        /// When the read was called.
        call_ms: u64,
        /// When it was answered.
        read_ms: u64,
        /// The session that wrote the newer version.
        writer: u32,
        /// The version it wrote.
        written: i32,
        /// When its write was acknowledged.
        written_ms: u64,
    },
}

/// What reads made without a `sync` are judged to promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnsyncedReads {
    /// What ZooKeeper promises: the session never sees the ensemble go back.
    #[default]
    SessionOrder,
    /// Every write acknowledged before the read began: a claim ZooKeeper does not make (a
    /// follower answers from what it has applied so far), judged to show what it costs.
    UpToDate,
}

/// Every guarantee `history` broke; `present` is every znode there at the end.
pub fn check_zookeeper(history: &[ZkOperation], present: &BTreeSet<String>) -> Vec<ZkBroke> {
    check_zookeeper_as(history, present, UnsyncedReads::SessionOrder)
}

/// Every guarantee `history` broke, reads without a `sync` judged as `unsynced` says.
pub fn check_zookeeper_as(
    history: &[ZkOperation],
    present: &BTreeSet<String>,
    unsynced: UnsyncedReads,
) -> Vec<ZkBroke> {
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
    let written = Written::of(history);
    for (&session, ops) in &sessions {
        broke.extend(in_order(session, ops));
        broke.extend(never_back(session, ops, history));
        broke.extend(up_to_date_reads(session, ops, &written, unsynced));
    }
    broke
}

/// Every acknowledged version of each znode, in the order acknowledged, with the newest
/// acknowledged so far beside each: what a read that had to be up to date as of a moment must
/// show at least.
struct Written<'h> {
    /// Per znode: its writes by moment, and for each position the index of the newest version
    /// among the writes up to it.
    by_path: BTreeMap<&'h str, (Vec<VersionWritten>, Vec<usize>)>,
}

/// A version acknowledged: when, which, by which session.
type VersionWritten = (u64, i32, u32);

impl<'h> Written<'h> {
    fn of(history: &'h [ZkOperation]) -> Self {
        let mut writes: BTreeMap<&str, Vec<VersionWritten>> = BTreeMap::new();
        for op in history {
            if let (ZkRequest::SetData { path, version }, Some((at, _))) =
                (&op.request, op.acknowledged)
            {
                writes
                    .entry(path)
                    .or_default()
                    .push((at, *version, op.session));
            }
        }
        let by_path = writes
            .into_iter()
            .map(|(path, mut list)| {
                list.sort_unstable();
                let mut newest: Vec<usize> = Vec::with_capacity(list.len());
                for (i, w) in list.iter().enumerate() {
                    let best = match newest.last() {
                        Some(&b) if list[b].1 >= w.1 => b,
                        _ => i,
                    };
                    newest.push(best);
                }
                (path, (list, newest))
            })
            .collect();
        Self { by_path }
    }

    /// The newest version of `path` acknowledged strictly before `moment`, with when it was
    /// acknowledged and by which session.
    fn newest_before(&self, path: &str, moment: u64) -> Option<(i32, u64, u32)> {
        let (list, newest) = self.by_path.get(path)?;
        let before = list.partition_point(|w| w.0 < moment);
        let &(at, version, session) = list.get(*newest.get(before.checked_sub(1)?)?)?;
        Some((version, at, session))
    }
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

/// A session never sees the ensemble go back. Its view is the highest zxid it has observed: a
/// write's own zxid (czxid of a create, mzxid of a set), or the mzxid of a znode it read. A
/// write of it is given a zxid above its view; a read of it never shows a znode older than a
/// write to that znode (by any session) at or below its view. (A read's mzxid is the znode's
/// last change, not the server's position, so reads of different znodes are not compared.)
fn never_back(session: u32, ops: &[&ZkOperation], history: &[ZkOperation]) -> Vec<ZkBroke> {
    let mut replies: Vec<&ZkOperation> = ops
        .iter()
        .copied()
        .filter(|o| o.acknowledged.is_some())
        .collect();
    replies.sort_by_key(|o| o.acknowledged.map(|(at, _)| at));
    let mut broke = Vec::new();
    let mut view: Option<i64> = None;
    for op in replies {
        let Some((at_ms, zxid)) = op.acknowledged else {
            continue;
        };
        let from = match &op.request {
            ZkRequest::Create { .. } | ZkRequest::SetData { .. } => view.filter(|&v| zxid < v),
            ZkRequest::Read { path, .. } => view.and_then(|v| {
                // The newest write to the znode the session's view already holds.
                history
                    .iter()
                    .filter(|w| written_path(&w.request) == Some(path.as_str()))
                    .filter_map(|w| w.acknowledged.map(|(_, z)| z))
                    .filter(|&z| zxid < z && z <= v)
                    .max()
            }),
            ZkRequest::Sync => None,
        };
        if let Some(from) = from {
            broke.push(ZkBroke::WentBack {
                session,
                from,
                to: zxid,
                at_ms,
            });
        }
        if !matches!(op.request, ZkRequest::Sync) {
            view = Some(view.map_or(zxid, |v| v.max(zxid)));
        }
    }
    broke
}

/// Each read that follows an acknowledged `sync` of its session sees every version of its
/// znode acknowledged (by any session) before that `sync` began; when reads without a `sync`
/// are claimed up to date, each of those sees every version acknowledged before it began.
fn up_to_date_reads(
    session: u32,
    ops: &[&ZkOperation],
    written: &Written<'_>,
    unsynced: UnsyncedReads,
) -> Vec<ZkBroke> {
    let mut broke = Vec::new();
    let mut synced_at: Option<u64> = None;
    for op in ops {
        match (&op.request, op.acknowledged) {
            (ZkRequest::Sync, Some(_)) => synced_at = Some(op.call_ms),
            (ZkRequest::Read { path, version }, Some((read_ms, _))) => {
                let since = match (synced_at, unsynced) {
                    (Some(sync_ms), _) => Some(sync_ms),
                    (None, UnsyncedReads::UpToDate) => None,
                    (None, UnsyncedReads::SessionOrder) => continue,
                };
                let Some((written, written_ms, writer)) = written
                    .newest_before(path, since.unwrap_or(op.call_ms))
                    .filter(|(v, _, _)| v > version)
                else {
                    continue;
                };
                broke.push(match since {
                    Some(sync_ms) => ZkBroke::StaleAfterSync {
                        session,
                        path: path.clone(),
                        read: *version,
                        sync_ms,
                        writer,
                        written,
                        written_ms,
                    },
                    None => ZkBroke::StaleUnsynced {
                        session,
                        path: path.clone(),
                        read: *version,
                        call_ms: op.call_ms,
                        read_ms,
                        writer,
                        written,
                        written_ms,
                    },
                });
            }
            _ => {}
        }
    }
    broke
}

#[cfg(test)]
mod tests;
