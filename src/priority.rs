//! A thread that works for the server in the background, and may fall behind,
//! runs below it (the search indexer; the flush may not fall behind and makes way
//! otherwise, see `store::FlushPriority`).
//!
//! Every delivery waits for the runtime's worker (one per core). A background thread
//! of the same priority that starts while the worker sleeps keeps the core for its
//! time slice (about 3 ms under Linux's EEVDF scheduler) when the worker wakes, and
//! the deliveries queue behind it. Through the many-rooms run (`perf sched` on the
//! server's core; ARCHITECTURE.md, "Background threads"; BENCHMARKS.md, issue 13) the
//! slow deliveries were those sent while a flush ran, and what the worker waited
//! for was the search indexer's threads and the flush's.

/// Puts the calling thread in `SCHED_IDLE`, for good: it runs when nothing else
/// wants the core, and a waking server thread takes the core from it. An
/// unprivileged thread cannot leave `SCHED_IDLE`, so call it first thing on a thread
/// of its own; the threads it starts afterwards inherit it. Where refused or not
/// Linux, logs and goes on at the server's priority.
pub fn run_this_thread_in_background() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is read during the call only.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "a background thread runs at the server's priority"
            );
        }
    }
}
