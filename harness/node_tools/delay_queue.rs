//! The packet delay queue: this machine's kernel has no `sch_netem`, so delay is made in user
//! space. An iptables rule sends the delayed traffic to an NFQUEUE; this reader holds each
//! packet for its delay and then accepts it.
//!
//! - Delays on one node add up: each rule matches only packets without its own mark bit, and
//!   a released packet gets the bit and goes through the chain again (NF_REPEAT), so the next
//!   delay rule that matches it holds it too. (An accepted packet would leave the chain at
//!   once, and only the newest rule matching it would count.)
//! - Order is kept: a packet leaves no earlier than the one queued before it, so jitter
//!   varies the delay without reordering (a queue on a slow link, not netem's reordering).
//! - Bounded: at most `max_packets` are held. A packet that would overflow is dropped and
//!   counted; the kernel's own queue is capped at the same length and its drops are counted
//!   too. Only packet metadata is copied to user space (copy range 0), so a held packet costs
//!   one netlink receive buffer (one page) at most: memory is bounded by `max_packets` pages.
//! - The rule is added with `--queue-bypass`: when no reader is bound (it was killed), packets
//!   pass undelayed rather than vanish, so a harness killed mid-fault leaves no black hole.
//! - Resolution: the queue is drained without blocking and released packets are checked about
//!   every millisecond, so a delay is accurate to about a millisecond.
//!
//! Counters are written as JSON to a stats file every 200 ms and at exit (SIGTERM releases
//! every held packet first).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often the counters are written out.
const STATS_EVERY: Duration = Duration::from_millis(200);
/// The longest the reader sleeps when nothing is due.
const TICK: Duration = Duration::from_millis(1);

/// What a delay queue is started with.
#[derive(Debug, Clone)]
pub struct DelayOptions {
    /// The NFQUEUE number the rule sends packets to.
    pub queue: u16,
    /// The delay every packet is held for.
    pub delay: Duration,
    /// Up to this much more, drawn uniformly per packet.
    pub jitter: Duration,
    /// The most packets held at once.
    pub max_packets: u32,
    /// Where the counters are written.
    pub stats: PathBuf,
    /// The mark bit this queue's rule skips: set on every packet released, before it goes
    /// through the chain again.
    pub mark_bit: u32,
}

/// What a delay queue counted, as its stats file holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayStats {
    /// Packets held and then accepted.
    pub passed: u64,
    /// Packets dropped because the queue held `max_packets` already.
    pub dropped_full: u64,
    /// Packets the kernel dropped (its queue full, or a failed delivery to the reader).
    pub kernel_dropped: u64,
    /// The most packets held at once.
    pub held_max: u64,
    /// The cap it ran with.
    pub max_packets: u64,
}

impl DelayStats {
    /// Every packet the queue lost, by either cap.
    pub fn dropped(&self) -> u64 {
        self.dropped_full + self.kernel_dropped
    }
}

/// Why the delay queue could not run.
#[derive(Debug, thiserror::Error)]
pub enum DelayQueueError {
    /// The netfilter queue could not be opened or configured.
    #[error("failed to {action} NFQUEUE {queue}: {source}")]
    Queue {
        /// What was attempted.
        action: &'static str,
        /// The queue number.
        queue: u16,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The stats file could not be written.
    #[error("failed to write {path}: {source}")]
    Stats {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("failed to install the signal handlers: {0}")]
    Signals(std::io::Error),
}

/// A small deterministic generator for jitter (xorshift64*): which packet gets which share of
/// the jitter needs no cryptographic quality, only spread.
struct Jitter {
    state: u64,
    span_micros: u64,
}

impl Jitter {
    fn new(span: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Self {
            state: seed | 1,
            span_micros: span.as_micros() as u64,
        }
    }

    fn next(&mut self) -> Duration {
        if self.span_micros == 0 {
            return Duration::ZERO;
        }
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let draw = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Duration::from_micros(draw % (self.span_micros + 1))
    }
}

/// When each held packet is due: the delay plus jitter, never before the packet ahead of it.
pub struct Schedule {
    delay: Duration,
    jitter: Jitter,
    last_due: Option<Instant>,
}

impl Schedule {
    /// A schedule for this delay and jitter.
    pub fn new(delay: Duration, jitter: Duration) -> Self {
        Self {
            delay,
            jitter: Jitter::new(jitter),
            last_due: None,
        }
    }

    /// When a packet that arrived at `now` may leave.
    pub fn due(&mut self, now: Instant) -> Instant {
        let due = now + self.delay + self.jitter.next();
        let due = self.last_due.map_or(due, |last| due.max(last));
        self.last_due = Some(due);
        due
    }
}

/// Runs the queue until SIGTERM or SIGINT; then releases every held packet, writes the stats
/// and returns them.
pub fn run(options: &DelayOptions) -> Result<DelayStats, DelayQueueError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(DelayQueueError::Signals)?;
    }
    let queue_num = options.queue;
    let fail = |action: &'static str| {
        move |source: std::io::Error| DelayQueueError::Queue {
            action,
            queue: queue_num,
            source,
        }
    };
    let mut queue = nfq::Queue::open().map_err(fail("open"))?;
    queue.bind(queue_num).map_err(fail("bind"))?;
    queue
        .set_copy_range(queue_num, 0)
        .map_err(fail("set the copy range of"))?;
    queue
        .set_queue_max_len(queue_num, options.max_packets)
        .map_err(fail("cap the length of"))?;
    queue
        .set_fail_open(queue_num, false)
        .map_err(fail("configure"))?;
    queue.set_nonblocking(true);

    let mut schedule = Schedule::new(options.delay, options.jitter);
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    let mut stats = DelayStats {
        max_packets: u64::from(options.max_packets),
        ..DelayStats::default()
    };
    let mut next_stats = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    if held.len() >= options.max_packets as usize {
                        msg.set_verdict(nfq::Verdict::Drop);
                        queue.verdict(msg).map_err(fail("drop a packet of"))?;
                        stats.dropped_full += 1;
                        continue;
                    }
                    let due = schedule.due(Instant::now());
                    held.push_back((due, msg));
                    stats.held_max = stats.held_max.max(held.len() as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // A burst the socket could not hold: the kernel dropped and counts them.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => break,
                Err(e) => return Err(fail("read")(e)),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, msg)) = held.pop_front() {
                release(&mut queue, msg, queue_num, options.mark_bit)?;
                stats.passed += 1;
            }
        }
        if now >= next_stats {
            stats.kernel_dropped = kernel_drops(queue_num);
            write_stats(&options.stats, &stats)?;
            next_stats = now + STATS_EVERY;
        }
        let wait = held.front().map_or(TICK, |(due, _)| {
            due.saturating_duration_since(now).min(TICK)
        });
        std::thread::sleep(wait);
    }
    while let Some((_, msg)) = held.pop_front() {
        release(&mut queue, msg, queue_num, options.mark_bit)?;
        stats.passed += 1;
    }
    stats.kernel_dropped = kernel_drops(queue_num);
    // Unbinding is best effort: the process exits next, which unbinds too.
    let _ = queue.unbind(queue_num);
    write_stats(&options.stats, &stats)?;
    Ok(stats)
}

/// Lets a held packet go: marked as delayed here, and sent through the chain again so that
/// another delay rule can hold it too.
fn release(
    queue: &mut nfq::Queue,
    mut msg: nfq::Message,
    queue_num: u16,
    mark_bit: u32,
) -> Result<(), DelayQueueError> {
    let mark = msg.get_nfmark() | mark_bit;
    msg.set_nfmark(mark);
    msg.set_verdict(nfq::Verdict::Repeat);
    queue.verdict(msg).map_err(|source| DelayQueueError::Queue {
        action: "release a packet of",
        queue: queue_num,
        source,
    })
}

/// The kernel's drop counters for a queue (`queue_dropped` and `user_dropped` in
/// /proc/net/netfilter/nfnetlink_queue); 0 when the file or the queue is not there.
fn kernel_drops(queue_num: u16) -> u64 {
    std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue")
        .map(|text| parse_kernel_drops(&text, queue_num))
        .unwrap_or(0)
}

/// The drops of one queue in the text of /proc/net/netfilter/nfnetlink_queue: each line is
/// `queue portid waiting copy_mode copy_range queue_dropped user_dropped id 1`.
pub fn parse_kernel_drops(text: &str, queue_num: u16) -> u64 {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<u64> = line
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            (fields.len() >= 7 && fields[0] == u64::from(queue_num)).then(|| fields[5] + fields[6])
        })
        .sum()
}

/// Writes the counters atomically (a reader never sees half a file).
fn write_stats(path: &Path, stats: &DelayStats) -> Result<(), DelayQueueError> {
    let fail = |source| DelayQueueError::Stats {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string(stats).map_err(|e| fail(std::io::Error::other(e)))?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).map_err(fail)?;
    std::fs::rename(&partial, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_drops_are_read_for_the_queue_asked() {
        let text =
            "1000  31950     0 0     0  3  4   120  1\n1001  31951     2 0     0  5  0    12  1\n";
        assert_eq!(parse_kernel_drops(text, 1000), 7);
        assert_eq!(parse_kernel_drops(text, 1001), 5);
        assert_eq!(parse_kernel_drops(text, 7), 0);
    }

    #[test]
    fn jitter_never_reorders_and_never_shortens_the_delay() {
        let delay = Duration::from_millis(50);
        let jitter = Duration::from_millis(30);
        let mut schedule = Schedule::new(delay, jitter);
        let start = Instant::now();
        let mut last = start;
        for i in 0..1000u64 {
            let arrived = start + Duration::from_micros(i * 100);
            let due = schedule.due(arrived);
            assert!(due >= arrived + delay, "packet {i} released early");
            assert!(due >= last, "packet {i} overtook the one before it");
            last = due;
        }
    }

    #[test]
    fn jitter_spreads_within_its_span() {
        let mut jitter = Jitter::new(Duration::from_millis(10));
        let draws: Vec<Duration> = (0..2000).map(|_| jitter.next()).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(10)));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(2)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(8)));
        assert_eq!(Jitter::new(Duration::ZERO).next(), Duration::ZERO);
    }
}
