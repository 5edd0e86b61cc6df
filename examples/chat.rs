//! The demo chat room: every transport, auth tickets, resume, Origin policy, one page.
//!
//! Run with `cargo run --example chat` and open <http://127.0.0.1:3000>. `PORT` changes the
//! port; `BIND` binds another address (for example `BIND=0.0.0.0`); `REDIS_URL` uses the
//! Redis backbone (`cargo run --example chat --features redis`), so two processes on two
//! ports share one room; `ALLOWED_ORIGINS` (comma-separated) adds origins to the allow-list;
//! `TICKET_SECRET` sets the ticket key (default: random per process; set the same secret on
//! every instance when a ticket minted on one may be used on another).
//!
//! # HTTP contract (public and stable; tests outside this repository rely on it)
//!
//! * `GET /` - the chat page: HTML + JS, no build step, nothing from a CDN.
//! * `GET /tower-push.js` - the browser client.
//! * `POST /api/ticket` with JSON `{"user":"alice"}` - `200` JSON
//!   `{"ticket":"...","expires_in":N}`; a missing or empty user - `400`. (The demo trusts the
//!   name; real apps mint from their own auth.)
//! * `GET /api/events?ticket=T` (+ optional `lastEventId=C` or the `Last-Event-ID` header):
//!   WebSocket when it is an upgrade, SSE when `Accept: text/event-stream`, long-poll JSON
//!   otherwise; `401` without a valid ticket; a request from a foreign `Origin` - `403`.
//! * `POST /api/messages` with JSON `{"user":"alice","text":"hi"}` - `202`; empty or over-long
//!   (over 1,000 characters) text - `400`; the backbone unreachable - `503` with
//!   `Retry-After`. On a WebSocket the client may instead send `{"text":"hi"}` (the user is
//!   the ticket's principal).
//! * API request bodies over 4 KiB - `413`; an API request not complete within 10 s (a body
//!   sent too slowly) - `408`.
//! * Each chat message reaches every subscriber as an event named `message` whose data is
//!   JSON `{"user":...,"text":...}` and whose id is its cursor.
//! * SIGTERM or Ctrl-C: SSE streams end, WebSockets close with 1012, held polls answer with
//!   their cursor (clients come back, elsewhere or after the restart, and resume); the
//!   process exits 0 within 11 s whatever the clients do.

use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use std::{convert::Infallible, net::SocketAddr, time::Duration};
use tower::{service_fn, ServiceBuilder};
use tower_push::{
    auth_ticket::{
        AuthTicketLayer, Binding, Key, MemoryTicketStore, MintTicket, Principal, TicketStore,
        Tickets,
    },
    client::ClientScript,
    drain::Drain,
    heartbeat::HeartbeatLayer,
    hub::{Hub, MemoryHub},
    last_event_id::LastEventId,
    limit::ConnectionLimitLayer,
    negotiate::NegotiateLayer,
    origin::OriginLayer,
    serve::{self, Server},
    sse::SseLayer,
    ws::{Inbound, Message, WsLayer},
    Event,
};

/// The room every message goes to.
const ROOM: &str = "room";
/// The longest message, in characters.
const MAX_TEXT: usize = 1000;
/// The longest user name, in characters.
const MAX_USER: usize = 64;
/// The largest API request body, in bytes.
const MAX_BODY: usize = 4 * 1024;
/// How long an API request (its body included) may take.
const API_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Chat<H> {
    hub: H,
    tickets: Tickets,
}

#[derive(Deserialize)]
struct TicketRequest {
    user: Option<String>,
}

#[derive(Deserialize)]
struct MessageRequest {
    user: Option<String>,
    text: Option<String>,
}

fn bad_request(message: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

/// A chat message as an event: named `message`, data `{"user":..,"text":..}`.
fn message(user: &str, text: &str) -> Option<Event> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT {
        return None;
    }
    #[derive(serde::Serialize)]
    struct Data<'a> {
        user: &'a str,
        text: &'a str,
    }
    Event::new()
        .event("message")
        .ok()?
        .json_data(&Data { user, text })
        .ok()
}

fn valid_user(user: Option<String>) -> Option<String> {
    let user = user?.trim().to_owned();
    (!user.is_empty() && user.chars().count() <= MAX_USER).then_some(user)
}

async fn mint<H: Hub>(State(chat): State<Chat<H>>, body: Option<Json<TicketRequest>>) -> Response {
    let Some(user) = body.and_then(|Json(b)| valid_user(b.user)) else {
        return bad_request("a non-empty \"user\" is required\n");
    };
    match chat
        .tickets
        .mint(&user, &Binding::new().path("/api/events"))
    {
        Ok(ticket) => MintTicket::respond(&ticket).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
}

async fn post_message<H: Hub>(
    State(chat): State<Chat<H>>,
    body: Option<Json<MessageRequest>>,
) -> Response {
    let Some(Json(body)) = body else {
        return bad_request("JSON {\"user\":...,\"text\":...} is required\n");
    };
    let Some(user) = valid_user(body.user) else {
        return bad_request("a non-empty \"user\" is required\n");
    };
    let Some(event) = message(&user, body.text.as_deref().unwrap_or("")) else {
        return bad_request("\"text\" must be 1 to 1000 characters\n");
    };
    match chat.hub.publish(ROOM, event).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(http::header::RETRY_AFTER, "1")],
            error.to_string(),
        )
            .into_response(),
    }
}

/// The push endpoint's inner service: the room from the client's cursor, and messages sent
/// over a WebSocket published as the ticket's principal.
fn room<H: Hub, B: Send + 'static>(
    hub: H,
) -> impl tower::Service<
    http::Request<B>,
    Response = H::Subscription,
    Error = Infallible,
    Future: Send,
> + Clone
       + Send
       + 'static {
    service_fn(move |req: http::Request<B>| {
        let hub = hub.clone();
        async move {
            let user = req
                .extensions()
                .get::<Principal>()
                .map(|p| p.as_str().to_owned());
            if let (Some(inbound), Some(user)) = (req.extensions().get::<Inbound>().cloned(), user)
            {
                let hub = hub.clone();
                tokio::spawn(async move {
                    while let Some(received) = inbound.recv().await {
                        let Message::Text(text) = received else {
                            continue;
                        };
                        #[derive(Deserialize)]
                        struct Said {
                            text: String,
                        }
                        if let Some(event) = serde_json::from_str::<Said>(&text)
                            .ok()
                            .and_then(|s| message(&user, &s.text))
                        {
                            let _ = hub.publish(ROOM, event).await;
                        }
                    }
                });
            }
            let from = req
                .extensions()
                .get::<LastEventId>()
                .map(|c| c.as_str().to_owned());
            Ok::<_, Infallible>(hub.subscribe(ROOM, from.as_deref()))
        }
    })
}

/// The app, on any hub and ticket store; `origins` are the allowed browser origins.
fn app<H: Hub, St: TicketStore>(
    hub: H,
    tickets: Tickets,
    store: St,
    origins: &[String],
    drain: &Drain,
) -> Router {
    let events = ServiceBuilder::new()
        .layer(OriginLayer::new(origins))
        .layer(AuthTicketLayer::new(tickets.clone()).store(store))
        // Traces see the URI after the ticket is removed.
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(
            NegotiateLayer::new()
                .sse(
                    SseLayer::new()
                        .retry(Duration::from_secs(1))
                        .named_positions(true),
                )
                .ws(WsLayer::new().max_message_size(16 * 1024)),
        )
        // Each open connection holds a place until its stream ends; shutdown ends them all.
        .layer(ConnectionLimitLayer::new(10_000))
        .layer(drain.layer())
        .layer(HeartbeatLayer::new(Duration::from_secs(15)))
        .service(room(hub.clone()));
    // The API takes small JSON bodies: at most 4 KiB each, and a request still unanswered
    // after 10 s (a client that stops sending its body mid-way) gets `408`, which frees its
    // connection. (Never on the push route: it would cut streams.)
    let api = Router::new()
        .route("/api/ticket", post(mint::<H>))
        .route("/api/messages", post(post_message::<H>))
        .layer(
            ServiceBuilder::new()
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    API_TIMEOUT,
                ))
                .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY)),
        );
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route_service("/tower-push.js", ClientScript)
        .merge(api)
        .route_service("/api/events", events)
        .with_state(Chat { hub, tickets })
}

fn origins_for(addr: SocketAddr) -> Vec<String> {
    let mut origins = vec![
        format!("http://{addr}"),
        format!("http://localhost:{}", addr.port()),
    ];
    if let Ok(extra) = std::env::var("ALLOWED_ORIGINS") {
        origins.extend(
            extra
                .split(',')
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty()),
        );
    }
    origins
}

fn tickets() -> Tickets {
    match std::env::var("TICKET_SECRET") {
        Ok(secret) => Tickets::new(Key::new(1, secret)),
        Err(_) => Tickets::new(Key::generate(1)),
    }
}

/// The app on the backbone `REDIS_URL` names (or in memory), with the drain that ends its
/// push streams.
async fn app_from_env(addr: SocketAddr, drain: &Drain) -> Router {
    let origins = origins_for(addr);
    match std::env::var("REDIS_URL") {
        #[cfg(feature = "redis")]
        Ok(url) => {
            let hub = tower_push::hub::RedisHub::connect(&url, "tower-push-chat")
                .await
                .expect("Redis at REDIS_URL");
            let store = tower_push::auth_ticket::RedisTicketStore::new(&hub);
            println!("chat on http://{addr} (Redis backbone at {url})");
            app(hub, tickets(), store, &origins, drain)
        }
        #[cfg(not(feature = "redis"))]
        Ok(_) => {
            panic!("REDIS_URL needs the `redis` feature: cargo run --example chat --features redis")
        }
        Err(_) => {
            println!("chat on http://{addr} (in-memory hub)");
            app(
                MemoryHub::new(),
                tickets(),
                MemoryTicketStore::new(),
                &origins,
                drain,
            )
        }
    }
}

/// Serves the chat on `listener` until SIGTERM or SIGINT, with the hardened recipe: header
/// deadlines and limits, a stall deadline for clients that stop reading, and a shutdown that
/// ends every push stream (SSE ends, WebSocket 1012, a held poll answers) and always
/// finishes: within the 10 s grace plus the 1 s close timeout.
async fn run(listener: tokio::net::TcpListener) {
    let addr = listener.local_addr().expect("bound");
    let drain = Drain::new();
    let app = app_from_env(addr, &drain).await;
    let report = Server::new(&drain)
        .run(listener, app, serve::shutdown_signal())
        .await;
    println!(
        "shut down in {:?} ({} push streams, {} connections still open)",
        report.took, report.streams, report.connections
    );
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1".into());
    let listener = tokio::net::TcpListener::bind((bind.as_str(), port))
        .await
        .expect("bind");
    run(listener).await;
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tower-push chat</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f4f6fa; }
  body { max-width: 720px; margin: 2rem auto; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin-bottom: .25rem; }
  .bar { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; margin: .75rem 0; }
  input, select, button { font: inherit; padding: .4rem .6rem; border: 1px solid #c5cbd6; border-radius: 6px; }
  button { background: #2f6fed; color: white; border-color: #2f6fed; cursor: pointer; }
  button:disabled { opacity: .5; cursor: default; }
  #status { font-size: .9rem; padding: .2rem .6rem; border-radius: 999px; background: #e3e7ef; }
  #status.open { background: #d6f5df; color: #15652f; }
  #messages { list-style: none; padding: .5rem; margin: 0; height: 340px; overflow-y: auto;
              background: white; border: 1px solid #d8dde6; border-radius: 8px; }
  #messages li { padding: .3rem .4rem; border-bottom: 1px solid #f0f2f6; }
  #messages li .user { font-weight: 600; margin-right: .4rem; }
  #messages li.note { color: #8a5a00; font-style: italic; }
  #text { flex: 1; min-width: 12rem; }
</style>
</head>
<body>
<h1>tower-push chat</h1>
<div class="bar">
  <input id="name" placeholder="your name" maxlength="64" autocomplete="off">
  <select id="transport">
    <option value="auto">auto (WebSocket, then SSE, then long-poll)</option>
    <option value="websocket">WebSocket</option>
    <option value="sse">Server-Sent Events</option>
    <option value="long-poll">long-poll</option>
  </select>
  <button id="join">Join</button>
  <span id="status">not connected</span>
</div>
<ul id="messages"></ul>
<form class="bar" id="form">
  <input id="text" placeholder="say something" maxlength="1000" autocomplete="off" disabled>
  <button id="send" disabled>Send</button>
</form>
<script src="/tower-push.js"></script>
<script>
  const $ = (id) => document.getElementById(id);
  let conn = null;
  let user = "";

  function show(e) {
    const li = document.createElement("li");
    if (e.event === "reset") {
      li.className = "note";
      li.textContent = "history was reset; some messages may be missing";
    } else {
      const m = JSON.parse(e.data);
      li.dataset.id = e.id;
      const who = document.createElement("span");
      who.className = "user";
      who.textContent = m.user;
      li.append(who, document.createTextNode(m.text));
    }
    $("messages").append(li);
    $("messages").scrollTop = $("messages").scrollHeight;
  }

  $("join").onclick = () => {
    user = $("name").value.trim();
    if (!user) { $("name").focus(); return; }
    if (conn) conn.close();
    const choice = $("transport").value;
    conn = TowerPush.connect({
      url: "/api/events",
      transports: choice === "auto" ? ["websocket", "sse", "long-poll"] : [choice],
      events: ["message"],
      ticket: async () => {
        const res = await fetch("/api/ticket", {
          method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ user }),
        });
        if (!res.ok) throw new Error("ticket refused");
        return (await res.json()).ticket;
      },
      onEvent: show,
      onStatus: (status, transport) => {
        $("status").textContent = status === "open" ? `open (${transport})` : `${status} (${transport})`;
        $("status").className = status;
        $("text").disabled = $("send").disabled = status !== "open";
      },
    });
  };

  $("form").onsubmit = async (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text || !conn) return;
    $("text").value = "";
    if (!conn.send(text)) {
      await fetch("/api/messages", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ user, text }),
      });
    }
  };
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
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
    use std::sync::{Arc, Mutex};
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
        let (status, _, body) =
            request(client, post(addr, "/api/ticket", r#"{"user":"alice"}"#)).await;
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

    /// Opens an SSE response with `ticket`.
    async fn open_sse(addr: SocketAddr, ticket: &str) -> http::Response<hyper::body::Incoming> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let req = http::Request::get(format!("http://{addr}/api/events?ticket={ticket}"))
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
        let (mut ws, _) = tokio_tungstenite::connect_async(format!(
            "ws://{addr}/api/events?ticket={}",
            ticket(&client, addr).await
        ))
        .await
        .unwrap();
        ws.next().await.unwrap().unwrap(); // position

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
        let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
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
            if let tokio_tungstenite::tungstenite::Message::Text(t) =
                ws.next().await.unwrap().unwrap()
            {
                break serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap();
            }
        };
        assert_eq!(frame["id"], id.as_str());
        drop(server);
    }

    /// The API's bodies are bounded in size (413) and in time: a body that stops half-way is
    /// answered after the body timeout instead of holding the connection.
    #[tokio::test]
    async fn api_bodies_are_limited_in_size_and_time() {
        let server = Server::start(memory_app, false).await;
        let addr = server.addr;
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let big = format!(r#"{{"user":"alice","text":"{}"}}"#, "x".repeat(MAX_BODY));
        assert_eq!(
            request(&client, post(addr, "/api/messages", &big)).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );

        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"POST /api/messages HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"user\":",
        )
        .await
        .unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        tokio::time::timeout(API_TIMEOUT + Duration::from_secs(5), async {
            while !answer.windows(2).any(|w| w == b"\r\n") {
                let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf)
                    .await
                    .unwrap();
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("the stalled body was answered");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            started.elapsed() >= API_TIMEOUT - Duration::from_millis(500),
            "answered after {:?}",
            started.elapsed()
        );
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "408 for the stalled body: {answer}"
        );
    }

    /// The child process of `sigterm_drains_every_transport_and_exits_0`: serves the chat
    /// exactly as `main` does (the same `run`, signal handling included) until SIGTERM. Run
    /// by that test only, hence ignored.
    #[tokio::test]
    #[ignore = "the child process of sigterm_drains_every_transport_and_exits_0"]
    async fn serve_as_main_until_sigterm() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        run(listener).await;
    }

    /// SIGTERM (what orchestrators send) drains every transport with its goodbye, in a real
    /// process running the chat's `run`: the SSE body ends cleanly, the WebSocket gets 1012, a
    /// held poll is answered with its cursor, and the process exits 0.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_drains_every_transport_and_exits_0() {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::serve_as_main_until_sigterm",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env_remove("REDIS_URL")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let addr: SocketAddr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                // libtest prints the test's name on the same line.
                if let Some((_, rest)) = line.split_once("chat on http://") {
                    return rest.split(' ').next().unwrap().parse().unwrap();
                }
            }
            panic!("the chat never said where it listens");
        })
        .await
        .unwrap();
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

        let mut sse = open_sse(addr, &ticket(&client, addr).await)
            .await
            .into_body();
        tokio::time::timeout(Duration::from_secs(10), sse.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap(); // the priming event
        let (mut ws, _) = tokio_tungstenite::connect_async(format!(
            "ws://{addr}/api/events?ticket={}",
            ticket(&client, addr).await
        ))
        .await
        .unwrap();
        ws.next().await.unwrap().unwrap(); // position
        let get = |path: String| {
            http::Request::get(format!("http://{addr}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let cursor = poll_cursor(&client, addr).await;
        let held = get(format!(
            "/api/events?ticket={}&lastEventId={cursor}",
            ticket(&client, addr).await
        ));
        let poll = tokio::spawn({
            let client = client.clone();
            async move { request(&client, held).await }
        });
        // Let the poll reach the server and be held.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!poll.is_finished(), "the poll is held");

        let pid = child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());

        // SSE: the body ends cleanly (the final chunk), not cut.
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(frame) = sse.frame().await {
                frame.expect("the SSE body ends cleanly, not with an error");
            }
        })
        .await
        .expect("the SSE body ended");
        // WebSocket: Close 1012 (service restart).
        let code = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match ws.next().await {
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
                        break u16::from(frame.code)
                    }
                    Some(Ok(_)) => {}
                    other => panic!("no close frame: {other:?}"),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(code, 1012);
        // Long-poll: answered at once with its cursor.
        let (status, _, body) = poll.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["cursor"], cursor.as_str());

        let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .expect("the process exits after the drain")
            .unwrap();
        assert!(exit.success(), "exit status {exit:?}");
    }

    /// With the Redis backbone, two instances share one room: a message posted on A reaches
    /// a long-poll on B, and a ticket minted on A is refused on B after A redeemed it.
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
        let tickets = Tickets::new(Key::new(1, b"shared by both chat instances!!!"));
        let mut servers = Vec::new();
        for _ in 0..2 {
            let hub = RedisHub::connect(&url, &prefix)
                .await
                .expect("Redis answers");
            let (tickets, store) = (tickets.clone(), RedisTicketStore::new(&hub));
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

    /// The real-browser test: headless Chromium, driven by playwright-core, as two users over
    /// each transport, through a server-side drop of every connection; then the fallback when
    /// WebSocket is refused. It saves the screenshot README.md shows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_browsers_chat_over_every_transport() {
        let server = Server::start(memory_app, false).await;
        let no_websocket = Server::start(memory_app, true).await;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
        let screenshot = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/chat.png");
        let mut node = tokio::process::Command::new("node")
            .current_dir(dir)
            .arg("chat.mjs")
            .arg(format!("http://{}/", server.addr))
            .arg(format!("http://{}/", no_websocket.addr))
            .arg(screenshot)
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
    }
}
