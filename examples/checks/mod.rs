//! Test-only checks shared by the framework examples (`axum`, `hyper`, `warp`): each serves
//! `GET /hello`, `POST /ticket` and the push endpoint `/events` on a topic of ticks.

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Method, Request, Response};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{net::SocketAddr, time::Duration};

/// Serves the example's `app` on 127.0.0.1:0 (ticking every 20 ms) and runs
/// [`every_transport`] against it.
pub(crate) async fn serve_and_check<S, ResBody>(
    app: impl FnOnce(
            tower_push::hub::MemoryHub,
            tower_push::auth_ticket::Tickets,
            &[String],
            &tower_push::drain::Drain,
        ) -> S
        + Send
        + 'static,
    hello: &str,
) where
    S: tower::Service<Request<Incoming>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower_push::BoxError>,
    ResBody: http_body::Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<tower_push::BoxError>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(super::common::serve(
        listener,
        Duration::from_millis(20),
        app,
        std::future::pending(),
    ));
    every_transport(addr, hello).await;
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("in time")
}

/// The ordinary route, CORS for `Last-Event-ID`, 401 without a ticket, 403 from a foreign
/// origin, and a tick over SSE, long-poll and WebSocket.
pub(crate) async fn every_transport(addr: SocketAddr, hello: &str) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let call = |method: Method, path: &str, headers: &[(&str, &str)]| {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        client.request(req.body(Empty::new()).unwrap())
    };
    let body =
        |res: Response<Incoming>| async { res.into_body().collect().await.unwrap().to_bytes() };
    let ticket = || async {
        let res = within(call(Method::POST, "/ticket", &[])).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body(res).await).unwrap();
        json["ticket"].as_str().unwrap().to_owned()
    };

    let res = within(call(Method::GET, "/hello", &[])).await.unwrap();
    assert_eq!(&body(res).await[..], hello.as_bytes());
    // CORS preflight for a cross-origin EventSource reconnect.
    let origin = format!("http://{addr}");
    let preflight = [
        ("origin", origin.as_str()),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "last-event-id"),
    ];
    let res = within(call(Method::OPTIONS, "/events", &preflight))
        .await
        .unwrap();
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("last-event-id"), "{allowed}");
    // No ticket: 401. Foreign origin: 403.
    assert_eq!(
        within(call(Method::GET, "/events", &[]))
            .await
            .unwrap()
            .status(),
        401
    );
    let path = format!("/events?ticket={}", ticket().await);
    let res = within(call(
        Method::GET,
        &path,
        &[("origin", "http://evil.example")],
    ))
    .await
    .unwrap();
    assert_eq!(res.status(), 403);

    // SSE: retry first, then a tick.
    let path = format!("/events?ticket={}", ticket().await);
    let res = within(call(Method::GET, &path, &[("accept", "text/event-stream")]))
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut stream = res.into_body();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("event: tick\ndata: tick") {
        let frame = within(stream.frame()).await.unwrap().unwrap();
        seen.extend_from_slice(&frame.into_data().unwrap());
    }
    assert!(seen.starts_with(b"retry: 2000\n\n"));

    // Long-poll: the first poll gives a cursor, the next one a tick.
    let path = format!("/events?ticket={}", ticket().await);
    let first = body(within(call(Method::GET, &path, &[])).await.unwrap()).await;
    let first: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    let path = format!("/events?ticket={}&lastEventId={cursor}", ticket().await);
    let next = body(within(call(Method::GET, &path, &[])).await.unwrap()).await;
    let next: serde_json::Value = serde_json::from_slice(&next).unwrap();
    assert_eq!(next["events"][0]["event"], "tick");

    // WebSocket.
    let url = format!("ws://{addr}/events?ticket={}", ticket().await);
    let (mut ws, _) = within(tokio_tungstenite::connect_async(url)).await.unwrap();
    while !within(ws.next())
        .await
        .unwrap()
        .unwrap()
        .to_text()
        .unwrap()
        .contains("\"event\":\"tick\"")
    {}
}
