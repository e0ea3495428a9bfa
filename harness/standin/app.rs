//! The demo application on each worker, standing in for the seed's Voting App: a vote page, a
//! result page, a health check; every reply names the instance that served it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::json;

use super::{http, Options};

/// The vote page.
pub fn vote_page(hostname: &str, voted: Option<&str>) -> String {
    let note = voted
        .map(|v| format!("<p>You voted for {v}</p>"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html><html><head><title>Cats vs Dogs!</title></head><body>\
         <h3>Cats vs Dogs!</h3><form method=\"POST\" action=\"/\">\
         <button name=\"vote\" value=\"a\">Cats</button><button name=\"vote\" value=\"b\">Dogs</button></form>{note}\
         <p>Processed by container ID {hostname}</p></body></html>\n"
    )
}

/// Runs the app until the process is killed.
pub async fn run(o: Options) -> std::io::Result<()> {
    let registration = serde_json::to_vec(
        &json!({"hostname": o.hostname, "ip": o.ip.to_string(), "port": crate::base::ports::APP}),
    )
    .map_err(std::io::Error::other)?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let registered = tokio::spawn(super::election::register(
        o.zk.clone(),
        format!("{}/{}", super::AGENTS_DIR, o.hostname),
        registration,
        super::SESSION_TIMEOUT,
        stop_rx,
    ));
    let votes: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let me: Arc<str> = Arc::from(o.hostname.as_str());
    let serve = http::serve(
        SocketAddr::new(o.ip.into(), crate::base::ports::APP),
        move |req| {
            let me = me.clone();
            let votes = votes.clone();
            async move {
                match (req.method().clone(), req.uri().path()) {
                    (Method::GET, "/health") => {
                        http::text(StatusCode::OK, format!("ok {me}\n"), &me)
                    }
                    (Method::GET, "/") => http::html(vote_page(&me, None), &me),
                    (Method::POST, "/") => {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let form = String::from_utf8_lossy(&body);
                        let vote = form
                            .split('&')
                            .find_map(|kv| kv.strip_prefix("vote="))
                            .unwrap_or("")
                            .to_string();
                        if vote != "a" && vote != "b" {
                            return http::text(StatusCode::BAD_REQUEST, "vote=a or vote=b\n", &me);
                        }
                        if let Ok(mut v) = votes.lock() {
                            *v.entry(vote.clone()).or_default() += 1;
                        }
                        http::html(
                            vote_page(&me, Some(if vote == "a" { "Cats" } else { "Dogs" })),
                            &me,
                        )
                    }
                    (Method::GET, "/result") => {
                        let counts = votes.lock().map(|v| v.clone()).unwrap_or_default();
                        http::json(
                            StatusCode::OK,
                            &json!({"served_by": *me, "votes": counts}),
                            &me,
                        )
                    }
                    _ => http::text(StatusCode::NOT_FOUND, "not found\n", &me),
                }
            }
        },
    );
    super::serve_until_stopped(serve, stop, registered).await
}
