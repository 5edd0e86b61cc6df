//! tower-push with warp: warp's own routes and one push endpoint (WebSocket, SSE or long-poll
//! per request, heartbeat, Last-Event-ID, auth tickets, Origin policy) in one tower stack, as
//! tower-http's warp example builds it: `warp::service(filter)` -> `ServiceBuilder` layers ->
//! the server.
//!
//! Run with `cargo run --example warp`, then (`PORT` changes the port from 3000):
//!
//! ```text
//! T=$(curl -s -X POST localhost:3000/ticket | jq -r .ticket)
//! curl -N -H 'accept: text/event-stream' "localhost:3000/events?ticket=$T"   # SSE
//! curl "localhost:3000/events?ticket=$T2&lastEventId=<cursor>"              # long-poll
//! ```
//!
//! The endpoint's layers are in `common/mod.rs` (shared with the axum and hyper examples);
//! this file is what is specific to warp: its filters as one tower service beside ours.

#[path = "common/mod.rs"]
mod common;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use std::{convert::Infallible, time::Duration};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_push::{auth_ticket::Tickets, drain::Drain, hub::MemoryHub, serve};

/// The app: warp serves `GET /hello`; `POST /ticket` (stands in for your authenticated API)
/// and the push endpoint `/events` on the hub's `ticks` topic sit beside it.
fn app(
    hub: MemoryHub,
    tickets: Tickets,
    origins: &[String],
    drain: &Drain,
) -> impl Service<
    Request<Incoming>,
    Response = Response<common::Body>,
    Error = Infallible,
    Future: Send,
> + Clone
       + Send
       + 'static {
    let events = common::events(hub, &tickets, origins, drain);
    let mint = common::mint(&tickets);
    use warp::Filter as _;
    let hello = warp::path("hello")
        .and(warp::get())
        .map(|| String::from("hello from warp\n"));
    let warp_routes = warp::service(hello);
    let routes = service_fn(move |req: Request<Incoming>| {
        let (events, mint, warp_routes) = (events.clone(), mint.clone(), warp_routes);
        async move {
            let res = match req.uri().path() {
                "/events" => events.oneshot(req).await?.map(common::boxed),
                "/ticket" if req.method() == Method::POST => {
                    mint.oneshot(req).await?.map(common::boxed)
                }
                _ => warp_routes.oneshot(req).await?.map(common::boxed),
            };
            Ok::<_, Infallible>(res)
        }
    });
    ServiceBuilder::new()
        .layer(common::cors(origins))
        .service(routes)
}

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
        super::checks::serve_and_check(super::app, "hello from warp\n").await;
    }
}
