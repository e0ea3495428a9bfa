//! Observes a live cell for a preflight, changing nothing: etcd status, member list and one
//! linearizable read; ZooKeeper `srvr` and `conf` (four-letter words open no session);
//! `GET /redirect` and `GET /v2/leader`; `ip` listings on nodes the inventory can reach.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;

use super::inventory::{Inventory, InventoryNode};
use super::net::{node_net, NodeNet};
use super::{EtcdSeen, LeaderSeen, Observations, ZookeeperSeen};
use crate::probe::etcd::EtcdProbe;
use crate::probe::masters::{self, HttpLeader};
use crate::probe::zookeeper::server_state;

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
            let etcd = &etcd;
            Some(async move { (n.name.clone(), etcd_member(etcd, &url).await) })
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
    Observations {
        etcd: etcd_seen.into_iter().collect(),
        zookeeper: zk_seen.into_iter().collect(),
        mesos: mesos_seen.into_iter().collect(),
        marathon: marathon_seen.into_iter().collect(),
        nets: nets.into_iter().collect::<BTreeMap<_, _>>(),
    }
}

async fn etcd_member(etcd: &EtcdProbe, url: &str) -> Result<EtcdSeen, String> {
    let status = etcd.status(url).await?;
    let members = etcd.members(url).await?;
    let health = etcd.health(url).await.map_err(String::from);
    Ok(EtcdSeen {
        status,
        members,
        health,
    })
}

async fn zookeeper_server(addr: SocketAddr) -> Result<ZookeeperSeen, String> {
    server_state(addr, TIMEOUT).await.map_err(String::from)
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
