//! A runtime that lives as long as a run's hosts: the work a provider keeps going between the
//! harness's calls (the node agents' connections, containers still being created) runs there,
//! not on the short-lived runtimes that provisioning and teardown use.

use tokio::runtime::{Handle, Runtime};

/// The hosts' own runtime; shut down without blocking when dropped.
pub struct Background {
    runtime: Option<Runtime>,
}

impl Background {
    /// Starts one worker thread named `name`.
    pub fn new(name: &str) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Where to spawn onto it.
    pub fn handle(&self) -> Option<Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Dropping a runtime from inside another (teardown runs in the harness's) must not
        // block: what still runs on it is cancelled.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
