//! What a scenario asks of the whole run beside its steps: the availability monitor's settings,
//! the checks over its history, and the write ledger.

use std::time::Duration;

use serde::Serialize;

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
