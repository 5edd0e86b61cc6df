#![cfg(all(feature = "auth-ticket", feature = "long-poll"))]
//! Nothing the crate logs contains a ticket, at any level. Alone in its test binary: a
//! global subscriber sees every callsite (tests running beside it could otherwise cache a
//! callsite as uninteresting before the subscriber is set).

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use std::convert::Infallible;
use support::*;
use tower::{service_fn, ServiceBuilder};
use tower_push::{
    auth_ticket::{AuthTicketLayer, Binding, Key, Tickets},
    long_poll::LongPollLayer,
    Event,
};

#[tokio::test]
async fn tracing_output_never_contains_a_ticket() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let c = capture.clone();
            move || c.clone()
        })
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let tickets = Tickets::new(Key::new(1, b"test secret, test secret, test!!"));
    let addr = serve(
        ServiceBuilder::new()
            .layer(AuthTicketLayer::new(tickets.clone()))
            .layer(LongPollLayer::new())
            .service(service_fn(|req: Request<Incoming>| async move {
                // What a TraceLayer inside the ticket layer would record.
                tracing::info!(uri = %req.uri(), "inner service saw request");
                let event = Event::new().id("1").unwrap().data("x");
                Ok::<_, Infallible>(tokio_stream::iter([event]))
            })),
    )
    .await;
    let status = |t: String| async move {
        let req = get(addr, &format!("/events?ticket={t}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        within(h1().request(req)).await.unwrap().status()
    };
    let ok = tickets
        .mint("alice", &Binding::new())
        .unwrap()
        .into_string();
    assert_eq!(status(ok.clone()).await, StatusCode::OK);
    assert_eq!(status(ok.clone()).await, StatusCode::UNAUTHORIZED);
    let bad = format!(
        "{}x",
        tickets.mint("alice", &Binding::new()).unwrap().as_str()
    );
    assert_eq!(status(bad.clone()).await, StatusCode::UNAUTHORIZED);

    let logs = capture.text();
    assert!(
        logs.contains("auth ticket refused"),
        "the refusals were logged"
    );
    assert!(
        logs.contains("inner service saw request") && logs.contains("uri=/events"),
        "the inner service's trace is there"
    );
    // No part of a ticket: every 12-character window of each (its nonce, its principal
    // field, its signature) is absent.
    for t in [ok, bad] {
        for window in t.as_bytes().windows(12) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(
                !logs.contains(window),
                "part of a ticket ({window}) leaked into the logs"
            );
        }
    }
}
