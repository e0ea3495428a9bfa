//! Packet filters between nodes: made, verified by a connection attempt (or, for random loss,
//! by the rule's own drop counter) and removed.

use std::time::Instant;

use super::{argv, ActiveFault, FaultError, Faults, LOSS_DEADLINE, VERIFY_INTERVAL};
use crate::base::names::short;
use crate::cluster::Cluster;
use crate::provider::Hosts;

/// How long a connection attempt may take before the peer counts as unreachable.
const REACH_TIMEOUT: &str = "1";
/// A port nothing listens on: a reachable node refuses it at once.
const CLOSED_PORT: u16 = 1;

/// The comment every filter rule of the harness carries, so a rule is found and removed by
/// exactly what added it.
fn rule_comment(from: &str) -> String {
    format!("succession-drop-from-{}", short(from))
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
pub(super) async fn run_filter<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    rule: &[String],
) -> Result<(), FaultError> {
    let out = cluster.exec(node, rule).await?;
    if out.code == Some(0) {
        return Ok(());
    }
    Err(FaultError::Filter {
        rule: rule.join(" "),
        node: short(node).to_string(),
        stderr: out.stderr.trim().to_string(),
    })
}

/// A live node's address, or the error that it is not live.
pub(super) fn address<H: Hosts>(cluster: &Cluster<H>, node: &str) -> Result<String, FaultError> {
    cluster
        .node(node)
        .filter(|n| n.alive)
        .map(|n| n.address.to_string())
        .ok_or_else(|| FaultError::NotLive(short(node).to_string()))
}

/// Whether `from` can open a TCP connection to `to` now: Ok(true) when `to` answered (with a
/// reset), Ok(false) when nothing answered within the timeout.
pub async fn reaches<H: Hosts>(
    cluster: &Cluster<H>,
    from: &str,
    to: &str,
) -> Result<bool, FaultError> {
    let to_addr = address(cluster, to)?;
    let script = format!("exec 3<>/dev/tcp/{to_addr}/{CLOSED_PORT}");
    let out = cluster
        .exec(
            from,
            &argv(&["timeout", REACH_TIMEOUT, "bash", "-c", &script]),
        )
        .await?;
    let said = format!("{}{}", out.stdout, out.stderr);
    if out.code == Some(124) {
        Ok(false)
    } else if said.contains("refused") || out.code == Some(0) {
        Ok(true)
    } else {
        Err(FaultError::ReachUnknown {
            from: short(from).to_string(),
            to: short(to).to_string(),
            said: said.trim().to_string(),
        })
    }
}

/// Whether `from` reaches `to` as a fault or its heal should leave it: an error says which
/// link is not as expected.
pub(super) async fn expect_reach<H: Hosts>(
    cluster: &Cluster<H>,
    from: &str,
    to: &str,
    reachable: bool,
) -> Result<(), FaultError> {
    if reaches(cluster, from, to).await? == reachable {
        return Ok(());
    }
    let (from, to) = (short(from).to_string(), short(to).to_string());
    Err(if reachable {
        FaultError::StillCut { from, to }
    } else {
        FaultError::NotCut { from, to }
    })
}

pub(super) async fn drop_packets<H: Hosts>(
    faults: &mut Faults,
    cluster: &Cluster<H>,
    links: &[(String, String)],
    probability: f64,
) -> Result<String, FaultError> {
    let mut made = Vec::new();
    for (from, to) in links {
        if from == to {
            return Err(FaultError::SelfLink);
        }
        let from_addr = address(cluster, from)?;
        run_filter(
            cluster,
            to,
            &filter_rule("-I", &from_addr, from, probability),
        )
        .await?;
        let fault = ActiveFault::Dropped {
            from: from.clone(),
            to: to.clone(),
            probability,
        };
        made.push(fault.describe());
        faults.push(fault);
    }
    let checks = futures::future::join_all(links.iter().map(|(from, to)| async move {
        if probability < 1.0 {
            return packets_dropped(cluster, from, to).await;
        }
        expect_reach(cluster, from, to, false).await
    }))
    .await;
    let problems: Vec<String> = checks
        .into_iter()
        .filter_map(Result::err)
        .map(|e| e.to_string())
        .collect();
    if problems.is_empty() {
        Ok(made.join("; "))
    } else {
        Err(FaultError::Several(problems))
    }
}

/// Ten connection attempts from `from` to a closed port on `to`, for traffic a loss can drop.
async fn probe_burst<H: Hosts>(
    cluster: &Cluster<H>,
    from: &str,
    to: &str,
) -> Result<(), FaultError> {
    let to_addr = address(cluster, to)?;
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 0.3 bash -c 'exec 3<>/dev/tcp/{to_addr}/{CLOSED_PORT}' 2>/dev/null; done; true"
    );
    cluster.exec(from, &argv(&["bash", "-c", &script])).await?;
    Ok(())
}

/// Polls the rule's drop counter until it has dropped something.
async fn packets_dropped<H: Hosts>(
    cluster: &Cluster<H>,
    from: &str,
    to: &str,
) -> Result<(), FaultError> {
    let list = argv(&["iptables", "-w", "-L", "INPUT", "-v", "-x", "-n"]);
    let comment = rule_comment(from);
    let end = Instant::now() + LOSS_DEADLINE;
    loop {
        let out = cluster.exec(to, &list).await?;
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
        probe_burst(cluster, from, to).await?;
        if Instant::now() >= end {
            return Err(FaultError::LossIneffective {
                from: short(from).to_string(),
                to: short(to).to_string(),
                secs: LOSS_DEADLINE.as_secs(),
            });
        }
        tokio::time::sleep(VERIFY_INTERVAL).await;
    }
}

/// Removes a packet filter; Ok(Some((from, to))) when the link must now be verified open.
pub(super) async fn remove_filter<H: Hosts>(
    cluster: &Cluster<H>,
    from: &str,
    to: &str,
    probability: f64,
) -> Result<Option<(String, String)>, FaultError> {
    let Some(to_view) = cluster.node(to).filter(|n| n.alive) else {
        // A node that is gone took its filters with it.
        return Ok(None);
    };
    // Addresses outlive replacements, so the rule is found by the address it was added with
    // even when its sender is gone.
    let Some(from_view) = cluster.node(from) else {
        return Ok(None);
    };
    let rule = filter_rule("-D", &from_view.address.to_string(), from, probability);
    run_filter(cluster, &to_view.fqdn, &rule).await?;
    Ok(from_view.alive.then(|| (from.to_string(), to.to_string())))
}
