//! Scheduled work (the original design's schedule module), owned by one handle:
//! the write-behind flush every `storage.flush_interval`.

use std::time::Duration;

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::store::Store;

/// The running scheduler. [`Jobs::stop`] ends every job.
pub struct Jobs {
    scheduler: JobScheduler,
}

impl Jobs {
    pub async fn start(store: Store, flush_interval: Duration) -> Result<Self, JobSchedulerError> {
        let scheduler = JobScheduler::new().await?;
        scheduler
            .add(Job::new_repeated_async(flush_interval, move |_, _| {
                let store = store.clone();
                Box::pin(async move { flush(&store).await })
            })?)
            .await?;
        scheduler.start().await?;
        Ok(Self { scheduler })
    }

    pub async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "the scheduler did not stop cleanly");
        }
    }
}

/// One tick of the flush job. A failure leaves the messages in memory, visible, to be
/// retried on the next tick.
async fn flush(store: &Store) {
    match store.flush_messages().await {
        Ok(report) if report.messages > 0 => tracing::debug!(
            messages = report.messages,
            micros = report.duration.as_micros() as u64,
            "buffer flushed"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(
            error = %e,
            buffered = store.buffered_messages(),
            "flush failed; the messages stay in memory and the next tick retries"
        ),
    }
}
