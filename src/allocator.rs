//! How the process keeps glibc's allocator from holding on to memory it no longer
//! uses: a fixed mmap threshold set at start, and a trim after bursts.
//!
//! Why: argon2id hashes with a 19 MiB block. glibc serves a block that large with
//! `mmap` and, on freeing it, raises its *dynamic* mmap threshold to 19 MiB, so every
//! later block came from the heap and stayed there: 730 MiB after registering 100
//! users. A fixed threshold keeps large blocks in `mmap`, given back on free. What a
//! burst of requests leaves scattered in the heap (a thousand connections' buffers,
//! freed in no order) stays resident until `malloc_trim` hands the free pages back;
//! [`release_free_memory`] does that after a burst.
//!
//! Measured with `daehwa-bench memory` (1 000 registrations at once, then 1 000 idle
//! connections, then 1 000 logins at once); BENCHMARKS.md has the figures and the
//! alternatives tried (jemalloc, mimalloc, one argon2 block per thread).

/// Allocations at least this large are served by `mmap` and unmapped when freed:
/// glibc's own initial threshold, kept from rising.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 128 * 1024;
/// One arena for all threads. glibc gives threads arenas of their own (up to 8 per
/// core); each keeps the free memory of its own peak, so the flush thread's peak
/// and the runtime's added up: 62 MiB against 49 MiB with one arena, through the
/// many-rooms run. The runtime has one worker per core and small allocations go
/// through each thread's cache, so one arena costs little contention here.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 1;
/// Free memory at the top of a heap beyond this is returned at once.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD_BYTES: libc::c_int = 128 * 1024;

/// Fixes glibc's mmap and trim thresholds and its number of arenas. Call first thing in `main`, before any
/// thread exists. Elsewhere than glibc, does nothing.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other
    // thread exists, and any value is valid for these.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1
            || libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) != 1
            || libc::mallopt(libc::M_ARENA_MAX, ARENAS) != 1
        {
            // Not fatal: the server runs, with more memory.
            eprintln!("daehwa: glibc refused the allocator settings");
        }
    }
}

/// Returns the free pages of every heap to the system. Takes each arena's lock in
/// turn while it walks its free chunks (well under a millisecond for our heaps), so
/// call it off the async threads, after a burst rather than on a timer.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim has no preconditions.
        let released = unsafe { libc::malloc_trim(0) } == 1;
        tracing::debug!(
            released,
            micros = started.elapsed().as_micros() as u64,
            "free memory given back"
        );
    }
}
