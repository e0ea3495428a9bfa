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
