//! The write ledger's life within a run: started before the first step, told of members and
//! phases as they change, read back when a step asks and at the end, and judged by the pure
//! `ledger::check`.

use std::time::{Duration, SystemTime};

use futures::future::LocalBoxFuture;

use super::{CheckRow, Finding, RunMonitor, Stage, StopContext};
use crate::cluster::Cluster;
use crate::cluster_views::Observer;
use crate::ledger::history::HISTORY_VERSION;
use crate::ledger::writer::{Endpoint, LedgerWriter};
use crate::ledger::{check, History, LedgerEvent, LedgerRecord, LedgerVerdict, SeqSet};
use crate::probe::etcd::EtcdError;
use crate::provider::{Hosts, NodeView};
use crate::runner::{poll_until, Poll, Recorder};
use crate::service::ServiceKind;
use crate::spec::LedgerSpec;

/// How long the final read-back is retried (shorter when the run failed already).
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(30);
const FAILED_RUN_READ_DEADLINE: Duration = Duration::from_secs(5);
/// The phase of writes made before any step names one.
pub const FIRST_PHASE: &str = "start";

/// The ledger of a run while it writes.
pub struct LedgerRun {
    /// What the scenario asked for.
    pub spec: LedgerSpec,
    /// The writer.
    pub writer: LedgerWriter,
    events: Vec<LedgerEvent>,
    started_wall: String,
    scenario: String,
    /// The run's id (each write's value carries it).
    pub run_id: String,
}

/// The write ledger of a run, when its scenario runs one.
#[derive(Default)]
pub struct Ledger {
    /// The ledger while it writes.
    pub run: Option<LedgerRun>,
    /// The step running (read-backs are reported under its name).
    pub step: String,
    /// The ledger's history, once the run has ended.
    pub history: Option<History>,
    /// The ledger's verdict, once the run has ended.
    pub verdict: Option<LedgerVerdict>,
}

pub(super) fn endpoints<H: Hosts>(cluster: &Cluster<H>) -> Vec<Endpoint> {
    cluster
        .members(ServiceKind::Etcd)
        .into_iter()
        .map(|n| Endpoint {
            address: cluster.endpoint(&n, crate::base::ports::ETCD_CLIENT),
            node: n.short,
        })
        .collect()
}

impl Ledger {
    /// Starts the ledger writing (before the first step).
    pub fn start_ledger<H: Hosts>(
        &mut self,
        spec: &LedgerSpec,
        scenario: &str,
        cluster: &Cluster<H>,
        rec: &mut Recorder,
    ) {
        let origin_wall = SystemTime::now()
            .checked_sub(rec.origin.elapsed())
            .unwrap_or_else(SystemTime::now);
        let writer = LedgerWriter::start(
            spec.settings.clone(),
            cluster.run_id(),
            rec.origin,
            endpoints(cluster),
            FIRST_PHASE,
        );
        rec.record(format!(
            "ledger: writing a key under {} every {}",
            spec.settings.prefix,
            crate::base::time::human_ms(spec.settings.interval.as_millis() as u64)
        ));
        self.run = Some(LedgerRun {
            spec: spec.clone(),
            writer,
            events: vec![LedgerEvent::Phase {
                at_ms: rec.elapsed_ms(),
                name: FIRST_PHASE.to_string(),
            }],
            started_wall: humantime::format_rfc3339_millis(origin_wall).to_string(),
            scenario: scenario.to_string(),
            run_id: cluster.run_id().to_string(),
        });
    }

    /// Tells the ledger which members are live now.
    pub fn refresh<H: Hosts>(&self, cluster: &Cluster<H>) {
        if let Some(l) = &self.run {
            l.writer.set_endpoints(endpoints(cluster));
        }
    }

    /// Begins a phase.
    pub fn set_phase(&mut self, name: &str, at_ms: u64) {
        if let Some(l) = &mut self.run {
            l.writer.set_phase(name);
            l.events.push(LedgerEvent::Phase {
                at_ms,
                name: name.to_string(),
            });
        }
    }

    /// Records an event of the run in the ledger's history (a capture, a restore, a reset).
    pub fn event(&mut self, event: LedgerEvent) {
        if let Some(l) = &mut self.run {
            l.events.push(event);
        }
    }

    /// The history with these records.
    pub fn history_with(&self, records: Vec<LedgerRecord>) -> Option<History> {
        let l = self.run.as_ref()?;
        Some(History {
            version: HISTORY_VERSION,
            scenario: l.scenario.clone(),
            run_id: l.run_id.clone(),
            started_wall: l.started_wall.clone(),
            prefix: l.spec.settings.prefix.clone(),
            tolerate: l.spec.tolerate.clone(),
            records,
            events: l.events.clone(),
        })
    }

    /// The history so far, for a run that ended before the ledger was read back at the end.
    pub fn history_so_far(&self) -> Option<History> {
        let records = self.run.as_ref()?.writer.records();
        self.history_with(records)
    }
}

/// The name of the check the write ledger adds after the last step.
pub const LEDGER_CHECK: &str = "write ledger: no acknowledged write lost beyond what is tolerated";

impl<H: Hosts> RunMonitor<H> for Ledger {
    fn stage(&self) -> Stage {
        Stage::Judge
    }

    fn checks(&self) -> usize {
        usize::from(self.run.is_some())
    }

    /// Stops the ledger, reads it back, and judges it; nothing when the scenario runs no
    /// ledger.
    fn stop<'a>(&'a mut self, cx: StopContext<'a, H>) -> LocalBoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let Some((verdict, detail)) = self.finish(cx).await else {
                return Vec::new();
            };
            vec![
                Finding::Check(CheckRow {
                    name: LEDGER_CHECK.to_string(),
                    passed: verdict.pass,
                    detail,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                }),
                Finding::Ledger(verdict),
            ]
        })
    }
}

impl Ledger {
    async fn finish<H: Hosts>(
        &mut self,
        cx: StopContext<'_, H>,
    ) -> Option<(LedgerVerdict, String)> {
        let StopContext {
            cluster,
            observer,
            rec,
            run_failed,
        } = cx;
        let ledger = self.run.as_mut()?;
        let records = ledger.writer.stop().await;
        let prefix = ledger.spec.settings.prefix.clone();
        let run_id = ledger.run_id.clone();
        rec.record(format!(
            "ledger: stopped after {} writes; reading them back",
            records.len()
        ));
        let deadline = if run_failed {
            FAILED_RUN_READ_DEADLINE
        } else {
            FINAL_READ_DEADLINE
        };
        let at_ms = rec.elapsed_ms();
        let read = {
            let (prefix, run_id) = (&prefix, &run_id);
            poll_until(deadline, rec, || async move {
                let outcome = read_any(observer, cluster, None, prefix, run_id).await;
                Poll {
                    observation: Some((
                        "ledger read-back".to_string(),
                        match &outcome {
                            Ok(read) => format!("read through {}", read.through),
                            Err(e) => e.to_string(),
                        },
                    )),
                    outcome,
                }
            })
            .await
        };
        let event = match read {
            Ok((read, _)) => LedgerEvent::ReadBack {
                at_ms,
                through: read.through,
                step: "end of run".to_string(),
                final_read: true,
                present: read.present,
                mismatched: read.mismatched,
                foreign: read.foreign,
            },
            Err(error) => LedgerEvent::ReadFailed {
                at_ms,
                step: "end of run".to_string(),
                final_read: true,
                error: error.to_string(),
            },
        };
        self.event(event);
        let history = self.history_with(records)?;
        let verdict = check(&history);
        for s in &verdict.statements {
            rec.record(format!("ledger: {s}"));
        }
        let detail = if verdict.pass {
            verdict.summary()
        } else {
            format!("{}; {}", verdict.violations.join("; "), verdict.summary())
        };
        self.history = Some(history);
        self.verdict = Some(verdict.clone());
        Some((verdict, detail))
    }
}

/// What one read of the ledger found.
pub struct Read {
    /// The node read through.
    pub through: String,
    /// Keys under the prefix.
    pub keys: usize,
    /// The ledger writes present.
    pub present: SeqSet,
    /// Writes present with another value.
    pub mismatched: Vec<u64>,
    /// Keys under the prefix that are no ledger write.
    pub foreign: u64,
}

/// Why the ledger could not be read back: each member tried, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerUnread {
    /// Every member tried failed (in order).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Failed(Vec<EtcdError>),
    /// There was no live member to read through.
    #[error("no live etcd member to read through")]
    NoMember,
}

impl From<LedgerUnread> for String {
    fn from(e: LedgerUnread) -> Self {
        e.to_string()
    }
}

async fn read_ledger(
    observer: &Observer,
    node: &NodeView,
    url: &str,
    prefix: &str,
    run_id: &str,
) -> Result<Read, EtcdError> {
    let (_, kvs) = observer
        .etcd
        .range(url, prefix.as_bytes(), false, 0)
        .await?;
    let mut present = Vec::new();
    let mut mismatched = Vec::new();
    let mut foreign = 0;
    for (key, value) in &kvs {
        match History::seq_of(prefix, &String::from_utf8_lossy(key)) {
            Some(seq) => {
                present.push(seq);
                if value.as_slice() != History::value(run_id, seq).as_bytes() {
                    mismatched.push(seq);
                }
            }
            None => foreign += 1,
        }
    }
    Ok(Read {
        through: node.short.clone(),
        keys: kvs.len(),
        present: SeqSet::from_seqs(present),
        mismatched,
        foreign,
    })
}

/// Reads the ledger through `node`, or through the first live member that answers.
pub async fn read_any<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
    node: Option<&str>,
    prefix: &str,
    run_id: &str,
) -> Result<Read, LedgerUnread> {
    let candidates: Vec<NodeView> = match node {
        Some(fqdn) => cluster
            .nodes()
            .into_iter()
            .filter(|n| n.fqdn == fqdn)
            .collect(),
        None => cluster.members(ServiceKind::Etcd),
    };
    let mut errors = Vec::new();
    for n in &candidates {
        match read_ledger(observer, n, &cluster.etcd_url(n), prefix, run_id).await {
            Ok(read) => return Ok(read),
            Err(e) => errors.push(e),
        }
    }
    if candidates.is_empty() {
        return Err(LedgerUnread::NoMember);
    }
    Err(LedgerUnread::Failed(errors))
}
