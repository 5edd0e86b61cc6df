//! tower-push with warp: warp's own routes and one push endpoint (WebSocket, SSE or long-poll
//! per request, heartbeat, Last-Event-ID, auth tickets, Origin policy) in one tower stack, as
//! tower-http's warp example builds it: `warp::service(filter)` -> `ServiceBuilder` layers ->
//! `TowerToHyperService`.
//!
//! Run with `cargo run --example warp`, then (`PORT` changes the port from 3000):
//!
//! ```text
//! T=$(curl -s -X POST localhost:3000/ticket | jq -r .ticket)
//! curl -N -H 'accept: text/event-stream' "localhost:3000/events?ticket=$T"   # SSE
//! curl "localhost:3000/events?ticket=$T2&lastEventId=<cursor>"              # long-poll
//! ```

use bytes::Bytes;
use http::{header, HeaderName, Method, Request, Response};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt};
use hyper::body::Incoming;
use std::{convert::Infallible, time::Duration};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
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
    BoxError, Event,
};

type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The app: warp serves `GET /hello`; `POST /ticket` (stands in for your authenticated API)
/// and the push endpoint `/events` on the hub's `ticks` topic sit beside it.
fn app(
    hub: MemoryHub,
    tickets: Tickets,
    origins: &[String],
    drain: &Drain,
) -> impl Service<Request<Incoming>, Response = Response<Body>, Error = Infallible, Future: Send>
       + Clone
       + Send
       + 'static {
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
    let mint = MintTicket::new(tickets).bind_path("/events");
    use warp::Filter as _;
    let hello = warp::path("hello")
        .and(warp::get())
        .map(|| String::from("hello from warp\n"));
    let warp_routes = warp::service(hello);
    let routes = service_fn(move |mut req: Request<Incoming>| {
        let (events, mint, warp_routes) = (events.clone(), mint.clone(), warp_routes);
        async move {
            let res = match req.uri().path() {
                "/events" => events
                    .oneshot(req)
                    .await?
                    .map(|b| b.map_err(BoxError::from).boxed_unsync()),
                "/ticket" if req.method() == Method::POST => {
                    req.extensions_mut().insert(Principal::new("demo-user"));
                    mint.oneshot(req)
                        .await?
                        .map(|b| b.map_err(BoxError::from).boxed_unsync())
                }
                _ => warp_routes
                    .oneshot(req)
                    .await?
                    .map(|b| b.map_err(BoxError::from).boxed_unsync()),
            };
            Ok::<_, Infallible>(res)
        }
    });
    // CORS for cross-origin EventSource and fetch: `Last-Event-ID` must be an allowed header.
    ServiceBuilder::new()
        .layer(
            CorsLayer::new()
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
                ]),
        )
        .service(routes)
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

/// Serves the app until `shutdown`, with the hardened recipe: deadlines for clients that
/// send slowly or stop reading, header limits, HTTP/1.1 + h2c with WebSocket upgrades (RFC
/// 6455 and RFC 8441), and a shutdown that ends every push stream and always finishes.
async fn serve(
    listener: tokio::net::TcpListener,
    hub: MemoryHub,
    tickets: Tickets,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let origins = [format!("http://{}", listener.local_addr().expect("bound"))];
    let drain = Drain::new();
    let app = app(hub, tickets, &origins, &drain);
    Server::new(&drain).run(listener, app, shutdown).await;
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
    println!(
        "listening on http://{}",
        listener.local_addr().expect("bound")
    );
    let hub = MemoryHub::new();
    spawn_ticker(hub.clone(), Duration::from_secs(1));
    serve(
        listener,
        hub,
        Tickets::new(Key::generate(1)),
        serve::shutdown_signal(),
    )
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
        tokio::spawn(serve(
            listener,
            hub,
            Tickets::new(Key::generate(1)),
            std::future::pending(),
        ));
        checks::every_transport(addr, "hello from warp\n").await;
    }
}
