//! etcd membership: `member remove`, `member add` — which never quietly take over a member the
//! operator failed to remove — and expecting a service's member list exactly.

use std::time::Duration;

use serde::Serialize;

use super::{key, StepKind, StepRow};
use crate::cluster_views::{compare_members, describe};
use crate::probe::etcd::Member;
use crate::provider::{Hosts, NodeView};
use crate::runner::waits::{any_member_list, MEMBERSHIP_DEADLINE};
use crate::runner::{name, poll_until, resolve_set, Poll, Runner, StepResult};
use crate::service::{etcd, ServiceKind};
use crate::source::InputError;
use crate::spec::step_reader::StepReader;
use crate::spec::{NodeRef, NodeSet};

/// The steps of this family.
pub const ROWS: &[StepRow] = &[
    StepRow {
        name: "etcd-member-remove",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: &[key(&["node"], "a node that runs etcd")],
        help: "`etcdctl member remove` the node's member; fails when it is no member, unless this run removed it",
        parse: parse_member_remove,
    },
    StepRow {
        name: "etcd-member-add",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: &[key(&["node"], "a node that runs etcd")],
        help: "`etcdctl member add` the node, and start its etcd joining; refuses a member still listed at its address",
        parse: parse_member_add,
    },
    StepRow {
        name: "members",
        expectation: true,
        disrupts: false,
        needs: &[],
        keys: &[
            key(&["service"], "etcd or zookeeper"),
            key(&["nodes", "role", "except"], "the set the member list must equal"),
            key(&["started"], "every member started (etcd) or serving (ZooKeeper)"),
        ],
        help: "the member list every live member reports is exactly the set",
        parse: parse_members,
    },
];

/// A membership step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum MembershipStep {
    /// `etcdctl member remove` the node's member.
    EtcdMemberRemove { node: NodeRef },
    /// `etcdctl member add` the node with its peer URL.
    EtcdMemberAdd { node: NodeRef },
    /// Expect a service's member list to be exactly a set of nodes.
    ExpectMembers {
        service: ServiceKind,
        set: NodeSet,
        started: bool,
        within: Duration,
    },
}

fn parse_member_remove(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let node = etcd_node(r)?;
    Ok(MembershipStep::EtcdMemberRemove { node }.into())
}

fn parse_member_add(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let node = etcd_node(r)?;
    Ok(MembershipStep::EtcdMemberAdd { node }.into())
}

/// `node`, which must run etcd, in a topology that runs it at all.
fn etcd_node(r: &mut StepReader<'_, '_>) -> Result<NodeRef, InputError> {
    r.context().require_etcd(r.word().span.clone())?;
    r.node_running("node", ServiceKind::Etcd)
}

fn parse_members(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    let span = r.value_span("service");
    let service = r.leader_service()?;
    if !service.has_member_list() {
        return Err(r
            .error(
                span.unwrap_or(r.span()),
                format!("{service} has no member list to expect"),
            )
            .with_help("member lists are read from etcd (`member list`) and ZooKeeper (`conf`)"));
    }
    let nodes = r.node_list("nodes")?;
    let role = match r.opt_str("role")? {
        Some(role) => Some(r.context().role(&role)?),
        None => None,
    };
    let except = r.node_list("except")?;
    if nodes.is_empty() && role.is_none() {
        return Err(r.missing("nodes", "or `role` (with optional `except`)"));
    }
    let started = r.opt_bool("started")?.map(|b| b.value).unwrap_or(false);
    Ok(MembershipStep::ExpectMembers {
        service,
        set: NodeSet {
            nodes,
            role,
            except,
        },
        started,
        within: r.within(),
    }
    .into())
}

/// The name of a step that has none.
pub fn default_name(step: &MembershipStep, node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        MembershipStep::EtcdMemberRemove { node: n } => format!("etcd member remove {}", node(n)),
        MembershipStep::EtcdMemberAdd { node: n } => format!("etcd member add {}", node(n)),
        MembershipStep::ExpectMembers { service, .. } => format!("expect the {service} members"),
    }
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &MembershipStep) -> StepResult {
    match step {
        MembershipStep::EtcdMemberRemove { node } => {
            let node = r.resolve(node)?;
            etcd_member_remove(r, &node).await
        }
        MembershipStep::EtcdMemberAdd { node } => {
            let node = r.resolve(node)?;
            etcd_member_add(r, &node).await
        }
        MembershipStep::ExpectMembers {
            service,
            set,
            started,
            within,
        } => {
            let expected = resolve_set(r, set)?;
            let service = *service;
            let started = *started;
            let (cluster, observer, rec) = r.split();
            let (list, _) = poll_until(*within, rec, || async {
                let outcome = observer
                    .member_lists(cluster, service)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|list| {
                        compare_members(&list, &expected, started)
                            .map(|()| list)
                            .map_err(|e| e.to_string())
                    });
                let seen = match &outcome {
                    Ok(list) => describe(list),
                    Err(e) => e.clone(),
                };
                Poll {
                    outcome,
                    observation: Some((format!("{service} members"), seen)),
                }
            })
            .await?;
            Ok(format!("{service} members are {}", describe(&list)))
        }
    }
}

/// Why a member already listed at a node's address is not the one this step is adding: it has
/// started, or it was not added by this run for the node as it is now.
pub(crate) fn refuse_listed(
    node: &NodeView,
    member: &Member,
    ours: Option<(u64, u32)>,
    attempted: bool,
) -> Option<String> {
    let our_add = ours == Some((member.id, node.generation)) || (attempted && ours.is_none());
    if our_add && !member.is_started() {
        return None;
    }
    let who = if node.generation > 0 {
        format!("the terminated {}", node.short)
    } else {
        node.short.clone()
    };
    let state = if member.is_started() {
        "started"
    } else {
        "unstarted"
    };
    Some(format!(
        "{who} (member {:x}, {state}) is still in the member list: remove it first (`etcdctl member remove {:x}`) — a replacement must not take over a dead member's identity, and a member that lost its data is removed and added anew",
        member.id, member.id
    ))
}

async fn etcd_member_remove<H: Hosts>(r: &mut Runner<'_, H>, node: &str) -> StepResult {
    let me = r
        .cluster
        .nodes()
        .into_iter()
        .find(|n| n.fqdn == node)
        .ok_or("unknown node")?;
    let address = me.address;
    let earlier = r.state.etcd_changes.removed.get(node).copied();
    let attempted = std::cell::Cell::new(None::<u64>);
    let (cluster, observer, rec) = r.split();
    let (attempted, me_short) = (&attempted, &me.short);
    let ((id, remaining), _) = poll_until(MEMBERSHIP_DEADLINE, rec, || async move {
        // Re-read the list on every attempt: a removal whose answer was lost is not repeated.
        let outcome = async {
            let (endpoint, list) = any_member_list(observer, cluster).await?;
            let Some(id) = Member::at(&list, address).map(|m| m.id) else {
                // Gone already: only a removal this run made (its answer lost) explains it.
                return match attempted.get().or(earlier.map(|(id, _)| id)) {
                    Some(id) => Ok((id, list.len())),
                    None => Err(format!(
                        "{} is no etcd member: nothing to remove (the members are {})",
                        me_short,
                        list.iter()
                            .map(|m| format!("{:x}", m.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
            };
            attempted.set(Some(id));
            let after = observer.etcd.member_remove(&endpoint, id).await?;
            Ok::<_, String>((id, after.len()))
        }
        .await;
        Poll::attempt("etcd member remove", outcome)
    })
    .await?;
    rec.record(format!("removed etcd member {id:x} ({})", name(node)));
    r.state
        .etcd_changes
        .removed
        .insert(node.to_string(), (id, me.generation));
    Ok(format!(
        "removed member {id:x} ({}); {remaining} members remain",
        name(node)
    ))
}

async fn etcd_member_add<H: Hosts>(r: &mut Runner<'_, H>, node: &str) -> StepResult {
    let nodes = r.cluster.nodes();
    let me = nodes
        .iter()
        .find(|n| n.fqdn == node)
        .ok_or("unknown node")?
        .clone();
    let peer = etcd::peer_url(me.address);
    let ours = r.state.etcd_changes.added.get(node).copied();
    let attempted = std::cell::Cell::new(false);
    let (cluster, observer, rec) = r.split();
    // A member already at this address is this run's own earlier add only when this run added
    // it for this node as it is now and it never started; anything else is a member the
    // operator failed to remove, and adding is refused at once.
    let (before, _) = poll_until(MEMBERSHIP_DEADLINE, rec, || async {
        Poll::attempt(
            "etcd member list",
            any_member_list(observer, cluster).await.map(|(_, l)| l),
        )
    })
    .await?;
    if let Some(member) = Member::at(&before, me.address) {
        if let Some(why) = refuse_listed(&me, member, ours, false) {
            return Err(why.into());
        }
    }
    let (list, _) = {
        let (peer, me, attempted) = (&peer, &me, &attempted);
        poll_until(MEMBERSHIP_DEADLINE, rec, || async move {
            let outcome = async {
                let (endpoint, list) = any_member_list(observer, cluster).await?;
                if let Some(member) = Member::at(&list, me.address) {
                    // Listed: this run's own add (an earlier run of the step, or this one
                    // whose answer was lost), or someone else's, which it will not take over.
                    return match refuse_listed(me, member, ours, attempted.get()) {
                        None => Ok(list),
                        Some(why) => Err(why),
                    };
                }
                attempted.set(true);
                let (_, after) = observer.etcd.member_add(&endpoint, peer).await?;
                Ok::<_, String>(after)
            }
            .await;
            Poll::attempt("etcd member add", outcome)
        })
        .await?
    };
    // What `etcdctl member add` prints as ETCD_INITIAL_CLUSTER: every member by name, the new
    // one under the name it will start with. Unstarted members have no name yet, so each is
    // named after the node at its peer address.
    let peers: Vec<etcd::Peer> = list
        .iter()
        .filter_map(|m| {
            let host = m
                .peer_urls
                .first()
                .map(|u| crate::probe::etcd::url_host(u).to_string())?;
            let n = nodes.iter().find(|n| n.address.to_string() == host)?;
            Some(etcd::Peer {
                name: n.short.clone(),
                address: n.address,
            })
        })
        .collect();
    if peers.len() != list.len() {
        return Err(format!(
            "the member list {list:?} names addresses that are no node of this cluster"
        )
        .into());
    }
    let id = Member::at(&list, me.address).map(|m| m.id).unwrap_or(0);
    r.state
        .etcd_changes
        .added
        .insert(node.to_string(), (id, me.generation));
    r.cluster.set_etcd_join(node, etcd::initial_cluster(&peers));
    r.rec
        .record(format!("added etcd member {id:x} for {}", name(node)));
    Ok(format!(
        "added member {id:x} for {}; {} members",
        name(node),
        list.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::etcd::Member;

    fn node(generation: u32) -> NodeView {
        NodeView {
            fqdn: "quorum-3.c".into(),
            short: "quorum-3".into(),
            role: "quorum".into(),
            address: std::net::Ipv4Addr::new(10, 0, 0, 13),
            mac: "02:00:00:00:00:01".into(),
            alive: true,
            generation,
            services: vec![ServiceKind::Etcd],
        }
    }

    fn member(id: u64, started: bool) -> Member {
        Member {
            id,
            name: if started {
                "quorum-3".into()
            } else {
                String::new()
            },
            peer_urls: vec!["http://10.0.0.13:2380".into()],
            client_urls: Vec::new(),
            is_learner: false,
        }
    }

    #[test]
    fn a_dead_members_identity_is_never_taken_over() {
        // The terminated member is still listed and started: the rebuilt node must not use it.
        let e = refuse_listed(&node(1), &member(0xe720, true), None, false).expect("refused");
        assert_eq!(
            e,
            "the terminated quorum-3 (member e720, started) is still in the member list: remove it first (`etcdctl member remove e720`) — a replacement must not take over a dead member's identity, and a member that lost its data is removed and added anew"
        );
        // Listed and unstarted, but added before the node was replaced: not this add.
        assert!(
            refuse_listed(&node(2), &member(0xe720, false), Some((0xe720, 1)), false).is_some()
        );
        // Listed by someone else: an attempt in this step does not make it ours.
        assert!(refuse_listed(&node(1), &member(0xe720, true), None, true).is_some());
        // A node never replaced is named as it is.
        let e = refuse_listed(&node(0), &member(0xe720, true), None, false).expect("refused");
        assert!(
            e.starts_with("quorum-3 (member e720, started) is still in the member list"),
            "{e}"
        );
    }

    #[test]
    fn this_runs_own_unstarted_add_is_recognised() {
        // Added by this run for the node as it is now, never started: an answer that was lost.
        assert_eq!(
            refuse_listed(&node(1), &member(0xab, false), Some((0xab, 1)), false),
            None
        );
        // Added in this very step whose answer was lost (no id known yet).
        assert_eq!(
            refuse_listed(&node(1), &member(0xab, false), None, true),
            None
        );
        // Started since: no longer a pending add.
        assert!(refuse_listed(&node(1), &member(0xab, true), Some((0xab, 1)), false).is_some());
        // An add this run made for another member id is not this one.
        assert!(refuse_listed(&node(1), &member(0xab, false), Some((0xcd, 1)), true).is_some());
    }
}
