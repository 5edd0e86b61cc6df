//! One instance of a push cluster: several processes share one port (`SO_REUSEPORT`, the kernel
//! spreads connections over them) and one backbone (Redis, or NATS JetStream), so an event
//! published on any instance reaches every client on every instance, and a client resumes on
//! whichever instance its next connection lands on.
//!
//! This is what `scripts/scale-out.sh` starts N times to measure scale-out (see
//! `docs/SCALING.md`); it speaks the load tool's contract:
//!
//! - `POST /publish` - the body becomes one event on the `bench` topic (`503` when the backbone
//!   cannot take it);
//! - `GET /sse`, `GET /ws` - the topic over SSE or WebSocket, from now or after `Last-Event-ID`;
//! - `GET /poll?since=C` - long-poll after cursor `C` (`0`: from now).
//!
//! ```text
//! # two instances on one port, on Redis (REDIS_URL, default redis://127.0.0.1:6379)
//! PORT=3000 cargo run --example cluster --features redis,nats &
//! PORT=3000 cargo run --example cluster --features redis,nats &
//! curl -N localhost:3000/sse &                       # lands on either instance
//! curl -d hello localhost:3000/publish               # published on either, delivered by both
//! # NATS JetStream instead: NATS_URL=nats://127.0.0.1:4222
//! ```
//!
//! Served with [`serve::Server::http1_only`], the lowest-memory recipe for many SSE and
//! WebSocket connections (HTTP/2 clients are refused; drop it to serve them).

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post, Router};
use http::{HeaderValue, Request};
use std::{net::SocketAddr, time::Duration};
use tower::ServiceBuilder;
use tower_push::{
    drain::Drain,
    heartbeat::HeartbeatLayer,
    hub::{Hub, NatsHub, RedisHub, Subscribe},
    long_poll::LongPollLayer,
    serve,
    sse::SseLayer,
    ws::WsLayer,
    Event,
};

/// The one topic the load tool publishes to and reads.
const TOPIC: &str = "bench";

/// `POST /publish`: the body, as one event on every instance.
async fn publish<H: Hub>(State(hub): State<H>, body: Bytes) -> (StatusCode, &'static str) {
    let data = String::from_utf8_lossy(&body).into_owned();
    match hub.publish(TOPIC, Event::new().data(data)).await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "backbone unavailable"),
    }
}

/// `?since=C` -> `Last-Event-ID: C` (nothing for `0`): the load tool's poll contract on the
/// cursor.
fn since_to_last_event_id<B>(mut req: Request<B>) -> Request<B> {
    let since = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("since=")))
        .filter(|s| *s != "0")
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        });
    if let Some(v) = since.and_then(|s| HeaderValue::from_str(&s).ok()) {
        req.headers_mut().insert("last-event-id", v);
    }
    req
}

/// The instance's routes on `hub`; `drain` ends every stream at shutdown.
fn app<H: Hub>(hub: H, drain: &Drain) -> Router {
    let subscribe = Subscribe::new(hub.clone(), TOPIC);
    let heartbeat = HeartbeatLayer::new(Duration::from_secs(15));
    let sse = ServiceBuilder::new()
        .layer(SseLayer::new())
        .layer(drain.layer())
        .layer(heartbeat)
        .service(subscribe.clone());
    let ws = ServiceBuilder::new()
        .layer(WsLayer::new())
        .layer(drain.layer())
        .layer(heartbeat)
        .service(subscribe.clone());
    let poll = ServiceBuilder::new()
        .map_request(since_to_last_event_id)
        .layer(LongPollLayer::new())
        .layer(drain.layer())
        .service(subscribe);
    Router::new()
        .route("/publish", post(publish::<H>))
        .route_service("/sse", sse)
        .route_service("/ws", ws)
        .route_service("/poll", poll)
        .with_state(hub)
}

/// Binds `addr` with `SO_REUSEPORT`, so that every instance started on the same port gets a
/// share of its connections.
fn bind_shared(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves `hub` on `listener` until `shutdown`.
async fn run<H: Hub>(
    hub: H,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let drain = Drain::new();
    let app = app(hub, &drain);
    serve::Server::new(&drain)
        .http1_only(true)
        .run(listener, app, shutdown)
        .await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let prefix = std::env::var("PREFIX").unwrap_or_else(|_| "tower-push-cluster".into());
    let listener = bind_shared(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let shutdown = serve::shutdown_signal();
    if let Ok(url) = std::env::var("NATS_URL") {
        let hub = NatsHub::connect(&url, &prefix).await?;
        println!("instance {} on :{port}, NATS {url}", std::process::id());
        run(hub, listener, shutdown).await;
    } else {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let hub = RedisHub::connect(&url, &prefix).await?;
        println!("instance {} on :{port}, Redis {url}", std::process::id());
        run(hub, listener, shutdown).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use tokio::sync::oneshot;

    /// Starts one instance per hub, all on one port; returns the port's address and the
    /// instances' stop senders.
    async fn instances<H: Hub>(hubs: Vec<H>) -> (SocketAddr, Vec<oneshot::Sender<()>>) {
        let first = bind_shared("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let mut listeners = vec![first];
        for _ in 1..hubs.len() {
            // A second bind of a port in use succeeds only with SO_REUSEPORT.
            listeners.push(bind_shared(addr).expect("the port is shared"));
        }
        let mut stops = Vec::new();
        for (hub, listener) in hubs.into_iter().zip(listeners) {
            let (tx, rx) = oneshot::channel::<()>();
            stops.push(tx);
            tokio::spawn(run(hub, listener, async {
                let _ = rx.await;
            }));
        }
        (addr, stops)
    }

    /// An SSE client on a fresh HTTP/1.1 connection: the data of each event.
    async fn sse_client(addr: SocketAddr) -> impl futures_util::Stream<Item = String> + Unpin {
        use eventsource_stream::Eventsource as _;
        use http_body_util::BodyExt as _;
        let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get("/sse")
            .header("host", addr.to_string())
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        Box::pin(
            res.into_body()
                .into_data_stream()
                .eventsource()
                .filter_map(|e| async move { e.ok().map(|e| e.data) }),
        )
    }

    async fn post(addr: SocketAddr, body: &'static str) -> u16 {
        let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = Request::post("/publish")
            .header("host", addr.to_string())
            .body(http_body_util::Full::new(Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap();
        send.send_request(req).await.unwrap().status().as_u16()
    }

    /// Two instances on one port and one Redis: clients land on both, and every client gets
    /// each event whichever instance it was published on.
    #[tokio::test]
    async fn instances_share_a_port_and_every_event() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("tower-push-cluster-test:{}", std::process::id());
        let connect = || async {
            RedisHub::builder(&url, &prefix)
                .idle_topic_age(Duration::from_secs(60))
                .connect()
                .await
                .expect("Redis answers")
        };
        let (a, b) = (connect().await, connect().await);
        let (addr, _stops) = instances(vec![a.clone(), b.clone()]).await;

        let mut clients = Vec::new();
        for _ in 0..32 {
            clients.push(sse_client(addr).await);
        }
        // The kernel spread the 32 connections over both instances (each hub has a reader
        // for the topic only while it has subscribers).
        tokio::time::timeout(Duration::from_secs(10), async {
            while a.active_topics() == 0 || b.active_topics() == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("connections on both instances");

        for body in ["one", "two", "three"] {
            assert_eq!(post(addr, body).await, 200);
        }
        for client in &mut clients {
            let got: Vec<String> =
                tokio::time::timeout(Duration::from_secs(10), client.take(3).collect::<Vec<_>>())
                    .await
                    .expect("every event reaches every client");
            assert_eq!(got, ["one", "two", "three"]);
        }
    }
}
