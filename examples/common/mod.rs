//! What the framework examples (`axum`, `hyper`, `warp`) share, so each of their files shows
//! only how its framework mounts the push endpoint: the endpoint itself, the ticket mint that
//! stands in for your API, the CORS policy, a ticker that publishes, and the hardened server.

#![allow(dead_code)]

use bytes::Bytes;
use http::{header, HeaderName, Method, Request, Response};
use std::{convert::Infallible, future::Future, time::Duration};
use tower::{Service, ServiceBuilder};
use tower_http::{cors::CorsLayer, trace::TraceLayer};
use tower_push::{
    auth_ticket::{AuthTicketLayer, MintTicket, Tickets},
    drain::Drain,
    heartbeat::HeartbeatLayer,
    hub::{MemoryHub, Subscribe},
    last_event_id::LastEventIdLayer,
    negotiate::NegotiateLayer,
    origin::OriginLayer,
    principal::Principal,
    serve::Server,
    sse::SseLayer,
    BoxError, Event,
};

/// The push endpoint on the hub's `ticks` topic, outermost layer first: the Origin policy,
/// auth tickets, tracing (inside the ticket layer, so traces never see a ticket),
/// Last-Event-ID, every transport, the drain (shutdown ends every stream: SSE ends,
/// WebSocket 1012, a held poll answers) and heartbeats.
pub(crate) fn events<B>(
    hub: MemoryHub,
    tickets: &Tickets,
    origins: &[String],
    drain: &Drain,
) -> impl Service<
    Request<B>,
    Response = Response<
        impl http_body::Body<Data = Bytes, Error = impl Into<BoxError>> + Send + 'static,
    >,
    Error = Infallible,
    Future: Send,
> + Clone
       + Send
       + Sync
       + 'static
where
    B: http_body::Body + Send + 'static,
{
    ServiceBuilder::new()
        .layer(OriginLayer::new(origins))
        .layer(AuthTicketLayer::new(tickets.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(LastEventIdLayer::new())
        .layer(NegotiateLayer::new().sse(SseLayer::new().retry(Duration::from_secs(2))))
        .layer(drain.layer())
        .layer(HeartbeatLayer::new(Duration::from_secs(15)))
        .service(Subscribe::new(hub, "ticks"))
}

/// Mints a ticket for the caller: stands in for your own authenticated API, which would put
/// the real user's `Principal` in the request.
pub(crate) fn mint<B: Send + 'static>(
    tickets: &Tickets,
) -> impl Service<
    Request<B>,
    Response = Response<
        impl http_body::Body<Data = Bytes, Error = impl Into<BoxError>> + Send + 'static,
    >,
    Error = Infallible,
    Future: Send,
> + Clone
       + Send
       + Sync
       + 'static {
    ServiceBuilder::new()
        .map_request(|mut req: Request<B>| {
            req.extensions_mut().insert(Principal::new("demo-user"));
            req
        })
        .service(MintTicket::new(tickets.clone()).bind_path("/events"))
}

/// CORS for cross-origin `EventSource` and `fetch`: `Last-Event-ID` must be an allowed header.
pub(crate) fn cors(origins: &[String]) -> CorsLayer {
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
        ])
}

/// Publishes a `tick` event every `every`.
pub(crate) fn spawn_ticker(hub: MemoryHub, every: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        for n in 0u64.. {
            interval.tick().await;
            let tick = Event::new()
                .event("tick")
                .expect("a valid name")
                .data(format!("tick {n}"));
            hub.publish_now("ticks", tick).unwrap();
        }
    });
}

/// Binds 127.0.0.1:`PORT` (default 3000).
pub(crate) async fn listener() -> tokio::net::TcpListener {
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
    listener
}

/// A response body of any kind, boxed (for routers written by hand).
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Boxes a response body.
pub(crate) fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt as _;
    body.map_err(Into::into).boxed_unsync()
}

/// Serves the app `make_app` builds until `shutdown`, with a hub that ticks every `ticks`, and
/// the hardened recipe (`tower_push::serve::Server`): deadlines for clients that send slowly
/// or stop reading, header limits, HTTP/1.1 + h2c with WebSocket upgrades (RFC 6455 and RFC
/// 8441), and a shutdown that ends every push stream and always finishes.
pub(crate) async fn serve<S, ResBody>(
    listener: tokio::net::TcpListener,
    ticks: Duration,
    make_app: impl FnOnce(MemoryHub, Tickets, &[String], &Drain) -> S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<hyper::body::Incoming>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    let hub = MemoryHub::new();
    spawn_ticker(hub.clone(), ticks);
    let tickets = Tickets::new(tower_push::auth_ticket::Key::generate(1));
    let origins = [format!("http://{}", listener.local_addr().expect("bound"))];
    let drain = Drain::new();
    let app = make_app(hub, tickets, &origins, &drain);
    Server::new(&drain).run(listener, app, shutdown).await;
}
