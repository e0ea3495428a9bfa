//! Running a provider's async calls from its synchronous ones (provisioning, teardown, `gc`),
//! whether or not a runtime is already running on this thread: the future runs on a
//! short-lived runtime of its own thread.

/// Runs a future to completion on a runtime of its own; fails only when no runtime can start.
pub fn run<F>(future: F) -> std::io::Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(future))
            })
            .join()
    })
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_inside_and_outside_a_runtime() {
        assert_eq!(super::run(async { 7 }).expect("outside"), 7);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let inside = rt.block_on(async { super::run(async { 8 }).expect("inside") });
        assert_eq!(inside, 8);
    }
}
