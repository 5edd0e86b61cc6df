//! The chat's tests: its public HTTP contract over every transport, two instances over
//! Redis, and two real browsers; `operations` holds the API limits, `/metrics` and SIGTERM.

mod operations;
mod rooms;

use super::*;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};
use tokio::{io::AsyncBufReadExt as _, io::AsyncWriteExt as _, task::AbortHandle};

/// Serves `app` on 127.0.0.1:0 and keeps the connection tasks, so a test can drop them.
struct Server {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Server {
    async fn start(build: impl FnOnce(&[String]) -> Router, refuse_websocket: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = build(&origins_for(addr));
        let connections = Arc::new(Mutex::new(Vec::<AbortHandle>::new()));
        let tracked = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let router = router.clone();
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move {
                        if refuse_websocket && req.headers().get("upgrade").is_some() {
                            return Ok::<_, Infallible>(
                                (StatusCode::FORBIDDEN, "no websockets here").into_response(),
                            );
                        }
                        tower::ServiceExt::oneshot(router, req).await
                    }
                });
                let task = tokio::spawn(async move {
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder.http2().enable_connect_protocol();
                    let _ = builder
                        .serve_connection_with_upgrades(
                            TokioIo::new(stream),
                            TowerToHyperService::new(svc),
                        )
                        .await;
                });
                tracked.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, connections }
    }

    /// Drops every connection (and the WebSocket tasks with them go when their streams end).
    fn drop_connections(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

fn memory_app(origins: &[String]) -> Router {
    app(
        MemoryHub::new(),
        tickets(),
        MemoryTicketStore::new(),
        origins,
        &Drain::new(),
    )
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn request(
    client: &HttpClient,
    req: http::Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (parts.status, parts.headers, body)
}

fn post(addr: SocketAddr, path: &str, json: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json.to_owned())))
        .unwrap()
}

async fn ticket(client: &HttpClient, addr: SocketAddr) -> String {
    let (status, _, body) = request(client, post(addr, "/api/ticket", r#"{"user":"alice"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["expires_in"].as_u64().unwrap() > 0);
    json["ticket"].as_str().unwrap().to_owned()
}

/// A long-poll without a cursor (with a fresh ticket): answers `200` at once with the
/// current cursor.
async fn poll_cursor(client: &HttpClient, addr: SocketAddr) -> String {
    let path = format!(
        "http://{addr}/api/events?ticket={}",
        ticket(client, addr).await
    );
    let req = http::Request::get(path)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = request(client, req).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice::<serde_json::Value>(&body).unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Opens a WebSocket with `ticket` and reads its position frame.
async fn open_ws(
    addr: SocketAddr,
    ticket: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/events?ticket={ticket}"))
            .await
            .unwrap();
    ws.next().await.unwrap().unwrap(); // position
    ws
}

/// Opens an SSE response with `ticket`.
async fn open_sse(addr: SocketAddr, ticket: &str) -> http::Response<hyper::body::Incoming> {
    open_sse_path(addr, &format!("/api/events?ticket={ticket}")).await
}

/// Opens an SSE response at `path`.
async fn open_sse_path(addr: SocketAddr, path: &str) -> http::Response<hyper::body::Incoming> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn http_contract_over_every_transport() {
    let server = Server::start(memory_app, false).await;
    let addr = server.addr;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let get = |path: String| {
        http::Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let (status, headers, body) = request(&client, get("/".into())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = String::from_utf8_lossy(&body);
    assert!(
        page.contains("/tower-push.js") && !page.contains("https://"),
        "no CDN"
    );
    // A strict policy (the browser test runs the page under it): no framing, no sniffing,
    // inline code only by hash.
    let policy = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "script-src 'self' 'sha256-",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{directive} missing: {policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // Probes.
    for (path, answer) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let (status, _, body) = request(&client, get(path.into())).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, answer.as_bytes()),
            "{path}"
        );
    }
    let (status, _, body) = request(&client, get("/tower-push.js".into())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("TowerPush"));

    for bad in [r#"{}"#, r#"{"user":""}"#, r#"{"user":"   "}"#, "not json"] {
        assert_eq!(
            request(&client, post(addr, "/api/ticket", bad)).await.0,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    assert_eq!(
        request(&client, get("/api/events".into())).await.0,
        StatusCode::UNAUTHORIZED
    );
    let t = ticket(&client, addr).await;
    let foreign = http::Request::get(format!("http://{addr}/api/events?ticket={t}"))
        .header("origin", "http://evil.example")
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(request(&client, foreign).await.0, StatusCode::FORBIDDEN);
    let long = format!(r#"{{"user":"alice","text":"{}"}}"#, "x".repeat(1001));
    for bad in [
        r#"{"user":"alice","text":""}"#,
        long.as_str(),
        r#"{"text":"no user"}"#,
    ] {
        assert_eq!(
            request(&client, post(addr, "/api/messages", bad)).await.0,
            StatusCode::BAD_REQUEST
        );
    }

    // Long-poll: the cursor, then a message.
    let cursor = poll_cursor(&client, addr).await;
    // SSE and WebSocket, open before the message is posted.
    let sse = open_sse(addr, &ticket(&client, addr).await).await;
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let mut ws = open_ws(addr, &ticket(&client, addr).await).await;

    assert_eq!(
        request(
            &client,
            post(addr, "/api/messages", r#"{"user":"alice","text":"hi"}"#)
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"text":"over the socket"}"#.into(),
    ))
    .await
    .unwrap();

    let (status, _, body) = request(
        &client,
        get(format!(
            "/api/events?ticket={}&lastEventId={cursor}",
            ticket(&client, addr).await
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let batch = long_poll_answer(&body);
    let first = &batch["events"][0];
    assert_eq!(first["event"], "message");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(first["data"].as_str().unwrap()).unwrap(),
        serde_json::json!({"user":"alice","text":"hi"})
    );
    let id = first["id"].as_str().unwrap().to_owned();

    let mut seen = Vec::new();
    let mut body = sse.into_body();
    while !String::from_utf8_lossy(&seen).contains("over the socket") {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.extend_from_slice(&frame.into_data().unwrap());
    }
    let seen = String::from_utf8(seen).unwrap();
    assert!(
        seen.contains("event: position"),
        "the cursor is visible to the browser client"
    );
    assert!(seen.contains(&format!(
        "id: {id}\nevent: message\ndata: {{\"user\":\"alice\",\"text\":\"hi\"}}"
    )));

    let frame = loop {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = ws.next().await.unwrap().unwrap()
        {
            break serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap();
        }
    };
    assert_eq!(frame["id"], id.as_str());
    drop(server);
}

/// Two chat instances on one backbone share one room: a message posted on A reaches a
/// long-poll on B, and a ticket minted on A is refused on B after A redeemed it.
async fn two_instances_share_one_room<H: Hub, St: TicketStore>(instances: [(H, St); 2]) {
    let tickets = Tickets::new(Key::new(1, b"shared by both chat instances!!!"));
    let mut servers = Vec::new();
    for (hub, store) in instances {
        let tickets = tickets.clone();
        servers.push(
            Server::start(
                move |origins| app(hub, tickets, store, origins, &Drain::new()),
                false,
            )
            .await,
        );
    }
    let (a, b) = (servers[0].addr, servers[1].addr);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let get = |addr: SocketAddr, path: String| {
        http::Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let (status, _, body) = request(
        &client,
        get(
            b,
            format!("/api/events?ticket={}", ticket(&client, b).await),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cursor = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        request(
            &client,
            post(a, "/api/messages", r#"{"user":"alice","text":"from A"}"#)
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
    let (_, _, body) = request(
        &client,
        get(
            b,
            format!(
                "/api/events?ticket={}&lastEventId={cursor}",
                ticket(&client, b).await
            ),
        ),
    )
    .await;
    let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        batch["events"][0]["data"],
        r#"{"user":"alice","text":"from A"}"#
    );

    let t = ticket(&client, a).await;
    assert_eq!(
        request(&client, get(a, format!("/api/events?ticket={t}")))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        request(&client, get(b, format!("/api/events?ticket={t}")))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

/// With the Redis backbone.
#[cfg(feature = "redis")]
#[tokio::test]
async fn two_instances_share_one_room_over_redis() {
    use tower_push::{auth_ticket::RedisTicketStore, hub::RedisHub};
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!(
        "tower-push-chat-test:{}:{:?}",
        std::process::id(),
        std::time::Instant::now()
    );
    let mut instances = Vec::new();
    for _ in 0..2 {
        let hub = RedisHub::connect(&url, &prefix)
            .await
            .expect("Redis answers");
        let store = RedisTicketStore::new(&hub);
        instances.push((hub, store));
    }
    let instances: [_; 2] = instances.try_into().unwrap();
    two_instances_share_one_room(instances).await;
}

/// With the NATS backbone (`NATS_URL`); the test's streams are deleted at the end.
#[cfg(feature = "nats")]
#[tokio::test]
async fn two_instances_share_one_room_over_nats() {
    use tower_push::{auth_ticket::NatsTicketStore, hub::NatsHub};
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = format!(
        "tower-push-chat-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut instances = Vec::new();
    for _ in 0..2 {
        let hub = NatsHub::connect(&url, &prefix).await.expect("NATS answers");
        let store = NatsTicketStore::new(&hub).await.expect("NATS answers");
        instances.push((hub, store));
    }
    let streams = [
        instances[0].0.stream_name().to_owned(),
        NatsTicketStore::stream_name(&instances[0].0),
    ];
    let instances: [_; 2] = instances.try_into().unwrap();
    two_instances_share_one_room(instances).await;
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    for stream in streams {
        js.delete_stream(stream).await.unwrap();
    }
}

/// The real-browser test: headless Chromium, driven by playwright-core, as two users over
/// each transport, through a server-side drop of every connection; then the fallback when
/// WebSocket is refused. It takes the screenshot README.md shows: into `docs/chat.png` with
/// `UPDATE_SCREENSHOT=1`, else into a temporary file, so that a test run leaves the checkout
/// as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_chat_over_every_transport() {
    let server = Server::start(memory_app, false).await;
    let no_websocket = Server::start(memory_app, true).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    let update = std::env::var_os("UPDATE_SCREENSHOT").is_some_and(|v| v == "1");
    let screenshot = if update {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/chat.png"))
    } else {
        std::env::temp_dir().join(format!("tower-push-chat-{}.png", std::process::id()))
    };
    let _ = std::fs::remove_file(&screenshot);
    let mut node = tokio::process::Command::new("node")
        .current_dir(dir)
        .arg("chat.mjs")
        .arg(format!("http://{}/", server.addr))
        .arg(format!("http://{}/", no_websocket.addr))
        .arg(&screenshot)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (and `npm ci` was run in tests/browser)");
    let mut stdin = node.stdin.take().unwrap();
    let mut stdout = tokio::io::BufReader::new(node.stdout.take().unwrap()).lines();
    let mut log = Vec::new();
    let run = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if line == "DROP" {
                server.drop_connections();
                stdin.write_all(b"DROPPED\n").await.unwrap();
            }
            log.push(line);
        }
        node.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finished in 4 minutes");
    println!("{}", log.join("\n"));
    assert!(status.success(), "browser test failed:\n{}", log.join("\n"));
    assert!(log.iter().any(|l| l == "BROWSER OK"));
    for transport in ["websocket", "sse", "long-poll", "fallback"] {
        assert!(
            log.contains(&format!("ok {transport}")),
            "{transport} passed"
        );
    }
    let png = std::fs::read(&screenshot).expect("the browser took the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );
    if !update {
        let _ = std::fs::remove_file(&screenshot);
    }
}

/// The real-browser test over HTTPS: the chat as `main` runs it with `TLS_CERT` and `TLS_KEY`
/// (a certificate this test makes), in headless Chromium. Twelve EventSource streams on one
/// page all receive a message over HTTP/2, where plain HTTP/1.1 holds the seventh back; the
/// chat's WebSocket rides HTTP/2 (RFC 8441, seen in the server's `/metrics`) and falls back to
/// HTTP/1.1 when the server turns extended CONNECT off; long-poll works over HTTP/2.
#[cfg(all(feature = "tls", feature = "metrics"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_browser_opens_twelve_streams_and_a_websocket_over_https() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("tower-push-h2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let (cert_path, key_path) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());
    let tls = [("TLS_CERT", cert_path), ("TLS_KEY", key_path)];
    let (_h2, h2) = operations::chat_process(None, &tls).await;
    let (_h1, h1) = operations::chat_process(None, &[]).await;
    let no_connect = [tls[0], tls[1], ("H2_WEBSOCKET", "off")];
    let (_no_connect, no_connect) = operations::chat_process(None, &no_connect).await;

    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser"))
            .arg("h2.mjs")
            .arg(format!("https://localhost:{}/", h2.port()))
            .arg(format!("http://{h1}/"))
            .arg(format!("https://localhost:{}/", no_connect.port()))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser test finished in 3 minutes")
    .expect("node runs (and `npm ci` was run in tests/browser)");
    let log = String::from_utf8_lossy(&output.stdout);
    println!("{log}\n{}", String::from_utf8_lossy(&output.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "browser test failed:\n{log}");
    for step in [
        "ok h2 twelve streams",
        "ok http/1.1 six streams",
        "ok websocket over h2",
        "ok long-poll over h2",
        "ok websocket falls back to http/1.1",
        "BROWSER H2 OK",
    ] {
        assert!(log.contains(step), "{step}:\n{log}");
    }
}

#[path = "../common/long_poll_answer.rs"]
mod long_poll_answer;
use long_poll_answer::long_poll_answer;
