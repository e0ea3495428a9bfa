//! Processes the harness starts inside node namespaces: liveness that survives pid reuse,
//! and graceful stops that escalate to SIGKILL after a bound.

use std::time::{Duration, Instant};

/// A process identity that survives pid reuse: the pid and its kernel start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of /proc/PID/stat).
    pub start_time: u64,
}

/// What /proc says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Running (or sleeping): alive.
    Running,
    /// Exited but not yet reaped by its parent.
    Zombie,
    /// Gone, or the pid now belongs to another process.
    Gone,
}

impl ProcessId {
    /// Identifies a live pid now.
    pub fn of(pid: u32) -> Option<Self> {
        read_stat(pid).map(|stat| Self {
            pid,
            start_time: stat.start_time,
        })
    }

    /// The current state of this exact process.
    pub fn state(&self) -> ProcessState {
        match read_stat(self.pid) {
            Some(stat) if stat.start_time == self.start_time => {
                if stat.exited() {
                    ProcessState::Zombie
                } else {
                    ProcessState::Running
                }
            }
            _ => ProcessState::Gone,
        }
    }

    /// Whether the process is alive (not exited).
    pub fn is_alive(&self) -> bool {
        self.state() == ProcessState::Running
    }

    /// Sends a signal if this exact process still exists.
    pub fn signal(&self, signal: i32) {
        if self.state() != ProcessState::Gone {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(self.pid as i32, signal);
            }
        }
    }

    /// SIGTERM, then SIGKILL once `grace` has passed; returns whether SIGKILL was needed.
    /// Waits (polling /proc) until the process has exited.
    pub fn stop(&self, grace: Duration) -> bool {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        true
    }

    /// SIGKILL, and wait (bounded) until the kernel reports it exited.
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// What /proc/PID/stat says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Start time in clock ticks since boot (field 22).
    pub start_time: u64,
    /// The state letter of the process's leader thread (field 3).
    pub state: char,
    /// How many threads the process has (field 20), its exited leader included.
    pub threads: u64,
}

impl Stat {
    /// Whether the leader thread has exited (a zombie, or dead).
    pub fn leader_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }

    /// Whether the whole process has exited. Its leader thread can exit first and show as a
    /// zombie while its other threads are still being torn down — and those still hold its
    /// sockets, files and locks: a server started again on the same data or port in that
    /// window fails to bind or to lock. Only a zombie with no thread but its leader holds
    /// nothing.
    pub fn exited(&self) -> bool {
        self.leader_exited() && self.threads <= 1
    }
}

fn read_stat(pid: u32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Parses /proc/PID/stat: the command may hold spaces and parentheses, so fields are counted
/// after the last ')'.
pub fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) comes first after the command, so field N is at index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        threads: fields.get(17)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// This process's identity, recorded as a run's owner.
pub fn current() -> ProcessId {
    let pid = std::process::id();
    ProcessId::of(pid).unwrap_or(ProcessId { pid, start_time: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let stat = "4242 (java (zk) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 30 0 987654 1000 10 0";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                start_time: 987654,
                state: 'S',
                threads: 30
            })
        );
    }

    #[test]
    fn a_zombie_leader_with_threads_left_has_not_exited() {
        let dying = "77 (etcd) Z 1 77 77 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 12 0 5555 0 0 0";
        let stat = parse_stat(dying).expect("parses");
        assert!(stat.leader_exited());
        assert!(!stat.exited(), "11 threads still hold its files");
        let dead = dying.replace(" 0 12 0 ", " 0 1 0 ");
        assert!(parse_stat(&dead).expect("parses").exited());
    }

    #[test]
    fn this_process_is_alive() {
        assert!(current().is_alive());
    }
}
