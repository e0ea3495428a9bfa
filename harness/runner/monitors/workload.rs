//! The consistency workload's life within a run: its etcd clients (when the topology runs
//! etcd) and ZooKeeper sessions (when it runs ZooKeeper) start before the first step, record
//! all run long, stop after the steps and the final heal, and the history they made is judged
//! by every checker (`workload::judge`).

use futures::future::LocalBoxFuture;

use super::{Finding, RunMonitor, Stage, StopContext};
use crate::base::time::human_ms;
use crate::cluster::Cluster;
use crate::provider::Hosts;
use crate::runner::Recorder;
use crate::service::ServiceKind;
use crate::spec::WorkloadSettings;
use crate::workload::clients::{NotStarted, Workload};
use crate::workload::history::{OpOutcome, ZkRecord, WORKLOAD_VERSION};
use crate::workload::judge::{Breach, CheckerResult};
use crate::workload::zookeeper::{ZkNotStarted, ZkServer, ZkWorkload};
use crate::workload::{judge, CheckerStatus, WorkloadHistory};

/// The workload of a run.
pub struct WorkloadMonitor {
    settings: WorkloadSettings,
    etcd: Option<Result<Workload, NotStarted>>,
    zookeeper: Option<Result<ZkWorkload, ZkNotStarted>>,
    scenario: String,
    run_id: String,
}

fn zk_servers<H: Hosts>(cluster: &Cluster<H>) -> Vec<ZkServer> {
    cluster
        .members(ServiceKind::Zookeeper)
        .into_iter()
        .map(|n| ZkServer {
            address: cluster.endpoint(&n, crate::base::ports::ZOOKEEPER_CLIENT),
            node: n.short,
        })
        .collect()
}

impl WorkloadMonitor {
    /// Starts the clients on the live etcd members and the sessions on the live ZooKeeper
    /// servers, for whichever of the two the topology runs.
    pub async fn start<H: Hosts>(
        settings: &WorkloadSettings,
        scenario: &str,
        cluster: &Cluster<H>,
        rec: &mut Recorder,
    ) -> Self {
        let every = human_ms(settings.interval.as_millis() as u64);
        let members = super::ledger::endpoints(cluster);
        let etcd = if members.is_empty() {
            None
        } else {
            let names: Vec<&str> = members.iter().map(|m| m.node.as_str()).collect();
            rec.record(format!(
                "workload: {} etcd clients on {} ({} keys under {}, an operation each every {every}{})",
                settings.clients,
                names.join(", "),
                settings.keys,
                settings.prefix,
                if settings.watch {
                    ", each watching the prefix"
                } else {
                    ""
                }
            ));
            let started = Workload::start(
                settings.clone(),
                rec.origin,
                members,
                crate::rng::fresh_seed(),
            )
            .await;
            if let Err(e) = &started {
                rec.record(format!("workload: {e}"));
            }
            Some(started)
        };
        let servers = zk_servers(cluster);
        let zookeeper = if servers.is_empty() {
            None
        } else {
            let names: Vec<&str> = servers.iter().map(|s| s.node.as_str()).collect();
            let readers = match settings.zookeeper_readers {
                0 => String::new(),
                n => format!(", and {n} sessions that only read, without sync"),
            };
            rec.record(format!(
                "workload: {} ZooKeeper sessions on {} (under {}, an operation each every {every}){readers}",
                settings.clients,
                names.join(", "),
                crate::workload::zookeeper::ZK_BASE
            ));
            let started = ZkWorkload::start(
                servers,
                settings.clients,
                settings.zookeeper_readers,
                settings.interval,
                settings.timeout,
                rec.origin,
                crate::rng::fresh_seed(),
            )
            .await;
            if let Err(e) = &started {
                rec.record(format!("workload: {e}"));
            }
            Some(started)
        };
        Self {
            settings: settings.clone(),
            etcd,
            zookeeper,
            scenario: scenario.to_string(),
            run_id: cluster.run_id().to_string(),
        }
    }

    async fn finish(&mut self, rec: &mut Recorder) -> Finding {
        let mut unstarted = Vec::new();
        let mut history = WorkloadHistory {
            version: WORKLOAD_VERSION,
            scenario: self.scenario.clone(),
            run_id: self.run_id.clone(),
            settings: self.settings.clone(),
            start_revision: 0,
            operations: Vec::new(),
            watches: Vec::new(),
            etcd: false,
            zookeeper: None,
        };
        match &mut self.etcd {
            Some(Ok(workload)) => {
                history.start_revision = workload.start_revision;
                let (operations, watches, catch_up) = workload.stop().await;
                rec.record(format!("workload: {catch_up}"));
                let count =
                    |f: fn(&OpOutcome) -> bool| operations.iter().filter(|o| f(&o.outcome)).count();
                rec.record(format!(
                    "workload: etcd clients stopped after {} operations ({} answered, {} refused, {} of unknown outcome) and {} watch events",
                    operations.len(),
                    count(|o| matches!(o, OpOutcome::Ok { .. })),
                    count(|o| matches!(o, OpOutcome::Failed { .. })),
                    count(|o| matches!(o, OpOutcome::Indeterminate { .. })),
                    watches.iter().flat_map(|w| &w.segments).map(|s| s.events.len()).sum::<usize>(),
                ));
                history.etcd = true;
                history.operations = operations;
                history.watches = watches;
            }
            Some(Err(e)) => unstarted.extend(unknown(
                &["linearizable", "serializable reads"],
                &e.to_string(),
            )),
            None => {}
        }
        match &mut self.zookeeper {
            Some(Ok(workload)) => {
                let (operations, present) = workload.stop().await;
                rec.record(format!(
                    "workload: ZooKeeper sessions stopped after {} operations ({} acknowledged); {}",
                    operations.len(),
                    operations.iter().filter(|o| o.acknowledged.is_some()).count(),
                    match &present {
                        Some(p) => format!("{} znodes listed", p.len()),
                        None => "the znodes could not be listed".to_string(),
                    }
                ));
                history.zookeeper = Some(ZkRecord {
                    operations,
                    present,
                });
            }
            Some(Err(e)) => unstarted.extend(unknown(&["zookeeper"], &e.to_string())),
            None => {}
        }
        let recorded = history.etcd || history.zookeeper.is_some();
        let mut verdict = judge(&history, crate::workload::DEFAULT_SEARCH_BUDGET);
        verdict.checks.extend(unstarted);
        for c in &verdict.checks {
            rec.record(format!(
                "consistency: {} {} — {}",
                c.checker,
                c.status.word(),
                c.detail
            ));
            for b in c.breaches.iter().take(20) {
                rec.record(format!("consistency: {}", b.what));
            }
        }
        Finding::Consistency {
            verdict,
            history: recorded.then(|| Box::new(history)),
        }
    }
}

/// These checkers unknown: the part of the workload they judge recorded nothing.
fn unknown(checkers: &[&str], why: &str) -> Vec<CheckerResult> {
    checkers
        .iter()
        .map(|checker| CheckerResult {
            checker: checker.to_string(),
            status: CheckerStatus::Unknown,
            operations: 0,
            states: 0,
            elapsed_ms: 0,
            detail: why.to_string(),
            breaches: Vec::<Breach>::new(),
        })
        .collect()
}

impl<H: Hosts> RunMonitor<H> for WorkloadMonitor {
    fn stage(&self) -> Stage {
        Stage::Judge
    }

    fn checks(&self) -> usize {
        0
    }

    fn stop<'a>(&'a mut self, cx: StopContext<'a, H>) -> LocalBoxFuture<'a, Vec<Finding>> {
        Box::pin(async move { vec![self.finish(cx.rec).await] })
    }
}
