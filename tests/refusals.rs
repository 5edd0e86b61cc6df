#![cfg(all(
    feature = "negotiate",
    feature = "hub",
    feature = "ws",
    feature = "origin"
))]
//! Malformed or unusual requests get a clear 4xx from a real server, never a 500 or a stream.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use std::net::SocketAddr;
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::ServiceBuilder;
use tower_push::{
    hub::{MemoryHub, Subscribe},
    negotiate::NegotiateLayer,
    origin::OriginLayer,
};

const ALLOWED: &str = "https://chat.example";

async fn app() -> SocketAddr {
    serve(
        ServiceBuilder::new()
            .layer(OriginLayer::new([ALLOWED]))
            .layer(NegotiateLayer::new())
            .service(Subscribe::new(MemoryHub::new(), "room")),
    )
    .await
}

/// Sends `head` on a raw socket and returns the status line of the answer.
async fn raw_status(addr: SocketAddr, head: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    within(async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn an_http_1_0_upgrade_is_a_400_not_a_500() {
    let addr = app().await;
    let status = raw_status(
        addr,
        "GET / HTTP/1.0\r\nhost: test\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(status.contains(" 400 "), "{status}");
    // The same request over HTTP/1.1 is upgraded.
    let status = raw_status(
        addr,
        "GET / HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(status.contains(" 101 "), "{status}");
}

#[tokio::test]
async fn a_second_origin_that_differs_is_refused() {
    let addr = app().await;
    let client = h1();
    let status = |origins: &'static [&'static str]| {
        let client = client.clone();
        async move {
            let mut req = Request::get(format!("http://{addr}/"));
            for origin in origins {
                req = req.header("origin", *origin);
            }
            within(client.request(req.body(Empty::<Bytes>::new()).unwrap()))
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(&[ALLOWED]).await, StatusCode::OK);
    assert_eq!(
        status(&[ALLOWED, "https://evil.example"]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&["https://evil.example", ALLOWED]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status(&[ALLOWED, ALLOWED]).await, StatusCode::OK);
}

#[tokio::test]
async fn accept_q_values_are_honoured() {
    let addr = app().await;
    let client = h1();
    let answer = |accept: &'static str| {
        let client = client.clone();
        async move {
            let req = get(addr, "/")
                .header("accept", accept)
                .body(Empty::<Bytes>::new())
                .unwrap();
            let res = within(client.request(req)).await.unwrap();
            let kind = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (res.status(), kind)
        }
    };
    assert_eq!(
        answer("text/event-stream;q=0, application/json").await,
        (StatusCode::OK, Some("application/json".into())),
        "q=0 means not acceptable: long-poll, not SSE"
    );
    assert_eq!(
        answer("text/event-stream;q=0").await.0,
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(answer("text/html").await.0, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        answer("text/event-stream;q=0.5").await,
        (StatusCode::OK, Some("text/event-stream".into()))
    );
}

#[tokio::test]
async fn extended_connect_with_another_protocol_is_a_400() {
    let addr = app().await;
    let mut sender = h2_connection(addr).await;
    for (protocol, expected) in [
        ("webtransport", StatusCode::BAD_REQUEST),
        ("connect-udp", StatusCode::BAD_REQUEST),
        ("websocket", StatusCode::OK),
    ] {
        let mut req = Request::connect(format!("http://{addr}/"))
            .header("sec-websocket-version", "13")
            .body(Empty::<Bytes>::new())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from(protocol));
        let res = within(sender.send_request(req)).await.unwrap();
        assert_eq!(res.status(), expected, "{protocol}");
    }
}

/// A `Last-Event-ID` that is not a cursor at all is refused at the edge with `400`, on every
/// transport, before any hub sees it; a well-formed cursor of another instance still gets a
/// stream that starts with `reset`.
#[tokio::test]
async fn a_cursor_that_is_not_a_cursor_is_a_400_on_every_transport() {
    let addr = app().await;
    let client = h1();
    for transport in ALL_TRANSPORTS {
        assert_eq!(
            status(transport, addr, "/?lastEventId=not%20a%20cursor").await,
            StatusCode::BAD_REQUEST,
            "{transport:?}"
        );
    }
    let req = Request::get(format!("http://{addr}/?lastEventId=Zz9Yy8-1"))
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (parts, mut events) = open_sse(&client, req).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(next_event(&mut events).await.event, "reset");
}
