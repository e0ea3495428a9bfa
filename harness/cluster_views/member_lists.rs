//! Member lists as the services report them, mapped back to nodes, and how one compares
//! with the members expected.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use futures::future::join_all;

use super::{node_by_address, Observer, ZK_TIMEOUT};
use crate::cluster::Cluster;
use crate::probe::answer::NoAnswer;
use crate::probe::etcd::{url_host, EtcdError};
use crate::probe::zookeeper::{four_letter, parse_conf, server_state, ReplyError};
use crate::provider::{Hosts, NodeView};
use crate::service::ServiceKind;

/// Why the members of a service could not be told.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MembersUnread {
    /// The service keeps no member list.
    #[error("{0} has no member list")]
    NoList(ServiceKind),
    /// No member runs to be asked.
    #[error("no live {0} member to ask")]
    NoneLive(ServiceKind),
    /// A live member's list could not be read.
    #[error("{member}: {why}")]
    Unread {
        /// The member, by its short name.
        member: String,
        /// Why.
        why: ListUnread,
    },
    /// Two members list different members.
    #[error("members disagree: {first} lists {first_list}, {other} lists {other_list}")]
    Disagree {
        /// One member, by its short name.
        first: String,
        /// Its list, in one line.
        first_list: String,
        /// Another member.
        other: String,
        /// Its list.
        other_list: String,
    },
}

/// Why one member's list could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ListUnread {
    /// etcd's member list call failed.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// A ZooKeeper server gave no answer.
    #[error(transparent)]
    NoAnswer(#[from] NoAnswer),
    /// A ZooKeeper server's `conf` could not be read.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// A member list that is not the members expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembersDiffer {
    /// Members are missing or unexpected.
    #[error("members are {list}: {}", differences(.missing, .extra))]
    NotExpected {
        /// The list, in one line.
        list: String,
        /// Expected members not listed (short names).
        missing: Vec<String>,
        /// Listed members not expected.
        extra: Vec<String>,
    },
    /// Every expected member is listed, but some have not started.
    #[error("members are {list}: not started: {}", .unstarted.join(", "))]
    NotStarted {
        /// The list, in one line.
        list: String,
        /// Members listed but not started.
        unstarted: Vec<String>,
    },
}

fn differences(missing: &[String], extra: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!("unexpected {}", extra.join(", ")));
    }
    parts.join("; ")
}

/// A member as a service lists it, mapped to a node where its address is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// The node it maps to (full name), or its address when it maps to none.
    pub node: String,
    /// Started (etcd) / serving participant (ZooKeeper).
    pub started: bool,
    /// Service-specific id (etcd member id, ZooKeeper server id).
    pub id: u64,
}

impl Observer {
    /// The member list every live member reports, mapped to nodes; an error when any live
    /// member cannot be asked or they disagree.
    pub async fn member_lists<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        service: ServiceKind,
    ) -> Result<BTreeMap<String, ListedMember>, MembersUnread> {
        if !service.has_member_list() {
            return Err(MembersUnread::NoList(service));
        }
        let live = cluster.members(service);
        if live.is_empty() {
            return Err(MembersUnread::NoneLive(service));
        }
        let all = cluster.nodes();
        let lists = join_all(live.iter().map(|m| {
            let all = &all;
            async move {
                let list = match service {
                    ServiceKind::Etcd => self
                        .etcd
                        .members(&cluster.etcd_url(m))
                        .await
                        .map_err(ListUnread::from)
                        .map(|members| {
                            members
                                .into_iter()
                                .map(|member| {
                                    let host = member
                                        .peer_urls
                                        .first()
                                        .map(|u| url_host(u).to_string())
                                        .unwrap_or_default();
                                    let node = node_by_address(all, &host).unwrap_or(host);
                                    (
                                        node.clone(),
                                        ListedMember {
                                            node,
                                            started: member.is_started() && !member.is_learner,
                                            id: member.id,
                                        },
                                    )
                                })
                                .collect::<BTreeMap<_, _>>()
                        }),
                    _ => self.zookeeper_members(cluster.zookeeper_addr(m), all).await,
                };
                (m.fqdn.clone(), list)
            }
        }))
        .await;
        let mut agreed: Option<(String, BTreeMap<String, ListedMember>)> = None;
        for (node, list) in lists {
            let list = list.map_err(|why| MembersUnread::Unread {
                member: crate::base::names::short(&node).to_string(),
                why,
            })?;
            match &agreed {
                None => agreed = Some((node, list)),
                Some((first, seen)) if *seen != list => {
                    return Err(MembersUnread::Disagree {
                        first: crate::base::names::short(first).to_string(),
                        first_list: describe(seen),
                        other: crate::base::names::short(&node).to_string(),
                        other_list: describe(&list),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(agreed.map(|(_, l)| l).unwrap_or_default())
    }

    async fn zookeeper_members(
        &self,
        addr: SocketAddr,
        all: &[NodeView],
    ) -> Result<BTreeMap<String, ListedMember>, ListUnread> {
        let state = server_state(addr, ZK_TIMEOUT).await?;
        // A server that does not serve still says which ensemble it was started with.
        let conf = match state.conf.clone() {
            Some(c) => c,
            None => parse_conf(&four_letter(addr, "conf", ZK_TIMEOUT).await?)?,
        };
        let serving = state.serves();
        Ok(conf
            .servers
            .iter()
            .map(|(id, s)| {
                let node = node_by_address(all, &s.host).unwrap_or_else(|| s.host.clone());
                (
                    node.clone(),
                    ListedMember {
                        node,
                        started: serving && s.role == "participant",
                        id: *id,
                    },
                )
            })
            .collect())
    }
}

/// A member list in one line.
pub fn describe(list: &BTreeMap<String, ListedMember>) -> String {
    let names: Vec<String> = list
        .values()
        .map(|m| {
            let name = crate::base::names::short(&m.node).to_string();
            if m.started {
                name
            } else {
                format!("{name} (unstarted)")
            }
        })
        .collect();
    format!("[{}]", names.join(", "))
}

/// Compares a member list with the expected nodes; `Ok` when equal (and started, if asked).
pub fn compare_members(
    list: &BTreeMap<String, ListedMember>,
    expected: &BTreeSet<String>,
    started: bool,
) -> Result<(), MembersDiffer> {
    let listed: BTreeSet<String> = list.keys().cloned().collect();
    if &listed != expected {
        let short = |n: &String| crate::base::names::short(n).to_string();
        return Err(MembersDiffer::NotExpected {
            list: describe(list),
            missing: expected.difference(&listed).map(short).collect(),
            extra: listed.difference(expected).map(short).collect(),
        });
    }
    if started {
        let unstarted: Vec<String> = list
            .values()
            .filter(|m| !m.started)
            .map(|m| crate::base::names::short(&m.node).to_string())
            .collect();
        if !unstarted.is_empty() {
            return Err(MembersDiffer::NotStarted {
                list: describe(list),
                unstarted,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_comparison_names_what_is_missing_and_extra() {
        let list: BTreeMap<String, ListedMember> = ["q1.c", "q3.c"]
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    ListedMember {
                        node: n.to_string(),
                        started: true,
                        id: 1,
                    },
                )
            })
            .collect();
        let expected: BTreeSet<String> = ["q1.c".to_string(), "q2.c".to_string()].into();
        let e = compare_members(&list, &expected, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "members are [q1, q3]: missing q2; unexpected q3"
        );
    }

    #[test]
    fn an_unstarted_member_fails_only_when_started_ones_are_expected() {
        let list: BTreeMap<String, ListedMember> = [("q1.c", true), ("q2.c", false)]
            .iter()
            .map(|(n, started)| {
                (
                    n.to_string(),
                    ListedMember {
                        node: n.to_string(),
                        started: *started,
                        id: 1,
                    },
                )
            })
            .collect();
        let expected: BTreeSet<String> = ["q1.c".to_string(), "q2.c".to_string()].into();
        let e = compare_members(&list, &expected, true)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with(": not started: q2"), "{e}");
        assert_eq!(compare_members(&list, &expected, false), Ok(()));
        let mut all_started = list;
        if let Some(m) = all_started.get_mut("q2.c") {
            m.started = true;
        }
        assert_eq!(compare_members(&all_started, &expected, true), Ok(()));
    }
}
