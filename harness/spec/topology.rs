//! Topology files: roles, node counts, the services each role runs, names and subnet.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::reader::{parse_document, Located, TableReader};
use crate::service::ServiceKind;
use crate::source::{InputError, SourceFile};

/// The most nodes one topology may hold (they share one /24).
pub const MAX_NODES: usize = 200;
/// Host part of the first node's address; lower ones are kept for the harness itself.
pub const FIRST_HOST: u8 = 10;

/// A validated topology.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// The file it came from.
    pub file: PathBuf,
    /// The cell name (`cell-1`).
    pub cell: String,
    /// The data-centre name (`dc-1`).
    pub dc: String,
    /// The DNS domain below the data centre (`demo.lan`).
    pub domain: String,
    /// Where addresses come from.
    pub subnet: SubnetChoice,
    /// Roles in file order.
    pub roles: Vec<Role>,
    /// Per-service settings.
    pub settings: ServiceSettings,
}

/// How a run's subnet is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SubnetChoice {
    /// A free /24 picked per run, so parallel runs never collide.
    Auto,
    /// Exactly this /24; a run fails to provision if another run holds it.
    Fixed(Ipv4Addr),
}

/// One role and its nodes.
#[derive(Debug, Clone, Serialize)]
pub struct Role {
    /// `border`, `quorum`, `master`, `worker`, …
    pub name: String,
    /// How many nodes.
    pub count: usize,
    /// The services every node of the role runs, in start order.
    pub services: Vec<ServiceKind>,
}

/// Settings of the servers, as an operator would tune them.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSettings {
    /// etcd `--election-timeout`.
    pub etcd_election_timeout: Duration,
    /// etcd `--heartbeat-interval`.
    pub etcd_heartbeat_interval: Duration,
    /// ZooKeeper `tickTime`.
    pub zookeeper_tick_time: Duration,
    /// ZooKeeper `initLimit` (ticks).
    pub zookeeper_init_limit: u64,
    /// ZooKeeper `syncLimit` (ticks).
    pub zookeeper_sync_limit: u64,
    /// How long a graceful stop may take before SIGKILL.
    pub stop_timeout: Duration,
    /// How long provisioning waits for every service to be ready.
    pub ready_timeout: Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            etcd_election_timeout: Duration::from_millis(1000),
            etcd_heartbeat_interval: Duration::from_millis(100),
            zookeeper_tick_time: Duration::from_millis(500),
            zookeeper_init_limit: 10,
            zookeeper_sync_limit: 5,
            stop_timeout: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(90),
        }
    }
}

/// One node as the topology defines it (before any provider gives it an address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSpec {
    /// Its role.
    pub role: String,
    /// 1-based index within the role.
    pub index: usize,
    /// `quorum-1`
    pub short: String,
    /// `quorum-1.cell-1.dc-1.demo.lan`
    pub fqdn: String,
    /// Position among all nodes (fixes its address).
    pub ordinal: usize,
    /// The services it runs, in start order.
    pub services: Vec<ServiceKind>,
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        let source = SourceFile::read(path)?;
        Self::parse(&source)
    }

    /// Parses and validates topology text (pure).
    pub fn parse(source: &SourceFile) -> Result<Self, InputError> {
        let doc = parse_document(source)?;
        let mut top = TableReader::new(source, doc.get_ref(), doc.span(), "the topology");
        let cell = name_field(&mut top, "cell", "cell-1")?;
        let dc = name_field(&mut top, "dc", "dc-1")?;
        let domain = top.opt_str("domain")?;
        let domain = match domain {
            Some(d) => {
                if !d.value.split('.').all(valid_label) {
                    return Err(source.error(
                        d.span,
                        format!("`domain` \"{}\" is not a DNS domain", d.value),
                    ));
                }
                d.value
            }
            None => "demo.lan".to_string(),
        };
        let subnet = match top.opt_str("subnet")? {
            None => SubnetChoice::Auto,
            Some(s) if s.value == "auto" => SubnetChoice::Auto,
            Some(s) => SubnetChoice::Fixed(parse_subnet(source, &s)?),
        };

        let mut roles_table = top
            .opt_table("roles")?
            .ok_or_else(|| top.missing("roles", "a `[roles.NAME]` table for each role"))?;
        let mut roles = Vec::new();
        for (name, _) in roles_table.entries() {
            if !valid_label(&name.value) || name.value.contains('.') {
                return Err(source.error(
                    name.span.clone(),
                    format!(
                        "role name `{}` must be lowercase letters, digits and '-'",
                        name.value
                    ),
                ));
            }
            let mut role = roles_table
                .table_at(&name.value)?
                .named(format!("role `{}`", name.value));
            let count = role
                .opt_u64("count")?
                .map(|c| (c.value, c.span))
                .unwrap_or((1, 0..0));
            if count.0 == 0 || count.0 as usize > MAX_NODES {
                return Err(source.error(
                    count.1,
                    format!(
                        "`count` of role `{}` must be between 1 and {MAX_NODES}",
                        name.value
                    ),
                ));
            }
            let mut services = Vec::new();
            for s in role
                .opt_str_list("services")?
                .map(|l| l.value)
                .unwrap_or_default()
            {
                let kind = ServiceKind::parse(&s.value).ok_or_else(|| {
                    source
                        .error(s.span.clone(), format!("unknown service `{}`", s.value))
                        .with_help(format!(
                            "known services: {}",
                            ServiceKind::names().join(", ")
                        ))
                })?;
                if services.contains(&kind) {
                    return Err(
                        source.error(s.span, format!("service `{}` is listed twice", s.value))
                    );
                }
                services.push(kind);
            }
            role.finish(&["count", "services"])?;
            roles.push(Role {
                name: name.value,
                count: count.0 as usize,
                services,
            });
        }
        let roles_span = roles_table.span();
        roles_table.finish(&[])?;
        if roles.is_empty() {
            return Err(source.error(roles_span, "`roles` defines no role"));
        }
        let total: usize = roles.iter().map(|r| r.count).sum();
        if total > MAX_NODES {
            return Err(source.error(
                roles_span,
                format!("the topology has {total} nodes; at most {MAX_NODES} fit in one subnet"),
            ));
        }

        let settings = parse_settings(source, &mut top)?;
        top.finish(&[
            "cell", "dc", "domain", "subnet", "roles", "services", "provider",
        ])?;
        Ok(Self {
            file: source.path.clone(),
            cell,
            dc,
            domain,
            subnet,
            roles,
            settings,
        })
    }

    /// Every node, in file order.
    pub fn nodes(&self) -> Vec<NodeSpec> {
        let mut out = Vec::new();
        for role in &self.roles {
            for index in 1..=role.count {
                let short = format!("{}-{index}", role.name);
                out.push(NodeSpec {
                    fqdn: format!("{short}.{}.{}.{}", self.cell, self.dc, self.domain),
                    short,
                    role: role.name.clone(),
                    index,
                    ordinal: out.len(),
                    services: role.services.clone(),
                });
            }
        }
        out
    }

    /// Finds a node by short or full name.
    pub fn node(&self, name: &str) -> Option<NodeSpec> {
        self.nodes()
            .into_iter()
            .find(|n| n.short == name || n.fqdn == name)
    }

    /// Finds a role by name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The nodes that run a service, in file order.
    pub fn nodes_running(&self, service: ServiceKind) -> Vec<NodeSpec> {
        self.nodes()
            .into_iter()
            .filter(|n| n.services.contains(&service))
            .collect()
    }

    /// Short names of every node, for "known nodes" hints.
    pub fn short_names(&self) -> Vec<String> {
        self.nodes().into_iter().map(|n| n.short).collect()
    }
}

/// The address of a node given its subnet base and ordinal.
pub fn node_address(subnet: Ipv4Addr, ordinal: usize) -> Ipv4Addr {
    let [a, b, c, _] = subnet.octets();
    // MAX_NODES + FIRST_HOST < 255, checked at parse time.
    Ipv4Addr::new(a, b, c, FIRST_HOST + ordinal as u8)
}

fn name_field(
    top: &mut TableReader<'_, '_>,
    key: &str,
    default: &str,
) -> Result<String, InputError> {
    match top.opt_str(key)? {
        None => Ok(default.to_string()),
        Some(v) if valid_label(&v.value) => Ok(v.value),
        Some(v) => Err(top.source().error(
            v.span,
            format!(
                "`{key}` \"{}\" must be one DNS label: lowercase letters, digits and '-'",
                v.value
            ),
        )),
    }
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn parse_subnet(source: &SourceFile, s: &Located<String>) -> Result<Ipv4Addr, InputError> {
    let bad = || {
        source
            .error(
                s.span.clone(),
                format!("`subnet` \"{}\" is not an IPv4 /24", s.value),
            )
            .with_help(
                "write \"auto\" (a free /24 per run) or a network such as \"10.136.89.0/24\"",
            )
    };
    let (addr, prefix) = s.value.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    if prefix != "24" || addr.octets()[3] != 0 {
        return Err(bad());
    }
    Ok(addr)
}

fn parse_settings(
    source: &SourceFile,
    top: &mut TableReader<'_, '_>,
) -> Result<ServiceSettings, InputError> {
    let mut settings = ServiceSettings::default();
    if let Some(mut services) = top.opt_table("services")? {
        for (name, _) in services.entries() {
            let kind = ServiceKind::parse(&name.value).ok_or_else(|| {
                source
                    .error(
                        name.span.clone(),
                        format!("unknown service `{}` in `[services]`", name.value),
                    )
                    .with_help(format!(
                        "known services: {}",
                        ServiceKind::names().join(", ")
                    ))
            })?;
            let mut t = services
                .table_at(&name.value)?
                .named(format!("`[services.{}]`", name.value));
            match kind {
                ServiceKind::Etcd => {
                    if let Some(d) = t.opt_duration("election_timeout")? {
                        settings.etcd_election_timeout = d.value;
                    }
                    if let Some(d) = t.opt_duration("heartbeat_interval")? {
                        settings.etcd_heartbeat_interval = d.value;
                    }
                    if settings.etcd_election_timeout < settings.etcd_heartbeat_interval * 5 {
                        return Err(source.error(
                            t.value_span("election_timeout").unwrap_or(t.span()),
                            "etcd's `election_timeout` must be at least 5 times `heartbeat_interval`",
                        ));
                    }
                    t.finish(&["election_timeout", "heartbeat_interval"])?;
                }
                ServiceKind::Zookeeper => {
                    if let Some(d) = t.opt_duration("tick_time")? {
                        settings.zookeeper_tick_time = d.value;
                    }
                    if let Some(n) = t.opt_u64("init_limit")? {
                        settings.zookeeper_init_limit = n.value.max(1);
                    }
                    if let Some(n) = t.opt_u64("sync_limit")? {
                        settings.zookeeper_sync_limit = n.value.max(1);
                    }
                    t.finish(&["tick_time", "init_limit", "sync_limit"])?;
                }
                ServiceKind::MesosMaster
                | ServiceKind::Marathon
                | ServiceKind::App
                | ServiceKind::Ingress => {
                    t.finish(&[])?;
                }
            }
        }
        services.finish(&[])?;
    }
    if let Some(mut provider) = top.opt_table("provider")? {
        if let Some(d) = provider.opt_duration("stop_timeout")? {
            settings.stop_timeout = d.value;
        }
        if let Some(d) = provider.opt_duration("ready_timeout")? {
            settings.ready_timeout = d.value;
        }
        provider.finish(&["stop_timeout", "ready_timeout"])?;
    }
    Ok(settings)
}
