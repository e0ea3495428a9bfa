//! Containers created in the background, a few at a time, in the order their services start;
//! a command on a node waits for that node's container only. The engine starts containers
//! one after another underneath (about 0.2 s each here, however many are asked at once), so a
//! cell's ten take two seconds or more: waiting for all of them before starting any server
//! would put all of that before the servers' own boot. This way ZooKeeper and etcd start on
//! the quorum's containers while the others are still being made, and their boot overlaps it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// How a node's container came out: not yet (None), up, or why it failed.
type State = Option<Result<(), String>>;

/// One container's creation, as the provider hands it over.
pub type Creation = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The creations of one run.
#[derive(Default)]
pub struct Creations {
    nodes: HashMap<String, watch::Receiver<State>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Creations {
    /// Starts every creation on `runtime`, at most `at_once` at a time, in the order given.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        jobs: Vec<(String, Creation)>,
        at_once: usize,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(at_once.max(1)));
        let mut nodes = HashMap::new();
        let mut queue = Vec::new();
        for (node, job) in jobs {
            let (state, seen) = watch::channel(None);
            nodes.insert(node, seen);
            queue.push((job, state));
        }
        // One task hands out the permits, so the creations start in the order given.
        let dispatcher = runtime.spawn(async move {
            let mut running = Vec::new();
            for (job, state) in queue {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                running.push(tokio::spawn(async move {
                    let outcome = job.await;
                    drop(permit);
                    // Nobody waiting is no error: the outcome stays for whoever asks later.
                    let _ = state.send(Some(outcome));
                }));
            }
            for task in running {
                let _ = task.await;
            }
        });
        Self {
            nodes,
            tasks: Mutex::new(vec![dispatcher]),
        }
    }

    /// Waits until `node`'s container is up; a node not created here (a replacement, made
    /// while the caller waits) is up already.
    pub async fn ready(&self, node: &str) -> Result<(), String> {
        let Some(seen) = self.nodes.get(node) else {
            return Ok(());
        };
        let mut seen = seen.clone();
        let state = seen
            .wait_for(Option::is_some)
            .await
            .map_err(|_| "its creation was abandoned".to_string())?;
        state.clone().unwrap_or(Ok(()))
    }

    /// Waits (from synchronous code) until no creation is in flight, so that removing the
    /// run's containers cannot miss one created a moment later.
    pub fn finish(&self) {
        let tasks: Vec<JoinHandle<()>> = match self.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(_) => return,
        };
        if tasks.is_empty() {
            return;
        }
        let _ = crate::provider::blocking::run(async {
            for task in tasks {
                let _ = task.await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A creation that logs its start and end, held between them until `gate` opens (if any).
    fn job(
        gate: Option<tokio::sync::oneshot::Receiver<()>>,
        outcome: Result<(), String>,
        log: Arc<Mutex<Vec<String>>>,
        name: &str,
    ) -> Creation {
        let name = name.to_string();
        Box::pin(async move {
            log.lock().unwrap().push(format!("start {name}"));
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            log.lock().unwrap().push(format!("end {name}"));
            outcome
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_waits_for_its_own_container_only_and_the_order_holds() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (open_b, b_gate) = tokio::sync::oneshot::channel();
        let jobs = vec![
            ("a".to_string(), job(None, Ok(()), log.clone(), "a")),
            ("b".to_string(), job(Some(b_gate), Ok(()), log.clone(), "b")),
            (
                "c".to_string(),
                job(None, Err("no room".into()), log.clone(), "c"),
            ),
        ];
        let creations = Creations::start(&tokio::runtime::Handle::current(), jobs, 2);
        // b is held until after these: waiting for a and c did not wait for b.
        creations.ready("a").await.unwrap();
        assert_eq!(creations.ready("c").await, Err("no room".into()));
        assert_eq!(creations.ready("unknown").await, Ok(()));
        assert!(!log.lock().unwrap().contains(&"end b".to_string()));
        open_b.send(()).unwrap();
        creations.ready("b").await.unwrap();
        let log = log.lock().unwrap().clone();
        // Two at a time: a and b at once (in either order), c only when a had finished.
        let mut first_two = log[..2].to_vec();
        first_two.sort();
        assert_eq!(first_two, ["start a", "start b"], "{log:?}");
        assert_eq!(&log[2..4], ["end a", "start c"], "{log:?}");
    }

    #[test]
    fn finishing_waits_for_every_creation_in_flight() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (open_a, a_gate) = tokio::sync::oneshot::channel::<()>();
        let jobs = vec![("a".to_string(), job(Some(a_gate), Ok(()), log.clone(), "a"))];
        let creations = Creations::start(runtime.handle(), jobs, 4);
        // Opened from another thread while finish() waits: it returns only after the end.
        let opener = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let _ = open_a.send(());
        });
        creations.finish();
        opener.join().unwrap();
        assert_eq!(*log.lock().unwrap(), ["start a", "end a"]);
    }
}
