//! The steps a scenario can take, by family. Each family keeps together its steps' names, keys
//! and help, how each is read from a scenario file and what each does; the registry below lists
//! the families once, and everything else — parsing, running, default names, `succession steps`
//! — goes through it.

pub mod chaos;
pub mod commands;
pub mod disaster;
pub mod ensembles;
pub mod faults;
pub mod leadership;
pub mod membership;
pub mod neighbours;

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::provider::Hosts;
use crate::runner::{Runner, StepResult};
use crate::source::InputError;
use crate::spec::context::Validator;
use crate::spec::reader::{closest, Located, TableReader};
use crate::spec::{NodeRef, DEFAULT_WITHIN};

/// One step as `succession steps` and the help texts show it.
#[derive(Debug, Clone, Copy)]
pub struct StepDef {
    /// Its name: the value of `action = …` or `expect = …`.
    pub name: &'static str,
    /// Whether it is an expectation (polled to a deadline) rather than an action.
    pub expectation: bool,
    /// Whether it disturbs the cluster (re-election times count from the last one).
    pub disrupts: bool,
    /// Its keys beside `name`, `phase` and `interrupt`, with what each means.
    pub keys: &'static [(&'static str, &'static str)],
    /// What it does, or what must hold.
    pub help: &'static str,
}

/// A family of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Leaders: find, move, expect one or none.
    Leadership,
    /// Faults on nodes and services.
    Faults,
    /// Faults that are undone later (kills, pauses, partitions, loss) and healing.
    Chaos,
    /// Commands and service state on nodes.
    Commands,
    /// Neighbour (ARP) tables.
    Neighbours,
    /// etcd membership and member lists.
    Membership,
    /// etcd disaster recovery and the write ledger's read-back.
    Disaster,
    /// ZooKeeper ensembles and ids.
    Ensembles,
}

/// Every family, in the order `succession steps` lists them.
pub const FAMILIES: &[Family] = &[
    Family::Leadership,
    Family::Faults,
    Family::Chaos,
    Family::Neighbours,
    Family::Membership,
    Family::Commands,
    Family::Ensembles,
    Family::Disaster,
];

impl Family {
    /// Its steps.
    pub fn steps(self) -> &'static [StepDef] {
        match self {
            Family::Leadership => leadership::STEPS,
            Family::Faults => faults::STEPS,
            Family::Chaos => chaos::STEPS,
            Family::Commands => commands::STEPS,
            Family::Neighbours => neighbours::STEPS,
            Family::Membership => membership::STEPS,
            Family::Disaster => disaster::STEPS,
            Family::Ensembles => ensembles::STEPS,
        }
    }

    /// Where its code is.
    pub fn module(self) -> &'static str {
        match self {
            Family::Leadership => "harness/steps/leadership.rs",
            Family::Faults => "harness/steps/faults.rs",
            Family::Chaos => "harness/steps/chaos.rs",
            Family::Commands => "harness/steps/commands.rs",
            Family::Neighbours => "harness/steps/neighbours.rs",
            Family::Membership => "harness/steps/membership.rs",
            Family::Disaster => "harness/steps/disaster/",
            Family::Ensembles => "harness/steps/ensembles/",
        }
    }

    /// Its name in headings.
    pub fn title(self) -> &'static str {
        match self {
            Family::Leadership => "leadership",
            Family::Faults => "faults",
            Family::Chaos => "chaos (faults healed later)",
            Family::Commands => "commands",
            Family::Neighbours => "neighbour tables",
            Family::Membership => "etcd membership",
            Family::Disaster => "etcd disaster recovery",
            Family::Ensembles => "ZooKeeper ensembles",
        }
    }
}

/// The family and definition of a step name, for actions or for expectations.
pub fn lookup(name: &str, expectation: bool) -> Option<(Family, &'static StepDef)> {
    FAMILIES.iter().find_map(|f| {
        f.steps()
            .iter()
            .find(|d| d.name == name && d.expectation == expectation)
            .map(|d| (*f, d))
    })
}

/// Every step name of one kind, in registry order.
pub fn names(expectation: bool) -> Vec<&'static str> {
    FAMILIES
        .iter()
        .flat_map(|f| f.steps().iter())
        .filter(|d| d.expectation == expectation)
        .map(|d| d.name)
        .collect()
}

/// What a step does, by family.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// A leadership step.
    Leadership(leadership::Step),
    /// A fault.
    Faults(faults::Step),
    /// A fault healed later, a heal, a wait.
    Chaos(chaos::Step),
    /// A command or service-state step.
    Commands(commands::Step),
    /// A neighbour-table step.
    Neighbours(neighbours::Step),
    /// An etcd membership step.
    Membership(membership::Step),
    /// An etcd disaster-recovery step.
    Disaster(disaster::Step),
    /// A ZooKeeper ensemble step.
    Ensembles(ensembles::Step),
}

impl Serialize for StepKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Each family's step names itself under `kind`; disaster recovery keeps the shape it
        // always had: `{"kind": "recovery", "recovery": "etcd-snapshot", …}`.
        #[derive(Serialize)]
        struct Recovery<'a> {
            kind: &'static str,
            #[serde(flatten)]
            step: &'a disaster::Step,
        }
        match self {
            StepKind::Leadership(x) => x.serialize(s),
            StepKind::Faults(x) => x.serialize(s),
            StepKind::Chaos(x) => x.serialize(s),
            StepKind::Commands(x) => x.serialize(s),
            StepKind::Neighbours(x) => x.serialize(s),
            StepKind::Membership(x) => x.serialize(s),
            StepKind::Ensembles(x) => x.serialize(s),
            StepKind::Disaster(step) => Recovery {
                kind: "recovery",
                step,
            }
            .serialize(s),
        }
    }
}

/// Reads the step named by `word` (an action, or an expectation) from its table.
pub fn parse(
    cx: &mut Validator<'_>,
    t: &mut TableReader<'_, '_>,
    word: &Located<String>,
    expectation: bool,
    accepted: &mut Vec<&'static str>,
) -> Result<(StepKind, &'static StepDef), InputError> {
    let Some((family, def)) = lookup(&word.value, expectation) else {
        let (what, known) = if expectation {
            ("expectation", names(true))
        } else {
            ("action", names(false))
        };
        let err = cx.source.error(
            word.span.clone(),
            format!("unknown {what} `{}`", word.value),
        );
        let plural = format!("{what}s");
        return Err(match closest(&word.value, &known) {
            Some(c) => err.with_help(format!(
                "did you mean `{c}`? {plural}: {}",
                known.join(", ")
            )),
            None => err.with_help(format!("{plural}: {}", known.join(", "))),
        });
    };
    // Every expectation is polled to a deadline; an action reads its own deadline, if any.
    let within = if expectation {
        accepted.push("within");
        t.opt_duration("within")?
            .map(|d| d.value)
            .unwrap_or(DEFAULT_WITHIN)
    } else {
        Duration::ZERO
    };
    let kind = match family {
        Family::Leadership => {
            StepKind::Leadership(leadership::parse(cx, t, word, within, accepted)?)
        }
        Family::Faults => StepKind::Faults(faults::parse(cx, t, word, within, accepted)?),
        Family::Chaos => StepKind::Chaos(chaos::parse(cx, t, word, within, accepted)?),
        Family::Commands => StepKind::Commands(commands::parse(cx, t, word, within, accepted)?),
        Family::Neighbours => {
            StepKind::Neighbours(neighbours::parse(cx, t, word, within, accepted)?)
        }
        Family::Membership => {
            StepKind::Membership(membership::parse(cx, t, word, within, accepted)?)
        }
        Family::Disaster => StepKind::Disaster(disaster::parse(cx, t, word, within, accepted)?),
        Family::Ensembles => StepKind::Ensembles(ensembles::parse(cx, t, word, within, accepted)?),
    };
    Ok((kind, def))
}

/// The name of a step that has none.
pub fn default_name(kind: &StepKind) -> String {
    let node = |n: &NodeRef| match n {
        NodeRef::Node(f) => crate::base::names::short(f).to_string(),
        NodeRef::Bound(b) => format!("${b}"),
    };
    match kind {
        StepKind::Leadership(s) => leadership::default_name(s, &node),
        StepKind::Faults(s) => faults::default_name(s, &node),
        StepKind::Chaos(s) => chaos::default_name(s, &node),
        StepKind::Commands(s) => commands::default_name(s, &node),
        StepKind::Neighbours(s) => neighbours::default_name(s, &node),
        StepKind::Membership(s) => membership::default_name(s, &node),
        StepKind::Disaster(s) => disaster::default_name(s, &node),
        StepKind::Ensembles(s) => ensembles::default_name(s, &node),
    }
}

/// Runs a step; Ok carries what it found, Err why it failed.
pub async fn execute<H: Hosts>(r: &mut Runner<'_, H>, kind: &StepKind) -> StepResult {
    match kind {
        StepKind::Leadership(s) => leadership::execute(r, s).await,
        StepKind::Faults(s) => faults::execute(r, s).await,
        StepKind::Chaos(s) => chaos::execute(r, s).await,
        StepKind::Commands(s) => commands::execute(r, s).await,
        StepKind::Neighbours(s) => neighbours::execute(r, s).await,
        StepKind::Membership(s) => membership::execute(r, s).await,
        StepKind::Disaster(s) => disaster::execute(r, s).await,
        StepKind::Ensembles(s) => ensembles::execute(r, s).await,
    }
}

/// Every action and expectation with its keys and help, as `succession steps` prints them.
pub fn render() -> String {
    let mut out = String::from(
        "Every step takes `name` (for the report) and may take `phase` (begins a phase) and\n`interrupt = true` (fail on purpose once, then run its phase again).\n",
    );
    for family in FAMILIES {
        let _ = writeln!(out, "\n{} ({})", family.title(), family.module());
        for d in family.steps() {
            let word = if d.expectation { "expect" } else { "action" };
            let _ = writeln!(out, "  {word} = \"{}\"", d.name);
            let _ = writeln!(out, "      {}", d.help);
            for (key, help) in d.keys {
                let _ = writeln!(out, "      {key:<22} {help}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_name_is_listed_once_per_kind() {
        for expectation in [false, true] {
            let mut seen = std::collections::BTreeSet::new();
            for name in names(expectation) {
                assert!(seen.insert(name), "{name} is listed twice");
            }
        }
        assert!(lookup("terminate", false).is_some());
        assert!(lookup("terminate", true).is_none());
        assert!(lookup("leader", true).is_some());
    }

    #[test]
    fn the_step_list_reads_well() {
        insta::assert_snapshot!(render());
    }
}
