//! The ZooKeeper four-letter-word checks against each hazard, one at a time on an otherwise
//! healthy cell: the row that must catch it, its outcome, and the evidence it names.

use super::tests::{healthy_cell, inventory, CELL};
use super::*;
use crate::probe::zookeeper::Mode;

const Q3: &str = "quorum-3.cell-1.dc-1.demo.lan";

/// Every ZooKeeper row once `hazard` is done to the healthy cell (by check name).
fn rows_after(
    inventory_text: &str,
    hazard: impl FnOnce(&mut Observations),
) -> Vec<(String, Outcome, String)> {
    let inv = inventory(inventory_text);
    let mut obs = healthy_cell(&inv);
    hazard(&mut obs);
    evaluate(&inv, &obs)
        .checks
        .into_iter()
        .filter(|c| c.service == "zookeeper")
        .map(|c| (c.check, c.outcome, c.evidence))
        .collect()
}

fn row_of(rows: &[(String, Outcome, String)], name: &str) -> (Outcome, String) {
    rows.iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, o, e)| (*o, e.clone()))
        .unwrap_or_else(|| panic!("no row {name}: {rows:#?}"))
}

#[test]
fn words_a_whitelist_refuses_leave_what_they_show_unknown_never_passed() {
    let rows = rows_after(CELL, |obs| {
        for words in obs.zookeeper_words.values_mut() {
            *words = ZookeeperWords {
                refused: vec!["conf".into(), "mntr".into(), "isro".into()],
                mntr: None,
                isro: None,
            };
        }
        for seen in obs.zookeeper.values_mut().flatten() {
            seen.conf = None;
            seen.synced_followers = None;
        }
    });
    let (outcome, evidence) = row_of(&rows, "four-letter words allowed");
    assert_eq!(outcome, Outcome::Unknown);
    assert!(
        evidence.starts_with("`conf` is not allowed on quorum-1, quorum-2, quorum-3 (add it to 4lw.commands.whitelist), so its ensemble and ids cannot be read"),
        "{evidence}"
    );
    for name in [
        "members match the inventory",
        "ids match what the upgrade writes",
        "every follower synced with the leader",
        "every server id unique",
        "every server read-write",
        "no digest mismatches",
        "load below the limits",
    ] {
        assert_eq!(row_of(&rows, name).0, Outcome::Unknown, "{name}: {rows:#?}");
    }
    // What srvr shows is still judged.
    assert_eq!(row_of(&rows, "every server serving").0, Outcome::Pass);
}

#[test]
fn a_follower_that_is_not_following_warns_naming_it() {
    let rows = rows_after(CELL, |obs| {
        if let Some(Ok(seen)) = obs.zookeeper.get_mut(Q3) {
            seen.mode = Mode::NotServing;
            seen.conf = None;
        }
        for (name, words) in obs.zookeeper_words.iter_mut() {
            if name.starts_with("quorum-2") {
                if let Some(m) = words.mntr.as_mut() {
                    m.insert("zk_synced_followers".into(), "1".into());
                }
            }
        }
        for seen in obs.zookeeper.values_mut().flatten() {
            if seen.mode == Mode::Leader {
                seen.synced_followers = Some(1);
            }
        }
    });
    assert_eq!(
        row_of(&rows, "every follower synced with the leader"),
        (
            Outcome::Warn,
            "quorum-2 reports 1 synced followers of 2; not following: quorum-3".to_string()
        )
    );
}

#[test]
fn a_read_only_server_a_digest_mismatch_and_a_heavy_load_are_named() {
    let rows = rows_after(CELL, |obs| {
        if let Some(words) = obs.zookeeper_words.get_mut(Q3) {
            words.isro = Some("ro".into());
            if let Some(m) = words.mntr.as_mut() {
                m.insert("zk_digest_mismatches_count".into(), "2".into());
                m.insert("zk_outstanding_requests".into(), "250".into());
            }
        }
    });
    assert_eq!(
        row_of(&rows, "every server read-write"),
        (Outcome::Fail, "quorum-3 answers ro".to_string())
    );
    assert_eq!(
        row_of(&rows, "no digest mismatches"),
        (Outcome::Fail, "quorum-3 counts 2".to_string())
    );
    assert_eq!(
        row_of(&rows, "load below the limits"),
        (
            Outcome::Warn,
            "quorum-3 250 outstanding, 0.4 ms average (limits: 10 outstanding, 100 ms)".to_string()
        )
    );
    // The inventory's limits decide what is heavy.
    let generous = format!("{CELL}\n[limits]\nzookeeper_outstanding_requests = 500\n");
    let rows = rows_after(&generous, |obs| {
        if let Some(m) = obs
            .zookeeper_words
            .get_mut(Q3)
            .and_then(|w| w.mntr.as_mut())
        {
            m.insert("zk_outstanding_requests".into(), "250".into());
        }
    });
    assert_eq!(row_of(&rows, "load below the limits").0, Outcome::Pass);
}

#[test]
fn two_servers_with_one_id_fail_naming_both() {
    let rows = rows_after(CELL, |obs| {
        if let Some(Ok(seen)) = obs.zookeeper.get_mut(Q3) {
            if let Some(conf) = seen.conf.as_mut() {
                conf.server_id = Some(1);
            }
        }
    });
    assert_eq!(
        row_of(&rows, "every server id unique"),
        (Outcome::Fail, "id 1 on quorum-1, quorum-3".to_string())
    );
}
