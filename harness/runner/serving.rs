//! Elected is not recovered: after a new leader is backed by a majority, the first write
//! acknowledged through it is when the service serves again.

use std::time::Duration;

use super::{poll_until_held, Held, Poll, Runner, ELECTION_POLL_INTERVAL};
use crate::provider::Hosts;
use crate::service::ServiceKind;

/// The etcd key the serving probe writes (outside every prefix a scenario reads exactly).
pub const ETCD_SERVING_KEY: &str = "/succession/probe/serving";
/// The prefix of the ephemeral znodes the serving probe creates (under the root).
pub const ZOOKEEPER_SERVING_PREFIX: &str = "/succession-serving-";
/// How long one write attempt may take.
const WRITE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Why no write was acknowledged through the leader.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotServing {
    /// The leader named is no node of the cluster.
    #[error("the leader {0} is no node")]
    NoSuchNode(String),
    /// No write was acknowledged in time: the wait, with the last write's error.
    #[error(transparent)]
    NotWithin(#[from] super::NotWithin),
}

/// One write the serving probe tried and could not get acknowledged.
#[derive(Debug, thiserror::Error)]
enum WriteRefused {
    #[error(transparent)]
    Etcd(#[from] crate::probe::etcd::EtcdError),
    #[error(transparent)]
    Zookeeper(#[from] crate::probe::znodes::ZnodeError),
    #[error("{0} takes no harness write")]
    NoWrite(ServiceKind),
}

/// Whether a service takes a harness write, so that its serving time can be measured.
pub fn measurable(service: ServiceKind) -> bool {
    matches!(service, ServiceKind::Etcd | ServiceKind::Zookeeper)
}

/// Writes through `leader` until a write is acknowledged (an etcd put, a ZooKeeper ephemeral
/// create), polled to `within`; says what was written.
pub async fn first_write<H: Hosts>(
    r: &mut Runner<'_, H>,
    service: ServiceKind,
    leader: &str,
    within: Duration,
) -> Result<Held<String>, NotServing> {
    let node = r
        .cluster
        .node(leader)
        .ok_or_else(|| NotServing::NoSuchNode(leader.to_string()))?;
    let (url, zookeeper) = (r.cluster.etcd_url(&node), r.cluster.zookeeper_addr(&node));
    let (_, observer, rec) = r.split();
    let url = &url;
    let subject = format!("{service} serving through {}", super::name(leader));
    let subject = &subject;
    poll_until_held(within, ELECTION_POLL_INTERVAL, rec, || async move {
        let outcome = match service {
            ServiceKind::Etcd => observer
                .etcd
                .put(
                    url,
                    ETCD_SERVING_KEY.as_bytes(),
                    b"written by the serving probe",
                )
                .await
                .map(|revision| format!("put {ETCD_SERVING_KEY} at revision {revision}"))
                .map_err(WriteRefused::from),
            ServiceKind::Zookeeper => crate::probe::znodes::create_ephemeral(
                zookeeper,
                ZOOKEEPER_SERVING_PREFIX,
                WRITE_TIMEOUT,
            )
            .await
            .map(|path| format!("created the ephemeral {path}"))
            .map_err(WriteRefused::from),
            other => Err(WriteRefused::NoWrite(other)),
        };
        Poll::attempt(subject, outcome)
    })
    .await
    .map_err(NotServing::from)
}
