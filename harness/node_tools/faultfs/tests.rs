//! Unit tests of the pieces and of the durability model, driven without mounting.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::journal::{self, JournalOp};
use super::ranges::{DirtyRanges, MAX_RANGES};
use super::state::Core;
use super::tree::{Tree, ROOT};
use super::{read_control, write_stats, FaultfsStats, Latencies};

fn ranges(set: &DirtyRanges) -> Vec<(u64, u64)> {
    set.iter().collect()
}

#[test]
fn ranges_merge_overlapping_and_touching() {
    let mut set = DirtyRanges::default();
    set.insert(10, 20);
    set.insert(30, 40);
    set.insert(5, 5);
    assert_eq!(ranges(&set), vec![(10, 20), (30, 40)]);
    set.insert(20, 25);
    assert_eq!(ranges(&set), vec![(10, 25), (30, 40)]);
    set.insert(24, 30);
    assert_eq!(ranges(&set), vec![(10, 40)]);
    set.insert(0, 100);
    assert_eq!(ranges(&set), vec![(0, 100)]);
    assert_eq!(set.bytes(), 100);
}

#[test]
fn ranges_truncate_clips_and_drops() {
    let mut set = DirtyRanges::default();
    set.insert(0, 10);
    set.insert(20, 30);
    set.insert(40, 50);
    set.truncate(25);
    assert_eq!(ranges(&set), vec![(0, 10), (20, 25)]);
    set.truncate(20);
    assert_eq!(ranges(&set), vec![(0, 10)]);
    set.truncate(0);
    assert!(set.is_empty());
}

#[test]
fn ranges_past_the_cap_collapse_into_one_covering_range() {
    let mut set = DirtyRanges::default();
    for i in 0..MAX_RANGES as u64 {
        set.insert(i * 4, i * 4 + 1);
    }
    assert_eq!(set.len(), MAX_RANGES);
    set.insert(u64::MAX - 1, u64::MAX);
    assert_eq!(ranges(&set), vec![(0, u64::MAX)]);
}

proptest! {
    #[test]
    fn ranges_cover_exactly_what_was_inserted(
        inserts in proptest::collection::vec((0u64..500, 0u64..40), 0..60),
        cut in 0u64..600,
    ) {
        let mut set = DirtyRanges::default();
        let mut bytes = vec![false; 600];
        for (start, len) in inserts {
            set.insert(start, start + len);
            bytes[start as usize..(start + len) as usize].iter_mut().for_each(|b| *b = true);
        }
        set.truncate(cut);
        bytes[cut as usize..].iter_mut().for_each(|b| *b = false);
        let mut seen = vec![false; 600];
        let mut last_end = None;
        for (s, e) in set.iter() {
            prop_assert!(s < e);
            // Disjoint and not touching: always merged.
            prop_assert!(last_end.is_none_or(|l| l < s));
            last_end = Some(e);
            seen[s as usize..e as usize].iter_mut().for_each(|b| *b = true);
        }
        prop_assert_eq!(seen, bytes);
    }
}

#[test]
fn journal_replays_in_order_and_skips_what_never_became_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let p = PathBuf::from;
    let mut ops: VecDeque<JournalOp> = VecDeque::from(vec![
        JournalOp::Mkdir {
            path: p("d"),
            mode: 0o750,
        },
        JournalOp::CreateFile {
            path: p("d/a"),
            mode: 0o640,
        },
        JournalOp::CreateFile {
            path: p("b"),
            mode: 0o600,
        },
        JournalOp::Rename {
            from: p("d/a"),
            to: p("b"),
        },
        JournalOp::Rename {
            from: p("ghost"),
            to: p("c"),
        },
        JournalOp::Unlink { path: p("ghost") },
        JournalOp::Symlink {
            path: p("l"),
            target: p("b"),
        },
        JournalOp::Chmod {
            path: p("b"),
            mode: 0o604,
        },
        JournalOp::Mkdir {
            path: p("e"),
            mode: 0o700,
        },
        JournalOp::Rmdir { path: p("e") },
    ]);
    assert_eq!(journal::replay(root, &mut ops).expect("replay"), 10);
    assert!(ops.is_empty());
    assert!(!root.join("d/a").exists());
    assert!(!root.join("c").exists());
    assert!(!root.join("e").exists());
    let mode = |path: &str| {
        fs::metadata(root.join(path))
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("d"), 0o750);
    assert_eq!(mode("b"), 0o604);
    assert_eq!(fs::read_link(root.join("l")).expect("readlink"), p("b"));
}

#[test]
fn journal_keeps_the_unapplied_rest_on_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = PathBuf::from;
    fs::write(dir.path().join("file"), b"x").expect("write");
    let mut ops: VecDeque<JournalOp> = VecDeque::from(vec![
        JournalOp::Mkdir {
            path: p("d"),
            mode: 0o755,
        },
        // A file in place of a directory: ENOTDIR, a real failure.
        JournalOp::CreateFile {
            path: p("file/x"),
            mode: 0o644,
        },
        JournalOp::Mkdir {
            path: p("e"),
            mode: 0o755,
        },
    ]);
    assert!(journal::replay(dir.path(), &mut ops).is_err());
    assert_eq!(ops.len(), 2);
    assert!(dir.path().join("d").is_dir());
    assert!(!dir.path().join("e").exists());
}

#[test]
fn tree_renames_move_descendants_and_orphan_the_target() {
    let mut tree = Tree::new();
    let dir = tree.remember(Path::new("d"));
    let file = tree.remember(Path::new("d/f"));
    let target = tree.remember(Path::new("t"));
    assert_eq!(tree.renamed(Path::new("d"), Path::new("t")), Some(target));
    assert_eq!(tree.path(dir).expect("dir"), PathBuf::from("t"));
    assert_eq!(tree.path(file).expect("file"), PathBuf::from("t/f"));
    assert!(tree.path(target).is_err());
    assert_eq!(
        tree.child(dir, OsStr::new("g")).expect("child"),
        PathBuf::from("t/g")
    );
    assert!(tree.child(ROOT, OsStr::new("..")).is_err());
    assert!(tree.forget(target, 1, false));
    assert!(!tree.forget(file, 1, true), "a dirty linked inode stays");
}

#[test]
fn control_file_missing_means_no_latency_and_bad_json_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let control = dir.path().join("control.json");
    assert_eq!(
        read_control(&control).expect("missing"),
        Latencies::default()
    );
    fs::write(
        &control,
        br#"{"fsync_latency_ms": 300, "write_latency_ms": 2}"#,
    )
    .expect("write");
    let want = Latencies {
        fsync_latency_ms: 300,
        write_latency_ms: 2,
    };
    assert_eq!(read_control(&control).expect("parse"), want);
    fs::write(&control, b"{not json").expect("write");
    assert!(read_control(&control).is_err());
    let stats_path = dir.path().join("stats");
    let stats = FaultfsStats {
        fsyncs: 3,
        bytes_synced: 7,
        ..FaultfsStats::default()
    };
    write_stats(&stats_path, &stats).expect("stats");
    let back: FaultfsStats =
        serde_json::from_slice(&fs::read(&stats_path).expect("read")).expect("json");
    assert_eq!(back, stats);
}

/// The reference model: file contents by name on each side, and the pending namespace ops.
#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<String, Vec<u8>>,
    durable: BTreeMap<String, Vec<u8>>,
    journal: Vec<(char, String, String)>,
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        file: usize,
        offset: u64,
        len: usize,
        byte: u8,
    },
    Truncate {
        file: usize,
        len: u64,
    },
    Fsync {
        file: usize,
    },
    Rename {
        from: usize,
        to: usize,
    },
    Unlink {
        file: usize,
    },
    PowerLoss,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..140_000u64, 1..6_000usize, any::<u8>())
            .prop_map(|(file, offset, len, byte)| Op::Write { file, offset, len, byte }),
        2 => (0..3usize, 0..140_000u64).prop_map(|(file, len)| Op::Truncate { file, len }),
        3 => (0..3usize).prop_map(|file| Op::Fsync { file }),
        1 => (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Rename { from, to }),
        1 => (0..3usize).prop_map(|file| Op::Unlink { file }),
        1 => Just(Op::PowerLoss),
    ]
}

fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        out.insert(name, fs::read(entry.path()).expect("read"));
    }
    out
}

/// Open handles of the system under test: name → (inode, file handle).
struct Handles(HashMap<String, (u64, u64)>);

impl Handles {
    fn get(&mut self, core: &Core, name: &str, create: bool) -> (u64, u64) {
        if let Some(&h) = self.0.get(name) {
            return h;
        }
        let flags = libc::O_RDWR | libc::O_CREAT;
        let h = if create {
            let (ino, _, fh) = core
                .create(ROOT, OsStr::new(name), 0o644, 0, flags)
                .expect("create");
            (ino, fh)
        } else {
            let (ino, _) = core.lookup(ROOT, OsStr::new(name)).expect("lookup");
            (ino, core.open(ino, libc::O_RDWR).expect("open"))
        };
        self.0.insert(name.to_string(), h);
        h
    }

    fn close(&mut self, core: &Core, name: &str) {
        if let Some((_, fh)) = self.0.remove(name) {
            core.release(fh);
        }
    }
}

fn apply(core: &mut Core, handles: &mut Handles, model: &mut Model, op: &Op, root: &Path) {
    match *op {
        Op::Write {
            file,
            offset,
            len,
            byte,
        } => {
            let name = NAMES[file].to_string();
            let (ino, fh) = handles.get(core, &name, !model.live.contains_key(&name));
            if !model.live.contains_key(&name) {
                model.journal.push(('c', name.clone(), String::new()));
            }
            let data = model.live.entry(name).or_default();
            let end = offset as usize + len;
            if data.len() < end {
                data.resize(end, 0);
            }
            data[offset as usize..end].fill(byte);
            core.write(ino, fh, offset, &vec![byte; len])
                .expect("write");
        }
        Op::Truncate { file, len } => {
            let name = NAMES[file];
            let Some(data) = model.live.get_mut(name) else {
                return;
            };
            data.resize(len as usize, 0);
            let (ino, fh) = handles.get(core, name, false);
            let omit = libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            };
            core.setattr(ino, Some(fh), None, (None, None), Some(len), [omit, omit])
                .expect("truncate");
        }
        Op::Fsync { file } => {
            let name = NAMES[file];
            let Some(data) = model.live.get(name) else {
                return;
            };
            for (kind, a, b) in model.journal.drain(..) {
                match kind {
                    'c' => drop(model.durable.insert(a, Vec::new())),
                    'r' => {
                        if let Some(d) = model.durable.remove(&a) {
                            model.durable.insert(b, d);
                        }
                    }
                    _ => drop(model.durable.remove(&a)),
                }
            }
            model.durable.insert(name.to_string(), data.clone());
            let (ino, fh) = handles.get(core, name, false);
            core.fsync(ino, fh).expect("fsync");
        }
        Op::Rename { from, to } => {
            let (from, to) = (NAMES[from].to_string(), NAMES[to].to_string());
            if from == to || !model.live.contains_key(&from) {
                return;
            }
            let data = model.live.remove(&from).unwrap_or_default();
            model.live.insert(to.clone(), data);
            model.journal.push(('r', from.clone(), to.clone()));
            core.rename(ROOT, OsStr::new(&from), ROOT, OsStr::new(&to), 0)
                .expect("rename");
            handles.close(core, &to);
            if let Some(h) = handles.0.remove(&from) {
                handles.0.insert(to, h);
            }
        }
        Op::Unlink { file } => {
            let name = NAMES[file].to_string();
            if model.live.remove(&name).is_none() {
                return;
            }
            model.journal.push(('u', name.clone(), String::new()));
            core.unlink(ROOT, OsStr::new(&name)).expect("unlink");
            handles.close(core, &name);
        }
        Op::PowerLoss => {
            model.live = model.durable.clone();
            model.journal.clear();
            for (_, (_, fh)) in handles.0.drain() {
                core.release(fh);
            }
            core.lose_power();
            *core = Core::start(&root.join("durable"), &root.join("live")).expect("restart");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn durable_holds_each_file_as_of_its_last_fsync(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let mut core = Core::start(&root.join("durable"), &root.join("live")).expect("start");
        let mut handles = Handles(HashMap::new());
        let mut model = Model::default();
        for op in &ops {
            apply(&mut core, &mut handles, &mut model, op, root);
            prop_assert_eq!(&contents(&root.join("live")), &model.live, "live after {:?}", op);
            let durable = contents(&root.join("durable"));
            prop_assert_eq!(&durable, &model.durable, "durable after {:?}", op);
        }
        // A clean stop makes durable what live is.
        core.sync_all().expect("sync_all");
        prop_assert_eq!(contents(&root.join("durable")), model.live);
    }
}
