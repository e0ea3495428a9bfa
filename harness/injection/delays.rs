//! Packet delay without netem: a rule on the sending node sends its packets (to one peer, or
//! to every other host) to an NFQUEUE, and the node-side delay queue (`succession-standin
//! delay-queue`) holds each for its delay before letting it go. Verified by the TCP connect
//! time from the node to the peer, timed on the node itself: before the fault, with it (it
//! must have risen by at least the delay) and after the heal (it must have fallen back).
//! The queue is bounded; what it dropped goes into the heal's line of the report.

use std::time::Duration;

use super::filters::{address, run_filter};
use super::{argv, ActiveFault, FaultError, Faults};
use crate::base::names::short;
use crate::cluster::Cluster;
use crate::node_tools::delay_queue::DelayStats;
use crate::node_tools::timing::Timings;
use crate::provider::{Hosts, ProcessState, Signal};

/// The first NFQUEUE number the harness uses on a node (well clear of 0, which other tools
/// default to).
pub(super) const FIRST_QUEUE: u16 = 1000;
/// A port nothing listens on: the peer's kernel refuses it at once, whatever runs there.
const CLOSED_PORT: u16 = 1;
/// Handshakes timed per measurement (the fastest counts: scheduling noise only adds).
const SAMPLES: u32 = 5;
/// How far the connect time may fall short of the delay and still show it: the delay queue
/// releases a packet no earlier than its delay, but the baseline is itself a sample.
const TOLERANCE: Duration = Duration::from_micros(500);
/// How long the queue may take to be bound before its rule goes in.
const BIND_DEADLINE: Duration = Duration::from_secs(10);

/// What a delay is asked to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelaySpec {
    /// Every packet is held this long.
    pub delay: Duration,
    /// Up to this much more, per packet.
    pub jitter: Duration,
    /// The most packets held at once.
    pub max_packets: u32,
}

fn rule_comment(queue: u16) -> String {
    format!("succession-delay-{queue}")
}

/// The packet mark bit a queue's rule skips (bits 8–23: sixteen delays at once on a node).
fn mark_bit(queue: u16) -> u32 {
    1 << (8 + u32::from(queue.wrapping_sub(FIRST_QUEUE) % 16))
}

/// The iptables rule that sends a node's packets (to `peer`, or to every other host) to the
/// queue, unless this queue released them already (its mark bit); `--queue-bypass` lets
/// packets through undelayed when no reader is bound.
fn delay_rule(action: &str, peer_addr: Option<&str>, queue: u16) -> Vec<String> {
    let mut words = argv(&["iptables", "-w", action, "OUTPUT", "!", "-o", "lo"]);
    if let Some(addr) = peer_addr {
        words.extend(argv(&["-d", addr]));
    }
    let comment = rule_comment(queue);
    let number = queue.to_string();
    let bit = format!("{0:#x}/{0:#x}", mark_bit(queue));
    words.extend(argv(&[
        "-m",
        "mark",
        "!",
        "--mark",
        &bit,
        "-m",
        "comment",
        "--comment",
        &comment,
        "-j",
        "NFQUEUE",
        "--queue-num",
        &number,
        "--queue-bypass",
    ]));
    words
}

/// Times TCP handshakes from `from` to a closed port on `to`, on `from` itself.
async fn connect_times<H: Hosts>(
    cluster: &Cluster<H>,
    from: &str,
    to: &str,
    timeout: Duration,
) -> Result<Timings, FaultError> {
    let target = format!("{}:{CLOSED_PORT}", address(cluster, to)?);
    let binary = cluster.node_binary().display().to_string();
    let timeout_ms = timeout.as_millis().to_string();
    let count = SAMPLES.to_string();
    let out = cluster
        .exec(
            from,
            &argv(&[
                &binary,
                "connect-time",
                "--to",
                &target,
                "--count",
                &count,
                "--timeout-ms",
                &timeout_ms,
            ]),
        )
        .await?;
    serde_json::from_str(out.stdout.trim()).map_err(|e| FaultError::ToolOutput {
        tool: "connect-time",
        node: short(from).to_string(),
        detail: format!("{e}: {} {}", out.stdout.trim(), out.stderr.trim()),
    })
}

/// The node a delay is measured towards, and how fast a handshake to it is now: its peer, or
/// for a node-wide delay the first other live node that answers at all (one another fault
/// cuts off shows nothing of a delay). None when no candidate answers: then the delay's
/// effect cannot be seen, only its rule and queue in place.
async fn baseline<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    peer: Option<&str>,
    timeout: Duration,
) -> Result<Option<(String, Timings)>, FaultError> {
    let candidates: Vec<String> = match peer {
        Some(p) => vec![p.to_string()],
        None => cluster
            .nodes()
            .into_iter()
            .filter(|n| n.alive && n.fqdn != node)
            .map(|n| n.fqdn)
            .collect(),
    };
    for to in candidates {
        let timings = connect_times(cluster, node, &to, timeout).await?;
        if timings.timed_out == 0 {
            return Ok(Some((to, timings)));
        }
    }
    Ok(None)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Delays the packets each `(node, peer)` sends (to every other host when `peer` is None) and
/// verifies each delay in the connect time. Every queue and rule is recorded before it is
/// verified, so a failed verification is healed with the rest.
pub(super) async fn delay<H: Hosts>(
    faults: &mut Faults,
    cluster: &mut Cluster<H>,
    links: &[(String, Option<String>)],
    spec: DelaySpec,
) -> Result<String, FaultError> {
    let timeout = spec.delay * 2 + spec.jitter * 2 + Duration::from_secs(2);
    let mut made = Vec::new();
    for (node, peer) in links {
        if peer.as_deref() == Some(node.as_str()) {
            return Err(FaultError::SelfLink);
        }
        cluster.prepare_tools(node).await?;
        let measured = baseline(cluster, node, peer.as_deref(), timeout).await?;
        let queue = faults.next_queue();
        let data_root = cluster.files_dir(node)?;
        let stats = data_root.join(format!(".delay-queue-{queue}.json"));
        let tool = argv(&[
            &cluster.node_binary().display().to_string(),
            "delay-queue",
            "--queue",
            &queue.to_string(),
            "--delay-ms",
            &spec.delay.as_millis().to_string(),
            "--jitter-ms",
            &spec.jitter.as_millis().to_string(),
            "--max-packets",
            &spec.max_packets.to_string(),
            "--stats",
            &stats.display().to_string(),
            "--mark-bit",
            &mark_bit(queue).to_string(),
        ]);
        let log = data_root.join(format!("delay-queue-{queue}.log"));
        let process = cluster.spawn_tool(node, tool, log).await?;
        let fault = ActiveFault::Delayed {
            node: node.clone(),
            peer: peer.clone(),
            delay_ms: spec.delay.as_millis() as u64,
            jitter_ms: spec.jitter.as_millis() as u64,
            max_packets: spec.max_packets,
            queue,
            process,
            measured: measured.as_ref().map(|(to, _)| to.clone()),
        };
        faults.push(fault.clone());
        wait_bound(cluster, node, queue).await?;
        let peer_addr = match peer {
            Some(p) => Some(address(cluster, p)?),
            None => None,
        };
        run_filter(
            cluster,
            node,
            &delay_rule("-I", peer_addr.as_deref(), queue),
        )
        .await?;
        let mut line = fault.describe();
        if let Some((to, before)) = measured {
            let with = connect_times(cluster, node, &to, timeout).await?;
            // The baseline's fastest sample may have drawn more of the jitter of delays
            // already on this path than the new one's: that much less rise still shows it.
            let noise = jitter_on_path(faults.active(), node, &to, queue);
            if with.min() + TOLERANCE + noise < before.min() + spec.delay {
                return Err(FaultError::DelayUnseen {
                    what: "the delay is not in effect",
                    from: short(node).to_string(),
                    to: short(&to).to_string(),
                    seen_ms: ms(with.min()),
                    before_ms: ms(before.min()),
                    delay_ms: spec.delay.as_millis() as u64,
                });
            }
            line = format!(
                "{line} (connect time to {} {:.2} → {:.2} ms)",
                short(&to),
                ms(before.min()),
                ms(with.min())
            );
        } else {
            line = format!("{line} (in place; not measurable now: no peer answers it)");
        }
        made.push(line);
    }
    Ok(made.join("; "))
}

/// The jitter of the delays in effect (other than queue `except`) on the round trip between
/// `node` and `peer`: what each side sends to the other, one delay at a time.
fn jitter_on_path(active: &[ActiveFault], node: &str, peer: &str, except: u16) -> Duration {
    let ms: u64 = active
        .iter()
        .filter_map(|f| match f {
            ActiveFault::Delayed {
                node: from,
                peer: to,
                jitter_ms,
                queue,
                ..
            } if *queue != except => {
                let on_path = (from == node && to.as_deref().is_none_or(|t| t == peer))
                    || (from == peer && to.as_deref().is_none_or(|t| t == node));
                on_path.then_some(*jitter_ms)
            }
            _ => None,
        })
        .sum();
    Duration::from_millis(ms)
}

/// Waits until the queue's reader is bound (the kernel lists the queue), so the rule never
/// sends packets to a queue no one reads.
async fn wait_bound<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    queue: u16,
) -> Result<(), FaultError> {
    let end = std::time::Instant::now() + BIND_DEADLINE;
    loop {
        let out = cluster
            .exec(node, &argv(&["cat", "/proc/net/netfilter/nfnetlink_queue"]))
            .await?;
        let bound = out
            .stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some(queue.to_string().as_str()));
        if bound {
            return Ok(());
        }
        if std::time::Instant::now() >= end {
            return Err(FaultError::ToolOutput {
                tool: "delay-queue",
                node: short(node).to_string(),
                detail: format!(
                    "queue {queue} not bound within {} s",
                    BIND_DEADLINE.as_secs()
                ),
            });
        }
        tokio::time::sleep(super::VERIFY_INTERVAL).await;
    }
}

/// A link whose delay was removed, to verify fallen back once every delay is gone.
pub(super) type Reopened = (String, String, u64);

/// Removes a delay: the rule, then the queue (SIGTERM: it lets every held packet go and
/// writes its counters). Returns the heal's line, with what the queue passed and dropped, and
/// the link to verify once every network fault is gone (another delay on the way back would
/// still slow it).
pub(super) async fn remove<H: Hosts>(
    cluster: &mut Cluster<H>,
    fault: &ActiveFault,
) -> Result<(String, Option<Reopened>), FaultError> {
    let ActiveFault::Delayed {
        node,
        peer,
        delay_ms,
        queue,
        process,
        measured,
        ..
    } = fault
    else {
        return Ok((fault.describe(), None));
    };
    if cluster.node(node).is_none_or(|n| !n.alive) {
        // A node that is gone took its rule and its queue with it.
        return Ok((format!("{} (its node is gone)", fault.describe()), None));
    }
    // The rule is found by the address it was added with, even when its peer is gone.
    let peer_addr = peer
        .as_deref()
        .and_then(|p| cluster.node(p))
        .map(|n| n.address.to_string());
    if peer.is_none() || peer_addr.is_some() {
        run_filter(
            cluster,
            node,
            &delay_rule("-D", peer_addr.as_deref(), *queue),
        )
        .await?;
    }
    cluster
        .signal_process(node, *process, Signal::Terminate)
        .await?;
    let end = std::time::Instant::now() + BIND_DEADLINE;
    while cluster.process_state(node, *process).await != ProcessState::Exited {
        if std::time::Instant::now() >= end {
            break;
        }
        tokio::time::sleep(super::VERIFY_INTERVAL).await;
    }
    let stats_path = cluster
        .files_dir(node)?
        .join(format!(".delay-queue-{queue}.json"));
    let stats: Option<DelayStats> = cluster
        .read_file(node, &stats_path)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let counted = match stats {
        Some(s) => format!(
            "{} packets delayed, {} dropped by the queue's cap of {} (at most {} held)",
            s.passed,
            s.dropped(),
            s.max_packets,
            s.held_max
        ),
        None => "the queue's counters are unreadable".to_string(),
    };
    // Verified gone against the node it was verified against when made.
    let reopened = measured
        .clone()
        .filter(|to| cluster.node(to).is_some_and(|n| n.alive))
        .map(|to| (node.clone(), to, *delay_ms));
    Ok((format!("{}: {counted}", fault.describe()), reopened))
}

/// Verifies a healed delay's link is fast again: its connect time well under the delay.
pub(super) async fn expect_fallen_back<H: Hosts>(
    cluster: &Cluster<H>,
    (node, to, delay_ms): &Reopened,
) -> Result<(), FaultError> {
    let delay = Duration::from_millis(*delay_ms);
    let after = connect_times(cluster, node, to, delay * 2 + Duration::from_secs(2)).await?;
    if after.min() * 2 < delay {
        return Ok(());
    }
    Err(FaultError::DelayOutlived {
        from: short(node).to_string(),
        to: short(to).to_string(),
        seen_ms: ms(after.min()),
        delay_ms: *delay_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProcessId;

    fn delayed(node: &str, peer: Option<&str>, jitter_ms: u64, queue: u16) -> ActiveFault {
        ActiveFault::Delayed {
            node: node.to_string(),
            peer: peer.map(str::to_string),
            delay_ms: 100,
            jitter_ms,
            max_packets: 10,
            queue,
            process: ProcessId {
                pid: 1,
                start_time: 1,
            },
            measured: None,
        }
    }

    #[test]
    fn the_jitter_on_a_path_counts_both_ways_and_node_wide_delays() {
        let active = [
            delayed("a", Some("b"), 20, 1001),
            delayed("b", Some("a"), 10, 1002),
            delayed("a", None, 5, 1003),
            delayed("a", Some("c"), 40, 1004),
            delayed("c", None, 80, 1005),
        ];
        assert_eq!(
            jitter_on_path(&active, "a", "b", 0),
            Duration::from_millis(35)
        );
        // The queue being verified does not count against itself.
        assert_eq!(
            jitter_on_path(&active, "a", "b", 1003),
            Duration::from_millis(30)
        );
        assert_eq!(
            jitter_on_path(&active, "b", "c", 0),
            Duration::from_millis(80)
        );
    }

    #[test]
    fn each_queue_skips_the_packets_it_released_already() {
        let rule = delay_rule("-I", Some("10.0.0.2"), FIRST_QUEUE + 2);
        let text = rule.join(" ");
        assert!(
            text.starts_with(
                "iptables -w -I OUTPUT ! -o lo -d 10.0.0.2 -m mark ! --mark 0x400/0x400"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("-j NFQUEUE --queue-num 1002 --queue-bypass"),
            "{text}"
        );
        assert_ne!(mark_bit(FIRST_QUEUE + 1), mark_bit(FIRST_QUEUE + 2));
        assert!(!delay_rule("-D", None, FIRST_QUEUE + 1).contains(&"-d".to_string()));
    }
}
