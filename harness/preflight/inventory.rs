//! Inventory files: the nodes of a live cell by role, with their addresses, the endpoints of
//! what they run, and how to run a command on them. Read with the same strict, span-keeping
//! reader as scenarios, so every mistake has a file:line:column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::provider::RunRecord;
use crate::source::{InputError, SourceFile};
use crate::spec::reader::{parse_document, Located, TableReader};

use crate::base::ports::{
    ETCD_CLIENT as ETCD_PORT, MARATHON as MARATHON_PORT, MESOS as MESOS_PORT,
    ZOOKEEPER_CLIENT as ZOOKEEPER_PORT,
};

/// A validated inventory.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    /// The file it came from.
    pub file: PathBuf,
    /// The cell's name, for display.
    pub cell: Option<String>,
    /// Nodes in file order.
    pub nodes: Vec<InventoryNode>,
    /// Thresholds of the load checks (`[limits]`).
    pub limits: Limits,
}

/// Thresholds of preflight's load checks; the inventory's `[limits]` table sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// ZooKeeper requests queued on one server (`mntr`'s `zk_outstanding_requests`) above
    /// which a server is too busy to restart for an upgrade.
    pub zookeeper_outstanding_requests: u64,
    /// ZooKeeper's average request latency (`zk_avg_latency`, ms) above which it warns.
    pub zookeeper_avg_latency_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            zookeeper_outstanding_requests: 10,
            zookeeper_avg_latency_ms: 100,
        }
    }
}

/// One node of an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryNode {
    /// Its name (`quorum-1.cell-1.dc-1.demo.lan`).
    pub name: String,
    /// Its role (`quorum`, `master`, …).
    pub role: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// etcd's client URL (`http://10.0.0.1:2379`), when it runs etcd.
    pub etcd: Option<String>,
    /// ZooKeeper's client address, when it runs ZooKeeper.
    pub zookeeper: Option<SocketAddr>,
    /// The Mesos master's HTTP address, when it runs one.
    pub mesos: Option<SocketAddr>,
    /// Marathon's HTTP address, when it runs Marathon.
    pub marathon: Option<SocketAddr>,
    /// The command prefix that runs a command on the node (`["ssh", "core@10.0.0.1"]`).
    pub exec: Option<Vec<String>>,
    /// Read-only GETs through this node, a border, that must answer (2xx or 3xx): the app and
    /// each master tier as clients reach them.
    pub border_reads: Vec<String>,
}

impl InventoryNode {
    /// The name up to its first dot.
    pub fn short(&self) -> &str {
        self.name.split('.').next().unwrap_or(&self.name)
    }

    /// Whether `host` (a name, short name or address) is this node.
    pub fn is(&self, host: &str) -> bool {
        host == self.name || host == self.short() || host == self.address.to_string()
    }
}

impl Inventory {
    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        Self::parse(&SourceFile::read(path)?)
    }

    /// Parses and validates inventory text (pure).
    pub fn parse(source: &SourceFile) -> Result<Self, InputError> {
        let doc = parse_document(source)?;
        let mut top = TableReader::new(source, doc.get_ref(), doc.span(), "the inventory");
        let cell = top.opt_str("cell")?.map(|c| c.value);
        let tables = top.opt_tables("node", |i| format!("node {}", i + 1))?;
        let mut limits = Limits::default();
        if let Some(mut t) = top.opt_table("limits")? {
            for (key, slot) in [
                (
                    "zookeeper_outstanding_requests",
                    &mut limits.zookeeper_outstanding_requests,
                ),
                (
                    "zookeeper_avg_latency_ms",
                    &mut limits.zookeeper_avg_latency_ms,
                ),
            ] {
                if let Some(n) = t.opt_u64(key)? {
                    *slot = n.value;
                }
            }
            t.finish(&["zookeeper_outstanding_requests", "zookeeper_avg_latency_ms"])?;
        }
        top.finish(&["cell", "node", "limits"])?;
        if tables.is_empty() {
            return Err(source
                .error(
                    doc.span().start..doc.span().start,
                    "the inventory lists no `[[node]]`",
                )
                .with_help(
                    "list each node as a `[[node]]` table with `name`, `role` and `address`",
                ));
        }
        let mut nodes = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut addresses: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
        for (i, mut t) in tables.into_iter().enumerate() {
            let name = t.str("name")?;
            if name.value.is_empty() || name.value.contains(char::is_whitespace) {
                return Err(source.error(name.span, format!("`{}` is not a node name", name.value)));
            }
            if let Some(first) = names.insert(name.value.clone(), i + 1) {
                return Err(source.error(
                    name.span,
                    format!(
                        "node `{}` is listed twice (nodes {first} and {})",
                        name.value,
                        i + 1
                    ),
                ));
            }
            let role = t.str("role")?;
            let address = t.str("address")?;
            let ip: Ipv4Addr = address.value.parse().map_err(|_| {
                source.error(
                    address.span.clone(),
                    format!("`{}` is not an IPv4 address", address.value),
                )
            })?;
            if let Some(first) = addresses.insert(ip, i + 1) {
                return Err(source.error(
                    address.span,
                    format!("address {ip} is given to nodes {first} and {}", i + 1),
                ));
            }
            let etcd = t
                .opt_str("etcd")?
                .map(|u| etcd_url(source, u))
                .transpose()?;
            let zookeeper = socket(source, t.opt_str("zookeeper")?)?;
            let mesos = socket(source, t.opt_str("mesos")?)?;
            let marathon = socket(source, t.opt_str("marathon")?)?;
            let exec = match t.opt_str_list("exec")? {
                None => None,
                Some(list) if list.value.is_empty() => {
                    return Err(source
                        .error(list.span, "`exec` is empty")
                        .with_help("the command prefix that runs a command on the node, e.g. [\"ssh\", \"core@10.0.0.1\"]"))
                }
                Some(list) => Some(list.value.into_iter().map(|s| s.value).collect()),
            };
            let border_reads = match t.opt_str_list("border_reads")? {
                None => Vec::new(),
                Some(list) => list
                    .value
                    .into_iter()
                    .map(|url| {
                        if url.value.starts_with("http://") || url.value.starts_with("https://") {
                            Ok(url.value)
                        } else {
                            Err(source
                                .error(url.span, format!("`{}` is not an http:// URL", url.value))
                                .with_help("a URL a client reads through the border, e.g. \"http://10.0.0.10:80/health\""))
                        }
                    })
                    .collect::<Result<_, _>>()?,
            };
            t.finish(&[
                "name",
                "role",
                "address",
                "etcd",
                "zookeeper",
                "mesos",
                "marathon",
                "exec",
                "border_reads",
            ])?;
            nodes.push(InventoryNode {
                name: name.value,
                role: role.value,
                address: ip,
                etcd,
                zookeeper,
                mesos,
                marathon,
                exec,
                border_reads,
            });
        }
        Ok(Self {
            file: source.path.clone(),
            cell,
            nodes,
            limits,
        })
    }

    /// The nodes that run etcd.
    pub fn etcd_nodes(&self) -> Vec<&InventoryNode> {
        self.nodes.iter().filter(|n| n.etcd.is_some()).collect()
    }

    /// The nodes that run ZooKeeper.
    pub fn zookeeper_nodes(&self) -> Vec<&InventoryNode> {
        self.nodes
            .iter()
            .filter(|n| n.zookeeper.is_some())
            .collect()
    }

    /// The node a host (name, short name or address) names.
    pub fn node(&self, host: &str) -> Option<&InventoryNode> {
        self.nodes.iter().find(|n| n.is(host))
    }

    /// A node's short name, or the host itself when it is no node of the inventory.
    pub fn label(&self, host: &str) -> String {
        self.node(host)
            .map(|n| n.short().to_string())
            .unwrap_or_else(|| host.to_string())
    }
}

fn etcd_url(source: &SourceFile, url: Located<String>) -> Result<String, InputError> {
    let rest = url.value.strip_prefix("http://").ok_or_else(|| {
        source
            .error(url.span.clone(), format!("`{}` is not an http:// URL", url.value))
            .with_help("etcd's client URL, e.g. \"http://10.0.0.1:2379\" (TLS endpoints are not supported)")
    })?;
    let authority = rest.trim_end_matches('/');
    if authority.parse::<SocketAddr>().is_err() {
        return Err(source
            .error(url.span, format!("`{}` has no ADDRESS:PORT", url.value))
            .with_help("etcd's client URL, e.g. \"http://10.0.0.1:2379\""));
    }
    Ok(format!("http://{authority}"))
}

fn socket(
    source: &SourceFile,
    value: Option<Located<String>>,
) -> Result<Option<SocketAddr>, InputError> {
    let Some(v) = value else {
        return Ok(None);
    };
    match v.value.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) => Ok(Some(SocketAddr::V4(a))),
        _ => Err(source
            .error(v.span, format!("`{}` is not ADDRESS:PORT", v.value))
            .with_help("an IPv4 address and port, e.g. \"10.0.0.1:2181\"")),
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The inventory of a cluster started with `succession up` (or kept by `run --keep`): every
/// node in topology order, the endpoints of the services it runs, and the provider's way to run
/// commands on it (`exec`, e.g. `ip netns exec NS`).
pub fn render_for_run(record: &RunRecord, exec: &dyn Fn(&str) -> Option<Vec<String>>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Inventory of run {} ({}), written by `succession inventory`.\n# Check it with `succession preflight --inventory FILE`.",
        record.id, record.purpose
    );
    let _ = writeln!(out, "cell = {}", quoted(&record.cell));
    let mut nodes: Vec<_> = record.nodes.iter().collect();
    nodes.sort_by_key(|(_, n)| n.ordinal);
    for (fqdn, n) in nodes {
        let _ = writeln!(out, "\n[[node]]");
        let _ = writeln!(out, "name = {}", quoted(fqdn));
        let _ = writeln!(out, "role = {}", quoted(&n.role));
        let _ = writeln!(out, "address = {}", quoted(&n.address.to_string()));
        let services: BTreeSet<&str> = n.services.iter().map(|s| s.name()).collect();
        // By name, so services other kinds of node run are picked up as they are added.
        for (service, key, endpoint) in [
            ("etcd", "etcd", format!("http://{}:{ETCD_PORT}", n.address)),
            (
                "zookeeper",
                "zookeeper",
                format!("{}:{ZOOKEEPER_PORT}", n.address),
            ),
            (
                "mesos-master",
                "mesos",
                format!("{}:{MESOS_PORT}", n.address),
            ),
            (
                "marathon",
                "marathon",
                format!("{}:{MARATHON_PORT}", n.address),
            ),
        ] {
            if services.contains(service) {
                let _ = writeln!(out, "{key} = {}", quoted(&endpoint));
            }
        }
        if services.contains("ingress") {
            // What clients read through the border: the app and each master tier the run has.
            let runs = |kind: &str| {
                record
                    .nodes
                    .values()
                    .any(|n| n.services.iter().any(|s| s.name() == kind))
            };
            let reads: Vec<String> = [
                (
                    "app",
                    crate::base::ports::INGRESS_APP,
                    crate::base::ports::APP_HEALTH,
                ),
                ("mesos-master", MESOS_PORT, crate::base::ports::MESOS_HEALTH),
                ("marathon", MARATHON_PORT, crate::base::ports::MARATHON_PING),
            ]
            .into_iter()
            .filter(|(kind, _, _)| runs(kind))
            .map(|(_, port, path)| quoted(&format!("http://{}:{port}{path}", n.address)))
            .collect();
            if !reads.is_empty() {
                let _ = writeln!(out, "border_reads = [{}]", reads.join(", "));
            }
        }
        if let Some(argv) = exec(fqdn) {
            let words: Vec<String> = argv.iter().map(|w| quoted(w)).collect();
            let _ = writeln!(out, "exec = [{}]", words.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, InputError> {
        Inventory::parse(&SourceFile::from_text("inv.toml", text))
    }

    #[test]
    fn nodes_and_endpoints_are_read() {
        let inv = parse(
            "cell = \"cell-1\"\n[[node]]\nname = \"quorum-1.cell-1.dc-1.demo.lan\"\nrole = \"quorum\"\naddress = \"10.0.0.10\"\netcd = \"http://10.0.0.10:2379/\"\nzookeeper = \"10.0.0.10:2181\"\nexec = [\"ssh\", \"core@10.0.0.10\"]\n\n[[node]]\nname = \"master-1\"\nrole = \"master\"\naddress = \"10.0.0.20\"\nmesos = \"10.0.0.20:5050\"\nmarathon = \"10.0.0.20:8080\"\n",
        )
        .unwrap();
        assert_eq!(inv.nodes.len(), 2);
        assert_eq!(inv.nodes[0].etcd.as_deref(), Some("http://10.0.0.10:2379"));
        assert_eq!(inv.nodes[0].short(), "quorum-1");
        assert_eq!(inv.etcd_nodes().len(), 1);
        assert_eq!(inv.zookeeper_nodes().len(), 1);
        assert_eq!(inv.label("10.0.0.20"), "master-1");
        assert_eq!(inv.label("10.9.9.9"), "10.9.9.9");
        assert!(inv.nodes[1].exec.is_none());
    }

    #[test]
    fn mistakes_are_located() {
        let cases = [
            ("", (1, 1), "the inventory lists no `[[node]]`"),
            (
                "[[node]]\nname = \"a\"\nrole = \"quorum\"\naddress = \"10.0.0.300\"\n",
                (4, 11),
                "`10.0.0.300` is not an IPv4 address",
            ),
            (
                "[[node]]\nname = \"a\"\nrole = \"quorum\"\naddress = \"10.0.0.1\"\n[[node]]\nname = \"a\"\nrole = \"quorum\"\naddress = \"10.0.0.2\"\n",
                (6, 8),
                "node `a` is listed twice (nodes 1 and 2)",
            ),
            (
                "[[node]]\nname = \"a\"\nrole = \"quorum\"\naddress = \"10.0.0.1\"\netcd = \"https://10.0.0.1:2379\"\n",
                (5, 8),
                "`https://10.0.0.1:2379` is not an http:// URL",
            ),
            (
                "[[node]]\nname = \"a\"\nrole = \"quorum\"\naddress = \"10.0.0.1\"\nzookeeper = \"10.0.0.1\"\n",
                (5, 13),
                "`10.0.0.1` is not ADDRESS:PORT",
            ),
            (
                "[[node]]\nname = \"a\"\nrole = \"quorum\"\naddress = \"10.0.0.1\"\nzokeeper = \"10.0.0.1:2181\"\n",
                (5, 1),
                "unknown key `zokeeper` in node 1",
            ),
            (
                "[[node]]\nname = \"a\"\naddress = \"10.0.0.1\"\n",
                (1, 1),
                "node 1 is missing `role` (a string)",
            ),
        ];
        for (text, at, message) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(
                (e.line, e.column, e.message.as_str()),
                (at.0, at.1, message),
                "{text}"
            );
        }
    }
}
