#![cfg(all(
    feature = "serve",
    feature = "negotiate",
    feature = "hub",
    feature = "ws",
    feature = "heartbeat"
))]
//! Clients that stop reading, and shutdowns that must finish anyway, against the hardened
//! server (`serve::Server`) with real sockets: each stalled client has a tiny receive buffer
//! and never reads after its first event.

mod support;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::StatusCode;
use http_body_util::Empty;
use serde_json::Value;
use std::{net::SocketAddr, time::Duration};
use support::*;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
    sync::oneshot,
    task::JoinHandle,
    time::Instant,
};
use tokio_tungstenite::tungstenite;
use tower::ServiceBuilder;
use tower_push::{
    drain::Drain,
    heartbeat::HeartbeatLayer,
    hub::{MemoryHub, Subscribe},
    long_poll::LongPollLayer,
    negotiate::NegotiateLayer,
    serve::{Server, Shutdown},
    ws::WsLayer,
    Event,
};

/// Events published to fill a stalled client's buffers: 96 x 32 KiB = 3 MiB, more than the
/// kernel's socket buffers hold for a peer with a 4 KiB receive buffer.
const EVENTS: usize = 96;
const EVENT_BYTES: usize = 32 * 1024;

struct Rig {
    addr: SocketAddr,
    hub: MemoryHub,
    drain: Drain,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Shutdown>,
}

struct Settings {
    server_stall: Duration,
    ws: WsLayer,
    heartbeat: Duration,
    grace: Duration,
    http1_only: bool,
    idle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server_stall: Duration::from_secs(60),
            ws: WsLayer::new().stall_timeout(Duration::from_secs(60)),
            heartbeat: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            http1_only: false,
            idle: Duration::from_secs(60),
        }
    }
}

async fn rig(settings: Settings) -> Rig {
    let hub = MemoryHub::builder().history(1000).build();
    let drain = Drain::new();
    let endpoint = ServiceBuilder::new()
        .layer(
            NegotiateLayer::new()
                .long_poll(LongPollLayer::new().max_bytes(1 << 20))
                .ws(settings.ws),
        )
        .layer(drain.layer())
        .layer(HeartbeatLayer::new(settings.heartbeat))
        .service(Subscribe::new(hub.clone(), "room"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let server = tokio::spawn(
        Server::new(&drain)
            .stall_timeout(settings.server_stall)
            .grace(settings.grace)
            .http1_only(settings.http1_only)
            .idle_timeout(settings.idle)
            .run(listener, endpoint, async {
                let _ = stopped.await;
            }),
    );
    Rig {
        addr,
        hub,
        drain,
        stop: Some(stop),
        server,
    }
}

fn payload(i: usize) -> String {
    format!("{i:04}:{}", "x".repeat(EVENT_BYTES))
}

/// Publishes the events that fill a stalled client's buffers.
async fn flood(hub: &MemoryHub) {
    for i in 0..EVENTS {
        hub.publish_now("room", Event::new().data(payload(i)))
            .unwrap();
        if i % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// A client socket that can hold almost nothing: once it stops reading, the server's writes
/// stall after the kernel's buffers fill.
async fn tiny_socket(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Opens an SSE response on a raw socket and reads just past the priming event; returns the
/// socket (which is then never read again) and the priming cursor.
async fn stalled_sse(addr: SocketAddr) -> (TcpStream, String) {
    let mut tcp = tiny_socket(addr).await;
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: test\r\naccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let cursor = within(async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server answered");
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(at) = text.find("\nid: ") {
                if let Some(end) = text[at + 5..].find('\n') {
                    break text[at + 5..at + 5 + end].to_owned();
                }
            }
        }
    })
    .await;
    (tcp, cursor)
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens a WebSocket on a tiny socket and reads the position; never reads again.
async fn stalled_ws(addr: SocketAddr) -> (Ws, String) {
    let tcp = tiny_socket(addr).await;
    let (mut ws, _) = within(tokio_tungstenite::client_async(
        format!("ws://{addr}/"),
        tcp,
    ))
    .await
    .unwrap();
    let position = loop {
        if let tungstenite::Message::Text(t) = within(ws.next()).await.unwrap().unwrap() {
            break serde_json::from_str::<Value>(t.as_str()).unwrap();
        }
    };
    (ws, position["id"].as_str().unwrap().to_owned())
}

/// The cursor a poll without one answers at once.
async fn current_cursor(addr: SocketAddr) -> String {
    let res = within(h1().request(get(addr, "/").body(Empty::<Bytes>::new()).unwrap()))
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
    body["cursor"].as_str().unwrap().to_owned()
}

/// A healthy SSE client that reads everything: resolves with the data of the first `n`
/// events after its start, and keeps its connection open until `hold` fires.
fn healthy_reader(
    addr: SocketAddr,
    n: usize,
    hold: oneshot::Receiver<()>,
) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let client = h1();
        let (_, mut events) = open_sse(&client, sse_request(addr, "/", None)).await;
        let mut got = Vec::new();
        while got.len() < n {
            let event = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .expect("the healthy client keeps receiving")
                .expect("stream open");
            if !event.data.is_empty() {
                got.push(event.data);
            }
        }
        let _ = hold.await;
        got
    })
}

/// The data of the events an SSE client resuming from `cursor` receives, until it has `n`.
async fn resume_sse(addr: SocketAddr, cursor: &str, n: usize) -> Vec<String> {
    let client = h1();
    let (_, mut events) = open_sse(&client, sse_request(addr, "/", Some(cursor))).await;
    let mut got = Vec::new();
    while got.len() < n {
        let event = next_event(&mut events).await;
        assert_ne!(event.event, "reset", "history holds every missed event");
        if !event.data.is_empty() {
            got.push(event.data);
        }
    }
    got
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits (bounded) until `done`, returning how long it took.
async fn until(bound: Duration, what: &str, done: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn expected() -> Vec<String> {
    (0..EVENTS).map(payload).collect()
}

/// Which transport the stalled client uses.
#[derive(Clone, Copy, Debug)]
enum Stalled {
    Sse,
    WebSocket,
    LongPoll,
}

/// One stalled client beside one healthy reader: the stalled one is cut off within the stall
/// deadline + 1 s of the flood, everything it held is freed (streams, connections, fds), the
/// healthy one receives every event, and the stalled one resumes with its cursor, losing
/// nothing.
async fn stalled_client_is_cut_off_and_resumes(transport: Stalled) {
    let stall = Duration::from_secs(1);
    let mut settings = Settings::default();
    match transport {
        // The WebSocket driver applies its own deadline: the server's stays at 60 s.
        Stalled::WebSocket => settings.ws = WsLayer::new().stall_timeout(stall),
        Stalled::Sse | Stalled::LongPoll => settings.server_stall = stall,
    }
    let rig = rig(settings).await;
    let addr = rig.addr;
    let (release, hold) = oneshot::channel();
    let healthy = healthy_reader(addr, EVENTS, hold);
    until(Duration::from_secs(10), "healthy client open", || {
        rig.drain.open() == 1
    })
    .await;
    let (fds, connections) = (open_fds(), rig.drain.connections());

    let (stalled, cursor): (Box<dyn Send>, String) = match transport {
        Stalled::Sse => {
            let (tcp, cursor) = stalled_sse(addr).await;
            (Box::new(tcp), cursor)
        }
        Stalled::WebSocket => {
            let (ws, cursor) = stalled_ws(addr).await;
            (Box::new(ws), cursor)
        }
        Stalled::LongPoll => {
            let cursor = current_cursor(addr).await;
            (Box::new(()), cursor)
        }
    };
    let stalled = match transport {
        Stalled::LongPoll => {
            flood(&rig.hub).await;
            // 32 pipelined polls from the cursor, each answered with 1 MiB, never read.
            let mut tcp = tiny_socket(addr).await;
            let poll = format!("GET /?lastEventId={cursor} HTTP/1.1\r\nhost: test\r\n\r\n");
            tcp.write_all(poll.repeat(32).as_bytes()).await.unwrap();
            Box::new(tcp) as Box<dyn Send>
        }
        _ => {
            assert_eq!(rig.drain.open(), 2);
            flood(&rig.hub).await;
            stalled
        }
    };
    let flooded = Instant::now();
    until(
        stall + Duration::from_secs(5),
        "stalled client cut off",
        || rig.drain.open() == 1 && rig.drain.connections() == connections,
    )
    .await;
    let cut_after = flooded.elapsed();
    assert!(
        cut_after < stall + Duration::from_secs(1),
        "{transport:?}: cut off {cut_after:?} after the flood; the deadline is {stall:?}"
    );

    release.send(()).unwrap();
    assert_eq!(
        within(healthy).await.unwrap(),
        expected(),
        "the healthy client beside it received every event"
    );
    assert_eq!(
        resume_sse(addr, &cursor, EVENTS).await,
        expected(),
        "{transport:?}: the stalled client resumes with its cursor and misses nothing"
    );
    drop(stalled);
    until(Duration::from_secs(5), "fds back to baseline", || {
        open_fds() <= fds
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_sse_client_is_cut_off_and_resumes() {
    stalled_client_is_cut_off_and_resumes(Stalled::Sse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_websocket_is_cut_off_and_resumes() {
    stalled_client_is_cut_off_and_resumes(Stalled::WebSocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_long_poll_client_is_cut_off_and_resumes() {
    stalled_client_is_cut_off_and_resumes(Stalled::LongPoll).await;
}

/// A WebSocket whose peer stops reading right after a heartbeat Ping: the pong deadline ends
/// it even while the driver waits on a blocked write (the stall deadline is 60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pong_deadline_holds_while_a_write_is_blocked() {
    let pong = Duration::from_millis(700);
    let rig = rig(Settings {
        ws: WsLayer::new()
            .pong_timeout(pong)
            .stall_timeout(Duration::from_secs(60)),
        heartbeat: Duration::from_millis(300),
        ..Settings::default()
    })
    .await;
    let (_ws, _) = stalled_ws(rig.addr).await;
    assert_eq!(rig.drain.open(), 1);
    // The first Ping goes out after 300 ms idle; then the writes block.
    tokio::time::sleep(Duration::from_millis(450)).await;
    flood(&rig.hub).await;
    let took = until(
        Duration::from_secs(10),
        "dropped by the pong deadline",
        || rig.drain.open() == 0,
    )
    .await;
    assert!(
        took < Duration::from_secs(3),
        "dropped after {took:?}, not at the 60 s stall deadline"
    );
}

/// Shutdown with a stalled SSE client, a stalled WebSocket and a held poll: the server returns
/// within grace + close timeout with nothing left open, and the poll got its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_despite_stalled_clients() {
    shutdown_with_stalled_clients(false).await;
}

/// The same with HTTP/1.1-only connections, which stop through their own path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_despite_stalled_clients_http1_only() {
    shutdown_with_stalled_clients(true).await;
}

/// `Server::http1_only`: SSE, long-poll and WebSocket upgrades are served; HTTP/2 is not.
#[tokio::test]
async fn http1_only_serves_upgrades_but_not_http2() {
    let rig = rig(Settings {
        http1_only: true,
        ..Settings::default()
    })
    .await;
    let addr = rig.addr;
    let res = within(h1().request(sse_request(addr, "/", None)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let (ws, res) = within(tokio_tungstenite::connect_async(format!("ws://{addr}/")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    drop(ws);
    let h2 = within(h2().request(get(addr, "/").body(Empty::<Bytes>::new()).unwrap())).await;
    assert!(h2.is_err(), "no HTTP/2 on an HTTP/1.1-only server: {h2:?}");
    // And the default server does speak HTTP/2 (so the assertion above can fail).
    let both = rig_default_h2().await;
    assert!(both, "the default server answers HTTP/2");
}

/// An idle keep-alive connection is closed at once by the shutdown (gracefully: it has no
/// request in flight), so a server with no streams returns long before the grace period.
async fn idle_connection_closes_at_shutdown(http1_only: bool) {
    let grace = Duration::from_secs(5);
    let mut rig = rig(Settings {
        grace,
        http1_only,
        ..Settings::default()
    })
    .await;
    let mut tcp = TcpStream::connect(rig.addr).await.unwrap();
    tcp.write_all(b"GET /?lastEventId= HTTP/1.1\r\nhost: x\r\naccept: application/json\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = within(tcp.read(&mut buf)).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let started = Instant::now();
    rig.stop.take().unwrap().send(()).unwrap();
    within(&mut rig.server).await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "shutdown took {took:?} (grace {grace:?})"
    );
    assert_eq!(
        within(tcp.read(&mut buf)).await.unwrap(),
        0,
        "the connection was closed"
    );
}

#[tokio::test]
async fn idle_connections_close_at_once_on_shutdown() {
    idle_connection_closes_at_shutdown(false).await;
}

#[tokio::test]
async fn idle_connections_close_at_once_on_shutdown_http1_only() {
    idle_connection_closes_at_shutdown(true).await;
}

async fn rig_default_h2() -> bool {
    let rig = rig(Settings::default()).await;
    let req = get(rig.addr, "/?lastEventId=")
        .header("accept", "application/json")
        .body(Empty::<Bytes>::new())
        .unwrap();
    within(h2().request(req)).await.is_ok()
}

async fn shutdown_with_stalled_clients(http1_only: bool) {
    let grace = Duration::from_secs(1);
    let mut rig = rig(Settings {
        grace,
        http1_only,
        ..Settings::default()
    })
    .await;
    let addr = rig.addr;
    let (_sse, _) = stalled_sse(addr).await;
    let (_ws, _) = stalled_ws(addr).await;
    flood(&rig.hub).await;
    // Let the writes fill the buffers and block.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cursor = current_cursor(addr).await;
    let poll = tokio::spawn(async move {
        let path = format!("/?lastEventId={cursor}");
        let res = h1()
            .request(get(addr, &path).body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        (res.status(), body_bytes(res).await)
    });
    until(Duration::from_secs(10), "three streams open", || {
        rig.drain.open() == 3
    })
    .await;

    let started = Instant::now();
    rig.stop.take().unwrap().send(()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), &mut rig.server)
        .await
        .expect("the shutdown finished")
        .unwrap();
    let took = started.elapsed();
    let bound = grace + rig.drain.get_close_timeout() + Duration::from_millis(500);
    assert!(took < bound, "shutdown took {took:?}; bound {bound:?}");
    assert_eq!(report.streams, 0, "{report:?}");
    assert_eq!(report.connections, 0, "{report:?}");
    assert_eq!(rig.drain.open(), 0);
    let (status, body) = within(poll).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["cursor"].is_string(),
        "the held poll answered with its cursor"
    );
}

/// A request head sent too slowly is cut off at the header deadline.
#[tokio::test]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    let drain = Drain::new();
    let endpoint = ServiceBuilder::new()
        .layer(NegotiateLayer::new())
        .service(Subscribe::new(MemoryHub::new(), "room"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::new(&drain)
            .header_read_timeout(Duration::from_millis(500))
            .run(listener, endpoint, std::future::pending()),
    );
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: te").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // The server answers 408 or just closes; either way the read ends.
    let _ = within(tcp.read_to_end(&mut buf)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );

    // Too many headers: refused, not served.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut head = String::from("GET / HTTP/1.1\r\nhost: test\r\n");
    for i in 0..100 {
        head.push_str(&format!("x-{i}: y\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = within(tcp.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
}

/// Request heads RFC 9112 says to refuse: no `Host` in HTTP/1.1, two `Host` headers, and
/// `chunked` twice in `Transfer-Encoding` get `400` and a closed connection; a well-formed
/// head (and HTTP/1.0 without `Host`) is served.
#[tokio::test]
async fn malformed_http1_heads_are_refused_with_400() {
    let rig = rig(Settings::default()).await;
    let exchange = |head: &'static str| async move {
        let mut tcp = TcpStream::connect(rig.addr).await.unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut answer = Vec::new();
        // Up to the end of the answer's head (long-polls answer at once without a cursor).
        let _ = within(async {
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    for head in [
        "GET / HTTP/1.1\r\naccept: application/json\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\naccept: application/json\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nhost: a\r\naccept: application/json\r\n\r\n",
        "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let answer = exchange(head).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{head:?} -> {answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    }
    for head in [
        "GET / HTTP/1.1\r\nhost: a\r\naccept: application/json\r\n\r\n",
        "GET / HTTP/1.0\r\naccept: application/json\r\n\r\n",
    ] {
        let answer = exchange(head).await;
        assert!(answer.contains(" 200 OK"), "{head:?} -> {answer}");
    }
    drop(rig);
}

/// An HTTP/2 connection with no open stream is closed after the idle timeout (not before);
/// one holding a push stream stays open and keeps receiving.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_but_one_with_a_stream_is_not() {
    let idle = Duration::from_millis(300);
    let rig = rig(Settings {
        idle,
        ..Settings::default()
    })
    .await;
    let connect = || async {
        let tcp = TcpStream::connect(rig.addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        (sender, tokio::spawn(conn))
    };
    // One request, answered at once (a long-poll without a cursor), then nothing.
    let (mut quiet, quiet_conn) = connect().await;
    let req = get(rig.addr, "/?lastEventId=")
        .header("accept", "application/json")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = within(quiet.send_request(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    let answered = Instant::now();

    // An SSE stream on another connection.
    let (mut busy, busy_conn) = connect().await;
    let res = within(busy.send_request(sse_request(rig.addr, "/", None)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();

    // Closed (without a GOAWAY: the connection is dropped, and the client sees the socket close).
    let _ = within(quiet_conn).await.unwrap();
    let after = answered.elapsed();
    assert!(
        after >= idle,
        "closed {after:?} after its last stream, before {idle:?}"
    );
    assert!(
        after <= idle * 2 + Duration::from_secs(1),
        "closed only after {after:?}"
    );

    tokio::time::sleep(idle * 3).await;
    assert!(
        !busy_conn.is_finished(),
        "the connection with a stream was closed"
    );
    rig.hub
        .publish_now("room", Event::new().data("still here"))
        .unwrap();
    let mut seen = String::new();
    within(async {
        while !seen.contains("still here") {
            let frame = http_body_util::BodyExt::frame(&mut body)
                .await
                .unwrap()
                .unwrap();
            if let Ok(data) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await;
}

/// A WebSocket over HTTP/2 (RFC 8441) keeps its connection open past the idle timeout: its
/// response ended at once, but the stream lives on.
#[tokio::test]
async fn a_websocket_over_http2_is_not_an_idle_connection() {
    let idle = Duration::from_millis(300);
    let rig = rig(Settings {
        idle,
        ..Settings::default()
    })
    .await;
    let (head, mut ws) = websocket_over_h2(rig.addr, "/", None).await;
    assert_eq!(head.status, StatusCode::OK);
    tokio::time::sleep(idle * 4).await;
    rig.hub
        .publish_now("room", Event::new().data("still here"))
        .unwrap();
    within(async {
        loop {
            match ws.next().await {
                Some(Ok(tungstenite::Message::Text(t))) if t.as_str().contains("still here") => {
                    break
                }
                Some(Ok(_)) => {}
                other => panic!("the WebSocket ended: {other:?}"),
            }
        }
    })
    .await;
}
