#![cfg(all(
    feature = "metrics",
    feature = "negotiate",
    feature = "hub",
    feature = "ws",
    feature = "heartbeat",
    feature = "auth-ticket"
))]
//! The metrics, read from a debugging recorder while real clients use a real server on every
//! transport. Alone in its test binary (the recorder is global), and one test, so the counts
//! are this test's own.

mod support;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::StatusCode;
use http_body_util::Empty;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::{collections::HashMap, net::SocketAddr, time::Duration};
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite;
use tower::ServiceBuilder;
use tower_push::{
    auth_ticket::{AuthTicketLayer, Binding, Key, Tickets},
    heartbeat::HeartbeatLayer,
    hub::{MemoryHub, Subscribe},
    negotiate::NegotiateLayer,
    observe,
    ws::WsLayer,
    Event,
};

/// Every value the recorder saw, accumulated across snapshots (a snapshot resets counters
/// and gauges to zero, so the running sum is the value).
#[derive(Default)]
struct Seen {
    values: HashMap<String, f64>,
    histograms: HashMap<String, Vec<f64>>,
}

impl Seen {
    fn update(&mut self, snapshotter: &Snapshotter) {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            match value {
                DebugValue::Counter(n) => *self.values.entry(name).or_default() += n as f64,
                DebugValue::Gauge(g) => *self.values.entry(name).or_default() += g.into_inner(),
                DebugValue::Histogram(h) => self
                    .histograms
                    .entry(name)
                    .or_default()
                    .extend(h.into_iter().map(|v| v.into_inner())),
            }
        }
    }

    fn get(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or(0.0)
    }
}

/// Polls the recorder until `name` reaches `value` (bounded), returning the last value.
async fn until(seen: &mut Seen, snapshotter: &Snapshotter, name: &str, value: f64) -> f64 {
    for _ in 0..200 {
        seen.update(snapshotter);
        if seen.get(name) == value {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    seen.get(name)
}

fn tickets() -> Tickets {
    Tickets::new(Key::new(1, b"metrics test secret, 32 bytes!!!"))
}

async fn app(hub: &MemoryHub) -> SocketAddr {
    serve(
        ServiceBuilder::new()
            .layer(AuthTicketLayer::new(tickets()))
            .layer(
                NegotiateLayer::new().ws(WsLayer::new().pong_timeout(Duration::from_millis(300))),
            )
            .layer(HeartbeatLayer::new(Duration::from_millis(100)))
            .service(Subscribe::new(hub.clone(), "room")),
    )
    .await
}

fn ticket() -> String {
    tickets()
        .mint("alice", &Binding::new())
        .unwrap()
        .into_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_clients_receive_refusals_pong_timeouts_and_resets() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    observe::describe();
    let mut seen = Seen::default();

    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let client = h1();

    // SSE: the gauge rises, every event and byte the client reads is counted, and the gauge
    // falls when the client goes away.
    let (_, mut sse) = open_sse(
        &client,
        sse_request(addr, &format!("/?ticket={}", ticket()), None),
    )
    .await;
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_connections{transport=sse}",
            1.0
        )
        .await,
        1.0
    );
    for i in 0..5 {
        hub.publish_now("room", Event::new().data(format!("event {i}")))
            .unwrap();
    }
    let mut sse_events = 0;
    while sse_events < 5 {
        if !next_event(&mut sse).await.data.is_empty() {
            sse_events += 1;
        }
    }
    drop(sse);
    drop(client);
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_connections{transport=sse}",
            0.0
        )
        .await,
        0.0
    );
    assert_eq!(
        seen.get("tower_push_events_delivered_total{transport=sse}"),
        5.0
    );
    // The close is counted just before the gauge falls; wait for it too (the snapshot may
    // have caught the gauge's fall first on a busy machine).
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_connections_closed_total{reason=client_gone,transport=sse}",
            1.0
        )
        .await,
        1.0
    );
    let sse_bytes = seen.get("tower_push_bytes_written_total{transport=sse}");
    assert!(
        sse_bytes >= 5.0 * "data: event 0\n\n".len() as f64,
        "{sse_bytes}"
    );
    // One delivery in 8 per connection is sampled, the first included: 1 of 5 here.
    let delays = &seen.histograms["tower_push_publish_to_write_seconds{transport=sse}"];
    assert_eq!(delays.len(), 1);
    assert!(delays.iter().all(|d| *d >= 0.0 && *d < 10.0), "{delays:?}");

    // WebSocket: a client that reads gets every event; one that never answers Pings is
    // dropped and counted as a pong timeout.
    let (mut ws, _) = within(tokio_tungstenite::connect_async(format!(
        "ws://{addr}/?ticket={}",
        ticket()
    )))
    .await
    .unwrap();
    within(ws.next()).await.unwrap().unwrap(); // position
    for i in 0..3 {
        hub.publish_now("room", Event::new().data(format!("ws {i}")))
            .unwrap();
    }
    let mut ws_events = 0;
    while ws_events < 3 {
        if let tungstenite::Message::Text(_) = within(ws.next()).await.unwrap().unwrap() {
            ws_events += 1;
        }
    }
    drop(ws);
    // Counted per connection, added to the shared counters (at the latest) when it closes.
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_events_delivered_total{transport=websocket}",
            3.0
        )
        .await,
        3.0
    );

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    silent
        .write_all(
            format!(
                "GET /?ticket={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                ticket()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    within(async { while silent.read(&mut buf).await.is_ok_and(|n| n > 0) {} }).await;
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_pong_timeouts_total{}",
            1.0
        )
        .await,
        1.0
    );
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_connections_closed_total{reason=pong_timeout,transport=websocket}",
            1.0
        )
        .await,
        1.0
    );
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_connections{transport=websocket}",
            0.0
        )
        .await,
        0.0
    );

    // Long-poll: one poll, answered with the events after its cursor.
    let client = h1();
    let cursor = hub
        .publish_now("room", Event::new().data("before"))
        .unwrap();
    hub.publish_now("room", Event::new().data("poll 1"))
        .unwrap();
    hub.publish_now("room", Event::new().data("poll 2"))
        .unwrap();
    let res = within(
        client.request(
            get(addr, &format!("/?ticket={}&lastEventId={cursor}", ticket()))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = body_bytes(res).await;
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_events_delivered_total{transport=long-poll}",
            2.0
        )
        .await,
        2.0
    );
    assert_eq!(
        seen.get("tower_push_connections_closed_total{reason=answered,transport=long-poll}"),
        1.0
    );
    assert_eq!(
        seen.get("tower_push_bytes_written_total{transport=long-poll}"),
        body.len() as f64,
        "bytes counted are the body's"
    );

    // A request without a valid ticket is a 401 refusal, counted with its cause.
    let res = within(
        client.request(
            get(addr, "/?ticket=forged")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_refusals_total{cause=ticket,status=401}",
            1.0
        )
        .await,
        1.0
    );

    // A cursor from another hub: a reset, counted with its reason.
    let res = within(
        client.request(
            get(addr, &format!("/?ticket={}&lastEventId=Zz9Yy8-1", ticket()))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&body_bytes(res).await).contains("reset"));
    assert_eq!(
        until(
            &mut seen,
            &snapshotter,
            "tower_push_resets_total{reason=unknown-epoch}",
            1.0
        )
        .await,
        1.0
    );
    assert!(seen.get("tower_push_events_published_total{backbone=memory}") >= 11.0);
    assert_eq!(
        seen.get("tower_push_connections_opened_total{transport=sse}"),
        1.0
    );
    assert!(seen.get("tower_push_requests_total{http_version=1.1,transport=sse}") >= 1.0);
}
