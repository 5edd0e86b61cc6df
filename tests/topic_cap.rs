#![cfg(feature = "hub")]
//! The in-memory hub's topic limit against a flood of publishes to new topics (its own test
//! binary, so the process's memory is this test's alone).

mod support;

use tokio_stream::StreamExt as _;
use tower_push::{
    hub::{Hub, MemoryHub, MemoryHubError},
    Event,
};

/// 20,000 publishes of a short message to new topics against a hub capped at 10,000: the
/// first 10,000 create their topics, the rest are refused with a typed error; memory grows
/// by at most 1 KiB per topic held; topics that exist keep working, for publishers and
/// subscribers alike.
#[tokio::test]
async fn publishes_past_the_topic_limit_are_refused_and_memory_stays_bounded() {
    const CAP: usize = 10_000;
    let hub = MemoryHub::builder().max_topics(CAP).build();
    // A subscriber on a topic that exists before the flood.
    let mut sub = hub.subscribe("lobby", tower_push::cursor::StartAt::Now);
    support::within(sub.next()).await.unwrap(); // position
    let before = support::rss();
    let (mut created, mut refused) = (0, 0);
    for i in 0..2 * CAP {
        match hub
            .publish(&format!("flood.{i}"), Event::new().data("x"))
            .await
        {
            Ok(_) => created += 1,
            Err(error) => {
                assert!(
                    matches!(
                        error,
                        MemoryHubError::TooManyTopics {
                            max_topics: CAP,
                            ..
                        }
                    ),
                    "{error:?}"
                );
                assert!(error.to_string().contains("10000 topics"), "{error}");
                refused += 1;
            }
        }
    }
    let grown = support::rss().saturating_sub(before);
    assert_eq!(
        (created, refused),
        (CAP - 1, CAP + 1),
        "lobby holds one place"
    );
    assert_eq!(hub.topic_count(), CAP);
    let per_topic = grown / CAP;
    eprintln!("{grown} bytes for {CAP} topics: {per_topic} B per topic");
    assert!(
        per_topic <= 1024,
        "{per_topic} B per topic holding one short event"
    );

    // Existing topics are unaffected: publishing to them works, their subscribers get it.
    hub.publish("flood.7", Event::new().data("again"))
        .await
        .unwrap();
    hub.publish("lobby", Event::new().data("still here"))
        .await
        .unwrap();
    let event = support::within(sub.next()).await.unwrap();
    assert_eq!(event.get_data(), Some("still here"));
    // A new subscriber is not refused (subscriptions are bounded by connections).
    let mut late = hub.subscribe("late", tower_push::cursor::StartAt::Now);
    assert!(support::within(late.next()).await.unwrap().is_cursor_only());
    // Removing topics makes room again.
    assert!(hub.remove_topic("flood.1") && hub.remove_topic("flood.2"));
    hub.publish("new", Event::new().data("fits")).await.unwrap();
}
