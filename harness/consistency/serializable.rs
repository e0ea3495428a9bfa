//! What serializable reads promise: not the latest value (a member may lag, or be cut off from
//! the leader), but never going back — each client reads through one member, and the revision
//! its reads are served at never decreases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One serializable read a client made, and the revision it was served at (the reply
/// header's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerializableRead {
    /// The client.
    pub client: u32,
    /// The member it read through.
    pub member: String,
    /// When it was called (ms on the history's clock).
    pub call_ms: u64,
    /// When it returned.
    pub return_ms: u64,
    /// The revision it was served at.
    pub revision: i64,
}

/// A client whose read went back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client {client} read at revision {to} through {member} ({call_ms}–{return_ms} ms) after reading at revision {from} through {earlier_member}: a serializable read went back")]
pub struct ReadWentBack {
    /// The client.
    pub client: u32,
    /// The revision of its earlier read.
    pub from: i64,
    /// The member the earlier read went through.
    pub earlier_member: String,
    /// The lower revision of the later read.
    pub to: i64,
    /// The member the later read went through.
    pub member: String,
    /// When the later read was called.
    pub call_ms: u64,
    /// When it returned.
    pub return_ms: u64,
}

/// Every read that went back below a revision its client had already read at, in the order
/// each client made its reads (a read counts as later when it was called after the earlier
/// one returned; overlapping reads of one client are not ordered).
pub fn check_serializable(reads: &[SerializableRead]) -> Vec<ReadWentBack> {
    let mut by_client: BTreeMap<u32, Vec<&SerializableRead>> = BTreeMap::new();
    for read in reads {
        by_client.entry(read.client).or_default().push(read);
    }
    let mut broke = Vec::new();
    for (client, mut reads) in by_client {
        reads.sort_by_key(|r| r.call_ms);
        for (i, later) in reads.iter().enumerate() {
            let highest = reads[..i]
                .iter()
                .filter(|earlier| earlier.return_ms < later.call_ms)
                .max_by_key(|earlier| earlier.revision);
            if let Some(earlier) = highest.filter(|e| e.revision > later.revision) {
                broke.push(ReadWentBack {
                    client,
                    from: earlier.revision,
                    earlier_member: earlier.member.clone(),
                    to: later.revision,
                    member: later.member.clone(),
                    call_ms: later.call_ms,
                    return_ms: later.return_ms,
                });
            }
        }
    }
    broke
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(client: u32, call_ms: u64, return_ms: u64, revision: i64) -> SerializableRead {
        SerializableRead {
            client,
            member: format!("quorum-{}", client + 1),
            call_ms,
            return_ms,
            revision,
        }
    }

    #[test]
    fn a_stale_read_is_allowed_but_going_back_is_not() {
        // Client 1 reads older data than client 0 saw: stale, which serializable allows.
        let stale = [read(0, 0, 5, 10), read(1, 10, 15, 7), read(1, 20, 25, 7)];
        assert_eq!(check_serializable(&stale), vec![]);
        let back = [read(0, 0, 5, 10), read(0, 10, 15, 8)];
        assert_eq!(
            check_serializable(&back)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec!["client 0 read at revision 8 through quorum-1 (10–15 ms) after reading at revision 10 through quorum-1: a serializable read went back"]
        );
        // Overlapping reads of one client are not ordered.
        let overlapping = [read(0, 0, 20, 10), read(0, 5, 15, 8)];
        assert_eq!(check_serializable(&overlapping), vec![]);
    }

    proptest! {
        #[test]
        fn sequential_reads_at_rising_revisions_never_go_back_and_a_drop_is_caught(
            steps in proptest::collection::vec(0i64..3, 2..20),
            at in any::<prop::sample::Index>(),
        ) {
            let mut revision = 1;
            let mut reads = Vec::new();
            for (i, step) in steps.iter().enumerate() {
                revision += step;
                reads.push(read(0, i as u64 * 10, i as u64 * 10 + 5, revision));
            }
            prop_assert_eq!(check_serializable(&reads), vec![]);
            // Serve one later read below the highest revision read before it.
            let i = 1 + at.index(reads.len() - 1);
            let highest = reads[..i].iter().map(|r| r.revision).max().unwrap_or(1);
            reads[i].revision = highest - 1;
            prop_assert!(!check_serializable(&reads).is_empty());
        }
    }
}
