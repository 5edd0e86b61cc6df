#![cfg(all(
    feature = "ws",
    feature = "hub",
    feature = "heartbeat",
    feature = "origin"
))]
//! The WebSocket transport against a real server and real WebSocket clients
//! (tokio-tungstenite over HTTP/1.1, and over HTTP/2 extended CONNECT via hyper's client).

mod support;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use serde_json::Value;
use std::{convert::Infallible, net::SocketAddr, time::Duration};
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::{
    self, client::IntoClientRequest as _, protocol::frame::coding::CloseCode,
};
use tower::{service_fn, ServiceBuilder};
use tower_push::{
    cursor::LastEventId,
    heartbeat::HeartbeatLayer,
    hub::{Hub, MemoryHub},
    negotiate::NegotiateLayer,
    origin::OriginLayer,
    ws::{Inbound, Message, WsLayer},
    Event,
};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The chat-like inner service: inbound text is published to the room; the room is the
/// outbound stream, resumed from the client's cursor.
fn room(
    hub: MemoryHub,
) -> impl tower::Service<
    Request<Incoming>,
    Response = tower_push::hub::MemorySubscription,
    Error = tower_push::Reject,
    Future: Send,
> + Clone
       + Send
       + 'static {
    service_fn(move |req: Request<Incoming>| {
        let hub = hub.clone();
        async move {
            if let Some(inbound) = req.extensions().get::<Inbound>().cloned() {
                let hub = hub.clone();
                tokio::spawn(async move {
                    while let Some(message) = inbound.recv().await {
                        let data = match message {
                            Message::Text(text) => text,
                            Message::Binary(data) => format!("{} bytes", data.len()),
                        };
                        hub.publish_now("room", Event::new().event("message").unwrap().data(data))
                            .unwrap();
                    }
                });
            }
            let from = req
                .extensions()
                .get::<LastEventId>()
                .map(|c| c.as_str().to_owned());
            let from = tower_push::cursor::StartAt::parse(from.as_deref())?;
            Ok::<_, tower_push::Reject>(hub.subscribe("room", from))
        }
    })
}

async fn app(hub: &MemoryHub, ws: WsLayer, heartbeat: Duration) -> SocketAddr {
    serve(
        ServiceBuilder::new()
            .layer(OriginLayer::new(["http://allowed.example"]))
            .layer(ws)
            .layer(HeartbeatLayer::new(heartbeat))
            .service(room(hub.clone())),
    )
    .await
}

async fn default_app(hub: &MemoryHub) -> SocketAddr {
    app(
        hub,
        WsLayer::new().protocols(["chat.v2", "chat.v1"]),
        Duration::from_secs(30),
    )
    .await
}

async fn connect(addr: SocketAddr, path: &str) -> Client {
    within(tokio_tungstenite::connect_async(format!(
        "ws://{addr}{path}"
    )))
    .await
    .unwrap()
    .0
}

/// The next data frame as JSON (Pings and Pongs are skipped).
async fn next_json(ws: &mut Client) -> Value {
    loop {
        match within(ws.next())
            .await
            .expect("connection open")
            .expect("frame")
        {
            tungstenite::Message::Text(text) => {
                return serde_json::from_str(text.as_str()).unwrap()
            }
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until a Close frame; returns its code.
async fn close_code(ws: &mut Client) -> u16 {
    loop {
        match within(ws.next()).await {
            Some(Ok(tungstenite::Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(tungstenite::Message::Close(None))) => return 1005,
            Some(Ok(_)) => {}
            other => panic!("expected a Close frame, got {other:?}"),
        }
    }
}

/// A raw HTTP/1.1 upgrade request, for checking handshake answers header by header.
fn upgrade_request(addr: SocketAddr) -> http::request::Builder {
    Request::get(format!("http://{addr}/ws"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

async fn send_raw(req: http::request::Builder) -> http::Response<Incoming> {
    within(h1().request(req.body(Empty::<Bytes>::new()).unwrap()))
        .await
        .unwrap()
}

#[tokio::test]
async fn outbound_events_and_inbound_messages() {
    let hub = MemoryHub::new();
    let addr = default_app(&hub).await;
    let mut ws = connect(addr, "/ws").await;

    let position = next_json(&mut ws).await;
    assert!(
        position["id"].is_string() && position.get("data").is_none(),
        "{position}"
    );

    // Published after the client saw the connection open: always delivered.
    let id = hub
        .publish_now(
            "room",
            Event::new().event("news").unwrap().data("line 1\nline 2"),
        )
        .unwrap();
    let event = next_json(&mut ws).await;
    assert_eq!(
        event,
        serde_json::json!({"id": id.as_str(), "event": "news", "data": "line 1\nline 2"})
    );

    // Inbound: the app publishes what the client says; it comes back as an event.
    ws.send(tungstenite::Message::Text("hello from the client".into()))
        .await
        .unwrap();
    let echoed = next_json(&mut ws).await;
    assert_eq!(echoed["event"], "message");
    assert_eq!(echoed["data"], "hello from the client");
    ws.send(tungstenite::Message::Binary(Bytes::from_static(&[1, 2, 3])))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["data"], "3 bytes");
}

/// The codec's read buffer is small (1 KiB by default, for memory per connection): messages
/// far larger than it, whole or fragmented, still arrive intact.
#[tokio::test]
async fn messages_larger_than_the_read_buffer_arrive_whole() {
    let hub = MemoryHub::new();
    let addr = default_app(&hub).await;
    let mut ws = connect(addr, "/ws").await;
    next_json(&mut ws).await; // position
    let big: String = (0..60_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    ws.send(tungstenite::Message::Text(big.clone().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["data"], big.as_str());
    // Fragmented: three frames of one message.
    let third = big.len() / 3;
    for (i, part) in [&big[..third], &big[third..2 * third], &big[2 * third..]]
        .into_iter()
        .enumerate()
    {
        let frame = tungstenite::protocol::frame::Frame::message(
            Bytes::copy_from_slice(part.as_bytes()),
            if i == 0 {
                tungstenite::protocol::frame::coding::OpCode::Data(
                    tungstenite::protocol::frame::coding::Data::Text,
                )
            } else {
                tungstenite::protocol::frame::coding::OpCode::Data(
                    tungstenite::protocol::frame::coding::Data::Continue,
                )
            },
            i == 2,
        );
        ws.send(tungstenite::Message::Frame(frame)).await.unwrap();
    }
    assert_eq!(next_json(&mut ws).await["data"], big.as_str());
}

#[tokio::test]
async fn resume_with_a_cursor_in_the_query() {
    let hub = MemoryHub::new();
    let addr = default_app(&hub).await;
    let first = hub.publish_now("room", Event::new().data("one")).unwrap();
    hub.publish_now("room", Event::new().data("two")).unwrap();
    hub.publish_now("room", Event::new().data("three")).unwrap();
    let mut ws = connect(addr, &format!("/ws?lastEventId={first}")).await;
    assert_eq!(next_json(&mut ws).await["id"], first.as_str());
    assert_eq!(next_json(&mut ws).await["data"], "two");
    assert_eq!(next_json(&mut ws).await["data"], "three");
}

#[tokio::test]
async fn subprotocol_is_chosen_by_server_preference_and_never_invented() {
    let hub = MemoryHub::new();
    let addr = default_app(&hub).await;
    let protocol = |res: &http::Response<Incoming>| {
        res.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    let res =
        send_raw(upgrade_request(addr).header("sec-websocket-protocol", "chat.v1, chat.v2")).await;
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        res.headers()["sec-websocket-accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(protocol(&res).as_deref(), Some("chat.v2"));

    let res = send_raw(
        upgrade_request(addr)
            .header("sec-websocket-protocol", "other")
            .header("sec-websocket-protocol", "chat.v1"),
    )
    .await;
    assert_eq!(
        protocol(&res).as_deref(),
        Some("chat.v1"),
        "repeated headers count"
    );

    let res =
        send_raw(upgrade_request(addr).header("sec-websocket-protocol", "other, CHAT.V2")).await;
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(protocol(&res), None, "nothing offered matches: no header");

    // A real client that offers a protocol gets it.
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "chat.v1".parse().unwrap());
    let (_, res) = within(tokio_tungstenite::connect_async(req)).await.unwrap();
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v1");
}

#[tokio::test]
async fn handshake_refusals() {
    let hub = MemoryHub::new();
    let addr = default_app(&hub).await;

    let no_key = Request::get(format!("http://{addr}/ws"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13");
    assert_eq!(send_raw(no_key).await.status(), StatusCode::BAD_REQUEST);

    let v8 = Request::get(format!("http://{addr}/ws"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    let res = send_raw(v8).await;
    assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(res.headers()["sec-websocket-version"], "13");

    let post = upgrade_request(addr).method("POST");
    let res = send_raw(post).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET");

    let plain = Request::get(format!("http://{addr}/ws"));
    assert_eq!(send_raw(plain).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn origin_allowed_denied_and_absent() {
    let hub = MemoryHub::new();
    let addr = default_app(&hub).await;
    let res = send_raw(upgrade_request(addr).header("origin", "http://allowed.example")).await;
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    let res = send_raw(upgrade_request(addr).header("origin", "http://evil.example")).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "refused before any upgrade"
    );
    let res = send_raw(upgrade_request(addr)).await;
    assert_eq!(
        res.status(),
        StatusCode::SWITCHING_PROTOCOLS,
        "absent Origin is allowed by default"
    );

    let strict = serve(
        ServiceBuilder::new()
            .layer(OriginLayer::new(["http://allowed.example"]).allow_missing(false))
            .layer(WsLayer::new())
            .service(room(hub.clone())),
    )
    .await;
    assert_eq!(
        send_raw(upgrade_request(strict)).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let hub = MemoryHub::new();
    let addr = app(
        &hub,
        WsLayer::new().max_message_size(64 * 1024),
        Duration::from_secs(30),
    )
    .await;
    let mut ws = connect(addr, "/ws").await;
    next_json(&mut ws).await;
    let _ = ws
        .send(tungstenite::Message::Text("x".repeat(100 * 1024).into()))
        .await;
    assert_eq!(close_code(&mut ws).await, 1009);

    // A message at the limit passes.
    let mut ws = connect(addr, "/ws").await;
    next_json(&mut ws).await;
    ws.send(tungstenite::Message::Text("y".repeat(60 * 1024).into()))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut ws).await["data"].as_str().unwrap().len(),
        60 * 1024
    );
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    use tungstenite::protocol::frame::{
        coding::{Data, OpCode},
        Frame,
    };
    let hub = MemoryHub::new();
    let addr = default_app(&hub).await;
    let mut ws = connect(addr, "/ws").await;
    next_json(&mut ws).await;
    let frame = Frame::message(
        Bytes::from_static(b"\xff\xfe\xfd"),
        OpCode::Data(Data::Text),
        true,
    );
    ws.send(tungstenite::Message::Frame(frame)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1007);
}

#[tokio::test]
async fn stream_end_closes_with_1000_and_client_pings_are_answered() {
    let addr = serve(tower_push::ws::Ws::new(service_fn(
        |_req: Request<Incoming>| async {
            // Ends after a while, so the client can ping first.
            let events = tokio_stream::iter([Event::new().data("only")]);
            let later = tokio_stream::StreamExt::throttle(
                tokio_stream::iter([Event::new().data("last")]),
                Duration::from_millis(300),
            );
            Ok::<_, Infallible>(tokio_stream::StreamExt::chain(events, later))
        },
    )))
    .await;
    let mut ws = connect(addr, "/").await;
    assert_eq!(next_json(&mut ws).await["data"], "only");
    ws.send(tungstenite::Message::Ping(Bytes::from_static(
        b"are you there",
    )))
    .await
    .unwrap();
    loop {
        match within(ws.next()).await.unwrap().unwrap() {
            tungstenite::Message::Pong(data) => {
                assert_eq!(&data[..], b"are you there");
                break;
            }
            tungstenite::Message::Text(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // "last" may arrive before or after the Pong; then the Close.
    let code = loop {
        match within(ws.next()).await.unwrap().unwrap() {
            tungstenite::Message::Close(Some(frame)) => break u16::from(frame.code),
            tungstenite::Message::Text(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 1000);
    assert_eq!(CloseCode::from(code), CloseCode::Normal);
}

/// A peer that answers every Ping (tungstenite answers while it reads) stays connected long
/// past the pong deadline: every frame it sends clears the deadline.
#[tokio::test]
async fn a_peer_that_answers_pings_outlives_the_pong_deadline() {
    let hub = MemoryHub::new();
    let pong = Duration::from_millis(300);
    let addr = app(
        &hub,
        WsLayer::new().pong_timeout(pong),
        Duration::from_millis(50),
    )
    .await;
    let (mut ws, _) = within(tokio_tungstenite::connect_async(format!("ws://{addr}/ws")))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    while started.elapsed() < pong * 5 {
        match within(ws.next()).await {
            Some(Ok(tungstenite::Message::Ping(_))) => pings += 1,
            Some(Ok(tungstenite::Message::Text(_))) => {}
            other => panic!(
                "the connection ended after {:?}: {other:?}",
                started.elapsed()
            ),
        }
    }
    assert!(pings >= 5, "heartbeat pings arrived: {pings}");
    hub.publish_now("room", Event::new().data("still here"))
        .unwrap();
    let text = loop {
        match within(ws.next()).await.unwrap().unwrap() {
            tungstenite::Message::Text(t) => break t,
            tungstenite::Message::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(text.as_str().contains("still here"), "{text}");
}

/// A peer that never answers Pings is dropped after the deadline, and its stream freed.
#[tokio::test]
async fn missing_pong_closes_the_connection_and_frees_the_stream() {
    let hub = MemoryHub::new();
    let addr = app(
        &hub,
        WsLayer::new().pong_timeout(Duration::from_millis(200)),
        Duration::from_millis(50),
    )
    .await;

    // A raw client: handshake by hand, then never read or write a frame.
    let mut tcp = raw_upgrade_request(addr).await;
    let subscribers = || hub.topic_stats("room").map_or(0, |s| s.subscribers);
    within(async {
        while subscribers() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Drain what the server sends (101, position, pings) until it closes the connection.
    let mut buf = vec![0u8; 4096];
    let mut received = Vec::new();
    within(async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(received.starts_with(b"HTTP/1.1 101"));
    assert!(
        received.windows(2).any(|w| w == [0x89, 0x00]),
        "a Ping frame was sent"
    );
    within(async {
        while subscribers() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// RFC 8441: WebSocket over HTTP/2 extended CONNECT, with hyper's HTTP/2 client.
#[tokio::test]
async fn websocket_over_http2_extended_connect() {
    let hub = MemoryHub::new();
    let addr = default_app(&hub).await;
    let (head, mut ws) = websocket_over_h2(addr, "/ws", Some("chat.v1")).await;
    assert_eq!(head.status, StatusCode::OK, "RFC 8441 answers 200");
    assert!(head.headers.get("sec-websocket-accept").is_none());
    assert_eq!(head.headers["sec-websocket-protocol"], "chat.v1");
    let position = loop {
        if let tungstenite::Message::Text(t) = within(ws.next()).await.unwrap().unwrap() {
            break serde_json::from_str::<Value>(t.as_str()).unwrap();
        }
    };
    assert!(position["id"].is_string());
    ws.send(tungstenite::Message::Text("over h2".into()))
        .await
        .unwrap();
    let echoed = loop {
        if let tungstenite::Message::Text(t) = within(ws.next()).await.unwrap().unwrap() {
            break serde_json::from_str::<Value>(t.as_str()).unwrap();
        }
    };
    assert_eq!(echoed["data"], "over h2");
}

/// The negotiating endpoint serves WebSocket too, with the same ids as the other transports.
#[tokio::test]
async fn negotiate_serves_websocket_sse_and_long_poll_on_one_route() {
    let hub = MemoryHub::new();
    let start = hub.publish_now("room", Event::new().data("start")).unwrap();
    let id = hub
        .publish_now("room", Event::new().data("shared"))
        .unwrap();
    let addr = serve(
        ServiceBuilder::new()
            .layer(NegotiateLayer::new())
            .service(room(hub.clone())),
    )
    .await;

    let mut ws = connect(addr, &format!("/events?lastEventId={start}")).await;
    next_json(&mut ws).await;
    assert_eq!(next_json(&mut ws).await["id"], id.as_str());

    let (_, mut sse) = open_sse(&h1(), sse_request(addr, "/events", Some(start.as_str()))).await;
    assert_eq!(next_event(&mut sse).await.id, id.as_str());

    let res = within(
        h1().request(
            get(addr, &format!("/events?lastEventId={start}"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    let batch = support::long_poll_answer(&body_bytes(res).await);
    assert_eq!(batch["events"][0]["id"], id.as_str());
}

/// A TCP connection that has sent a WebSocket upgrade request for `/ws`.
async fn raw_upgrade_request(addr: SocketAddr) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    tcp
}

/// A raw WebSocket client: the handshake by hand, then nothing (it never answers a Ping).
/// Returns the socket once the `101` head has arrived.
async fn raw_websocket(addr: SocketAddr) -> tokio::net::TcpStream {
    let mut tcp = raw_upgrade_request(addr).await;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        within(tcp.read_exact(&mut byte)).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    tcp
}

/// Reads and discards what the server sends until it closes the connection; returns when.
fn until_closed(
    mut read: tokio::net::tcp::OwnedReadHalf,
) -> tokio::task::JoinHandle<tokio::time::Instant> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return tokio::time::Instant::now(),
                Ok(_) => {}
            }
        }
    })
}

/// A peer that never answers Pings but keeps sending data frames is alive: every inbound
/// frame counts as a sign of life for the pong deadline, so it outlives that deadline
/// many times over.
#[tokio::test]
async fn inbound_data_frames_are_signs_of_life_for_the_pong_deadline() {
    let hub = MemoryHub::new();
    let pong = Duration::from_millis(300);
    let addr = app(
        &hub,
        WsLayer::new().pong_timeout(pong),
        Duration::from_millis(50),
    )
    .await;
    let (read, mut write) = raw_websocket(addr).await.into_split();
    let closed = until_closed(read);
    let started = tokio::time::Instant::now();
    while started.elapsed() < pong * 5 {
        // A masked text frame "hi" (client frames are masked, RFC 6455 section 5.3).
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | 2];
        frame.extend_from_slice(&mask);
        frame.extend(b"hi".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        write.write_all(&frame).await.unwrap();
        tokio::time::sleep(pong / 3).await;
        assert!(
            !closed.is_finished(),
            "closed after {:?} although data frames kept arriving",
            started.elapsed()
        );
    }
    closed.abort();
}

/// A silent peer (no Pong, no frame) is dropped by the pong deadline, and not before it:
/// between the first Ping plus the deadline and a little more, measured from the first Ping
/// (the heartbeat sends one after 100 ms of idleness).
#[tokio::test]
async fn a_silent_peer_is_dropped_at_the_pong_deadline_not_before() {
    let hub = MemoryHub::new();
    let (idle, pong) = (Duration::from_millis(100), Duration::from_millis(800));
    let addr = app(&hub, WsLayer::new().pong_timeout(pong), idle).await;
    let started = tokio::time::Instant::now();
    let (read, _write) = raw_websocket(addr).await.into_split();
    let closed_at = within(until_closed(read)).await.unwrap();
    let after = closed_at - started;
    assert!(
        after >= pong,
        "dropped after {after:?}, before the {pong:?} pong deadline"
    );
    assert!(
        after <= idle * 2 + pong + Duration::from_secs(1),
        "dropped only after {after:?}"
    );
}
