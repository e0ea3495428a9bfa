//! Network namespaces, the per-run switch and neighbour tables, through iproute2.
//!
//! Each run gets a hub namespace holding a bridge (bridged traffic there never crosses the
//! host's own firewall, which may drop forwarded frames), one namespace per node with a veth
//! into the hub, and one veth from the host into the hub so the harness can reach the nodes.

use std::net::Ipv4Addr;
use std::process::Command;

/// Prefix of every namespace and host interface a run creates; `gc` looks for it.
pub const PREFIX: &str = "succ";

/// An iproute2 command failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to run `{command}`: {detail}")]
pub struct NetError {
    /// The command line.
    pub command: String,
    /// Its error output, or why it could not run.
    pub detail: String,
}

/// Runs `ip ARGS…` and returns its standard output.
pub fn ip(args: &[&str]) -> Result<String, NetError> {
    run(
        Command::new("ip").args(args),
        &format!("ip {}", args.join(" ")),
    )
}

/// Runs `ip netns exec NS ARGS…` and returns its standard output.
pub fn in_ns(ns: &str, args: &[&str]) -> Result<String, NetError> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    ip(&full)
}

fn run(cmd: &mut Command, shown: &str) -> Result<String, NetError> {
    let out = cmd.output().map_err(|e| NetError {
        command: shown.to_string(),
        detail: if e.kind() == std::io::ErrorKind::NotFound {
            "`ip` not found (install Debian's iproute2)".to_string()
        } else {
            e.to_string()
        },
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError {
            command: shown.to_string(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Namespace name of a run's hub.
pub fn hub_name(run_id: &str) -> String {
    format!("{PREFIX}-{run_id}-hub")
}

/// Namespace name of a node.
pub fn node_ns_name(run_id: &str, short: &str) -> String {
    format!("{PREFIX}-{run_id}-{short}")
}

/// The host-side interface of a run (at most 15 characters).
pub fn host_link_name(run_id: &str) -> String {
    format!("{PREFIX}{run_id}")
}

/// Run id a namespace or host link belongs to, if it is one of ours.
pub fn run_id_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let id = rest.split('-').next()?;
    (id.len() == 6 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// Creates the hub namespace with its bridge, and the host's link into it with `host_ip/24`.
pub fn create_hub(run_id: &str, host_ip: Ipv4Addr) -> Result<(), NetError> {
    let hub = hub_name(run_id);
    let host = host_link_name(run_id);
    ip(&["netns", "add", &hub])?;
    in_ns(&hub, &["ip", "link", "set", "lo", "up"])?;
    in_ns(&hub, &["ip", "link", "add", "br0", "type", "bridge"])?;
    in_ns(&hub, &["ip", "link", "set", "br0", "up"])?;
    ip(&[
        "link", "add", &host, "type", "veth", "peer", "name", "up0", "netns", &hub,
    ])?;
    in_ns(&hub, &["ip", "link", "set", "up0", "master", "br0", "up"])?;
    ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &host])?;
    ip(&["link", "set", &host, "up"])?;
    Ok(())
}

/// Creates a node namespace wired to the hub, with its address and MAC on `eth0`.
/// `port` names the hub side and must be unique within the hub.
pub fn create_node(
    hub: &str,
    ns: &str,
    port: &str,
    address: Ipv4Addr,
    mac: &str,
) -> Result<(), NetError> {
    ip(&["netns", "add", ns])?;
    ip(&[
        "link", "add", port, "netns", hub, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    in_ns(hub, &["ip", "link", "set", port, "master", "br0", "up"])?;
    in_ns(ns, &["ip", "link", "set", "lo", "up"])?;
    in_ns(ns, &["ip", "link", "set", "eth0", "address", mac])?;
    in_ns(
        ns,
        &["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"],
    )?;
    in_ns(ns, &["ip", "link", "set", "eth0", "up"])?;
    Ok(())
}

/// Pids of every process in a namespace.
pub fn pids_in(ns: &str) -> Vec<u32> {
    ip(&["netns", "pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every namespace on the host.
pub fn list_namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .map(|out| {
            out.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Every interface name on the host.
pub fn list_host_links() -> Vec<String> {
    ip(&["-o", "link", "show"])
        .map(|out| {
            out.lines()
                .filter_map(|l| l.split(':').nth(1))
                .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills every process in a namespace and deletes it (and its /etc/netns files).
/// Missing namespaces are fine: teardown is idempotent.
pub fn destroy_namespace(ns: &str) {
    kill_everything_in(ns);
    // The node's link goes first, synchronously: a namespace is freed only some time after
    // `netns del` returns, and until then its interface would still answer ARP for the node.
    let _ = ip(&["-n", ns, "link", "del", "eth0"]);
    let _ = ip(&["netns", "del", ns]);
    let _ = std::fs::remove_dir_all(etc_netns_dir(ns));
}

/// How long the processes of a namespace are given to die of SIGKILL before its link goes.
const KILL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// SIGKILLs every process in `ns` and waits, to a deadline, until none is left in it. (A
/// process leaves the namespace with its first thread to exit; its sockets close with its last,
/// so a caller that owns the processes also reaps them before the link goes.)
///
/// Why wait: a killed process's sockets are closed as it exits, and only then does the kernel
/// send its peers a FIN or a reset. Deleting the link before that happens silences the
/// connections instead, so whether a peer learns of the death at once or only by its own
/// timeout would depend on how quickly the process died — on the machine's load. (This was
/// seen: ZooKeeper followers of a terminated leader noticed in half a second on an idle cell,
/// and only at their 2.5-s sync timeout while a workload kept the leader busy.) Every
/// provider's terminate ends the processes before the network: a container's are killed
/// before its namespace goes, an instance shuts down.
pub fn kill_everything_in(ns: &str) {
    let deadline = std::time::Instant::now() + KILL_DEADLINE;
    loop {
        let pids = pids_in(ns);
        if pids.is_empty() || std::time::Instant::now() >= deadline {
            return;
        }
        for pid in pids {
            if let Some(p) = crate::provider::process::ProcessId::of(pid) {
                p.kill();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Where `ip netns exec` finds files it bind-mounts over /etc (our per-node hosts file).
pub fn etc_netns_dir(ns: &str) -> std::path::PathBuf {
    std::path::Path::new("/etc/netns").join(ns)
}

/// Whether a host link exists.
pub fn host_link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).is_ok()
}

/// Deletes a host link if it exists.
pub fn delete_host_link(name: &str) {
    if host_link_exists(name) {
        let _ = ip(&["link", "del", name]);
    }
}

/// Forgets the host's neighbour entry for an address on one of its links (a run's host link
/// or bridge); best effort, as an entry that is already gone is what was wanted.
pub fn flush_host_neighbour(device: &str, address: Ipv4Addr) {
    let _ = ip(&["neigh", "flush", "to", &address.to_string(), "dev", device]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_kernel_limits_and_map_back_to_their_run() {
        let host = host_link_name("a1b2c3");
        assert!(host.len() <= 15);
        assert_eq!(run_id_of(&host), Some("a1b2c3"));
        assert_eq!(
            run_id_of(&node_ns_name("a1b2c3", "quorum-1")),
            Some("a1b2c3")
        );
        assert_eq!(run_id_of(&hub_name("a1b2c3")), Some("a1b2c3"));
        assert_eq!(run_id_of("docker0"), None);
        assert_eq!(run_id_of("succ-zzzzzz-hub"), None);
    }
}
