#![cfg(all(
    feature = "drain",
    feature = "limit",
    feature = "negotiate",
    feature = "hub",
    feature = "ws"
))]
//! Graceful drain and connection limits against a real server, on every transport.

mod support;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::StatusCode;
use http_body_util::Empty;
use serde_json::Value;
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite;
use tower::ServiceBuilder;
use tower_push::{
    drain::Drain,
    hub::{MemoryHub, Subscribe},
    limit::ConnectionLimitLayer,
    negotiate::NegotiateLayer,
    Event,
};

#[tokio::test]
async fn drain_ends_every_transport_with_its_signal_then_refuses_new_requests() {
    let hub = MemoryHub::new();
    let drain = Drain::new();
    let addr = serve(
        ServiceBuilder::new()
            .layer(NegotiateLayer::new())
            .layer(drain.layer())
            .service(Subscribe::new(hub.clone(), "room")),
    )
    .await;
    let client = h1();

    let (_, mut sse) = open_sse(&client, sse_request(addr, "/", None)).await;
    let (mut ws, _) = within(tokio_tungstenite::connect_async(format!("ws://{addr}/")))
        .await
        .unwrap();
    within(ws.next()).await.unwrap().unwrap(); // position
    let cursor = hub
        .publish_now("room", Event::new().data("before"))
        .unwrap();
    assert_eq!(next_event(&mut sse).await.data, "before");
    let poll = tokio::spawn({
        let client = client.clone();
        let path = format!("/?lastEventId={cursor}");
        async move {
            let res = within(client.request(get(addr, &path).body(Empty::<Bytes>::new()).unwrap()))
                .await
                .unwrap();
            (res.status(), body_bytes(res).await)
        }
    });
    within(async {
        while drain.open() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    let still_open = within(drain.shutdown(Duration::from_secs(5))).await;
    assert_eq!(still_open, 0, "every stream closed within the grace period");

    // SSE: the body ends.
    assert!(within(sse.next()).await.is_none(), "the SSE stream ended");
    // WebSocket: Close 1012 (service restart).
    let code = loop {
        match within(ws.next()).await {
            Some(Ok(tungstenite::Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => {}
            other => panic!("expected a Close, got {other:?}"),
        }
    };
    assert_eq!(code, 1012);
    // Long-poll: answered at once with its cursor.
    let (status, body) = within(poll).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let batch: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(batch["events"], serde_json::json!([]));
    assert_eq!(batch["cursor"], cursor.as_str());

    // New requests: 503 with Retry-After.
    let res = within(client.request(sse_request(addr, "/", None)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
}

#[tokio::test]
async fn connection_limit_holds_for_the_life_of_each_stream() {
    let hub = MemoryHub::new();
    let limit = ConnectionLimitLayer::new(2);
    let addr = serve(
        ServiceBuilder::new()
            .layer(NegotiateLayer::new())
            .layer(limit.clone())
            .service(Subscribe::new(hub.clone(), "room")),
    )
    .await;

    let first = h1();
    let (_, sse_one) = open_sse(&first, sse_request(addr, "/", None)).await;
    let (_ws, _) = within(tokio_tungstenite::connect_async(format!("ws://{addr}/")))
        .await
        .unwrap();
    assert_eq!(
        limit.available(),
        0,
        "both streams hold a place after their responses"
    );

    let other = h1();
    let res = within(other.request(sse_request(addr, "/", None)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let res = within(other.request(get(addr, "/").body(Empty::<Bytes>::new()).unwrap()))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "long-poll too"
    );
    let refused = within(tokio_tungstenite::connect_async(format!("ws://{addr}/"))).await;
    assert!(refused.is_err(), "refused before the upgrade");

    // The SSE client goes away: its place is freed.
    drop(sse_one);
    drop(first);
    within(async {
        while limit.available() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let res = within(other.request(sse_request(addr, "/", None)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
