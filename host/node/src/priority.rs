//! Client threads yield to the raft and apply threads when the cores are contended.
//!
//! A put's latency is the pipeline's: the raft thread's WAL fsync, then the apply thread's
//! batch. The apply thread is busy (over half a member's CPU under write load), so the scheduler
//! sees it as a CPU hog and lets a tokio worker preempt it for a whole time slice; every client
//! waiting on that batch then waits a slice longer. With the default two tokio workers on a
//! 2-core machine, four busy threads share two cores. Measured side by side (one member, 16
//! clients, 256 B puts, 4 alternating runs each; docs/benchmarks.md item 6): put p99 5.4–6.1 ms
//! with the workers at the process's priority, 2.4–3.8 ms with them 5 nice levels lower (etcd
//! 3.2–4.0 ms in the same runs), at the same throughput; reads, which do not use the pipeline
//! threads, did not change. One worker instead of two gave the same p99 but cost reads a quarter
//! of their throughput.
//!
//! Lowering the workers rather than raising the pipeline threads needs no privilege, and it is
//! relative to the nice value the member was started with.

/// How many nice levels the runtime's threads sit below the member's raft and apply threads.
pub const CLIENT_THREAD_NICE: i32 = 5;

/// Lowers the calling thread's scheduling priority by [`CLIENT_THREAD_NICE`]: for the tokio
/// runtime's `on_thread_start`. A failure leaves the thread as it was; it is only slower under
/// contention, so it is logged at debug and not an error.
pub fn lower_client_thread() {
    // Linux only: `__errno_location` is glibc's, and only under NPTL is the nice value per thread.
    #[cfg(target_os = "linux")]
    {
        // nice(2) can return -1 as the new value, so errno is what tells a failure. Under NPTL
        // the nice value is per thread, so this does not touch the raft or apply threads.
        // SAFETY: errno is thread-local; nice(2) takes no pointers.
        let failed = unsafe {
            *libc::__errno_location() = 0;
            libc::nice(CLIENT_THREAD_NICE) == -1 && *libc::__errno_location() != 0
        };
        if failed {
            tracing::debug!("lowering a runtime thread's priority: {}", std::io::Error::last_os_error());
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        // SAFETY: getpriority takes no pointers; who = 0 is the calling thread under NPTL.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[test]
    fn lowers_the_calling_thread_only() {
        let before = std::thread::spawn(nice_of_this_thread).join().expect("probe thread");
        let lowered = std::thread::spawn(|| {
            let before = nice_of_this_thread();
            lower_client_thread();
            (before, nice_of_this_thread())
        })
        .join()
        .expect("lowered thread");
        assert_eq!(
            lowered.1,
            (lowered.0 + CLIENT_THREAD_NICE).min(19),
            "the thread that asked is lowered by {CLIENT_THREAD_NICE}"
        );
        let after = std::thread::spawn(nice_of_this_thread).join().expect("probe thread");
        assert_eq!(after, before, "threads that did not ask keep the process's nice value");
        assert_eq!(nice_of_this_thread(), before, "nor the thread that spawned it");
    }
}
