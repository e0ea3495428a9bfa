//! The shell commands that providers whose nodes are other machines (containers, EC2
//! instances) run on a node to act on it, and the parsing of what they print. Each passes its
//! inputs as positional arguments, never spliced into the script.

use std::path::Path;

use crate::provider::process::parse_stat;
use crate::provider::{ProcessId, Spawn};

/// The directory inside every node (a tmpfs) where services keep their data and logs: not the
/// container's own layer, which is slow to write on overlay storage drivers.
pub const DATA_ROOT: &str = "/var/lib/succession";
/// Where the stand-in binary is mounted inside every node.
pub const STANDIN_INSIDE: &str = "/opt/succession/bin/succession-standin";

fn sh(script: &str, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        script.to_string(),
        "sh".to_string(),
    ];
    argv.extend(args);
    argv
}

/// Starts a long-running process detached from the command that starts it (it is reparented
/// to the container's init, which reaps it), appending its output to its log; prints the
/// process's pid and its /proc stat line, or `PID gone` when it exited at once.
pub fn spawn(spawn: &Spawn) -> Vec<String> {
    let script = r#"workdir=$1; log=$2; banner=$3; shift 3
mkdir -p "$workdir" "$(dirname "$log")" || exit 1
cd "$workdir" || exit 1
printf '%s\n' "$banner" >>"$log"
"$@" >>"$log" 2>&1 </dev/null &
pid=$!
cat "/proc/$pid/stat" 2>/dev/null || echo "$pid gone""#;
    sh(
        script,
        [
            spawn.workdir.display().to_string(),
            spawn.log.display().to_string(),
            spawn.banner.clone(),
        ]
        .into_iter()
        .chain(spawn.argv.iter().cloned()),
    )
}

/// What `spawn` printed: the started process, or None when it exited at once.
pub fn parse_spawned(stdout: &str) -> Option<ProcessId> {
    let line = stdout.lines().last()?.trim();
    let pid: u32 = line.split_whitespace().next()?.parse().ok()?;
    let stat = parse_stat(line)?;
    (!stat.leader_exited()).then_some(ProcessId {
        pid,
        start_time: stat.start_time,
    })
}

/// Prints a process's /proc stat line (nothing when it is gone).
pub fn stat(pid: u32) -> Vec<String> {
    vec!["cat".to_string(), format!("/proc/{pid}/stat")]
}

/// Whether the stat line printed is still `process`, not wholly exited (a zombie leader whose
/// other threads still run holds the process's sockets and files).
pub fn is_alive(process: ProcessId, stdout: &str) -> bool {
    matches!(parse_stat(stdout.trim()), Some(stat)
        if stat.start_time == process.start_time && !stat.exited())
}

/// Sends signal `number` to a pid.
pub fn kill(pid: u32, number: i32) -> Vec<String> {
    vec!["kill".to_string(), format!("-{number}"), pid.to_string()]
}

/// Exits 0 when a directory holds anything.
pub fn holds_files(path: &Path) -> Vec<String> {
    sh(
        r#"[ -n "$(ls -A "$1" 2>/dev/null)" ]"#,
        [path.display().to_string()],
    )
}

/// Removes a directory with everything in it.
pub fn remove_dir(path: &Path) -> Vec<String> {
    vec![
        "rm".to_string(),
        "-rf".to_string(),
        path.display().to_string(),
    ]
}

/// Moves a staged file to its place, creating its directory.
pub fn move_into_place(staged: &Path, path: &Path) -> Vec<String> {
    sh(
        r#"mkdir -p "$(dirname "$2")" && mv -f "$1" "$2""#,
        [staged.display().to_string(), path.display().to_string()],
    )
}

/// Starts the node agent (`node_tools::agent`): it reads commands on its standard input.
pub fn agent() -> Vec<String> {
    vec![STANDIN_INSIDE.to_string(), "agent".to_string()]
}

/// Writes its standard input to a file, creating its directory.
pub fn receive_file(path: &Path) -> Vec<String> {
    sh(
        r#"mkdir -p "$(dirname "$1")" && cat > "$1""#,
        [path.display().to_string()],
    )
}

/// Writes its standard input to an executable file, creating its directory.
pub fn receive_executable(path: &Path) -> Vec<String> {
    sh(
        r#"mkdir -p "$(dirname "$1")" && cat > "$1.part" && chmod 755 "$1.part" && mv -f "$1.part" "$1""#,
        [path.display().to_string()],
    )
}

/// Prints a file.
pub fn cat(path: &Path) -> Vec<String> {
    vec!["cat".to_string(), path.display().to_string()]
}

/// Gives eth0 the node's MAC when the engine did not (daemons before API 1.44 ignore the MAC
/// asked for at creation), then announces the address with a gratuitous ARP, as a booting
/// machine does, so peers that cached the previous holder's MAC learn the new one. arping
/// sends it at once, then waits a second for replies an unsolicited ARP never gets: it is cut
/// short.
pub fn claim_address(mac: &str, address: std::net::Ipv4Addr, announce: bool) -> Vec<String> {
    let script = r#"mac=$1; addr=$2; announce=$3
current=$(cat /sys/class/net/eth0/address)
if [ "$current" != "$mac" ]; then ip link set dev eth0 address "$mac" || exit 1; fi
if [ "$announce" = yes ]; then timeout 0.2 arping -q -U -c 1 -I eth0 "$addr" || true; fi
cat /sys/class/net/eth0/address"#;
    sh(
        script,
        [
            mac.to_string(),
            address.to_string(),
            if announce { "yes" } else { "no" }.to_string(),
        ],
    )
}

/// One command line as a remote shell reads it (what `ssh HOST -- …` sends): every argument
/// single-quoted.
pub fn quoted(argv: &[String]) -> String {
    argv.iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints the missing ones among `paths`, one per line.
pub fn missing_files(paths: &[String]) -> Vec<String> {
    sh(
        r#"for f in "$@"; do [ -e "$f" ] || echo "$f"; done"#,
        paths.iter().cloned(),
    )
}

/// `ip neigh show to ADDR dev eth0`.
pub fn neighbour(address: std::net::Ipv4Addr) -> Vec<String> {
    [
        "ip",
        "neigh",
        "show",
        "to",
        &address.to_string(),
        "dev",
        "eth0",
    ]
    .map(str::to_string)
    .to_vec()
}

/// `ip neigh flush to ADDR dev eth0` (what `arp -d` does).
pub fn purge_neighbour(address: std::net::Ipv4Addr) -> Vec<String> {
    [
        "ip",
        "neigh",
        "flush",
        "to",
        &address.to_string(),
        "dev",
        "eth0",
    ]
    .map(str::to_string)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn spawned_processes_are_read_from_their_stat_line() {
        let out = "42 (etcd) S 1 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 30 0 987654 1000\n";
        assert_eq!(
            parse_spawned(out),
            Some(ProcessId {
                pid: 42,
                start_time: 987654
            })
        );
        assert_eq!(parse_spawned("42 gone\n"), None);
        let zombie = "42 (etcd) Z 1 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 30 0 987654 1000\n";
        assert_eq!(parse_spawned(zombie), None);
    }

    #[test]
    fn a_reused_pid_is_not_the_process() {
        let p = ProcessId {
            pid: 42,
            start_time: 987654,
        };
        let same = "42 (etcd) S 1 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 30 0 987654 1000";
        let other = "42 (sh) S 1 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 30 0 999999 1000";
        assert!(is_alive(p, same));
        assert!(!is_alive(p, other));
        assert!(!is_alive(p, ""));
    }

    #[test]
    fn a_zombie_leader_is_alive_until_its_last_thread_exits() {
        let p = ProcessId {
            pid: 42,
            start_time: 987654,
        };
        let dying = "42 (etcd) Z 1 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 7 0 987654 1000";
        let dead = "42 (etcd) Z 1 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000";
        assert!(is_alive(p, dying), "six threads still hold its sockets");
        assert!(!is_alive(p, dead));
    }

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            "echo 'a b'; x".to_string(),
        ];
        assert_eq!(quoted(&argv), r"'sh' '-c' 'echo '\''a b'\''; x'");
    }

    #[test]
    fn inputs_are_arguments_not_script_text() {
        let argv = spawn(&Spawn {
            argv: vec!["etcd".into(), "--name".into(), "a b; rm -rf /".into()],
            workdir: PathBuf::from("/var/lib/succession/etcd"),
            log: PathBuf::from("/var/lib/succession/etcd.log"),
            banner: "--- start 1 ---".into(),
        });
        assert_eq!(&argv[..2], ["sh", "-c"]);
        assert!(!argv[2].contains("rm -rf"));
        assert_eq!(argv.last().map(String::as_str), Some("a b; rm -rf /"));
    }
}
