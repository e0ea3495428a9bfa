//! A small HTTP/1.1 server for the stand-ins (hyper), and response helpers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// A complete response.
pub type Reply = Response<Full<Bytes>>;

/// Serves `handler` on `addr` for ever.
pub async fn serve<F, Fut>(addr: SocketAddr, handler: F) -> std::io::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    serve_listener(tokio::net::TcpListener::bind(addr).await?, handler).await
}

/// Serves `handler` on a bound listener for ever.
pub async fn serve_listener<F, Fut>(
    listener: tokio::net::TcpListener,
    handler: F,
) -> std::io::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let addr = listener.local_addr()?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                super::log(format!("failed to accept a connection on {addr}: {e}"));
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn build(status: StatusCode, content_type: &str, body: impl Into<Bytes>, served_by: &str) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(v) = content_type.parse() {
        headers.insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = served_by.parse() {
        headers.insert("x-served-by", v);
    }
    response
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value, served_by: &str) -> Reply {
    build(status, "application/json", value.to_string(), served_by)
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<String>, served_by: &str) -> Reply {
    build(status, "text/plain; charset=utf-8", body.into(), served_by)
}

/// An HTML response.
pub fn html(body: String, served_by: &str) -> Reply {
    build(StatusCode::OK, "text/html; charset=utf-8", body, served_by)
}

/// A 307 to `location`.
pub fn redirect(location: &str, served_by: &str) -> Reply {
    let mut response = build(
        StatusCode::TEMPORARY_REDIRECT,
        "text/plain",
        Bytes::new(),
        served_by,
    );
    if let Ok(v) = location.parse() {
        response.headers_mut().insert(hyper::header::LOCATION, v);
    }
    response
}
