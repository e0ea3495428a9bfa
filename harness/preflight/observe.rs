//! Observes a live cell for a preflight, changing nothing: etcd status (with the alarms it
//! reports), member list, the quota in its metrics, `hashkv` at a revision every member reached and one
//! linearizable read (timed); ZooKeeper `srvr` and `conf` (four-letter words open no session);
//! `GET /redirect` and `GET /v2/leader`; `ip` listings on nodes the inventory can reach.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;

use super::inventory::{Inventory, InventoryNode};
use super::net::{node_net, NodeNet};
use super::{EtcdSeen, LeaderSeen, Observations, ZookeeperSeen, ZookeeperWords};
use crate::probe::etcd::EtcdProbe;
use crate::probe::masters::{self, HttpLeader};
use crate::probe::zookeeper::{
    four_letter, parse_conf, parse_mntr, parse_srvr, refused_word, Mode,
};

/// How long any one question may take.
const TIMEOUT: Duration = Duration::from_secs(3);
/// How long a command run on a node may take.
const EXEC_TIMEOUT: Duration = Duration::from_secs(15);

/// Asks every node of the inventory what it knows.
pub async fn observe(inv: &Inventory) -> Observations {
    let etcd = EtcdProbe::new(TIMEOUT);
    let http = masters::http_client(TIMEOUT);
    let (etcd_seen, zk_seen, mesos_seen, marathon_seen, nets) = tokio::join!(
        join_all(inv.nodes.iter().filter_map(|n| {
            let url = n.etcd.clone()?;
            let (etcd, http) = (&etcd, &http);
            Some(async move { (n.name.clone(), etcd_member(etcd, http, &url).await) })
        })),
        join_all(inv.nodes.iter().filter_map(|n| {
            let addr = n.zookeeper?;
            Some(async move { (n.name.clone(), zookeeper_server(addr).await) })
        })),
        join_all(inv.nodes.iter().filter_map(|n| {
            let addr = n.mesos?;
            let http = &http;
            Some(async move { (n.name.clone(), http_leader(http, addr, true).await) })
        })),
        join_all(inv.nodes.iter().filter_map(|n| {
            let addr = n.marathon?;
            let http = &http;
            Some(async move { (n.name.clone(), http_leader(http, addr, false).await) })
        })),
        join_all(
            inv.nodes
                .iter()
                .filter(|n| n.exec.is_some())
                .map(|n| async move { (n.name.clone(), network(n).await) })
        ),
    );
    let border_reads = join_all(
        inv.nodes
            .iter()
            .flat_map(|n| n.border_reads.iter())
            .map(|url| {
                let http = &http;
                async move {
                    let status = http
                        .get(url)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .map_err(|e| format!("GET {url}: {e}"));
                    (url.clone(), status)
                }
            }),
    )
    .await
    .into_iter()
    .collect();
    let mut etcd_seen: BTreeMap<String, Result<EtcdSeen, String>> = etcd_seen.into_iter().collect();
    hash_members(&etcd, inv, &mut etcd_seen).await;
    let mut zookeeper = BTreeMap::new();
    let mut zookeeper_words = BTreeMap::new();
    for (name, seen) in zk_seen {
        match seen {
            Ok((state, words)) => {
                zookeeper.insert(name.clone(), Ok(state));
                zookeeper_words.insert(name, words);
            }
            Err(e) => {
                zookeeper.insert(name, Err(e));
            }
        }
    }
    Observations {
        etcd: etcd_seen,
        zookeeper,
        zookeeper_words,
        mesos: mesos_seen.into_iter().collect(),
        marathon: marathon_seen.into_iter().collect(),
        nets: nets.into_iter().collect::<BTreeMap<_, _>>(),
        border_reads,
    }
}

async fn etcd_member(
    etcd: &EtcdProbe,
    http: &reqwest::Client,
    url: &str,
) -> Result<EtcdSeen, String> {
    let status = etcd.status(url).await?;
    let members = etcd.members(url).await?;
    let started = std::time::Instant::now();
    let health = etcd.health(url).await.map_err(String::from);
    let read_ms = started.elapsed().as_millis() as u64;
    let quota_bytes = etcd_quota(http, url).await;
    Ok(EtcdSeen {
        status,
        members,
        health,
        read_ms,
        quota_bytes,
        hash: None,
    })
}

/// The backend quota a member runs with, from its Prometheus metrics (a GET).
async fn etcd_quota(http: &reqwest::Client, url: &str) -> Result<u64, String> {
    let metrics = format!("{}/metrics", url.trim_end_matches('/'));
    let text = http
        .get(&metrics)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {metrics}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("GET {metrics}: {e}"))?;
    quota_of(&text).ok_or_else(|| format!("{metrics} has no etcd_server_quota_backend_bytes"))
}

/// `etcd_server_quota_backend_bytes` in a Prometheus text exposition.
pub(super) fn quota_of(metrics: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix("etcd_server_quota_backend_bytes ")?;
        // Prometheus prints large gauges in exponent form (2.147483648e+09).
        value.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

/// Every member that answered hashes its keys up to the lowest revision among them, the one
/// every member has reached: equal stores give equal hashes there.
async fn hash_members(
    etcd: &EtcdProbe,
    inv: &Inventory,
    seen: &mut BTreeMap<String, Result<EtcdSeen, String>>,
) {
    let Some(revision) = seen
        .values()
        .filter_map(|s| s.as_ref().ok())
        .map(|s| s.status.revision)
        .min()
    else {
        return;
    };
    let urls: Vec<(String, String)> = inv
        .nodes
        .iter()
        .filter(|n| seen.get(&n.name).is_some_and(Result::is_ok))
        .filter_map(|n| Some((n.name.clone(), n.etcd.clone()?)))
        .collect();
    let hash_all = |at: i64| {
        join_all(urls.iter().map(move |(name, url)| async move {
            (name, etcd.hash_kv(url, at).await.map_err(String::from))
        }))
    };
    let mut hashes = hash_all(revision).await;
    // A store compacted at its current revision (a quiet cluster, automatic compaction) cannot
    // be hashed there: each member hashes at its own current revision instead, and the check
    // compares them only when those revisions are one.
    if hashes
        .iter()
        .any(|(_, h)| h.as_ref().is_err_and(|e| e.contains("compacted")))
    {
        hashes = hash_all(0).await;
    }
    for (name, hash) in hashes {
        if let Some(Ok(s)) = seen.get_mut(name) {
            s.hash = Some(hash);
        }
    }
}

/// One ZooKeeper server, read with every word preflight uses; a word the server's whitelist
/// refuses leaves what it would show unknown, not the server unreachable.
async fn zookeeper_server(addr: SocketAddr) -> Result<(ZookeeperSeen, ZookeeperWords), String> {
    let word = |w: &'static str| async move {
        four_letter(addr, w, TIMEOUT)
            .await
            .map_err(String::from)
            .map(|reply| (!refused_word(&reply)).then_some(reply))
    };
    let Some(srvr) = word("srvr").await? else {
        return Err(format!(
            "{addr} refuses `srvr` (not in its 4lw.commands.whitelist): nothing can be read"
        ));
    };
    let srvr = parse_srvr(&srvr).map_err(|e| e.to_string())?;
    let mut words = ZookeeperWords::default();
    let serving = matches!(srvr.mode, Mode::Leader | Mode::Follower | Mode::Observer);
    let conf = match serving {
        true => match word("conf").await? {
            Some(reply) => Some(parse_conf(&reply).map_err(|e| e.to_string())?),
            None => {
                words.refused.push("conf".to_string());
                None
            }
        },
        false => None,
    };
    match word("mntr").await? {
        Some(reply) => words.mntr = Some(parse_mntr(&reply)),
        None => words.refused.push("mntr".to_string()),
    }
    match word("isro").await? {
        Some(reply) => words.isro = Some(reply.trim().to_string()),
        None => words.refused.push("isro".to_string()),
    }
    let synced_followers = match srvr.mode {
        Mode::Leader => words
            .mntr
            .as_ref()
            .and_then(|m| m.get("zk_synced_followers"))
            .and_then(|v| v.parse().ok()),
        _ => None,
    };
    Ok((
        ZookeeperSeen {
            mode: srvr.mode,
            zxid: srvr.zxid,
            conf,
            synced_followers,
        },
        words,
    ))
}

/// A master's answer; Err only when nothing listens there.
async fn http_leader(
    client: &reqwest::Client,
    addr: SocketAddr,
    mesos: bool,
) -> Result<LeaderSeen, String> {
    // Reachability first, so an answer the API does not document counts as a failed check
    // and only a silent port as an unreachable node.
    match tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("failed to connect to {addr}: {e}")),
        Err(_) => {
            return Err(format!(
                "failed to connect to {addr}: no answer within {} ms",
                TIMEOUT.as_millis()
            ))
        }
    }
    let answer = if mesos {
        masters::mesos_leader(client, addr).await
    } else {
        masters::marathon_leader(client, addr).await
    };
    Ok(match answer {
        HttpLeader::Leader(host) => LeaderSeen::Leader(host),
        HttpLeader::None(why) => LeaderSeen::NoLeader(why),
        HttpLeader::Unreachable(what) => LeaderSeen::Unexpected(what.detail),
    })
}

async fn run_on(node: &InventoryNode, args: &[&str]) -> Result<String, String> {
    let prefix = node.exec.clone().unwrap_or_default();
    let Some((program, rest)) = prefix.split_first() else {
        return Err("no `exec`".to_string());
    };
    let shown = format!("{} {}", prefix.join(" "), args.join(" "));
    let child = tokio::process::Command::new(program)
        .args(rest)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(EXEC_TIMEOUT, child)
        .await
        .map_err(|_| {
            format!(
                "`{shown}` did not finish within {} s",
                EXEC_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("failed to run `{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn network(node: &InventoryNode) -> Result<NodeNet, String> {
    let links = run_on(node, &["ip", "-o", "link", "show"]).await?;
    let addrs = run_on(node, &["ip", "-o", "-4", "addr", "show"]).await?;
    let neigh = run_on(node, &["ip", "neigh", "show"]).await?;
    Ok(node_net(&links, &addrs, &neigh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers every connection with one recorded HTTP response.
    async fn responder(response: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // A request, or the bare connect of the reachability check.
                    let _ = stream.read(&mut buf).await;
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        addr
    }

    fn client() -> reqwest::Client {
        masters::http_client(Duration::from_secs(2))
    }

    #[test]
    fn the_quota_is_read_from_the_metrics_in_either_notation() {
        let metrics = "# HELP etcd_server_quota_backend_bytes Current backend storage quota size in bytes.\n# TYPE etcd_server_quota_backend_bytes gauge\netcd_server_quota_backend_bytes 2.147483648e+09\netcd_server_has_leader 1\n";
        assert_eq!(quota_of(metrics), Some(2_147_483_648));
        assert_eq!(
            quota_of("etcd_server_quota_backend_bytes 65536\n"),
            Some(65_536)
        );
        assert_eq!(quota_of("etcd_server_has_leader 1\n"), None);
    }

    #[tokio::test]
    async fn mesos_redirect_location_names_the_leader() {
        let addr = responder(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: //master-2.cell-1.dc-1.demo.lan:5050\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(
            http_leader(&client(), addr, true).await,
            Ok(LeaderSeen::Leader(
                "master-2.cell-1.dc-1.demo.lan".to_string()
            ))
        );
    }

    #[tokio::test]
    async fn mesos_without_a_leader_answers_503() {
        let addr = responder(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(matches!(
            http_leader(&client(), addr, true).await,
            Ok(LeaderSeen::NoLeader(_))
        ));
    }

    #[tokio::test]
    async fn marathon_v2_leader_names_the_leader_or_404s() {
        let body = "{\"leader\":\"master-1.cell-1.dc-1.demo.lan:8080\"}";
        let response: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let addr = responder(response).await;
        assert_eq!(
            http_leader(&client(), addr, false).await,
            Ok(LeaderSeen::Leader(
                "master-1.cell-1.dc-1.demo.lan".to_string()
            ))
        );
        let body = "{\"message\":\"There is no leader\"}";
        let response: &'static str = Box::leak(
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let addr = responder(response).await;
        assert!(matches!(
            http_leader(&client(), addr, false).await,
            Ok(LeaderSeen::NoLeader(_))
        ));
    }

    #[tokio::test]
    async fn an_undocumented_answer_is_a_failure_and_silence_is_unreachable() {
        let addr = responder(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(matches!(
            http_leader(&client(), addr, true).await,
            Ok(LeaderSeen::Unexpected(_))
        ));
        // A port nothing listens on.
        let closed = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        assert!(http_leader(&client(), closed, true).await.is_err());
    }
}
