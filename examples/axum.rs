//! tower-push in axum: one push endpoint (WebSocket, SSE or long-poll per request, heartbeat,
//! Last-Event-ID, auth tickets, Origin policy) beside ordinary routes, with tower-http's
//! trace and CORS layers.
//!
//! Run with `cargo run --example axum`, then (`PORT` changes the port from 3000):
//!
//! ```text
//! T=$(curl -s -X POST localhost:3000/ticket | jq -r .ticket)
//! curl -N -H 'accept: text/event-stream' "localhost:3000/events?ticket=$T"
//! ```

use axum::{routing::get, Router};
use http::{header, HeaderName, Method};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::{cors::CorsLayer, trace::TraceLayer};
use tower_push::{
    auth_ticket::{AuthTicketLayer, Key, MintTicket, Principal, Tickets},
    drain::Drain,
    heartbeat::HeartbeatLayer,
    hub::{MemoryHub, Subscribe},
    last_event_id::LastEventIdLayer,
    negotiate::NegotiateLayer,
    origin::OriginLayer,
    serve::{self, Server},
    sse::SseLayer,
    Event,
};

fn app(hub: MemoryHub, tickets: Tickets, origins: &[String], drain: &Drain) -> Router {
    // The push endpoint: outermost first.
    let events = ServiceBuilder::new()
        .layer(OriginLayer::new(origins))
        .layer(AuthTicketLayer::new(tickets.clone()))
        // Inside the ticket layer: traces never see a ticket.
        .layer(TraceLayer::new_for_http())
        .layer(LastEventIdLayer::new())
        .layer(NegotiateLayer::new().sse(SseLayer::new().retry(Duration::from_secs(2))))
        // Shutdown ends every stream: SSE ends, WebSocket 1012, a held poll answers.
        .layer(drain.layer())
        .layer(HeartbeatLayer::new(Duration::from_secs(15)))
        .service(Subscribe::new(hub, "ticks"));
    // Stands in for your own authenticated API: it mints a ticket for the caller.
    let mint = ServiceBuilder::new()
        .map_request(|mut req: http::Request<axum::body::Body>| {
            req.extensions_mut().insert(Principal::new("demo-user"));
            req
        })
        .service(MintTicket::new(tickets).bind_path("/events"));
    // CORS for cross-origin EventSource and fetch: `Last-Event-ID` must be an allowed header.
    let cors = CorsLayer::new()
        .allow_origin(
            origins
                .iter()
                .filter_map(|o| o.parse().ok())
                .collect::<Vec<_>>(),
        )
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ]);
    Router::new()
        .route("/hello", get(|| async { "hello from axum\n" }))
        .route_service("/ticket", mint)
        .route_service("/events", events)
        .layer(cors)
}

fn spawn_ticker(hub: MemoryHub, every: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        for n in 0u64.. {
            interval.tick().await;
            let tick = Event::new()
                .event("tick")
                .expect("a valid name")
                .data(format!("tick {n}"));
            hub.publish_now("ticks", tick);
        }
    });
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound");
    let hub = MemoryHub::new();
    spawn_ticker(hub.clone(), Duration::from_secs(1));
    let origins = [format!("http://{addr}")];
    println!("listening on http://{addr}");
    // axum's Router is a tower service: serve it with the hardened recipe (deadlines for
    // clients that send slowly or stop reading, header limits, and a shutdown on SIGTERM or
    // Ctrl-C that ends every push stream and always finishes), which `axum::serve` lacks.
    let drain = Drain::new();
    let app = app(hub, Tickets::new(Key::generate(1)), &origins, &drain);
    Server::new(&drain)
        .run(listener, app, serve::shutdown_signal())
        .await;
}

#[cfg(test)]
#[path = "checks/mod.rs"]
mod checks;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_every_transport_beside_an_ordinary_route() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = MemoryHub::new();
        spawn_ticker(hub.clone(), Duration::from_millis(20));
        let origins = [format!("http://{addr}")];
        let drain = Drain::new();
        let app = app(hub, Tickets::new(Key::generate(1)), &origins, &drain);
        tokio::spawn(Server::new(&drain).run(listener, app, std::future::pending()));
        checks::every_transport(addr, "hello from axum\n").await;
    }
}
