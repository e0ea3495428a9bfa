//! ZooKeeper ensembles (seed 004): discover the running ids, write a static ensemble and roll it
//! out one server at a time, renumber to the upgrade's ids with the safe rolling plan, and write
//! and read back data.

mod look;
mod ops;
mod rollout;

use std::time::Duration;

use serde::Serialize;

use super::{key, StepKind, StepRow};
use crate::provider::Hosts;
use crate::runner::{Runner, StepResult};
use crate::source::InputError;
use crate::spec::step_reader::StepReader;
use crate::spec::NodeRef;

/// The steps of this family.
pub const ROWS: &[StepRow] = &[
    StepRow {
        name: "zookeeper-discover-ids",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: &[],
        help: "read each server's id from the server itself (`conf` serverId)",
        parse: parse_discover_ids,
    },
    StepRow {
        name: "zookeeper-static-ensemble",
        expectation: false,
        disrupts: true,
        needs: &[],
        keys: &[
            key(&["ids"], "discovered (from `zookeeper-discover-ids`) or upgrade (addresses sorted as strings, numbered from 1)"),
            key(&["order"], "the restart order (default: by address)"),
            key(&["within"], "deadline for each restarted server to serve under a majority-backed leader (default 60s)"),
        ],
        help: "write that static ensemble into every server's zoo.cfg and myid, then restart one server at a time",
        parse: parse_static_ensemble,
    },
    StepRow {
        name: "zookeeper-renumber",
        expectation: false,
        disrupts: true,
        needs: &[],
        keys: &[key(&["within"], "deadline per restart (default 60s)")],
        help: "renumber every server to the upgrade's id with the safe rolling plan",
        parse: parse_renumber,
    },
    StepRow {
        name: "zookeeper-write",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: &[key(&["path"], "an absolute znode path"), key(&["data"], "its data")],
        help: "create a znode (or overwrite its data) through a real client session",
        parse: parse_write,
    },
    StepRow {
        name: "zookeeper-ids",
        expectation: true,
        disrupts: false,
        needs: &[],
        keys: &[key(&["ids"], "discovered or upgrade")],
        help: "every server reports those ids (`conf` serverId)",
        parse: parse_expect_ids,
    },
    StepRow {
        name: "zookeeper-data",
        expectation: true,
        disrupts: false,
        needs: &[],
        keys: &[key(&["path"], "the znode"), key(&["data"], "its data")],
        help: "every server, asked on its own after a `sync`, returns the data",
        parse: parse_expect_data,
    },
];

/// Which server ids a ZooKeeper step means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZookeeperIds {
    /// The ids an earlier `zookeeper-discover-ids` step read from the running servers.
    Discovered,
    /// The ids an upgrade assigns: addresses sorted as strings, numbered from 1.
    Upgrade,
}

/// Deadline for each restarted ZooKeeper server to serve again under one leader.
pub const DEFAULT_RESTART_WITHIN: Duration = Duration::from_secs(60);
/// A ZooKeeper ensemble step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EnsembleStep {
    /// Read every ZooKeeper server's id from the server itself (`conf` serverId).
    ZookeeperDiscoverIds,
    /// Write a static ensemble (sorted by address as strings) into every server's
    /// configuration, then restart the servers one at a time, each within `within` serving
    /// under one agreed leader.
    ZookeeperStaticEnsemble {
        ids: ZookeeperIds,
        order: Vec<NodeRef>,
        within: Duration,
    },
    /// Renumber every server to the upgrade's id with the safe rolling plan, each restart
    /// within `within` serving under one agreed leader.
    ZookeeperRenumber { within: Duration },
    /// Create a znode (or overwrite its data) through the ensemble.
    ZookeeperWrite { path: String, data: String },
    /// Expect every ZooKeeper server to report the given id (`conf` serverId).
    ExpectZookeeperIds { ids: ZookeeperIds, within: Duration },
    /// Expect every ZooKeeper server to return a znode's data.
    ExpectZookeeperData {
        path: String,
        data: String,
        within: Duration,
    },
}

// Every step of this family starts by checking that the topology runs ZooKeeper at all, so
// the error points at the step's name rather than at some key.

fn parse_discover_ids(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_zookeeper(r)?;
    r.context_mut().discovered = true;
    Ok(EnsembleStep::ZookeeperDiscoverIds.into())
}

fn parse_static_ensemble(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_zookeeper(r)?;
    let ids = ids(r)?;
    let order = r.node_list("order")?;
    let within = restart_within(r)?;
    Ok(EnsembleStep::ZookeeperStaticEnsemble { ids, order, within }.into())
}

fn parse_renumber(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_zookeeper(r)?;
    let within = restart_within(r)?;
    Ok(EnsembleStep::ZookeeperRenumber { within }.into())
}

fn parse_write(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_zookeeper(r)?;
    let (path, data) = znode(r)?;
    Ok(EnsembleStep::ZookeeperWrite { path, data }.into())
}

fn parse_expect_ids(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_zookeeper(r)?;
    let ids = ids(r)?;
    Ok(EnsembleStep::ExpectZookeeperIds {
        ids,
        within: r.within(),
    }
    .into())
}

fn parse_expect_data(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    require_zookeeper(r)?;
    let (path, data) = znode(r)?;
    Ok(EnsembleStep::ExpectZookeeperData {
        path,
        data,
        within: r.within(),
    }
    .into())
}

fn require_zookeeper(r: &StepReader<'_, '_>) -> Result<(), InputError> {
    r.context().runs_zookeeper(r.word())
}

/// An action's `within`: the deadline for each restarted server.
fn restart_within(r: &mut StepReader<'_, '_>) -> Result<Duration, InputError> {
    Ok(r.opt_duration("within")?
        .map(|d| d.value)
        .unwrap_or(DEFAULT_RESTART_WITHIN))
}

fn ids(r: &mut StepReader<'_, '_>) -> Result<ZookeeperIds, InputError> {
    let ids = r.str("ids")?;
    match ids.value.as_str() {
        "upgrade" => Ok(ZookeeperIds::Upgrade),
        "discovered" if r.context().discovered => Ok(ZookeeperIds::Discovered),
        "discovered" => Err(r
            .error(ids.span, "no earlier step discovered the ZooKeeper ids")
            .with_help("add a `zookeeper-discover-ids` step before this one")),
        _ => Err(r
            .error(ids.span, format!("unknown ids `{}`", ids.value))
            .with_help("ids: discovered (read from the running servers by `zookeeper-discover-ids`), upgrade (addresses sorted as strings, numbered from 1)")),
    }
}

fn znode(r: &mut StepReader<'_, '_>) -> Result<(String, String), InputError> {
    let path = r.str("path")?;
    let valid = path.value.starts_with('/')
        && path.value.len() > 1
        && !path.value.ends_with('/')
        && !path.value.contains("//");
    if !valid {
        return Err(r
            .error(path.span, format!("`{}` is not a znode path", path.value))
            .with_help("an absolute path such as \"/succession/before-migration\""));
    }
    let data = r.str("data")?;
    Ok((path.value, data.value))
}

/// The name of a step that has none.
pub fn default_name(step: &EnsembleStep, _node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        EnsembleStep::ZookeeperDiscoverIds => {
            "discover the ZooKeeper ids (conf serverId)".to_string()
        }
        EnsembleStep::ZookeeperStaticEnsemble { ids, .. } => format!(
            "write the static ensemble with the {} ids and restart one server at a time",
            ids_word(*ids)
        ),
        EnsembleStep::ZookeeperRenumber { .. } => {
            "renumber ZooKeeper to the upgrade's ids, one restart at a time".to_string()
        }
        EnsembleStep::ZookeeperWrite { path, .. } => format!("write {path} to ZooKeeper"),
        EnsembleStep::ExpectZookeeperIds { ids, .. } => {
            format!("expect the {} ZooKeeper ids", ids_word(*ids))
        }
        EnsembleStep::ExpectZookeeperData { path, .. } => {
            format!("expect every ZooKeeper server to return {path}")
        }
    }
}

fn ids_word(ids: ZookeeperIds) -> &'static str {
    match ids {
        ZookeeperIds::Discovered => "discovered",
        ZookeeperIds::Upgrade => "upgrade's",
    }
}

/// Runs a step of this family; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &EnsembleStep) -> StepResult {
    match step {
        EnsembleStep::ZookeeperDiscoverIds => ops::discover(r).await,
        EnsembleStep::ZookeeperStaticEnsemble { ids, order, within } => {
            rollout::static_ensemble(r, *ids, order, *within).await
        }
        EnsembleStep::ZookeeperRenumber { within } => rollout::renumber(r, *within).await,
        EnsembleStep::ZookeeperWrite { path, data } => ops::write(r, path, data).await,
        EnsembleStep::ExpectZookeeperIds { ids, within } => ops::expect_ids(r, *ids, *within).await,
        EnsembleStep::ExpectZookeeperData { path, data, within } => {
            ops::expect_data(r, path, data, *within).await
        }
    }
}
