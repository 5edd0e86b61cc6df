//! Topics at scale on a shared backbone (Redis, NATS): the scenarios each backbone's test file
//! runs with its own hubs and its own way of cutting the live connection.

use super::within;
use futures_util::{stream, FutureExt as _, StreamExt as _};
use std::time::Duration;
use tower_push::{hub::Hub, Event};

/// Two instances, `n` topics subscribed on each: every message published on one instance to
/// a topic subscribed on the other reaches exactly that topic's subscriber, once. Returns the
/// subscriptions (so the caller can look at the backbone while they are open, then drop
/// them).
pub async fn many_topics_on_two_instances<H: Hub>(a: &H, b: &H, n: usize) -> Vec<H::Subscription> {
    let names = |side: &'static str| (0..n).map(move |i| format!("{side}.{i}"));
    let mut subs: Vec<(String, H::Subscription)> = Vec::with_capacity(2 * n);
    for (hub, side) in [(a, "a"), (b, "b")] {
        for topic in names(side) {
            let sub = hub.subscribe(&topic, tower_push::cursor::StartAt::Now);
            subs.push((topic, sub));
        }
    }
    // Every subscription starts with its position: it is live from here on.
    let started = tokio::time::Instant::now();
    subs = stream::iter(subs)
        .map(|(topic, mut sub)| async move {
            let position = within(sub.next()).await.expect("position");
            assert!(position.is_cursor_only(), "{topic}: {position:?}");
            (topic, sub)
        })
        .buffer_unordered(1024)
        .collect()
        .await;
    eprintln!("{} subscriptions started in {:?}", 2 * n, started.elapsed());
    // Each instance publishes to the other's topics, the topic's name as the data.
    let started = tokio::time::Instant::now();
    stream::iter(names("a").map(|t| (b, t)).chain(names("b").map(|t| (a, t))))
        .map(|(hub, topic)| async move {
            hub.publish(&topic, Event::new().data(topic.clone()))
                .await
                .unwrap_or_else(|e| panic!("publish to {topic}: {e}"));
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
    eprintln!("{} publishes in {:?}", 2 * n, started.elapsed());
    let started = tokio::time::Instant::now();
    let subs: Vec<(String, H::Subscription)> = stream::iter(subs)
        .map(|(topic, mut sub)| async move {
            let event = within(sub.next()).await.expect("an event");
            assert_eq!(event.get_data(), Some(topic.as_str()), "{topic}");
            (topic, sub)
        })
        .buffer_unordered(1024)
        .collect()
        .await;
    eprintln!("{} events received in {:?}", 2 * n, started.elapsed());
    // Nothing else arrives: one message per topic, none delivered twice or to another topic.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut subs: Vec<H::Subscription> = subs.into_iter().map(|(_, sub)| sub).collect();
    for sub in &mut subs {
        let extra = sub.next().now_or_never();
        assert!(extra.is_none(), "an unexpected item: {extra:?}");
    }
    subs
}

/// A publisher sends `count` events to `topic` while `cut` severs the instance's live
/// connection to the backbone twice (after a third and two thirds): the subscriber receives
/// every event exactly once, in order.
pub async fn live_loss_is_recovered<H: Hub>(
    hub: &H,
    publisher: &H,
    topic: &str,
    count: usize,
    mut cut: impl FnMut(),
) {
    let mut sub = hub.subscribe(topic, tower_push::cursor::StartAt::Now);
    let position = within(sub.next()).await.expect("position");
    assert!(position.is_cursor_only());
    let mut got = Vec::with_capacity(count);
    for i in 0..count {
        if i == count / 3 || i == 2 * count / 3 {
            cut();
        }
        publisher
            .publish(topic, Event::new().data(i.to_string()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        // Read whatever is there, without waiting.
        while let Some(Some(event)) = sub.next().now_or_never() {
            got.push(event);
        }
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        while got.len() < count {
            got.push(sub.next().await.expect("the subscription goes on"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {count} events arrived", got.len()));
    let datas: Vec<String> = got
        .iter()
        .map(|e| {
            assert_ne!(e.get_event(), Some("reset"), "no reset: history is there");
            e.get_data().unwrap_or_default().to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..count).map(|i| i.to_string()).collect();
    assert_eq!(datas, expected, "every event once, in order");
    // And nothing after.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let extra = sub.next().now_or_never();
    assert!(extra.is_none(), "an unexpected item: {extra:?}");
}
