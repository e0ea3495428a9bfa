//! The write ledger: a monitor that writes unique, sequence-numbered keys to etcd at a steady
//! rate through a whole scenario, records how every write ended, reads them back, and measures
//! exactly what each recovery procedure lost.
//!
//! `history` is what is recorded (saved as `history.json`), `check` the pure verdict over it
//! (re-runnable offline with `succession check`), `writer` the background task that writes.

pub mod check;
pub mod history;
pub mod writer;

pub use check::{check, write_fates, LedgerVerdict, PhaseCounts, WriteFate};
pub use history::{
    CaptureKind, FailureCause, History, LedgerEvent, LedgerRecord, Outcome, SeqSet, Tolerance,
    HISTORY_FILE,
};

#[cfg(test)]
mod tests;
