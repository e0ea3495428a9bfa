//! ZooKeeper ensembles (seed 004): discover the running ids, write a static ensemble and roll it
//! out one server at a time, renumber to the upgrade's ids with the safe rolling plan, and write
//! and read back data.

mod look;
mod ops;
mod rollout;

use std::time::Duration;

use serde::Serialize;

use super::StepDef;
use crate::provider::Hosts;
use crate::runner::{Runner, StepResult};
use crate::source::InputError;
use crate::spec::context::Validator;
use crate::spec::reader::{Located, TableReader};
use crate::spec::NodeRef;

/// The steps of this family.
pub const STEPS: &[StepDef] = &[
    StepDef {
        name: "zookeeper-discover-ids",
        expectation: false,
        disrupts: false,
        keys: &[],
        help: "read each server's id from the server itself (`conf` serverId)",
    },
    StepDef {
        name: "zookeeper-static-ensemble",
        expectation: false,
        disrupts: true,
        keys: &[
            ("ids", "discovered (from `zookeeper-discover-ids`) or upgrade (addresses sorted as strings, numbered from 1)"),
            ("order", "the restart order (default: by address)"),
            ("within", "deadline for each restarted server to serve under a majority-backed leader (default 60s)"),
        ],
        help: "write that static ensemble into every server's zoo.cfg and myid, then restart one server at a time",
    },
    StepDef {
        name: "zookeeper-renumber",
        expectation: false,
        disrupts: true,
        keys: &[("within", "deadline per restart (default 60s)")],
        help: "renumber every server to the upgrade's id with the safe rolling plan",
    },
    StepDef {
        name: "zookeeper-write",
        expectation: false,
        disrupts: false,
        keys: &[("path", "an absolute znode path"), ("data", "its data")],
        help: "create a znode (or overwrite its data) through a real client session",
    },
    StepDef {
        name: "zookeeper-ids",
        expectation: true,
        disrupts: false,
        keys: &[("ids", "discovered or upgrade"), ("within", "deadline (default 30s)")],
        help: "every server reports those ids (`conf` serverId)",
    },
    StepDef {
        name: "zookeeper-data",
        expectation: true,
        disrupts: false,
        keys: &[("path", "the znode"), ("data", "its data"), ("within", "deadline (default 30s)")],
        help: "every server, asked on its own after a `sync`, returns the data",
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
pub enum Step {
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

/// Parses a step of this family.
pub fn parse(
    cx: &mut Validator<'_>,
    t: &mut TableReader<'_, '_>,
    word: &Located<String>,
    within: Duration,
    accepted: &mut Vec<&'static str>,
) -> Result<Step, InputError> {
    Ok(match word.value.as_str() {
        "zookeeper-ids" => {
            cx.runs_zookeeper(word)?;
            accepted.push("ids");
            let ids = ids(cx, t)?;
            Step::ExpectZookeeperIds { ids, within }
        }
        "zookeeper-data" => {
            cx.runs_zookeeper(word)?;
            accepted.extend(["path", "data"]);
            let (path, data) = znode(cx, t)?;
            Step::ExpectZookeeperData { path, data, within }
        }
        _ => action(cx, t, word, accepted)?,
    })
}

fn action(
    cx: &mut Validator<'_>,
    t: &mut TableReader<'_, '_>,
    action: &Located<String>,
    accepted: &mut Vec<&'static str>,
) -> Result<Step, InputError> {
    cx.runs_zookeeper(action)?;
    let restart_within = |t: &mut TableReader<'_, '_>| {
        t.opt_duration("within")
            .map(|d| d.map(|d| d.value).unwrap_or(DEFAULT_RESTART_WITHIN))
    };
    Ok(match action.value.as_str() {
        "zookeeper-discover-ids" => {
            cx.discovered = true;
            Step::ZookeeperDiscoverIds
        }
        "zookeeper-static-ensemble" => {
            accepted.extend(["ids", "order", "within"]);
            let ids = ids(cx, t)?;
            let order = cx.node_list(t, "order")?;
            let within = restart_within(t)?;
            Step::ZookeeperStaticEnsemble { ids, order, within }
        }
        "zookeeper-renumber" => {
            accepted.push("within");
            Step::ZookeeperRenumber {
                within: restart_within(t)?,
            }
        }
        _ => {
            accepted.extend(["path", "data"]);
            let (path, data) = znode(cx, t)?;
            Step::ZookeeperWrite { path, data }
        }
    })
}

fn ids(cx: &Validator<'_>, t: &mut TableReader<'_, '_>) -> Result<ZookeeperIds, InputError> {
    let ids = t.str("ids")?;
    match ids.value.as_str() {
        "upgrade" => Ok(ZookeeperIds::Upgrade),
        "discovered" if cx.discovered => Ok(ZookeeperIds::Discovered),
        "discovered" => Err(cx
            .source
            .error(ids.span, "no earlier step discovered the ZooKeeper ids")
            .with_help("add a `zookeeper-discover-ids` step before this one")),
        _ => Err(cx
            .source
            .error(ids.span, format!("unknown ids `{}`", ids.value))
            .with_help("ids: discovered (read from the running servers by `zookeeper-discover-ids`), upgrade (addresses sorted as strings, numbered from 1)")),
    }
}

fn znode(cx: &Validator<'_>, t: &mut TableReader<'_, '_>) -> Result<(String, String), InputError> {
    let path = t.str("path")?;
    let valid = path.value.starts_with('/')
        && path.value.len() > 1
        && !path.value.ends_with('/')
        && !path.value.contains("//");
    if !valid {
        return Err(cx
            .source
            .error(path.span, format!("`{}` is not a znode path", path.value))
            .with_help("an absolute path such as \"/succession/before-migration\""));
    }
    let data = t.str("data")?;
    Ok((path.value, data.value))
}

/// The name of a step that has none.
pub fn default_name(step: &Step, _node: &dyn Fn(&NodeRef) -> String) -> String {
    match step {
        Step::ZookeeperDiscoverIds => "discover the ZooKeeper ids (conf serverId)".to_string(),
        Step::ZookeeperStaticEnsemble { ids, .. } => format!(
            "write the static ensemble with the {} ids and restart one server at a time",
            ids_word(*ids)
        ),
        Step::ZookeeperRenumber { .. } => {
            "renumber ZooKeeper to the upgrade's ids, one restart at a time".to_string()
        }
        Step::ZookeeperWrite { path, .. } => format!("write {path} to ZooKeeper"),
        Step::ExpectZookeeperIds { ids, .. } => {
            format!("expect the {} ZooKeeper ids", ids_word(*ids))
        }
        Step::ExpectZookeeperData { path, .. } => {
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
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, step: &Step) -> StepResult {
    match step {
        Step::ZookeeperDiscoverIds => ops::discover(r).await,
        Step::ZookeeperStaticEnsemble { ids, order, within } => {
            rollout::static_ensemble(r, *ids, order, *within).await
        }
        Step::ZookeeperRenumber { within } => rollout::renumber(r, *within).await,
        Step::ZookeeperWrite { path, data } => ops::write(r, path, data).await,
        Step::ExpectZookeeperIds { ids, within } => ops::expect_ids(r, *ids, *within).await,
        Step::ExpectZookeeperData { path, data, within } => {
            ops::expect_data(r, path, data, *within).await
        }
    }
}
