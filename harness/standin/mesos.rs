//! Stand-in for `mesos-master`: elects through `/mesos/json.info_*` with MasterInfo JSON and
//! answers `/redirect` and `/master/state` like the real master.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::StatusCode;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::election::{self, Candidacy, Standing};
use super::http::{self, Reply};
use super::Options;
use crate::base::ports::{MESOS as MESOS_PORT, MESOS_DIR, MESOS_MARKER};
use crate::probe::masters::{parse_master_info, Address, MasterInfo};

/// This master's MasterInfo.
pub fn master_info(o: &Options, id: String) -> MasterInfo {
    MasterInfo {
        id,
        ip: u32::from_le_bytes(o.ip.octets()),
        port: MESOS_PORT,
        pid: format!("master@{}:{MESOS_PORT}", o.ip),
        hostname: o.hostname.clone(),
        version: "1.11.0 (succession stand-in)".to_string(),
        address: Address {
            hostname: o.hostname.clone(),
            ip: o.ip.to_string(),
            port: MESOS_PORT,
        },
    }
}

/// What `/redirect` answers given the election's standing.
pub fn redirect(standing: &Standing, path_suffix: &str, me: &str) -> Reply {
    match standing.leader.as_deref().map(parse_master_info) {
        Some(Ok(leader)) => http::redirect(
            &format!("//{}:{}{path_suffix}", leader.hostname, leader.port),
            me,
        ),
        _ => http::text(StatusCode::SERVICE_UNAVAILABLE, "No leading master\n", me),
    }
}

/// Runs the stand-in until the process is killed.
pub async fn run(o: Options) -> std::io::Result<()> {
    let info = master_info(&o, super::random_uuid());
    let data = serde_json::to_vec(&info).map_err(std::io::Error::other)?;
    let (tx, rx) = watch::channel(Standing::default());
    let (_abdicate, abdicate_rx) = mpsc::channel(1);
    let (stop, stop_rx) = watch::channel(false);
    let election = tokio::spawn(election::run(
        Candidacy {
            connect: o.zk.clone(),
            dir: MESOS_DIR.to_string(),
            prefix: MESOS_MARKER.to_string(),
            marker: MESOS_MARKER.to_string(),
            data,
            session_timeout: super::SESSION_TIMEOUT,
        },
        tx,
        abdicate_rx,
        stop_rx,
    ));
    let me: Arc<str> = Arc::from(o.hostname.as_str());
    let info = Arc::new(info);
    let serve = http::serve(SocketAddr::new(o.ip.into(), MESOS_PORT), move |req| {
        let rx = rx.clone();
        let me = me.clone();
        let info = info.clone();
        async move {
            let standing = rx.borrow().clone();
            match req.uri().path() {
                "/redirect" | "/master/redirect" => redirect(&standing, "", &me),
                "/health" => http::text(StatusCode::OK, "ok\n", &me),
                "/master/state" | "/state" => {
                    if !standing.leading {
                        return redirect(&standing, req.uri().path(), &me);
                    }
                    let agents = match &standing.client {
                        Some(c) => super::agents(c).await,
                        None => Vec::new(),
                    };
                    let slaves: Vec<serde_json::Value> = agents
                        .iter()
                        .map(|(host, reg)| json!({"hostname": host, "pid": format!("slave(1)@{}:5051", reg["ip"].as_str().unwrap_or("")), "active": true}))
                        .collect();
                    http::json(
                        StatusCode::OK,
                        &json!({
                            "version": info.version,
                            "id": info.id,
                            "pid": info.pid,
                            "hostname": info.hostname,
                            "leader": info.pid,
                            "leader_info": *info,
                            "activated_slaves": slaves.len(),
                            "slaves": slaves,
                            "stand_in": true,
                        }),
                        &me,
                    )
                }
                _ => http::text(StatusCode::NOT_FOUND, "not found\n", &me),
            }
        }
    });
    super::serve_until_stopped(serve, stop, election).await
}
