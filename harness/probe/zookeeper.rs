//! ZooKeeper's four-letter words over plain TCP (`echo srvr | ncat host 2181`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::answer::NoAnswer;

/// A server's role as `srvr` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `Mode: leader`
    Leader,
    /// `Mode: follower`
    Follower,
    /// `Mode: observer`
    Observer,
    /// `Mode: standalone`
    Standalone,
    /// "This ZooKeeper instance is not currently serving requests"
    NotServing,
}

/// What `srvr` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Srvr {
    /// Its role.
    pub mode: Mode,
    /// The last zxid it saw, if reported.
    pub zxid: Option<u64>,
}

/// A ZooKeeper reply the harness could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// `srvr` named a mode the harness does not know.
    #[error("unknown mode `{0}` in srvr reply")]
    UnknownMode(String),
    /// The server refuses a four-letter word.
    #[error("`{0}` is not whitelisted (4lw.commands.whitelist)")]
    NotWhitelisted(&'static str),
    /// `srvr` answered without a mode.
    #[error("no `Mode:` line in srvr reply {0:?}")]
    NoMode(String),
    /// `conf` answered without membership.
    #[error("no serverId or server lines in conf reply {0:?}")]
    NoMembership(String),
    /// The admin server answered with an error.
    #[error("the admin server answers: {0}")]
    Admin(String),
    /// The admin server's `leader` answer names no leader.
    #[error("no leader_id in {0}")]
    NoLeaderId(String),
}

// Where an unreadable reply is one reason among others, as text.
impl From<ReplyError> for String {
    fn from(e: ReplyError) -> String {
        e.to_string()
    }
}

/// Parses the reply to `srvr`.
pub fn parse_srvr(text: &str) -> Result<Srvr, ReplyError> {
    if text.contains("not currently serving requests") {
        return Ok(Srvr {
            mode: Mode::NotServing,
            zxid: None,
        });
    }
    let mut mode = None;
    let mut zxid = None;
    for line in text.lines() {
        if let Some(m) = line.strip_prefix("Mode:") {
            mode = Some(match m.trim() {
                "leader" => Mode::Leader,
                "follower" => Mode::Follower,
                "observer" => Mode::Observer,
                "standalone" => Mode::Standalone,
                other => return Err(ReplyError::UnknownMode(other.to_string())),
            });
        } else if let Some(z) = line.strip_prefix("Zxid:") {
            zxid = u64::from_str_radix(z.trim().trim_start_matches("0x"), 16).ok();
        }
    }
    match mode {
        Some(mode) => Ok(Srvr { mode, zxid }),
        None if text.contains("is not executed because it is not in the whitelist") => {
            Err(ReplyError::NotWhitelisted("srvr"))
        }
        None => Err(ReplyError::NoMode(text.trim().to_string())),
    }
}

/// One `server.N=` line of `conf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfServer {
    /// Host or address.
    pub host: String,
    /// `participant` or `observer`.
    pub role: String,
}

/// What `conf` says of membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conf {
    /// This server's id.
    pub server_id: Option<u64>,
    /// The ensemble by id.
    pub servers: BTreeMap<u64, ConfServer>,
}

/// Parses the reply to `conf`.
pub fn parse_conf(text: &str) -> Result<Conf, ReplyError> {
    let mut server_id = None;
    let mut servers = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(id) = line.strip_prefix("serverId=") {
            server_id = id.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("server.") {
            let Some((id, spec)) = rest.split_once('=') else {
                continue;
            };
            let Ok(id) = id.parse::<u64>() else {
                continue;
            };
            // host:quorumPort:electionPort[:role][;clientAddr:clientPort]
            let spec = spec.split(';').next().unwrap_or(spec);
            let parts: Vec<&str> = spec.split(':').collect();
            let host = parts.first().copied().unwrap_or("").to_string();
            let role = parts.get(3).copied().unwrap_or("participant").to_string();
            servers.insert(id, ConfServer { host, role });
        }
    }
    if server_id.is_none() && servers.is_empty() {
        if text.contains("not in the whitelist") {
            return Err(ReplyError::NotWhitelisted("conf"));
        }
        return Err(ReplyError::NoMembership(text.trim().to_string()));
    }
    Ok(Conf { server_id, servers })
}

/// Parses the reply to `mntr`: one `key<TAB>value` per line.
/// Whether a server refused a four-letter word because `4lw.commands.whitelist` leaves it out
/// (it answers with a sentence instead of closing the connection).
pub fn refused_word(reply: &str) -> bool {
    reply.contains("is not executed because it is not in the whitelist")
}

pub fn parse_mntr(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.split_once('\t')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// What one server says of itself: `srvr`; while it serves, `conf`; while it leads, `mntr`'s
/// count of the voting followers synced with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerState {
    /// `srvr` Mode.
    pub mode: Mode,
    /// `srvr` Zxid.
    pub zxid: Option<u64>,
    /// `conf` (only a serving server answers it).
    pub conf: Option<Conf>,
    /// `mntr`'s `zk_synced_followers`, when it leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_followers: Option<usize>,
}

impl ServerState {
    /// Whether it serves as leader or follower.
    pub fn serves(&self) -> bool {
        matches!(self.mode, Mode::Leader | Mode::Follower)
    }
}

/// Asks one server `srvr`, then `conf` while it serves and `mntr` while it leads: the one way
/// every part of the harness reads a ZooKeeper server.
pub async fn server_state(addr: SocketAddr, timeout: Duration) -> Result<ServerState, NoAnswer> {
    let srvr = parse_srvr(&four_letter(addr, "srvr", timeout).await?)
        .map_err(|e| NoAnswer::failed(e.to_string()))?;
    let conf = match srvr.mode {
        Mode::Leader | Mode::Follower | Mode::Observer => Some(
            parse_conf(&four_letter(addr, "conf", timeout).await?)
                .map_err(|e| NoAnswer::failed(e.to_string()))?,
        ),
        _ => None,
    };
    let synced_followers = match srvr.mode {
        Mode::Leader => parse_mntr(&four_letter(addr, "mntr", timeout).await?)
            .get("zk_synced_followers")
            .and_then(|v| v.parse().ok()),
        _ => None,
    };
    Ok(ServerState {
        mode: srvr.mode,
        zxid: srvr.zxid,
        conf,
        synced_followers,
    })
}

/// The id of the server a ZooKeeper server follows (its own, when it leads), from its admin
/// server's `leader` command (`GET /commands/leader`, ZooKeeper 3.6 and later): the one place a
/// follower itself says whom it follows.
pub async fn admin_leader(http: &reqwest::Client, addr: SocketAddr) -> Result<u64, NoAnswer> {
    let url = format!("http://{addr}/commands/leader");
    super::answer::get_json(http, &url, parse_admin_leader).await
}

/// The leader id out of the admin server's `leader` answer.
pub fn parse_admin_leader(body: &serde_json::Value) -> Result<u64, ReplyError> {
    if let Some(e) = body.get("error").and_then(|e| e.as_str()) {
        return Err(ReplyError::Admin(e.to_string()));
    }
    body.get("leader_id")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| ReplyError::NoLeaderId(body.to_string()))
}

pub async fn four_letter(
    addr: SocketAddr,
    word: &str,
    timeout: Duration,
) -> Result<String, NoAnswer> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| NoAnswer::io(&format!("connect to {addr}"), &e))?;
        stream
            .write_all(word.as_bytes())
            .await
            .map_err(|e| NoAnswer::io(&format!("send `{word}` to {addr}"), &e))?;
        let mut reply = String::new();
        stream
            .read_to_string(&mut reply)
            .await
            .map_err(|e| NoAnswer::io(&format!("read the `{word}` reply from {addr}"), &e))?;
        Ok(reply)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(NoAnswer::timed_out(&format!("`{word}` at {addr}"), timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srvr_modes_are_read() {
        let leader = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nReceived: 3\nSent: 2\nConnections: 1\nOutstanding: 0\nZxid: 0x100000002\nMode: leader\nNode count: 5\nProposal sizes last/min/max: -1/-1/-1\n";
        assert_eq!(
            parse_srvr(leader).unwrap(),
            Srvr {
                mode: Mode::Leader,
                zxid: Some(0x1_0000_0002)
            }
        );
        assert_eq!(parse_srvr("Mode: follower\n").unwrap().mode, Mode::Follower);
        assert_eq!(
            parse_srvr("This ZooKeeper instance is not currently serving requests\n")
                .unwrap()
                .mode,
            Mode::NotServing
        );
        assert!(parse_srvr("srvr is not executed because it is not in the whitelist.\n").is_err());
    }

    #[test]
    fn mntr_pairs_are_read() {
        let m = parse_mntr(
            "zk_version\t3.8.0\nzk_peer_state\tleading - broadcast\nzk_synced_followers\t2\n",
        );
        assert_eq!(m["zk_synced_followers"], "2");
        assert_eq!(m["zk_peer_state"], "leading - broadcast");
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn conf_membership_is_read() {
        let text = "clientPort=2181\nserverId=2\ninitLimit=10\nserver.1=10.0.0.10:2888:3888:participant\nserver.2=10.0.0.11:2888:3888:participant;0.0.0.0:2181\nversion=0\n";
        let conf = parse_conf(text).unwrap();
        assert_eq!(conf.server_id, Some(2));
        assert_eq!(conf.servers.len(), 2);
        assert_eq!(conf.servers[&2].host, "10.0.0.11");
        assert_eq!(conf.servers[&2].role, "participant");
    }
}
