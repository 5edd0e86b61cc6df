//! tower-push on plain hyper: one push endpoint (WebSocket, SSE or long-poll per request,
//! heartbeat, Last-Event-ID, auth tickets, Origin policy) beside an ordinary route, with
//! tower-http's trace and CORS layers, served over HTTP/1.1 and h2c.
//!
//! Run with `cargo run --example hyper`, then (`PORT` changes the port from 3000):
//!
//! ```text
//! T=$(curl -s -X POST localhost:3000/ticket | jq -r .ticket)
//! curl -N -H 'accept: text/event-stream' "localhost:3000/events?ticket=$T"   # SSE
//! curl "localhost:3000/events?ticket=$T2&lastEventId=<cursor>"              # long-poll
//! ```
//!
//! The endpoint's layers are in `common/mod.rs` (shared with the axum and warp examples);
//! this file is what is specific to hyper: routing by hand in a `service_fn`.

#[path = "common/mod.rs"]
mod common;

use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use std::{convert::Infallible, time::Duration};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_push::{auth_ticket::Tickets, drain::Drain, hub::MemoryHub, serve};

/// The app: `GET /hello`, `POST /ticket` (stands in for your authenticated API), and the push
/// endpoint `/events` on the hub's `ticks` topic.
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
    let routes = service_fn(move |req: Request<Incoming>| {
        let (events, mint) = (events.clone(), mint.clone());
        async move {
            let res = match req.uri().path() {
                "/events" => events.oneshot(req).await?.map(common::boxed),
                "/ticket" if req.method() == Method::POST => {
                    mint.oneshot(req).await?.map(common::boxed)
                }
                _ => Response::new(common::boxed(Full::from("hello from hyper\n"))),
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
        super::checks::serve_and_check(super::app, "hello from hyper\n").await;
    }
}
