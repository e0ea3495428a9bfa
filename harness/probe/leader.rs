//! Whether members agree on one leader: a pure function of what each member said.

use std::collections::BTreeMap;

use serde::Serialize;

use super::zookeeper::Mode;

/// What one member said of the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "view", content = "detail")]
pub enum MemberView {
    /// It names this node as leader.
    Leader(String),
    /// It answered, and knows of no leader.
    NoLeader(String),
    /// It could not be asked (the probe's own failure is an observation too).
    Unreachable(String),
}

impl std::fmt::Display for MemberView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberView::Leader(n) => write!(f, "leader {}", short(n)),
            MemberView::NoLeader(why) => write!(f, "no leader ({why})"),
            MemberView::Unreachable(why) => write!(f, "unreachable ({why})"),
        }
    }
}

/// Every live member's view, by node.
pub type LeaderViews = BTreeMap<String, MemberView>;

/// The leader every member agrees on, or why there is none.
pub fn agreed_leader(views: &LeaderViews) -> Result<String, String> {
    if views.is_empty() {
        return Err("no live member to ask".to_string());
    }
    let mut leaders: Vec<&str> = views
        .values()
        .filter_map(|v| match v {
            MemberView::Leader(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    let problems: Vec<String> = views
        .iter()
        .filter(|(_, v)| !matches!(v, MemberView::Leader(_)))
        .map(|(n, v)| format!("{}: {v}", short(n)))
        .collect();
    match (leaders.as_slice(), problems.is_empty()) {
        ([one], true) => Ok(one.to_string()),
        ([], _) => Err(format!("no leader: {}", problems.join(", "))),
        ([one], false) => Err(format!(
            "{} leads but not every member agrees: {}",
            short(one),
            problems.join(", ")
        )),
        (_, _) => Err(format!(
            "members disagree: {}",
            views
                .iter()
                .map(|(n, v)| format!("{} says {v}", short(n)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Turns ZooKeeper modes into views: `srvr` on a follower does not name the leader, so a
/// follower is taken to follow the one server that says it leads, when exactly one does.
pub fn zookeeper_views(modes: &BTreeMap<String, Result<Mode, String>>) -> LeaderViews {
    let leaders: Vec<&String> = modes
        .iter()
        .filter(|(_, m)| matches!(m, Ok(Mode::Leader)))
        .map(|(n, _)| n)
        .collect();
    modes
        .iter()
        .map(|(node, mode)| {
            let view = match mode {
                Ok(Mode::Leader) => MemberView::Leader(node.clone()),
                Ok(Mode::Follower) | Ok(Mode::Observer) => match leaders.as_slice() {
                    [one] => MemberView::Leader((*one).clone()),
                    [] => MemberView::NoLeader("follower of no leader".to_string()),
                    _ => MemberView::NoLeader("follower while several servers lead".to_string()),
                },
                Ok(Mode::Standalone) => {
                    MemberView::NoLeader("standalone, not in an ensemble".to_string())
                }
                Ok(Mode::NotServing) => MemberView::NoLeader("not serving".to_string()),
                Err(e) => MemberView::Unreachable(e.clone()),
            };
            (node.clone(), view)
        })
        .collect()
}

/// The short name of a full node name.
pub fn short(fqdn: &str) -> &str {
    fqdn.split('.').next().unwrap_or(fqdn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(list: &[(&str, MemberView)]) -> LeaderViews {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn one_leader_named_by_all_is_agreed() {
        let v = views(&[
            ("q1.c", MemberView::Leader("q2.c".into())),
            ("q2.c", MemberView::Leader("q2.c".into())),
        ]);
        assert_eq!(agreed_leader(&v), Ok("q2.c".to_string()));
    }

    #[test]
    fn a_silent_member_blocks_agreement() {
        let v = views(&[
            ("q1.c", MemberView::Leader("q2.c".into())),
            ("q2.c", MemberView::Unreachable("timeout".into())),
        ]);
        let e = agreed_leader(&v).unwrap_err();
        assert!(e.contains("q2: unreachable"), "{e}");
    }

    #[test]
    fn two_leaders_disagree() {
        let v = views(&[
            ("q1.c", MemberView::Leader("q1.c".into())),
            ("q2.c", MemberView::Leader("q2.c".into())),
        ]);
        assert!(agreed_leader(&v)
            .unwrap_err()
            .starts_with("members disagree"));
    }

    #[test]
    fn zookeeper_followers_follow_the_single_leader() {
        let modes: BTreeMap<String, Result<Mode, String>> = [
            ("q1.c".to_string(), Ok(Mode::Follower)),
            ("q2.c".to_string(), Ok(Mode::Leader)),
            ("q3.c".to_string(), Ok(Mode::Follower)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            agreed_leader(&zookeeper_views(&modes)),
            Ok("q2.c".to_string())
        );
    }
}
