//! Shared helpers for integration tests: a real hyper server on 127.0.0.1:0 and real clients.
#![allow(dead_code, unreachable_pub)]

pub mod hub_suite;
#[cfg(any(feature = "redis", feature = "nats"))]
#[allow(dead_code)]
pub mod instances;
#[cfg(any(feature = "redis", feature = "nats"))]
#[allow(dead_code)]
pub mod proxy;
#[cfg(any(feature = "redis", feature = "nats"))]
#[allow(dead_code)]
pub mod scale;
pub mod whatwg;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use std::{convert::Infallible, future::Future, net::SocketAddr, time::Duration};
use tokio::net::TcpListener;
use tower::Service;

/// Serves `svc` with hyper-util's auto builder (HTTP/1.1 and HTTP/2) on 127.0.0.1:0.
pub async fn serve<S, B>(svc: S) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let mut builder = auto::Builder::new(TokioExecutor::new());
                // RFC 8441: advertise extended CONNECT for WebSocket over HTTP/2.
                builder.http2().enable_connect_protocol();
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// An HTTP/1.1 client.
pub fn h1() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 client with prior knowledge (h2c).
pub fn h2() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// One HTTP/2 (h2c) connection with hyper's client, for requests the pooled client cannot
/// make (RFC 8441 extended CONNECT).
pub async fn h2_connection(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// A WebSocket over HTTP/2 (RFC 8441 extended CONNECT) to `path` on an h2c connection of
/// its own, asking for `protocol` if given: the response head and the client stream.
pub async fn websocket_over_h2(
    addr: SocketAddr,
    path: &str,
    protocol: Option<&str>,
) -> (
    http::response::Parts,
    tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
) {
    let mut sender = h2_connection(addr).await;
    let mut req =
        Request::connect(format!("http://{addr}{path}")).header("sec-websocket-version", "13");
    if let Some(protocol) = protocol {
        req = req.header("sec-websocket-protocol", protocol);
    }
    let mut req = req.body(Empty::<Bytes>::new()).unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut res = within(sender.send_request(req)).await.unwrap();
    let upgraded = within(hyper::upgrade::on(&mut res)).await.unwrap();
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    (res.into_parts().0, ws)
}

pub fn get(addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::get(format!("http://{addr}{path}"))
}

pub fn sse_request(
    addr: SocketAddr,
    path: &str,
    last_event_id: Option<&str>,
) -> Request<Empty<Bytes>> {
    let mut req = get(addr, path).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.body(Empty::new()).unwrap()
}

/// A parsed SSE event, as a real client crate (`eventsource-stream`) sees it.
pub type SseEvent = eventsource_stream::Event;

/// Opens an SSE stream and parses it with `eventsource-stream`.
pub async fn open_sse(
    client: &HttpClient,
    req: Request<Empty<Bytes>>,
) -> (
    http::response::Parts,
    impl futures_util::Stream<Item = SseEvent> + Unpin,
) {
    use eventsource_stream::Eventsource as _;
    let res = within(client.request(req)).await.expect("response");
    let (parts, body) = res.into_parts();
    let events = body
        .into_data_stream()
        .eventsource()
        .map(|item| item.expect("well-formed event stream"));
    (parts, Box::pin(events))
}

/// The next SSE event, within 10 s.
pub async fn next_event(
    stream: &mut (impl futures_util::Stream<Item = SseEvent> + Unpin),
) -> SseEvent {
    within(stream.next()).await.expect("stream ended")
}

/// The body of a response, within 10 s.
pub async fn body_bytes(res: Response<Incoming>) -> Bytes {
    within(res.into_body().collect()).await.unwrap().to_bytes()
}

/// Bounds every wait in the tests.
pub async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out after 10 s")
}

/// Sends `()` on drop: proves a stream was dropped.
pub struct DropGuard(pub Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// An SSE response read as raw bytes and decoded by the WHATWG decoder, so the test sees
/// exactly what a browser's `EventSource` would (including ids of id-only events).
pub struct RawSse {
    pub parts: http::response::Parts,
    body: Incoming,
    buf: Vec<u8>,
}

impl RawSse {
    pub async fn open(client: &HttpClient, req: Request<Empty<Bytes>>) -> Self {
        let res = within(client.request(req)).await.expect("response");
        let (parts, body) = res.into_parts();
        Self {
            parts,
            body,
            buf: Vec::new(),
        }
    }

    /// Reads until `done` holds for the decoded stream so far; returns that state.
    pub async fn until(&mut self, done: impl Fn(&whatwg::Decoded) -> bool) -> whatwg::Decoded {
        loop {
            let decoded = whatwg::decode(&self.buf);
            if done(&decoded) {
                return decoded;
            }
            let frame = within(self.body.frame())
                .await
                .expect("body ended")
                .expect("body error");
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

/// A writer for a `tracing` subscriber that keeps everything written, for tests that read
/// the logs.
#[derive(Clone, Default)]
pub struct Capture(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A push transport, as the tests' clients speak it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    LongPoll,
    Ws,
}

/// Every transport.
pub const ALL_TRANSPORTS: [Transport; 3] = [Transport::Sse, Transport::LongPoll, Transport::Ws];

/// The status a GET of `path` gets on transport `t` (WebSocket: the handshake's answer,
/// `101` when it upgraded).
pub async fn status(t: Transport, addr: SocketAddr, path: &str) -> http::StatusCode {
    match t {
        Transport::Ws => {
            match within(tokio_tungstenite::connect_async(format!(
                "ws://{addr}{path}"
            )))
            .await
            {
                Ok(_) => http::StatusCode::SWITCHING_PROTOCOLS,
                Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status(),
                Err(other) => panic!("{other}"),
            }
        }
        Transport::Sse | Transport::LongPoll => {
            let accept = match t {
                Transport::Sse => "text/event-stream",
                _ => "application/json",
            };
            let req = get(addr, path)
                .header("accept", accept)
                .body(Empty::<Bytes>::new())
                .unwrap();
            within(h1().request(req)).await.unwrap().status()
        }
    }
}

/// Resident memory of this process, in bytes (from `/proc/self/statm`).
pub fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[path = "../../examples/common/long_poll_answer.rs"]
mod long_poll_answer;
#[allow(unused_imports)] // not every test crate polls
pub use long_poll_answer::long_poll_answer;
