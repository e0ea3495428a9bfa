//! A topology's roles: their names, node counts, services and fixed host parts, read and
//! checked (the host parts no two nodes share, ZooKeeper present where a service needs it).

use std::collections::BTreeMap;

use serde::Serialize;

use super::reader::{Located, TableReader};
use super::ServiceKind;
use crate::source::{InputError, SourceFile};

/// The most nodes one topology may hold (they share one /24).
pub const MAX_NODES: usize = 200;
/// Host part of the first node's address; lower ones are kept for the harness itself.
pub const FIRST_HOST: u8 = 10;
/// The lowest host part a role may give its nodes explicitly (`.1` is the harness's own).
pub const MIN_HOST: u64 = 2;
/// The highest host part a role may give its nodes explicitly (`.255` is broadcast).
pub const MAX_HOST: u64 = 254;

/// One role and its nodes.
#[derive(Debug, Clone, Serialize)]
pub struct Role {
    /// `border`, `quorum`, `master`, `worker`, …
    pub name: String,
    /// How many nodes.
    pub count: usize,
    /// The services every node of the role runs, in start order.
    pub services: Vec<ServiceKind>,
    /// Host parts of its nodes' addresses, when the file fixes them (`hosts = [8, 9, 10]`);
    /// otherwise nodes are numbered from `FIRST_HOST` by their position in the file.
    pub hosts: Option<Vec<u8>>,
}

/// The `[roles.NAME]` tables in file order, checked.
pub(super) fn parse(source: &SourceFile, top: &mut TableReader) -> Result<Vec<Role>, InputError> {
    let (roles, explicit_hosts) = parse_roles(source, top)?;
    check_hosts(source, &roles, &explicit_hosts)?;
    Ok(roles)
}

/// Each role's `hosts` as written (with their spans), in role order.
type ExplicitHosts = Vec<Vec<Located<u8>>>;

/// The `[roles.NAME]` tables, in file order, with each role's explicit hosts (as written, for
/// the overlap check); at least one role, within one subnet, and ZooKeeper present when a
/// service elects or registers through it.
fn parse_roles(
    source: &SourceFile,
    top: &mut TableReader,
) -> Result<(Vec<Role>, ExplicitHosts), InputError> {
    let mut roles_table = top
        .opt_table("roles")?
        .ok_or_else(|| top.missing("roles", "a `[roles.NAME]` table for each role"))?;
    let mut roles = Vec::new();
    let mut explicit_hosts: ExplicitHosts = Vec::new();
    // The first service that needs ZooKeeper (the stand-ins register and elect there).
    let mut needs_zookeeper: Option<Located<String>> = None;
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
        let hosts = role.opt_u64_list("hosts")?;
        let count = role_count(source, &name.value, role.opt_u64("count")?, &hosts)?;
        let services = role_services(source, &mut role, &mut needs_zookeeper)?;
        let hosts = hosts
            .map(|list| role_hosts(source, &name.value, list.value))
            .transpose()?;
        role.finish(&["count", "services", "hosts"])?;
        explicit_hosts.push(hosts.clone().unwrap_or_default());
        roles.push(Role {
            name: name.value,
            count,
            services,
            hosts: hosts.map(|l| l.into_iter().map(|h| h.value).collect()),
        });
    }
    let roles_span = roles_table.span();
    roles_table.finish(&[])?;
    if roles.is_empty() {
        return Err(source.error(roles_span, "`roles` defines no role"));
    }
    if let Some(s) = needs_zookeeper {
        if !roles
            .iter()
            .any(|r| r.services.contains(&ServiceKind::Zookeeper))
        {
            return Err(source
                .error(
                    s.span,
                    format!(
                        "`{}` elects or registers through ZooKeeper, and no role runs zookeeper",
                        s.value
                    ),
                )
                .with_help("add `zookeeper` to a role's services (the seed's cell runs it on the quorum nodes)"));
        }
    }
    let total: usize = roles.iter().map(|r| r.count).sum();
    if total > MAX_NODES {
        return Err(source.error(
            roles_span,
            format!("the topology has {total} nodes; at most {MAX_NODES} fit in one subnet"),
        ));
    }
    Ok((roles, explicit_hosts))
}

/// A role's node count: `count`, else the number of `hosts`, else one; both given must agree.
fn role_count(
    source: &SourceFile,
    role: &str,
    count: Option<Located<u64>>,
    hosts: &Option<Located<Vec<Located<u64>>>>,
) -> Result<usize, InputError> {
    let (count, span) = match (count, hosts) {
        (Some(c), Some(h)) if c.value as usize != h.value.len() => {
            return Err(source.error(
                h.span.clone(),
                format!(
                    "role `{role}` has `count = {}` but {} `hosts`",
                    c.value,
                    h.value.len()
                ),
            ))
        }
        (Some(c), _) => (c.value, c.span),
        (None, Some(h)) => (h.value.len() as u64, h.span.clone()),
        (None, None) => (1, 0..0),
    };
    if count == 0 || count as usize > MAX_NODES {
        return Err(source.error(
            span,
            format!("`count` of role `{role}` must be between 1 and {MAX_NODES}"),
        ));
    }
    Ok(count as usize)
}

/// A role's services, each known and listed once; notes the first that needs ZooKeeper.
fn role_services(
    source: &SourceFile,
    role: &mut TableReader,
    needs_zookeeper: &mut Option<Located<String>>,
) -> Result<Vec<ServiceKind>, InputError> {
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
            return Err(source.error(s.span, format!("service `{}` is listed twice", s.value)));
        }
        if matches!(
            kind,
            ServiceKind::MesosMaster | ServiceKind::Marathon | ServiceKind::App
        ) && needs_zookeeper.is_none()
        {
            *needs_zookeeper = Some(s.clone());
        }
        services.push(kind);
    }
    Ok(services)
}

/// A role's explicit `hosts`, each within the subnet's host range.
fn role_hosts(
    source: &SourceFile,
    role: &str,
    list: Vec<Located<u64>>,
) -> Result<Vec<Located<u8>>, InputError> {
    list.into_iter()
        .map(|h| match u8::try_from(h.value) {
            Ok(host) if (MIN_HOST..=MAX_HOST).contains(&h.value) => {
                Ok(Located::new(host, h.span))
            }
            _ => Err(source
                .error(
                    h.span,
                    format!("host {} of role `{role}` is out of range", h.value),
                )
                .with_help(format!(
                    "the host part of a node's address is {MIN_HOST} to {MAX_HOST} (.1 is the harness's own)"
                ))),
        })
        .collect()
}

/// No two nodes may share a host part, whether the file fixes it or it is numbered.
fn check_hosts(
    source: &SourceFile,
    roles: &[Role],
    explicit: &[Vec<Located<u8>>],
) -> Result<(), InputError> {
    let mut taken: BTreeMap<u8, String> = BTreeMap::new();
    let mut ordinal = 0usize;
    for (role, fixed) in roles.iter().zip(explicit) {
        for index in 1..=role.count {
            let short = format!("{}-{index}", role.name);
            let (host, span) = match fixed.get(index - 1) {
                Some(h) => (h.value, Some(h.span.clone())),
                None => (FIRST_HOST + ordinal as u8, None),
            };
            ordinal += 1;
            if let Some(first) = taken.insert(host, short.clone()) {
                let span = span.or_else(|| {
                    // A numbered node collides with one fixed earlier: point at that one.
                    explicit
                        .iter()
                        .flatten()
                        .find(|h| h.value == host)
                        .map(|h| h.span.clone())
                });
                return Err(source
                    .error(
                        span.unwrap_or(0..0),
                        format!("host {host} is given to both {first} and {short}"),
                    )
                    .with_help(format!(
                        "nodes without `hosts` are numbered {FIRST_HOST}, {}, … in file order",
                        FIRST_HOST + 1
                    )));
            }
        }
    }
    Ok(())
}

pub(super) fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
