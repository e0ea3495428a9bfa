//! Consistency of recorded histories, judged offline: pure functions of what clients did and
//! saw, each re-runnable on a history read back from disk.
//!
//! `linearizable` decides whether the operations on one key can be put in one order that
//! respects real time and a key-value register's semantics; `serializable` whether a
//! client's serializable reads never went back; `watch` whether each watch kept
//! etcd's watch guarantees against the writes the history shows; `zookeeper` whether a
//! ZooKeeper history kept creates, session order, monotonic zxids and reads after `sync`;
//! `known` holds what the history shows was written and attempted, for the watch checker;
//! `applied` whether each put took effect no more often than it was sent.

pub mod applied;
pub mod known;
pub mod linearizable;
pub mod serializable;
pub mod watch;
pub mod zookeeper;
