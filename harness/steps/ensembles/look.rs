//! Looking at a ZooKeeper ensemble: every live server's mode and id, whether a majority of
//! the configured ensemble backs one leader, and the ids and ensembles steps compute from it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::future::join_all;

use crate::cluster::Cluster;
use crate::cluster_views::Observer;
use crate::probe::leader::Agreement;
use crate::probe::zookeeper::{server_state, Mode};
use crate::provider::Hosts;
use crate::runner::{name, poll_until, Poll, Runner, StepResult};
use crate::service::{zookeeper, ServiceKind};
use crate::static_ensemble::{self, Ensemble};

/// How long one four-letter exchange may take.
pub(super) const FOUR_LETTER_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long one data read or write may take.
pub(super) const DATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long discovery waits for every server to serve.
pub(super) const DISCOVER_WITHIN: Duration = Duration::from_secs(30);

/// One server as its four-letter words show it now.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) mode: Result<Mode, String>,
    /// `conf` serverId (ZooKeeper answers `conf` only while it serves).
    pub(super) id: Option<u64>,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mode {
            Err(e) => write!(f, "unreachable ({e})"),
            Ok(Mode::NotServing) => f.write_str("not serving"),
            Ok(mode) => {
                let word = match mode {
                    Mode::Leader => "leader",
                    Mode::Follower => "follower",
                    Mode::Observer => "observer",
                    _ => "standalone",
                };
                match self.id {
                    Some(id) => write!(f, "{word} as id {id}"),
                    None => f.write_str(word),
                }
            }
        }
    }
}

/// Every live ZooKeeper server, as `srvr` and `conf` show it, and the leader a majority of
/// the configured ensemble backs (or why none does).
pub(super) async fn look<H: Hosts>(observer: &Observer, cluster: &Cluster<H>) -> Look {
    let (seen, backed) = tokio::join!(
        join_all(
            cluster
                .members(ServiceKind::Zookeeper)
                .into_iter()
                .map(|m| async move {
                    let state = server_state(cluster.zookeeper_addr(&m), FOUR_LETTER_TIMEOUT).await;
                    let id = state
                        .as_ref()
                        .ok()
                        .and_then(|s| s.conf.as_ref())
                        .and_then(|c| c.server_id);
                    let mode = state.map(|s| s.mode).map_err(String::from);
                    (m.fqdn, Seen { mode, id })
                }),
        ),
        observer.leader(cluster, ServiceKind::Zookeeper, Agreement::Majority)
    );
    Look {
        seen: seen.into_iter().collect(),
        backed: backed.leader.map(|b| b.leader).map_err(|e| e.to_string()),
    }
}

/// One look at the ensemble.
#[derive(Debug, Clone)]
pub(super) struct Look {
    pub(super) seen: BTreeMap<String, Seen>,
    pub(super) backed: Result<String, String>,
}

/// The leader, when every live server serves, exactly one leads, a majority of the configured
/// ensemble backs it and no two claim one id.
pub(super) fn health(look: &Look) -> Result<String, String> {
    let seen = &look.seen;
    if seen.is_empty() {
        return Err("no live zookeeper server".to_string());
    }
    let mut problems: Vec<String> = seen
        .iter()
        .filter(|(_, s)| !matches!(s.mode, Ok(Mode::Leader | Mode::Follower)))
        .map(|(n, s)| format!("{} is {s}", name(n)))
        .collect();
    let mut claims: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (n, s) in seen {
        if let Some(id) = s.id {
            claims.entry(id).or_default().push(name(n));
        }
    }
    for (id, nodes) in &claims {
        if nodes.len() > 1 {
            problems.push(format!(
                "two servers claim id {id}: {}",
                nodes.join(" and ")
            ));
        }
    }
    let leaders: Vec<&String> = seen
        .iter()
        .filter(|(_, s)| matches!(s.mode, Ok(Mode::Leader)))
        .map(|(n, _)| n)
        .collect();
    match leaders.as_slice() {
        [one] if problems.is_empty() => match &look.backed {
            Ok(backed) if backed == *one => Ok((*one).clone()),
            Ok(backed) => Err(format!(
                "{} leads, but the majority-backed leader is {}",
                name(one),
                name(backed)
            )),
            Err(e) => Err(e.clone()),
        },
        [] => {
            problems.push("no server leads".to_string());
            Err(problems.join("; "))
        }
        [_] => Err(problems.join("; ")),
        many => {
            let names: Vec<&str> = many.iter().map(|n| name(n)).collect();
            problems.push(format!("several servers lead: {}", names.join(", ")));
            Err(problems.join("; "))
        }
    }
}

pub(super) fn summary(seen: &BTreeMap<String, Seen>) -> String {
    seen.iter()
        .map(|(n, s)| format!("{} {s}", name(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ZooKeeper nodes' addresses, by node.
pub(super) fn addresses<H: Hosts>(cluster: &Cluster<H>) -> BTreeMap<String, Ipv4Addr> {
    cluster
        .nodes()
        .into_iter()
        .filter(|n| n.services.contains(&ServiceKind::Zookeeper))
        .map(|n| (n.fqdn, n.address))
        .collect()
}

/// Node names by ensemble host (the address as a string).
pub(super) fn nodes_by_host(addresses: &BTreeMap<String, Ipv4Addr>) -> BTreeMap<String, String> {
    addresses
        .iter()
        .map(|(n, a)| (a.to_string(), n.clone()))
        .collect()
}

pub(super) fn ensemble_of(
    addresses: &BTreeMap<String, Ipv4Addr>,
    ids: &BTreeMap<String, u64>,
) -> Result<Ensemble, String> {
    Ensemble::new(
        ids.iter()
            .filter_map(|(node, id)| addresses.get(node).map(|a| (*id, a.to_string()))),
    )
    .map_err(|e| format!("the ids are no valid ensemble: {e}"))
}

pub(super) fn target_of(addresses: &BTreeMap<String, Ipv4Addr>) -> Result<Ensemble, String> {
    let hosts: Vec<String> = addresses.values().map(|a| a.to_string()).collect();
    static_ensemble::upgrade_target(&hosts)
        .map_err(|e| format!("failed to compute the upgrade's ids: {e}"))
}

/// What a server's zoo.cfg and myid get: its id in the ensemble, and the ensemble in
/// lexicographic order of address.
pub(super) fn assignment(ensemble: &Ensemble, host: &str) -> Result<zookeeper::Assignment, String> {
    let id = ensemble
        .id_of(host)
        .ok_or_else(|| format!("{host} is not in the ensemble {ensemble}"))?;
    let servers = ensemble
        .members()
        .iter()
        .map(|m| {
            m.host
                .parse::<Ipv4Addr>()
                .map(|address| zookeeper::Server { id: m.id, address })
                .map_err(|_| format!("{} is no address", m.host))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(zookeeper::Assignment {
        id,
        ensemble: servers,
    })
}

/// Every live server's id, once all serve (polled, as servers may be settling).
pub(super) async fn running_ids<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
) -> Result<BTreeMap<String, u64>, String> {
    let (cluster, observer, rec) = r.split();
    let (ids, _) = poll_until(within, rec, || async move {
        let looked = look(observer, cluster).await;
        let seen = &looked.seen;
        let outcome = health(&looked).and_then(|_| {
            seen.iter()
                .map(|(n, s)| {
                    s.id.map(|id| (n.clone(), id))
                        .ok_or_else(|| format!("{} does not report its id", name(n)))
                })
                .collect::<Result<BTreeMap<_, _>, String>>()
        });
        Poll {
            outcome,
            observation: Some(("zookeeper ensemble".to_string(), summary(seen))),
        }
    })
    .await?;
    Ok(ids)
}

/// The leader, once every live server serves under it with distinct ids.
pub(super) async fn healthy_leader<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
) -> StepResult {
    let (cluster, observer, rec) = r.split();
    let (leader, _) = poll_until(within, rec, || async move {
        let looked = look(observer, cluster).await;
        let seen = &looked.seen;
        Poll {
            outcome: health(&looked),
            observation: Some(("zookeeper ensemble".to_string(), summary(seen))),
        }
    })
    .await?;
    Ok(leader)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(list: &[(&str, Result<Mode, String>, Option<u64>)]) -> Look {
        backed(list, Ok("q2.c".to_string()))
    }

    fn backed(
        list: &[(&str, Result<Mode, String>, Option<u64>)],
        backed: Result<String, String>,
    ) -> Look {
        let seen = list
            .iter()
            .map(|(n, mode, id)| {
                (
                    n.to_string(),
                    Seen {
                        mode: mode.clone(),
                        id: *id,
                    },
                )
            })
            .collect();
        Look { seen, backed }
    }

    #[test]
    fn health_wants_everyone_serving_one_leader_and_distinct_ids() {
        let ok = seen(&[
            ("q1.c", Ok(Mode::Follower), Some(1)),
            ("q2.c", Ok(Mode::Leader), Some(2)),
        ]);
        assert_eq!(health(&ok), Ok("q2.c".to_string()));
        let dup = seen(&[
            ("q1.c", Ok(Mode::Follower), Some(1)),
            ("q2.c", Ok(Mode::Leader), Some(1)),
        ]);
        assert_eq!(
            health(&dup),
            Err("two servers claim id 1: q1 and q2".to_string())
        );
        let stuck = seen(&[
            ("q1.c", Ok(Mode::NotServing), None),
            ("q2.c", Ok(Mode::Leader), Some(2)),
            ("q3.c", Err("refused".to_string()), None),
        ]);
        assert_eq!(
            health(&stuck),
            Err("q1 is not serving; q3 is unreachable (refused)".to_string())
        );
        // Every live server serving under one leader is not enough without a majority.
        let minority = backed(
            &[("q2.c", Ok(Mode::Leader), Some(2))],
            Err("q2 is backed by 1 of the 3 voters".to_string()),
        );
        assert_eq!(
            health(&minority),
            Err("q2 is backed by 1 of the 3 voters".to_string())
        );
        // The one server that says it leads is not the one a majority backs.
        let other = backed(
            &[
                ("q1.c", Ok(Mode::Follower), Some(1)),
                ("q2.c", Ok(Mode::Leader), Some(2)),
            ],
            Ok("q1.c".to_string()),
        );
        assert_eq!(
            health(&other),
            Err("q2 leads, but the majority-backed leader is q1".to_string())
        );
    }
}
