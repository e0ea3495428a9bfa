//! A member that gave no answer, and how: a refused connection shows nothing listens (the
//! server is not running there), while silence past the timeout shows nothing at all — a
//! paused or cut-off server may still believe it leads.

use std::time::Duration;

/// How a probe got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// The connection was refused: nothing listens at the address.
    Refused,
    /// Nothing came back within the timeout.
    TimedOut,
    /// Anything else (a reset, a reply that makes no sense).
    Failed,
}

/// A probe that got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct NoAnswer {
    /// How.
    pub silence: Silence,
    /// What was tried and what happened, in words.
    pub detail: String,
}

impl NoAnswer {
    /// A failure that is neither a refusal nor a timeout.
    pub fn failed(detail: impl Into<String>) -> Self {
        Self {
            silence: Silence::Failed,
            detail: detail.into(),
        }
    }

    /// No answer within `timeout` to `what`.
    pub fn timed_out(what: &str, timeout: Duration) -> Self {
        Self {
            silence: Silence::TimedOut,
            detail: format!("no answer to {what} within {} ms", timeout.as_millis()),
        }
    }

    /// From a failed connection or exchange.
    pub fn io(what: &str, e: &std::io::Error) -> Self {
        Self {
            silence: match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Silence::Refused,
                std::io::ErrorKind::TimedOut => Silence::TimedOut,
                _ => Silence::Failed,
            },
            detail: format!("failed to {what}: {e}"),
        }
    }

    /// From a failed HTTP request.
    pub fn http(url: &str, e: &reqwest::Error) -> Self {
        let refused = e.is_connect() && {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
            let mut found = false;
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<std::io::Error>() {
                    found |= io.kind() == std::io::ErrorKind::ConnectionRefused;
                }
                source = s.source();
            }
            found
        };
        Self {
            silence: if refused {
                Silence::Refused
            } else if e.is_timeout() {
                Silence::TimedOut
            } else {
                Silence::Failed
            },
            detail: format!("failed to GET {url}: {e}"),
        }
    }
}

/// GETs a JSON document and reads what is wanted out of it; any failure is a non-answer.
pub async fn get_json<T, E: std::fmt::Display>(
    http: &reqwest::Client,
    url: &str,
    read: impl FnOnce(&serde_json::Value) -> Result<T, E>,
) -> Result<T, NoAnswer> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| NoAnswer::http(url, &e))?;
    let body: serde_json::Value = response.json().await.map_err(|e| NoAnswer::http(url, &e))?;
    read(&body).map_err(|e| NoAnswer::failed(format!("{url}: {e}")))
}

impl From<NoAnswer> for String {
    fn from(e: NoAnswer) -> Self {
        e.detail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn a_refused_connection_and_a_timeout_are_told_apart_from_other_failures() {
        let silence = |kind| NoAnswer::io("connect", &Error::from(kind)).silence;
        assert_eq!(silence(ErrorKind::ConnectionRefused), Silence::Refused);
        assert_eq!(silence(ErrorKind::TimedOut), Silence::TimedOut);
        assert_eq!(silence(ErrorKind::ConnectionReset), Silence::Failed);
        let e = NoAnswer::io("connect to 127.0.0.1:1", &Error::from(ErrorKind::TimedOut));
        assert_eq!(
            String::from(e),
            "failed to connect to 127.0.0.1:1: timed out"
        );
    }

    fn client(timeout: Duration) -> reqwest::Client {
        client_with(timeout, timeout)
    }

    fn client_with(connect: Duration, request: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(request)
            .build()
            .expect("a client")
    }

    #[tokio::test]
    async fn an_http_request_nothing_listens_for_is_refused() {
        // A port that was just free: nothing listens there any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let e = client(Duration::from_secs(5))
            .get(&url)
            .send()
            .await
            .expect_err("nothing listens");
        assert_eq!(NoAnswer::http(&url, &e).silence, Silence::Refused);
    }

    #[tokio::test]
    async fn an_http_request_left_unanswered_times_out() {
        // Accepted by the kernel, never answered: the request itself times out.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a listener");
        let url = format!("http://{}/", listener.local_addr().expect("its address"));
        let e = client(Duration::from_millis(200))
            .get(&url)
            .send()
            .await
            .expect_err("never answered");
        let answer = NoAnswer::http(&url, &e);
        assert_eq!(answer.silence, Silence::TimedOut, "{e:?}");
        assert!(answer.detail.starts_with(&format!("failed to GET {url}")));
    }

    #[tokio::test]
    async fn a_connection_that_cannot_be_made_in_time_is_not_a_refusal() {
        // A listener whose accept queue is full drops new connection attempts without refusing
        // them: the connect itself times out.
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind("127.0.0.1:0".parse().expect("an address"))
            .expect("bound");
        let address = socket.local_addr().expect("its address");
        let _listener = socket.listen(0).expect("listening");
        let mut queued = Vec::new();
        for _ in 0..4 {
            match tokio::time::timeout(
                Duration::from_millis(100),
                tokio::net::TcpStream::connect(address),
            )
            .await
            {
                Ok(Ok(stream)) => queued.push(stream),
                _ => break,
            }
        }
        let url = format!("http://{address}/");
        let e = client_with(Duration::from_millis(200), Duration::from_secs(10))
            .get(&url)
            .send()
            .await
            .expect_err("the queue is full");
        assert!(e.is_connect(), "{e:?}");
        assert_eq!(NoAnswer::http(&url, &e).silence, Silence::TimedOut, "{e:?}");
    }

    #[tokio::test]
    async fn a_reply_that_is_not_http_is_a_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a listener");
        let address = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"imok\n").await;
            }
        });
        let url = format!("http://{address}/");
        let e = client(Duration::from_secs(5))
            .get(&url)
            .send()
            .await
            .expect_err("not HTTP");
        assert_eq!(NoAnswer::http(&url, &e).silence, Silence::Failed, "{e:?}");
        let _ = server.await;
    }
}
