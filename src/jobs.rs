//! Background work (the original design's schedule module), owned by one handle:
//! - the write-behind flush every `storage.flush_interval`, with the save of the read
//!   markers that changed since the last (they are not written per message), on a plain tokio
//!   interval: tokio-cron-scheduler's repeated jobs stop firing when the runtime is
//!   busy (its issue #113: the next tick drifts into the past and is never due
//!   again), which measured as no flush at all under load, an unbounded loss window;
//! - in `sync` durability, the group-commit flusher: it flushes as soon as messages
//!   wait, so that one disk flush covers everything that arrived during the last;
//! - the expiry of bans and mutes every few seconds, announced to the rooms;
//! - housekeeping every minute: forget refilled rate-limit buckets, and client
//!   message ids older than their retention.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::chat::Chat;
use crate::config::Durability;

/// How often run-out bans and mutes are lifted and announced. Where they matter
/// (joining, sending) they are checked at the moment of use, not by this job.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(5);
/// How often housekeeping runs.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);
/// How long the group-commit flusher waits before retrying a failed flush.
const FLUSH_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The running background work. [`Jobs::stop`] ends all of it.
pub struct Jobs {
    /// Expiry and housekeeping, which tolerate a late tick.
    scheduler: JobScheduler,
    /// Tells the flush tasks to stop.
    stop: watch::Sender<bool>,
    /// The periodic flush and, in `sync` mode, the group-commit flusher.
    flushers: Vec<JoinHandle<()>>,
}

impl Jobs {
    pub async fn start(
        chat: Arc<Chat>,
        flush_interval: Duration,
        durability: Durability,
    ) -> Result<Self, JobSchedulerError> {
        let scheduler = JobScheduler::new().await?;
        let presence_grace = chat.settings().presence_grace;
        let expirer = Arc::clone(&chat);
        scheduler
            .add(Job::new_repeated_async(EXPIRY_INTERVAL, move |_, _| {
                let chat = Arc::clone(&expirer);
                Box::pin(async move { expire(&chat) })
            })?)
            .await?;
        let housekeeper = Arc::clone(&chat);
        scheduler
            .add(Job::new_repeated_async(
                HOUSEKEEPING_INTERVAL,
                move |_, _| {
                    let chat = Arc::clone(&housekeeper);
                    Box::pin(async move { housekeeping(chat).await })
                },
            )?)
            .await?;
        scheduler.start().await?;
        let (stop, stopped) = watch::channel(false);
        let mut flushers = vec![tokio::spawn(periodic_flush(
            Arc::clone(&chat),
            flush_interval,
            stopped.clone(),
        ))];
        flushers.push(tokio::spawn(presence(
            Arc::clone(&chat),
            presence_grace,
            stopped.clone(),
        )));
        if durability == Durability::Sync {
            flushers.push(tokio::spawn(group_commit(chat, stopped)));
        }
        Ok(Self {
            scheduler,
            stop,
            flushers,
        })
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in self.flushers.drain(..) {
            let _ = task.await;
        }
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "the scheduler did not stop cleanly");
        }
    }
}

/// One tick of the flush job. A failure leaves the messages in memory, visible, to be
/// retried on the next tick.
async fn flush(chat: &Chat) {
    match chat.flush().await {
        Ok(report) if report.changes() > 0 => tracing::debug!(
            changes = report.changes(),
            micros = report.duration.as_micros() as u64,
            "buffer flushed"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(
            error = %e,
            buffered = chat.buffered_changes(),
            "flush failed; the messages stay in memory and are retried"
        ),
    }
}

/// Resolves once the flush tasks are told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Saves the read markers that moved since the last save. A failure keeps them
/// unsaved, for the next tick.
async fn save_read_markers(chat: &Chat) {
    match chat.save_read_markers().await {
        Ok(0) => {}
        Ok(saved) => tracing::debug!(saved, "read markers saved"),
        Err(e) => tracing::error!(error = %e, "saving read markers failed; retried next tick"),
    }
}

/// Flushes every `interval` (in `sync` mode too, where it keeps readiness informed
/// while no message arrives), and saves the read markers, until told to stop.
async fn periodic_flush(chat: Arc<Chat>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                save_read_markers(&chat).await;
                flush(&chat).await;
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Flushes whenever messages wait, until told to stop.
async fn group_commit(chat: Arc<Chat>, mut stop: watch::Receiver<bool>) {
    loop {
        if chat.buffered_changes() == 0 {
            tokio::select! {
                _ = chat.change_pushed() => {}
                _ = stopped(&mut stop) => return,
            }
        }
        flush(&chat).await;
        if chat.flush_failing() {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_RETRY_DELAY) => {}
                _ = stopped(&mut stop) => return,
            }
        }
    }
}

/// How often users whose last connection closed are looked at, to announce them
/// offline once `server.presence_grace` has passed.
const PRESENCE_TICK: Duration = Duration::from_millis(250);

/// Announces users offline once their grace has passed, until told to stop.
async fn presence(chat: Arc<Chat>, grace: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(PRESENCE_TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                chat.expire_presence(grace);
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

fn expire(chat: &Chat) {
    match chat.expire_moderation() {
        Ok(0) => {}
        Ok(lifted) => tracing::info!(lifted, "bans and mutes ran out"),
        Err(e) => tracing::warn!(error = %e, "lifting expired bans and mutes failed"),
    }
}

async fn housekeeping(chat: Arc<Chat>) {
    chat.prune_rate_limits();
    let sweeper = Arc::clone(&chat);
    match tokio::task::spawn_blocking(move || sweeper.sweep_files(false)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(removed)) => tracing::info!(removed, "removed the bytes of deleted files"),
        Ok(Err(e)) => tracing::warn!(error = %e, "sweeping files failed"),
        Err(e) => tracing::warn!(error = %e, "the file sweep task failed"),
    }
    match tokio::task::spawn_blocking(move || chat.prune_client_ids()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(pruned)) => tracing::debug!(pruned, "old client message ids forgotten"),
        Ok(Err(e)) => tracing::warn!(error = %e, "pruning client message ids failed"),
        Err(e) => tracing::warn!(error = %e, "the pruning task failed"),
    }
}
