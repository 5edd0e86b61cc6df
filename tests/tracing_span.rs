#![cfg(all(feature = "sse", feature = "hub", feature = "auth-ticket"))]
//! A push connection's story in `tracing`: one span with transport, principal and topic, one
//! open and one close event with the reason and counts, and never the ticket. Alone in its
//! test binary: the subscriber is global.

mod support;

use support::*;
use tower::ServiceBuilder;
use tower_push::{
    auth_ticket::{AuthTicketLayer, Binding, Key, Tickets},
    hub::{MemoryHub, Subscribe, Topics},
    sse::SseLayer,
    Event,
};

#[tokio::test]
async fn one_span_one_open_one_close_with_reason_and_counts_and_no_ticket() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let c = capture.clone();
            move || c.clone()
        })
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let tickets = Tickets::new(Key::new(1, b"tracing test secret, 32 bytes!!!"));
    let hub = MemoryHub::new();
    let addr = serve(
        ServiceBuilder::new()
            .layer(AuthTicketLayer::new(tickets.clone()))
            .layer(SseLayer::new())
            .service(Subscribe::new(hub.clone(), "room")),
    )
    .await;
    let ticket = tickets
        .mint("alice", &Binding::new())
        .unwrap()
        .into_string();
    let client = h1();
    let (_, mut events) = open_sse(
        &client,
        sse_request(addr, &format!("/?ticket={ticket}"), None),
    )
    .await;
    for i in 0..3 {
        hub.publish_now("room", Event::new().data(format!("event {i}")))
            .unwrap();
    }
    let mut got = 0;
    while got < 3 {
        if !next_event(&mut events).await.data.is_empty() {
            got += 1;
        }
    }
    drop(events);
    drop(client);
    let logs = within(async {
        loop {
            let logs = capture.text();
            if logs.contains("push connection closed") {
                return logs;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;

    let opened: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("push connection opened"))
        .collect();
    let closed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("push connection closed"))
        .collect();
    assert_eq!(opened.len(), 1, "{logs}");
    assert_eq!(closed.len(), 1, "{logs}");
    for line in [opened[0], closed[0]] {
        assert!(
            line.contains("push_connection{transport=\"sse\" http_version=\"1.1\" principal=\"alice\" topic=\"room\"}"),
            "the span names the connection: {line}"
        );
    }
    let closed = closed[0];
    assert!(closed.contains("reason=\"client_gone\""), "{closed}");
    assert!(closed.contains("events=3"), "{closed}");
    assert!(closed.contains("bytes="), "{closed}");
    assert!(closed.contains("duration_ms="), "{closed}");
    // Nothing of the ticket, anywhere.
    for window in ticket.as_bytes().windows(12) {
        let window = std::str::from_utf8(window).unwrap();
        assert!(
            !logs.contains(window),
            "part of the ticket ({window}) is in the logs"
        );
    }

    // A multi-topic connection's span names all its topics.
    let topics = serve(
        ServiceBuilder::new()
            .layer(SseLayer::new())
            .service(Topics::new(hub.clone())),
    )
    .await;
    let (_, events) = open_sse(&h1(), sse_request(topics, "/?topic=a&topic=b", None)).await;
    drop(events);
    let logs = within(async {
        loop {
            let logs = capture.text();
            if logs.matches("push connection closed").count() == 2 {
                return logs;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        logs.lines()
            .filter(|l| l.contains("push connection closed"))
            .any(|l| l.contains("topic=\"a,b\"")),
        "{logs}"
    );
}
