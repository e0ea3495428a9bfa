//! What a scenario asks of the whole run beside its steps: the availability monitor's settings,
//! the checks over its history, and the write ledger.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ServiceKind;
use crate::ledger::writer::WriterSettings;
use crate::ledger::Tolerance;
use crate::source::{InputError, SourceFile};
use crate::spec::reader::TableReader;

/// The availability monitor's settings (`[availability]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvailabilitySettings {
    /// Time between rounds of requests.
    pub interval: Duration,
    /// How long one request may take before it counts as failed.
    pub timeout: Duration,
}

impl Default for AvailabilitySettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
        }
    }
}

/// A check over the recorded history, evaluated after the steps (`[[check]]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Its name in the report.
    pub name: String,
    /// The availability target it judges (`app`, `mesos`, `marathon`).
    pub target: String,
    /// The step whose start opens the window (None: the first step).
    pub from: Option<String>,
    /// The step whose end closes the window (None: the end of the run).
    pub to: Option<String>,
    /// Least share of successful requests.
    pub min_ratio: f64,
    /// Longest tolerated outage (run of failed requests); zero tolerates no failure at all.
    pub max_outage: Duration,
    /// The least number of samples, spread over the window, it is judged on; with fewer it is
    /// `unknown` (unless the samples it has already show a violation).
    pub min_samples: usize,
}

/// How many samples a check needs by default.
pub const DEFAULT_MIN_SAMPLES: usize = 20;

/// The targets the availability monitor knows, with the service that must exist for each.
pub const AVAILABILITY_TARGETS: &[(&str, ServiceKind)] = &[
    ("app", ServiceKind::App),
    ("mesos", ServiceKind::MesosMaster),
    ("marathon", ServiceKind::Marathon),
];

/// The ledger's prefix when the scenario names none.
pub const DEFAULT_LEDGER_PREFIX: &str = "/succession/ledger/";
/// Time between ledger writes when the scenario names none.
pub const DEFAULT_LEDGER_INTERVAL: Duration = Duration::from_millis(50);
/// How long one ledger write may take when the scenario names no bound.
pub const DEFAULT_LEDGER_TIMEOUT: Duration = Duration::from_secs(1);

/// The `[ledger]` table: how the write ledger writes and what loss the scenario tolerates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerSpec {
    /// Prefix, rate and per-write timeout.
    pub settings: WriterSettings,
    /// What loss is accepted (nothing by default).
    pub tolerate: Tolerance,
}

/// Parses the `[ledger]` table.
pub fn parse_ledger(
    source: &SourceFile,
    mut t: TableReader<'_, '_>,
) -> Result<LedgerSpec, InputError> {
    let prefix = match t.opt_str("prefix")? {
        Some(p) if p.value.is_empty() => {
            return Err(source.error(p.span, "`prefix` in `[ledger]` is empty"))
        }
        Some(p) => p.value,
        None => DEFAULT_LEDGER_PREFIX.to_string(),
    };
    let interval = t
        .opt_duration("interval")?
        .map(|d| d.value)
        .unwrap_or(DEFAULT_LEDGER_INTERVAL);
    let timeout = t
        .opt_duration("timeout")?
        .map(|d| d.value)
        .unwrap_or(DEFAULT_LEDGER_TIMEOUT);
    let window = t.opt_duration("uncommitted_window")?;
    let mut tolerate = Tolerance::default();
    let known = ["none", "after-snapshot", "wiped", "uncommitted"];
    for word in t
        .opt_str_list("tolerate")?
        .map(|l| l.value)
        .unwrap_or_default()
    {
        match word.value.as_str() {
            "none" => {}
            "after-snapshot" => tolerate.after_snapshot = true,
            "wiped" => tolerate.wiped = true,
            "uncommitted" => {
                tolerate.uncommitted_ms = Some(
                    window
                        .as_ref()
                        .map(|w| w.value)
                        .unwrap_or(Duration::from_millis(
                            crate::ledger::history::DEFAULT_UNCOMMITTED_MS,
                        ))
                        .as_millis() as u64,
                )
            }
            other => {
                let mut err = source.error(
                    word.span.clone(),
                    format!("unknown loss `{other}` in `tolerate`"),
                );
                err = match crate::spec::reader::closest(other, &known) {
                    Some(c) => err.with_help(format!("did you mean `{c}`? known: {}", known.join(", "))),
                    None => err.with_help(
                        "known: after-snapshot (writes made after the restored snapshot or dump), wiped (writes only in wiped data), uncommitted (writes acknowledged just before a quorum loss), none",
                    ),
                };
                return Err(err);
            }
        }
    }
    if let (Some(w), None) = (&window, tolerate.uncommitted_ms) {
        return Err(source
            .error(
                w.span.clone(),
                "`uncommitted_window` is set but `tolerate` does not list \"uncommitted\"",
            )
            .with_help("add \"uncommitted\" to `tolerate`, or remove the window"));
    }
    t.finish(&[
        "prefix",
        "interval",
        "timeout",
        "tolerate",
        "uncommitted_window",
    ])?;
    Ok(LedgerSpec {
        settings: WriterSettings {
            prefix,
            interval,
            timeout,
        },
        tolerate,
    })
}

/// How the workload runs (`[workload]` of a scenario).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSettings {
    /// Key prefix of the workload's own (the ledger's is apart).
    pub prefix: String,
    /// Concurrent clients, each bound to one member (client i to member i mod members).
    pub clients: u32,
    /// How many keys the clients share.
    pub keys: u32,
    /// Time between one client's operations.
    pub interval: Duration,
    /// How long one operation may take before its outcome counts as unknown.
    pub timeout: Duration,
    /// Whether each client keeps a watch on the prefix.
    pub watch: bool,
    /// Judge serializable reads as linearizable too: a claim they do not make (a member cut
    /// off from the leader serves its own, stale, store), for showing what the claim costs.
    #[serde(default)]
    pub serializable_claimed_linearizable: bool,
    /// Judge a client's watch that was compacted away and begun again from the compacted
    /// revision as one complete watch: a claim it cannot keep (the events between the last it
    /// delivered and the compaction are gone), for showing what the claim costs.
    #[serde(default)]
    pub compacted_watch_claimed_complete: bool,
    /// A client whose put's outcome is unknown (a timeout, a lost connection) sends it again,
    /// once, with the same value — as applications do; both sends may apply.
    #[serde(default)]
    pub retry_unknown_puts: bool,
    /// Judge a retried put and its retry as one write: a claim the server does not keep (the
    /// first send may have applied too), for showing what the claim costs.
    #[serde(default)]
    pub retried_put_counted_as_one: bool,
    /// ZooKeeper sessions that only read the shared znodes, without `sync`, as an application
    /// reading its configuration does (one per server in turn), beside the `clients` sessions.
    #[serde(default)]
    pub zookeeper_readers: u32,
    /// Judge ZooKeeper reads made without a `sync` as up to date (every write acknowledged
    /// before the read began): a claim ZooKeeper does not make (a follower serves reads from
    /// what it has applied so far), for showing what the claim costs.
    #[serde(default)]
    pub unsynced_reads_claimed_up_to_date: bool,
}

/// The workload's prefix when the scenario names none.
pub const DEFAULT_WORKLOAD_PREFIX: &str = "/succession/workload/";

impl Default for WorkloadSettings {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_WORKLOAD_PREFIX.to_string(),
            clients: 4,
            keys: 8,
            interval: Duration::from_millis(25),
            timeout: Duration::from_secs(1),
            watch: true,
            serializable_claimed_linearizable: false,
            compacted_watch_claimed_complete: false,
            retry_unknown_puts: false,
            retried_put_counted_as_one: false,
            zookeeper_readers: 0,
            unsynced_reads_claimed_up_to_date: false,
        }
    }
}

/// Parses the `[workload]` table; the topology must run etcd or ZooKeeper (`etcd_members` and
/// `zookeeper_servers` of them).
pub fn parse_workload(
    source: &SourceFile,
    mut t: TableReader<'_, '_>,
    etcd_members: usize,
    zookeeper_servers: usize,
) -> Result<WorkloadSettings, InputError> {
    let servers = etcd_members + zookeeper_servers;
    let mut settings = WorkloadSettings::default();
    if servers == 0 {
        return Err(source
            .error(t.span(), "`[workload]` needs etcd or ZooKeeper, and the topology runs neither")
            .with_help("the workload's clients talk to etcd members and ZooKeeper servers; remove `[workload]` or use a topology with a quorum"));
    }
    if let Some(p) = t.opt_str("prefix")? {
        if p.value.is_empty() {
            return Err(source.error(p.span, "`prefix` in `[workload]` is empty"));
        }
        settings.prefix = p.value;
    }
    for (key, slot) in [
        ("clients", &mut settings.clients),
        ("keys", &mut settings.keys),
    ] {
        if let Some(n) = t.opt_u64(key)? {
            if n.value == 0 || n.value > 256 {
                return Err(source
                    .error(n.span, format!("`{key}` in `[workload]` must be 1 to 256"))
                    .with_help(format!("the default is {slot}")));
            }
            *slot = n.value as u32;
        }
    }
    if let Some(n) = t.opt_u64("zookeeper_readers")? {
        if n.value > 0 && zookeeper_servers == 0 {
            return Err(source
                .error(n.span, "`zookeeper_readers` in `[workload]` needs ZooKeeper, and the topology runs none")
                .with_help("readers are ZooKeeper sessions; remove the key or use a topology with ZooKeeper"));
        }
        if n.value > 256 {
            return Err(source
                .error(
                    n.span,
                    "`zookeeper_readers` in `[workload]` must be 0 to 256",
                )
                .with_help("the default is 0: no session that only reads"));
        }
        settings.zookeeper_readers = n.value as u32;
    }
    if let Some(d) = t.opt_duration("interval")? {
        if d.value.is_zero() {
            return Err(source.error(d.span, "`interval` in `[workload]` must be above zero"));
        }
        settings.interval = d.value;
    }
    if let Some(d) = t.opt_duration("timeout")? {
        if d.value.is_zero() {
            return Err(source.error(d.span, "`timeout` in `[workload]` must be above zero"));
        }
        settings.timeout = d.value;
    }
    if let Some(w) = t.opt_bool("watch")? {
        settings.watch = w.value;
    }
    if let Some(w) = t.opt_bool("retry_unknown_puts")? {
        settings.retry_unknown_puts = w.value;
    }
    let claims = [
        (
            "judge_serializable_reads_as",
            ["serializable", "linearizable"],
            "\"serializable\" (what they promise; the default) or \"linearizable\" (a claim they do not make)",
            &mut settings.serializable_claimed_linearizable,
        ),
        (
            "judge_compacted_watches_as",
            ["ended", "complete"],
            "\"ended\" (a watch compacted away ends, and the one begun after it is another; the default) or \"complete\" (a claim it cannot keep)",
            &mut settings.compacted_watch_claimed_complete,
        ),
        (
            "judge_retried_puts_as",
            ["attempts", "one write"],
            "\"attempts\" (each send of a retried put is a write that may apply; the default) or \"one write\" (a claim the server does not keep: both sends may apply)",
            &mut settings.retried_put_counted_as_one,
        ),
        (
            "judge_unsynced_reads_as",
            ["session order", "up to date"],
            "\"session order\" (what ZooKeeper promises a read without `sync`: a session never sees the ensemble go back; the default) or \"up to date\" (a claim it does not make: a follower serves what it has applied so far)",
            &mut settings.unsynced_reads_claimed_up_to_date,
        ),
    ];
    for (key, [kept, claimed], help, slot) in claims {
        if let Some(judged) = t.opt_str(key)? {
            *slot = if judged.value == kept {
                false
            } else if judged.value == claimed {
                true
            } else {
                return Err(source
                    .error(
                        judged.span,
                        format!("unknown `{key} = \"{}\"`", judged.value),
                    )
                    .with_help(help));
            };
        }
    }
    t.finish(&[
        "prefix",
        "clients",
        "keys",
        "interval",
        "timeout",
        "watch",
        "retry_unknown_puts",
        "judge_serializable_reads_as",
        "judge_compacted_watches_as",
        "judge_retried_puts_as",
        "zookeeper_readers",
        "judge_unsynced_reads_as",
    ])?;
    Ok(settings)
}
