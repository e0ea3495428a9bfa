//! The availability monitor: requests through the border at a fixed rate for the whole
//! scenario, every outcome recorded with its time. Each target has its own ticker and every
//! request runs on its own, so a hanging request never slows the rate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use tokio::sync::watch;

use super::{Finding, RunMonitor, Stage, StopContext};

use crate::availability::Sample;
use crate::cluster::Cluster;
use crate::provider::Hosts;
use crate::service::ServiceKind;

/// One thing to probe.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name in checks and reports.
    pub name: String,
    /// The URL requested.
    pub url: String,
    /// The status that counts as available.
    pub expect: u16,
}

/// A running availability monitor.
pub struct AvailabilityMonitor {
    samples: Arc<Mutex<Vec<Sample>>>,
    /// Requests sent and not yet recorded: awaited when the monitor finishes, so a request in
    /// flight when the steps end still counts.
    in_flight: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    stop: watch::Sender<bool>,
    timeout: Duration,
    targets: Vec<Target>,
    client: reqwest::Client,
    origin: Instant,
}

impl AvailabilityMonitor {
    /// Starts probing every target every `interval`; times are ms after `origin`.
    pub fn start(
        targets: Vec<Target>,
        interval: Duration,
        timeout: Duration,
        origin: Instant,
    ) -> Self {
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let in_flight: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let client = crate::probe::masters::http_client(timeout);
        for target in targets.clone() {
            let samples = samples.clone();
            let in_flight = in_flight.clone();
            let mut stopped = stopped.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    let request = send(&client, &target, origin, &samples);
                    if let Ok(mut pending) = in_flight.lock() {
                        pending.retain(|h| !h.is_finished());
                        pending.push(request);
                    }
                }
            });
        }
        Self {
            samples,
            in_flight,
            stop,
            timeout,
            targets,
            client,
            origin,
        }
    }

    /// Stops the tickers, sends one closing request to every target (so the state the steps
    /// left behind is observed, however short the last step), waits for every request in
    /// flight to be answered or time out, and returns every sample, in time order.
    pub async fn finish(&self) -> Vec<Sample> {
        let _ = self.stop.send(true);
        let mut pending: Vec<tokio::task::JoinHandle<()>> = self
            .in_flight
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        for target in &self.targets {
            pending.push(send(&self.client, target, self.origin, &self.samples));
        }
        // Each request ends by its own timeout; the bound only guards against a stuck task.
        let _ = tokio::time::timeout(
            self.timeout + Duration::from_secs(1),
            futures::future::join_all(pending),
        )
        .await;
        let mut samples = self
            .samples
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        samples.sort_by(|a, b| (a.at_ms, &a.target).cmp(&(b.at_ms, &b.target)));
        samples
    }
}

impl<H: Hosts> RunMonitor<H> for AvailabilityMonitor {
    fn stage(&self) -> Stage {
        Stage::Sample
    }

    fn checks(&self) -> usize {
        0
    }

    fn stop<'a>(&'a mut self, _cx: StopContext<'a, H>) -> LocalBoxFuture<'a, Vec<Finding>> {
        Box::pin(async move { vec![Finding::Samples(self.finish().await)] })
    }
}

/// Sends one request to a target on its own task, which records the outcome as a sample.
fn send(
    client: &reqwest::Client,
    target: &Target,
    origin: Instant,
    samples: &Arc<Mutex<Vec<Sample>>>,
) -> tokio::task::JoinHandle<()> {
    let samples = samples.clone();
    let client = client.clone();
    let target = target.clone();
    tokio::spawn(async move {
        let sent = Instant::now();
        let result = client.get(&target.url).send().await;
        let (ok, outcome) = match result {
            Ok(r) => (
                r.status().as_u16() == target.expect,
                r.status().as_u16().to_string(),
            ),
            Err(e) => (false, describe_error(&e)),
        };
        let sample = Sample {
            target: target.name.clone(),
            at_ms: sent.saturating_duration_since(origin).as_millis() as u64,
            ok,
            latency_ms: sent.elapsed().as_millis() as u64,
            outcome,
        };
        if let Ok(mut all) = samples.lock() {
            all.push(sample);
        }
    })
}

fn describe_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        format!("request failed: {e}")
    }
}

/// What the availability monitor probes: through the border's ingress, each tier it fronts.
pub(crate) fn targets<H: Hosts>(cluster: &Cluster<H>) -> Vec<Target> {
    let Some(border) = cluster.members(ServiceKind::Ingress).into_iter().next() else {
        return Vec::new();
    };
    let topology = cluster.topology();
    let mut targets = Vec::new();
    let mut add = |name: &str, kind: ServiceKind, port: u16, path: &str, expect: u16| {
        if !topology.nodes_running(kind).is_empty() {
            targets.push(Target {
                name: name.to_string(),
                url: format!("http://{}{path}", cluster.endpoint(&border, port)),
                expect,
            });
        }
    };
    add(
        "app",
        ServiceKind::App,
        crate::base::ports::INGRESS_APP,
        "/",
        200,
    );
    add(
        "mesos",
        ServiceKind::MesosMaster,
        crate::base::ports::MESOS,
        "/redirect",
        307,
    );
    add(
        "marathon",
        ServiceKind::Marathon,
        crate::base::ports::MARATHON,
        "/v2/leader",
        200,
    );
    targets
}
