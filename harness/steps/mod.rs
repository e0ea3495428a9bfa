//! The steps a scenario can take, by family. Each step is one row in its family's module — its
//! name, whether it acts or expects, whether it disrupts, its keys with their help, and the
//! function that reads it — beside the typed step that function returns, which says what it
//! does and names itself. The registry below lists the families once; looking a step up,
//! reading it, the hints for unknown steps and keys, and `succession steps` all come from the
//! rows, and the tests check each row's keys against the keys its function reads.

pub mod chaos;
pub mod commands;
pub mod disaster;
pub mod ensembles;
pub mod faults;
pub mod leadership;
pub mod membership;
pub mod neighbours;
pub mod slow;

use std::fmt::Write as _;

use serde::Serialize;

use crate::provider::Hosts;
use crate::runner::{Runner, StepResult};
use crate::source::InputError;
use crate::spec::capability::Capability;
use crate::spec::context::Validator;
use crate::spec::reader::{closest, Located, TableReader};
use crate::spec::step_reader::StepReader;
use crate::spec::NodeRef;

use chaos::ChaosStep;
use commands::CommandStep;
use disaster::RecoveryStep;
use ensembles::EnsembleStep;
use faults::FaultStep;
use leadership::LeadershipStep;
use membership::MembershipStep;
use neighbours::NeighbourStep;
use slow::SlowStep;

/// The keys every step may carry, read by the scenario before the step's own.
pub const COMMON_KEYS: &[&str] = &["name", "action", "expect", "phase", "interrupt"];

/// Every expectation's deadline, read before its own keys.
const WITHIN: Key = key(&["within"], "deadline (default 30s)");

/// Keys a step takes — one, or several that share a meaning (`to` / `away_from`) — and what
/// they mean.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The keys, as written in scenario files.
    pub names: &'static [&'static str],
    /// What they mean.
    pub help: &'static str,
}

/// Keys and their help, for a row.
pub const fn key(names: &'static [&'static str], help: &'static str) -> Key {
    Key { names, help }
}

/// Reads a step from its table, asking for exactly the keys its row declares.
pub type Parse = fn(&mut StepReader<'_, '_>) -> Result<StepKind, InputError>;

/// One step: everything the registry knows of it. What a parsed step does, and its name when
/// the file gives none, belong to the typed step its `parse` returns.
#[derive(Clone, Copy)]
pub struct StepRow {
    /// Its name: the value of `action = …` or `expect = …`.
    pub name: &'static str,
    /// Whether it is an expectation (polled to a deadline) rather than an action.
    pub expectation: bool,
    /// Whether it disturbs the cluster (re-election times count from the last one).
    pub disrupts: bool,
    /// What it needs of the provider beyond running commands on nodes (`lint` and `run`
    /// refuse it on a provider without them).
    pub needs: &'static [Capability],
    /// Its own keys, with what each means: beside the common ones and an expectation's `within`.
    pub keys: &'static [Key],
    /// What it does, or what must hold.
    pub help: &'static str,
    /// Reads it.
    pub parse: Parse,
}

impl StepRow {
    /// The key that names it: `action` or `expect`.
    pub fn word(&self) -> &'static str {
        if self.expectation {
            "expect"
        } else {
            "action"
        }
    }

    /// Its own keys, one by one.
    pub fn key_names(&self) -> impl Iterator<Item = &'static str> {
        self.keys.iter().flat_map(|k| k.names.iter().copied())
    }

    /// Every key a table of this step may hold, in the order its hints list them.
    pub fn accepted(&self) -> Vec<&'static str> {
        let within = self.expectation.then_some("within");
        COMMON_KEYS
            .iter()
            .copied()
            .chain(within)
            .chain(self.key_names())
            .collect()
    }

    /// Its keys as `succession steps` lists them: its own, then an expectation's `within`.
    pub fn documented_keys(&self) -> impl Iterator<Item = &'static Key> {
        let within = self.expectation.then_some(&WITHIN);
        self.keys.iter().chain(within)
    }
}

/// A family of steps: a module, and the rows of its steps.
#[derive(Clone, Copy)]
pub struct Family {
    /// Its name in headings.
    pub title: &'static str,
    /// Where its code is.
    pub module: &'static str,
    /// Its steps.
    pub rows: &'static [StepRow],
}

/// Every family, in the order `succession steps` lists them.
pub const FAMILIES: &[Family] = &[
    Family {
        title: "leadership",
        module: "harness/steps/leadership.rs",
        rows: leadership::ROWS,
    },
    Family {
        title: "faults",
        module: "harness/steps/faults.rs",
        rows: faults::ROWS,
    },
    Family {
        title: "chaos (faults healed later)",
        module: "harness/steps/chaos.rs",
        rows: chaos::ROWS,
    },
    Family {
        title: "slow networks and disks (faults healed later)",
        module: "harness/steps/slow.rs",
        rows: slow::ROWS,
    },
    Family {
        title: "neighbour tables",
        module: "harness/steps/neighbours.rs",
        rows: neighbours::ROWS,
    },
    Family {
        title: "etcd membership",
        module: "harness/steps/membership.rs",
        rows: membership::ROWS,
    },
    Family {
        title: "commands",
        module: "harness/steps/commands.rs",
        rows: commands::ROWS,
    },
    Family {
        title: "ZooKeeper ensembles",
        module: "harness/steps/ensembles/",
        rows: ensembles::ROWS,
    },
    Family {
        title: "etcd disaster recovery",
        module: "harness/steps/disaster/",
        rows: disaster::ROWS,
    },
];

/// Every row, in registry order.
pub fn rows() -> impl Iterator<Item = &'static StepRow> {
    FAMILIES.iter().flat_map(|f| f.rows.iter())
}

/// The row of a step name, among actions or among expectations.
pub fn lookup(name: &str, expectation: bool) -> Option<&'static StepRow> {
    rows().find(|row| row.name == name && row.expectation == expectation)
}

/// Every step name of one kind, in registry order.
pub fn names(expectation: bool) -> Vec<&'static str> {
    rows()
        .filter(|row| row.expectation == expectation)
        .map(|row| row.name)
        .collect()
}

/// Disaster recovery keeps the shape it always had: `{"kind": "recovery", "recovery":
/// "etcd-snapshot", …}`; every other family's step names itself under `kind`.
fn as_recovery<S: serde::Serializer>(step: &RecoveryStep, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Recovery<'a> {
        kind: &'static str,
        #[serde(flatten)]
        step: &'a RecoveryStep,
    }
    Recovery {
        kind: "recovery",
        step,
    }
    .serialize(s)
}

/// Declares `StepKind`, one variant per family, and how each family's step becomes one, so the
/// families are listed once.
macro_rules! step_kinds {
    ($($(#[$attr:meta])* $variant:ident($step:ty),)*) => {
        /// What a step does, by family.
        #[derive(Debug, Clone, Serialize)]
        #[serde(untagged)]
        pub enum StepKind {
            $($(#[$attr])* $variant($step),)*
        }

        $(impl From<$step> for StepKind {
            fn from(step: $step) -> Self {
                StepKind::$variant(step)
            }
        })*
    };
}

step_kinds! {
    /// A leadership step.
    Leadership(LeadershipStep),
    /// A fault.
    Faults(FaultStep),
    /// A fault healed later, a heal, a wait.
    Chaos(ChaosStep),
    /// A delay, a slow disk, a power loss.
    Slow(SlowStep),
    /// A command or service-state step.
    Commands(CommandStep),
    /// A neighbour-table step.
    Neighbours(NeighbourStep),
    /// An etcd membership step.
    Membership(MembershipStep),
    /// An etcd disaster-recovery step.
    #[serde(serialize_with = "as_recovery")]
    Disaster(RecoveryStep),
    /// A ZooKeeper ensemble step.
    Ensembles(EnsembleStep),
}

impl StepKind {
    /// The name of a step that has none.
    pub fn default_name(&self) -> String {
        let node = |n: &NodeRef| match n {
            NodeRef::Node(f) => crate::base::names::short(f).to_string(),
            NodeRef::Bound(b) => format!("${b}"),
        };
        match self {
            StepKind::Leadership(s) => leadership::default_name(s, &node),
            StepKind::Faults(s) => faults::default_name(s, &node),
            StepKind::Chaos(s) => chaos::default_name(s, &node),
            StepKind::Slow(s) => slow::default_name(s, &node),
            StepKind::Commands(s) => commands::default_name(s, &node),
            StepKind::Neighbours(s) => neighbours::default_name(s, &node),
            StepKind::Membership(s) => membership::default_name(s, &node),
            StepKind::Disaster(s) => disaster::default_name(s, &node),
            StepKind::Ensembles(s) => ensembles::default_name(s, &node),
        }
    }

    /// Runs the step; Ok carries what it found, Err why it failed.
    pub async fn execute<H: Hosts>(&self, r: &mut Runner<'_, H>) -> StepResult {
        match self {
            StepKind::Leadership(s) => leadership::execute(r, s).await,
            StepKind::Faults(s) => faults::execute(r, s).await,
            StepKind::Chaos(s) => chaos::execute(r, s).await,
            StepKind::Slow(s) => slow::execute(r, s).await,
            StepKind::Commands(s) => commands::execute(r, s).await,
            StepKind::Neighbours(s) => neighbours::execute(r, s).await,
            StepKind::Membership(s) => membership::execute(r, s).await,
            StepKind::Disaster(s) => disaster::execute(r, s).await,
            StepKind::Ensembles(s) => ensembles::execute(r, s).await,
        }
    }
}

/// Reads the step named by `word` (an action, or an expectation) from its table, through its
/// row; the table may hold the common keys and the row's, and no other.
pub fn parse<'s>(
    cx: &mut Validator<'s>,
    table: TableReader<'s, 's>,
    word: &Located<String>,
    expectation: bool,
) -> Result<(StepKind, &'static StepRow), InputError> {
    let Some(row) = lookup(&word.value, expectation) else {
        return Err(unknown_step(cx, word, expectation));
    };
    let mut reader = StepReader::new(cx, table, word.clone(), expectation)?;
    let kind = (row.parse)(&mut reader)?;
    reader.finish(&row.accepted())?;
    Ok((kind, row))
}

fn unknown_step(cx: &Validator<'_>, word: &Located<String>, expectation: bool) -> InputError {
    let what = if expectation { "expectation" } else { "action" };
    let known = names(expectation);
    let err = cx.source.error(
        word.span.clone(),
        format!("unknown {what} `{}`", word.value),
    );
    match closest(&word.value, &known) {
        Some(c) => err.with_help(format!("did you mean `{c}`? {what}s: {}", known.join(", "))),
        None => err.with_help(format!("{what}s: {}", known.join(", "))),
    }
}

/// Every action and expectation with its keys and help, as `succession steps` prints them.
pub fn render() -> String {
    let mut out = String::from(
        "Every step takes `name` (for the report) and may take `phase` (begins a phase) and\n`interrupt = true` (fail on purpose once, then run its phase again).\n",
    );
    for family in FAMILIES {
        let _ = writeln!(out, "\n{} ({})", family.title, family.module);
        for row in family.rows {
            let _ = writeln!(out, "  {} = \"{}\"", row.word(), row.name);
            let _ = writeln!(out, "      {}", row.help);
            if !row.needs.is_empty() {
                let needs: Vec<&str> = row.needs.iter().map(|c| c.describe()).collect();
                let _ = writeln!(out, "      needs: {}", needs.join("; "));
            }
            for key in row.documented_keys() {
                let _ = writeln!(out, "      {:<22} {}", key.names.join(" / "), key.help);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
