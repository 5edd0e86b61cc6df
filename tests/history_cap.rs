#![cfg(feature = "hub")]
//! The in-memory hub's history budget against a flood of large events to many topics (its own
//! test binary, so the process's memory is this test's alone).

mod support;

use tokio_stream::StreamExt as _;
use tower_push::{
    hub::{Hub, MemoryHub, MemoryHubError, RESET_EVENT},
    Event,
};

/// 240 MB published as 30,000 events of 8 KB to 1,000 topics against a hub whose history is
/// capped at 16 MiB: the history stays within the cap, the process grows by at most twice
/// the cap, nothing is refused, a live subscriber gets every event published after it
/// subscribed, and a client resuming from an evicted cursor gets `reset` (`expired`).
#[tokio::test]
async fn a_flood_of_large_events_keeps_history_within_its_byte_budget() {
    const CAP: usize = 16 << 20;
    let hub = MemoryHub::builder().max_history_bytes(CAP).build();
    let lobby = hub
        .publish("lobby", Event::new().data("before the flood"))
        .await
        .unwrap();
    let mut live = hub.subscribe("lobby", tower_push::cursor::StartAt::Now);
    support::within(live.next()).await.unwrap(); // position
    let before = support::rss();
    let payload = "p".repeat(8_000);
    for i in 0..30_000 {
        hub.publish(
            &format!("flood.{}", i % 1_000),
            Event::new().data(&*payload),
        )
        .await
        .unwrap();
        if i % 3_000 == 0 {
            hub.publish("lobby", Event::new().data(format!("during {i}")))
                .await
                .unwrap();
        }
    }
    let grown = support::rss().saturating_sub(before);
    eprintln!(
        "history {} bytes (cap {CAP}); process grew by {grown} bytes",
        hub.history_bytes()
    );
    assert!(hub.history_bytes() <= CAP);
    assert!(grown <= 2 * CAP, "grew by {grown} bytes");

    // Live delivery does not depend on history: every lobby event arrived, in order.
    for i in (0..30_000).step_by(3_000) {
        let event = support::within(live.next()).await.unwrap();
        assert_eq!(event.get_data(), Some(&*format!("during {i}")));
    }
    // The lobby's first event was among the oldest: resuming from before it is a reset.
    let (epoch, _) = lobby.as_str().split_once('-').unwrap();
    let mut resumed = hub.subscribe(
        "lobby",
        tower_push::cursor::StartAt::parse(Some(&format!("{epoch}-0"))).unwrap(),
    );
    let first = support::within(resumed.next()).await.unwrap();
    assert_eq!(first.get_event(), Some(RESET_EVENT));
    assert!(first.get_data().unwrap().contains("expired"), "{first:?}");
    // The newest events of the flood all resume.
    let newest = hub.topic_stats("flood.999").unwrap();
    assert!(newest.history >= 1, "{newest:?}");
    // One event larger than the whole history is refused, typed; the hub goes on.
    let error = hub
        .publish("lobby", Event::new().data("x".repeat(CAP)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, MemoryHubError::EventTooLarge { .. }),
        "{error}"
    );
    hub.publish("lobby", Event::new().data("after"))
        .await
        .unwrap();
}
