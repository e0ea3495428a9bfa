//! Faults that must be undone — packet filters between nodes, paused and killed service
//! processes — made, verified and healed here. A fault is verified to have taken effect before
//! the run goes on and verified gone when healed; whatever is still in effect when the steps
//! end is healed then, whatever failed (`Runner::run` calls [`heal_all`]).
//!
//! Network faults are filters on the receiving node (`iptables -j DROP` on INPUT), so the
//! sender's packets leave it and vanish, as in a real partition: a sender learns of it only by
//! its own timeouts. The effect is checked by a TCP connection attempt to a closed port on the
//! receiver: a reachable node answers with a reset ("connection refused") at once; a cut-off
//! one answers nothing.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::Runner;
use crate::provider::{Hosts, ProcessId, ProcessState, Signal};
use crate::service::ServiceKind;

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
}

impl ActiveFault {
    /// One line for reports.
    pub fn describe(&self) -> String {
        let short = crate::base::names::short;
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
        }
    }
}

/// How long a connection attempt may take before the peer counts as unreachable.
const REACH_TIMEOUT: &str = "1";
/// A port nothing listens on: a reachable node refuses it at once.
const CLOSED_PORT: u16 = 1;
/// How long a killed process may take to be reported gone, or a pause to show.
const SIGNAL_DEADLINE: Duration = Duration::from_secs(5);
/// How long random loss may take to drop its first packet before it counts as ineffective.
const LOSS_DEADLINE: Duration = Duration::from_secs(10);

/// The comment every filter rule of the harness carries, so a rule is found and removed by
/// exactly what added it.
fn rule_comment(from: &str) -> String {
    format!("succession-drop-from-{}", crate::base::names::short(from))
}

fn filter_rule(action: &str, from_addr: &str, from: &str, probability: f64) -> Vec<String> {
    let mut words = argv(&["iptables", "-w", action, "INPUT", "-s", from_addr]);
    if probability < 1.0 {
        let share = format!("{probability:.3}");
        words.extend(argv(&[
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &share,
        ]));
    }
    let comment = rule_comment(from);
    words.extend(argv(&[
        "-m",
        "comment",
        "--comment",
        &comment,
        "-j",
        "DROP",
    ]));
    words
}

/// Adds or deletes a filter rule on a node; a rule iptables refuses is an error naming it.
async fn run_filter<H: Hosts>(
    r: &Runner<'_, H>,
    node: &str,
    rule: &[String],
) -> Result<(), String> {
    let out = r
        .cluster
        .exec(node, rule)
        .await
        .map_err(|e| e.to_string())?;
    if out.code == Some(0) {
        return Ok(());
    }
    Err(format!(
        "`{}` on {} failed: {}",
        rule.join(" "),
        crate::base::names::short(node),
        out.stderr.trim()
    ))
}

/// Whether `from` can open a TCP connection to `to` now: Ok(true) when `to` answered (with a
/// reset), Ok(false) when nothing answered within the timeout.
pub async fn reaches<H: Hosts>(r: &Runner<'_, H>, from: &str, to: &str) -> Result<bool, String> {
    let to_addr = address(r, to)?;
    let script = format!("exec 3<>/dev/tcp/{to_addr}/{CLOSED_PORT}");
    let out = r
        .cluster
        .exec(
            from,
            &argv(&["timeout", REACH_TIMEOUT, "bash", "-c", &script]),
        )
        .await
        .map_err(|e| e.to_string())?;
    let said = format!("{}{}", out.stdout, out.stderr);
    if out.code == Some(124) {
        Ok(false)
    } else if said.contains("refused") || out.code == Some(0) {
        Ok(true)
    } else {
        Err(format!(
            "could not tell whether {} reaches {}: {}",
            crate::base::names::short(from),
            crate::base::names::short(to),
            said.trim()
        ))
    }
}

/// Whether `from` reaches `to` as a fault or its heal should leave it: an error says which
/// link is not as expected.
async fn expect_reach<H: Hosts>(
    r: &Runner<'_, H>,
    from: &str,
    to: &str,
    reachable: bool,
) -> Result<(), String> {
    if reaches(r, from, to).await? == reachable {
        return Ok(());
    }
    let (from, to) = (
        crate::base::names::short(from),
        crate::base::names::short(to),
    );
    Err(if reachable {
        format!("the filter is gone but {from} still cannot reach {to}")
    } else {
        format!("the filter is in place but {from} still reaches {to}")
    })
}

/// A command line from its words.
fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn address<H: Hosts>(r: &Runner<'_, H>, node: &str) -> Result<String, String> {
    r.cluster
        .node(node)
        .filter(|n| n.alive)
        .map(|n| n.address.to_string())
        .ok_or_else(|| format!("{} is not a live node", crate::base::names::short(node)))
}

/// Drops packets on each `(from, to)` link (all of them at probability 1), and verifies it: a
/// full cut must leave `from` unable to reach `to`; random loss must drop a packet of the
/// cluster's own traffic within a deadline. Every filter is in place before any is verified,
/// and the links are verified together.
pub async fn drop_packets<H: Hosts>(
    r: &mut Runner<'_, H>,
    links: &[(String, String)],
    probability: f64,
) -> Result<String, String> {
    let mut made = Vec::new();
    for (from, to) in links {
        if from == to {
            return Err("a node cannot be cut off from itself".into());
        }
        let from_addr = address(r, from)?;
        run_filter(r, to, &filter_rule("-I", &from_addr, from, probability)).await?;
        let fault = ActiveFault::Dropped {
            from: from.clone(),
            to: to.clone(),
            probability,
        };
        made.push(fault.describe());
        r.state.faults.push(fault);
    }
    let r = &*r;
    let checks = futures::future::join_all(links.iter().map(|(from, to)| async move {
        if probability < 1.0 {
            return packets_dropped(r, from, to).await;
        }
        expect_reach(r, from, to, false).await
    }))
    .await;
    let problems: Vec<String> = checks.into_iter().filter_map(Result::err).collect();
    if problems.is_empty() {
        Ok(made.join("; "))
    } else {
        Err(problems.join("; "))
    }
}

/// Ten connection attempts from `from` to a closed port on `to`, for traffic a loss can drop.
async fn probe_burst<H: Hosts>(r: &Runner<'_, H>, from: &str, to: &str) -> Result<(), String> {
    let to_addr = address(r, to)?;
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 0.3 bash -c 'exec 3<>/dev/tcp/{to_addr}/{CLOSED_PORT}' 2>/dev/null; done; true"
    );
    r.cluster
        .exec(from, &argv(&["bash", "-c", &script]))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Polls the rule's drop counter until it has dropped something.
async fn packets_dropped<H: Hosts>(r: &Runner<'_, H>, from: &str, to: &str) -> Result<(), String> {
    let list = argv(&["iptables", "-w", "-L", "INPUT", "-v", "-x", "-n"]);
    let comment = rule_comment(from);
    let end = Instant::now() + LOSS_DEADLINE;
    loop {
        let out = r.cluster.exec(to, &list).await.map_err(|e| e.to_string())?;
        let dropped: u64 = out
            .stdout
            .lines()
            .filter(|l| l.contains(&comment))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        if dropped > 0 {
            return Ok(());
        }
        // The cluster may send nothing on this link (two followers): make some traffic, a
        // burst of connection attempts, each of whose packets the loss may drop.
        probe_burst(r, from, to).await?;
        if Instant::now() >= end {
            return Err(format!(
                "no packet from {} to {} was dropped within {} s: the loss did nothing",
                crate::base::names::short(from),
                crate::base::names::short(to),
                LOSS_DEADLINE.as_secs()
            ));
        }
        tokio::time::sleep(super::POLL_INTERVAL).await;
    }
}

/// Stops a service's process with SIGSTOP and verifies the kernel shows it stopped.
pub async fn pause<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: &str,
    service: ServiceKind,
) -> Result<String, String> {
    signal_fault(r, node, service, Signal::Pause).await
}

/// Kills a service's process with SIGKILL and verifies it is gone.
pub async fn kill<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: &str,
    service: ServiceKind,
) -> Result<String, String> {
    signal_fault(r, node, service, Signal::Kill).await
}

/// Signals a service's process (SIGSTOP or SIGKILL), records the fault before verifying it, so
/// it is healed even when the verification fails, and verifies it took.
async fn signal_fault<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: &str,
    service: ServiceKind,
    signal: Signal,
) -> Result<String, String> {
    let process = r
        .cluster
        .signal_service(node, service, signal)
        .await
        .map_err(|e| e.to_string())?;
    let paused = signal == Signal::Pause;
    let fault = if paused {
        ActiveFault::Paused {
            node: node.to_string(),
            service,
        }
    } else {
        ActiveFault::Killed {
            node: node.to_string(),
            service,
        }
    };
    r.state.faults.push(fault.clone());
    if paused {
        wait_for_state(r, node, process, true).await?;
        return Ok(fault.describe());
    }
    let end = Instant::now() + SIGNAL_DEADLINE;
    while r.cluster.process_state(node, process).await != ProcessState::Exited {
        if Instant::now() >= end {
            return Err(format!(
                "{service} on {} was sent SIGKILL and still runs after {} s",
                crate::base::names::short(node),
                SIGNAL_DEADLINE.as_secs()
            ));
        }
        tokio::time::sleep(super::POLL_INTERVAL).await;
    }
    Ok(fault.describe())
}

/// The state letter of /proc/PID/stat as the node sees it (`T` when stopped).
async fn state_letter<H: Hosts>(
    r: &Runner<'_, H>,
    node: &str,
    process: ProcessId,
) -> Result<char, String> {
    let stat = format!("/proc/{}/stat", process.pid);
    let out = r
        .cluster
        .exec(node, &argv(&["cat", &stat]))
        .await
        .map_err(|e| e.to_string())?;
    // The command name is in parentheses and may hold spaces; the state follows the last ')'.
    out.stdout
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .ok_or_else(|| {
            format!(
                "no state in /proc/{}/stat: {}",
                process.pid,
                out.stderr.trim()
            )
        })
}

async fn wait_for_state<H: Hosts>(
    r: &Runner<'_, H>,
    node: &str,
    process: ProcessId,
    stopped: bool,
) -> Result<(), String> {
    let end = Instant::now() + SIGNAL_DEADLINE;
    loop {
        let letter = state_letter(r, node, process).await?;
        if (letter == 'T') == stopped {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(format!(
                "process {} on {} is in state `{letter}` {} s after the signal",
                process.pid,
                crate::base::names::short(node),
                SIGNAL_DEADLINE.as_secs()
            ));
        }
        tokio::time::sleep(super::POLL_INTERVAL).await;
    }
}

/// Removes a packet filter; Ok(Some((from, to))) when the link must now be verified open.
async fn remove_filter<H: Hosts>(
    r: &Runner<'_, H>,
    from: &str,
    to: &str,
    probability: f64,
) -> Result<Option<(String, String)>, String> {
    let Some(to_view) = r.cluster.node(to).filter(|n| n.alive) else {
        // A node that is gone took its filters with it.
        return Ok(None);
    };
    // Addresses outlive replacements, so the rule is found by the address it was added with
    // even when its sender is gone.
    let Some(from_view) = r.cluster.node(from) else {
        return Ok(None);
    };
    let rule = filter_rule("-D", &from_view.address.to_string(), from, probability);
    run_filter(r, &to_view.fqdn, &rule).await?;
    Ok(from_view.alive.then(|| (from.to_string(), to.to_string())))
}

/// Undoes a fault on a process and verifies it is gone.
async fn heal_process<H: Hosts>(r: &mut Runner<'_, H>, fault: &ActiveFault) -> Result<(), String> {
    match fault {
        ActiveFault::Dropped { .. } => Ok(()),
        ActiveFault::Paused { node, service } => {
            if r.cluster.node(node).is_none_or(|n| !n.alive) {
                return Ok(());
            }
            let Some(process) = r.cluster.process_of(node, *service) else {
                return Ok(());
            };
            r.cluster
                .signal_service(node, *service, Signal::Resume)
                .await
                .map_err(|e| e.to_string())?;
            wait_for_state(r, node, process, false).await
        }
        ActiveFault::Killed { node, service } => {
            if r.cluster.node(node).is_none_or(|n| !n.alive) {
                return Ok(());
            }
            r.cluster
                .start_service(node, *service)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// Resumes a paused service (SIGCONT) and verifies it runs again. Whether it is paused is
/// read from the process itself, not from this run's records: a service paused by hand (an
/// `exec`, an operator's script) is resumed too, and one that runs is an error, not a quiet
/// success.
pub async fn resume<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: &str,
    service: ServiceKind,
) -> Result<String, String> {
    let short = crate::base::names::short(node);
    let fault = ActiveFault::Paused {
        node: node.to_string(),
        service,
    };
    let Some(process) = r.cluster.process_of(node, service) else {
        return Err(format!(
            "{service} on {short} is not running: nothing to resume"
        ));
    };
    let letter = state_letter(r, node, process).await?;
    let recorded = r.state.faults.iter().position(|f| *f == fault);
    if letter != 'T' {
        return Err(format!(
            "{service} on {short} is not paused (process {} is in state `{letter}`): nothing to resume",
            process.pid
        ));
    }
    if let Some(at) = recorded {
        r.state.faults.remove(at);
    }
    if let Err(e) = heal_process(r, &fault).await {
        // Still stopped, as far as anyone knows: left for the heal at the end.
        r.state.faults.push(fault);
        return Err(e);
    }
    Ok(if recorded.is_some() {
        format!("{service} resumed on {short}")
    } else {
        format!("{service} resumed on {short} (paused, though not by this run)")
    })
}

/// Heals every fault in effect, network first (so a restarted service finds its peers), and
/// verifies each; returns what was healed, or every heal that failed.
pub async fn heal_all<H: Hosts>(r: &mut Runner<'_, H>) -> Result<Vec<String>, String> {
    let faults = std::mem::take(&mut r.state.faults);
    let mut healed = Vec::new();
    let mut problems = Vec::new();
    let mut reopened = Vec::new();
    for fault in &faults {
        if let ActiveFault::Dropped {
            from,
            to,
            probability,
        } = fault
        {
            match remove_filter(r, from, to, *probability).await {
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
    let shared = &*r;
    let checks = futures::future::join_all(
        reopened
            .iter()
            .map(|(from, to)| expect_reach(shared, from, to, true)),
    )
    .await;
    problems.extend(checks.into_iter().filter_map(Result::err));
    for fault in faults
        .iter()
        .filter(|f| !matches!(f, ActiveFault::Dropped { .. }))
    {
        match heal_process(r, fault).await {
            Ok(()) => healed.push(fault.describe()),
            Err(e) => problems.push(format!("{}: {e}", fault.describe())),
        }
    }
    if problems.is_empty() {
        Ok(healed)
    } else {
        Err(problems.join("; "))
    }
}
