#![cfg(feature = "hub")]
//! The hub behavioural suite against the in-memory backend, plus its slow-subscriber policy.

mod support;

use support::hub_suite::{self, next};
use tower_push::{
    hub::{Hub, MemoryHub},
    Event,
};

#[tokio::test]
async fn memory_starts_with_position_then_live() {
    hub_suite::starts_with_position_then_live(MemoryHub::new()).await;
}

#[tokio::test]
async fn memory_resume_replays_exactly_the_missed_events() {
    hub_suite::resume_replays_exactly_the_missed_events(MemoryHub::new()).await;
}

#[tokio::test]
async fn memory_foreign_cursor_resets() {
    let foreign = MemoryHub::new().publish_now("t", Event::new()).unwrap();
    hub_suite::foreign_cursor_resets(MemoryHub::new(), foreign.as_str()).await;
}

#[tokio::test]
async fn memory_several_topics_resume_exactly() {
    hub_suite::several_topics_resume_exactly(MemoryHub::new()).await;
}

#[tokio::test]
async fn memory_a_trimmed_topic_resets_alone() {
    hub_suite::a_trimmed_topic_resets_alone(MemoryHub::builder().history(4).build(), 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_concurrent_publishers_and_joining_subscribers() {
    let hub = MemoryHub::builder().history(2_000).buffer(64).build();
    hub_suite::concurrent_publishers_and_joining_subscribers(hub).await;
}

/// One subscriber never reads: the others keep receiving, the stalled one's buffered events
/// stay bounded by the live buffer, and when it reads again it catches up from history.
#[tokio::test]
async fn stalled_subscriber_is_bounded_then_catches_up_from_history() {
    const BUFFER: usize = 8;
    let hub = MemoryHub::builder().history(1_000).buffer(BUFFER).build();
    let mut stalled = hub.subscribe("t", tower_push::cursor::StartAt::Now);
    let mut active = hub.subscribe("t", tower_push::cursor::StartAt::Now);
    next(&mut stalled).await;
    next(&mut active).await;
    for i in 0..500 {
        hub.publish_now("t", Event::new().data(i.to_string()))
            .unwrap();
        assert_eq!(next(&mut active).await.get_data(), Some(&*i.to_string()));
        let stats = hub.topic_stats("t").unwrap();
        assert!(stats.queued <= BUFFER, "queued {} > {BUFFER}", stats.queued);
    }
    // All 500 are still in history: the stalled one gets every one, in order.
    for i in 0..500 {
        assert_eq!(next(&mut stalled).await.get_data(), Some(&*i.to_string()));
    }
    hub.publish_now("t", Event::new().data("live")).unwrap();
    assert_eq!(next(&mut stalled).await.get_data(), Some("live"));
    assert_eq!(next(&mut active).await.get_data(), Some("live"));
}

/// A subscriber that stalls past the kept history gets `reset`, then live events.
#[tokio::test]
async fn stalled_past_history_gets_reset_then_live() {
    let hub = MemoryHub::builder().history(50).buffer(8).build();
    let mut stalled = hub.subscribe("t", tower_push::cursor::StartAt::Now);
    next(&mut stalled).await;
    for i in 0..200 {
        hub.publish_now("t", Event::new().data(i.to_string()))
            .unwrap();
    }
    let stats = hub.topic_stats("t").unwrap();
    assert!(stats.queued <= 8 && stats.history <= 50, "{stats:?}");
    let reset = next(&mut stalled).await;
    assert_eq!(reset.get_event(), Some("reset"));
    let data: serde_json::Value = serde_json::from_str(reset.get_data().unwrap()).unwrap();
    assert_eq!(data["reason"], "expired");
    assert_eq!(reset.get_id(), Some(data["cursor"].as_str().unwrap()));
    hub.publish_now("t", Event::new().data("live")).unwrap();
    assert_eq!(next(&mut stalled).await.get_data(), Some("live"));
}

#[tokio::test]
async fn dropped_subscriptions_are_unregistered() {
    let hub = MemoryHub::new();
    let subs: Vec<_> = (0..10)
        .map(|_| hub.subscribe("t", tower_push::cursor::StartAt::Now))
        .collect();
    assert_eq!(hub.topic_stats("t").unwrap().subscribers, 10);
    drop(subs);
    assert_eq!(hub.topic_stats("t").unwrap().subscribers, 0);
}

#[tokio::test]
async fn memory_damaged_cursors_reset_or_resume_exactly() {
    for seed in 1..=8 {
        let resets =
            hub_suite::damaged_cursors_reset_or_resume_exactly(MemoryHub::new(), seed, 48).await;
        assert!(resets > 0, "seed {seed}: some damage must be unplaceable");
    }
}

#[tokio::test]
async fn memory_a_damaged_composite_resets_what_it_cannot_place() {
    hub_suite::a_damaged_composite_resets_what_it_cannot_place(MemoryHub::new()).await;
}

/// Held polls racing a publish on two threads: each of 64 tasks subscribes at the current
/// offset (as a poll with an up-to-date cursor does), and a publish comes while they make
/// their first wait. Every one of them is woken and gets exactly the next event: a wait that
/// registers just after the publish looked at its list must see the event, not sleep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_polls_racing_a_publish_are_all_woken() {
    use std::{sync::Arc, time::Duration};
    use tokio::sync::Barrier;
    use tokio_stream::StreamExt as _;
    use tower_push::cursor::StartAt;

    const POLLS: usize = 64;
    const ROUNDS: usize = 2_000;
    let hub = MemoryHub::new();
    let offset = |id: &str| -> u64 { id.rsplit_once('-').unwrap().1.parse().unwrap() };
    let start = Arc::new(Barrier::new(POLLS + 1));
    let done = Arc::new(Barrier::new(POLLS + 1));
    let polls: Vec<_> = (0..POLLS)
        .map(|_| {
            let (hub, start, done) = (hub.clone(), start.clone(), done.clone());
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let mut poll = hub.subscribe("t", StartAt::Now);
                    let position = poll.next().await.expect("the position");
                    let at = offset(position.get_id().unwrap());
                    start.wait().await;
                    // The deadline first: a poll the publish did not wake would otherwise be
                    // found holding its event when the deadline's own wake polls it.
                    let event = tokio::select! {
                        biased;
                        () = tokio::time::sleep(Duration::from_secs(5)) => {
                            panic!("round {round}: the publish did not wake this poll")
                        }
                        event = poll.next() => event.expect("the stream goes on"),
                    };
                    assert_eq!(offset(event.get_id().unwrap()), at + 1, "round {round}");
                    assert_eq!(event.get_data(), Some(&*round.to_string()));
                    drop(poll);
                    done.wait().await;
                }
            })
        })
        .collect();
    // A poll that fails never reaches the barrier: its panic is reported by its handle.
    let bounded = |barrier: Arc<Barrier>| async move {
        tokio::time::timeout(Duration::from_secs(10), barrier.wait())
            .await
            .is_ok()
    };
    let mut finished = true;
    for round in 0..ROUNDS {
        if !bounded(start.clone()).await {
            finished = false;
            break;
        }
        hub.publish_now("t", Event::new().data(round.to_string()))
            .unwrap();
        if !bounded(done.clone()).await {
            finished = false;
            break;
        }
    }
    for poll in polls {
        if !finished {
            poll.abort();
        }
        if let Err(error) = poll.await {
            assert!(error.is_cancelled(), "a poll failed: {error}");
        }
    }
    assert!(finished, "a poll stopped before the last round");
    assert_eq!(hub.topic_stats("t").unwrap().subscribers, 0);
}
