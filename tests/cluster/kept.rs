//! A cluster kept up (`up`, `status`, `exec`, `down`), and preflight against it as against an
//! operator's cell.

use super::*;

pub(super) fn up_status_exec_down(on: On) -> TestResult {
    // The shared state root (gc elsewhere must see this run's owner), and `--run` everywhere so
    // no other cluster that is up gets picked.
    let (run_id, text) = bring_up(&[
        "tests/fixtures/topologies/trio.toml",
        "--provider",
        on.name(),
    ])?;
    if !text.contains("is up") {
        return Err(fail(format!("up failed\n{text}")));
    }
    let result = (|| -> TestResult {
        let out = succession().args(["status", "--run", &run_id]).output()?;
        let st = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || st.matches("active  running").count() != 6 {
            return Err(fail(format!(
                "status should show 6 running services\n{}",
                output_text(&out)
            )));
        }
        let out = succession()
            .args([
                "exec",
                "quorum-1",
                "--run",
                &run_id,
                "--",
                "getent",
                "hosts",
                "quorum-2.cell-t.dc-t.demo.lan",
            ])
            .output()?;
        let ex = String::from_utf8_lossy(&out.stdout);
        if !out.status.success()
            || !ex.contains("--[ quorum-1.cell-t.dc-t.demo.lan ]--")
            || !ex.contains("quorum-2")
        {
            return Err(fail(format!(
                "exec on a node should resolve its peers\n{}",
                output_text(&out)
            )));
        }
        if on == On::Containers {
            // The seed's `$(hostname)` idiom: a container's hostname is its node's full name.
            let out = succession()
                .args(["exec", "quorum-2", "--run", &run_id, "--", "hostname"])
                .output()?;
            if !String::from_utf8_lossy(&out.stdout).contains("\nquorum-2.cell-t.dc-t.demo.lan\n") {
                return Err(fail(format!(
                    "a container's hostname must be its full name\n{}",
                    output_text(&out)
                )));
            }
        }
        let srvr =
            "echo srvr | nc -q1 $(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1) 2181";
        let out = succession()
            .args(["exec", "quorum", "--run", &run_id, "--", "sh", "-c", srvr])
            .output()?;
        let ex = String::from_utf8_lossy(&out.stdout);
        if ex.matches("Mode: ").count() != 3 {
            return Err(fail(format!(
                "exec on a role should reach every quorum node\n{}",
                output_text(&out)
            )));
        }
        Ok(())
    })();
    let out = succession().args(["down", "--run", &run_id]).output()?;
    result?;
    if !out.status.success() {
        return Err(fail(format!("down failed\n{}", output_text(&out))));
    }
    assert_clean(&run_id)
}

/// Brings a topology up with `succession up`; returns its run id.
pub(super) fn up(topology: &str) -> Result<String, Failed> {
    bring_up(&[topology]).map(|(run_id, _)| run_id)
}

/// Runs `body` against a cluster that is up, then takes it down and checks nothing is left.
pub(super) fn with_cluster(topology: &str, body: impl FnOnce(&str) -> TestResult) -> TestResult {
    let run_id = up(topology)?;
    let result = body(&run_id);
    let out = succession().args(["down", "--run", &run_id]).output()?;
    result?;
    if !out.status.success() {
        return Err(fail(format!("down failed\n{}", output_text(&out))));
    }
    assert_clean(&run_id)
}

/// Runs `body` with the inventory of a cluster that is up (as `with_cluster`), then removes
/// the inventory file.
pub(super) fn with_inventory(
    topology: &str,
    body: impl FnOnce(&str, &Path) -> TestResult,
) -> TestResult {
    with_cluster(topology, |run_id| {
        let inventory = write_inventory(run_id)?;
        let result = body(run_id, &inventory);
        let _ = std::fs::remove_file(&inventory);
        result
    })
}

pub(super) fn write_inventory(run_id: &str) -> Result<PathBuf, Failed> {
    let path = std::env::temp_dir().join(format!("succession-inventory-{run_id}.toml"));
    let out = succession()
        .args(["inventory", "--run", run_id, "--output"])
        .arg(&path)
        .output()?;
    if !out.status.success() {
        return Err(fail(format!("inventory failed\n{}", output_text(&out))));
    }
    Ok(path)
}

/// What a preflight must not change: every etcd member's revision and raft term, every
/// ZooKeeper server's zxid and mode, and the status table (pids, states, since).
pub(super) fn cell_state(run_id: &str, inventory: &Path) -> Result<Vec<String>, Failed> {
    use succession::probe::etcd::EtcdProbe;
    use succession::probe::zookeeper::{four_letter, parse_mntr, parse_srvr};
    let inv = succession::preflight::Inventory::load(inventory).map_err(|e| fail(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut state = runtime.block_on(async {
        let etcd = EtcdProbe::default();
        let mut lines = Vec::new();
        for n in &inv.nodes {
            if let Some(url) = &n.etcd {
                let s = etcd.status(url).await?;
                // The raft index too: a read that goes through raft (`alarm list` does)
                // adds an entry without moving the revision.
                lines.push(format!(
                    "{} etcd revision {} term {} raft index {}",
                    n.name, s.revision, s.raft_term, s.detail.raft_index
                ));
            }
            if let Some(addr) = n.zookeeper {
                let reply = four_letter(addr, "srvr", Duration::from_secs(2)).await?;
                let s = parse_srvr(&reply)?;
                // The sessions the ensemble holds (the leader counts them): preflight opens
                // none, so none may appear or end across it.
                let mntr = parse_mntr(&four_letter(addr, "mntr", Duration::from_secs(2)).await?);
                let sessions = mntr
                    .get("zk_global_sessions")
                    .map(|n| format!(" sessions {n}"))
                    .unwrap_or_default();
                lines.push(format!(
                    "{} zookeeper zxid {:?} mode {:?}{sessions}",
                    n.name, s.zxid, s.mode
                ));
            }
        }
        Ok::<_, String>(lines)
    })?;
    let out = succession().args(["status", "--run", run_id]).output()?;
    if !out.status.success() {
        return Err(fail(format!("status failed\n{}", output_text(&out))));
    }
    state.push(String::from_utf8_lossy(&out.stdout).into_owned());
    Ok(state)
}

pub(super) fn preflight_changes_nothing() -> TestResult {
    // The seed's whole cell: etcd, ZooKeeper, the masters and the neighbour tables are all
    // checked, and nothing of it may move.
    with_cluster("topologies/cell.toml", |run_id| {
        let inventory = write_inventory(run_id)?;
        // A quiet cell first: the same state over a quiet window, so that only the preflight
        // could move anything after. Two looks in a row were not enough: the masters'
        // ZooKeeper sessions still settled a few transactions after them now and then.
        let deadline = Instant::now() + Duration::from_secs(40);
        let quiet = Duration::from_secs(3);
        let mut before = cell_state(run_id, &inventory)?;
        let mut since = Instant::now();
        loop {
            let again = cell_state(run_id, &inventory)?;
            if again != before {
                before = again;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "the cell never stayed quiet for {quiet:?}: last {before:#?}"
                )));
            }
        }
        // Debian's etcd 3.4.23 carries a known watch bug: the version gate warns, and
        // warnings alone exit 5 unless they are allowed.
        let out = succession()
            .arg("preflight")
            .arg("--inventory")
            .arg(&inventory)
            .output()?;
        let table = output_text(&out);
        if out.status.code() != Some(5)
            || !table.contains("24 checks: 23 pass, 1 warn, 0 fail, 0 unknown")
            || !table.contains("etcd/issues/15271")
        {
            return Err(fail(format!(
                "a healthy cell must pass every check but the version gate's warning\n{table}"
            )));
        }
        let junit = inventory.with_extension("xml");
        let out = succession()
            .arg("preflight")
            .arg("--inventory")
            .arg(&inventory)
            .args(["--format", "json", "--allow-warnings", "--junit"])
            .arg(&junit)
            .output()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("bad JSON: {e}\n{}", output_text(&out))))?;
        let xml = std::fs::read_to_string(&junit).unwrap_or_default();
        let _ = std::fs::remove_file(&junit);
        if xml.matches("<testcase ").count() != 24 || xml.contains("<failure") {
            return Err(fail(format!(
                "the JUnit report must hold 24 passing cases\n{xml}"
            )));
        }
        if out.status.code() != Some(0) || json["verdict"] != "pass-with-warnings" {
            return Err(fail(format!(
                "JSON preflight did not pass\n{}",
                output_text(&out)
            )));
        }
        let after = cell_state(run_id, &inventory)?;
        let _ = std::fs::remove_file(&inventory);
        if before != after {
            return Err(fail(format!(
                "preflight changed the cell:\nbefore: {before:#?}\nafter: {after:#?}"
            )));
        }
        if !before.iter().any(|l| l.contains("etcd revision"))
            || !before.iter().any(|l| l.contains("zxid Some"))
            || !before.iter().any(|l| l.contains(" sessions "))
        {
            return Err(fail(format!("nothing recorded to compare: {before:#?}")));
        }
        Ok(())
    })
}

pub(super) fn preflight_flags_out_of_order_ids() -> TestResult {
    with_cluster("topologies/zookeeper-five.toml", |run_id| {
        let inventory = write_inventory(run_id)?;
        let out = succession()
            .arg("preflight")
            .arg("--inventory")
            .arg(&inventory)
            .args(["--format", "json"])
            .output()?;
        let _ = std::fs::remove_file(&inventory);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("bad JSON: {e}\n{}", output_text(&out))))?;
        let ids = &json["zookeeper_ids"];
        let failed: Vec<&str> = json["checks"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|c| c["outcome"] == "fail")
                    .filter_map(|c| c["check"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        if out.status.code() != Some(1)
            || failed != ["ids match what the upgrade writes"]
            || ids["conflicts"].as_array().is_none_or(|c| c.is_empty())
            || ids["plan"].as_array().is_none_or(|p| p.is_empty())
        {
            return Err(fail(format!(
                "out-of-order ids must fail exactly the id check, with conflicts and a plan\n{}",
                output_text(&out)
            )));
        }
        Ok(())
    })
}
