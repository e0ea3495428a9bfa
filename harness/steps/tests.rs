//! The registry's rows against their parse functions: every row's keys are exactly the keys its
//! function reads, and the step list reads as users see it.

use std::collections::BTreeSet;

use super::chaos::ChaosStep;
use super::*;
use crate::ledger::CaptureKind;
use crate::source::SourceFile;
use crate::spec::reader::parse_document;
use crate::spec::Topology;

/// Tables (a step's own keys, as a scenario writes them) that together hold every key a row
/// declares; keys that exclude each other are in separate tables. Read in a cell where an
/// earlier step bound `$leader`, took snapshot `snap` and dump `dump`, discovered the ZooKeeper
/// ids and was named `earlier`, with the write ledger on.
const TABLES: &[(&str, &str, &[&str])] = &[
    ("action", "find-leader", &["service = \"etcd\"\nbind = \"l\""]),
    (
        "action",
        "move-leader",
        &[
            "service = \"etcd\"\nto = \"quorum-1\"\nmethod = \"api\"\nwithin = \"5s\"",
            "service = \"marathon\"\naway_from = \"master-1\"",
        ],
    ),
    (
        "expect",
        "leader",
        &[
            "service = \"marathon\"\nnot = \"master-1\"\nbind = \"l\"\nmeasure = \"m\"\nsince = \"earlier\"\nvia = \"http\"\nagreement = \"all\"\nhold = \"1s\"\nwithin = \"5s\"",
            "service = \"etcd\"\nis = \"quorum-1\"",
        ],
    ),
    ("expect", "no-leader", &["service = \"etcd\"\nwithin = \"5s\""]),
    ("action", "terminate", &["node = \"quorum-1\""]),
    ("action", "replace-node", &["node = \"$leader\""]),
    ("action", "start-service", &["node = \"quorum-1\"\nservice = \"etcd\""]),
    ("action", "stop-service", &["node = \"master-1\"\nservice = \"marathon\""]),
    ("action", "restart-service", &["node = \"quorum-2\"\nservice = \"zookeeper\""]),
    ("action", "kill-service", &["service = \"etcd\"\ntarget = \"leader\""]),
    ("action", "crash-restart-service", &["service = \"etcd\"\ntarget = \"follower\"\nwithin = \"20s\""]),
    ("action", "pause-service", &["service = \"zookeeper\"\ntarget = \"quorum-1\""]),
    ("action", "resume-service", &["service = \"etcd\"\ntarget = \"quorum-1\""]),
    ("action", "isolate-node", &["target = \"follower\"\nservice = \"etcd\""]),
    ("action", "partition", &["service = \"etcd\"\nminority = \"any\""]),
    (
        "action",
        "drop-traffic",
        &["service = \"etcd\"\nfrom = \"leader\"\nto = \"follower\"\nprobability = 0.5"],
    ),
    (
        "action",
        "delay-traffic",
        &[
            "service = \"etcd\"\nfrom = \"leader\"\nto = \"follower\"\ndelay = \"100ms\"\njitter = \"10ms\"\nboth_ways = true\nqueue_limit = 500",
        ],
    ),
    (
        "action",
        "slow-disk",
        &["service = \"zookeeper\"\ntarget = \"leader\"\nfsync = \"1s\"\nwrite = \"5ms\""],
    ),
    (
        "action",
        "lose-power",
        &["service = \"zookeeper\"\ntargets = [\"leader\", \"quorum-2\"]\nrestart = false"],
    ),
    ("action", "heal", &[""]),
    ("action", "wait", &["for = \"1s\""]),
    ("action", "purge-neighbours", &["node = \"master-1\""]),
    (
        "expect",
        "neighbours",
        &["node = \"master-1\"\nstate = \"current\"\nwithin = \"5s\""],
    ),
    ("action", "etcd-member-remove", &["node = \"quorum-1\""]),
    ("action", "etcd-member-add", &["node = \"quorum-1\""]),
    (
        "expect",
        "members",
        &["service = \"etcd\"\nnodes = [\"quorum-1\"]\nrole = \"quorum\"\nexcept = [\"$leader\"]\nstarted = true\nwithin = \"5s\""],
    ),
    ("action", "exec", &["on = \"worker\"\ncommand = [\"true\"]"]),
    ("expect", "services-active", &["on = \"quorum-1\"\nwithin = \"5s\""]),
    ("action", "zookeeper-discover-ids", &[""]),
    (
        "action",
        "zookeeper-static-ensemble",
        &["ids = \"discovered\"\norder = [\"quorum-3\", \"quorum-2\", \"quorum-1\"]\nwithin = \"10s\""],
    ),
    ("action", "zookeeper-renumber", &["within = \"10s\""]),
    ("action", "zookeeper-write", &["path = \"/a\"\ndata = \"x\""]),
    ("expect", "zookeeper-ids", &["ids = \"upgrade\"\nwithin = \"5s\""]),
    (
        "expect",
        "zookeeper-data",
        &["path = \"/a\"\ndata = \"x\"\nwithin = \"5s\""],
    ),
    ("action", "etcd-load-config", &[""]),
    ("action", "etcd-wipe", &["on = \"quorum\""]),
    (
        "action",
        "etcd-new-cluster",
        &["role = \"quorum\"\nnodes = [\"quorum-1\"]"],
    ),
    ("action", "etcd-force-new-cluster", &["node = \"quorum-1\""]),
    (
        "action",
        "etcd-snapshot",
        &["snapshot = \"again\"\nnode = \"quorum-1\""],
    ),
    (
        "action",
        "etcd-snapshot-restore",
        &["snapshot = \"snap\"\non = \"quorum\""],
    ),
    ("action", "etcd-dump", &["dump = \"again\"\nprefix = \"/x/\""]),
    ("action", "etcd-dump-restore", &["dump = \"dump\""]),
    (
        "expect",
        "quorum-lost",
        &["service = \"etcd\"\nmeasure = \"m\"\nwithin = \"5s\""],
    ),
    ("expect", "etcd-health", &["on = \"quorum\"\nwithin = \"5s\""]),
    ("expect", "etcd-config", &["within = \"5s\""]),
    ("expect", "dump-restored", &["dump = \"dump\"\nwithin = \"5s\""]),
    (
        "expect",
        "ledger",
        &["node = \"quorum-1\"\nacknowledged = 2\nwithin = \"5s\""],
    ),
];

const CELL: &str = include_str!("../../topologies/cell.toml");

/// The cell with ZooKeeper's data on the faulty disk, which the disk steps need.
fn with_faulty_disk(cell: &str) -> String {
    cell.replace(
        "[services.zookeeper]\n",
        "[services.zookeeper]\nfaulty_disk = true\n",
    )
}

fn topology(text: &str) -> Topology {
    Topology::parse(&SourceFile::from_text("topologies/t.toml", text)).expect("a valid topology")
}

/// What reading one table as `row` gives: the step (or why not), the keys the row's function
/// asked for, and whether the table holds only keys the row accepts.
struct Reading {
    parsed: Result<StepKind, InputError>,
    asked: Vec<&'static str>,
    finished: Result<(), InputError>,
    held: Vec<String>,
}

fn read(row: &StepRow, topology: &Topology, text: &str) -> Reading {
    let source = SourceFile::from_text("scenarios/rows.toml", text);
    let doc = parse_document(&source).expect("a TOML table");
    let held = doc.get_ref().iter().map(|(k, _)| k.get_ref().to_string());
    let held: Vec<String> = held.collect();
    let table = TableReader::new(&source, doc.get_ref(), doc.span(), "step 2");
    let mut cx = Validator::new(&source, topology, true);
    cx.bound.insert("leader".to_string());
    cx.captures
        .insert("snap".to_string(), CaptureKind::Snapshot);
    cx.captures.insert("dump".to_string(), CaptureKind::Dump);
    cx.discovered = true;
    cx.step_names.insert("earlier".to_string());
    let word = Located::new(row.name.to_string(), 0..0);
    let mut reader = match StepReader::new(&mut cx, table, word, row.expectation) {
        Ok(reader) => reader,
        Err(e) => {
            return Reading {
                parsed: Err(e),
                asked: Vec::new(),
                finished: Ok(()),
                held,
            }
        }
    };
    let parsed = (row.parse)(&mut reader);
    let asked = reader.asked().to_vec();
    let finished = reader.finish(&row.accepted());
    Reading {
        parsed,
        asked,
        finished,
        held,
    }
}

/// Where `row` and its parse function disagree, read over `tables`: keys read but not
/// declared, keys declared but never read, keys no table holds, and tables that do not read.
fn disagreements(row: &StepRow, tables: &[&str]) -> Vec<String> {
    let topology = topology(&with_faulty_disk(CELL));
    let declared: BTreeSet<&str> = row
        .key_names()
        .chain(row.expectation.then_some("within"))
        .collect();
    let mut problems = Vec::new();
    let mut held = BTreeSet::new();
    for text in tables {
        let reading = read(row, &topology, text);
        if let Err(e) = &reading.parsed {
            problems.push(format!("{text:?} does not read: {e}"));
        }
        if let Err(e) = &reading.finished {
            problems.push(format!("{text:?} holds a key the row does not accept: {e}"));
        }
        let asked: BTreeSet<&str> = reading.asked.iter().copied().collect();
        for key in asked.difference(&declared) {
            problems.push(format!("reads `{key}`, which the row does not declare"));
        }
        for key in declared.difference(&asked) {
            problems.push(format!(
                "declares `{key}`, which its parse function does not read"
            ));
        }
        held.extend(reading.held);
    }
    for key in &declared {
        if !held.contains(*key) {
            problems.push(format!("no table holds `{key}`"));
        }
    }
    problems.dedup();
    problems
}

fn tables_of(row: &StepRow) -> Option<&'static [&'static str]> {
    TABLES
        .iter()
        .find(|(word, name, _)| *word == row.word() && *name == row.name)
        .map(|(_, _, tables)| *tables)
}

#[test]
fn every_step_name_is_listed_once_per_kind() {
    for expectation in [false, true] {
        let mut seen = BTreeSet::new();
        for name in names(expectation) {
            assert!(seen.insert(name), "{name} is listed twice");
        }
    }
    assert!(lookup("terminate", false).is_some());
    assert!(lookup("terminate", true).is_none());
    assert!(lookup("leader", true).is_some());
}

#[test]
fn every_row_reads_exactly_the_keys_it_declares() {
    let mut problems = Vec::new();
    for row in rows() {
        let word = row.word();
        match tables_of(row) {
            None => problems.push(format!("{word} `{}`: no tables to read it from", row.name)),
            Some(tables) => problems.extend(
                disagreements(row, tables)
                    .into_iter()
                    .map(|p| format!("{word} `{}`: {p}", row.name)),
            ),
        }
    }
    for (word, name, _) in TABLES {
        if lookup(name, *word == "expect").is_none() {
            problems.push(format!("tables for {word} `{name}`, which no row has"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn reads_b(r: &mut StepReader<'_, '_>) -> Result<StepKind, InputError> {
    r.opt_str("b")?;
    Ok(ChaosStep::Heal.into())
}

#[test]
fn a_row_and_a_function_that_disagree_are_caught() {
    const KEYS: &[Key] = &[key(&["a"], "declared, never read")];
    let row = StepRow {
        name: "disagrees",
        expectation: false,
        disrupts: false,
        needs: &[],
        keys: KEYS,
        help: "",
        parse: reads_b,
    };
    let problems = disagreements(&row, &["a = \"x\""]);
    assert_eq!(
        problems,
        vec![
            "reads `b`, which the row does not declare",
            "declares `a`, which its parse function does not read",
        ]
    );
    // A key the row does not declare is refused in a table, even though the function reads it.
    let problems = disagreements(&row, &["a = \"x\"\nb = \"y\""]);
    assert!(
        problems[0].contains("unknown key `b` in step 2"),
        "{problems:?}"
    );
}

#[test]
fn steps_of_etcd_and_zookeeper_need_them_in_the_topology() {
    let zookeeper_only = topology("[roles.quorum]\ncount = 3\nservices = [\"zookeeper\"]\n");
    let etcd_only = topology("[roles.quorum]\ncount = 3\nservices = [\"etcd\"]\n");
    let cases = [
        (disaster::ROWS, &zookeeper_only, "the topology runs no etcd"),
        (ensembles::ROWS, &etcd_only, "needs zookeeper"),
    ];
    for (family, topology, message) in cases {
        for row in family {
            let text = tables_of(row).map(|t| t[0]).unwrap_or_default();
            let err = read(row, topology, text)
                .parsed
                .expect_err("the topology lacks the service");
            assert!(err.message.contains(message), "{}: {}", row.name, err);
        }
    }
}

#[test]
fn the_expectations_deadline_is_documented_as_it_is() {
    let default = format!("(default {}s)", crate::spec::DEFAULT_WITHIN.as_secs());
    assert!(WITHIN.help.contains(&default), "{}", WITHIN.help);
}

#[test]
fn the_step_list_reads_well() {
    insta::assert_snapshot!(render());
}

#[test]
fn disk_steps_need_the_service_on_the_faulty_disk() {
    let plain = topology(CELL);
    for (name, text) in [
        (
            "slow-disk",
            "service = \"zookeeper\"\ntarget = \"leader\"\nfsync = \"1s\"",
        ),
        (
            "lose-power",
            "service = \"zookeeper\"\ntargets = [\"leader\"]",
        ),
    ] {
        let row = lookup(name, false).expect("a disk step");
        let err = read(row, &plain, text)
            .parsed
            .expect_err("ZooKeeper's data is on a plain disk");
        assert!(
            err.to_string()
                .contains("zookeeper's data is not on the faulty disk in this topology"),
            "{err}"
        );
    }
    let faulty = topology(&with_faulty_disk(CELL));
    assert!(faulty
        .settings
        .faulty_disk
        .contains(&crate::service::ServiceKind::Zookeeper));
}
