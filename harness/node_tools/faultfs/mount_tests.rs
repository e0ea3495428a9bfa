//! Tests through a real FUSE mount: they need root and /dev/fuse.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{mount_in_background, FaultfsOptions, Latencies, Mounted};

/// Whether mounting is possible here. When it is not: fail under CI (the environment is
/// broken), skip with a note elsewhere.
fn can_mount(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let fuse = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    let missing = match (root, fuse) {
        (true, true) => return true,
        (false, true) => "root",
        (true, false) => "a usable /dev/fuse",
        (false, false) => "root and a usable /dev/fuse",
    };
    if std::env::var_os("CI").is_some() {
        panic!("{test}: faultfs mount tests need {missing}");
    }
    eprintln!("{test}: skipped, faultfs mount tests need {missing}");
    false
}

/// A disk in a temporary directory; fields drop in order, so the mount goes first.
struct Disk {
    options: FaultfsOptions,
    _dir: tempfile::TempDir,
}

impl Disk {
    fn new() -> Disk {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |name: &str| dir.path().join(name);
        let options = FaultfsOptions {
            durable: at("durable"),
            live: at("live"),
            mount: at("mnt"),
            control: at("control.json"),
            stats: at("stats.json"),
            fsname: "faultfs-test".into(),
        };
        Disk { options, _dir: dir }
    }

    fn mount(&self) -> Mounted {
        mount_in_background(&self.options).expect("mount")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.options.mount.join(name)
    }

    fn write_synced(&self, name: &str, data: &[u8]) {
        let mut file = File::create(self.path(name)).expect("create");
        file.write_all(data).expect("write");
        file.sync_all().expect("fsync");
    }
}

#[test]
fn fsynced_file_survives_power_loss() {
    if !can_mount("fsynced_file_survives_power_loss") {
        return;
    }
    let disk = Disk::new();
    let mounted = disk.mount();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    disk.write_synced("wal", &data);
    mounted.lose_power().expect("lose power");
    let _mounted = disk.mount();
    assert_eq!(fs::read(disk.path("wal")).expect("read"), data);
}

#[test]
fn unsynced_file_is_gone_after_power_loss() {
    if !can_mount("unsynced_file_is_gone_after_power_loss") {
        return;
    }
    let disk = Disk::new();
    let mounted = disk.mount();
    fs::write(disk.path("lost"), b"never synced").expect("write");
    assert_eq!(fs::read(disk.path("lost")).expect("read"), b"never synced");
    mounted.lose_power().expect("lose power");
    let _mounted = disk.mount();
    let err = fs::metadata(disk.path("lost")).expect_err("should be gone");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn unsynced_append_is_rolled_back_to_the_synced_length() {
    if !can_mount("unsynced_append_is_rolled_back_to_the_synced_length") {
        return;
    }
    let disk = Disk::new();
    let mounted = disk.mount();
    disk.write_synced("log", &[7u8; 100]);
    let mut file = OpenOptions::new()
        .append(true)
        .open(disk.path("log"))
        .expect("open");
    file.write_all(&[9u8; 50]).expect("append");
    drop(file);
    assert_eq!(fs::metadata(disk.path("log")).expect("stat").len(), 150);
    mounted.lose_power().expect("lose power");
    let _mounted = disk.mount();
    assert_eq!(fs::read(disk.path("log")).expect("read"), vec![7u8; 100]);
}

#[test]
fn rename_becomes_durable_at_the_fsync_of_another_file() {
    if !can_mount("rename_becomes_durable_at_the_fsync_of_another_file") {
        return;
    }
    let disk = Disk::new();
    let mounted = disk.mount();
    disk.write_synced("snap.tmp", b"snapshot");
    disk.write_synced("other", b"x");
    fs::rename(disk.path("snap.tmp"), disk.path("snap")).expect("rename");
    File::open(disk.path("other"))
        .expect("open")
        .sync_all()
        .expect("fsync other");
    mounted.lose_power().expect("lose power");
    let _mounted = disk.mount();
    assert_eq!(fs::read(disk.path("snap")).expect("read"), b"snapshot");
    assert!(!disk.path("snap.tmp").exists());
}

#[test]
fn fsync_latency_does_not_stall_reads_of_other_files() {
    if !can_mount("fsync_latency_does_not_stall_reads_of_other_files") {
        return;
    }
    let disk = Disk::new();
    let mounted = disk.mount();
    disk.write_synced("slow", b"a");
    disk.write_synced("fast", b"still readable");
    let control = r#"{"fsync_latency_ms": 300, "write_latency_ms": 0}"#;
    fs::write(&disk.options.control, control).expect("control");
    mounted.set_latencies(super::read_control(&disk.options.control).expect("read control"));
    assert_eq!(
        mounted.latencies(),
        Latencies {
            fsync_latency_ms: 300,
            write_latency_ms: 0
        }
    );
    let slow = disk.path("slow");
    let started = Instant::now();
    let fsync = std::thread::spawn(move || {
        let file = OpenOptions::new()
            .write(true)
            .open(slow)
            .expect("open slow");
        file.write_all_at(b"b", 1).expect("write slow");
        file.sync_data().expect("fdatasync");
    });
    std::thread::sleep(Duration::from_millis(50));
    let read_started = Instant::now();
    assert_eq!(
        fs::read(disk.path("fast")).expect("read fast"),
        b"still readable"
    );
    let read_took = read_started.elapsed();
    let read_done = started.elapsed();
    fsync.join().expect("fsync thread");
    let fsync_took = started.elapsed();
    assert!(
        fsync_took >= Duration::from_millis(300),
        "fsync took {fsync_took:?}"
    );
    assert!(
        read_took < Duration::from_millis(150),
        "read took {read_took:?}"
    );
    assert!(
        read_done < Duration::from_millis(300),
        "read waited for the fsync"
    );
    assert!(mounted.stats().fsyncs >= 3);
}

#[test]
fn clean_stop_keeps_everything() {
    if !can_mount("clean_stop_keeps_everything") {
        return;
    }
    let disk = Disk::new();
    let mounted = disk.mount();
    fs::create_dir(disk.path("dir")).expect("mkdir");
    fs::write(disk.path("dir/a"), b"unsynced a").expect("write a");
    fs::write(disk.path("b.tmp"), b"unsynced b").expect("write b");
    fs::rename(disk.path("b.tmp"), disk.path("b")).expect("rename");
    let stats = mounted.clean_stop().expect("clean stop");
    assert_eq!(stats.dirty_files, 0);
    assert_eq!(stats.pending_journal_ops, 0);
    let _mounted = disk.mount();
    assert_eq!(fs::read(disk.path("dir/a")).expect("read a"), b"unsynced a");
    assert_eq!(fs::read(disk.path("b")).expect("read b"), b"unsynced b");
    assert!(!disk.path("b.tmp").exists());
}

#[test]
fn posix_operations_of_etcd_and_zookeeper_work() {
    if !can_mount("posix_operations_of_etcd_and_zookeeper_work") {
        return;
    }
    let disk = Disk::new();
    let mounted = disk.mount();
    fs::create_dir_all(disk.path("member/wal")).expect("mkdir");
    let wal = disk.path("member/wal/0.wal");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&wal)
        .expect("create");
    let again = OpenOptions::new().write(true).create_new(true).open(&wal);
    assert_eq!(again.expect_err("O_EXCL").kind(), ErrorKind::AlreadyExists);
    // SAFETY: the fd is open; fallocate touches no memory of ours.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, 1 << 20) };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
    // SAFETY: as above.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, 1 << 21) };
    assert_eq!(rc, -1, "only mode 0 is supported");
    assert_eq!(fs::metadata(&wal).expect("stat").len(), 1 << 20);
    file.write_all_at(b"record", 2 << 20)
        .expect("pwrite past the end");
    file.set_len(3 << 20).expect("ftruncate");
    file.sync_data().expect("fdatasync");
    let mut head = [1u8; 16];
    file.read_exact_at(&mut head, 0).expect("pread");
    assert_eq!(head, [0u8; 16]);
    // mmap reads go through the page cache, which FUSE fills with reads.
    let len = 3usize << 20;
    // SAFETY: a fresh private read-only mapping of an open file, unmapped below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        map,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the mapping is `len` bytes long and lives until munmap.
    let mapped = unsafe { std::slice::from_raw_parts(map.cast::<u8>(), len) };
    assert_eq!(&mapped[2 << 20..(2 << 20) + 6], b"record");
    // SAFETY: unmaps exactly the mapping made above.
    assert_eq!(unsafe { libc::munmap(map, len) }, 0);
    drop(file);
    fs::write(disk.path("member/snap"), b"new").expect("write snap");
    fs::write(disk.path("member/old"), b"old").expect("write old");
    fs::rename(disk.path("member/snap"), disk.path("member/old")).expect("rename over");
    let mut names: Vec<String> = fs::read_dir(disk.path("member"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["old", "wal"]);
    let mut text = String::new();
    File::open(disk.path("member/old"))
        .expect("open")
        .read_to_string(&mut text)
        .expect("read");
    assert_eq!(text, "new");
    fs::remove_file(disk.path("member/old")).expect("unlink");
    fs::create_dir(disk.path("member/empty")).expect("mkdir");
    fs::remove_dir(disk.path("member/empty")).expect("rmdir");
    let statfs = statvfs_blocks(&disk.path(""));
    assert!(statfs > 0, "statfs reports blocks");
    mounted.lose_power().expect("lose power");
    let _mounted = disk.mount();
    let meta = fs::metadata(&wal).expect("synced wal");
    assert_eq!(meta.len(), 3 << 20);
    let mut tail = [0u8; 6];
    File::open(&wal)
        .expect("open")
        .read_exact_at(&mut tail, 2 << 20)
        .expect("pread");
    assert_eq!(&tail, b"record");
}

fn statvfs_blocks(path: &std::path::Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: statvfs is plain data; an all-zero value is valid and is overwritten.
    let mut out: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `out` is a valid place to write.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut out) }, 0);
    out.f_blocks
}
