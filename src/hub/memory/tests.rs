//! Unit tests of the memory hub.

use super::*;
use futures_core::Stream as _;
use std::{
    pin::Pin,
    task::{Context, Poll, Waker},
    time::Duration,
};
use tokio_stream::StreamExt as _;

async fn next(sub: &mut MemorySubscription) -> Event {
    tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

#[tokio::test]
async fn cursors_are_short_and_cors_safe() {
    let hub = MemoryHub::new();
    let cursor = hub.publish_now("t", Event::new().data("x")).unwrap();
    assert!(cursor.as_str().len() <= 128);
    assert!(cursor
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    assert_ne!(
        MemoryHub::new().publish_now("t", Event::new()).unwrap(),
        cursor,
        "a new hub has a new epoch"
    );
}

#[tokio::test]
async fn fresh_subscription_starts_with_the_current_position() {
    let hub = MemoryHub::new();
    let last = hub.publish_now("t", Event::new().data("old")).unwrap();
    let mut sub = hub.subscribe("t", crate::cursor::StartAt::Now);
    let first = next(&mut sub).await;
    assert!(first.is_cursor_only());
    assert_eq!(first.get_id(), Some(last.as_str()));
    hub.publish_now("t", Event::new().data("new")).unwrap();
    assert_eq!(next(&mut sub).await.get_data(), Some("new"));
}

#[tokio::test]
async fn bad_cursors_reset_with_a_reason() {
    let hub = MemoryHub::builder().history(2).build();
    let first = hub.publish_now("t", Event::new().data("1")).unwrap();
    for _ in 0..3 {
        hub.publish_now("t", Event::new().data("x")).unwrap();
    }
    let other = MemoryHub::new().publish_now("t", Event::new()).unwrap();
    let epoch = first.as_str().split_once('-').unwrap().0;
    // Not a cursor at all: refused at the edge, before any hub.
    assert!(crate::cursor::StartAt::parse(Some("garbage")).is_err());
    for (from, reason) in [
        (&*format!("{epoch}-99"), "invalid"),
        (&*format!("{epoch}.1-0"), "invalid"),
        ("abc-1", "invalid"),
        (other.as_str(), "unknown-epoch"),
        (first.as_str(), "expired"),
    ] {
        let mut sub = hub.subscribe("t", crate::cursor::StartAt::parse(Some(from)).unwrap());
        let reset = next(&mut sub).await;
        assert_eq!(reset.get_event(), Some(crate::hub::RESET_EVENT), "{from}");
        assert_eq!(reset.get_id(), Some(&*format!("{epoch}-4")));
        let data: serde_json::Value = serde_json::from_str(reset.get_data().unwrap()).unwrap();
        assert_eq!(data["reason"], reason, "{from}");
        assert_eq!(data["cursor"], format!("{epoch}-4"));
    }
}

#[tokio::test]
async fn lagging_subscriber_catches_up_from_history() {
    let hub = MemoryHub::builder().history(100).buffer(4).build();
    let mut sub = hub.subscribe("t", crate::cursor::StartAt::Now);
    next(&mut sub).await; // position
    for i in 0..50 {
        hub.publish_now("t", Event::new().data(i.to_string()))
            .unwrap();
    }
    for i in 0..50 {
        assert_eq!(next(&mut sub).await.get_data(), Some(&*i.to_string()));
    }
    hub.publish_now("t", Event::new().data("live")).unwrap();
    assert_eq!(next(&mut sub).await.get_data(), Some("live"));
}

#[tokio::test]
async fn lagging_past_history_resets_then_goes_live() {
    let hub = MemoryHub::builder().history(8).buffer(4).build();
    let mut sub = hub.subscribe("t", crate::cursor::StartAt::Now);
    next(&mut sub).await;
    for i in 0..50 {
        hub.publish_now("t", Event::new().data(i.to_string()))
            .unwrap();
    }
    let reset = next(&mut sub).await;
    assert_eq!(reset.get_event(), Some("reset"));
    hub.publish_now("t", Event::new().data("live")).unwrap();
    assert_eq!(next(&mut sub).await.get_data(), Some("live"));
}

#[tokio::test]
async fn idle_topics_are_dropped_and_their_cursors_reset() {
    let hub = MemoryHub::builder()
        .idle_topic_age(Duration::from_millis(50))
        .build();
    let old = hub.publish_now("t", Event::new().data("1")).unwrap();
    hub.publish_now("busy", Event::new().data("x")).unwrap();
    let sub = hub.subscribe("empty", crate::cursor::StartAt::Now);
    assert_eq!(hub.evict_idle(), 0, "young, or subscribed");
    drop(sub);
    assert_eq!(
        hub.evict_idle(),
        1,
        "an empty topic goes with its last subscriber"
    );
    let keep = hub.subscribe("busy", crate::cursor::StartAt::Now);
    // The background sweep runs every 12.5 ms here; sweep once more in case it has not yet.
    tokio::time::sleep(Duration::from_millis(60)).await;
    hub.evict_idle();
    assert!(
        hub.topic_stats("t").is_none(),
        "the idle topic with history goes"
    );
    assert!(
        hub.topic_stats("busy").is_some(),
        "a subscribed topic stays"
    );
    assert_eq!(hub.topic_count(), 1);
    drop(keep);

    // Recreated: the old cursor is older than everything the new topic has.
    hub.publish_now("busy", Event::new().data("y")).unwrap();
    hub.publish_now("t", Event::new().data("2")).unwrap();
    let mut sub = hub.subscribe(
        "t",
        crate::cursor::StartAt::parse(Some(old.as_str())).unwrap(),
    );
    let reset = next(&mut sub).await;
    assert_eq!(reset.get_event(), Some("reset"));
    assert!(reset.get_data().unwrap().contains("expired"));
}

#[tokio::test]
async fn a_topic_in_use_is_never_swept() {
    let hub = MemoryHub::builder().idle_topic_age(Duration::ZERO).build();
    let held = hub.topic("t", true).unwrap();
    assert_eq!(hub.evict_idle(), 0);
    drop(held);
    assert_eq!(hub.evict_idle(), 1);
}

#[tokio::test]
async fn a_short_event_counts_its_text_and_under_300_bytes_of_fixed_size() {
    let hub = MemoryHub::new();
    hub.publish_now("t", Event::new().data("x")).unwrap();
    let bytes = hub.history_bytes();
    eprintln!("one short event: {bytes} bytes of history");
    assert!((200..=300).contains(&bytes), "{bytes}");
    assert!(hub.remove_topic("t"));
    assert_eq!(
        hub.history_bytes(),
        0,
        "a dropped topic gives its bytes back"
    );
}

#[tokio::test]
async fn past_the_history_budget_the_hubs_oldest_events_go_first() {
    const CAP: usize = 64 << 10;
    let hub = MemoryHub::builder().max_history_bytes(CAP).build();
    let kilobyte = "k".repeat(1000);
    // An old topic, then a newer one that fills the budget several times over.
    let old = hub
        .publish_now("old", Event::new().data(&*kilobyte))
        .unwrap();
    for i in 0..300 {
        hub.publish_now(&format!("new.{}", i % 3), Event::new().data(&*kilobyte))
            .unwrap();
        assert!(
            hub.history_bytes() <= CAP,
            "{} after {i}",
            hub.history_bytes()
        );
    }
    assert!(hub.history_bytes() > CAP / 2, "no more than needed goes");
    // The oldest went first: `old` has no history left, and a cursor before its first event
    // is reset.
    assert_eq!(hub.topic_stats("old").unwrap().history, 0);
    let before_old = Cursor::join(old.as_str().split_once('-').unwrap().0, 0);
    let mut sub = hub.subscribe(
        "old",
        crate::cursor::StartAt::parse(Some(before_old.as_str())).unwrap(),
    );
    assert_eq!(
        next(&mut sub).await.get_event(),
        Some(crate::hub::RESET_EVENT)
    );
    // The newest events all resume.
    let stats = hub.topic_stats("new.2").unwrap();
    assert!(stats.history >= 10, "{stats:?}");
    // A single event larger than the whole budget is refused, typed.
    let error = hub
        .publish_now("new.0", Event::new().data("x".repeat(CAP)))
        .unwrap_err();
    assert!(
        matches!(error, MemoryHubError::EventTooLarge { .. }),
        "{error}"
    );
}

#[test]
fn publishers_on_many_threads_keep_the_history_within_its_budget() {
    const CAP: usize = 256 << 10;
    let hub = MemoryHub::builder().max_history_bytes(CAP).build();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    let data = "x".repeat(100 + i % 300);
                    hub.publish_now(&format!("t{t}.{}", i % 50), Event::new().data(data))
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // A publish that lost the race to evict leaves the total over for the next one.
    hub.publish_now("last", Event::new().data("x")).unwrap();
    assert!(hub.history_bytes() <= CAP, "{}", hub.history_bytes());
    assert!(hub.history_bytes() > CAP / 2, "{}", hub.history_bytes());
}

/// A poll with the no-op waker (a long-poll asking what else is ready) sees every event sent
/// past the subscription, and `Pending` only when there is none.
#[tokio::test]
async fn a_look_with_the_noop_waker_sees_what_is_ready() {
    let hub = MemoryHub::new();
    let mut sub = hub.subscribe("t", StartAt::Now);
    let mut look = Context::from_waker(Waker::noop());
    let mut poll = |sub: &mut MemorySubscription| Pin::new(sub).poll_next(&mut look);
    assert!(
        matches!(poll(&mut sub), Poll::Ready(Some(e)) if e.is_cursor_only()),
        "the position first"
    );
    assert!(poll(&mut sub).is_pending(), "nothing sent yet");
    hub.publish_now("t", Event::new().data("a")).unwrap();
    hub.publish_now("t", Event::new().data("b")).unwrap();
    for data in ["a", "b"] {
        match poll(&mut sub) {
            Poll::Ready(Some(e)) => assert_eq!(e.get_data(), Some(data)),
            other => panic!("{data} is ready, got {other:?}"),
        }
    }
    assert!(poll(&mut sub).is_pending(), "both taken");
    // A real wait still wakes on the next event.
    hub.publish_now("t", Event::new().data("c")).unwrap();
    assert_eq!(next(&mut sub).await.get_data(), Some("c"));
}

/// A subscription at the current offset (a poll) takes its first live events from the
/// topic's recent events: the topic makes no buffer for it. One that reads on (a stream) joins
/// the buffer then, and misses nothing published meanwhile.
#[tokio::test]
async fn a_poll_takes_no_place_in_the_buffer_and_a_stream_joins_it() {
    let hub = MemoryHub::new();
    let topic = || read(&hub.shared.topics).map.get("t").cloned().unwrap();
    let mut poll = hub.subscribe("t", StartAt::Now);
    next(&mut poll).await; // position
    hub.publish_now("t", Event::new().data("a")).unwrap();
    assert_eq!(next(&mut poll).await.get_data(), Some("a"));
    assert!(topic().tx.get().is_none(), "no buffer made for a poll");
    assert_eq!(hub.topic_stats("t").unwrap().subscribers, 1);
    drop(poll);
    assert_eq!(hub.topic_stats("t").unwrap().subscribers, 0);

    let mut stream = hub.subscribe("t", StartAt::Now);
    next(&mut stream).await;
    hub.publish_now("t", Event::new().data("b")).unwrap();
    assert_eq!(next(&mut stream).await.get_data(), Some("b"));
    hub.publish_now("t", Event::new().data("c")).unwrap();
    hub.publish_now("t", Event::new().data("d")).unwrap();
    assert_eq!(next(&mut stream).await.get_data(), Some("c"));
    let tx = topic().tx.get().cloned().expect("joined on reading on");
    assert_eq!(tx.receiver_count(), 1);
    hub.publish_now("t", Event::new().data("e")).unwrap();
    for data in ["d", "e"] {
        assert_eq!(next(&mut stream).await.get_data(), Some(data));
    }
}

/// The recent events are kept only while the topic has subscriptions.
#[tokio::test]
async fn recent_events_are_kept_only_for_subscriptions() {
    let hub = MemoryHub::builder().buffer(4).build();
    let recent = || {
        let topic = read(&hub.shared.topics).map.get("t").cloned().unwrap();
        let offsets: Vec<u64> = lock(&topic.state).recent.iter().map(|e| e.offset).collect();
        offsets
    };
    hub.publish_now("t", Event::new()).unwrap();
    assert!(recent().is_empty(), "no subscription");
    let sub = hub.subscribe("t", StartAt::Now);
    for _ in 0..10 {
        hub.publish_now("t", Event::new()).unwrap();
    }
    let kept = recent();
    assert_eq!(kept.len(), 4, "at most the buffer's size");
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "{kept:?}");
    drop(sub);
    hub.publish_now("t", Event::new()).unwrap();
    assert!(recent().is_empty(), "dropped with the last subscription");
}
