//! The figures of slow networks and slow, forgetful disks, as the README states them:
//!
//! 1. What the faulty disk alone costs, latency off: 4 KiB write + fdatasync and 4 KiB
//!    appends in a directory on it, against the same directory without it; then a healthy
//!    etcd quorum with and without its data on it (time to healthy, and the write ledger's
//!    acknowledged writes per second and median write latency over 10 s).
//! 2. The delay the connect-time verification measures against the delay set, between two
//!    network namespaces this bench makes (the delay queue on one side's traffic).
//! 3. The largest packet rate the delay queue holds, 50 ms delay and its default cap of 10,000
//!    packets, before it drops: UDP sent at rising rates for 2 s each, the queue's counters read.
//!
//! `sudo cargo bench --bench slow_faults` (root: namespaces, iptables, FUSE). Part 1's cluster
//! runs use the local provider.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use succession::node_tools::delay_queue::DelayStats;
use succession::node_tools::faultfs::{mount_in_background, FaultfsOptions};
use succession::node_tools::timing::Timings;

const NS_A: &str = "succ-bench-a";
const NS_B: &str = "succ-bench-b";
const ADDR_A: &str = "10.254.77.1";
const ADDR_B: &str = "10.254.77.2";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("slow_faults: benchmark");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("the benchmark mounts FUSE and makes namespaces: run it as root (sudo cargo bench --bench slow_faults)");
        std::process::exit(3);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    disk_alone();
    disk_under_etcd(root);
    let standin = root.join("target/release/succession-standin");
    let standin = if standin.exists() {
        standin
    } else {
        root.join("target/debug/succession-standin")
    };
    if let Err(e) = make_pair() {
        eprintln!("failed to make the namespace pair: {e}");
        remove_pair();
        std::process::exit(1);
    }
    delays_measured(&standin);
    queue_rates(&standin);
    remove_pair();
}

/// Median and 90th percentile of some durations, in µs.
fn percentiles(mut samples: Vec<Duration>) -> (u128, u128) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_micros();
    (at(0.5), at(0.9))
}

/// 4 KiB write + fdatasync, and 4 KiB appends, `n` each, in `dir`.
fn file_ops(dir: &Path, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    use std::io::Write;
    let mut synced = Vec::new();
    let mut appended = Vec::new();
    let block = [7u8; 4096];
    let path = dir.join("bench.dat");
    let mut f = std::fs::File::create(&path).expect("create the bench file");
    for _ in 0..n {
        let start = Instant::now();
        f.write_all(&block).expect("write");
        f.sync_data().expect("fdatasync");
        synced.push(start.elapsed());
    }
    for _ in 0..n {
        let start = Instant::now();
        f.write_all(&block).expect("append");
        appended.push(start.elapsed());
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    (synced, appended)
}

fn disk_alone() {
    let base = std::env::temp_dir().join(format!("succession-bench-disk-{}", std::process::id()));
    let plain = base.join("plain");
    let options = FaultfsOptions {
        durable: base.join("durable"),
        live: base.join("live"),
        mount: base.join("mount"),
        control: base.join("control.json"),
        stats: base.join("stats.json"),
        fsname: "succession-faultfs-bench".to_string(),
    };
    for d in [&plain, &options.mount] {
        std::fs::create_dir_all(d).expect("bench directories");
    }
    let n = 2000;
    let (plain_sync, plain_append) = file_ops(&plain, n);
    let mounted = mount_in_background(&options).expect("mount the faulty disk");
    let (fault_sync, fault_append) = file_ops(mounted.mount_point(), n);
    let _ = mounted.clean_stop();
    let _ = std::fs::remove_dir_all(&base);
    println!("1. the faulty disk alone, latency off ({n} operations each, median / p90, µs):");
    for (what, p, f) in [
        ("4 KiB write + fdatasync", plain_sync, fault_sync),
        ("4 KiB append", plain_append, fault_append),
    ] {
        let (pm, p9) = percentiles(p);
        let (fm, f9) = percentiles(f);
        println!("   {what:<24} plain {pm} / {p9}   faulty disk {fm} / {f9}");
    }
}

/// The etcd quorum for 10 s with the ledger, on `topology`; (ms to healthy, acknowledged
/// writes per second, median acknowledged write latency in ms).
fn etcd_run(root: &Path, topology: &str) -> Result<(u64, f64, u64), String> {
    let dir = std::env::temp_dir().join(format!(
        "succession-bench-etcd-{}-{}",
        topology.replace('/', "_"),
        std::process::id()
    ));
    let scenario = dir.join("scenario.toml");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let text = format!(
        "name = \"disk-overhead\"\ntopology = \"{}\"\n\n[ledger]\ninterval = \"10ms\"\n\n[[step]]\naction = \"wait\"\nfor = \"10s\"\n",
        root.join(topology).display()
    );
    std::fs::write(&scenario, text).map_err(|e| e.to_string())?;
    let report_dir = dir.join("report");
    let out = Command::new(root.join("target/debug/succession"))
        .args(["run"])
        .arg(&scenario)
        .arg("--report")
        .arg(&report_dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report_dir.join("report.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let ready = report["provision_ms"].as_u64().unwrap_or(0);
    let history: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report_dir.join("history.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut latencies: Vec<u64> = history["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter(|r| r["outcome"]["outcome"] == "acknowledged")
                .filter_map(|r| Some(r["done_ms"].as_u64()? - r["sent_ms"].as_u64()?))
                .collect()
        })
        .unwrap_or_default();
    latencies.sort_unstable();
    let per_second = latencies.len() as f64 / 10.0;
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((ready, per_second, median))
}

fn disk_under_etcd(root: &Path) {
    println!("   etcd quorum, local provider, ledger every 10 ms for 10 s:");
    for (what, topology) in [
        ("plain disk", "topologies/etcd-quorum.toml"),
        ("faulty disk", "topologies/etcd-faulty-disk.toml"),
    ] {
        match etcd_run(root, topology) {
            Ok((ready, rate, median)) => println!(
                "   {what:<12} healthy after {ready} ms, {rate:.0} acknowledged writes/s, median write {median} ms"
            ),
            Err(e) => println!("   {what:<12} failed: {e}"),
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn make_pair() -> Result<(), String> {
    remove_pair();
    ip(&["netns", "add", NS_A])?;
    ip(&["netns", "add", NS_B])?;
    ip(&[
        "link", "add", "sbench-a", "netns", NS_A, "type", "veth", "peer", "name", "sbench-b",
        "netns", NS_B,
    ])?;
    for (ns, dev, addr) in [(NS_A, "sbench-a", ADDR_A), (NS_B, "sbench-b", ADDR_B)] {
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

fn remove_pair() {
    for ns in [NS_A, NS_B] {
        let _ = ip(&["netns", "del", ns]);
    }
}

fn in_a(argv: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", NS_A]).args(argv);
    c
}

/// Starts a delay queue in A on A's traffic to B; returns it and its stats file.
fn start_queue(standin: &Path, delay_ms: u64, max_packets: u32) -> (std::process::Child, PathBuf) {
    let stats =
        std::env::temp_dir().join(format!("succession-bench-q-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&stats);
    let child = in_a(&[
        &standin.display().to_string(),
        "delay-queue",
        "--queue",
        "1900",
        "--delay-ms",
        &delay_ms.to_string(),
        "--max-packets",
        &max_packets.to_string(),
        "--stats",
        &stats.display().to_string(),
        "--mark-bit",
        "256",
    ])
    // Its counters come from the stats file; what it prints at exit is not wanted here.
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("start the delay queue");
    // Bound before its rule goes in, as the harness does it.
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let table = in_a(&["cat", "/proc/net/netfilter/nfnetlink_queue"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if table
            .lines()
            .any(|l| l.split_whitespace().next() == Some("1900"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = in_a(&[
        "iptables",
        "-w",
        "-I",
        "OUTPUT",
        "-d",
        ADDR_B,
        "-m",
        "mark",
        "!",
        "--mark",
        "0x100/0x100",
        "-j",
        "NFQUEUE",
        "--queue-num",
        "1900",
        "--queue-bypass",
    ])
    .status();
    (child, stats)
}

fn stop_queue(mut child: std::process::Child, stats: &Path) -> Option<DelayStats> {
    let _ = in_a(&["iptables", "-w", "-F", "OUTPUT"]).status();
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    let text = std::fs::read_to_string(stats).ok()?;
    let _ = std::fs::remove_file(stats);
    serde_json::from_str(&text).ok()
}

fn connect_time(standin: &Path, samples: u32) -> Option<Timings> {
    let out = in_a(&[
        &standin.display().to_string(),
        "connect-time",
        "--to",
        &format!("{ADDR_B}:1"),
        "--count",
        &samples.to_string(),
    ])
    .output()
    .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn delays_measured(standin: &Path) {
    println!("2. the delay the connect time measures against the delay set (20 handshakes each):");
    let base = connect_time(standin, 20);
    if let Some(t) = base {
        println!(
            "   no delay        min {:.2} ms, median {:.2} ms",
            t.min_us as f64 / 1000.0,
            t.median_us as f64 / 1000.0
        );
    }
    for delay in [10, 50, 100, 200, 500] {
        let (queue, stats) = start_queue(standin, delay, 10_000);
        let seen = connect_time(standin, 20);
        let _ = stop_queue(queue, &stats);
        if let Some(t) = seen {
            println!(
                "   set {delay:>4} ms     min {:.2} ms, median {:.2} ms, max {:.2} ms",
                t.min_us as f64 / 1000.0,
                t.median_us as f64 / 1000.0,
                t.max_us as f64 / 1000.0
            );
        }
    }
}

/// Sends UDP datagrams from A to B at `rate` per second for `secs` seconds (paced per
/// half millisecond), with Python, which every machine this runs on has; returns how many
/// went out. A datagram held in the queue still counts against its socket's send buffer, so
/// one socket would be throttled by its own buffer long before the queue fills: 64 sockets
/// with large buffers, never blocking (a send the buffer refuses is not counted as sent).
fn flood(rate: u64, secs: u64) -> u64 {
    let script = format!(
        "import socket,time,errno\nsocks=[]\nfor i in range(64):\n    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n    s.setsockopt(socket.SOL_SOCKET,32,8*1024*1024)\n    s.setblocking(False)\n    socks.append(s)\nrate={rate}\nstart=time.monotonic()\nend=start+{secs}\nsent=0\ntried=0\nwhile True:\n    now=time.monotonic()\n    if now>=end: break\n    due=int((now-start)*rate)\n    while tried<due:\n        try:\n            socks[tried%64].sendto(b'x'*64,('{ADDR_B}',9))\n            sent+=1\n        except BlockingIOError:\n            pass\n        tried+=1\n    time.sleep(0.0005)\nprint(sent)\n"
    );
    in_a(&["python3", "-c", &script])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

fn queue_rates(standin: &Path) {
    println!("3. packets per second the delay queue holds (50 ms, cap 10000; 2 s at each rate):");
    for rate in [1_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000] {
        let (queue, stats) = start_queue(standin, 50, 10_000);
        let sent = flood(rate, 2);
        std::thread::sleep(Duration::from_millis(300));
        match stop_queue(queue, &stats) {
            Some(s) => println!(
                "   {rate:>7}/s asked, {sent} sent in 2 s: {} passed, {} dropped (cap {}, kernel {}), at most {} held",
                s.passed, s.dropped(), s.dropped_full, s.kernel_dropped, s.held_max
            ),
            None => println!("   {rate:>7}/s: no counters"),
        }
    }
}
