//! The leader watch: every member of each watched service is asked who leads, and at which
//! term, at a fixed rate for the whole run, so "at most one leader per term" is judged on what
//! the servers said all along rather than on the moments an expectation happened to look.
//!
//! It runs on its own task with the members' endpoints taken when it starts (a node keeps its
//! address through faults and replacements), so the steps keep the cluster to themselves.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use tokio::sync::watch;

use super::{CheckRow, Finding, RunMonitor, Stage, StopContext};

use crate::cluster::Cluster;
use crate::invariants::{LeaderClaim, WatchEvidence};
use crate::probe::answer::{NoAnswer, Silence};
use crate::probe::zookeeper::{four_letter, parse_srvr, Mode};
use crate::provider::Hosts;
use crate::service::ServiceKind;

/// Time between rounds.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// How long one member may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(800);

/// What a term check needs: a round at least every two seconds (a round waits for the slowest
/// member, which may be one a fault made silent), and a round per second of run on average.
pub fn evidence(run_ms: u64) -> WatchEvidence {
    WatchEvidence {
        min_rounds: (run_ms / 1000).max(3) as usize,
        max_gap_ms: 2000,
    }
}

#[derive(Default)]
struct Seen {
    claims: Vec<LeaderClaim>,
    rounds: BTreeMap<ServiceKind, Vec<u64>>,
    /// etcd member ids to nodes, learnt from each member's own answer.
    etcd_ids: BTreeMap<u64, String>,
    /// etcd claims by leader id, resolved to nodes when the watch ends.
    etcd_pending: Vec<(u64, LeaderClaim)>,
}

/// A running leader watch.
pub struct LeaderWatch {
    seen: Arc<Mutex<Seen>>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    services: Vec<ServiceKind>,
}

/// What the watch recorded.
pub struct Watched {
    /// Every claim, in time order.
    pub claims: Vec<LeaderClaim>,
    /// When each round a majority of a service's members answered ended, ms after the origin.
    pub rounds: BTreeMap<ServiceKind, Vec<u64>>,
    /// The services watched.
    pub services: Vec<ServiceKind>,
}

impl LeaderWatch {
    /// Starts watching `services` (etcd and ZooKeeper have terms; others are ignored).
    pub fn start<H: Hosts>(
        cluster: &Cluster<H>,
        services: &[ServiceKind],
        origin: Instant,
    ) -> Self {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let services: Vec<ServiceKind> = services
            .iter()
            .copied()
            .filter(|s| matches!(s, ServiceKind::Etcd | ServiceKind::Zookeeper))
            .collect();
        for &service in &services {
            let port = match service {
                ServiceKind::Etcd => crate::base::ports::ETCD_CLIENT,
                _ => crate::base::ports::ZOOKEEPER_CLIENT,
            };
            let members: Vec<(String, SocketAddr)> = cluster
                .topology()
                .nodes_running(service)
                .into_iter()
                .filter_map(|spec| cluster.node(&spec.fqdn))
                .map(|n| (n.fqdn.clone(), cluster.endpoint(&n, port)))
                .collect();
            let seen = seen.clone();
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let http = crate::probe::masters::http_client(ANSWER_TIMEOUT);
                let mut ticker = tokio::time::interval(WATCH_INTERVAL);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stopped.changed() => break,
                    }
                    round(service, &members, &http, &seen, origin).await;
                }
            }));
        }
        Self {
            seen,
            stop,
            tasks,
            services,
        }
    }

    /// Stops the watch and hands over what it saw.
    pub async fn finish(&mut self) -> Watched {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        let mut seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()));
        for (id, mut claim) in std::mem::take(&mut seen.etcd_pending) {
            // A leader id no member ever answered for is still one distinct leader.
            claim.leader = seen
                .etcd_ids
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("etcd member {id:x}"));
            seen.claims.push(claim);
        }
        seen.claims.sort_by_key(|c| c.at_ms);
        Watched {
            claims: seen.claims,
            rounds: seen.rounds,
            services: self.services.clone(),
        }
    }
}

/// The name of the check that at most one leader led at each term of a service.
pub fn one_leader_per_term_check(service: ServiceKind) -> String {
    format!(
        "at most one {service} leader per {}",
        crate::invariants::term_word(service)
    )
}

impl<H: Hosts> RunMonitor<H> for LeaderWatch {
    fn stage(&self) -> Stage {
        Stage::Judge
    }

    fn checks(&self) -> usize {
        self.services.len()
    }

    fn stop<'a>(&'a mut self, cx: StopContext<'a, H>) -> LocalBoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let watched = self.finish().await;
            let run_ms = cx.rec.elapsed_ms();
            watched
                .services
                .iter()
                .map(|service| {
                    let rounds = watched.rounds.get(service).cloned().unwrap_or_default();
                    let verdict = crate::invariants::one_leader_per_term(
                        *service,
                        &watched.claims,
                        &rounds,
                        run_ms,
                        evidence(run_ms),
                    );
                    Finding::Check(CheckRow {
                        name: one_leader_per_term_check(*service),
                        passed: verdict.is_ok(),
                        detail: verdict.unwrap_or_else(|e| e),
                        elapsed_ms: 0,
                    })
                })
                .collect()
        })
    }
}

/// What one member answered in a round: its id (etcd), and the leader and term it names, if
/// any (a ZooKeeper server names only itself, when it leads).
struct Answer<'a> {
    node: &'a String,
    at_ms: u64,
    own_id: u64,
    named: Option<(u64, u64)>,
}

async fn round(
    service: ServiceKind,
    members: &[(String, SocketAddr)],
    http: &reqwest::Client,
    seen: &Mutex<Seen>,
    origin: Instant,
) {
    // Each member: its answer, or whether it refused the connection (nothing listens there:
    // it leads nothing, which is evidence too), or silence.
    let answers = futures::future::join_all(members.iter().map(|(node, addr)| async move {
        let at_ms = origin.elapsed().as_millis() as u64;
        let refused = |e: &NoAnswer| e.silence == Silence::Refused;
        match service {
            ServiceKind::Etcd => match crate::probe::etcd::raft_status(http, *addr).await {
                Ok(raft) => (
                    Some(Answer {
                        node,
                        at_ms,
                        own_id: raft.id,
                        named: (raft.lead != 0).then_some((raft.lead, raft.term)),
                    }),
                    false,
                ),
                Err(e) => (None, refused(&e)),
            },
            _ => {
                let reply = match four_letter(*addr, "srvr", ANSWER_TIMEOUT).await {
                    Ok(reply) => reply,
                    Err(e) => return (None, refused(&e)),
                };
                let Ok(srvr) = parse_srvr(&reply) else {
                    return (None, false);
                };
                let named = match (srvr.mode, srvr.zxid) {
                    // The epoch is the zxid's high half; a leader serves only once it is set.
                    (Mode::Leader, Some(zxid)) => Some((0, zxid >> 32)),
                    _ => None,
                };
                (
                    Some(Answer {
                        node,
                        at_ms,
                        own_id: 0,
                        named,
                    }),
                    false,
                )
            }
        }
    }))
    .await;
    let end_ms = origin.elapsed().as_millis() as u64;
    let refused = answers.iter().filter(|(_, refused)| *refused).count();
    let answered: Vec<Answer> = answers.into_iter().filter_map(|(a, _)| a).collect();
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    if crate::invariants::round_counts(answered.len() + refused, members.len()) {
        seen.rounds.entry(service).or_default().push(end_ms);
    }
    for a in answered {
        let Some((leader_id, term)) = a.named else {
            if service == ServiceKind::Etcd {
                seen.etcd_ids.insert(a.own_id, a.node.clone());
            }
            continue;
        };
        let claim = LeaderClaim {
            at_ms: a.at_ms,
            service,
            leader: a.node.clone(),
            term,
            seen_by: a.node.clone(),
        };
        match service {
            ServiceKind::Etcd => {
                seen.etcd_ids.insert(a.own_id, a.node.clone());
                seen.etcd_pending.push((leader_id, claim));
            }
            _ => seen.claims.push(claim),
        }
    }
}
