//! Rolling restarts of a ZooKeeper ensemble: a static ensemble written and rolled out one
//! server at a time, and the renumbering to the upgrade's ids with the safe plan; every restart
//! gated on the ensemble serving under a majority-backed leader.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::look::*;
use super::ZookeeperIds;
use crate::provider::Hosts;
use crate::runner::{name, poll_until, Poll, Runner, StepError, StepResult};
use crate::service::ServiceKind;
use crate::spec::NodeRef;
use crate::static_ensemble::{self, Conflict, Ensemble, Reason, Rollout};

/// Restarts ZooKeeper on a node and waits until it serves as `id` under one agreed leader.
pub(super) async fn restart_and_wait<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: &str,
    id: u64,
    within: Duration,
) -> Result<Duration, String> {
    // Who serves with the id this server is to take, as seen just before it restarts: when
    // the restart upsets the ensemble, such a holder may be electing (and so not say its id)
    // at the very moment the wait ends, yet it still claims the id.
    let holders = std::cell::RefCell::new(serving_with(
        &look(&r.observer, &*r.cluster).await.seen,
        node,
        id,
    ));
    r.cluster
        .stop_service(node, ServiceKind::Zookeeper)
        .await
        .map_err(|e| e.to_string())?;
    r.cluster
        .start_service(node, ServiceKind::Zookeeper)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (cluster, observer, rec) = r.split();
    let holders_ref = &holders;
    let result = poll_until(within, rec, || async move {
        let looked = look(observer, cluster).await;
        let seen = &looked.seen;
        holders_ref
            .borrow_mut()
            .extend(serving_with(seen, node, id));
        let outcome = match seen.get(node) {
            Some(s) if s.id == Some(id) => health(&looked).map(|_| ()),
            Some(s) => {
                let mine = match s.id {
                    Some(other) => format!("{} serves as id {other}, not {id}", name(node)),
                    None => format!("{} is {s} (restarted as id {id})", name(node)),
                };
                let mut others = looked.clone();
                others.seen.remove(node);
                let mut why = vec![mine];
                if let Err(e) = health(&others) {
                    why.push(e);
                }
                Err(why.join("; "))
            }
            None => Err(format!("{} is no live zookeeper server", name(node))),
        };
        Poll {
            outcome,
            observation: Some(("zookeeper ensemble".to_string(), summary(seen))),
        }
    })
    .await;
    match result {
        Ok(_) => Ok(started.elapsed()),
        Err(e) => {
            let seen = look(observer, cluster).await.seen;
            let mut holders = holders.into_inner();
            holders.extend(serving_with(&seen, node, id));
            Err(match claim_conflict(&seen, holders, node, id) {
                Some(conflict) => format!("{e} — {conflict}"),
                None => e.to_string(),
            })
        }
    }
}

/// The other servers `seen` serving with `id`.
fn serving_with(seen: &BTreeMap<String, Seen>, node: &str, id: u64) -> BTreeSet<String> {
    seen.iter()
        .filter(|(n, s)| n.as_str() != node && s.id == Some(id))
        .map(|(n, _)| n.clone())
        .collect()
}

/// Two servers claiming `id`, once the wait for `node` to serve with it is over: `node`,
/// restarted with it, and each other server seen serving with it since just before the
/// restart that is not seen now serving with another id (a holder that is electing still
/// claims its id; one seen with another id gave it up). `seen` is the look after the wait.
fn claim_conflict(
    seen: &BTreeMap<String, Seen>,
    holders: BTreeSet<String>,
    node: &str,
    id: u64,
) -> Option<String> {
    let holders: Vec<String> = holders
        .into_iter()
        .filter_map(|h| match seen.get(&h) {
            Some(s) if s.id == Some(id) => Some(format!("{} (serving with it)", name(&h))),
            Some(s) if s.id.is_some() => None,
            Some(s) => Some(format!(
                "{} (seen serving with it during the restart, now {s})",
                name(&h)
            )),
            None => None,
        })
        .collect();
    if holders.is_empty() {
        return None;
    }
    let restarted = match seen.get(node) {
        Some(s) if s.id == Some(id) => "restarted with it, serving with it too",
        _ => "restarted with it, cannot join",
    };
    Some(format!(
        "two servers claim id {id}: {} ({restarted}) and {}",
        name(node),
        holders.join(", ")
    ))
}

pub(super) fn human(d: Duration) -> String {
    crate::base::time::human_ms(d.as_millis() as u64)
}

/// `zookeeper-static-ensemble`
pub(super) async fn static_ensemble<H: Hosts>(
    r: &mut Runner<'_, H>,
    ids: ZookeeperIds,
    order: &[NodeRef],
    within: Duration,
) -> StepResult {
    let addrs = addresses(&*r.cluster);
    let by_host = nodes_by_host(&addrs);
    let label = |host: &str| {
        by_host
            .get(host)
            .map(|n| name(n).to_string())
            .unwrap_or_else(|| host.to_string())
    };
    let running = ensemble_of(&addrs, &running_ids(r, within).await?)?;
    let ensemble = match ids {
        ZookeeperIds::Discovered => {
            let discovered = r
                .state
                .zookeeper_discovered
                .clone()
                .ok_or("no ids were discovered (add a `zookeeper-discover-ids` step)")?;
            ensemble_of(&addrs, &discovered)?
        }
        ZookeeperIds::Upgrade => target_of(&addrs)?,
    };
    let order: Vec<String> = if order.is_empty() {
        ensemble
            .hosts()
            .iter()
            .filter_map(|h| by_host.get(*h).cloned())
            .collect()
    } else {
        order
            .iter()
            .map(|n| r.resolve(n))
            .collect::<Result<_, _>>()?
    };
    let order_hosts: Vec<String> = order
        .iter()
        .filter_map(|n| addrs.get(n).map(|a| a.to_string()))
        .collect();
    let conflicts = static_ensemble::upgrade_conflicts(&running, &ensemble, &order_hosts)
        .map_err(|e| e.to_string())?;
    let predicted = describe_conflicts(&conflicts, label);
    r.rec.record(format!(
        "writing the static ensemble {ensemble} on every server, then restarting {}",
        order.iter().map(|n| name(n)).collect::<Vec<_>>().join(", ")
    ));
    for p in &predicted {
        r.rec.record(format!("predicted id conflict: {p}"));
    }
    // As the seed does: the file changes on every server before any restarts.
    for (node, address) in &addrs {
        let a = assignment(&ensemble, &address.to_string())?;
        r.cluster.set_zookeeper_config(node, a);
    }
    let mut slowest = Duration::ZERO;
    for (i, node) in order.iter().enumerate() {
        let host = addrs.get(node).map(|a| a.to_string()).unwrap_or_default();
        let id = ensemble.id_of(&host).unwrap_or(0);
        match restart_and_wait(r, node, id, within).await {
            Ok(took) => {
                slowest = slowest.max(took);
                r.rec.record(format!(
                    "restart {} of {}: {} serves as id {id} after {}",
                    i + 1,
                    order.len(),
                    name(node),
                    human(took)
                ));
            }
            Err(e) => {
                let mut detail = format!(
                    "restart {} of {}: {} restarted as id {id}: {e}",
                    i + 1,
                    order.len(),
                    name(node)
                );
                if !predicted.is_empty() {
                    detail.push_str(&format!(
                        " (predicted before any restart: {})",
                        predicted.join("; ")
                    ));
                }
                return Err(detail.into());
            }
        }
    }
    Ok(format!(
        "{ensemble}: {} servers restarted one at a time, each serving again within {}",
        order.len(),
        human(slowest)
    ))
}

/// Each id conflict an upgrade order meets, in words, naming servers by `label`.
fn describe_conflicts(conflicts: &[Conflict], label: impl Fn(&str) -> String) -> Vec<String> {
    conflicts
        .iter()
        .map(|c| {
            format!(
                "restart {} of {}: {} (id {}) takes id {}, which {} holds until restart {}",
                c.restart,
                c.of,
                label(&c.host),
                c.previous_id,
                c.id,
                label(&c.holder),
                c.holder_restart
            )
        })
        .collect()
}

/// How a restarted follower caught up with the leader, from its own log.
pub(super) fn sync_kind(log: &str) -> Option<&'static str> {
    if log.contains("Getting a snapshot from leader") {
        Some("snapshot")
    } else if log.contains("Getting a diff from the leader") {
        Some("diff")
    } else if log.contains("Truncating log") {
        Some("truncation")
    } else {
        None
    }
}

/// The highest zxid a server loaded from its own data directory when it started
/// (`Snapshot loaded in … ms, highest zxid is 0x…`).
pub(super) fn loaded_zxid(log: &str) -> Option<u64> {
    let at = log.find("highest zxid is 0x")? + "highest zxid is 0x".len();
    let hex: String = log[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    u64::from_str_radix(&hex, 16).ok()
}

/// `zookeeper-renumber`
pub(super) async fn renumber<H: Hosts>(r: &mut Runner<'_, H>, within: Duration) -> StepResult {
    let addrs = addresses(&*r.cluster);
    let by_host = nodes_by_host(&addrs);
    let ids = running_ids(r, within).await?;
    let running = ensemble_of(&addrs, &ids)?;
    let target = target_of(&addrs)?;
    let views = started_views(r, &addrs, &ids)?;
    let mut rollout = Rollout::new(&running, views, &target).map_err(|e| e.to_string())?;
    let moves = rollout.pending_moves();
    r.rec.record(format!(
        "renumbering {running} to {target}: {}",
        if moves.is_empty() {
            "nothing to move".to_string()
        } else {
            moves
                .iter()
                .map(|m| {
                    format!(
                        "{} {}→{}",
                        by_host.get(&m.host).map(|n| name(n)).unwrap_or(&m.host),
                        m.from,
                        m.to
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let bound = (moves.len() + 1) * (addrs.len() + 1) + 1;
    let mut tally = Tally::default();
    for count in 1.. {
        if count > bound {
            return Err(format!("the rollout did not end after {bound} restarts").into());
        }
        let leader = healthy_leader(r, within)
            .await
            .map_err(|e| format!("the ensemble is not healthy: {e}"))?;
        let leader_host = addrs.get(&leader).map(|a| a.to_string());
        let Some(restart) = rollout.next(leader_host.as_deref()) else {
            break;
        };
        let node = by_host
            .get(&restart.host)
            .cloned()
            .ok_or_else(|| format!("{} is no node", restart.host))?;
        if let Some(h) = &restart.hazard {
            return Err(format!("stopped before restarting {}: {h}", name(&node)).into());
        }
        let a = assignment(&restart.ensemble, &restart.host)?;
        r.cluster.set_zookeeper_config(&node, a);
        let what = match restart.reason {
            Reason::Renumber => format!(
                "{} id {} → {}",
                name(&node),
                restart.previous_id,
                restart.id
            ),
            Reason::Refresh => format!("{} (id {}) reloads the ensemble", name(&node), restart.id),
        };
        let took = restart_and_wait(r, &node, restart.id, within)
            .await
            .map_err(|e| format!("restart {count}, {what}: {e}"))?;
        tally.slowest = tally.slowest.max(took);
        let note = if restart.reason == Reason::Renumber {
            tally.renumbered += 1;
            renumbered_note(r, &node, &mut tally)
                .await
                .map_err(|e| format!("restart {count}, {what}: {e}"))?
        } else {
            tally.refreshed += 1;
            String::new()
        };
        rollout.apply(&restart).map_err(|e| e.to_string())?;
        r.rec.record(format!(
            "restart {count}: {what}{}{note}, serving after {}",
            if restart.leader { " (was leading)" } else { "" },
            human(took)
        ));
    }
    if !rollout.is_done() {
        return Err(format!("stopped at {} before reaching {target}", rollout.truth()).into());
    }
    Ok(tally.summary(&target))
}

/// The ensemble each server was started with (which it still runs, whatever its file says
/// now), keyed by address; a server serving under another id than it was started with fails.
fn started_views<H: Hosts>(
    r: &Runner<'_, H>,
    addrs: &BTreeMap<String, std::net::Ipv4Addr>,
    ids: &BTreeMap<String, u64>,
) -> Result<BTreeMap<String, Ensemble>, StepError> {
    let mut views = BTreeMap::new();
    for (node, address) in addrs {
        let started = r
            .cluster
            .zookeeper_started_with(node)
            .ok_or_else(|| format!("the ensemble {} was started with is unknown", name(node)))?;
        if ids.get(node) != Some(&started.id) {
            return Err(format!(
                "{} serves as id {:?} but was started as id {}",
                name(node),
                ids.get(node),
                started.id
            )
            .into());
        }
        let view = Ensemble::new(
            started
                .ensemble
                .iter()
                .map(|s| (s.id, s.address.to_string())),
        )
        .map_err(|e| format!("{} was started with an invalid ensemble: {e}", name(node)))?;
        views.insert(address.to_string(), view);
    }
    Ok(views)
}

/// What the rollout did, for its closing line.
#[derive(Default)]
struct Tally {
    renumbered: usize,
    refreshed: usize,
    slowest: Duration,
    /// Renumbered servers that loaded their own data.
    kept: usize,
    /// How renumbered servers caught up with the leader, and how many each way.
    syncs: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn summary(&self, target: &Ensemble) -> String {
        let kept = if self.kept == 0 {
            String::new()
        } else {
            format!(
                "; the {} renumbered servers kept their data and caught up by {}",
                self.kept,
                self.syncs
                    .iter()
                    .map(|(k, n)| format!("{k} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "{target}: {} restarts ({} renumbered, {} reloaded the ensemble), no id ever held twice, each serving again within {}{kept}",
            self.renumbered + self.refreshed,
            self.renumbered,
            self.refreshed,
            human(self.slowest)
        )
    }
}

/// What a renumbered server's log shows of its start: that it loaded its own data (it must:
/// ZooKeeper keys nothing in the data directory by id, so a renumbered server loads its own
/// snapshot and log, then catches up with the leader by a diff, or by a snapshot when a new
/// leader's epoch began since it last synced) and how it synced.
async fn renumbered_note<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: &str,
    tally: &mut Tally,
) -> StepResult {
    let Some(log) = r
        .cluster
        .service_log_since_start(node, ServiceKind::Zookeeper)
        .await
    else {
        return Ok(String::new());
    };
    let mut note = match loaded_zxid(&log) {
        Some(z) if z > 0 => {
            tally.kept += 1;
            format!(", kept its data (loaded up to 0x{z:x})")
        }
        _ => return Err("it did not load its own data when it started".into()),
    };
    if let Some(kind) = sync_kind(&log) {
        *tally.syncs.entry(kind).or_default() += 1;
        note.push_str(&format!(", synced by {kind}"));
    }
    Ok(note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::zookeeper::Mode;

    fn serving(mode: Mode, id: u64) -> Seen {
        Seen {
            mode: Ok(mode),
            id: Some(id),
        }
    }

    fn electing() -> Seen {
        Seen {
            mode: Ok(Mode::NotServing),
            id: None,
        }
    }

    fn holders(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_holder_that_is_electing_when_the_wait_ends_still_claims_the_id() {
        let seen: BTreeMap<String, Seen> = [
            ("quorum-1".to_string(), electing()),
            ("quorum-2".to_string(), serving(Mode::Follower, 2)),
            ("quorum-3".to_string(), electing()),
        ]
        .into();
        assert_eq!(
            claim_conflict(&seen, holders(&["quorum-1"]), "quorum-3", 1).as_deref(),
            Some("two servers claim id 1: quorum-3 (restarted with it, cannot join) and quorum-1 (seen serving with it during the restart, now not serving)")
        );
    }

    #[test]
    fn a_conflict_is_named_whether_the_restarted_server_joined_or_not() {
        let mut seen: BTreeMap<String, Seen> = [
            ("quorum-1".to_string(), serving(Mode::Follower, 1)),
            ("quorum-3".to_string(), electing()),
        ]
        .into();
        assert_eq!(
            claim_conflict(&seen, holders(&["quorum-1"]), "quorum-3", 1).as_deref(),
            Some("two servers claim id 1: quorum-3 (restarted with it, cannot join) and quorum-1 (serving with it)")
        );
        seen.insert("quorum-3".to_string(), serving(Mode::Follower, 1));
        assert_eq!(
            claim_conflict(&seen, holders(&["quorum-1"]), "quorum-3", 1).as_deref(),
            Some("two servers claim id 1: quorum-3 (restarted with it, serving with it too) and quorum-1 (serving with it)")
        );
    }

    #[test]
    fn a_holder_seen_with_another_id_or_gone_claims_nothing() {
        let seen: BTreeMap<String, Seen> = [
            ("quorum-1".to_string(), serving(Mode::Leader, 4)),
            ("quorum-3".to_string(), electing()),
        ]
        .into();
        assert_eq!(
            claim_conflict(&seen, holders(&["quorum-1"]), "quorum-3", 1),
            None
        );
        assert_eq!(
            claim_conflict(&seen, holders(&["quorum-9"]), "quorum-3", 1),
            None
        );
        assert_eq!(claim_conflict(&seen, holders(&[]), "quorum-3", 1), None);
        let both: BTreeMap<String, Seen> = [
            ("quorum-1".to_string(), serving(Mode::Follower, 1)),
            ("quorum-3".to_string(), electing()),
        ]
        .into();
        assert_eq!(serving_with(&both, "quorum-3", 1), holders(&["quorum-1"]));
        assert!(serving_with(&both, "quorum-1", 1).is_empty());
    }

    #[test]
    fn the_sync_kind_is_read_from_the_followers_log() {
        assert_eq!(
            sync_kind("… INFO org.apache.zookeeper.server.quorum.Learner - Getting a diff from the leader 0x200000003"),
            Some("diff")
        );
        assert_eq!(
            sync_kind("Learner - Getting a snapshot from leader 0x200000000"),
            Some("snapshot")
        );
        assert_eq!(sync_kind("LOOKING"), None);
        assert_eq!(
            loaded_zxid("ZKDatabase - Snapshot loaded in 31 ms, highest zxid is 0x100000004, digest is 1371985504"),
            Some(0x1_0000_0004)
        );
        assert_eq!(loaded_zxid("nothing"), None);
    }
}
