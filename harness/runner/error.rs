//! Why a step failed.

use crate::provider::ClusterError;

/// Why a step failed: what it expects did not hold (or the cluster refused what it asked), or
/// acting on a host or service failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The cluster did not do what the step expects; says what was seen instead.
    #[error("{0}")]
    Failed(String),
    /// Acting on a host or a service failed (named).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A fault could not be made, verified or healed.
    #[error(transparent)]
    Fault(#[from] crate::injection::FaultError),
}

impl From<String> for StepError {
    fn from(why: String) -> Self {
        StepError::Failed(why)
    }
}

impl From<crate::backups::DumpError> for StepError {
    fn from(e: crate::backups::DumpError) -> Self {
        StepError::Failed(e.to_string())
    }
}

impl From<&str> for StepError {
    fn from(why: &str) -> Self {
        StepError::Failed(why.to_string())
    }
}

/// A `$binding` a step uses that no earlier step bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`${0}` was never bound (the step that binds it did not run)")]
pub struct Unbound(pub String);

impl From<Unbound> for StepError {
    fn from(e: Unbound) -> Self {
        StepError::Failed(e.to_string())
    }
}

impl From<Unbound> for String {
    fn from(e: Unbound) -> Self {
        e.to_string()
    }
}

/// The cluster did not become healthy in time: each service still waited for, and the last
/// problem seen with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to get a healthy cluster within {} s: {}", .deadline.as_secs(), .problems.join("; "))]
pub struct NotReady {
    /// How long it was given.
    pub deadline: std::time::Duration,
    /// `service: problem`, for each service not healthy.
    pub problems: Vec<String>,
}

/// What a step found, or why it failed.
pub type StepResult = Result<String, StepError>;
