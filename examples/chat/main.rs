//! The demo chat: rooms and direct messages on one connection, every transport, auth tickets
//! carrying the topics they allow, resume, Origin policy, one page.
//!
//! Run with `cargo run --example chat` and open <http://127.0.0.1:3000> (the default room) or
//! <http://127.0.0.1:3000/?room=NAME> (another room). `PORT` changes the
//! port; `BIND` binds another address (for example `BIND=0.0.0.0`); `REDIS_URL` uses the
//! Redis backbone (`cargo run --example chat --features redis`) and `NATS_URL` the NATS
//! JetStream one (`cargo run --example chat --features nats`; it wins when both are set), so
//! two processes on two ports share one room; `ALLOWED_ORIGINS` (comma-separated) adds origins to the allow-list;
//! `TICKET_SECRET` sets the ticket key (default: random per process; set the same secret on
//! every instance when a ticket minted on one may be used on another).
//!
//! # HTTP contract (public and stable; tests outside this repository rely on it)
//!
//! * `GET /` - the chat page: HTML + JS, no build step, nothing from a CDN. `GET /?room=NAME`
//!   joins room `NAME` (1 to 32 ASCII letters, digits, `-`, `_`); the default room is `room`.
//! * `GET /tower-push.js` - the browser client.
//! * `POST /api/ticket` with JSON `{"user":"alice"}` (and optionally `"room":"NAME"`) - `200`
//!   JSON `{"ticket":"...","expires_in":N,"topics":["room","dm:..."]}`: the ticket allows
//!   exactly those topics, the room and the user's direct messages; a missing or empty user,
//!   or a bad room name - `400`. (The demo trusts the name; real apps mint from their own
//!   auth.)
//! * `GET /api/events?ticket=T` (+ optional `lastEventId=C` or the `Last-Event-ID` header):
//!   WebSocket when it is an upgrade, SSE when `Accept: text/event-stream`, long-poll JSON
//!   otherwise; `401` without a valid ticket; a request from a foreign `Origin` - `403`.
//!   Without `topic` parameters it reads the default room, as it always did. With
//!   `&topic=..` (the `topics` the ticket answer lists) it reads those topics on one
//!   connection with one cursor; a topic the ticket does not allow - `403`, a bad or a ninth
//!   topic - `400`, all before any upgrade. Those events name their topic (SSE: the event is
//!   `message@TOPIC`; JSON: a `"topic"` field).
//! * `POST /api/messages` with JSON `{"user":"alice","text":"hi"}` - `202`, to the default
//!   room; with `"room":"NAME"`, to that room; with `"to":"bob"`, a direct message to bob's
//!   (and alice's own) topic. The text arrives exactly as sent; empty, whitespace-only or
//!   over-long (over 1,000 characters) text, or a bad room name - `400`; the backbone
//!   unreachable - `503` with `Retry-After`. On a WebSocket the client may instead send
//!   `{"text":"hi"}` (to its room) or `{"text":"hi","to":"bob"}` (the user is the ticket's
//!   principal).
//! * API request bodies over 4 KiB - `413`; an API request not complete within 10 s (a body
//!   sent too slowly) - `408`.
//! * Each chat message reaches every subscriber as an event named `message` whose data is
//!   JSON `{"user":...,"text":...}` (plus `"to"` for a direct message) and whose id is its
//!   cursor.
//! * `GET /healthz` - `200 ok` while the process answers (liveness); `GET /readyz` - `200
//!   ready`, or `503` with `Retry-After` and the reasons while it drains or its backbone is
//!   down (readiness). See `tower_push::health` for Kubernetes probes.
//! * `GET /metrics` (with `--features metrics`) - Prometheus text: connections, deliveries,
//!   bytes, refusals, resets and more (see `tower_push::observe`).
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
use futures_util::future::Either;
use rooms::message;
use serde::Deserialize;
use std::{net::SocketAddr, time::Duration};
use tower::{service_fn, ServiceBuilder, ServiceExt as _};
use tower_push::{
    auth_ticket::{AuthTicketLayer, Binding, Key, MemoryTicketStore, TicketStore, Tickets},
    client::ClientScript,
    cursor::{LastEventId, StartAt},
    drain::Drain,
    health::Health,
    heartbeat::HeartbeatLayer,
    hub::{check_access, Hub, MemoryHub, Topics, TopicsSubscription},
    limit::ConnectionLimitLayer,
    negotiate::NegotiateLayer,
    origin::OriginLayer,
    principal::Principal,
    serve::{self, Server},
    sse::SseLayer,
    ws::{Inbound, Message, WsLayer},
    Event, Reject,
};

mod rooms;

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
    room: Option<String>,
}

#[derive(Deserialize)]
struct MessageRequest {
    user: Option<String>,
    text: Option<String>,
    room: Option<String>,
    to: Option<String>,
}

fn bad_request(message: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

fn valid_user(user: Option<String>) -> Option<String> {
    let user = user?.trim().to_owned();
    (!user.is_empty() && user.chars().count() <= MAX_USER).then_some(user)
}

async fn mint<H: Hub>(State(chat): State<Chat<H>>, body: Option<Json<TicketRequest>>) -> Response {
    let Some(Json(body)) = body else {
        return bad_request("JSON {\"user\":...} is required\n");
    };
    let Some(user) = valid_user(body.user) else {
        return bad_request("a non-empty \"user\" is required\n");
    };
    let room = match rooms::room(body.room.as_deref()) {
        Ok(room) => room,
        Err(message) => return bad_request(message),
    };
    // The ticket allows exactly the room and the user's direct messages, signed inside it.
    let (topics, grant) = rooms::grant(&user, &room);
    match chat
        .tickets
        .mint(&user, &Binding::new().path("/api/events").topics(grant))
    {
        Ok(ticket) => (
            [(http::header::CACHE_CONTROL, "no-store")],
            Json(serde_json::json!({
                "ticket": ticket.as_str(),
                "expires_in": ticket.expires_in().as_secs(),
                "topics": topics,
            })),
        )
            .into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
}

/// Publishes `event` to each topic; the first failure is the answer.
async fn publish_all<H: Hub>(hub: &H, topics: &[String], event: Event) -> Result<(), H::Error> {
    for topic in topics {
        hub.publish(topic, event.clone()).await?;
    }
    Ok(())
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
    let room = match rooms::room(body.room.as_deref()) {
        Ok(room) => room,
        Err(message) => return bad_request(message),
    };
    let to = match body.to.map(|to| valid_user(Some(to))) {
        None => None,
        Some(Some(to)) => Some(to),
        Some(None) => return bad_request("\"to\" must be a non-empty user name\n"),
    };
    let text = body.text.as_deref().unwrap_or("");
    let Some(event) = message(&user, text, to.as_deref()) else {
        return bad_request("\"text\" must be 1 to 1000 characters, not only spaces\n");
    };
    let destinations = rooms::destinations(&user, &room, to.as_deref());
    match publish_all(&chat.hub, &destinations, event).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(http::header::RETRY_AFTER, "1")],
            error.to_string(),
        )
            .into_response(),
    }
}

/// The push endpoint's inner service. With `?topic=` parameters: those topics on one
/// connection (the room and the user's direct messages, as the ticket allows); without: the
/// default room, as before rooms. Messages sent over a WebSocket are published as the
/// ticket's principal, to the connection's room or, with `"to"`, as a direct message.
fn events<H: Hub, B: Send + 'static>(
    hub: H,
) -> impl tower::Service<
    http::Request<B>,
    Response = Either<H::Subscription, TopicsSubscription<H::Subscription>>,
    Error = Reject,
    Future: Send,
> + Clone
       + Send
       + 'static {
    let topics = Topics::new(hub.clone()).authorize(rooms::authorize);
    service_fn(move |req: http::Request<B>| {
        let hub = hub.clone();
        let topics = topics.clone();
        async move {
            let (parts, body) = req.into_parts();
            let multi = rooms::asks_for_topics(&parts);
            // The topics as `Topics` reads them (decoded once, the same way), so the room a
            // WebSocket's messages go to is the room it reads.
            let room = if multi {
                rooms::connection_room(&topics.requested_topics(&parts)?)
            } else {
                rooms::DEFAULT_ROOM.to_owned()
            };
            let user = parts
                .extensions
                .get::<Principal>()
                .map(|p| p.as_str().to_owned());
            if let (Some(inbound), Some(user)) = (parts.extensions.get::<Inbound>().cloned(), user)
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
                            to: Option<String>,
                        }
                        let Ok(said) = serde_json::from_str::<Said>(&text) else {
                            continue;
                        };
                        let to = said.to.and_then(|to| valid_user(Some(to)));
                        if let Some(event) = message(&user, &said.text, to.as_deref()) {
                            let destinations = rooms::destinations(&user, &room, to.as_deref());
                            let _ = publish_all(&hub, &destinations, event).await;
                        }
                    }
                });
            }
            if multi {
                let req = http::Request::from_parts(parts, body);
                return topics.oneshot(req).await.map(Either::Right);
            }
            // The ticket's grant covers the default room too (403 otherwise).
            check_access(&parts.extensions, rooms::DEFAULT_ROOM)?;
            // The cursor, parsed once here: one that is not a cursor at all is a `400`.
            let from = StartAt::parse(parts.extensions.get::<LastEventId>().map(|c| c.as_str()))?;
            Ok(Either::Left(hub.subscribe(rooms::DEFAULT_ROOM, from)))
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
        .service(events(hub.clone()));
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
    // Probes: alive while the process answers; ready while not draining and while the
    // backbone is up.
    let health = Health::new().drain(drain).hub(hub.clone());
    let router = Router::new()
        .route("/", get(|| async { page() }))
        .route_service("/healthz", health.liveness())
        .route_service("/readyz", health.readiness())
        .route_service("/tower-push.js", ClientScript)
        .merge(api)
        .route_service("/api/events", events);
    // With the `metrics` feature: Prometheus text at `GET /metrics`.
    #[cfg(feature = "metrics")]
    let router = {
        let prometheus = metrics_handle();
        router.route(
            "/metrics",
            get(move || async move {
                prometheus.run_upkeep();
                prometheus.render()
            }),
        )
    };
    router.with_state(Chat { hub, tickets })
}

/// The process's Prometheus recorder, installed on first use, with tower-push's metric
/// descriptions.
#[cfg(feature = "metrics")]
fn metrics_handle() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the only metrics recorder of this process");
        tower_push::observe::describe();
        handle
    })
}

fn origins_for(addr: SocketAddr) -> Vec<String> {
    let scheme = scheme();
    let mut origins = vec![
        format!("{scheme}://{addr}"),
        format!("{scheme}://localhost:{}", addr.port()),
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

/// The app on the backbone `NATS_URL` or `REDIS_URL` names (or in memory), with the drain
/// that ends its push streams.
async fn app_from_env(addr: SocketAddr, drain: &Drain) -> Router {
    let origins = origins_for(addr);
    if let Ok(url) = std::env::var("NATS_URL") {
        #[cfg(feature = "nats")]
        {
            let hub = tower_push::hub::NatsHub::connect(&url, "tower-push-chat")
                .await
                .expect("NATS with JetStream at NATS_URL");
            let store = tower_push::auth_ticket::NatsTicketStore::new(&hub)
                .await
                .expect("NATS with JetStream at NATS_URL");
            println!(
                "chat on {}://{addr} (NATS JetStream backbone at {url})",
                scheme()
            );
            return app(hub, tickets(), store, &origins, drain);
        }
        #[cfg(not(feature = "nats"))]
        panic!(
            "NATS_URL ({url}) needs the `nats` feature: cargo run --example chat --features nats"
        );
    }
    match std::env::var("REDIS_URL") {
        #[cfg(feature = "redis")]
        Ok(url) => {
            let hub = tower_push::hub::RedisHub::connect(&url, "tower-push-chat")
                .await
                .expect("Redis at REDIS_URL");
            let store = tower_push::auth_ticket::RedisTicketStore::new(&hub);
            println!("chat on {}://{addr} (Redis backbone at {url})", scheme());
            app(hub, tickets(), store, &origins, drain)
        }
        #[cfg(not(feature = "redis"))]
        Ok(_) => {
            panic!("REDIS_URL needs the `redis` feature: cargo run --example chat --features redis")
        }
        Err(_) => {
            println!("chat on {}://{addr} (in-memory hub)", scheme());
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
    let server = with_tls(Server::new(&drain));
    let report = server.run(listener, app, serve::shutdown_signal()).await;
    println!(
        "shut down in {:?} ({} push streams, {} connections still open)",
        report.took, report.streams, report.connections
    );
}

/// `https` when the chat serves TLS.
fn scheme() -> &'static str {
    if tls_files().is_some() {
        "https"
    } else {
        "http"
    }
}

/// `TLS_CERT` and `TLS_KEY`, the PEM files of a certificate and its key, when both are set.
fn tls_files() -> Option<(String, String)> {
    Some((
        std::env::var("TLS_CERT").ok()?,
        std::env::var("TLS_KEY").ok()?,
    ))
}

/// HTTPS (ALPN `h2` and `http/1.1`) with `TLS_CERT` and `TLS_KEY`; `H2_WEBSOCKET=off` keeps
/// WebSockets off HTTP/2 (browsers then open an HTTP/1.1 connection for each).
fn with_tls(server: Server) -> Server {
    let server = server.extended_connect(std::env::var("H2_WEBSOCKET").as_deref() != Ok("off"));
    let Some((cert, key)) = tls_files() else {
        return server;
    };
    #[cfg(feature = "tls")]
    {
        let tls = tower_push::serve::Tls::from_pem_files(&cert, &key)
            .unwrap_or_else(|error| panic!("TLS_CERT / TLS_KEY: {error}"));
        println!("serving HTTPS (HTTP/2 and HTTP/1.1) with {cert}");
        server.tls(tls)
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (server, key);
        panic!("TLS_CERT ({cert}) needs the `tls` feature: cargo run --example chat --features tls")
    }
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

const PAGE: &str = include_str!("page.html");

/// The page, with a strict policy: its one inline script and style allowed by their hashes,
/// scripts otherwise only from this origin, connections (`fetch`, WebSocket) only to it, no
/// framing, no other resources; and no MIME sniffing.
fn page() -> impl IntoResponse {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        format!(
            "default-src 'none'; script-src 'self' {}; style-src {}; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            inline_hash(PAGE, "<script>", "</script>"),
            inline_hash(PAGE, "<style>", "</style>"),
        )
    });
    (
        [
            (http::header::CONTENT_SECURITY_POLICY, policy.as_str()),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (http::header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
}

/// The CSP source (`'sha256-...'`) of the text between `open` and the next `close` in `page`.
fn inline_hash(page: &str, open: &str, close: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let start = page.find(open).expect("the page has the element") + open.len();
    let end = start + page[start..].find(close).expect("the element is closed");
    let digest = sha2::Sha256::digest(&page.as_bytes()[start..end]);
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests;
