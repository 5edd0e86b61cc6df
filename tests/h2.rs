#![cfg(all(
    feature = "tls",
    feature = "negotiate",
    feature = "hub",
    feature = "ws",
    feature = "drain"
))]
//! HTTP/2 over TLS (ALPN `h2`) against `serve::Server` with a certificate the test makes, and
//! hyper's HTTP/2 client over rustls: per-stream stalls, GOAWAY drain, long-poll and
//! WebSocket over HTTP/2.

mod support;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};
use support::within;
use tokio_rustls::rustls;
use tower::ServiceBuilder;
use tower_push::{
    drain::Drain,
    hub::{MemoryHub, Subscribe},
    negotiate::NegotiateLayer,
    serve::{Server, Shutdown, Tls},
    Event,
};

/// A self-signed certificate for `localhost` and 127.0.0.1: the server's [`Tls`] and a client
/// config that trusts it, offering `h2` only.
fn certificate() -> (Tls, Arc<rustls::ClientConfig>) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let tls = Tls::from_pem(
        cert.cert.pem().as_bytes(),
        cert.key_pair.serialize_pem().as_bytes(),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    (tls, Arc::new(client))
}

struct Running {
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Shutdown>,
}

/// The push endpoint (every transport, topic `room`) served over TLS by `server`.
async fn start(hub: &MemoryHub, drain: &Drain, server: impl FnOnce(Server) -> Server) -> Running {
    let (tls, client) = certificate();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ServiceBuilder::new()
        .layer(NegotiateLayer::new())
        .layer(drain.layer())
        .service(Subscribe::new(hub.clone(), "room"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server(Server::new(drain).tls(tls));
    let done = tokio::spawn(server.run(listener, app, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        client,
        stop: Some(stop),
        done,
    }
}

/// One HTTP/2 connection over TLS (ALPN `h2` checked), with a stream window of 64 KiB that is
/// released only as a body is read; and the connection's task.
async fn connect(running: &Running) -> (SendRequest<Empty<Bytes>>, tokio::task::JoinHandle<bool>) {
    let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = within(tokio_rustls::TlsConnector::from(running.client.clone()).connect(name, tcp))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(65_535)
        .adaptive_window(false)
        .handshake(TokioIo::new(tls))
        .await
        .unwrap();
    // `true` when the connection ended cleanly (after the server's GOAWAY).
    let conn = tokio::spawn(async move { conn.await.is_ok() });
    (sender, conn)
}

fn sse() -> Request<Empty<Bytes>> {
    Request::get("https://localhost/")
        .header("accept", "text/event-stream")
        .body(Empty::new())
        .unwrap()
}

/// Reads SSE `data:` payloads from `body` until it ends; returns them and whether it ended
/// cleanly.
async fn read_sse(body: hyper::body::Incoming) -> (Vec<String>, bool) {
    use eventsource_stream::Eventsource as _;
    let mut events = body.into_data_stream().eventsource();
    let mut datas = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) if !event.data.is_empty() => datas.push(event.data),
            Ok(_) => {}
            Err(_) => return (datas, false),
        }
    }
    (datas, true)
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    within(async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let _ = what;
}

/// Two SSE streams on one HTTP/2 connection over TLS, one never read: once its window is
/// spent it is reset within the stall timeout + 1 s (not before the timeout), while the other
/// receives every event, before and after.
#[tokio::test]
async fn h2_a_stream_not_read_is_reset_at_the_stall_deadline_while_its_neighbour_reads_on() {
    const STALL: Duration = Duration::from_secs(1);
    let (hub, drain) = (MemoryHub::new(), Drain::new());
    let running = start(&hub, &drain, |s| s.stall_timeout(STALL)).await;
    let (mut sender, _conn) = connect(&running).await;
    let read = within(sender.send_request(sse())).await.unwrap();
    let unread = within(sender.send_request(sse())).await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(unread.version(), http::Version::HTTP_2);
    let reader = tokio::spawn(read_sse(read.into_body()));
    until("both streams open", || drain.open() == 2).await;

    // 200 KB: three times the unread stream's window.
    let kilobyte = "k".repeat(1_000);
    for i in 0..200 {
        hub.publish_now("room", Event::new().data(format!("{i} {kilobyte}")))
            .unwrap();
    }
    let stalled = Instant::now();
    until("the unread stream is reset", || drain.open() == 1).await;
    let took = stalled.elapsed();
    eprintln!("the unread stream was reset {took:?} after its window filled");
    assert!(took >= STALL - Duration::from_millis(100), "{took:?}");
    assert!(took <= STALL + Duration::from_secs(1), "{took:?}");

    // The neighbour goes on: every event, then more after the reset.
    for i in 200..210 {
        hub.publish_now("room", Event::new().data(format!("{i} after")))
            .unwrap();
    }
    until("the reader got everything", || {
        hub.topic_stats("room").unwrap().queued == 0
    })
    .await;
    // The unread stream's client sees what the window held, then the reset.
    let (seen, clean) = within(read_sse(unread.into_body())).await;
    assert!(!clean, "the unread stream ends with a reset");
    assert!(seen.len() < 200, "{} events", seen.len());
    // End the reader's stream by draining, and check it saw all 210 in order.
    running.stop.unwrap().send(()).unwrap();
    let (datas, _) = within(reader).await.unwrap();
    let expected: Vec<usize> = (0..210).collect();
    let got: Vec<usize> = datas
        .iter()
        .map(|d| d.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, expected);
    within(running.done).await.unwrap();
}

/// Shutdown with 100 SSE streams on 5 HTTP/2 connections over TLS: every stream ends cleanly
/// (the drain's documented end for SSE; the browser reconnects), every connection gets
/// GOAWAY and ends cleanly, and `run` returns within the grace + the close timeout.
#[tokio::test]
async fn h2_shutdown_ends_100_streams_on_5_connections_within_the_drain_bound() {
    const GRACE: Duration = Duration::from_secs(2);
    let (hub, drain) = (MemoryHub::new(), Drain::new());
    let mut running = start(&hub, &drain, |s| s.grace(GRACE)).await;
    let mut conns = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..5 {
        let (mut sender, conn) = connect(&running).await;
        for _ in 0..20 {
            let res = within(sender.send_request(sse())).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            streams.push(tokio::spawn(read_sse(res.into_body())));
        }
        conns.push((sender, conn));
    }
    until("100 streams open", || drain.open() == 100).await;
    hub.publish_now("room", Event::new().data("to all"))
        .unwrap();

    let signalled = Instant::now();
    running.stop.take().unwrap().send(()).unwrap();
    let report = within(running.done).await.unwrap();
    let took = signalled.elapsed();
    eprintln!("shut down in {took:?}: {report:?}");
    assert!(took <= GRACE + drain.get_close_timeout(), "{took:?}");
    assert_eq!((report.streams, report.connections), (0, 0));
    for stream in streams {
        let (datas, clean) = within(stream).await.unwrap();
        assert!(clean, "each SSE stream ends cleanly");
        assert_eq!(datas, ["to all"]);
    }
    for (_, conn) in conns {
        assert!(
            within(conn).await.unwrap(),
            "each connection ends cleanly (GOAWAY)"
        );
    }
}

/// A held long-poll over HTTP/2 over TLS is answered with the event published while held.
#[tokio::test]
async fn h2_long_poll_over_tls_answers_a_held_poll() {
    let (hub, drain) = (MemoryHub::new(), Drain::new());
    let running = start(&hub, &drain, |s| s).await;
    let (mut sender, _conn) = connect(&running).await;
    let cursor = hub
        .publish_now("room", Event::new().data("before"))
        .unwrap();
    let poll = Request::get(format!("https://localhost/?lastEventId={cursor}"))
        .body(Empty::new())
        .unwrap();
    let held = tokio::spawn(sender.send_request(poll));
    until("the poll is held", || drain.open() == 1).await;
    hub.publish_now("room", Event::new().data("while held"))
        .unwrap();
    let res = within(held).await.unwrap().unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::OK);
    let body = within(res.into_body().collect()).await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["events"][0]["data"], "while held", "{body}");
}

/// A WebSocket over HTTP/2 (RFC 8441 extended CONNECT) over TLS carries events; with
/// extended CONNECT turned off the server does not offer it, and the client's CONNECT is
/// refused before any stream.
#[tokio::test]
async fn h2_websocket_over_tls_uses_extended_connect_and_can_be_turned_off() {
    for enabled in [true, false] {
        let (hub, drain) = (MemoryHub::new(), Drain::new());
        let running = start(&hub, &drain, |s| s.extended_connect(enabled)).await;
        let (mut sender, _conn) = connect(&running).await;
        let mut req = Request::connect("https://localhost/")
            .header("sec-websocket-version", "13")
            .body(Empty::<Bytes>::new())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let res = within(sender.send_request(req)).await;
        if !enabled {
            assert!(res.is_err(), "no extended CONNECT without the setting");
            continue;
        }
        let mut res = res.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let upgraded = within(hyper::upgrade::on(&mut res)).await.unwrap();
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        within(ws.next()).await.unwrap().unwrap(); // position
        hub.publish_now("room", Event::new().data("over h2"))
            .unwrap();
        let message = within(ws.next()).await.unwrap().unwrap();
        let message: serde_json::Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        assert_eq!(message["data"], "over h2");
    }
}
