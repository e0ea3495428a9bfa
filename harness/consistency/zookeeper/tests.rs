use super::*;

fn op(session: u32, request: ZkRequest, call_ms: u64, ack: Option<(u64, i64)>) -> ZkOperation {
    ZkOperation {
        session,
        request,
        call_ms,
        acknowledged: ack,
    }
}

fn create(session: u32, path: &str, call: u64, ack: u64, zxid: i64) -> ZkOperation {
    op(
        session,
        ZkRequest::Create { path: path.into() },
        call,
        Some((ack, zxid)),
    )
}

/// `(path, version)` set (`set = true`) or read by `session`, acknowledged at `ack` with `zxid`.
fn versioned(
    set: bool,
    session: u32,
    at: (&str, i32),
    call: u64,
    ack: u64,
    zxid: i64,
) -> ZkOperation {
    let (path, version) = (at.0.to_string(), at.1);
    let request = if set {
        ZkRequest::SetData { path, version }
    } else {
        ZkRequest::Read { path, version }
    };
    op(session, request, call, Some((ack, zxid)))
}

fn set(session: u32, path: &str, version: i32, call: u64, ack: u64, zxid: i64) -> ZkOperation {
    versioned(true, session, (path, version), call, ack, zxid)
}

fn read(session: u32, path: &str, version: i32, call: u64, ack: u64, zxid: i64) -> ZkOperation {
    versioned(false, session, (path, version), call, ack, zxid)
}

fn sync(session: u32, call: u64, ack: u64, zxid: i64) -> ZkOperation {
    op(session, ZkRequest::Sync, call, Some((ack, zxid)))
}

fn present(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[test]
fn a_history_that_kept_every_guarantee_breaks_none() {
    let history = [
        create(1, "/w/a-0001", 0, 5, 0x1_0000_0001),
        set(1, "/w/a-0001", 1, 6, 10, 0x1_0000_0002),
        create(2, "/w/a-0002", 1, 7, 0x1_0000_0003),
        sync(2, 12, 14, 0x1_0000_0003),
        read(2, "/w/a-0001", 1, 15, 16, 0x1_0000_0003),
        // Unknown outcome: neither needs to survive nor constrains anything.
        op(
            3,
            ZkRequest::Create {
                path: "/w/a-0003".into(),
            },
            20,
            None,
        ),
    ];
    assert_eq!(
        check_zookeeper(&history, &present(&["/w/a-0001", "/w/a-0002"])),
        vec![]
    );
}

#[test]
fn a_lost_create_is_named_with_its_session_and_when_it_was_acknowledged() {
    let history = [create(1, "/w/a-0001", 0, 5, 0x1_0000_0001)];
    let broke = check_zookeeper(&history, &present(&[]));
    assert_eq!(
        broke.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["session 1 created /w/a-0001 (acknowledged at 5 ms), and it is gone"]
    );
}

#[test]
fn writes_out_of_session_order_and_a_session_going_back_are_caught() {
    let history = [
        create(1, "/w/a-0001", 0, 5, 0x1_0000_0005),
        create(1, "/w/a-0002", 6, 8, 0x1_0000_0004),
    ];
    let broke = check_zookeeper(&history, &present(&["/w/a-0001", "/w/a-0002"]));
    assert!(broke
        .iter()
        .any(|b| matches!(b, ZkBroke::OutOfOrder { session: 1, .. })));
    assert!(broke.contains(&ZkBroke::WentBack {
        session: 1,
        from: 0x1_0000_0005,
        to: 0x1_0000_0004,
        at_ms: 8
    }));
    assert!(broke.iter().any(|b| b.to_string()
        == "session 1 went back from zxid 0x100000005 to 0x100000004 (reply at 8 ms)"));
}

#[test]
fn a_read_after_sync_must_see_writes_acknowledged_before_the_sync_but_not_later_ones() {
    let before = [
        set(1, "/w/k", 3, 0, 5, 0x1_0000_0003),
        sync(2, 6, 8, 0x1_0000_0003),
        read(2, "/w/k", 2, 9, 10, 0x1_0000_0003),
    ];
    assert_eq!(
        check_zookeeper(&before, &present(&[])),
        vec![ZkBroke::StaleAfterSync {
            session: 2,
            path: "/w/k".into(),
            read: 2,
            sync_ms: 6,
            writer: 1,
            written: 3,
            written_ms: 5
        }]
    );
    // Acknowledged only after the sync began: the read may miss it.
    let after = [
        set(1, "/w/k", 3, 0, 7, 0x1_0000_0003),
        sync(2, 6, 8, 0x1_0000_0002),
        read(2, "/w/k", 2, 9, 10, 0x1_0000_0002),
    ];
    assert_eq!(check_zookeeper(&after, &present(&[])), vec![]);
    // Without a sync, a read from a lagging follower may be stale.
    let unsynced = [
        set(1, "/w/k", 3, 0, 5, 0x1_0000_0003),
        read(2, "/w/k", 2, 9, 10, 0x1_0000_0002),
    ];
    assert_eq!(check_zookeeper(&unsynced, &present(&[])), vec![]);
}

#[test]
fn a_read_without_sync_claimed_up_to_date_must_see_writes_acknowledged_before_it_began() {
    let history = [
        set(1, "/w/k", 3, 0, 5, 0x1_0000_0003),
        set(1, "/w/k", 4, 6, 8, 0x1_0000_0004),
        // Began after version 3 was acknowledged, before version 4 was: it must see 3.
        read(2, "/w/k", 2, 7, 9, 0x1_0000_0002),
        read(2, "/w/k", 3, 7, 9, 0x1_0000_0003),
    ];
    assert_eq!(check_zookeeper(&history, &present(&[])), vec![]);
    let broke = check_zookeeper_as(&history, &present(&[]), UnsyncedReads::UpToDate);
    assert_eq!(
        broke,
        vec![ZkBroke::StaleUnsynced {
            session: 2,
            path: "/w/k".into(),
            read: 2,
            call_ms: 7,
            read_ms: 9,
            writer: 1,
            written: 3,
            written_ms: 5
        }]
    );
    assert_eq!(
        broke[0].to_string(),
        "session 2 read /w/k at version 2 (7–9 ms, no sync: claimed up to date), but session 1 had written version 3 by 5 ms"
    );
}

#[test]
fn the_newest_version_before_a_moment_is_the_highest_acknowledged_by_then() {
    // Acknowledged out of version order: version 5 at 4 ms, version 4 at 6 ms.
    let history = [
        set(1, "/w/k", 5, 0, 4, 0x1_0000_0005),
        set(2, "/w/k", 4, 0, 6, 0x1_0000_0004),
        set(2, "/w/k", 6, 7, 9, 0x1_0000_0006),
    ];
    let written = Written::of(&history);
    assert_eq!(written.newest_before("/w/k", 4), None);
    assert_eq!(written.newest_before("/w/k", 5), Some((5, 4, 1)));
    assert_eq!(written.newest_before("/w/k", 7), Some((5, 4, 1)));
    assert_eq!(written.newest_before("/w/k", 10), Some((6, 9, 2)));
    assert_eq!(written.newest_before("/w/other", 10), None);
}

use proptest::prelude::*;

/// A serial history (each operation acknowledged before the next is called) of sessions
/// creating znodes, setting one znode's data, syncing and reading it, each reply carrying the
/// ensemble's zxid then: it keeps every guarantee. Also every znode created.
fn serial(steps: &[(u32, u8)]) -> (Vec<ZkOperation>, BTreeSet<String>) {
    let mut history = Vec::new();
    let mut created = BTreeSet::new();
    let (mut zxid, mut version) = (0x1_0000_0000_i64, 0);
    for (i, &(session, kind)) in steps.iter().enumerate() {
        let (call, ack) = (i as u64 * 10, i as u64 * 10 + 5);
        let request = match kind % 4 {
            0 => {
                zxid += 1;
                let path = format!("/w/n-{i:04}");
                created.insert(path.clone());
                ZkRequest::Create { path }
            }
            1 => {
                zxid += 1;
                version += 1;
                ZkRequest::SetData {
                    path: "/w/k".into(),
                    version,
                }
            }
            2 => ZkRequest::Sync,
            _ => ZkRequest::Read {
                path: "/w/k".into(),
                version,
            },
        };
        history.push(op(session, request, call, Some((ack, zxid))));
    }
    (history, created)
}

proptest! {
    #[test]
    fn a_serial_history_breaks_nothing_and_losing_any_create_is_caught(
        steps in proptest::collection::vec((0u32..3, any::<u8>()), 1..30),
        pick in any::<prop::sample::Index>(),
    ) {
        let (history, created) = serial(&steps);
        prop_assert_eq!(check_zookeeper(&history, &created), vec![]);
        if !created.is_empty() {
            let lost: Vec<&String> = created.iter().collect();
            let gone = lost[pick.index(lost.len())].clone();
            let mut fewer = created.clone();
            fewer.remove(&gone);
            let broke = check_zookeeper(&history, &fewer);
            let caught = matches!(broke.as_slice(), [ZkBroke::CreateLost { path, .. }] if *path == gone);
            prop_assert!(caught, "{:?}", broke);
        }
    }

    #[test]
    fn a_stale_read_after_a_sync_is_caught(
        steps in proptest::collection::vec((0u32..3, any::<u8>()), 1..30),
    ) {
        let (mut history, created) = serial(&steps);
        // The first read that follows a sync of its session begun after a write of the znode.
        let mut synced_after_write: BTreeMap<u32, bool> = BTreeMap::new();
        let mut written = false;
        let target = history.iter().position(|o| {
            match &o.request {
                ZkRequest::Sync => {
                    synced_after_write.insert(o.session, written);
                }
                ZkRequest::SetData { .. } => written = true,
                ZkRequest::Read { .. } => return synced_after_write.get(&o.session) == Some(&true),
                ZkRequest::Create { .. } => {}
            }
            false
        });
        prop_assume!(target.is_some());
        if let Some(ZkRequest::Read { version, .. }) = target.map(|t| &mut history[t].request) {
            // The version before any write.
            *version = 0;
        }
        let broke = check_zookeeper(&history, &created);
        prop_assert!(broke.iter().any(|b| matches!(b, ZkBroke::StaleAfterSync { .. })), "{:?}", broke);
    }
}

#[test]
fn reads_of_other_znodes_are_not_compared_but_a_read_older_than_the_view_goes_back() {
    let set = |session, path: &str, at, version, zxid| ZkOperation {
        session,
        request: ZkRequest::SetData {
            path: path.to_string(),
            version,
        },
        call_ms: at,
        acknowledged: Some((at + 1, zxid)),
    };
    // Session 1 writes k1 at zxid 9, then reads k2, last changed at zxid 3: not going back.
    let fine = [
        set(1, "/w/k1", 0, 1, 9),
        set(2, "/w/k2", 0, 1, 3),
        read(1, "/w/k2", 1, 5, 6, 3),
    ];
    assert_eq!(check_zookeeper(&fine, &present(&[])), vec![]);
    // Session 2 changed k2 at zxid 7; session 1 has seen zxid 9 and still reads k2 as of 3.
    let stale = [
        set(1, "/w/k1", 0, 1, 9),
        set(2, "/w/k2", 0, 1, 3),
        set(2, "/w/k2", 1, 2, 7),
        read(1, "/w/k2", 1, 5, 6, 3),
    ];
    assert_eq!(
        check_zookeeper(&stale, &present(&[])),
        vec![ZkBroke::WentBack {
            session: 1,
            from: 7,
            to: 3,
            at_ms: 6
        }]
    );
}
