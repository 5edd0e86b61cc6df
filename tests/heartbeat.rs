#![cfg(all(feature = "heartbeat", feature = "sse"))]
//! The heartbeat layer through the SSE transport, with paused time (no real sleeps).

use http_body::Body as _;
use std::{convert::Infallible, task::Poll, time::Duration};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_test::{assert_pending, task};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_push::{heartbeat::HeartbeatLayer, sse::SseLayer, Event};

#[tokio::test(start_paused = true)]
async fn sse_renders_heartbeats_as_comments_only_when_idle() {
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    let rx = std::sync::Mutex::new(Some(rx));
    let svc = ServiceBuilder::new()
        .layer(SseLayer::new())
        .layer(HeartbeatLayer::new(Duration::from_secs(15)))
        .service(service_fn(move |_req: http::Request<()>| {
            let rx = rx.lock().unwrap().take().unwrap();
            async move { Ok::<_, Infallible>(UnboundedReceiverStream::new(rx)) }
        }));
    let res = svc.oneshot(http::Request::new(())).await.unwrap();
    let mut body = task::spawn(res.into_body());
    let mut next = move || match body.enter(|cx, body| body.poll_frame(cx)) {
        Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(frame.into_data().unwrap())),
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Ready(Some(Err(e))) => match e {},
        Poll::Pending => Poll::Pending,
    };

    assert_pending!(next());
    tokio::time::advance(Duration::from_secs(15)).await;
    assert_eq!(
        next(),
        Poll::Ready(Some(bytes::Bytes::from_static(b":\n\n")))
    );

    // A real event resets the timer: no heartbeat 10 s later.
    tokio::time::advance(Duration::from_secs(5)).await;
    tx.send(Event::new().data("real")).unwrap();
    assert_eq!(
        next(),
        Poll::Ready(Some(bytes::Bytes::from_static(b"data: real\n\n")))
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_pending!(next());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        next(),
        Poll::Ready(Some(bytes::Bytes::from_static(b":\n\n")))
    );

    // The body ends when the stream ends.
    drop(tx);
    assert_eq!(next(), Poll::Ready(None));
}
