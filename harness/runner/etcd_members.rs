//! etcd membership changes (`member add`/`remove`), retried while etcd refuses them.

use std::time::Duration;

use super::{name, poll_until, Poll, Runner};
use crate::observe::Observer;
use crate::provider::Cluster;
use crate::service::{etcd, ServiceKind};

pub(super) fn member_id_at(
    members: &[crate::probe::etcd::Member],
    address: std::net::Ipv4Addr,
) -> Option<u64> {
    let host = address.to_string();
    members
        .iter()
        .find(|m| {
            m.peer_urls
                .iter()
                .any(|u| crate::observe::url_host(u) == host)
        })
        .map(|m| m.id)
}

/// How long membership changes are retried: etcd refuses them while the cluster is not yet
/// healthy (`--strict-reconfig-check` wants members connected for a while after an election).
pub(super) const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(30);

/// The member list as the first live member that answers sees it, and that member's address.
pub(super) async fn any_member_list<C: Cluster>(
    observer: &Observer,
    cluster: &C,
) -> Result<(std::net::Ipv4Addr, Vec<crate::probe::etcd::Member>), String> {
    let mut errors = Vec::new();
    for m in cluster.members(ServiceKind::Etcd) {
        match observer.etcd_members(m.address).await {
            Ok(list) => return Ok((m.address, list)),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "no live etcd member answers: {}",
        errors.join("; ")
    ))
}

pub(super) async fn etcd_member_remove<C: Cluster>(
    r: &mut Runner<'_, C>,
    node: &str,
) -> Result<String, String> {
    let address = r
        .cluster
        .nodes()
        .into_iter()
        .find(|n| n.fqdn == node)
        .map(|n| n.address)
        .ok_or("unknown node")?;
    let (cluster, observer, rec) = r.split();
    let ((id, remaining), _) = poll_until(MEMBERSHIP_DEADLINE, rec, || async move {
        // Re-read the list on every attempt: a removal whose answer was lost is not repeated.
        let outcome = async {
            let (endpoint, list) = any_member_list(observer, cluster).await?;
            let Some(id) = member_id_at(&list, address) else {
                return Ok((None, list.len()));
            };
            let after = observer
                .etcd
                .member_remove(&etcd::client_url(endpoint), id)
                .await?;
            Ok::<_, String>((Some(id), after.len()))
        }
        .await;
        Poll::attempt("etcd member remove", outcome)
    })
    .await?;
    match id {
        Some(id) => {
            rec.record(format!("removed etcd member {id:x} ({})", name(node)));
            Ok(format!(
                "removed member {id:x} ({}); {remaining} members remain",
                name(node)
            ))
        }
        None => Ok(format!(
            "{} was no member already; {remaining} members",
            name(node)
        )),
    }
}

pub(super) async fn etcd_member_add<C: Cluster>(
    r: &mut Runner<'_, C>,
    node: &str,
) -> Result<String, String> {
    let nodes = r.cluster.nodes();
    let me = nodes
        .iter()
        .find(|n| n.fqdn == node)
        .ok_or("unknown node")?
        .clone();
    let peer = etcd::peer_url(me.address);
    let (cluster, observer, rec) = r.split();
    let (list, _) = {
        let peer = &peer;
        poll_until(MEMBERSHIP_DEADLINE, rec, || async move {
            let outcome = async {
                let (endpoint, list) = any_member_list(observer, cluster).await?;
                // An add whose answer was lost is not repeated: the member is listed already.
                if member_id_at(&list, me.address).is_some() {
                    return Ok(list);
                }
                let (_, after) = observer
                    .etcd
                    .member_add(&etcd::client_url(endpoint), peer)
                    .await?;
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
                .map(|u| crate::observe::url_host(u).to_string())?;
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
        ));
    }
    let id = member_id_at(&list, me.address).unwrap_or(0);
    r.cluster.set_etcd_join(node, etcd::initial_cluster(&peers));
    r.rec
        .record(format!("added etcd member {id:x} for {}", name(node)));
    Ok(format!(
        "added member {id:x} for {}; {} members",
        name(node),
        list.len()
    ))
}
