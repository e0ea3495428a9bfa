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

impl From<&str> for StepError {
    fn from(why: &str) -> Self {
        StepError::Failed(why.to_string())
    }
}

/// What a step found, or why it failed.
pub type StepResult = Result<String, StepError>;
