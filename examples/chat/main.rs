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
    let router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
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

const PAGE: &str = include_str!("page.html");

#[cfg(test)]
mod tests;
