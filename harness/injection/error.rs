//! Why a fault could not be made, verified or healed.

use crate::provider::ClusterError;
use crate::service::ServiceKind;

/// Why a fault could not be made, verified or healed; each says what was seen.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// Acting on a host or a service failed (named).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The node is gone or unknown.
    #[error("{0} is not a live node")]
    NotLive(String),
    /// A link from a node to itself.
    #[error("a node cannot be cut off from itself")]
    SelfLink,
    /// iptables refused a rule.
    #[error("`{rule}` on {node} failed: {stderr}")]
    Filter {
        /// The rule, as run.
        rule: String,
        /// Where.
        node: String,
        /// What iptables said.
        stderr: String,
    },
    /// A connection attempt neither succeeded, was refused nor timed out.
    #[error("could not tell whether {from} reaches {to}: {said}")]
    ReachUnknown {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// What the attempt printed.
        said: String,
    },
    /// A link a heal reopened is still cut.
    #[error("the filter is gone but {from} still cannot reach {to}")]
    StillCut {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
    },
    /// A link a fault cut still carries traffic.
    #[error("the filter is in place but {from} still reaches {to}")]
    NotCut {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
    },
    /// Random loss dropped nothing.
    #[error("no packet from {from} to {to} was dropped within {secs} s: the loss did nothing")]
    LossIneffective {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// The deadline.
        secs: u64,
    },
    /// A killed process is still there.
    #[error("{service} on {node} was sent SIGKILL and still runs after {secs} s")]
    Survived {
        /// The service.
        service: crate::service::ServiceKind,
        /// Where.
        node: String,
        /// The deadline.
        secs: u64,
    },
    /// The kernel's state of a process could not be read.
    #[error("no state in /proc/{pid}/stat: {stderr}")]
    NoState {
        /// The process.
        pid: u32,
        /// What the read printed.
        stderr: String,
    },
    /// A signalled process did not change state.
    #[error("process {pid} on {node} is in state `{letter}` {secs} s after the signal")]
    StateUnchanged {
        /// The process.
        pid: u32,
        /// Where.
        node: String,
        /// Its state letter.
        letter: char,
        /// The deadline.
        secs: u64,
    },
    /// Nothing runs to resume.
    #[error("{service} on {node} is not running: nothing to resume")]
    NotRunning {
        /// The service.
        service: crate::service::ServiceKind,
        /// Where.
        node: String,
    },
    /// The process runs: it is not paused.
    #[error("{service} on {node} is not paused (process {pid} is in state `{letter}`): nothing to resume")]
    NotPaused {
        /// The service.
        service: crate::service::ServiceKind,
        /// Where.
        node: String,
        /// The process.
        pid: u32,
        /// Its state letter.
        letter: char,
    },
    /// Several links or heals failed, each said.
    /// A delay's timing did not show it.
    #[error("{what}: the connect time from {from} to {to} is {seen_ms:.1} ms (it was {before_ms:.1} ms before the delay of {delay_ms} ms)")]
    DelayUnseen {
        /// What was expected.
        what: &'static str,
        /// Where the connection started.
        from: String,
        /// Where it went.
        to: String,
        /// The fastest connect time seen now.
        seen_ms: f64,
        /// The fastest before the fault.
        before_ms: f64,
        /// The delay set.
        delay_ms: u64,
    },
    /// A healed delay's link is still slow.
    #[error("the delay outlived its heal: the connect time from {from} to {to} is still {seen_ms:.1} ms (the delay was {delay_ms} ms)")]
    DelayOutlived {
        /// Where the connection started.
        from: String,
        /// Where it went.
        to: String,
        /// The fastest connect time seen.
        seen_ms: f64,
        /// The delay that was set.
        delay_ms: u64,
    },
    /// A node-side tool printed something the harness cannot read.
    #[error("{tool} on {node} printed no result ({detail})")]
    ToolOutput {
        /// The tool.
        tool: &'static str,
        /// Where it ran.
        node: String,
        /// What it printed or why it failed.
        detail: String,
    },
    /// A disk's latency did not show in a timed fsync (in effect, or healed).
    #[error("{what}: a timed fsync in {service}'s data on {node} took {seen_ms:.1} ms against a latency of {latency_ms} ms")]
    DiskLatencyUnseen {
        /// What was expected.
        what: &'static str,
        /// The service.
        service: ServiceKind,
        /// The node.
        node: String,
        /// The fastest fsync seen.
        seen_ms: f64,
        /// The latency set.
        latency_ms: u64,
    },
    /// A power loss did not lose what it must, or lost what it must not.
    #[error("the power loss on {node} did not act as one: {detail}")]
    PowerLossUnseen {
        /// The node.
        node: String,
        /// What was found.
        detail: String,
    },
    /// The step needs the faulty disk under a service whose data is not on one.
    #[error("{service}'s data on {node} is not on the faulty disk (set `faulty_disk = true` under `[services.{service}]` in the topology)")]
    NoFaultyDisk {
        /// The service.
        service: ServiceKind,
        /// The node.
        node: String,
    },
    #[error("{}", .0.join("; "))]
    Several(Vec<String>),
}
