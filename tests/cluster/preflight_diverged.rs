//! `succession preflight` against an etcd cluster whose members hold different keys, made for
//! real as a botched restore makes it: the whole cluster restored from snapshots, one member
//! from a snapshot of another history. Every member then agrees on the cluster, the members
//! and the leader — only `hashkv` at one revision shows the difference.

use super::preflight_hazards::{bash_on, preflight_json, service_row};
use super::*;

/// The etcd flag `name`'s value in a null-separated command line saved by `stop_etcd`.
const FLAG: &str = r#"flag() { local i; for ((i=0;i<${#argv[@]};i++)); do [ "${argv[$i]}" = "$1" ] && { echo "${argv[$((i+1))]}"; return; }; done; }"#;

/// Stops etcd on `node` (SIGKILL), keeping its command line beside its data directory.
fn stop_etcd(run_id: &str, node: &str) -> TestResult {
    let dir = format!("/run/succession/runs/{run_id}/nodes/{node}/etcd");
    let script = format!(
        r#"set -e
pid=$(pgrep -f "[e]tcd --name {node} --data-dir {dir}" | head -1)
cp /proc/$pid/cmdline {dir}.argv
kill -9 $pid
for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
"#
    );
    bash_on(run_id, node, &script).map(|_| ())
}

/// Restores `node`'s data directory from `snapshot` with the flags it ran with (so it keeps
/// its member and cluster ids), then starts etcd on it with its own command line.
fn restore_etcd(run_id: &str, node: &str, snapshot: &str) -> TestResult {
    let dir = format!("/run/succession/runs/{run_id}/nodes/{node}/etcd");
    let script = format!(
        r#"set -e
mapfile -d '' -t argv < {dir}.argv
{FLAG}
rm -rf {dir}
ETCDCTL_API=3 etcdctl snapshot restore {snapshot} --name {node} --data-dir {dir} \
  --initial-cluster "$(flag --initial-cluster)" --initial-cluster-token "$(flag --initial-cluster-token)" \
  --initial-advertise-peer-urls "$(flag --initial-advertise-peer-urls)" > {dir}.restore.log 2>&1
setsid "${{argv[@]}}" > {dir}.restored.log 2>&1 < /dev/null &
"#
    );
    bash_on(run_id, node, &script).map(|_| ())
}

/// Runs etcdctl against quorum-1 until it succeeds (a restored cluster elects first).
fn etcdctl(run_id: &str, q1: &str, args: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = succession()
            .args(["exec", "quorum-1", "--run", run_id, "--", "sh", "-c"])
            .arg(format!(
                "ETCDCTL_API=3 etcdctl --endpoints http://{q1}:2379 {args}"
            ))
            .output()?;
        if out.status.success() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!("etcdctl {args}\n{}", output_text(&out))));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Restores every member, `snapshots` naming each one's, stopping them all first (a member
/// restored while the others still run the old log would be sent entries it never had).
fn restore_cluster(run_id: &str, snapshots: &[(&str, &str)]) -> TestResult {
    for (node, _) in snapshots {
        stop_etcd(run_id, node)?;
    }
    for (node, snapshot) in snapshots {
        restore_etcd(run_id, node, snapshot)?;
    }
    Ok(())
}

pub(super) fn etcd_diverged_keyspace_is_caught() -> TestResult {
    with_inventory("topologies/etcd-quorum.toml", diverge)
}

fn diverge(run_id: &str, inventory: &Path) -> TestResult {
    let inv = succession::preflight::Inventory::load(inventory).map_err(|e| fail(e.to_string()))?;
    let q1 = inv
        .nodes
        .iter()
        .find(|n| n.short() == "quorum-1")
        .map(|n| n.address.to_string())
        .unwrap_or_default();
    let runs = format!("/run/succession/runs/{run_id}");
    let puts = |prefix: &str| {
        (1..=10)
            .map(|i| format!("put /{prefix}/{i} {prefix}{i}"))
            .collect::<Vec<_>>()
    };
    let nodes = ["quorum-1", "quorum-2", "quorum-3"];
    // History H: /a, snapshot S1, then /b, snapshot S2.
    for put in puts("a") {
        etcdctl(run_id, &q1, &put)?;
    }
    etcdctl(run_id, &q1, &format!("snapshot save {runs}/s1.db"))?;
    for put in puts("b") {
        etcdctl(run_id, &q1, &put)?;
    }
    etcdctl(run_id, &q1, &format!("snapshot save {runs}/s2.db"))?;
    // A fork: the whole cluster back to S1, then /c where H had /b, snapshot S3.
    let s1 = format!("{runs}/s1.db");
    restore_cluster(run_id, &nodes.map(|n| (n, s1.as_str())))?;
    for put in puts("c") {
        etcdctl(run_id, &q1, &put)?;
    }
    etcdctl(run_id, &q1, &format!("snapshot save {runs}/s3.db"))?;
    // The botched restore: quorum-3 from the other history's snapshot.
    let (s2, s3) = (format!("{runs}/s2.db"), format!("{runs}/s3.db"));
    restore_cluster(
        run_id,
        &[
            ("quorum-1", s3.as_str()),
            ("quorum-2", s3.as_str()),
            ("quorum-3", s2.as_str()),
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, json) = preflight_json(inventory)?;
        let row = |name: &str| service_row(&json, "etcd", name);
        let (outcome, evidence) = row("key-value hashes agree");
        let agreed = [
            "one leader backed by a majority",
            "members match the inventory",
            "endpoint status agrees",
        ]
        .iter()
        .all(|name| row(name).0 == "pass");
        if outcome == "fail"
            && evidence.contains("the members hold different keys")
            && evidence.contains("on quorum-3")
            && agreed
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "a member restored from another history must fail the hash check, and only it\n{json:#}"
            )));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
