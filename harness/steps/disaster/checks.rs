//! What etcd disaster recovery expects: the quorum lost, members healthy, the configuration
//! and dumped keys back, and the ledger read back with no loss beyond what is tolerated.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::captures::capture;
use super::{brief, etcd_targets, list};
use crate::backups::Dump;
use crate::cluster::Cluster;
use crate::cluster_views::Observer;
use crate::ledger::{check, CaptureKind, LedgerEvent};
use crate::probe::leader::MemberView;
use crate::provider::Hosts;
use crate::runner::ledger::read_any;
use crate::runner::{
    name, poll_until, poll_until_held, Poll, Runner, StepResult, ELECTION_POLL_INTERVAL,
};
use crate::service::ServiceKind;
use crate::spec::{NodeRef, Target};

/// The key the quorum-loss probe tries to write.
const PROBE_KEY: &str = "/succession/probe/quorum";

pub(super) async fn expect_config<H: Hosts>(r: &mut Runner<'_, H>, within: Duration) -> StepResult {
    let config = r.cluster.cell_config().map_err(|e| e.to_string())?;
    let want: BTreeMap<Vec<u8>, Vec<u8>> = config
        .keys()
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
        .collect();
    let prefix = config.prefix();
    let (members, _) = expect_keys(r, within, &prefix, &want, true, "configuration keys").await?;
    Ok(format!(
        "{} configuration keys of {} through {members}, exactly as on disk",
        want.len(),
        config.cell
    ))
}
/// Polls until every live member holds `want` under `prefix` (exactly, or at least).
async fn expect_keys<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
    prefix: &str,
    want: &BTreeMap<Vec<u8>, Vec<u8>>,
    exact: bool,
    what: &str,
) -> Result<(String, Instant), String> {
    let (cluster, observer, rec) = r.split();
    poll_until(within, rec, || async move {
        let live = cluster.members(ServiceKind::Etcd);
        let reads = join_all(live.iter().map(|m| async move {
            let got = observer
                .etcd
                .range(&cluster.etcd_url(m), prefix.as_bytes(), false, 0)
                .await;
            (m.short.clone(), got)
        }))
        .await;
        let mut problems = Vec::new();
        for (node, got) in &reads {
            match got {
                Err(e) => problems.push(format!("{node}: {}", brief(e))),
                Ok((_, kvs)) => {
                    let got: BTreeMap<&[u8], &[u8]> = kvs
                        .iter()
                        .map(|(k, v)| (k.as_slice(), v.as_slice()))
                        .collect();
                    let shown = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
                    let missing: Vec<String> = want
                        .keys()
                        .filter(|k| !got.contains_key(k.as_slice()))
                        .map(|k| shown(k))
                        .collect();
                    let different: Vec<String> = want
                        .iter()
                        .filter(|(k, v)| got.get(k.as_slice()).is_some_and(|g| *g != v.as_slice()))
                        .map(|(k, _)| shown(k))
                        .collect();
                    let extra: Vec<String> = if exact {
                        got.keys()
                            .filter(|k| !want.contains_key(**k))
                            .map(|k| shown(k))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let mut parts = Vec::new();
                    for (n, label, keys) in [
                        (missing.len(), "missing", &missing),
                        (different.len(), "different", &different),
                        (extra.len(), "unexpected", &extra),
                    ] {
                        if n > 0 {
                            parts.push(format!("{n} {label} (e.g. {})", keys[0]));
                        }
                    }
                    if !parts.is_empty() {
                        problems.push(format!(
                            "{node}: of {} {what}, {}",
                            want.len(),
                            parts.join(", ")
                        ));
                    }
                }
            }
        }
        let outcome = if live.is_empty() {
            Err("no live etcd member to read through".to_string())
        } else if problems.is_empty() {
            Ok(reads
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "))
        } else {
            Err(problems.join("; "))
        };
        Poll {
            observation: Some((
                what.to_string(),
                match &outcome {
                    Ok(n) => format!("present through {n}"),
                    Err(e) => e.clone(),
                },
            )),
            outcome,
        }
    })
    .await
    .map_err(String::from)
}
pub(super) async fn expect_dump_restored<H: Hosts>(
    r: &mut Runner<'_, H>,
    label: &str,
    within: Duration,
) -> StepResult {
    let path = capture(&r.state, label, CaptureKind::Dump)?.path.clone();
    let dump = Dump::read(&path)?;
    let mut want = BTreeMap::new();
    for e in &dump.keys {
        want.insert(e.key_bytes()?, e.value_bytes()?);
    }
    let (members, _) = expect_keys(r, within, &dump.prefix, &want, false, "dumped keys").await?;
    Ok(format!(
        "all {} keys of dump `{label}` back with their values through {members}",
        want.len()
    ))
}
pub(super) async fn expect_health<H: Hosts>(
    r: &mut Runner<'_, H>,
    on: &Target,
    within: Duration,
) -> StepResult {
    let nodes = etcd_targets(r, on)?;
    let (cluster, observer, rec) = r.split();
    let nodes = &nodes;
    let (healthy, _) = poll_until(within, rec, || async move {
        // What `etcdctl endpoint health` does: a linearizable read through the member.
        let checks = join_all(nodes.iter().map(|n| async move {
            (
                n.short.clone(),
                observer
                    .etcd
                    .get(&cluster.etcd_url(n), "health", false)
                    .await,
            )
        }))
        .await;
        let unhealthy: Vec<String> = checks
            .iter()
            .filter_map(|(n, c)| c.as_ref().err().map(|e| format!("{n}: {}", brief(e))))
            .collect();
        let outcome = if unhealthy.is_empty() {
            Ok(list(nodes))
        } else {
            Err(format!("unhealthy: {}", unhealthy.join("; ")))
        };
        Poll {
            observation: Some((
                "etcd endpoint health".to_string(),
                match &outcome {
                    Ok(n) => format!("healthy on {n}"),
                    Err(e) => e.clone(),
                },
            )),
            outcome,
        }
    })
    .await?;
    Ok(format!("endpoint health: healthy on {healthy}"))
}
/// One look at whether the quorum is lost; `Ok` says what was seen.
async fn quorum_lost<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
) -> Result<String, String> {
    let live = cluster.members(ServiceKind::Etcd);
    if live.is_empty() {
        return Err("no live etcd member to ask".to_string());
    }
    let views = observer.leader_views(cluster, ServiceKind::Etcd).await;
    for (node, view) in &views {
        match view {
            MemberView::Leader { leader, .. } => {
                return Err(format!(
                    "{} still follows leader {}",
                    name(node),
                    name(leader)
                ))
            }
            MemberView::Unreachable { why } => {
                return Err(format!("{}: {}", name(node), brief(why)))
            }
            MemberView::NoLeader { .. } | MemberView::Down { .. } => {}
        }
    }
    let probes = join_all(live.iter().map(|m| async move {
        let url = cluster.etcd_url(m);
        let (write, linearizable, serializable, members) = tokio::join!(
            observer.etcd.put(
                &url,
                PROBE_KEY.as_bytes(),
                b"written while the quorum is lost"
            ),
            observer.etcd.get(&url, PROBE_KEY, false),
            observer.etcd.count_all(&url, true),
            observer.etcd.members(&url),
        );
        (m.short.clone(), write, linearizable, serializable, members)
    }))
    .await;
    let mut writes = Vec::new();
    let mut stale = Vec::new();
    let mut fresh = Vec::new();
    let mut listed = 0;
    for (node, write, linearizable, serializable, members) in probes {
        match write {
            Ok(_) => return Err(format!("a write through {node} succeeded")),
            Err(e) => writes.push(format!("{node}: {}", brief(&e))),
        }
        match linearizable {
            Ok(_) => return Err(format!("a linearizable read through {node} succeeded")),
            Err(e) => fresh.push(format!("{node}: {}", brief(&e))),
        }
        match serializable {
            Ok(0) => return Err(format!("{node} holds no data to read")),
            Ok(keys) => stale.push(format!("{node}: {keys} keys")),
            Err(e) => {
                return Err(format!(
                    "a serializable read through {node} failed: {}",
                    brief(&e)
                ))
            }
        }
        if let Ok(m) = members {
            listed = listed.max(m.len());
        }
    }
    let names: Vec<&str> = live.iter().map(|m| m.short.as_str()).collect();
    Ok(format!(
        "{} of {listed} etcd members live ({}), none has a leader; writes fail ({}); serializable reads of the old data succeed ({}); linearizable reads fail ({})",
        live.len(),
        names.join(", "),
        writes.join("; "),
        stale.join("; "),
        fresh.join("; ")
    ))
}
pub(super) async fn expect_quorum_lost<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
    measure: Option<&str>,
) -> StepResult {
    let held = {
        let (cluster, observer, rec) = r.split();
        poll_until_held(within, ELECTION_POLL_INTERVAL, rec, || async move {
            let outcome = quorum_lost(observer, cluster).await;
            Poll {
                observation: Some((
                    "etcd quorum".to_string(),
                    match &outcome {
                        Ok(_) => "lost".to_string(),
                        Err(e) => format!("not seen lost: {e}"),
                    },
                )),
                outcome,
            }
        })
        .await?
    };
    let since = r.last_disruption.unwrap_or(held.at);
    let at_ms = held.at.saturating_duration_since(r.rec.origin).as_millis() as u64;
    let since_ms = since.saturating_duration_since(r.rec.origin).as_millis() as u64;
    r.ledger.event(LedgerEvent::QuorumLost { at_ms, since_ms });
    let seen = &held.value;
    r.rec.record(format!("etcd quorum lost: {seen}"));
    let mut detail = format!("quorum lost: {seen}");
    if let Some(measure) = measure {
        let lost = r.rec.measure(measure, since, &held);
        detail.push_str(&format!("; {measure}: {lost}"));
    }
    Ok(detail)
}
pub(super) async fn expect_ledger<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: Option<&NodeRef>,
    acknowledged: u64,
    within: Duration,
) -> StepResult {
    let through = node.map(|n| r.resolve(n)).transpose()?;
    let (prefix, run_id) = match &r.ledger.run {
        Some(l) => (l.spec.settings.prefix.clone(), l.run_id.clone()),
        None => return Err("the scenario runs no ledger".to_string().into()),
    };
    let ((at_ms, read), _) = {
        let Runner {
            cluster,
            observer,
            rec,
            ledger,
            ..
        } = &mut *r;
        let (cluster, observer) = (&**cluster, &*observer);
        let writer = &ledger
            .run
            .as_ref()
            .ok_or("the scenario runs no ledger")?
            .writer;
        let origin = rec.origin;
        // Writes made since the step began prove the cluster takes writes now.
        let since_ms = rec.elapsed_ms();
        let (through, prefix, run_id) = (through.as_deref(), &prefix, &run_id);
        poll_until(within, rec, || async move {
            let outcome = async {
                let fresh = writer
                    .records()
                    .iter()
                    .filter(|w| w.sent_ms >= since_ms && w.is_acknowledged())
                    .count() as u64;
                if fresh < acknowledged {
                    return Err(format!(
                        "{fresh} of {acknowledged} writes made since the step began acknowledged"
                    ));
                }
                let at_ms = origin.elapsed().as_millis() as u64;
                let read = read_any(observer, cluster, through, prefix, run_id).await?;
                Ok((at_ms, read))
            }
            .await;
            Poll {
                observation: Some((
                    "ledger read-back".to_string(),
                    match &outcome {
                        Ok((_, read)) => format!("read through {}", read.through),
                        Err(e) => e.clone(),
                    },
                )),
                outcome,
            }
        })
        .await?
    };
    let step = r.ledger.step.clone();
    let (keys, via) = (read.keys, read.through.clone());
    r.ledger.event(LedgerEvent::ReadBack {
        at_ms,
        through: read.through,
        step: step.clone(),
        final_read: false,
        present: read.present,
        mismatched: read.mismatched,
        foreign: read.foreign,
    });
    let history = r
        .ledger
        .history_so_far()
        .ok_or("the scenario runs no ledger")?;
    let verdict = check(&history);
    let mine: Vec<&String> = verdict
        .violations
        .iter()
        .filter(|v| v.starts_with(&format!("at `{step}`:")))
        .collect();
    let sum = |f: fn(&crate::ledger::PhaseCounts) -> u64| verdict.phases.iter().map(f).sum::<u64>();
    let counts = format!(
        "{} acknowledged writes kept, {} lost as tolerated, {} lost beyond tolerance",
        sum(|p| p.kept),
        sum(|p| p.lost_tolerated),
        sum(|p| p.lost)
    );
    r.rec
        .record(format!("ledger read back through {via}: {counts}"));
    if mine.is_empty() {
        Ok(format!("read {keys} ledger keys through {via}: {counts}"))
    } else {
        Err(mine
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join("; ")
            .into())
    }
}
