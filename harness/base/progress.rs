//! Progress of long work (provisioning, waits, image builds) on a terminal, drawn on standard
//! error by indicatif. Nothing is drawn when standard error is not a terminal, when `CI` is
//! set, or with `SUCCESSION_NO_PROGRESS`: CI logs stay as they were, line by line.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner or a bar that is drawn only where someone watches; it is cleared when dropped.
pub struct Progress(Option<ProgressBar>);

/// Whether progress is drawn in this process.
pub fn enabled() -> bool {
    std::env::var_os("CI").is_none()
        && std::env::var_os("SUCCESSION_NO_PROGRESS").is_none()
        && std::io::stderr().is_terminal()
}

impl Progress {
    /// A spinner with a message and the time since it began.
    pub fn spinner(message: impl Into<String>) -> Self {
        if !enabled() {
            return Self(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} [{elapsed}]") {
            bar.set_style(style);
        }
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }

    /// A bar of `len` units of work.
    pub fn bar(len: u64, message: impl Into<String>) -> Self {
        if !enabled() {
            return Self(None);
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) =
            ProgressStyle::with_template("  [{bar:30}] {pos}/{len} {msg} [{elapsed}]")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }

    /// A progress that draws nothing.
    pub fn hidden() -> Self {
        Self(None)
    }

    /// Changes the message.
    pub fn message(&self, message: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.into());
        }
    }

    /// One more unit of work done.
    pub fn advance(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_drawn_in_ci() {
        // The test harness runs with CI set in pipelines and without a terminal elsewhere.
        if std::env::var_os("CI").is_some() || !std::io::stderr().is_terminal() {
            assert!(!enabled());
            assert!(Progress::spinner("x").0.is_none());
            assert!(Progress::bar(3, "x").0.is_none());
        }
        let hidden = Progress::hidden();
        hidden.message("still fine");
        hidden.advance();
    }
}
