//! The master tier as the seed reads it: Mesos's `/redirect` Location and Marathon's
//! `/v2/leader`, over HTTP — and the same leaders read from ZooKeeper's election znodes, so a
//! scenario can check that the two views agree. Works unchanged against real Mesos/Marathon.

use super::answer::NoAnswer;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The address part of MasterInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Host name.
    pub hostname: String,
    /// Dotted address.
    pub ip: String,
    /// Port.
    pub port: u16,
}

/// What a Mesos master writes into its `json.info_` znode (the fields the harness reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterInfo {
    /// Master id.
    pub id: String,
    /// IPv4 as Mesos stores it: the network-order bytes read as a little-endian integer.
    pub ip: u32,
    /// Port.
    pub port: u16,
    /// `master@IP:PORT`
    pub pid: String,
    /// Host name (`--hostname`): what `/redirect` puts in Location.
    pub hostname: String,
    /// Version.
    pub version: String,
    /// Address.
    pub address: Address,
}

/// What the master tier answered that the harness could not use, or could not ask.
#[derive(Debug, thiserror::Error)]
pub enum MastersError {
    /// A `json.info_` znode that is not a MasterInfo.
    #[error("failed to parse MasterInfo: {0}")]
    MasterInfo(#[source] serde_json::Error),
    /// `/v2/leader` answered something else than `{"leader": "host:port"}`.
    #[error("failed to parse /v2/leader reply {body:?}: {source}")]
    MarathonLeader {
        /// The reply.
        body: String,
        /// Why it is not one.
        source: serde_json::Error,
    },
    /// A latch znode whose data names no host.
    #[error("latch data {0:?} names no host")]
    LatchNoHost(String),
    /// The abdication request was not sent, or not answered.
    #[error("failed to DELETE {url}: {source}")]
    Abdicate {
        /// `http://master:8080/v2/leader`
        url: String,
        /// What the client said.
        source: reqwest::Error,
    },
    /// The abdication request was refused.
    #[error("DELETE {url} answered {status}")]
    AbdicationRefused {
        /// `http://master:8080/v2/leader`
        url: String,
        /// The status it answered.
        status: reqwest::StatusCode,
    },
}

// Where a master-tier failure is one reason among others, as text.
impl From<MastersError> for String {
    fn from(e: MastersError) -> String {
        e.to_string()
    }
}

/// Parses a `json.info_` znode.
pub fn parse_master_info(data: &[u8]) -> Result<MasterInfo, MastersError> {
    serde_json::from_slice(data).map_err(MastersError::MasterInfo)
}

/// The host named by a `/redirect` Location: `//master-1.cell-1.dc-1.demo.lan:5050` (a
/// scheme may precede it, a path may follow).
pub fn location_host(location: &str) -> Option<String> {
    let rest = location.split("//").nth(1)?;
    let authority = rest.split('/').next()?;
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority);
    (!host.is_empty()).then(|| host.to_string())
}

/// The host named by `/v2/leader`'s `{"leader": "host:8080"}`.
pub fn marathon_leader_host(body: &str) -> Result<String, MastersError> {
    #[derive(Deserialize)]
    struct Leader {
        leader: String,
    }
    let leader: Leader =
        serde_json::from_str(body).map_err(|source| MastersError::MarathonLeader {
            body: body.to_string(),
            source,
        })?;
    Ok(leader
        .leader
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or(leader.leader))
}

/// The host a latch znode's data names (`host:8080`).
pub fn latch_host(data: &[u8]) -> Result<String, MastersError> {
    let text = String::from_utf8_lossy(data);
    let host = text
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&text)
        .trim()
        .to_string();
    if host.is_empty() {
        Err(MastersError::LatchNoHost(text.into_owned()))
    } else {
        Ok(host)
    }
}

/// One master's answer about the leader: its host, none, or a failure to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpLeader {
    /// The leader's host name.
    Leader(String),
    /// No leader (503 from `/redirect`, 404 from `/v2/leader`).
    None(String),
    /// Could not ask, or the answer made no sense.
    Unreachable(NoAnswer),
}

/// A client that never follows redirects: `/redirect`'s 307 is the answer.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// `curl -sI http://master:5050/redirect | grep Location`
pub async fn mesos_leader(client: &reqwest::Client, addr: SocketAddr) -> HttpLeader {
    let url = format!("http://{addr}/redirect");
    match client.get(&url).send().await {
        Err(e) => HttpLeader::Unreachable(NoAnswer::http(&url, &e)),
        Ok(r) if r.status().as_u16() == 307 => {
            match r
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .and_then(location_host)
            {
                Some(host) => HttpLeader::Leader(host),
                None => HttpLeader::Unreachable(NoAnswer::failed(format!(
                    "{url} answered 307 without a usable Location"
                ))),
            }
        }
        Ok(r) if r.status().as_u16() == 503 => {
            HttpLeader::None("503: no elected master".to_string())
        }
        Ok(r) => {
            HttpLeader::Unreachable(NoAnswer::failed(format!("{url} answered {}", r.status())))
        }
    }
}

/// `curl -s http://master:8080/v2/leader`
pub async fn marathon_leader(client: &reqwest::Client, addr: SocketAddr) -> HttpLeader {
    let url = format!("http://{addr}/v2/leader");
    match client.get(&url).send().await {
        Err(e) => HttpLeader::Unreachable(NoAnswer::http(&url, &e)),
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            match status {
                200 => match marathon_leader_host(&body) {
                    Ok(host) => HttpLeader::Leader(host),
                    Err(e) => HttpLeader::Unreachable(NoAnswer::failed(e.to_string())),
                },
                404 => HttpLeader::None("404: there is no leader".to_string()),
                _ => HttpLeader::Unreachable(NoAnswer::failed(format!(
                    "{url} answered {status}: {}",
                    body.trim()
                ))),
            }
        }
    }
}

/// `curl -X DELETE http://master:8080/v2/leader`: ask the leading Marathon to abdicate.
pub async fn marathon_abdicate(
    client: &reqwest::Client,
    addr: SocketAddr,
) -> Result<(), MastersError> {
    let url = format!("http://{addr}/v2/leader");
    let r = match client.delete(&url).send().await {
        Ok(r) => r,
        Err(source) => return Err(MastersError::Abdicate { url, source }),
    };
    if r.status().is_success() {
        Ok(())
    } else {
        Err(MastersError::AbdicationRefused {
            url,
            status: r.status(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_redirect_location_names_the_leader() {
        assert_eq!(
            location_host("//master-1.cell-1.dc-1.demo.lan:5050").as_deref(),
            Some("master-1.cell-1.dc-1.demo.lan")
        );
        assert_eq!(
            location_host("http://master-3.cell-1.dc-1.demo.lan:5050/master/state").as_deref(),
            Some("master-3.cell-1.dc-1.demo.lan")
        );
        assert_eq!(location_host("nowhere"), None);
    }

    #[test]
    fn the_seeds_v2_leader_reply_names_the_leader() {
        let body = "{\n  \"leader\": \"master-1.cell-1.dc-1.demo.lan:8080\"\n}";
        assert_eq!(
            marathon_leader_host(body).unwrap(),
            "master-1.cell-1.dc-1.demo.lan"
        );
        assert!(marathon_leader_host("{\"message\":\"There is no leader\"}").is_err());
    }

    /// A responder on loopback that answers every request with one recorded response.
    async fn responder(
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
    ) -> SocketAddr {
        use crate::standin::http;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(http::serve_listener(listener, move |_req| async move {
            let mut r = http::text(
                hyper::StatusCode::from_u16(status).unwrap(),
                body,
                "recorded",
            );
            for (k, v) in headers {
                r.headers_mut().insert(*k, v.parse().unwrap());
            }
            r
        }));
        addr
    }

    #[tokio::test]
    async fn the_redirect_probe_reads_the_seeds_responses() {
        let client = http_client(Duration::from_secs(2));
        let leading = responder(
            307,
            &[("location", "//master-1.cell-1.dc-1.demo.lan:5050")],
            "",
        )
        .await;
        assert_eq!(
            mesos_leader(&client, leading).await,
            HttpLeader::Leader("master-1.cell-1.dc-1.demo.lan".into())
        );
        let none = responder(503, &[], "No leading master\n").await;
        assert!(matches!(
            mesos_leader(&client, none).await,
            HttpLeader::None(_)
        ));
        let odd = responder(200, &[], "hello").await;
        assert!(matches!(
            mesos_leader(&client, odd).await,
            HttpLeader::Unreachable(_)
        ));
    }

    #[tokio::test]
    async fn the_v2_leader_probe_reads_the_seeds_responses() {
        let client = http_client(Duration::from_secs(2));
        let leading = responder(
            200,
            &[("content-type", "application/json")],
            "{\n  \"leader\": \"master-1.cell-1.dc-1.demo.lan:8080\"\n}",
        )
        .await;
        assert_eq!(
            marathon_leader(&client, leading).await,
            HttpLeader::Leader("master-1.cell-1.dc-1.demo.lan".into())
        );
        let none = responder(404, &[], "{\"message\":\"There is no leader\"}").await;
        assert!(matches!(
            marathon_leader(&client, none).await,
            HttpLeader::None(_)
        ));
        let gone = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(matches!(
            marathon_leader(&client, gone).await,
            HttpLeader::Unreachable(_)
        ));
    }

    #[test]
    fn master_info_reads_as_mesos_writes_it() {
        let data = br#"{"address":{"hostname":"master-1.cell-1.dc-1.demo.lan","ip":"10.136.64.11","port":5050},"hostname":"master-1.cell-1.dc-1.demo.lan","id":"5b0f1c2e-6d1a-4c77-9f0e-0c7f3f6a9e11","ip":188778506,"pid":"master@10.136.64.11:5050","port":5050,"version":"1.11.0"}"#;
        let info = parse_master_info(data).unwrap();
        assert_eq!(info.hostname, "master-1.cell-1.dc-1.demo.lan");
        assert_eq!(info.ip.to_le_bytes(), [10, 136, 64, 11]);
        assert_eq!(
            latch_host(b"master-2.cell-1.dc-1.demo.lan:8080").unwrap(),
            "master-2.cell-1.dc-1.demo.lan"
        );
    }
}
