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

/// Waits (at most 10 s) until `done`; the panic names `what` did not happen.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "not within 10 s: {what}");
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

/// A client that connects and never finishes its TLS handshake (silent, or half a
/// ClientHello) is closed at the first-request deadline, counted from accept.
#[tokio::test]
async fn h2_tls_handshake_that_stalls_is_closed_at_the_first_request_deadline() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const DEADLINE: Duration = Duration::from_secs(1);
    let (hub, drain) = (MemoryHub::new(), Drain::new());
    let running = start(&hub, &drain, |s| s.header_read_timeout(DEADLINE)).await;
    // A TLS record header announcing a 512-byte handshake message, then 5 bytes of it.
    for first_bytes in [
        &b""[..],
        &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03],
    ] {
        let mut tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        tcp.write_all(first_bytes).await.unwrap();
        let started = Instant::now();
        let mut buf = [0; 64];
        let read = within(tcp.read(&mut buf)).await;
        let took = started.elapsed();
        assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
        assert!(took >= DEADLINE - Duration::from_millis(100), "{took:?}");
        assert!(took <= DEADLINE + Duration::from_secs(1), "{took:?}");
    }
    // A client that completes its handshake in time is served.
    let (mut sender, _conn) = connect(&running).await;
    let res = within(sender.send_request(sse())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// One connection holds at most `max_concurrent_streams` streams: the client's next request
/// waits (hyper's client, like a browser, queues it) until a stream ends.
#[tokio::test]
async fn h2_streams_past_the_connection_cap_wait_for_a_free_one() {
    let (hub, drain) = (MemoryHub::new(), Drain::new());
    let running = start(&hub, &drain, |s| s.max_concurrent_streams(2)).await;
    let (mut sender, _conn) = connect(&running).await;
    let first = within(sender.send_request(sse())).await.unwrap();
    let _second = within(sender.send_request(sse())).await.unwrap();
    until("two streams open", || drain.open() == 2).await;
    let mut third = Box::pin(sender.send_request(sse()));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut third)
            .await
            .is_err(),
        "the third stream waits"
    );
    assert_eq!(drain.open(), 2);
    drop(first);
    let third = within(third).await.unwrap();
    assert_eq!(third.status(), StatusCode::OK);
    until("the third stream took the first's place", || {
        drain.open() == 2
    })
    .await;
}

/// `Tls::reload` reads the PEM files again: connections accepted afterwards get the new
/// certificate; a damaged file is refused and the current certificate stays.
#[tokio::test]
async fn h2_tls_reload_serves_the_new_certificate_to_new_connections() {
    let dir = std::env::temp_dir().join(format!("tower-push-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let write = |cert: &rcgen::CertifiedKey| {
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    };
    let make = || rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (old, new) = (make(), make());
    write(&old);
    let tls = Tls::from_pem_files(&cert_path, &key_path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let drain = Drain::new();
    let app = Subscribe::new(MemoryHub::new(), "room");
    let app = ServiceBuilder::new()
        .layer(NegotiateLayer::new())
        .layer(drain.layer())
        .service(app);
    tokio::spawn(
        Server::new(&drain)
            .tls(tls.clone())
            .run(listener, app, std::future::pending()),
    );
    // The certificate the server presents to a new connection (verification off: only its
    // identity matters here).
    let presented = || async {
        #[derive(Debug)]
        struct Any;
        impl rustls::client::danger::ServerCertVerifier for Any {
            fn verify_server_cert(
                &self,
                _: &rustls::pki_types::CertificateDer<'_>,
                _: &[rustls::pki_types::CertificateDer<'_>],
                _: &rustls::pki_types::ServerName<'_>,
                _: &[u8],
                _: rustls::pki_types::UnixTime,
            ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            fn verify_tls12_signature(
                &self,
                _: &[u8],
                _: &rustls::pki_types::CertificateDer<'_>,
                _: &rustls::DigitallySignedStruct,
            ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>
            {
                Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
            }
            fn verify_tls13_signature(
                &self,
                _: &[u8],
                _: &rustls::pki_types::CertificateDer<'_>,
                _: &rustls::DigitallySignedStruct,
            ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>
            {
                Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
            }
            fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
                rustls::crypto::ring::default_provider()
                    .signature_verification_algorithms
                    .supported_schemes()
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Any))
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    assert_eq!(presented().await, old.cert.der().to_vec());
    write(&new);
    tls.reload().unwrap();
    assert_eq!(presented().await, new.cert.der().to_vec());
    // A damaged key file: refused, typed; the new certificate stays.
    std::fs::write(&key_path, "not a key").unwrap();
    let error = tls.reload().unwrap_err();
    assert!(
        matches!(
            error,
            tower_push::serve::TlsError::Pem {
                what: "private key",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(presented().await, new.cert.der().to_vec());
    // A key that is not the certificate's: refused too.
    std::fs::write(&key_path, old.key_pair.serialize_pem()).unwrap();
    assert!(tls.reload().is_err(), "a key that does not match");
    std::fs::remove_dir_all(&dir).unwrap();
}
