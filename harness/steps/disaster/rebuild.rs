//! Rebuilding etcd after a disaster: load the cell's configuration, wipe data, create a new
//! cluster from the configuration on disk, force a new cluster from a survivor.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{etcd_running, etcd_targets, list, node_view, peer};
use crate::backups::{choose_masters, MasterChoice};
use crate::ledger::LedgerEvent;
use crate::provider::{Hosts, NodeView};
use crate::runner::waits::MEMBERSHIP_DEADLINE;
use crate::runner::{name, poll_until, Poll, Runner, StepResult};
use crate::service::{etcd, ServiceKind};
use crate::spec::{NodeRef, Target};

/// How long a forced member may take to lead a cluster of itself.
const FORCE_DEADLINE: Duration = Duration::from_secs(30);

pub(super) async fn load_config<H: Hosts>(r: &mut Runner<'_, H>) -> StepResult {
    let config = r.cluster.cell_config().map_err(|e| e.to_string())?;
    let keys = config.keys();
    let prefix = config.prefix();
    let (cluster, observer, rec) = r.split();
    let (keys, prefix) = (&keys, &prefix);
    let ((through, written, removed), _) = poll_until(MEMBERSHIP_DEADLINE, rec, || async move {
        let outcome = async {
            let mut errors = Vec::new();
            for m in cluster.members(ServiceKind::Etcd) {
                let url = cluster.etcd_url(&m);
                let existing = match observer.etcd.range(&url, prefix.as_bytes(), false, 0).await {
                    Ok((_, kvs)) => kvs,
                    Err(e) => {
                        errors.push(e.to_string());
                        continue;
                    }
                };
                let existing: BTreeMap<Vec<u8>, Vec<u8>> = existing.into_iter().collect();
                let mut removed = 0;
                for key in existing.keys() {
                    if !keys.contains_key(String::from_utf8_lossy(key).as_ref()) {
                        observer.etcd.delete(&url, key).await?;
                        removed += 1;
                    }
                }
                let mut written = 0;
                for (k, v) in keys {
                    if existing.get(k.as_bytes()).map(Vec::as_slice) != Some(v.as_bytes()) {
                        observer.etcd.put(&url, k.as_bytes(), v.as_bytes()).await?;
                        written += 1;
                    }
                }
                return Ok((m.short, written, removed));
            }
            Err(format!(
                "no live etcd member answers: {}",
                errors.join("; ")
            ))
        }
        .await;
        Poll::attempt("configuration load", outcome)
    })
    .await?;
    rec.record(format!(
        "loaded the {} configuration keys of {} through {through}",
        keys.len(),
        config.cell
    ));
    Ok(format!(
        "{} configuration keys of {} from the configuration on disk ({written} written, {removed} stale removed) through {through}",
        keys.len(),
        config.cell
    ))
}
pub(super) async fn wipe<H: Hosts>(r: &mut Runner<'_, H>, on: &Target) -> StepResult {
    let nodes = etcd_targets(r, on)?;
    let mut wiped = Vec::new();
    let mut empty = Vec::new();
    for n in &nodes {
        let held = r.cluster.wipe_data(&n.fqdn, ServiceKind::Etcd).await?;
        if held {
            wiped.push(n.short.clone());
        } else {
            empty.push(n.short.clone());
        }
    }
    r.rec
        .record(format!("wiped etcd's data directory on {}", list(&nodes)));
    let mut parts = Vec::new();
    if !wiped.is_empty() {
        parts.push(format!("wiped etcd's data on {}", wiped.join(", ")));
    }
    if !empty.is_empty() {
        parts.push(format!("no data to wipe on {}", empty.join(", ")));
    }
    Ok(parts.join("; "))
}
pub(super) async fn new_cluster<H: Hosts>(
    r: &mut Runner<'_, H>,
    role: &str,
    named: &[NodeRef],
) -> StepResult {
    // "from the configuration the harness keeps on disk": names and addresses come from there.
    let config = r.cluster.cell_config().map_err(|e| e.to_string())?;
    let live_etcd: Vec<NodeView> = r
        .cluster
        .nodes()
        .into_iter()
        .filter(|n| n.alive && n.services.contains(&ServiceKind::Etcd))
        .collect();
    let (masters, choice) = if named.is_empty() {
        let working: Vec<String> = live_etcd
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.fqdn.clone())
            .collect();
        let all: Vec<String> = live_etcd.iter().map(|n| n.fqdn.clone()).collect();
        choose_masters(&working, &all)
    } else {
        let mut masters = Vec::new();
        for n in named {
            masters.push(r.resolve(n)?);
        }
        (masters, MasterChoice::Named)
    };
    if masters.is_empty() {
        return Err("no live etcd node to make a master of the new cluster"
            .to_string()
            .into());
    }
    let mut peers = Vec::new();
    for m in &masters {
        if etcd_running(r, m).await {
            return Err(format!(
                "etcd is running on {}; stop it first (the seed stops etcd on every node)",
                name(m)
            )
            .into());
        }
        let dir = r.cluster.data_dir(m, ServiceKind::Etcd)?;
        let held = r.cluster.holds_data(m, ServiceKind::Etcd).await?;
        if held {
            return Err(format!(
                "etcd's data directory on {} ({}) is not empty; wipe it first",
                name(m),
                dir.display()
            )
            .into());
        }
        let node = config
            .node(m)
            .ok_or_else(|| format!("{} is not in the cell's configuration on disk", name(m)))?;
        peers.push(etcd::Peer {
            name: node.short.clone(),
            address: node.address,
        });
    }
    let initial = etcd::initial_cluster(&peers);
    r.state.incarnation += 1;
    let token = format!(
        "succession-{}-new{}",
        r.cluster.run_id(),
        r.state.incarnation
    );
    let at_ms = r.rec.elapsed_ms();
    r.ledger.event(LedgerEvent::Reset { at_ms });
    for m in &masters {
        r.cluster.set_etcd_bootstrap(
            m,
            etcd::Bootstrap {
                initial_cluster: initial.clone(),
                state: etcd::ClusterState::New,
                token: Some(token.clone()),
                force_new_cluster: false,
            },
        );
        r.cluster.start_service(m, ServiceKind::Etcd).await?;
    }
    let names: Vec<&str> = masters.iter().map(|m| name(m)).collect();
    r.rec.record(format!(
        "started a new etcd cluster on {} (token {token})",
        names.join(", ")
    ));
    let why = match choice {
        MasterChoice::Working => format!("three or more working {role} nodes, so those"),
        MasterChoice::AllNodes => {
            format!("fewer than three working {role} nodes, so every live etcd node")
        }
        MasterChoice::Named => "as named".to_string(),
    };
    Ok(format!(
        "new etcd cluster on {} ({why}), initial cluster {initial} from the configuration on disk",
        names.join(", ")
    ))
}
pub(super) async fn force_new_cluster<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: &NodeRef,
) -> StepResult {
    let fqdn = r.resolve(node)?;
    let view = node_view(r, &fqdn)?;
    if etcd_running(r, &fqdn).await {
        r.cluster.stop_service(&fqdn, ServiceKind::Etcd).await?;
    }
    let dir = r.cluster.data_dir(&fqdn, ServiceKind::Etcd)?;
    let held = r.cluster.holds_data(&fqdn, ServiceKind::Etcd).await?;
    if !held {
        return Err(format!(
            "{} holds no etcd data to recover from ({} is empty)",
            view.short,
            dir.display()
        )
        .into());
    }
    let alone = etcd::initial_cluster(&[peer(&view)]);
    let forced = etcd::Bootstrap {
        initial_cluster: alone.clone(),
        state: etcd::ClusterState::New,
        token: None,
        force_new_cluster: true,
    };
    r.cluster.set_etcd_bootstrap(&fqdn, forced);
    r.cluster.start_service(&fqdn, ServiceKind::Etcd).await?;
    r.rec.record(format!(
        "restarted etcd on {} with --force-new-cluster",
        view.short
    ));
    let url = r.cluster.etcd_url(&view);
    let result = {
        let (_, observer, rec) = r.split();
        let url = &url;
        poll_until(FORCE_DEADLINE, rec, || async move {
            let outcome = async {
                let status = observer.etcd.status(url).await?;
                let members = observer.etcd.members(url).await?;
                if status.leader == 0 || status.leader != status.member_id {
                    return Err(format!("it does not lead yet (leader {:x})", status.leader));
                }
                if members.len() != 1 {
                    return Err(format!("it lists {} members", members.len()));
                }
                Ok(status.member_id)
            }
            .await;
            Poll {
                observation: Some((
                    "forced member".to_string(),
                    match &outcome {
                        Ok(_) => "leads a cluster of itself".to_string(),
                        Err(e) => e.clone(),
                    },
                )),
                outcome,
            }
        })
        .await
    };
    // The normal start flags come back whatever happened: a restart must never force again.
    r.cluster.set_etcd_bootstrap(
        &fqdn,
        etcd::Bootstrap {
            initial_cluster: alone,
            state: etcd::ClusterState::New,
            token: None,
            force_new_cluster: false,
        },
    );
    let (id, _) = result?;
    r.rec.record(format!(
        "{} leads a new one-member cluster; normal start flags restored",
        view.short
    ));
    Ok(format!(
        "{} (member {id:x}) leads a new cluster of itself, forced from its data; its normal start flags are restored",
        view.short
    ))
}
