//! Whether etcd on a node may start as the member it was: not when its data is gone while the
//! cluster still lists it as a started member. Started as it was, it would take over its old
//! member identity with nothing in it. This is read from the node's data directory and the
//! cluster's own member list, so a wipe done by hand (an `exec`, an operator's script) is caught
//! like one done by a step.

use std::time::Duration;

use futures::future::join_all;

use crate::base::names::short;
use crate::provider::{ClusterError, Hosts};
use crate::service::ServiceKind;

/// How long a member may take to list the members.
const LIST_TIMEOUT: Duration = Duration::from_millis(1500);

/// The member the cluster lists at a node's address as having run (it published its client
/// URLs), as the first live member that answers sees it; `None` when none is listed there, or
/// when no other member answers.
async fn listed_started<H: Hosts>(hosts: &H, fqdn: &str) -> Option<u64> {
    let record = hosts.record();
    let me = record.nodes.get(fqdn)?.address;
    let others: Vec<_> = record
        .nodes
        .iter()
        .filter(|(n, r)| n.as_str() != fqdn && r.alive && r.services.contains(&ServiceKind::Etcd))
        .map(|(n, r)| {
            crate::probe::etcd::client_url(
                hosts.endpoint(&r.view(n), crate::base::ports::ETCD_CLIENT),
            )
        })
        .collect();
    let probe = crate::probe::etcd::EtcdProbe::new(LIST_TIMEOUT);
    let lists = join_all(others.iter().map(|url| probe.members(url))).await;
    lists.into_iter().flatten().find_map(|list| {
        crate::probe::etcd::Member::at(&list, me)
            .filter(|m| m.has_published())
            .map(|m| m.id)
    })
}

/// Refuses to start etcd on a node as its old member when its data directory holds no member
/// data and the cluster lists a started member at its address; `remembered` is what this run
/// knows of the node losing its data, used only when no other member can be asked.
pub(super) async fn check<H: Hosts>(
    hosts: &H,
    fqdn: &str,
    remembered: Option<&'static str>,
) -> Result<(), String> {
    let data =
        super::Supervisor::data_dir(hosts, fqdn, ServiceKind::Etcd).map_err(|e| e.to_string())?;
    let holds = hosts
        .holds_files(fqdn, &data.join("member"))
        .await
        .map_err(|e: ClusterError| e.to_string())?;
    if holds {
        return Ok(());
    }
    let why = match listed_started(hosts, fqdn).await {
        Some(id) => format!(
            "its data directory holds no member/, yet the cluster lists member {id:x}, which has run, at its address"
        ),
        None => match remembered {
            Some(why) => why.to_string(),
            None => return Ok(()),
        },
    };
    Err(format!(
        "etcd on {} lost its data ({why}) and was never added back: started as it was, it would take over its old member identity with nothing in it — remove the member and add it anew (etcd-member-remove, then etcd-member-add) first",
        short(fqdn)
    ))
}
