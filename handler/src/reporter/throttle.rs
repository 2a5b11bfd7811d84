//! POP's reporter thread (§5.2): progress is not sent as it happens but the *latest* one at each
//! tick (every 5 s in POP), so a handler reporting in a tight loop costs the API server one
//! request per tick; the final report goes at once and is retried with backoff. The publishing
//! itself is behind [`Publish`], so this logic is tested without a cluster and with ticks the
//! test gives.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pop_core::OperationProgress;
use serde_json::Value;

use super::sink::Sink;

/// Sends one report (a progress, with the result on the final one) somewhere remote.
pub trait Publish: Send + 'static {
    type Error: std::fmt::Display;
    fn publish(&mut self, progress: &OperationProgress, result: Option<&Value>) -> Result<(), Self::Error>;
}

/// When the latest progress is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    Every(Duration),
    /// Only when [`Throttle::tick`] is called (tests).
    Manual,
}

/// How the final report is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts after the first.
    pub retries: u32,
    /// The first wait; it doubles after each attempt.
    pub backoff: Duration,
}

impl Retry {
    /// POP's: retried up to 5 times.
    pub const POP: Self = Self {
        retries: 5,
        backoff: Duration::from_millis(200),
    };
}

type Final = (OperationProgress, Option<Value>);

#[derive(Default)]
struct State {
    latest: Option<OperationProgress>,
    last: Option<Final>,
    tick: bool,
    closing: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the state consistent (plain assignments): keep reporting.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

enum Job {
    Progress(OperationProgress),
    Final(Final),
    Close(Option<OperationProgress>),
}

/// The reporter thread and what it shares with the handler's thread.
pub struct Throttle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Throttle {
    pub fn start<P: Publish>(publisher: P, tick: Tick, retry: Retry) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pop-reporter".into())
            .spawn(move || work(&worker, publisher, tick, retry))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Sends now what the next tick would.
    pub fn tick(&self) {
        self.shared.lock().tick = true;
        self.shared.wake.notify_all();
    }
}

impl Sink for Throttle {
    fn progress(&mut self, progress: &OperationProgress) {
        // No wake-up: it waits for the tick, replaced by any newer progress meanwhile.
        self.shared.lock().latest = Some(progress.clone());
    }

    fn complete(&mut self, progress: &OperationProgress, result: Option<&Value>) {
        let mut state = self.shared.lock();
        state.latest = None;
        state.last = Some((progress.clone(), result.cloned()));
        drop(state);
        self.shared.wake.notify_all();
    }

    fn flush(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            println!("warning: the reporter thread panicked; the last report may be lost");
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.flush();
    }
}

fn work<P: Publish>(shared: &Shared, mut publisher: P, tick: Tick, retry: Retry) {
    let mut next_tick = match tick {
        Tick::Every(interval) => Some(Instant::now() + interval),
        Tick::Manual => None,
    };
    loop {
        match next_job(shared, tick, &mut next_tick) {
            Job::Progress(progress) => {
                if let Err(e) = publisher.publish(&progress, None) {
                    println!("warning: cannot report progress: {e}");
                    // Sent again at the next tick, unless newer progress replaced it.
                    shared.lock().latest.get_or_insert(progress);
                }
            }
            Job::Final((progress, result)) => {
                send_with_retries(&mut publisher, &progress, result.as_ref(), retry);
                return;
            }
            Job::Close(latest) => {
                // Ended without a COMPLETE (a handler not using `run`): its last word still counts.
                if let Some(progress) = latest {
                    send_with_retries(&mut publisher, &progress, None, retry);
                }
                return;
            }
        }
    }
}

fn next_job(shared: &Shared, tick: Tick, next_tick: &mut Option<Instant>) -> Job {
    let mut state = shared.lock();
    loop {
        if let Some(last) = state.last.take() {
            return Job::Final(last);
        }
        if state.closing {
            return Job::Close(state.latest.take());
        }
        if std::mem::take(&mut state.tick)
            && let Some(progress) = state.latest.take()
        {
            return Job::Progress(progress);
        }
        state = match (tick, next_tick.as_mut()) {
            (Tick::Every(interval), Some(at)) => {
                let now = Instant::now();
                if now >= *at {
                    *at = now + interval;
                    state.tick = true;
                    continue;
                }
                shared
                    .wake
                    .wait_timeout(state, *at - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            _ => shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

fn send_with_retries<P: Publish>(
    publisher: &mut P,
    progress: &OperationProgress,
    result: Option<&Value>,
    retry: Retry,
) {
    let mut wait = retry.backoff;
    for attempt in 0..=retry.retries {
        match publisher.publish(progress, result) {
            Ok(()) => return,
            Err(e) if attempt < retry.retries => {
                println!("warning: cannot send the final report (attempt {}): {e}", attempt + 1);
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
            }
            Err(e) => println!(
                "ERROR the final report was not sent after {} attempts: {e}",
                attempt + 1
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use pop_core::ProcessingState;
    use serde_json::json;

    use super::*;

    type Sent = (OperationProgress, Option<Value>);

    /// Records what it publishes; fails the first `failures` calls.
    struct Recorder {
        sent: mpsc::Sender<Sent>,
        failures: u32,
    }

    impl Publish for Recorder {
        type Error = String;
        fn publish(&mut self, progress: &OperationProgress, result: Option<&Value>) -> Result<(), String> {
            let _ = self.sent.send((progress.clone(), result.cloned()));
            if self.failures > 0 {
                self.failures -= 1;
                return Err("unavailable".into());
            }
            Ok(())
        }
    }

    fn progress(message: &str) -> OperationProgress {
        OperationProgress {
            processing_state: Some(ProcessingState::Executing),
            processing_state_message: Some(message.into()),
            ..Default::default()
        }
    }

    fn start(tick: Tick, failures: u32) -> (Throttle, mpsc::Receiver<Sent>) {
        let (sent, received) = mpsc::channel();
        let retry = Retry {
            retries: 5,
            backoff: Duration::from_millis(1),
        };
        (
            Throttle::start(Recorder { sent, failures }, tick, retry).unwrap(),
            received,
        )
    }

    fn message(sent: &Sent) -> &str {
        sent.0.processing_state_message.as_deref().unwrap_or_default()
    }

    const QUIET: Duration = Duration::from_millis(100);
    const SOON: Duration = Duration::from_secs(10);

    #[test]
    fn only_the_latest_progress_is_sent_per_tick() {
        let (mut throttle, sent) = start(Tick::Manual, 0);
        for n in 1..=3 {
            throttle.progress(&progress(&format!("step {n}")));
        }
        assert!(sent.recv_timeout(QUIET).is_err(), "nothing before the tick");
        throttle.tick();
        assert_eq!(message(&sent.recv_timeout(SOON).unwrap()), "step 3");
        throttle.tick();
        assert!(sent.recv_timeout(QUIET).is_err(), "nothing new, nothing sent");
        throttle.progress(&progress("step 4"));
        throttle.tick();
        assert_eq!(message(&sent.recv_timeout(SOON).unwrap()), "step 4");
    }

    #[test]
    fn the_final_report_goes_at_once_and_ends_the_thread() {
        let (mut throttle, sent) = start(Tick::Manual, 0);
        throttle.progress(&progress("pending"));
        let mut done = progress("succeeded");
        done.processing_state = Some(ProcessingState::Complete);
        throttle.complete(&done, Some(&json!({"out": 1})));
        let (first, result) = sent.recv_timeout(SOON).unwrap();
        assert_eq!(first, done, "no tick needed, and the pending progress is superseded");
        assert_eq!(result, Some(json!({"out": 1})));
        throttle.progress(&progress("late"));
        throttle.tick();
        throttle.flush();
        assert!(sent.try_recv().is_err(), "nothing after the final report");
    }

    #[test]
    fn the_final_report_is_retried_with_backoff() {
        let (mut throttle, sent) = start(Tick::Manual, 2);
        throttle.complete(&progress("done"), None);
        throttle.flush();
        assert_eq!(sent.try_iter().count(), 3, "two failures, then sent");

        let (mut throttle, sent) = start(Tick::Manual, u32::MAX);
        throttle.complete(&progress("done"), None);
        throttle.flush();
        assert_eq!(
            sent.try_iter().count(),
            6,
            "the first attempt and 5 retries, then given up"
        );
    }

    #[test]
    fn progress_that_failed_is_sent_again_at_the_next_tick() {
        let (mut throttle, sent) = start(Tick::Manual, 1);
        throttle.progress(&progress("once"));
        throttle.tick();
        assert_eq!(message(&sent.recv_timeout(SOON).unwrap()), "once");
        throttle.tick();
        assert_eq!(message(&sent.recv_timeout(SOON).unwrap()), "once");
        throttle.flush();
    }

    #[test]
    fn an_interval_ticks_by_itself() {
        let (mut throttle, sent) = start(Tick::Every(Duration::from_millis(20)), 0);
        throttle.progress(&progress("timed"));
        assert_eq!(message(&sent.recv_timeout(SOON).unwrap()), "timed");
        throttle.flush();
    }
}
