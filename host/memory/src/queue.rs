//! `MemoryQueue`: the insight queues as ordered maps behind one lock, with
//! wake-ups for long-polling claims and leases measured on a [`Clock`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pop_core::{EpochMillis, QueuedAgenda};
use pop_ports::queue::{MAX_WAIT, message_id, same_delivery};
use pop_ports::{Clock, Queue, QueueDepth, QueueError};
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    /// Messages in enqueue order.
    order: BTreeMap<u64, String>,
    messages: HashMap<String, (u64, QueuedAgenda)>,
    next: u64,
    wake_ups: HashMap<String, Arc<Notify>>,
}

impl State {
    fn ring(&self, insight_id: &str) {
        if let Some(notify) = self.wake_ups.get(insight_id) {
            notify.notify_waiters();
        }
    }

    fn in_order<'a>(&'a self, insight_id: &'a str) -> impl Iterator<Item = &'a QueuedAgenda> + 'a {
        self.order
            .values()
            .filter_map(|id| self.messages.get(id).map(|(_, m)| m))
            .filter(move |m| m.insight_id.as_deref() == Some(insight_id))
    }

    /// The current delivery of `held`'s message, if `held` is still it.
    fn current_mut(&mut self, held: &QueuedAgenda) -> Result<Option<&mut QueuedAgenda>, QueueError> {
        let id = message_id(held);
        match self.messages.get_mut(id) {
            None => Ok(None),
            Some((_, current)) if same_delivery(held, current) => Ok(Some(current)),
            Some(_) => Err(QueueError::lease_lost(id, "it was delivered again or released since")),
        }
    }
}

fn claimable(message: &QueuedAgenda, now: EpochMillis) -> bool {
    message.lease_expires.is_none_or(|expires| expires <= now)
}

fn unlease(message: &mut QueuedAgenda, now: EpochMillis) -> bool {
    if message.lease_owner.as_deref().unwrap_or_default().is_empty() {
        return false;
    }
    message.lease_owner = Some(String::new());
    message.lease_expires = Some(0);
    message.envelope.updated_time = Some(now);
    true
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The queues.
pub struct MemoryQueue {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl MemoryQueue {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::default(),
            clock,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn claim_now(&self, insight_id: &str, max: usize, owner: &str, lease_ms: i64) -> Vec<QueuedAgenda> {
        let now = self.clock.now_millis();
        let mut state = self.state();
        let ids: Vec<String> = state
            .in_order(insight_id)
            .filter(|m| claimable(m, now))
            .take(max)
            .map(|m| message_id(m).to_owned())
            .collect();
        let mut claimed = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some((_, message)) = state.messages.get_mut(id) {
                message.lease_owner = Some(owner.to_owned());
                message.lease_expires = Some(now.saturating_add(lease_ms));
                message.deliveries = Some(message.deliveries.unwrap_or(0) + 1);
                message.envelope.updated_time = Some(now);
                claimed.push(message.clone());
            }
        }
        claimed
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(&self, messages: Vec<QueuedAgenda>) -> Result<(), QueueError> {
        for message in &messages {
            if message_id(message).is_empty() {
                return Err(QueueError::InvalidMessage("a message has no id".into()));
            }
            if message.insight_id.as_deref().unwrap_or_default().is_empty() {
                return Err(QueueError::InvalidMessage(format!(
                    "message {} has no insightId",
                    message_id(message)
                )));
            }
        }
        let now = self.clock.now_millis();
        let mut state = self.state();
        for mut message in messages {
            let id = message_id(&message).to_owned();
            if state.messages.contains_key(&id) {
                continue;
            }
            message.lease_owner = None;
            message.lease_expires = None;
            message.deliveries = None;
            message.queued_time = message.queued_time.or(Some(now));
            message.envelope.added_time = message.envelope.added_time.or(Some(now));
            message.envelope.updated_time = Some(now);
            state.next += 1;
            let seq = state.next;
            state.order.insert(seq, id.clone());
            let insight = message.insight_id.clone().unwrap_or_default();
            state.messages.insert(id, (seq, message));
            state.ring(&insight);
        }
        Ok(())
    }

    async fn claim(
        &self,
        insight_id: &str,
        max: usize,
        owner: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<QueuedAgenda>, QueueError> {
        let deadline = self.clock.now_millis().saturating_add(millis(wait.min(MAX_WAIT)));
        let wake_up = self.state().wake_ups.entry(insight_id.to_owned()).or_default().clone();
        loop {
            let woken = wake_up.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let claimed = self.claim_now(insight_id, max, owner, millis(lease));
            let remaining = deadline.saturating_sub(self.clock.now_millis());
            if !claimed.is_empty() || max == 0 || remaining <= 0 {
                return Ok(claimed);
            }
            let remaining = Duration::from_millis(u64::try_from(remaining).unwrap_or(0));
            tokio::select! {
                () = &mut woken => {}
                () = self.clock.sleep(remaining) => {}
            }
        }
    }

    async fn extend(&self, held: &QueuedAgenda, lease: Duration) -> Result<QueuedAgenda, QueueError> {
        let now = self.clock.now_millis();
        let mut state = self.state();
        let current = state
            .current_mut(held)?
            .ok_or_else(|| QueueError::lease_lost(message_id(held), "it was acknowledged or removed"))?;
        current.lease_expires = Some(now.saturating_add(millis(lease)));
        current.envelope.updated_time = Some(now);
        Ok(current.clone())
    }

    async fn acknowledge(&self, held: &QueuedAgenda) -> Result<(), QueueError> {
        let mut state = self.state();
        if state.current_mut(held)?.is_some()
            && let Some((seq, _)) = state.messages.remove(message_id(held))
        {
            state.order.remove(&seq);
        }
        Ok(())
    }

    async fn release(&self, held: &QueuedAgenda) -> Result<(), QueueError> {
        let now = self.clock.now_millis();
        let mut state = self.state();
        let insight = match state.current_mut(held) {
            Ok(Some(current)) => {
                if !unlease(current, now) {
                    return Ok(());
                }
                current.insight_id.clone().unwrap_or_default()
            }
            Ok(None) | Err(QueueError::LeaseLost { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        state.ring(&insight);
        Ok(())
    }

    async fn release_any(&self, message_id: &str) -> Result<(), QueueError> {
        let now = self.clock.now_millis();
        let mut state = self.state();
        if let Some((_, message)) = state.messages.get_mut(message_id)
            && unlease(message, now)
        {
            let insight = message.insight_id.clone().unwrap_or_default();
            state.ring(&insight);
        }
        Ok(())
    }

    async fn release_held_by(&self, owner: &str) -> Result<usize, QueueError> {
        let now = self.clock.now_millis();
        let mut state = self.state();
        let mut insights = Vec::new();
        for (_, message) in state.messages.values_mut() {
            if message.lease_owner.as_deref() == Some(owner) && unlease(message, now) {
                insights.push(message.insight_id.clone().unwrap_or_default());
            }
        }
        for insight in &insights {
            state.ring(insight);
        }
        Ok(insights.len())
    }

    async fn depth(&self, insight_id: &str) -> Result<QueueDepth, QueueError> {
        let now = self.clock.now_millis();
        let state = self.state();
        let mut depth = QueueDepth::default();
        for message in state.in_order(insight_id) {
            if claimable(message, now) {
                depth.waiting += 1;
            } else {
                depth.in_flight += 1;
            }
        }
        Ok(depth)
    }

    async fn get(&self, message_id: &str) -> Result<Option<QueuedAgenda>, QueueError> {
        Ok(self.state().messages.get(message_id).map(|(_, m)| m.clone()))
    }

    async fn list(&self, insight_id: &str, limit: usize) -> Result<Vec<QueuedAgenda>, QueueError> {
        Ok(self.state().in_order(insight_id).take(limit).cloned().collect())
    }

    async fn of_agenda(&self, agenda_id: &str) -> Result<Vec<QueuedAgenda>, QueueError> {
        let state = self.state();
        Ok(state
            .order
            .values()
            .filter_map(|id| state.messages.get(id).map(|(_, m)| m))
            .filter(|m| m.agenda_id.as_deref() == Some(agenda_id))
            .cloned()
            .collect())
    }

    async fn remove(&self, message_id: &str) -> Result<(), QueueError> {
        let mut state = self.state();
        if let Some((seq, _)) = state.messages.remove(message_id) {
            state.order.remove(&seq);
        }
        Ok(())
    }
}
