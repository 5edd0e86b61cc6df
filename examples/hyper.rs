//! A plain hyper server that pushes a ticking stream over SSE or long-poll, beside an ordinary
//! route.
//!
//! Run with `cargo run --example hyper`, then:
//!
//! ```text
//! curl -N -H 'accept: text/event-stream' http://127.0.0.1:3000/events   # SSE
//! curl http://127.0.0.1:3000/events                                       # long-poll: cursor
//! curl 'http://127.0.0.1:3000/events?lastEventId=<cursor>'                # long-poll: events
//! ```
//!
//! `PORT` changes the port.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use std::{convert::Infallible, time::Duration};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_push::{
    heartbeat::HeartbeatLayer,
    hub::{MemoryHub, Subscribe},
    negotiate::NegotiateLayer,
    sse::SseLayer,
    Event,
};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The app: `GET /` says hello, `/events` pushes the hub's `ticks` topic.
fn app(
    hub: MemoryHub,
) -> impl Service<Request<Incoming>, Response = Response<Body>, Error = Infallible, Future: Send>
       + Clone
       + Send
       + 'static {
    let events = ServiceBuilder::new()
        .layer(NegotiateLayer::new().sse(SseLayer::new().retry(Duration::from_secs(2))))
        .layer(HeartbeatLayer::new(Duration::from_secs(15)))
        .service(Subscribe::new(hub, "ticks"));
    service_fn(move |req: Request<Incoming>| {
        let events = events.clone();
        async move {
            if req.uri().path() == "/events" {
                let res = events.oneshot(req).await?;
                Ok(res.map(|b| b.boxed_unsync()))
            } else {
                Ok(Response::new(
                    Full::from("hello from hyper\n").boxed_unsync(),
                ))
            }
        }
    })
}

/// Publishes `tick N` every `every`.
fn spawn_ticker(hub: MemoryHub, every: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        for n in 0u64.. {
            interval.tick().await;
            let event = Event::new()
                .event("tick")
                .expect("a valid name")
                .data(format!("tick {n}"));
            hub.publish_now("ticks", event);
        }
    });
}

async fn serve(listener: tokio::net::TcpListener, hub: MemoryHub) {
    let app = app(hub);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let svc = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            // HTTP/1.1 and HTTP/2 (h2c) on one port; upgrades for WebSocket, and extended
            // CONNECT (RFC 8441) for WebSocket over HTTP/2.
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().enable_connect_protocol();
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("listening on http://{}", listener.local_addr().unwrap());
    let hub = MemoryHub::new();
    spawn_ticker(hub.clone(), Duration::from_secs(1));
    serve(listener, hub).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::Client;

    #[tokio::test]
    async fn serves_hello_sse_and_long_poll() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = MemoryHub::new();
        spawn_ticker(hub.clone(), Duration::from_millis(20));
        tokio::spawn(serve(listener, hub));
        let client =
            Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();
        let get = |path: &str, accept: &str| {
            Request::get(format!("http://{addr}{path}"))
                .header("accept", accept)
                .body(http_body_util::Empty::new())
                .unwrap()
        };
        async fn within<F: std::future::Future>(
            f: F,
        ) -> Result<F::Output, tokio::time::error::Elapsed> {
            tokio::time::timeout(Duration::from_secs(10), f).await
        }

        let res = within(client.request(get("/", "*/*")))
            .await
            .unwrap()
            .unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello from hyper\n");

        // SSE: read until a tick event arrives.
        let res = within(client.request(get("/events", "text/event-stream")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let mut body = res.into_body();
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("event: tick\ndata: tick") {
            let frame = within(body.frame()).await.unwrap().unwrap().unwrap();
            seen.extend_from_slice(&frame.into_data().unwrap());
        }
        assert!(seen.starts_with(b"retry: 2000\n\n"));

        // Long-poll: the first poll gives a cursor, the next one a tick.
        let res = within(client.request(get("/events", "*/*")))
            .await
            .unwrap()
            .unwrap();
        let first: serde_json::Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let cursor = first["cursor"].as_str().unwrap();
        let path = format!("/events?lastEventId={cursor}");
        let res = within(client.request(get(&path, "*/*")))
            .await
            .unwrap()
            .unwrap();
        let next: serde_json::Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(next["events"][0]["event"], "tick");
        assert!(next["events"][0]["data"]
            .as_str()
            .unwrap()
            .starts_with("tick "));
    }
}
