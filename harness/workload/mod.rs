//! The consistency workload: etcd clients that record every operation and watch event
//! (`clients`), the history they make (`history`, saved as `workload.json`), and that history
//! judged by the pure checkers of `consistency` (`judge`), which `succession check DIR` runs
//! again offline.

pub mod clients;
pub mod history;
pub mod judge;
pub mod zookeeper;

pub use history::{WorkloadHistory, WORKLOAD_FILE};

use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Tells the workload's tasks to stop and waits for each (an operation in flight ends within
/// its timeout).
async fn stop_tasks(stop: &watch::Sender<bool>, tasks: &mut Vec<JoinHandle<()>>) {
    let _ = stop.send(true);
    for task in tasks.drain(..) {
        let _ = task.await;
    }
}

/// What the tasks recorded, taken out of the shared list.
fn take_recorded<T>(recorded: &Mutex<Vec<T>>) -> Vec<T> {
    std::mem::take(&mut *recorded.lock().unwrap_or_else(PoisonError::into_inner))
}
pub use judge::{judge, CheckerStatus, ConsistencyVerdict, DEFAULT_SEARCH_BUDGET};

#[cfg(test)]
mod tests;
