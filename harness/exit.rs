//! The process exit codes, fixed and documented (README, `succession --help`).

/// How `succession` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every check passed.
    Pass = 0,
    /// A check failed: the cluster did not behave as the procedure says.
    CheckFailed = 1,
    /// A scenario, topology or inventory file is invalid; nothing was started.
    InvalidInput = 2,
    /// The environment failed: not root, a binary missing, provisioning or a node unreachable.
    Environment = 3,
    /// The run completed, but a check had too little evidence to be judged, and nothing
    /// failed: not a pass.
    Unknown = 4,
    /// `preflight`: every check passed or warned, some warned, and `--allow-warnings` was not
    /// given.
    Warnings = 5,
    /// Interrupted by SIGINT or SIGTERM; everything the run created was removed.
    Interrupted = 130,
}

impl Exit {
    /// How a completed run exits for its verdict.
    pub fn of(verdict: crate::report::Verdict) -> Self {
        match verdict {
            crate::report::Verdict::Pass => Exit::Pass,
            crate::report::Verdict::Fail => Exit::CheckFailed,
            crate::report::Verdict::Unknown => Exit::Unknown,
        }
    }

    /// The numeric code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The exit codes as the help text lists them.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0    pass: every step and check held
  1    fail: a check failed (the cluster did not behave as the procedure says)
  2    invalid input: a scenario, topology or inventory file is malformed; nothing was started
  3    environment: not root, a binary missing, provisioning failed, or a node unreachable (named)
  4    unknown: the run completed, nothing failed, but a check had too little evidence to be
       judged (e.g. fewer availability samples than it needs); not a pass
  5    preflight warnings: nothing failed or is unknown, a check warned, and --allow-warnings
       was not given
  130  interrupted (Ctrl-C / SIGTERM); everything the run created was removed";
