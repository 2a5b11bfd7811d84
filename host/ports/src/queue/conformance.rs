//! The behaviour every [`Queue`] must show. Each adapter's tests call
//! [`run_all`] with a way to let time pass: a manual clock moved by hand
//! for the embedded and in-memory queues, real waiting for a remote engine.
//!
//! Cases panic with a message naming what broke. Every insight and message
//! id is unique to the case and the run, so cases can share one queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pop_core::QueuedAgenda;

use super::{MAX_WAIT, Queue, QueueDepth, QueueError, message_id};
use crate::store::conformance::unique;

/// Lets `duration` of the queue's time pass.
pub type PassTime = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The queue under test and how to move its time.
#[derive(Clone)]
pub struct QueueUnderTest {
    pub queue: Arc<dyn Queue>,
    pub pass_time: PassTime,
}

/// Leases are whole seconds: the coarsest engine (SQS) counts in seconds.
const LEASE: Duration = Duration::from_secs(2);
const NO_WAIT: Duration = Duration::ZERO;

/// Runs every case in turn.
pub async fn run_all(q: QueueUnderTest) {
    case_claim_oldest_first(&q).await;
    case_enqueue_is_idempotent(&q).await;
    case_invalid_messages(&q).await;
    case_queues_are_per_insight(&q).await;
    case_expired_lease_is_delivered_again(&q).await;
    case_extend_keeps_the_lease(&q).await;
    case_release(&q).await;
    case_release_any_and_held_by(&q).await;
    case_depth(&q).await;
    case_listing(&q).await;
    case_long_poll_wakes_on_enqueue(&q).await;
    case_long_poll_times_out_empty(&q).await;
    case_concurrent_claims_never_share(&q).await;
    case_large_batches(&q).await;
}

/// A batch larger than any engine's batch limit (SQS: 10 per call; a queue
/// on a store: 100 writes per atomic write) is queued whole, in order, and
/// enqueueing it again after a cut adds nothing twice.
pub async fn case_large_batches(q: &QueueUnderTest) {
    let insight = unique("insight");
    let messages: Vec<_> = (0..250).map(|i| message(&insight, &format!("a{i}"), "acme")).collect();
    enqueue(q, &messages[..120]).await;
    // The rest, with the first part again (as a retried enqueue would).
    enqueue(q, &messages).await;
    assert_eq!(q.queue.depth(&insight).await.expect("depth").waiting, 250);
    let mut claimed = Vec::new();
    loop {
        let held = claim(q, &insight, 100, "p").await;
        if held.is_empty() {
            break;
        }
        claimed.extend(held);
    }
    let expected: Vec<&str> = ids(&messages);
    assert_eq!(ids(&claimed), expected, "every message once, oldest first");
    for held in &claimed {
        q.queue.acknowledge(held).await.expect("ack");
    }
}

fn message(insight: &str, agenda: &str, customer: &str) -> QueuedAgenda {
    let mut m = QueuedAgenda {
        insight_id: Some(insight.into()),
        agenda_id: Some(agenda.into()),
        ..Default::default()
    };
    m.envelope.id = Some(unique("msg"));
    m.envelope.customer_id = Some(customer.into());
    m
}

async fn enqueue(q: &QueueUnderTest, messages: &[QueuedAgenda]) {
    q.queue.enqueue(messages.to_vec()).await.expect("enqueue");
}

async fn claim(q: &QueueUnderTest, insight: &str, max: usize, owner: &str) -> Vec<QueuedAgenda> {
    q.queue
        .claim(insight, max, owner, LEASE, NO_WAIT)
        .await
        .unwrap_or_else(|e| panic!("claim {insight} failed: {e}"))
}

fn ids(messages: &[QueuedAgenda]) -> Vec<&str> {
    messages.iter().map(message_id).collect()
}

fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T, QueueError>, what: &str) {
    match result {
        Err(QueueError::LeaseLost { .. }) => {}
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

/// A claim leases the oldest messages first, at most `max`, each to the
/// claimant with a receive count of 1; leased messages are not claimed again.
pub async fn case_claim_oldest_first(q: &QueueUnderTest) {
    let insight = unique("insight");
    let messages: Vec<_> = (0..5).map(|i| message(&insight, &format!("a{i}"), "acme")).collect();
    for m in &messages {
        enqueue(q, std::slice::from_ref(m)).await;
    }
    let first = claim(q, &insight, 3, "p1").await;
    assert_eq!(ids(&first), ids(&messages[..3]), "the three oldest, in order");
    for held in &first {
        assert_eq!(held.lease_owner.as_deref(), Some("p1"), "leased to the claimant");
        assert_eq!(held.deliveries, Some(1), "first delivery");
        assert!(held.lease_expires.is_some(), "a lease end is given");
        assert_eq!(
            held.agenda_id,
            messages
                .iter()
                .find(|m| message_id(m) == message_id(held))
                .and_then(|m| m.agenda_id.clone())
        );
        assert_eq!(
            held.envelope.customer_id.as_deref(),
            Some("acme"),
            "the message comes back whole"
        );
    }
    let rest = claim(q, &insight, 10, "p2").await;
    assert_eq!(ids(&rest), ids(&messages[3..]), "only the unleased rest");
    assert!(claim(q, &insight, 10, "p3").await.is_empty(), "everything is leased");
}

/// Enqueuing an id already queued changes nothing: not a second message,
/// not a fresh lease for one in flight.
pub async fn case_enqueue_is_idempotent(q: &QueueUnderTest) {
    let insight = unique("insight");
    let m = message(&insight, "a", "acme");
    enqueue(q, &[m.clone(), m.clone()]).await;
    enqueue(q, std::slice::from_ref(&m)).await;
    let held = claim(q, &insight, 10, "p1").await;
    assert_eq!(ids(&held), [message_id(&m)], "one message for one id");
    enqueue(q, std::slice::from_ref(&m)).await;
    assert!(
        claim(q, &insight, 10, "p2").await.is_empty(),
        "the re-enqueue did not free the leased message"
    );
    q.queue.acknowledge(&held[0]).await.expect("ack");
}

/// A message without an id or an insight is refused, and nothing of its
/// batch is queued.
pub async fn case_invalid_messages(q: &QueueUnderTest) {
    let insight = unique("insight");
    let good = message(&insight, "a", "acme");
    let mut no_id = message(&insight, "b", "acme");
    no_id.envelope.id = None;
    let mut no_insight = message(&insight, "c", "acme");
    no_insight.insight_id = None;
    for bad in [no_id, no_insight] {
        match q.queue.enqueue(vec![good.clone(), bad]).await {
            Err(QueueError::InvalidMessage(_)) => {}
            other => panic!("expected InvalidMessage, got {other:?}"),
        }
    }
    assert!(
        claim(q, &insight, 10, "p").await.is_empty(),
        "a refused batch queues nothing"
    );
}

/// Each insight has its own queue.
pub async fn case_queues_are_per_insight(q: &QueueUnderTest) {
    let (a, b) = (unique("insight-a"), unique("insight-b"));
    let ma = message(&a, "x", "acme");
    let mb = message(&b, "y", "globex");
    enqueue(q, &[ma.clone(), mb.clone()]).await;
    assert_eq!(ids(&claim(q, &a, 10, "p").await), [message_id(&ma)]);
    assert_eq!(ids(&claim(q, &b, 10, "p").await), [message_id(&mb)]);
}

/// A lease that runs out makes the message claimable again with a higher
/// receive count; the old delivery can then neither extend nor acknowledge,
/// the new one can, and a second acknowledgement is harmless.
pub async fn case_expired_lease_is_delivered_again(q: &QueueUnderTest) {
    let insight = unique("insight");
    enqueue(q, &[message(&insight, "a", "acme")]).await;
    let first = claim(q, &insight, 1, "p1").await.pop().expect("first delivery");
    (q.pass_time)(LEASE + Duration::from_secs(1)).await;
    let second = claim(q, &insight, 1, "p2")
        .await
        .pop()
        .expect("delivered again after the lease ran out");
    assert_eq!(message_id(&second), message_id(&first));
    assert_eq!(second.deliveries, Some(2), "the receive count grows");
    assert_eq!(second.lease_owner.as_deref(), Some("p2"));
    assert_lease_lost(q.queue.extend(&first, LEASE).await, "the old delivery extends");
    assert_lease_lost(q.queue.acknowledge(&first).await, "the old delivery acknowledges");
    let extended = q.queue.extend(&second, LEASE).await.expect("the holder extends");
    assert_eq!(extended.deliveries, Some(2), "extending is not a delivery");
    q.queue.acknowledge(&extended).await.expect("the holder acknowledges");
    q.queue
        .acknowledge(&extended)
        .await
        .expect("acknowledging twice is harmless");
    assert_eq!(
        q.queue.get(message_id(&first)).await.expect("get"),
        None,
        "acknowledged = gone"
    );
}

/// Extending pushes the lease end forward from now.
pub async fn case_extend_keeps_the_lease(q: &QueueUnderTest) {
    let insight = unique("insight");
    enqueue(q, &[message(&insight, "a", "acme")]).await;
    let held = claim(q, &insight, 1, "p1").await.pop().expect("claimed");
    (q.pass_time)(Duration::from_secs(1)).await;
    let held = q.queue.extend(&held, Duration::from_secs(4)).await.expect("extend");
    (q.pass_time)(Duration::from_secs(2)).await;
    assert!(
        claim(q, &insight, 1, "p2").await.is_empty(),
        "3 s after the claim, the extended lease holds"
    );
    q.queue.acknowledge(&held).await.expect("ack");
}

/// A release makes the message claimable at once; the releaser's delivery
/// is gone.
pub async fn case_release(q: &QueueUnderTest) {
    let insight = unique("insight");
    enqueue(q, &[message(&insight, "a", "acme")]).await;
    let held = claim(q, &insight, 1, "p1").await.pop().expect("claimed");
    q.queue.release(&held).await.expect("release");
    q.queue.release(&held).await.expect("releasing twice is harmless");
    let again = claim(q, &insight, 1, "p2")
        .await
        .pop()
        .expect("claimable at once after a release");
    assert_eq!(again.deliveries, Some(2));
    assert_lease_lost(q.queue.acknowledge(&held).await, "the releaser acknowledges");
    q.queue.acknowledge(&again).await.expect("ack");
}

/// `release_any` takes a message back from any holder; `release_held_by`
/// frees every lease of one owner and counts them.
pub async fn case_release_any_and_held_by(q: &QueueUnderTest) {
    let insight = unique("insight");
    let owner = unique("owner");
    let messages: Vec<_> = (0..3).map(|i| message(&insight, &format!("a{i}"), "acme")).collect();
    enqueue(q, &messages).await;
    let held = q.queue.claim(&insight, 3, &owner, LEASE, NO_WAIT).await.expect("claim");
    assert_eq!(held.len(), 3);
    q.queue.release_any(message_id(&held[0])).await.expect("release_any");
    q.queue
        .release_any(&unique("absent"))
        .await
        .expect("release_any of an absent message");
    assert_lease_lost(q.queue.extend(&held[0], LEASE).await, "extending what was taken back");
    assert_eq!(
        q.queue.release_held_by(&owner).await.expect("release_held_by"),
        2,
        "the two still held"
    );
    let all = claim(q, &insight, 10, "p2").await;
    assert_eq!(all.len(), 3, "all three are claimable again");
}

/// Depth counts waiting and in-flight messages apart.
pub async fn case_depth(q: &QueueUnderTest) {
    let insight = unique("insight");
    assert_eq!(q.queue.depth(&insight).await.expect("depth"), QueueDepth::default());
    let messages: Vec<_> = (0..4).map(|i| message(&insight, &format!("a{i}"), "acme")).collect();
    enqueue(q, &messages).await;
    let held = claim(q, &insight, 1, "p").await;
    assert_eq!(
        q.queue.depth(&insight).await.expect("depth"),
        QueueDepth {
            waiting: 3,
            in_flight: 1
        }
    );
    (q.pass_time)(LEASE + Duration::from_secs(1)).await;
    assert_eq!(
        q.queue.depth(&insight).await.expect("depth").waiting,
        4,
        "an expired lease waits again"
    );
    q.queue.remove(message_id(&held[0])).await.expect("remove");
    assert_eq!(q.queue.depth(&insight).await.expect("depth").waiting, 3);
}

/// `get`, `list`, `of_agenda` and `remove` see messages as they stand.
pub async fn case_listing(q: &QueueUnderTest) {
    let insight = unique("insight");
    let agenda = unique("agenda");
    let messages = [message(&insight, &agenda, "acme"), message(&insight, "other", "globex")];
    enqueue(q, &messages).await;
    let held = claim(q, &insight, 1, "p").await.pop().expect("claimed");
    let listed = q.queue.list(&insight, 10).await.expect("list");
    assert_eq!(ids(&listed), ids(&messages), "waiting and in flight, oldest first");
    assert_eq!(
        listed[0].lease_owner.as_deref(),
        Some("p"),
        "with the lease as it stands"
    );
    assert_eq!(
        ids(&q.queue.list(&insight, 1).await.expect("list")),
        [message_id(&messages[0])],
        "limit"
    );
    assert_eq!(
        ids(&q.queue.of_agenda(&agenda).await.expect("of_agenda")),
        [message_id(&held)]
    );
    let got = q
        .queue
        .get(message_id(&messages[1]))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.envelope.customer_id.as_deref(), Some("globex"));
    q.queue.remove(message_id(&held)).await.expect("remove");
    q.queue
        .remove(message_id(&held))
        .await
        .expect("removing twice is harmless");
    assert!(q.queue.of_agenda(&agenda).await.expect("of_agenda").is_empty());
}

/// A claim that finds nothing waits, and returns the message enqueued
/// meanwhile without waiting out its time.
pub async fn case_long_poll_wakes_on_enqueue(q: &QueueUnderTest) {
    let insight = unique("insight");
    let queue = q.queue.clone();
    let waiting = {
        let insight = insight.clone();
        tokio::spawn(async move { queue.claim(&insight, 1, "p", LEASE, MAX_WAIT).await })
    };
    // Let the claim reach its wait (it may also find the message at once:
    // either way it must return it).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let m = message(&insight, "a", "acme");
    enqueue(q, std::slice::from_ref(&m)).await;
    // A guard against a hang, far beyond any wake-up (no time of the
    // queue's clock passes here, so only a wake-up can end the wait).
    let got = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiting claim was not woken by the enqueue")
        .expect("claim task")
        .expect("claim");
    assert_eq!(ids(&got), [message_id(&m)]);
}

/// A claim on an empty queue ends with nothing once its wait has passed.
pub async fn case_long_poll_times_out_empty(q: &QueueUnderTest) {
    let insight = unique("insight");
    let queue = q.queue.clone();
    let wait = Duration::from_secs(1);
    let waiting = tokio::spawn(async move { queue.claim(&insight, 1, "p", LEASE, wait).await });
    // Keep time moving until the claim ends: the claim task may start (and
    // read its deadline) only after some time was passed here.
    let passing = async {
        while !waiting.is_finished() {
            (q.pass_time)(Duration::from_millis(200)).await;
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), passing)
        .await
        .expect("the claim did not end after its wait");
    let got = waiting.await.expect("claim task").expect("claim");
    assert!(got.is_empty(), "nothing was enqueued");
}

/// Claims racing for the same messages never hand one message to two.
pub async fn case_concurrent_claims_never_share(q: &QueueUnderTest) {
    let insight = unique("insight");
    let messages: Vec<_> = (0..40).map(|i| message(&insight, &format!("a{i}"), "acme")).collect();
    enqueue(q, &messages).await;
    let claims = (0..4).map(|n| {
        let queue = q.queue.clone();
        let insight = insight.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = queue
                    .claim(&insight, 7, &format!("p{n}"), LEASE, NO_WAIT)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.iter().map(|m| message_id(m).to_owned()));
            }
        })
    });
    let mut all: Vec<String> = Vec::new();
    for claim in claims {
        all.extend(claim.await.expect("claim task"));
    }
    all.sort();
    let total = all.len();
    all.dedup();
    assert_eq!(all.len(), total, "a message was handed to two claimants");
    assert_eq!(total, messages.len(), "every message was claimed once");
}
