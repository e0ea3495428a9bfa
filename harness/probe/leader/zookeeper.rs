//! ZooKeeper servers' answers turned into leader views.

use std::collections::BTreeMap;

use super::{LeaderViews, MemberView};
use crate::probe::zookeeper::Mode;

/// What one ZooKeeper server said of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZookeeperAnswer {
    /// Its mode (`srvr`).
    pub mode: Mode,
    /// The epoch it leads at, when it leads: the high half of its zxid, which a leader sets as
    /// it takes office.
    pub epoch: Option<u64>,
    /// The id of the server it follows, as its admin server's `leader` command says; `None`
    /// where the admin server did not answer.
    pub follows: Option<u64>,
}

/// Turns ZooKeeper servers' answers into views. A leader names itself at its epoch. A serving
/// follower names the server its admin server says it follows (`node_of_id` maps ids to
/// nodes), at that server's epoch when that server answers that it leads: a follower serves
/// only once it has synced with its leader's epoch, while its own zxid keeps the old epoch
/// until the first write of the new one. Where a follower's admin server did not answer, it
/// is taken to follow the one server that says it leads, when exactly one does. A failed
/// answer is the view it gave (not answering, or down).
pub fn zookeeper_views(
    answers: &BTreeMap<String, Result<ZookeeperAnswer, MemberView>>,
    node_of_id: impl Fn(u64) -> Option<String>,
) -> LeaderViews {
    let leading: BTreeMap<&String, Option<u64>> = answers
        .iter()
        .filter_map(|(n, a)| match a {
            Ok(a) if a.mode == Mode::Leader => Some((n, a.epoch)),
            _ => None,
        })
        .collect();
    answers
        .iter()
        .map(|(node, answer)| {
            let view = match answer {
                Err(view) => view.clone(),
                Ok(a) => match a.mode {
                    Mode::Leader => MemberView::Leader {
                        leader: node.clone(),
                        term: a.epoch,
                    },
                    Mode::Follower | Mode::Observer => match a.follows {
                        Some(id) => match node_of_id(id) {
                            Some(leader) => MemberView::Leader {
                                term: leading.get(&leader).copied().flatten(),
                                leader,
                            },
                            None => MemberView::Leader {
                                leader: format!("server {id}"),
                                term: None,
                            },
                        },
                        None => match leading.iter().collect::<Vec<_>>().as_slice() {
                            [(leader, epoch)] => MemberView::Leader {
                                leader: (**leader).clone(),
                                term: **epoch,
                            },
                            [] => MemberView::NoLeader {
                                why: "follower of no server seen leading".into(),
                            },
                            _ => MemberView::NoLeader {
                                why: "follower while several servers lead".into(),
                            },
                        },
                    },
                    Mode::Standalone => MemberView::NoLeader {
                        why: "standalone, not in an ensemble".into(),
                    },
                    Mode::NotServing => MemberView::NoLeader {
                        why: "not serving".into(),
                    },
                },
            };
            (node.clone(), view)
        })
        .collect()
}
