//! The ledger's writer: a background task that puts one unique, sequence-numbered key every
//! interval through a live etcd member (rotating over them), each through a client of its own,
//! and records how every write ended.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::history::{FailureCause, History, LedgerRecord, Outcome};
use crate::probe::etcd;

/// How the ledger writes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WriterSettings {
    /// Key prefix of the harness's own.
    pub prefix: String,
    /// Time between writes.
    pub interval: Duration,
    /// How long one write may take before it counts as indeterminate.
    pub timeout: Duration,
}

/// A live etcd member the ledger may write through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its node's short name.
    pub node: String,
    /// Where the harness dials its etcd client port.
    pub address: SocketAddr,
}

struct Shared {
    origin: Instant,
    run_id: String,
    settings: WriterSettings,
    endpoints: Mutex<Vec<Endpoint>>,
    phase: Mutex<String>,
    records: Mutex<BTreeMap<u64, LedgerRecord>>,
}

impl Shared {
    fn ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// The running writer; dropping it stops the task at once.
pub struct LedgerWriter {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl LedgerWriter {
    /// Starts writing; times are ms after `origin` (the run's first step).
    pub fn start(
        settings: WriterSettings,
        run_id: &str,
        origin: Instant,
        endpoints: Vec<Endpoint>,
        phase: &str,
    ) -> Self {
        let shared = Arc::new(Shared {
            origin,
            run_id: run_id.to_string(),
            settings,
            endpoints: Mutex::new(endpoints),
            phase: Mutex::new(phase.to_string()),
            records: Mutex::new(BTreeMap::new()),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(write_loop(shared.clone(), stopped));
        Self {
            shared,
            stop,
            task: Some(task),
        }
    }

    /// Replaces the members written through (the runner calls this as members come and go).
    pub fn set_endpoints(&self, endpoints: Vec<Endpoint>) {
        *self
            .shared
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = endpoints;
    }

    /// Names the phase later writes belong to.
    pub fn set_phase(&self, phase: &str) {
        *self
            .shared
            .phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = phase.to_string();
    }

    /// The writes whose outcome is known so far, in sequence order.
    pub fn records(&self) -> Vec<LedgerRecord> {
        self.shared
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Stops writing, waits for the writes in flight to end (each is bounded by the write
    /// timeout), and returns every record.
    pub async fn stop(&mut self) -> Vec<LedgerRecord> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.records()
    }
}

impl Drop for LedgerWriter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn write_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inflight = JoinSet::new();
    let mut seq = 0u64;
    let mut turn = 0usize;
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tick.tick() => {}
        }
        while inflight.try_join_next().is_some() {}
        seq += 1;
        let endpoint = {
            let endpoints = shared
                .endpoints
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            turn = turn.wrapping_add(1);
            if endpoints.is_empty() {
                None
            } else {
                Some(endpoints[turn % endpoints.len()].clone())
            }
        };
        let phase = shared
            .phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        inflight.spawn(write_one(shared.clone(), seq, endpoint, phase));
    }
    while inflight.join_next().await.is_some() {}
}

async fn write_one(shared: Arc<Shared>, seq: u64, endpoint: Option<Endpoint>, phase: String) {
    let sent_ms = shared.ms();
    let outcome = match &endpoint {
        None => Outcome::Failed {
            cause: FailureCause::Unreachable,
            error: "no live etcd member to write through".to_string(),
        },
        Some(e) => put(&shared, seq, e.address).await,
    };
    let record = LedgerRecord {
        seq,
        phase,
        via: endpoint.map(|e| e.node).unwrap_or_default(),
        sent_ms,
        done_ms: shared.ms(),
        outcome,
    };
    shared
        .records
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(seq, record);
}

async fn put(shared: &Shared, seq: u64, socket: SocketAddr) -> Outcome {
    let timeout = shared.settings.timeout;
    let started = Instant::now();
    // A connection made first tells "never sent" (certainly failed) from "sent, no answer"
    // (indeterminate): the etcd client connects lazily and would blur the two.
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(socket)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Outcome::Failed {
                cause: FailureCause::Unreachable,
                error: format!("failed to connect to {socket}: {e}"),
            }
        }
        Err(_) => {
            return Outcome::Failed {
                cause: FailureCause::Unreachable,
                error: format!(
                    "failed to connect to {socket} within {} ms",
                    timeout.as_millis()
                ),
            }
        }
    }
    let remaining = timeout.saturating_sub(started.elapsed());
    let key = History::key(&shared.settings.prefix, seq);
    let value = History::value(&shared.run_id, seq);
    let attempt = async {
        // Require a leader: a member without one refuses at once ("etcdserver: no leader")
        // instead of holding the write until etcd's own timeout.
        let options = ConnectOptions::new()
            .with_require_leader(true)
            .with_connect_timeout(remaining)
            .with_timeout(remaining);
        let mut client = Client::connect([etcd::client_url(socket)], Some(options)).await?;
        client.put(key, value, None).await
    };
    match tokio::time::timeout(remaining, attempt).await {
        Ok(Ok(response)) => Outcome::Acknowledged {
            revision: response.header().map(|h| h.revision()).unwrap_or(0),
        },
        Ok(Err(e)) => classify(&e.to_string()),
        Err(_) => Outcome::Indeterminate {
            error: format!("no answer within {} ms", timeout.as_millis()),
        },
    }
}

/// What an error from a put means: certainly not applied, or not known.
pub fn classify(error: &str) -> Outcome {
    let lower = error.to_ascii_lowercase();
    let cause = if lower.contains("etcdserver: no leader") || lower.contains("proposal dropped") {
        Some(FailureCause::Leaderless)
    } else if lower.contains("tcp connect error")
        || lower.contains("error trying to connect")
        || lower.contains("connection refused")
    {
        Some(FailureCause::Unreachable)
    } else if lower.contains("etcdserver: not capable")
        || lower.contains("etcdserver: too many requests")
        || lower.contains("etcdserver: request is too large")
    {
        Some(FailureCause::Refused)
    } else {
        None
    };
    match cause {
        Some(cause) => Outcome::Failed {
            cause,
            error: error.to_string(),
        },
        // A timeout, a lost leader, a reset connection: the write may have been applied.
        None => Outcome::Indeterminate {
            error: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_that_prove_nothing_was_applied_count_as_failed() {
        let failed = |e: &str| match classify(e) {
            Outcome::Failed { cause, .. } => Some(cause),
            _ => None,
        };
        assert_eq!(
            failed("grpc request error: status: Unavailable, message: \"etcdserver: no leader\""),
            Some(FailureCause::Leaderless)
        );
        assert_eq!(
            failed("transport error: error trying to connect: tcp connect error: Connection refused (os error 111)"),
            Some(FailureCause::Unreachable)
        );
        assert_eq!(
            failed("etcdserver: too many requests"),
            Some(FailureCause::Refused)
        );
        assert_eq!(
            failed("grpc request error: etcdserver: request timed out"),
            None
        );
        assert_eq!(failed("etcdserver: leader changed"), None);
        assert_eq!(failed("connection reset by peer"), None);
    }
}
