//! Stand-in for Marathon: a Curator-style leader latch under `/marathon/leader-curator`, and
//! `/v2/leader` (GET and DELETE), `/v2/apps`, `/ping` like the real one. Non-leaders proxy
//! `/v2` requests to the leader, as Marathon does.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::election::{self, Candidacy, Standing};
use super::http::{self, Reply};
use super::Options;
use crate::base::ports::{MARATHON as MARATHON_PORT, MARATHON_DIR, MARATHON_MARKER};
use crate::probe::masters::latch_host;

/// The application the demo deploys (the seed's Voting App).
pub const APP_ID: &str = "/voting-app";

/// `/v2/leader` given the standing.
pub fn leader_reply(standing: &Standing, me: &str) -> Reply {
    match standing
        .leader
        .as_deref()
        .map(|d| String::from_utf8_lossy(d).into_owned())
    {
        Some(leader) => http::json(StatusCode::OK, &json!({ "leader": leader }), me),
        None => http::json(
            StatusCode::NOT_FOUND,
            &json!({ "message": "There is no leader" }),
            me,
        ),
    }
}

async fn proxy(
    client: &reqwest::Client,
    standing: &Standing,
    method: Method,
    path: &str,
    me: &str,
) -> Reply {
    let Some(host) = standing.leader.as_deref().and_then(|d| latch_host(d).ok()) else {
        return http::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"message": "Could not determine the current leader"}),
            me,
        );
    };
    let url = format!("http://{host}:{MARATHON_PORT}{path}");
    let request = match method {
        Method::DELETE => client.delete(&url),
        _ => client.get(&url),
    };
    match request.send().await {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = r.text().await.unwrap_or_default();
            let value = serde_json::from_str(&body).unwrap_or(json!({ "message": body }));
            http::json(status, &value, me)
        }
        Err(e) => http::json(
            StatusCode::BAD_GATEWAY,
            &json!({"message": format!("failed to reach the leader at {url}: {e}")}),
            me,
        ),
    }
}

/// Runs the stand-in until the process is killed.
pub async fn run(o: Options) -> std::io::Result<()> {
    let (tx, rx) = watch::channel(Standing::default());
    let (abdicate, abdicate_rx) = mpsc::channel(1);
    let (stop, stop_rx) = watch::channel(false);
    let election = tokio::spawn(election::run(
        Candidacy {
            connect: o.zk.clone(),
            dir: MARATHON_DIR.to_string(),
            prefix: format!("_c_{}-{MARATHON_MARKER}", super::random_uuid()),
            marker: MARATHON_MARKER.to_string(),
            data: format!("{}:{MARATHON_PORT}", o.hostname).into_bytes(),
            session_timeout: super::SESSION_TIMEOUT,
        },
        tx,
        abdicate_rx,
        stop_rx,
    ));
    let me: Arc<str> = Arc::from(o.hostname.as_str());
    let client = crate::probe::masters::http_client(std::time::Duration::from_secs(2));
    let serve = http::serve(SocketAddr::new(o.ip.into(), MARATHON_PORT), move |req| {
        let rx = rx.clone();
        let me = me.clone();
        let abdicate = abdicate.clone();
        let client = client.clone();
        async move {
            let standing = rx.borrow().clone();
            let path = req.uri().path().to_string();
            match (req.method().clone(), path.as_str()) {
                (Method::GET, "/ping") => http::text(StatusCode::OK, "pong\n", &me),
                (Method::GET, "/v2/leader") => leader_reply(&standing, &me),
                (Method::DELETE, "/v2/leader") if standing.leading => {
                    let _ = abdicate.send(()).await;
                    http::json(
                        StatusCode::OK,
                        &json!({"message": "Leadership abdicted"}),
                        &me,
                    )
                }
                (Method::GET, "/v2/apps") if standing.leading => {
                    let agents = match &standing.client {
                        Some(c) => super::agents(c).await,
                        None => Vec::new(),
                    };
                    let tasks: Vec<serde_json::Value> = agents
                        .iter()
                        .map(|(host, reg)| {
                            json!({
                                "id": format!("voting-app.{host}"),
                                "appId": APP_ID,
                                "host": host,
                                "ports": [reg["port"].clone()],
                                "state": "TASK_RUNNING",
                            })
                        })
                        .collect();
                    http::json(
                        StatusCode::OK,
                        &json!({"apps": [{
                            "id": APP_ID,
                            "instances": tasks.len(),
                            "tasksRunning": tasks.len(),
                            "tasksHealthy": tasks.len(),
                            "tasks": tasks,
                            "labels": {"stand_in": "succession"},
                        }]}),
                        &me,
                    )
                }
                (method, p) if p.starts_with("/v2/") => {
                    proxy(&client, &standing, method, p, &me).await
                }
                _ => http::json(
                    StatusCode::NOT_FOUND,
                    &json!({"message": format!("The requested resource {path} could not be found")}),
                    &me,
                ),
            }
        }
    });
    super::serve_until_stopped(serve, stop, election).await
}
