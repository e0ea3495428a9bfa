//! Topology files: roles, node counts, the services each role runs, names and subnet.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::reader::{parse_document, Located, TableReader};
use super::roles::valid_label;
pub use super::roles::{Role, FIRST_HOST, MAX_HOST, MAX_NODES, MIN_HOST};
use super::ServiceKind;
use crate::source::{InputError, SourceFile};

/// A validated topology.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// The file it came from.
    pub file: PathBuf,
    /// The file's text, as it was read (a kept run is reopened from it).
    #[serde(skip)]
    pub text: String,
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

/// Settings of the servers, as an operator would tune them.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSettings {
    /// etcd `--election-timeout`.
    pub etcd_election_timeout: Duration,
    /// etcd `--heartbeat-interval`.
    pub etcd_heartbeat_interval: Duration,
    /// etcd `--snapshot-count`: applied entries between snapshots (etcd's own default when
    /// none). Low, a member that falls behind is sent a snapshot instead of entries.
    pub etcd_snapshot_count: Option<u64>,
    /// etcd `--quota-backend-bytes` (etcd's own default when none).
    pub etcd_quota_backend_bytes: Option<u64>,
    /// etcd `--auto-compaction-mode=revision --auto-compaction-retention=N`: keep this many
    /// revisions (no automatic compaction when none).
    pub etcd_compaction_revisions: Option<u64>,
    /// ZooKeeper `tickTime`.
    pub zookeeper_tick_time: Duration,
    /// ZooKeeper `initLimit` (ticks).
    pub zookeeper_init_limit: u64,
    /// ZooKeeper `syncLimit` (ticks).
    pub zookeeper_sync_limit: u64,
    /// ZooKeeper `snapCount`: transactions between snapshots (ZooKeeper's own default when
    /// none).
    pub zookeeper_snap_count: Option<u64>,
    /// ZooKeeper `forceSync`: whether it fsyncs its transaction log before acknowledging
    /// (ZooKeeper's default, yes). `no` is sometimes set for speed and loses acknowledged writes
    /// on a power loss.
    pub zookeeper_force_sync: bool,
    /// ZooKeeper `snapshot.trust.empty`: start from the transaction log alone when no valid
    /// snapshot is left. The snapshot ZooKeeper takes at its first start is not fsynced, so a
    /// server whose power is cut before it takes another refuses to start without it ("No
    /// snapshot found, but there are log entries").
    pub zookeeper_snapshot_trust_empty: bool,
    /// The services whose data directory sits on the faulty disk (a FUSE passthrough that can
    /// slow fsync and lose unsynced writes on a power loss): `faulty_disk = true` under
    /// `[services.KIND]`. Off by default.
    pub faulty_disk: std::collections::BTreeSet<ServiceKind>,
    /// How long a graceful stop may take before SIGKILL.
    pub stop_timeout: Duration,
    /// How long provisioning waits for every service to be ready.
    pub ready_timeout: Duration,
    /// ZooKeeper server ids by node (full name), when the file fixes them; otherwise the
    /// ZooKeeper nodes are numbered from 1 in file order.
    pub zookeeper_ids: BTreeMap<String, u64>,
    /// `[provider] kind`: where the nodes live when the command line does not say.
    pub provider_kind: Option<String>,
    /// `[provider] image`: the containers provider's node image, when not its own.
    pub provider_image: Option<String>,
    /// `[provider.ec2]`: where the EC2 provider launches the cell.
    pub provider_ec2: Option<super::ec2::Ec2Settings>,
}

/// The providers a topology's `[provider] kind` may name.
pub const PROVIDER_KINDS: &[&str] = &["local", "containers", "ec2"];

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            etcd_election_timeout: Duration::from_millis(1000),
            etcd_heartbeat_interval: Duration::from_millis(100),
            etcd_snapshot_count: None,
            etcd_quota_backend_bytes: None,
            etcd_compaction_revisions: None,
            zookeeper_tick_time: Duration::from_millis(500),
            zookeeper_init_limit: 10,
            zookeeper_sync_limit: 5,
            zookeeper_snap_count: None,
            zookeeper_force_sync: true,
            zookeeper_snapshot_trust_empty: false,
            faulty_disk: std::collections::BTreeSet::new(),
            stop_timeout: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(90),
            zookeeper_ids: BTreeMap::new(),
            provider_kind: None,
            provider_image: None,
            provider_ec2: None,
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
    /// Position among all nodes.
    pub ordinal: usize,
    /// Host part of its address within the run's /24.
    pub host: u8,
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
        let domain = match top.opt_str("domain")? {
            Some(d) if !d.value.split('.').all(valid_label) => {
                return Err(source.error(
                    d.span,
                    format!("`domain` \"{}\" is not a DNS domain", d.value),
                ));
            }
            Some(d) => d.value,
            None => "demo.lan".to_string(),
        };
        let subnet = match top.opt_str("subnet")? {
            None => SubnetChoice::Auto,
            Some(s) if s.value == "auto" => SubnetChoice::Auto,
            Some(s) => SubnetChoice::Fixed(parse_subnet(source, &s)?),
        };
        let roles = super::roles::parse(source, &mut top)?;
        let nodes = nodes_of(&roles, &cell, &dc, &domain);
        let settings = parse_settings(source, &mut top, &nodes)?;
        top.finish(&[
            "cell", "dc", "domain", "subnet", "roles", "services", "provider",
        ])?;
        Ok(Self {
            file: source.path.clone(),
            text: source.text.clone(),
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
        nodes_of(&self.roles, &self.cell, &self.dc, &self.domain)
    }

    /// The ZooKeeper server id a node starts with: the file's, or its position among the
    /// ZooKeeper nodes counted from 1.
    pub fn zookeeper_id(&self, fqdn: &str) -> Option<u64> {
        if let Some(id) = self.settings.zookeeper_ids.get(fqdn) {
            return Some(*id);
        }
        self.nodes_running(ServiceKind::Zookeeper)
            .iter()
            .position(|n| n.fqdn == fqdn)
            .map(|i| i as u64 + 1)
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

    /// The roles' names, in file order, for help texts.
    pub fn role_names(&self) -> Vec<&str> {
        self.roles.iter().map(|r| r.name.as_str()).collect()
    }
}

/// The address of a node given its subnet base and ordinal (when the file fixes no hosts).
pub fn node_address(subnet: Ipv4Addr, ordinal: usize) -> Ipv4Addr {
    // MAX_NODES + FIRST_HOST < 255, checked at parse time.
    host_address(subnet, FIRST_HOST + ordinal as u8)
}

/// The address of a host part within a subnet.
pub fn host_address(subnet: Ipv4Addr, host: u8) -> Ipv4Addr {
    let [a, b, c, _] = subnet.octets();
    Ipv4Addr::new(a, b, c, host)
}

fn nodes_of(roles: &[Role], cell: &str, dc: &str, domain: &str) -> Vec<NodeSpec> {
    let mut out = Vec::new();
    for role in roles {
        for index in 1..=role.count {
            let short = format!("{}-{index}", role.name);
            let ordinal = out.len();
            let host = role
                .hosts
                .as_ref()
                .and_then(|h| h.get(index - 1).copied())
                .unwrap_or(FIRST_HOST + ordinal as u8);
            out.push(NodeSpec {
                fqdn: format!("{short}.{cell}.{dc}.{domain}"),
                short,
                role: role.name.clone(),
                index,
                ordinal,
                host,
                services: role.services.clone(),
            });
        }
    }
    out
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
    nodes: &[NodeSpec],
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
            let t = services
                .table_at(&name.value)?
                .named(format!("`[services.{}]`", name.value));
            parse_service_settings(source, kind, t, nodes, &mut settings)?;
        }
        services.finish(&[])?;
    }
    if let Some(provider) = top.opt_table("provider")? {
        parse_provider_settings(source, provider, nodes, &mut settings)?;
    }
    Ok(settings)
}

/// `[services.KIND]`: etcd's and ZooKeeper's timing (and ZooKeeper's ids); the other services
/// take no settings.
fn parse_service_settings(
    source: &SourceFile,
    kind: ServiceKind,
    mut t: TableReader<'_, '_>,
    nodes: &[NodeSpec],
    settings: &mut ServiceSettings,
) -> Result<(), InputError> {
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
            settings.etcd_snapshot_count = at_least(source, &mut t, "snapshot_count", 1)?;
            settings.etcd_quota_backend_bytes = at_least(source, &mut t, "quota_backend_bytes", 1)?;
            settings.etcd_compaction_revisions =
                at_least(source, &mut t, "auto_compaction_revisions", 1)?;
            read_faulty_disk(&mut t, kind, settings)?;
            t.finish(&[
                "election_timeout",
                "heartbeat_interval",
                "snapshot_count",
                "quota_backend_bytes",
                "auto_compaction_revisions",
                "faulty_disk",
            ])
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
            if let Some(ids) = t.opt_table("ids")? {
                settings.zookeeper_ids = parse_zookeeper_ids(source, ids, nodes)?;
            }
            // ZooKeeper snapshots after a random count between half and all of snapCount: below
            // two there is no such range.
            settings.zookeeper_snap_count = at_least(source, &mut t, "snap_count", 2)?;
            if let Some(b) = t.opt_bool("force_sync")? {
                settings.zookeeper_force_sync = b.value;
            }
            if let Some(b) = t.opt_bool("snapshot_trust_empty")? {
                settings.zookeeper_snapshot_trust_empty = b.value;
            }
            read_faulty_disk(&mut t, kind, settings)?;
            t.finish(&[
                "tick_time",
                "init_limit",
                "sync_limit",
                "ids",
                "snap_count",
                "force_sync",
                "snapshot_trust_empty",
                "faulty_disk",
            ])
        }
        ServiceKind::MesosMaster
        | ServiceKind::Marathon
        | ServiceKind::App
        | ServiceKind::Ingress => t.finish(&[]),
    }
}

/// `faulty_disk = true`: the service's data directory sits on the faulty disk.
fn read_faulty_disk(
    t: &mut TableReader<'_, '_>,
    kind: ServiceKind,
    settings: &mut ServiceSettings,
) -> Result<(), InputError> {
    if t.opt_bool("faulty_disk")?.is_some_and(|b| b.value) {
        settings.faulty_disk.insert(kind);
    }
    Ok(())
}

/// An optional count of at least `least`, refused at its value otherwise.
fn at_least(
    source: &SourceFile,
    t: &mut TableReader<'_, '_>,
    key: &str,
    least: u64,
) -> Result<Option<u64>, InputError> {
    match t.opt_u64(key)? {
        Some(n) if n.value < least => {
            Err(source.error(n.span, format!("`{key}` must be at least {least}")))
        }
        n => Ok(n.map(|n| n.value)),
    }
}

/// `[provider]`: timeouts, which provider, its image and its EC2 settings.
fn parse_provider_settings(
    source: &SourceFile,
    mut provider: TableReader<'_, '_>,
    nodes: &[NodeSpec],
    settings: &mut ServiceSettings,
) -> Result<(), InputError> {
    if let Some(d) = provider.opt_duration("stop_timeout")? {
        settings.stop_timeout = d.value;
    }
    if let Some(d) = provider.opt_duration("ready_timeout")? {
        settings.ready_timeout = d.value;
    }
    if let Some(kind) = provider.opt_str("kind")? {
        if !PROVIDER_KINDS.contains(&kind.value.as_str()) {
            return Err(source.error(
                kind.span,
                format!(
                    "unknown provider `{}`; one of: {}",
                    kind.value,
                    PROVIDER_KINDS.join(", ")
                ),
            ));
        }
        settings.provider_kind = Some(kind.value);
    }
    if let Some(image) = provider.opt_str("image")? {
        settings.provider_image = Some(image.value);
    }
    if let Some(ec2) = provider.opt_table("ec2")? {
        let mut roles: Vec<String> = nodes.iter().map(|n| n.role.clone()).collect();
        roles.dedup();
        settings.provider_ec2 = Some(super::ec2::parse(source, ec2, &roles)?);
    }
    if settings.provider_kind.as_deref() == Some("ec2") && settings.provider_ec2.is_none() {
        return Err(source
            .error(
                provider.span(),
                "`kind = \"ec2\"` needs a `[provider.ec2]` table",
            )
            .with_help("region, subnet_id, security_group and ami at least"));
    }
    provider.finish(&["stop_timeout", "ready_timeout", "kind", "image", "ec2"])
}

/// `ids = { quorum-1 = 3, … }`: a server id for every ZooKeeper node, distinct, 1 to 255.
fn parse_zookeeper_ids(
    source: &SourceFile,
    mut table: TableReader<'_, '_>,
    nodes: &[NodeSpec],
) -> Result<BTreeMap<String, u64>, InputError> {
    let zookeepers: Vec<&NodeSpec> = nodes
        .iter()
        .filter(|n| n.services.contains(&ServiceKind::Zookeeper))
        .collect();
    let names = || {
        zookeepers
            .iter()
            .map(|n| n.short.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let span = table.span();
    let mut ids: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_id: BTreeMap<u64, String> = BTreeMap::new();
    for (name, _) in table.entries() {
        let Some(node) = zookeepers
            .iter()
            .find(|n| n.short == name.value || n.fqdn == name.value)
        else {
            return Err(source
                .error(
                    name.span,
                    format!("`{}` is no node that runs zookeeper", name.value),
                )
                .with_help(format!("zookeeper nodes: {}", names())));
        };
        let id = table
            .opt_u64(&name.value)?
            .ok_or_else(|| table.missing(&name.value, "a server id"))?;
        if !(1..=crate::static_ensemble::MAX_ID).contains(&id.value) {
            return Err(source.error(
                id.span,
                format!(
                    "server id {} of {} is out of range (1 to {})",
                    id.value,
                    node.short,
                    crate::static_ensemble::MAX_ID
                ),
            ));
        }
        if let Some(first) = by_id.insert(id.value, node.short.clone()) {
            return Err(source.error(
                id.span,
                format!(
                    "server id {} is given to both {first} and {}",
                    id.value, node.short
                ),
            ));
        }
        ids.insert(node.fqdn.clone(), id.value);
    }
    let missing: Vec<&str> = zookeepers
        .iter()
        .filter(|n| !ids.contains_key(&n.fqdn))
        .map(|n| n.short.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(source.error(
            span,
            format!(
                "`ids` gives no server id to {}; give every zookeeper node one",
                missing.join(", ")
            ),
        ));
    }
    table.finish(&[])?;
    Ok(ids)
}
