//! ZooKeeper ids and data: discover the running ids, expect ids, write a znode, read it back
//! from every server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;

use super::look::*;
use super::ZookeeperIds;
use crate::probe::znodes;
use crate::provider::Hosts;
use crate::runner::{name, poll_until, Poll, Runner, StepResult};
use crate::service::ServiceKind;

/// `zookeeper-discover-ids`
pub(super) async fn discover<H: Hosts>(r: &mut Runner<'_, H>) -> StepResult {
    let ids = running_ids(r, DISCOVER_WITHIN).await?;
    let ensemble = ensemble_of(&addresses(&*r.cluster), &ids)?;
    let by_node: Vec<String> = ids
        .iter()
        .map(|(n, id)| format!("{} {id}", name(n)))
        .collect();
    r.rec
        .record(format!("discovered the running ZooKeeper ids: {ensemble}"));
    r.state.zookeeper_discovered = Some(ids);
    Ok(format!(
        "ids from conf serverId: {}; sorted by address: {ensemble}",
        by_node.join(", ")
    ))
}

/// `zookeeper-write`
pub(super) async fn write<H: Hosts>(r: &mut Runner<'_, H>, path: &str, data: &str) -> StepResult {
    let servers: Vec<SocketAddr> = r
        .cluster
        .members(ServiceKind::Zookeeper)
        .iter()
        .map(|m| r.cluster.zookeeper_addr(m))
        .collect();
    znodes::write(&servers, path, data.as_bytes(), DATA_TIMEOUT)
        .await
        .map_err(String::from)?;
    r.rec.record(format!("wrote {path} = {data:?}"));
    Ok(format!(
        "wrote {path} = {data:?} through {} servers",
        servers.len()
    ))
}

/// `expect = "zookeeper-ids"`
pub(super) async fn expect_ids<H: Hosts>(
    r: &mut Runner<'_, H>,
    ids: ZookeeperIds,
    within: Duration,
) -> StepResult {
    let addrs = addresses(&*r.cluster);
    let expected: BTreeMap<String, u64> = match ids {
        ZookeeperIds::Discovered => r
            .state
            .zookeeper_discovered
            .clone()
            .ok_or("no ids were discovered (add a `zookeeper-discover-ids` step)")?,
        ZookeeperIds::Upgrade => {
            let target = target_of(&addrs)?;
            addrs
                .iter()
                .filter_map(|(n, a)| target.id_of(&a.to_string()).map(|id| (n.clone(), id)))
                .collect()
        }
    };
    let (cluster, observer, rec) = r.split();
    let expected = &expected;
    let (line, _) = poll_until(within, rec, || async move {
        let looked = look(observer, cluster).await;
        let seen = &looked.seen;
        let mut wrong = Vec::new();
        for (node, want) in expected {
            match seen.get(node) {
                Some(s) if s.id == Some(*want) => {}
                Some(s) => wrong.push(format!("{} is {s}, not id {want}", name(node))),
                None => wrong.push(format!("{} is not running", name(node))),
            }
        }
        let outcome = match health(&looked) {
            Ok(_) if wrong.is_empty() => Ok(expected
                .iter()
                .map(|(n, id)| format!("{} {id}", name(n)))
                .collect::<Vec<_>>()
                .join(", ")),
            Ok(_) => Err(wrong.join(", ")),
            Err(e) => {
                wrong.push(e);
                Err(wrong.join("; "))
            }
        };
        Poll {
            outcome,
            observation: Some(("zookeeper ensemble".to_string(), summary(seen))),
        }
    })
    .await?;
    Ok(format!("every server reports its id: {line}"))
}

/// `expect = "zookeeper-data"`
pub(super) async fn expect_data<H: Hosts>(
    r: &mut Runner<'_, H>,
    path: &str,
    data: &str,
    within: Duration,
) -> StepResult {
    let (cluster, _, rec) = r.split();
    let (count, _) = poll_until(within, rec, || async move {
        let members = cluster.members(ServiceKind::Zookeeper);
        let reads = join_all(members.iter().map(|m| async move {
            (
                m.fqdn.clone(),
                znodes::read(cluster.zookeeper_addr(m), path, DATA_TIMEOUT).await,
            )
        }))
        .await;
        let wrong: Vec<String> = reads
            .iter()
            .filter_map(|(n, got)| match got {
                Ok(bytes) if bytes == data.as_bytes() => None,
                Ok(bytes) => Some(format!(
                    "{} returns {:?}",
                    name(n),
                    String::from_utf8_lossy(bytes)
                )),
                Err(e) => Some(format!("{}: {e}", name(n))),
            })
            .collect();
        let outcome = if wrong.is_empty() && !reads.is_empty() {
            Ok(reads.len())
        } else if reads.is_empty() {
            Err("no live zookeeper server".to_string())
        } else {
            Err(wrong.join(", "))
        };
        let seen = match &outcome {
            Ok(n) => format!("{n} servers return it"),
            Err(e) => e.clone(),
        };
        Poll {
            outcome,
            observation: Some((format!("zookeeper {path}"), seen)),
        }
    })
    .await?;
    Ok(format!("{count} servers return {path} = {data:?}"))
}
