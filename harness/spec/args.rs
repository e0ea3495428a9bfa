//! What steps name: nodes (literally or through a binding), targets and node sets.

use std::time::Duration;

use serde::Serialize;

/// Deadline of an expectation that names none.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(30);

/// A node named in a step: literally, or through a name bound by an earlier step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRef {
    /// A node's full name.
    Node(String),
    /// `$binding`
    Bound(String),
}

/// Where a step acts: one node or every node of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One node.
    Node(NodeRef),
    /// Every live node of the role.
    Role(String),
}

/// A set of nodes a member list must equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSet {
    /// Nodes listed one by one.
    pub nodes: Vec<NodeRef>,
    /// Every node of this role …
    pub role: Option<String>,
    /// … except these.
    pub except: Vec<NodeRef>,
}
