//! The `Clock` port: every time the application reads or waits for comes
//! from one, so tests move time by hand instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pop_core::EpochMillis;
use tokio::sync::watch;

/// A future a clock hands out for a wait.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Wall-clock time in epoch milliseconds, and waits measured on it.
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_millis(&self) -> EpochMillis;

    /// Resolves once `duration` of this clock's time has passed.
    fn sleep(&self, duration: Duration) -> Sleep;
}

fn millis(duration: Duration) -> EpochMillis {
    EpochMillis::try_from(duration.as_millis()).unwrap_or(EpochMillis::MAX)
}

/// The operating system's clock and tokio's timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> EpochMillis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(millis)
            .unwrap_or_default()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]); its
/// sleeps end when the time they wait for is reached.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
    moved: watch::Sender<EpochMillis>,
}

impl ManualClock {
    /// A clock standing at `start` (epoch milliseconds).
    pub fn at(start: EpochMillis) -> Self {
        Self {
            now: AtomicI64::new(start),
            moved: watch::Sender::new(start),
        }
    }

    /// Move time forward by `by`, waking every sleep whose end it reaches.
    pub fn advance(&self, by: Duration) {
        let now = self.now.fetch_add(millis(by), Ordering::SeqCst) + millis(by);
        self.moved.send_replace(now);
    }

    /// How many sleeps are waiting (tests wait for a task to be asleep
    /// before moving time past its deadline).
    pub fn sleepers(&self) -> usize {
        self.moved.receiver_count()
    }
}

impl Default for ManualClock {
    /// 2026-01-01T00:00:00Z: a fixed, realistic epoch.
    fn default() -> Self {
        Self::at(1_767_225_600_000)
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> EpochMillis {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.now_millis().saturating_add(millis(duration));
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; once it is gone no time
            // will pass, and the sleep never ends (as on a stopped clock).
            if moved.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleep_ends_exactly_when_time_reaches_it() {
        let clock = std::sync::Arc::new(ManualClock::at(1_000));
        let sleep = tokio::spawn(clock.sleep(Duration::from_millis(50)));
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_millis(49));
        tokio::task::yield_now().await;
        assert!(!sleep.is_finished(), "49 of 50 ms passed");
        clock.advance(Duration::from_millis(1));
        sleep.await.expect("the sleep ends");
        assert_eq!(clock.now_millis(), 1_050);
    }

    #[tokio::test]
    async fn a_zero_sleep_is_ready_at_once() {
        ManualClock::default().sleep(Duration::ZERO).await;
    }

    #[test]
    fn the_system_clock_reads_epoch_milliseconds() {
        let now = SystemClock.now_millis();
        assert!(now > 1_700_000_000_000, "{now} is after 2023");
    }
}
