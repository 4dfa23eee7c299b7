//! Retrying throttled and transient calls with exponential backoff, within a deadline.

use crate::backend::BResult;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Backoff settings for one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// No retry starts after this instant.
    pub deadline: Instant,
    /// First delay.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

fn jitter(d: Duration) -> Duration {
    // Full jitter in [d/2, d], seeded from the clock: no shared RNG needed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let half = d / 2;
    half + Duration::from_nanos(u64::from(nanos) % (half.as_nanos().max(1) as u64))
}

impl Backoff {
    /// Runs `call` until it succeeds, fails with an error retrying cannot help, or the next
    /// delay would end past the deadline (then the last error is returned).
    pub async fn run<T, F, Fut>(&self, mut call: F) -> BResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = BResult<T>>,
    {
        let mut delay = self.base;
        let mut tries = 0u32;
        loop {
            tries += 1;
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable() => {
                    let wait = jitter(delay);
                    if Instant::now() + wait >= self.deadline {
                        tracing::warn!(op = e.op, tries, "giving up: time budget spent");
                        return Err(e);
                    }
                    tracing::info!(op = e.op, kind = ?e.kind, tries, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(self.max);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
