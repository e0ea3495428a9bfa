//! `succession preflight` against hazards made for real on a live cluster, one after the
//! other, each shown caught by its check with the right evidence and the cell passing again
//! once it is undone. etcd: a learner added and never started, a member removed while its
//! process keeps running (cut off from its peers when it was removed), and a tiny quota filled
//! until etcd raises NOSPACE. ZooKeeper: a server whose whitelist allows only `srvr`, a server
//! started with a different ensemble, and a follower stopped.

use super::*;

/// One preflight's JSON, and its exit code.
pub(super) fn preflight_json(inventory: &Path) -> Result<(Option<i32>, serde_json::Value), Failed> {
    let out = succession()
        .arg("preflight")
        .arg("--inventory")
        .arg(inventory)
        .args(["--format", "json"])
        .output()?;
    let json = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("bad JSON: {e}\n{}", output_text(&out))))?;
    Ok((out.status.code(), json))
}

/// The outcome and evidence of the check `name` of `service`.
pub(super) fn service_row(json: &serde_json::Value, service: &str, name: &str) -> (String, String) {
    json["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["service"] == service && c["check"] == name)
        .map(|c| {
            (
                c["outcome"].as_str().unwrap_or_default().to_string(),
                c["evidence"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_default()
}

/// Fails unless the etcd check `name` came out `outcome` with every `words` in its evidence.
fn expect_row(json: &serde_json::Value, name: &str, outcome: &str, words: &[&str]) -> TestResult {
    expect_service_row(json, "etcd", name, outcome, words)
}

/// Fails unless the check `name` of `service` came out `outcome` with every `words` in its
/// evidence.
fn expect_service_row(
    json: &serde_json::Value,
    service: &str,
    name: &str,
    outcome: &str,
    words: &[&str],
) -> TestResult {
    let (got, evidence) = service_row(json, service, name);
    if got != outcome || !words.iter().all(|w| evidence.contains(w)) {
        return Err(fail(format!(
            "`{service}: {name}` should be {outcome} naming {words:?}, got {got}: {evidence}\n{json:#}"
        )));
    }
    Ok(())
}

/// Runs a shell command on a node of the run; its standard output.
fn on_node(run_id: &str, node: &str, script: &str) -> Result<String, Failed> {
    bash_on(run_id, node, script)
}

/// Runs a bash script on a node of the run (arrays, `mapfile`); its standard output.
pub(super) fn bash_on(run_id: &str, node: &str, script: &str) -> Result<String, Failed> {
    let out = succession()
        .args(["exec", node, "--run", run_id, "--", "bash", "-c", script])
        .output()?;
    if !out.status.success() {
        return Err(fail(format!(
            "`{script}` on {node} failed\n{}",
            output_text(&out)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a membership change on a node, again until etcd takes it (it refuses one while the
/// cluster is young: `--strict-reconfig-check` wants every member connected for a while), to
/// a deadline.
fn membership(run_id: &str, node: &str, script: &str) -> Result<String, Failed> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match on_node(run_id, node, script) {
            Ok(out) => return Ok(out),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The id of the member at `peer_url`, from `member list`.
fn member_id(run_id: &str, etcdctl: &str, peer_url: &str) -> Result<String, Failed> {
    let list = membership(run_id, "quorum-1", &format!("{etcdctl} member list"))?;
    list.lines()
        .find(|l| l.contains(peer_url))
        .and_then(|l| l.split(',').next())
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| fail(format!("no member at {peer_url}:\n{list}")))
}

/// Removes a member, retried until it is gone (a remove whose answer timed out may have been
/// applied all the same).
fn remove_member(run_id: &str, etcdctl: &str, id: &str) -> TestResult {
    membership(
        run_id,
        "quorum-1",
        &format!("{etcdctl} member remove {id} || ! {etcdctl} member list | grep -q '^{id},'"),
    )
    .map(|_| ())
}

/// Polls a preflight until every check in `rows` of `service` passes (a hazard undone takes
/// a moment to clear everywhere: a restarted server rejoining, an alarm disarmed), to a
/// deadline; that preflight's exit code and JSON, or which row did not pass.
fn until_clean(
    inventory: &Path,
    service: &str,
    rows: &[&str],
) -> Result<(Option<i32>, serde_json::Value), Failed> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, json) = preflight_json(inventory)?;
        let unclean = rows
            .iter()
            .find(|name| service_row(&json, service, name).0 != "pass");
        match unclean {
            None => return Ok((code, json)),
            Some(name) if Instant::now() >= deadline => {
                let (got, evidence) = service_row(&json, service, name);
                return Err(fail(format!(
                    "`{service}: {name}` never passed again: {got}: {evidence}\n{json:#}"
                )));
            }
            Some(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Polls a preflight until the etcd check `name` comes out `outcome` (a hazard takes a
/// moment to show: an alarm raised, a member list replicated), to a deadline.
fn until_row(inventory: &Path, name: &str, outcome: &str) -> Result<serde_json::Value, Failed> {
    until_service_row(inventory, "etcd", name, outcome).map(|(_, json)| json)
}

/// Polls a preflight until the check `name` of `service` comes out `outcome`, to a deadline;
/// that preflight's exit code and JSON.
fn until_service_row(
    inventory: &Path,
    service: &str,
    name: &str,
    outcome: &str,
) -> Result<(Option<i32>, serde_json::Value), Failed> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, json) = preflight_json(inventory)?;
        if service_row(&json, service, name).0 == outcome || Instant::now() >= deadline {
            return Ok((code, json));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub(super) fn etcd_hazards_are_caught() -> TestResult {
    with_inventory("tests/fixtures/topologies/etcd-tiny-quota.toml", hazards)
}

fn hazards(run_id: &str, inventory: &Path) -> TestResult {
    let inv = succession::preflight::Inventory::load(inventory).map_err(|e| fail(e.to_string()))?;
    let address = |short: &str| {
        inv.nodes
            .iter()
            .find(|n| n.short() == short)
            .map(|n| n.address.to_string())
            .unwrap_or_default()
    };
    let (q1, q3) = (address("quorum-1"), address("quorum-3"));
    // A command timeout that rides out a loaded machine (etcdctl's own is 5 s).
    let etcdctl = |at: &str| {
        format!("ETCDCTL_API=3 etcdctl --command-timeout=15s --endpoints http://{at}:2379")
    };
    const CLEAN: [&str; 6] = [
        "no learners or unstarted members",
        "no removed member still answers",
        "endpoint status agrees",
        "key-value hashes agree",
        "no alarms",
        "database size within the quota",
    ];
    let (code, json) = until_clean(inventory, "etcd", &CLEAN)?;
    // Debian's 3.4.23: the version gate warns (etcd issue 15271), so warnings alone exit 5.
    expect_row(
        &json,
        "version above the floor, no known bug",
        "warn",
        &["15271"],
    )?;
    if code != Some(5) {
        return Err(fail(format!(
            "a clean cell with a version warning exits 5, not {code:?}"
        )));
    }

    // A learner added and never started.
    // Retried until etcd takes it, and idempotent: an add whose answer timed out (a loaded
    // machine) may have been applied all the same.
    let learner = "http://10.213.254.254:2380";
    membership(
        run_id,
        "quorum-1",
        &format!(
            "{c} member list | grep -q {learner} || {c} member add never-started --learner --peer-urls {learner}",
            c = etcdctl(&q1)
        ),
    )?;
    let id = member_id(run_id, &etcdctl(&q1), learner)?;
    let json = until_row(inventory, "no learners or unstarted members", "fail")?;
    expect_row(
        &json,
        "no learners or unstarted members",
        "fail",
        &["is a learner"],
    )?;
    remove_member(run_id, &etcdctl(&q1), &id)?;
    until_clean(inventory, "etcd", &CLEAN)?;

    // A tiny quota filled until etcd raises NOSPACE.
    on_node(
        run_id,
        "quorum-1",
        &format!(
            // Until etcd refuses for space (a put that timed out on a loaded machine is not
            // the end): at most 120 puts of 100 kB against a 4 MB quota.
            "v=$(head -c 100000 /dev/zero | tr '\\0' x); for i in $(seq 120); do out=$({} put /fill/$i \"$v\" 2>&1) || case \"$out\" in *'space exceeded'*) break;; esac; done",
            etcdctl(&q1)
        ),
    )?;
    let json = until_row(inventory, "no alarms", "fail")?;
    expect_row(&json, "no alarms", "fail", &["NOSPACE"])?;
    expect_row(
        &json,
        "database size within the quota",
        "warn",
        &["at or above 80 %"],
    )?;
    // Undone as an operator would: compact, defragment, disarm.
    on_node(
        run_id,
        "quorum-1",
        &format!(
            "{c} del --prefix /fill/ >/dev/null; rev=$({c} endpoint status -w json | grep -o '\"revision\":[0-9]*' | cut -d: -f2); {c} compact $rev >/dev/null; for m in {a}; do ETCDCTL_API=3 etcdctl --endpoints http://$m:2379 defrag >/dev/null; done; {c} alarm disarm >/dev/null",
            c = etcdctl(&q1),
            a = ["quorum-1", "quorum-2", "quorum-3"].map(address).join(" ")
        ),
    )?;
    until_clean(inventory, "etcd", &CLEAN)?;

    // A member removed while its process keeps running: cut off from its peers first, so it
    // never learns it was removed, then removed through the others.
    let peers: Vec<String> = ["quorum-1", "quorum-2"].map(address).to_vec();
    on_node(
        run_id,
        "quorum-3",
        &peers
            .iter()
            .map(|p| {
                format!("iptables -A INPUT -s {p} -j DROP && iptables -A OUTPUT -d {p} -j DROP")
            })
            .collect::<Vec<_>>()
            .join(" && "),
    )?;
    let id3 = member_id(run_id, &etcdctl(&q1), &format!("http://{q3}:2380"))?;
    remove_member(run_id, &etcdctl(&q1), &id3)?;
    let json = until_row(inventory, "no removed member still answers", "fail")?;
    expect_row(
        &json,
        "no removed member still answers",
        "fail",
        &["quorum-3 answers at", "which the member list no longer has"],
    )?;
    Ok(())
}

/// Restarts ZooKeeper on `node` by hand, as an operator might, on a copy of its zoo.cfg that
/// `edit` (a sed script) changes — or on its own zoo.cfg when `edit` is empty. The server is
/// the same Java command line the harness started; the node's namespace goes with the run.
fn restart_zookeeper_with(run_id: &str, node: &str, edit: &str) -> Result<(), Failed> {
    let cfg = format!("/run/succession/runs/{run_id}/nodes/{node}/zookeeper/zoo.cfg");
    let script = format!(
        r#"set -e
cfg={cfg}
pid=$(pgrep -f "QuorumPeerMain $cfg" | head -1)
mapfile -d '' -t argv < /proc/$pid/cmdline
if [ -n '{edit}' ]; then sed -e '{edit}' $cfg > $cfg.hazard; argv[-1]=$cfg.hazard; else argv[-1]=$cfg; fi
kill -9 $pid
for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
setsid "${{argv[@]}}" > $cfg.hazard.log 2>&1 < /dev/null &
"#
    );
    bash_on(run_id, node, &script).map(|_| ())
}

pub(super) fn zookeeper_hazards_are_caught() -> TestResult {
    with_inventory("tests/fixtures/topologies/trio.toml", zookeeper_hazards)
}

fn zookeeper_hazards(run_id: &str, inventory: &Path) -> TestResult {
    const ROWS: [&str; 10] = [
        "every server serving",
        "one leader backed by a majority",
        "members match the inventory",
        "ids match what the upgrade writes",
        "four-letter words allowed",
        "every follower synced with the leader",
        "every server id unique",
        "every server read-write",
        "no digest mismatches",
        "load below the limits",
    ];
    until_clean(inventory, "zookeeper", &ROWS)?;

    // Only `srvr` allowed on quorum-2: what the other words show there is unknown.
    restart_zookeeper_with(
        run_id,
        "quorum-2",
        "s/^4lw.commands.whitelist=.*/4lw.commands.whitelist=srvr/",
    )?;
    // Judged once it serves again (it restarts, then rejoins), with the words refused.
    let (code, json) = until_service_row(inventory, "zookeeper", "every server serving", "pass")?;
    expect_service_row(
        &json,
        "zookeeper",
        "four-letter words allowed",
        "unknown",
        &[
            "`conf` is not allowed on quorum-2",
            "`mntr` is not allowed on quorum-2",
            "`isro` is not allowed on quorum-2",
        ],
    )?;
    expect_service_row(
        &json,
        "zookeeper",
        "members match the inventory",
        "unknown",
        &["quorum-2"],
    )?;
    if code != Some(4) {
        return Err(fail(format!(
            "an unknown check exits 4, not {code:?}\n{json:#}"
        )));
    }
    restart_zookeeper_with(run_id, "quorum-2", "")?;
    until_clean(inventory, "zookeeper", &ROWS)?;

    // quorum-3 started with a different ensemble: without quorum-1.
    restart_zookeeper_with(run_id, "quorum-3", "/^server.1=/d")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, json) = preflight_json(inventory)?;
        let disagree = service_row(&json, "zookeeper", "members match the inventory");
        let serving = service_row(&json, "zookeeper", "every server serving");
        // Either it joined and lists another ensemble, or it cannot join and does not serve.
        if (disagree.0 == "fail" && disagree.1.contains("servers disagree"))
            || (serving.0 == "fail" && serving.1.contains("quorum-3"))
        {
            break;
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "a server on another ensemble must fail its membership or serving check\n{json:#}"
            )));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    restart_zookeeper_with(run_id, "quorum-3", "")?;
    until_clean(inventory, "zookeeper", &ROWS)?;

    // A follower stopped: the leader's synced followers fall short, naming it.
    let (_, json) = preflight_json(inventory)?;
    let follower = json["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["service"] == "zookeeper" && c["check"] == "one leader backed by a majority")
        .and_then(|c| c["evidence"].as_str())
        .and_then(|e| e.split_whitespace().next())
        .map(|leader| {
            if leader == "quorum-1" {
                "quorum-2"
            } else {
                "quorum-1"
            }
        })
        .unwrap_or("quorum-1")
        .to_string();
    let cfg = format!("/run/succession/runs/{run_id}/nodes/{follower}/zookeeper/zoo.cfg");
    on_node(
        run_id,
        &follower,
        &format!("pkill -9 -f '[Q]uorumPeerMain {cfg}'"),
    )?;
    let (code, json) = until_service_row(
        inventory,
        "zookeeper",
        "every follower synced with the leader",
        "warn",
    )?;
    expect_service_row(
        &json,
        "zookeeper",
        "every follower synced with the leader",
        "warn",
        &[
            "synced followers of 2",
            &format!("not following: {follower} (no answer)"),
        ],
    )?;
    if code != Some(3) {
        return Err(fail(format!(
            "a stopped server is unreachable: exit 3, not {code:?}\n{json:#}"
        )));
    }
    Ok(())
}
