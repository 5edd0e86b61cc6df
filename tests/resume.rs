#![cfg(all(feature = "sse", feature = "hub"))]
//! Resume over SSE against a real server: Last-Event-ID header and query parameter, priming,
//! and `reset` for a cursor from another hub instance.

mod support;

use bytes::Bytes;
use http_body_util::Empty;
use std::{net::SocketAddr, time::Duration};
use support::*;
use tower_push::{
    hub::{MemoryHub, Subscribe},
    sse::Sse,
    Event,
};

async fn app(hub: &MemoryHub) -> SocketAddr {
    serve(Sse::new(Subscribe::new(hub.clone(), "room")).retry(Duration::from_secs(1))).await
}

fn publish(hub: &MemoryHub, range: std::ops::Range<usize>) {
    for i in range {
        hub.publish_now(
            "room",
            Event::new().event("msg").unwrap().data(format!("m{i}")),
        )
        .unwrap();
    }
}

/// Reads `n` dispatched events with the `eventsource-stream` client.
async fn read_n(
    events: &mut (impl futures_util::Stream<Item = SseEvent> + Unpin),
    n: usize,
) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(next_event(events).await);
    }
    out
}

async fn resume_gets_exactly_the_missed_events(by_query: bool) {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let client = h1();

    let (_, mut events) = open_sse(&client, sse_request(addr, "/", None)).await;
    // Subscribed before the response: events published now are all delivered.
    publish(&hub, 0..5);
    let first = read_n(&mut events, 5).await;
    assert_eq!(
        first.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["m0", "m1", "m2", "m3", "m4"]
    );
    let last_id = first[4].id.clone();
    drop(events);

    publish(&hub, 5..15);
    let req = if by_query {
        let path = format!("/?lastEventId={last_id}");
        get(addr, &path)
            .header("accept", "text/event-stream")
            .body(Empty::<Bytes>::new())
            .unwrap()
    } else {
        sse_request(addr, "/", Some(&last_id))
    };
    let (_, mut events) = open_sse(&client, req).await;
    let missed = read_n(&mut events, 10).await;
    let datas: Vec<_> = missed.iter().map(|e| e.data.clone()).collect();
    let expected: Vec<_> = (5..15).map(|i| format!("m{i}")).collect();
    assert_eq!(datas, expected, "exactly the 10 missed events, in order");
    assert!(missed.iter().all(|e| e.event == "msg"));

    publish(&hub, 15..17);
    let live = read_n(&mut events, 2).await;
    assert_eq!(
        (live[0].data.as_str(), live[1].data.as_str()),
        ("m15", "m16")
    );
}

#[tokio::test]
async fn reconnect_with_last_event_id_header_gets_exactly_the_missed_events() {
    resume_gets_exactly_the_missed_events(false).await;
}

#[tokio::test]
async fn reconnect_with_query_parameter_works_like_the_header() {
    resume_gets_exactly_the_missed_events(true).await;
}

#[tokio::test]
async fn reconnect_after_priming_only_loses_nothing() {
    let hub = MemoryHub::new();
    publish(&hub, 0..3); // history the client should never see
    let addr = app(&hub).await;
    let client = h1();

    // A browser that saw no events still learns the cursor from the priming event.
    let mut raw = RawSse::open(&client, sse_request(addr, "/", None)).await;
    let primed = raw.until(|d| !d.last_event_id.is_empty()).await;
    assert!(primed.events.is_empty());
    assert_eq!(primed.retry, Some(1000), "retry comes first");
    drop(raw);

    publish(&hub, 3..6);
    let mut raw = RawSse::open(&client, sse_request(addr, "/", Some(&primed.last_event_id))).await;
    let resumed = raw.until(|d| d.events.len() >= 3).await;
    let datas: Vec<_> = resumed.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(datas, ["m3", "m4", "m5"]);
}

#[tokio::test]
async fn cursor_from_another_hub_instance_gets_reset_first() {
    let old = MemoryHub::new(); // e.g. the process before a restart
    let old_cursor = old.publish_now("room", Event::new().data("gone")).unwrap();
    let hub = MemoryHub::new();
    publish(&hub, 0..2);
    let addr = app(&hub).await;

    let (_, mut events) = open_sse(&h1(), sse_request(addr, "/", Some(old_cursor.as_str()))).await;
    let reset = next_event(&mut events).await;
    assert_eq!(reset.event, "reset");
    let data: serde_json::Value = serde_json::from_str(&reset.data).unwrap();
    assert_eq!(data["reason"], "unknown-epoch");
    assert_eq!(data["cursor"], reset.id.as_str());
    publish(&hub, 2..3);
    assert_eq!(next_event(&mut events).await.data, "m2", "then live events");
}
