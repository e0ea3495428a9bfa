//! Faults that must be undone — packet filters between nodes, paused and killed service
//! processes — made, verified and healed here, below the run loop: a fault is verified to have
//! taken effect before the run goes on and verified gone when healed; whatever is still in
//! effect when the steps end is healed then, whatever failed (the runner calls
//! [`Faults::heal_all`]).
//!
//! Network faults are filters on the receiving node (`iptables -j DROP` on INPUT), so the
//! sender's packets leave it and vanish, as in a real partition: a sender learns of it only by
//! its own timeouts. The effect is checked by a TCP connection attempt to a closed port on the
//! receiver: a reachable node answers with a reset ("connection refused") at once; a cut-off
//! one answers nothing.

mod delays;
mod disks;
mod error;
mod filters;
mod processes;

pub use delays::DelaySpec;
pub use error::FaultError;
pub use filters::reaches;

use std::time::Duration;

use serde::Serialize;

use crate::base::names::short;
use crate::cluster::Cluster;
use crate::provider::Hosts;
use crate::service::ServiceKind;

/// How long a killed process may take to be reported gone, or a pause to show.
const SIGNAL_DEADLINE: Duration = Duration::from_secs(5);
/// How long random loss may take to drop its first packet before it counts as ineffective.
const LOSS_DEADLINE: Duration = Duration::from_secs(10);
/// Time between two looks while verifying a fault.
const VERIFY_INTERVAL: Duration = Duration::from_millis(50);

/// A fault in effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "fault")]
pub enum ActiveFault {
    /// Packets from `from` to `to` are dropped (by `to`), with this probability (1 = all).
    Dropped {
        /// Sender's full name.
        from: String,
        /// Receiver's full name.
        to: String,
        /// Share of packets dropped.
        probability: f64,
    },
    /// A service's process is stopped (SIGSTOP).
    Paused {
        /// Node.
        node: String,
        /// Service.
        service: ServiceKind,
    },
    /// A service's process was killed (SIGKILL); healing starts it again.
    Killed {
        /// Node.
        node: String,
        /// Service.
        service: ServiceKind,
    },
    /// Packets a node sends (to `peer`, or to every other host) are held for a delay by a
    /// delay queue on the node.
    Delayed {
        /// The sending node.
        node: String,
        /// The peer, when only the traffic to it is delayed.
        peer: Option<String>,
        /// The delay.
        delay_ms: u64,
        /// Up to this much more, per packet.
        jitter_ms: u64,
        /// The queue's cap.
        max_packets: u32,
        /// The NFQUEUE number.
        queue: u16,
        /// The delay queue's process.
        process: crate::provider::ProcessId,
        /// The node the delay was verified against (its heal is verified against it too);
        /// none when no peer answered.
        measured: Option<String>,
    },
    /// A service's faulty disk answers fsync (and writes) late.
    SlowDisk {
        /// Node.
        node: String,
        /// Service.
        service: ServiceKind,
        /// Added to every fsync.
        fsync_ms: u64,
        /// Added to every write.
        write_ms: u64,
    },
}

impl ActiveFault {
    /// One line for reports.
    pub fn describe(&self) -> String {
        match self {
            ActiveFault::Dropped {
                from,
                to,
                probability,
            } if *probability >= 1.0 => format!("{} cannot reach {}", short(from), short(to)),
            ActiveFault::Dropped {
                from,
                to,
                probability,
            } => format!(
                "{:.0}% of packets from {} to {} lost",
                probability * 100.0,
                short(from),
                short(to)
            ),
            ActiveFault::Paused { node, service } => format!("{service} paused on {}", short(node)),
            ActiveFault::Killed { node, service } => format!("{service} killed on {}", short(node)),
            ActiveFault::Delayed {
                node,
                peer,
                delay_ms,
                jitter_ms,
                ..
            } => {
                let jitter = if *jitter_ms > 0 {
                    format!(" (+0–{jitter_ms} ms)")
                } else {
                    String::new()
                };
                match peer {
                    Some(p) => format!(
                        "packets from {} to {} delayed {delay_ms} ms{jitter}",
                        short(node),
                        short(p)
                    ),
                    None => format!("packets from {} delayed {delay_ms} ms{jitter}", short(node)),
                }
            }
            ActiveFault::SlowDisk {
                node,
                service,
                fsync_ms,
                write_ms,
            } => {
                let writes = if *write_ms > 0 {
                    format!(", writes {write_ms} ms")
                } else {
                    String::new()
                };
                format!(
                    "{service}'s disk on {} slow (fsync {fsync_ms} ms{writes})",
                    short(node)
                )
            }
        }
    }

    /// The node whose process this fault stopped or killed, for `service`.
    pub fn process_of(&self, service: ServiceKind) -> Option<&str> {
        match self {
            ActiveFault::Paused { node, service: s } | ActiveFault::Killed { node, service: s }
                if *s == service =>
            {
                Some(node)
            }
            _ => None,
        }
    }
}

/// The faults a run has made and not yet healed.
#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<ActiveFault>,
    /// Delay queues started so far (each gets its own NFQUEUE number).
    queues: u16,
}

impl Faults {
    /// Every fault in effect, in the order made.
    pub fn active(&self) -> &[ActiveFault] {
        &self.active
    }

    /// Whether none is in effect.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Stops a service's process with SIGSTOP and verifies the kernel shows it stopped.
    pub async fn pause<H: Hosts>(
        &mut self,
        cluster: &mut Cluster<H>,
        node: &str,
        service: ServiceKind,
    ) -> Result<String, FaultError> {
        processes::pause(self, cluster, node, service).await
    }

    /// Kills a service's process with SIGKILL and verifies it is gone.
    pub async fn kill<H: Hosts>(
        &mut self,
        cluster: &mut Cluster<H>,
        node: &str,
        service: ServiceKind,
    ) -> Result<String, FaultError> {
        processes::kill(self, cluster, node, service).await
    }

    /// Crashes a service and starts it again on the same data, as after a process crash or a
    /// power loss with the disk intact: SIGKILL, verified gone, then started again. The kill is
    /// a fault in effect until the start succeeds, so a failed start is healed with the rest.
    pub async fn crash_restart<H: Hosts>(
        &mut self,
        cluster: &mut Cluster<H>,
        node: &str,
        service: ServiceKind,
    ) -> Result<String, FaultError> {
        let killed = processes::kill(self, cluster, node, service).await?;
        let fault = ActiveFault::Killed {
            node: node.to_string(),
            service,
        };
        processes::heal(cluster, &fault).await?;
        self.forget(&fault);
        Ok(format!("{killed}, then started again on its data"))
    }

    /// Resumes a paused service (SIGCONT) and verifies it runs again. Whether it is paused is
    /// read from the process itself, not from this run's records: a service paused by hand (an
    /// `exec`, an operator's script) is resumed too, and one that runs is an error, not a
    /// quiet success.
    pub async fn resume<H: Hosts>(
        &mut self,
        cluster: &mut Cluster<H>,
        node: &str,
        service: ServiceKind,
    ) -> Result<String, FaultError> {
        processes::resume(self, cluster, node, service).await
    }

    /// Drops packets on each `(from, to)` link (all of them at probability 1), and verifies
    /// it: a full cut must leave `from` unable to reach `to`; random loss must drop a packet of
    /// the cluster's own traffic within a deadline. Every filter is in place before any is
    /// verified, and the links are verified together.
    pub async fn drop_packets<H: Hosts>(
        &mut self,
        cluster: &Cluster<H>,
        links: &[(String, String)],
        probability: f64,
    ) -> Result<String, FaultError> {
        filters::drop_packets(self, cluster, links, probability).await
    }

    /// Delays the packets each `(node, peer)` sends (to every other host when `peer` is None)
    /// and verifies each delay in the connect time measured on the node.
    pub async fn delay<H: Hosts>(
        &mut self,
        cluster: &mut Cluster<H>,
        links: &[(String, Option<String>)],
        spec: DelaySpec,
    ) -> Result<String, FaultError> {
        delays::delay(self, cluster, links, spec).await
    }

    /// Slows a service's faulty disk on a node and verifies a timed fsync shows it.
    pub async fn slow_disk<H: Hosts>(
        &mut self,
        cluster: &mut Cluster<H>,
        node: &str,
        service: ServiceKind,
        latencies: crate::node_tools::faultfs::Latencies,
    ) -> Result<String, FaultError> {
        disks::slow(self, cluster, node, service, latencies).await
    }

    /// Cuts the power under a service on some nodes at once: killed, their disks' unsynced
    /// writes dropped, started again on what remains (or left down when `restart` is false).
    pub async fn lose_power<H: Hosts>(
        &mut self,
        cluster: &mut Cluster<H>,
        nodes: &[String],
        service: ServiceKind,
        restart: bool,
    ) -> Result<String, FaultError> {
        disks::lose_power(self, cluster, nodes, service, restart).await
    }

    /// The NFQUEUE number for the next delay queue.
    fn next_queue(&mut self) -> u16 {
        self.queues = self.queues.wrapping_add(1);
        delays::FIRST_QUEUE + self.queues
    }

    /// A service was started (a step, by hand): a kill of it is no longer in effect.
    pub fn started(&mut self, node: &str, service: ServiceKind) {
        self.forget(&ActiveFault::Killed {
            node: node.to_string(),
            service,
        });
    }

    /// Forgets a slow disk on a node (its latency went with a power loss).
    fn forget_disk(&mut self, node: &str, service: ServiceKind) {
        self.active.retain(|f| {
            !matches!(f, ActiveFault::SlowDisk { node: n, service: s, .. } if n == node && *s == service)
        });
    }

    /// Heals every fault in effect, network first (so a restarted service finds its peers),
    /// and verifies each; returns what was healed, or every heal that failed.
    pub async fn heal_all<H: Hosts>(
        &mut self,
        cluster: &mut Cluster<H>,
    ) -> Result<Vec<String>, FaultError> {
        let faults = std::mem::take(&mut self.active);
        let mut healed = Vec::new();
        let mut problems = Vec::new();
        let mut reopened = Vec::new();
        let mut delays_removed = Vec::new();
        for fault in faults
            .iter()
            .filter(|f| matches!(f, ActiveFault::Delayed { .. }))
        {
            match delays::remove(cluster, fault).await {
                Ok((line, link)) => {
                    healed.push(line);
                    delays_removed.extend(link);
                }
                Err(e) => problems.push(format!("{}: {e}", fault.describe())),
            }
        }
        for fault in &faults {
            if let ActiveFault::Dropped {
                from,
                to,
                probability,
            } = fault
            {
                match filters::remove_filter(cluster, from, to, *probability).await {
                    Ok(link) => {
                        reopened.extend(link);
                        healed.push(fault.describe());
                    }
                    Err(e) => problems.push(format!("{}: {e}", fault.describe())),
                }
            }
        }
        reopened.sort();
        reopened.dedup();
        let shared = &*cluster;
        let checks = futures::future::join_all(
            reopened
                .iter()
                .map(|(from, to)| filters::expect_reach(shared, from, to, true)),
        )
        .await;
        problems.extend(
            checks
                .into_iter()
                .filter_map(Result::err)
                .map(|e| e.to_string()),
        );
        // Every delay is gone before any is verified gone: a delay on the way back would
        // still slow a link whose own delay was removed.
        for link in &delays_removed {
            if let Err(e) = delays::expect_fallen_back(shared, link).await {
                problems.push(e.to_string());
            }
        }
        for fault in faults
            .iter()
            .filter(|f| matches!(f, ActiveFault::SlowDisk { .. }))
        {
            match disks::heal_slow(cluster, fault).await {
                Ok(()) => healed.push(fault.describe()),
                Err(e) => problems.push(format!("{}: {e}", fault.describe())),
            }
        }
        for fault in faults
            .iter()
            .filter(|f| matches!(f, ActiveFault::Paused { .. } | ActiveFault::Killed { .. }))
        {
            match processes::heal(cluster, fault).await {
                Ok(()) => healed.push(fault.describe()),
                Err(e) => problems.push(format!("{}: {e}", fault.describe())),
            }
        }
        if problems.is_empty() {
            Ok(healed)
        } else {
            Err(FaultError::Several(problems))
        }
    }

    /// Records a fault as in effect (before it is verified, so it is healed even when the
    /// verification fails).
    fn push(&mut self, fault: ActiveFault) {
        self.active.push(fault);
    }

    /// Forgets a fault, if it is recorded; true when it was.
    fn forget(&mut self, fault: &ActiveFault) -> bool {
        match self.active.iter().position(|f| f == fault) {
            Some(at) => {
                self.active.remove(at);
                true
            }
            None => false,
        }
    }
}

/// A command line from its words.
fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}
