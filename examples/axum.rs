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
//!
//! The endpoint's layers are in `common/mod.rs` (shared with the hyper and warp examples);
//! this file is what is specific to axum: `route_service` mounts tower services as they are.

#[path = "common/mod.rs"]
mod common;

use axum::{routing::get, Router};
use std::time::Duration;
use tower_push::{auth_ticket::Tickets, drain::Drain, hub::MemoryHub, serve};

fn app(hub: MemoryHub, tickets: Tickets, origins: &[String], drain: &Drain) -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello from axum\n" }))
        .route_service("/ticket", common::mint(&tickets))
        .route_service("/events", common::events(hub, &tickets, origins, drain))
        .layer(common::cors(origins))
}

// axum's Router is a tower service: it is served with the hardened recipe (deadlines for
// clients that send slowly or stop reading, header limits, and a shutdown on SIGTERM or Ctrl-C
// that ends every push stream and always finishes), which `axum::serve` lacks.
#[tokio::main]
async fn main() {
    common::serve(
        common::listener().await,
        Duration::from_secs(1),
        app,
        serve::shutdown_signal(),
    )
    .await;
}

#[cfg(test)]
#[path = "checks/mod.rs"]
mod checks;

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn serves_every_transport_beside_an_ordinary_route() {
        super::checks::serve_and_check(super::app, "hello from axum\n").await;
    }
}
