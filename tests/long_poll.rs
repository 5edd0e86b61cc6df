#![cfg(all(feature = "long-poll", feature = "negotiate", feature = "hub"))]
//! Long polling and the negotiating endpoint against a real server and a real HTTP client.

mod support;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Empty;
use serde::Deserialize;
use std::{net::SocketAddr, time::Duration};
use support::*;
use tower_push::{
    hub::{MemoryHub, Subscribe},
    long_poll::LongPollLayer,
    negotiate::Negotiate,
    Event,
};

#[derive(Debug, Deserialize)]
struct Batch {
    events: Vec<Polled>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Polled {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

async fn app_with(hub: &MemoryHub, long_poll: LongPollLayer) -> SocketAddr {
    serve(Negotiate::new(Subscribe::new(hub.clone(), "room")).long_poll(long_poll)).await
}

async fn app(hub: &MemoryHub) -> SocketAddr {
    app_with(hub, LongPollLayer::new()).await
}

async fn poll(client: &HttpClient, addr: SocketAddr, cursor: Option<&str>) -> Batch {
    let path = match cursor {
        Some(c) => format!("/events?lastEventId={c}"),
        None => "/events".to_owned(),
    };
    let res = within(client.request(get(addr, &path).body(Empty::<Bytes>::new()).unwrap()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "no-store");
    serde_json::from_value(support::long_poll_answer(&body_bytes(res).await)).unwrap()
}

/// Waits (bounded) until the room has at least `n` subscribers: the polls are being held.
async fn wait_for_subscribers(hub: &MemoryHub, n: usize) {
    within(async {
        while hub.topic_stats("room").map_or(0, |s| s.subscribers) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

fn msg(text: &str) -> Event {
    Event::new().event("msg").unwrap().data(text)
}

#[tokio::test]
async fn first_poll_without_cursor_answers_at_once_with_the_current_cursor() {
    let hub = MemoryHub::new();
    let last = hub.publish_now("room", msg("before")).unwrap();
    // The default hold is 25 s; `poll` bounds the wait to 10 s, so this proves no hold.
    let batch = poll(&h1(), app(&hub).await, None).await;
    assert!(batch.events.is_empty());
    assert_eq!(batch.cursor.as_deref(), Some(last.as_str()));
}

#[tokio::test]
async fn next_poll_holds_until_an_event_is_published() {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let client = h1();
    let cursor = poll(&client, addr, None).await.cursor.unwrap();

    let held = tokio::spawn({
        let client = client.clone();
        async move { poll(&client, addr, Some(&cursor)).await }
    });
    // Wait until the poll is subscribed, then check it is still held.
    wait_for_subscribers(&hub, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !held.is_finished(),
        "the poll is held while there is nothing to send"
    );

    let id = hub.publish_now("room", msg("hello")).unwrap();
    let batch = within(held).await.unwrap();
    assert_eq!(
        batch.events,
        vec![Polled {
            id: Some(id.to_string()),
            event: Some("msg".into()),
            data: Some("hello".into())
        }]
    );
    assert_eq!(batch.cursor.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn hold_timeout_answers_an_empty_batch_with_the_same_cursor() {
    let hub = MemoryHub::new();
    let addr = app_with(
        &hub,
        LongPollLayer::new().timeout(Duration::from_millis(200)),
    )
    .await;
    let client = h1();
    let cursor = poll(&client, addr, None).await.cursor.unwrap();
    let started = tokio::time::Instant::now();
    let batch = poll(&client, addr, Some(&cursor)).await;
    // The poll was held for the configured time (it cannot answer early without an event).
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "answered after {:?}, before the 200 ms hold",
        started.elapsed()
    );
    assert!(batch.events.is_empty());
    assert_eq!(batch.cursor.as_deref(), Some(cursor.as_str()));
}

/// The hold timeout by its effect: an event published while the poll is held (after 100 ms
/// of a 2 s hold) is answered at once, and a poll held without events answers at the timeout.
#[tokio::test]
async fn a_held_poll_answers_the_first_event_published_while_it_waits() {
    let hub = MemoryHub::new();
    let addr = app_with(&hub, LongPollLayer::new().timeout(Duration::from_secs(2))).await;
    let client = h1();
    let cursor = poll(&client, addr, None).await.cursor.unwrap();
    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            hub.publish_now("room", msg("while held")).unwrap()
        })
    };
    let batch = poll(&client, addr, Some(&cursor)).await;
    let published = publisher.await.unwrap();
    assert_eq!(
        batch.events.len(),
        1,
        "held until the event came: {batch:?}"
    );
    assert_eq!(batch.events[0].data.as_deref(), Some("while held"));
    assert_eq!(batch.cursor.as_deref(), Some(published.as_str()));
}

#[tokio::test]
async fn batch_caps_are_honoured_and_nothing_is_dropped() {
    let hub = MemoryHub::new();
    let start = hub.publish_now("room", msg("start")).unwrap();
    for i in 0..10 {
        hub.publish_now("room", msg(&format!("{i:03}"))).unwrap();
    }
    let client = h1();

    // Count cap: 3 per answer; following the cursor yields all 10, in order.
    let addr = app_with(&hub, LongPollLayer::new().max_events(3)).await;
    let mut cursor = start.to_string();
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let batch = poll(&client, addr, Some(&cursor)).await;
        assert!(
            !batch.events.is_empty() && batch.events.len() <= 3,
            "{batch:?}"
        );
        seen.extend(batch.events.iter().map(|e| e.data.clone().unwrap()));
        cursor = batch.cursor.unwrap();
    }
    assert_eq!(seen, (0..10).map(|i| format!("{i:03}")).collect::<Vec<_>>());

    // Byte cap: a cap of one event's JSON plus one byte answers 2 (the event that crosses
    // the cap is included, never dropped).
    let one = msg("000").id(start.as_str()).unwrap().to_json().len();
    let addr = app_with(&hub, LongPollLayer::new().max_bytes(one + 1)).await;
    let batch = poll(&client, addr, Some(start.as_str())).await;
    assert_eq!(batch.events.len(), 2, "{batch:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_publishing_is_delivered_gap_free_and_duplicate_free() {
    const TOTAL: usize = 2_000;
    let hub = MemoryHub::builder().history(TOTAL + 10).build();
    let addr = app(&hub).await;
    let client = h1();
    let mut cursor = poll(&client, addr, None).await.cursor.unwrap();

    let publisher = tokio::spawn({
        let hub = hub.clone();
        async move {
            for i in 0..TOTAL {
                hub.publish_now("room", msg(&i.to_string())).unwrap();
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    });

    let mut seen = Vec::new();
    let mut polls = 0;
    within(async {
        while seen.len() < TOTAL {
            let batch = poll(&client, addr, Some(&cursor)).await;
            seen.extend(batch.events.into_iter().map(|e| e.data.unwrap()));
            cursor = batch.cursor.unwrap();
            polls += 1;
        }
    })
    .await;
    within(publisher).await.unwrap();
    assert_eq!(seen, (0..TOTAL).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(polls > 1, "publishing spanned several polls ({polls})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_pollers_each_get_the_event_exactly_once() {
    const POLLERS: usize = 1_000;
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let client = h1();
    let cursor = poll(&client, addr, None).await.cursor.unwrap();

    let pollers: Vec<_> = (0..POLLERS)
        .map(|_| {
            let client = client.clone();
            let cursor = cursor.clone();
            tokio::spawn(async move { poll(&client, addr, Some(&cursor)).await })
        })
        .collect();
    wait_for_subscribers(&hub, POLLERS).await;
    let id = hub.publish_now("room", msg("to everyone")).unwrap();
    for poller in pollers {
        let batch = within(poller).await.unwrap();
        assert_eq!(batch.events.len(), 1, "{batch:?}");
        assert_eq!(batch.events[0].id.as_deref(), Some(id.as_str()));
        assert_eq!(batch.cursor.as_deref(), Some(id.as_str()));
    }
}

#[tokio::test]
async fn a_client_that_goes_away_drops_the_stream() {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let cursor = poll(&h1(), addr, None).await.cursor.unwrap();
    let client = h1();
    let held = tokio::spawn(async move { poll(&client, addr, Some(&cursor)).await });
    let subscribers = || hub.topic_stats("room").map_or(0, |s| s.subscribers);
    within(async {
        while subscribers() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    held.abort(); // drops the client and its connection
    within(async {
        while subscribers() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn negotiation_serves_sse_and_long_poll_on_one_route_with_the_same_ids() {
    let hub = MemoryHub::new();
    let start = hub.publish_now("room", msg("start")).unwrap();
    let ids: Vec<_> = (0..3)
        .map(|i| hub.publish_now("room", msg(&format!("n{i}"))).unwrap())
        .collect();
    let addr = app(&hub).await;
    let client = h1();

    // SSE from `start`.
    let (parts, mut events) =
        open_sse(&client, sse_request(addr, "/events", Some(start.as_str()))).await;
    assert_eq!(parts.headers["content-type"], "text/event-stream");
    let mut sse_ids = Vec::new();
    for _ in 0..3 {
        sse_ids.push(next_event(&mut events).await.id);
    }
    // Long-poll from `start`.
    let batch = poll(&client, addr, Some(start.as_str())).await;
    let poll_ids: Vec<_> = batch.events.iter().map(|e| e.id.clone().unwrap()).collect();
    let expected: Vec<_> = ids.iter().map(|c| c.to_string()).collect();
    assert_eq!(sse_ids, expected);
    assert_eq!(poll_ids, expected);

    // A cursor from SSE resumes on long-poll, and one from long-poll resumes on SSE.
    let more = hub.publish_now("room", msg("n3")).unwrap();
    let batch = poll(&client, addr, Some(&sse_ids[2])).await;
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.events[0].id.as_deref(), Some(more.as_str()));
    let (_, mut events) = open_sse(
        &client,
        sse_request(addr, "/events", batch.cursor.as_deref()),
    )
    .await;
    let last = hub.publish_now("room", msg("n4")).unwrap();
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.id.as_str(), event.data.as_str()),
        (last.as_str(), "n4"),
        "no duplicate of n3"
    );
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    for method in [http::Method::POST, http::Method::PUT, http::Method::DELETE] {
        let req = http::Request::builder()
            .method(method.clone())
            .uri(format!("http://{addr}/events"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = within(h1().request(req)).await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(res.headers()["allow"], "GET");
    }
}

#[tokio::test]
async fn long_poll_works_over_http2() {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let client = h2();
    let cursor = poll(&client, addr, None).await.cursor.unwrap();
    let held = tokio::spawn({
        let client = client.clone();
        async move { poll(&client, addr, Some(&cursor)).await }
    });
    wait_for_subscribers(&hub, 1).await;
    hub.publish_now("room", msg("over h2")).unwrap();
    let batch = within(held).await.unwrap();
    assert_eq!(batch.events[0].data.as_deref(), Some("over h2"));
}

fn datas(batch: &Batch) -> Vec<&str> {
    batch
        .events
        .iter()
        .map(|e| e.data.as_deref().unwrap_or_default())
        .collect()
}

/// Holds a poll after `cursor` on `addr`, waits until it is held, then publishes `first`.
async fn held_poll_then(
    hub: &MemoryHub,
    addr: SocketAddr,
    first: &str,
) -> tokio::task::JoinHandle<Batch> {
    let cursor = hub.publish_now("room", msg("before")).unwrap();
    let held = tokio::spawn(async move { poll(&h1(), addr, Some(cursor.as_str())).await });
    wait_for_subscribers(hub, 1).await;
    hub.publish_now("room", msg(first)).unwrap();
    held
}

#[tokio::test]
async fn a_linger_waits_for_the_events_that_follow_the_first() {
    let hub = MemoryHub::new();
    let linger = LongPollLayer::new().linger(Duration::from_secs(1));
    let held = held_poll_then(&hub, app_with(&hub, linger).await, "a").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the answer waits out the linger");
    hub.publish_now("room", msg("b")).unwrap();
    let batch = within(held).await.unwrap();
    assert_eq!(datas(&batch), ["a", "b"]);

    // Without a linger, the first event is answered alone.
    let hub = MemoryHub::new();
    let held = held_poll_then(&hub, app(&hub).await, "a").await;
    let batch = within(held).await.unwrap();
    assert_eq!(datas(&batch), ["a"]);
}

#[tokio::test]
async fn a_full_batch_or_the_hold_timeout_ends_a_linger() {
    // A 30 s linger: `within` (10 s) proves that neither answer waited for it.
    let hub = MemoryHub::new();
    let full = LongPollLayer::new()
        .linger(Duration::from_secs(30))
        .max_events(2);
    let held = held_poll_then(&hub, app_with(&hub, full).await, "a").await;
    hub.publish_now("room", msg("b")).unwrap();
    let batch = within(held).await.unwrap();
    assert_eq!(datas(&batch), ["a", "b"]);

    let hub = MemoryHub::new();
    let short_hold = LongPollLayer::new()
        .linger(Duration::from_secs(30))
        .timeout(Duration::from_millis(500));
    let held = held_poll_then(&hub, app_with(&hub, short_hold).await, "a").await;
    let batch = within(held).await.unwrap();
    assert_eq!(datas(&batch), ["a"]);
}
