#![cfg(feature = "sse")]
//! The SSE transport against a real hyper server and a real SSE client crate.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use std::{convert::Infallible, time::Duration};
use support::*;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt as _;
use tower::service_fn;
use tower_push::{sse::Sse, Event, Reject};

fn sample_events() -> Vec<Event> {
    vec![
        Event::new()
            .id("1")
            .unwrap()
            .event("greeting")
            .unwrap()
            .data("hello"),
        Event::new().id("2").unwrap().data("line one\nline two"),
        Event::new()
            .id("3")
            .unwrap()
            .event("tick")
            .unwrap()
            .retry(Duration::from_millis(2500))
            .data(" leading space"),
    ]
}

/// Serves `sample_events()` and then keeps the stream open.
async fn serve_samples() -> std::net::SocketAddr {
    serve(
        Sse::new(service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(tokio_stream::iter(sample_events()).chain(tokio_stream::pending()))
        }))
        .retry(Duration::from_secs(5)),
    )
    .await
}

async fn receives_fields_intact(client: HttpClient, version: http::Version) {
    let addr = serve_samples().await;
    let (parts, mut events) = open_sse(&client, sse_request(addr, "/", None)).await;
    assert_eq!(parts.version, version);
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "text/event-stream");
    assert_eq!(parts.headers["cache-control"], "no-cache");
    assert_eq!(parts.headers["x-accel-buffering"], "no");
    assert!(parts.headers.get("content-length").is_none());

    let first = next_event(&mut events).await;
    assert_eq!(
        (first.id.as_str(), first.event.as_str(), first.data.as_str()),
        ("1", "greeting", "hello")
    );
    assert_eq!(first.retry, None, "the leading retry block is not an event");
    let second = next_event(&mut events).await;
    assert_eq!(
        (
            second.id.as_str(),
            second.event.as_str(),
            second.data.as_str()
        ),
        ("2", "message", "line one\nline two")
    );
    let third = next_event(&mut events).await;
    assert_eq!(
        (third.id.as_str(), third.event.as_str(), third.data.as_str()),
        ("3", "tick", " leading space")
    );
    assert_eq!(third.retry, Some(Duration::from_millis(2500)));
}

#[tokio::test]
async fn http1_client_receives_id_event_data_and_retry() {
    receives_fields_intact(h1(), http::Version::HTTP_11).await;
}

#[tokio::test]
async fn http2_prior_knowledge_client_receives_id_event_data_and_retry() {
    receives_fields_intact(h2(), http::Version::HTTP_2).await;
}

#[tokio::test]
async fn retry_is_sent_first_on_the_wire() {
    let addr = serve_samples().await;
    let res = within(h1().request(sse_request(addr, "/", None)))
        .await
        .unwrap();
    let mut body = res.into_body();
    let mut seen = Vec::new();
    while !seen.ends_with(b"id: 1\nevent: greeting\ndata: hello\n\n") {
        let frame = within(body.frame()).await.unwrap().unwrap();
        seen.extend_from_slice(&frame.into_data().unwrap());
    }
    assert!(
        seen.starts_with(b"retry: 5000\n\n"),
        "{:?}",
        String::from_utf8_lossy(&seen)
    );
}

#[tokio::test]
async fn headers_arrive_before_any_event_exists() {
    for client in [h1(), h2()] {
        let addr = serve(Sse::new(service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(tokio_stream::pending::<Event>())
        })))
        .await;
        // `within` fails the test if the headers wait for an event that never comes.
        let res = within(client.request(sse_request(addr, "/", None)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
    }
}

#[tokio::test]
async fn inner_service_errors_become_responses() {
    let addr = serve(Sse::new(service_fn(|req: Request<Incoming>| async move {
        match req.uri().path() {
            "/reject" => Err(tower_push::BoxError::from(Reject::new(
                StatusCode::NOT_FOUND,
                "no such topic",
            ))),
            _ => Err("database password is hunter2".into()),
        }
        .map(|()| tokio_stream::empty::<Event>())
    })))
    .await;
    let client = h1();
    let res = within(client.request(sse_request(addr, "/reject", None)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(&body_bytes(res).await[..], b"no such topic\n");

    let res = within(client.request(sse_request(addr, "/boom", None)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = body_bytes(res).await;
    assert!(
        !String::from_utf8_lossy(&body).contains("hunter2"),
        "errors are not shown to clients"
    );
}

#[tokio::test]
async fn an_error_item_ends_the_stream_cleanly() {
    let addr = serve(Sse::new(service_fn(|_req: Request<Incoming>| async {
        let items: Vec<Result<Event, std::io::Error>> = vec![
            Ok(Event::new().id("1").unwrap().data("before")),
            Err(std::io::Error::other("upstream failed")),
            Ok(Event::new().id("2").unwrap().data("never sent")),
        ];
        Ok::<_, Infallible>(tokio_stream::iter(items))
    })))
    .await;
    let res = within(h1().request(sse_request(addr, "/", None)))
        .await
        .unwrap();
    // The body ends without a transport error, after the first event only.
    let body = body_bytes(res).await;
    assert_eq!(&body[..], b"id: 1\ndata: before\n\n");
}

#[tokio::test]
async fn malformed_last_event_id_is_a_400() {
    let addr = serve_samples().await;
    let req = get(addr, "/?lastEventId=%FF")
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = within(h1().request(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        &body_bytes(res).await[..],
        b"lastEventId is not valid UTF-8\n"
    );
}

/// Client disconnect: the server-side stream is dropped within a bounded time, whether the
/// stream is idle or busy, over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn stream_is_dropped_when_the_client_goes_away() {
    for (busy, http2) in [(false, false), (true, false), (false, true), (true, true)] {
        let (dropped_tx, dropped_rx) = mpsc::unbounded_channel::<oneshot::Receiver<()>>();
        let addr = serve(Sse::new(service_fn(move |_req: Request<Incoming>| {
            let dropped_tx = dropped_tx.clone();
            async move {
                let (tx, rx) = oneshot::channel();
                dropped_tx.send(rx).unwrap();
                let guard = DropGuard(Some(tx));
                let first = tokio_stream::iter([Event::new().data("first")]);
                let rest = tokio_stream::StreamExt::throttle(
                    tokio_stream::iter(std::iter::repeat_with(|| Event::new().data("tick"))),
                    Duration::from_millis(if busy { 10 } else { 3_600_000 }),
                );
                Ok::<_, Infallible>(first.chain(rest).map(move |e| {
                    let _keep = &guard;
                    e
                }))
            }
        })))
        .await;
        let client = if http2 { h2() } else { h1() };
        let (_, mut events) = open_sse(&client, sse_request(addr, "/", None)).await;
        assert_eq!(next_event(&mut events).await.data, "first");
        let mut dropped_rx = UnboundedReceiverStream::new(dropped_rx);
        let dropped = dropped_rx.next().await.unwrap();
        drop(events);
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), dropped)
            .await
            .unwrap_or_else(|_| panic!("stream not dropped within 5 s (busy: {busy}, h2: {http2})"))
            .unwrap();
    }
}

/// Encoder conformance: every case round-trips through the WHATWG decoder and through the
/// `eventsource-stream` client crate.
#[tokio::test]
async fn encoder_round_trips_through_whatwg_decoder() {
    let datas = [
        "plain",
        "a\nb",
        "a\rb",
        "a\r\nb",
        "trailing\n",
        "runs\n\n\nof\r\r\rnewlines\r\n\r\n",
        "",
        " leading space",
        "\tleading tab",
        "  two spaces",
        "non-ASCII: é ✓ 日本 🦀",
        "colon: inside",
        ":starts with colon",
        "\n",
    ];
    for data in datas {
        let event = Event::new()
            .id("42")
            .unwrap()
            .event("custom")
            .unwrap()
            .data(data);
        let decoded = support::whatwg::decode(&event.to_sse());
        // Line endings normalize to LF, as the standard defines.
        let expected = data.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(decoded.events.len(), 1, "{data:?}");
        assert_eq!(decoded.events[0].data, expected, "{data:?}");
        assert_eq!(decoded.events[0].event_type, "custom");
        assert_eq!(decoded.events[0].last_event_id, "42");

        // The same bytes through a real client crate.
        use eventsource_stream::Eventsource as _;
        let bytes = event.to_sse();
        let parsed: Vec<_> = tokio_stream::iter([Ok::<_, Infallible>(bytes)])
            .eventsource()
            .collect()
            .await;
        let parsed = parsed
            .into_iter()
            .next()
            .expect("one event")
            .expect("parses");
        assert_eq!(parsed.data, expected, "eventsource-stream, {data:?}");
        assert_eq!(
            (parsed.id.as_str(), parsed.event.as_str()),
            ("42", "custom")
        );
    }

    // An id-only event dispatches nothing but sets the last event id.
    let decoded = support::whatwg::decode(&Event::new().id("c-7").unwrap().to_sse());
    assert!(decoded.events.is_empty());
    assert_eq!(decoded.last_event_id, "c-7");

    // An empty id resets the last event id.
    let mut stream = Event::new().id("9").unwrap().data("x").to_sse().to_vec();
    stream.extend_from_slice(&Event::new().id("").unwrap().data("y").to_sse());
    let decoded = support::whatwg::decode(&stream);
    assert_eq!(decoded.events[1].last_event_id, "");

    // Retry is digits only and sets the reconnection time.
    let retry = Event::new().retry(Duration::from_millis(1234)).to_sse();
    assert_eq!(&retry[..], b"retry: 1234\n\n");
    assert_eq!(support::whatwg::decode(&retry).retry, Some(1234));

    // Comments are seen as comments and dispatch nothing.
    let comment = Event::new().comment("keep-alive").unwrap().to_sse();
    let decoded = support::whatwg::decode(&comment);
    assert!(decoded.events.is_empty());
    assert_eq!(decoded.comments, vec![" keep-alive".to_owned()]);
    let decoded = support::whatwg::decode(b":\n\n");
    assert_eq!(
        decoded.comments,
        vec![String::new()],
        "the SSE heartbeat is a comment"
    );

    // CR/LF injection through event, id or comment is an error, not a new field.
    for bad in ["x\ndata: injected", "x\revent: evil", "x\r\nid: 666"] {
        assert!(Event::new().event(bad).is_err());
        assert!(Event::new().id(bad).is_err());
        assert!(Event::new().comment(bad).is_err());
    }
    assert!(Event::new().id("nul\0").is_err());
}

#[tokio::test]
async fn several_ready_events_are_written_back_to_back() {
    // 1,000 ready events arrive whole and in order; hyper coalesces the frames.
    let addr = serve(Sse::new(service_fn(|_req: Request<Incoming>| async {
        Ok::<_, Infallible>(tokio_stream::iter(
            (0..1000).map(|i| Event::new().id(i.to_string()).unwrap().data("x")),
        ))
    })))
    .await;
    let res = within(h1().request(sse_request(addr, "/", None)))
        .await
        .unwrap();
    let body = body_bytes(res).await;
    let decoded = support::whatwg::decode(&body);
    assert_eq!(decoded.events.len(), 1000);
    assert!(decoded
        .events
        .iter()
        .enumerate()
        .all(|(i, e)| e.last_event_id == i.to_string()));
}
