//! Live order status on axum: a ticket per order, the topic from the path, every transport,
//! resume. What a new user builds first, end to end:
//!
//! - `POST /orders/{id}/ticket` (your own auth: here the `x-user` header) mints a ticket good
//!   only on `/orders/{id}/events` for the topic `order:{id}`, after checking the user owns
//!   the order (`403` otherwise);
//! - `GET /orders/{id}/events?ticket=..` streams `order:{id}` over WebSocket, SSE or long-poll
//!   (`Subscribe::from_fn` takes the topic from the path; the ticket's grant and path refuse
//!   any other order); a reconnect mints a new ticket and resumes with `Last-Event-ID` or
//!   `?lastEventId=`;
//! - `POST /orders/{id}/status` publishes a status (a named event, `status`);
//! - `/tower-push.js` and `/tower-push.d.ts`: the browser client and its types.
//!
//! ```text
//! cargo run --example orders
//! curl -s -X POST -H 'x-user: alice' localhost:3000/orders/1/ticket
//! curl -N -H 'accept: text/event-stream' 'localhost:3000/orders/1/events?ticket=TICKET'
//! curl -d paid -H 'x-user: alice' localhost:3000/orders/1/status
//! ```

use axum::{
    extract::{Path, State},
    routing::post,
    Router,
};
use http::{request::Parts, Request, StatusCode};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_push::{
    auth_ticket::{AuthTicketLayer, Binding, Key, MintTicket, Tickets},
    client::ClientScript,
    drain::Drain,
    heartbeat::HeartbeatLayer,
    hub::{MemoryHub, Subscribe},
    negotiate::NegotiateLayer,
    principal::Principal,
    serve::{self, Server},
    topic::TopicGrant,
    Event, Reject,
};

/// Who owns which order (your database).
fn owner(order: &str) -> Option<&'static str> {
    match order {
        "1" => Some("alice"),
        "2" => Some("bob"),
        _ => None,
    }
}

/// The order id in `/orders/{id}/{rest}`.
fn order_in(parts: &Parts, rest: &str) -> Result<String, Reject> {
    parts
        .uri
        .path()
        .strip_prefix("/orders/")
        .and_then(|p| p.strip_suffix(rest))
        .filter(|id| owner(id).is_some())
        .map(str::to_owned)
        .ok_or_else(|| Reject::new(StatusCode::NOT_FOUND, "no such order"))
}

/// Demo authentication: the `x-user` header is the user (use your session or token layer).
fn authenticate<B>(mut req: Request<B>) -> Request<B> {
    if let Some(user) = req.headers().get("x-user").and_then(|v| v.to_str().ok()) {
        let user = user.to_owned();
        req.extensions_mut().insert(Principal::new(user));
    }
    req
}

/// `POST /orders/{id}/status`: the owner publishes a status.
async fn set_status(
    State(hub): State<MemoryHub>,
    Path(id): Path<String>,
    parts: Parts,
    body: String,
) -> Result<String, Reject> {
    let user = parts.extensions.get::<Principal>().map(Principal::as_str);
    if owner(&id).is_none() || user != owner(&id) {
        return Err(Reject::new(StatusCode::FORBIDDEN, "not your order"));
    }
    let event = Event::new()
        .event("status")
        .map_err(|e| Reject::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .data(body);
    Ok(hub
        .publish_now(&format!("order:{id}"), event)
        .unwrap()
        .to_string())
}

fn app(hub: MemoryHub, tickets: Tickets, drain: &Drain) -> Router {
    // A ticket per order: bound to that order's push path and topic, for its owner only.
    let mint = MintTicket::new(tickets.clone()).bind_with(|parts, principal| {
        let id = order_in(parts, "/ticket")?;
        if owner(&id) != Some(principal.as_str()) {
            return Err(Reject::new(StatusCode::FORBIDDEN, "not your order"));
        }
        let grant = TopicGrant::new([format!("order:{id}")])
            .map_err(|e| Reject::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        Ok(Binding::new()
            .path(format!("/orders/{id}/events"))
            .topics(grant))
    });
    let events = ServiceBuilder::new()
        .layer(AuthTicketLayer::new(tickets))
        .layer(NegotiateLayer::new())
        .layer(drain.layer())
        .layer(HeartbeatLayer::new(Duration::from_secs(15)))
        .service(Subscribe::from_fn(hub.clone(), |parts| {
            Ok(format!("order:{}", order_in(parts, "/events")?))
        }));
    Router::new()
        .route_service("/orders/{id}/events", events)
        .route_service(
            "/orders/{id}/ticket",
            ServiceBuilder::new()
                .map_request(authenticate::<axum::body::Body>)
                .service(mint),
        )
        .route(
            "/orders/{id}/status",
            post(set_status).layer(axum::middleware::map_request(
                |req: Request<axum::body::Body>| async move { authenticate(req) },
            )),
        )
        .route_service("/tower-push.js", ClientScript)
        .route_service("/tower-push.d.ts", ClientScript)
        .with_state(hub)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let drain = Drain::new();
    let app = app(MemoryHub::new(), Tickets::new(Key::generate(1)), &drain);
    println!("orders on http://{}", listener.local_addr()?);
    Server::new(&drain)
        .run(listener, app, serve::shutdown_signal())
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::StreamExt as _;
    use http_body_util::{BodyExt as _, Empty, Full};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    use std::net::SocketAddr;

    async fn start() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let drain = Drain::new();
        let app = app(MemoryHub::new(), Tickets::new(Key::generate(1)), &drain);
        tokio::spawn(async move {
            Server::new(&drain)
                .run(listener, app, std::future::pending())
                .await;
        });
        addr
    }

    async fn post(addr: SocketAddr, path: &str, user: &str, body: &str) -> (StatusCode, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = Request::post(format!("http://{addr}{path}"))
            .header("x-user", user)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let res = client.request(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn ticket(addr: SocketAddr, order: &str, user: &str) -> (StatusCode, String) {
        let (status, body) = post(addr, &format!("/orders/{order}/ticket"), user, "").await;
        if status != StatusCode::OK {
            return (status, body);
        }
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json["topics"],
            serde_json::json!([format!("order:{order}")])
        );
        (status, json["ticket"].as_str().unwrap().to_owned())
    }

    type Events = std::pin::Pin<Box<dyn futures_util::Stream<Item = eventsource_stream::Event>>>;

    async fn sse(addr: SocketAddr, path: &str, last: Option<&str>) -> (StatusCode, Events) {
        use eventsource_stream::Eventsource as _;
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let mut req =
            Request::get(format!("http://{addr}{path}")).header("accept", "text/event-stream");
        if let Some(last) = last {
            req = req.header("last-event-id", last);
        }
        let res = client
            .request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let events = res
            .into_body()
            .into_data_stream()
            .eventsource()
            .filter_map(|e| async move { e.ok() });
        (status, Box::pin(events))
    }

    async fn next(events: &mut Events) -> eventsource_stream::Event {
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on")
    }

    /// Mint, connect, publish, reconnect with a new ticket and resume exactly; the ticket is
    /// good for its own order only, once, and only its owner gets one.
    #[tokio::test]
    async fn mint_connect_reconnect_and_resume() {
        let addr = start().await;
        let (status, t1) = ticket(addr, "1", "alice").await;
        assert_eq!(status, StatusCode::OK);
        let (status, mut events) = sse(addr, &format!("/orders/1/events?ticket={t1}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            post(addr, "/orders/1/status", "alice", "paid").await.0,
            StatusCode::OK
        );
        let paid = next(&mut events).await;
        assert_eq!(
            (paid.event.as_str(), paid.data.as_str()),
            ("status", "paid")
        );
        drop(events);

        // Missed while away, then a reconnect with a fresh ticket resumes exactly.
        post(addr, "/orders/1/status", "alice", "shipped").await;
        let (_, t2) = ticket(addr, "1", "alice").await;
        let (status, mut events) = sse(
            addr,
            &format!("/orders/1/events?ticket={t2}"),
            Some(&paid.id),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let shipped = next(&mut events).await;
        assert_eq!(
            (shipped.event.as_str(), shipped.data.as_str()),
            ("status", "shipped")
        );

        // The same ticket again: single use.
        assert_eq!(
            sse(addr, &format!("/orders/1/events?ticket={t2}"), None)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        // A ticket for order 1 on order 2's stream: refused before any stream.
        let (_, t3) = ticket(addr, "1", "alice").await;
        assert_eq!(
            sse(addr, &format!("/orders/2/events?ticket={t3}"), None)
                .await
                .0,
            StatusCode::UNAUTHORIZED,
            "bound to /orders/1/events"
        );
        // Bob's order: no ticket for alice; no status from alice.
        assert_eq!(ticket(addr, "2", "alice").await.0, StatusCode::FORBIDDEN);
        assert_eq!(
            post(addr, "/orders/2/status", "alice", "x").await.0,
            StatusCode::FORBIDDEN
        );
        // No user, no ticket.
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let res = client
            .request(
                Request::post(format!("http://{addr}/orders/1/ticket"))
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}
