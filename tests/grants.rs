#![cfg(all(
    feature = "negotiate",
    feature = "ws",
    feature = "hub",
    feature = "auth-ticket"
))]
//! Topic grants are enforced wherever a topic is chosen: `Subscribe` (a fixed topic or one
//! taken from the request), `Topics`, and a hand-written service through `check_access`. On
//! every transport, a ticket granted `order:1` opens `order:1` and gets `403` for `order:2`
//! before any upgrade; a ticket without grants keeps opening any topic; a refused topic is
//! never subscribed.

mod support;

use axum::{routing::any_service, Router};
use http::{request::Parts, StatusCode};
use std::net::SocketAddr;
use support::*;
use tower::{service_fn, ServiceBuilder};
use tower_push::{
    auth_ticket::{AuthTicketLayer, Binding, Key, RequireAuthTicket, Tickets},
    cursor::LastEventId,
    hub::{check_access, Hub, MemoryHub, Subscribe, Topics},
    negotiate::{Negotiate, NegotiateLayer},
    topic::TopicGrant,
    Reject,
};

/// Which inner service chooses the topic.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `Subscribe::new(hub, "order:1")` at `/fixed`.
    Fixed,
    /// `Subscribe::from_fn` at `/orders/{id}/events`.
    FromFn,
    /// `Topics` at `/topics?topic=`.
    Topics,
    /// A hand-written `service_fn` with `check_access` at `/hand/{id}`.
    Hand,
}

impl Kind {
    fn path(self, order: u32) -> String {
        match self {
            Kind::Fixed => "/fixed?".to_owned(),
            Kind::FromFn => format!("/orders/{order}/events?"),
            Kind::Topics => format!("/topics?topic=order:{order}&"),
            Kind::Hand => format!("/hand/{order}?"),
        }
    }
}

fn order_from_path(parts: &Parts, prefix: &str, suffix: &str) -> Result<String, Reject> {
    parts
        .uri
        .path()
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .map(|id| format!("order:{id}"))
        .ok_or_else(|| Reject::new(StatusCode::NOT_FOUND, "no such order"))
}

/// The push stack every route of the app shares: tickets, then the three transports.
fn stack<S>(tickets: &Tickets, svc: S) -> RequireAuthTicket<Negotiate<S>> {
    ServiceBuilder::new()
        .layer(AuthTicketLayer::new(tickets.clone()))
        .layer(NegotiateLayer::new())
        .service(svc)
}

async fn app(hub: &MemoryHub, tickets: &Tickets) -> SocketAddr {
    let hand_hub = hub.clone();
    let hand = service_fn(move |req: http::Request<axum::body::Body>| {
        let hub = hand_hub.clone();
        async move {
            let (parts, _) = req.into_parts();
            let topic = order_from_path(&parts, "/hand/", "")?;
            check_access(&parts.extensions, &topic)?;
            let from = parts
                .extensions
                .get::<LastEventId>()
                .map(LastEventId::as_str);
            let from = tower_push::cursor::StartAt::parse(from)?;
            Ok::<_, Reject>(hub.subscribe(&topic, from))
        }
    });
    let from_path = Subscribe::from_fn(hub.clone(), |parts| {
        order_from_path(parts, "/orders/", "/events")
    });
    let router = Router::new()
        .route_service(
            "/fixed",
            stack(tickets, Subscribe::new(hub.clone(), "order:1")),
        )
        .route_service("/orders/{id}/events", stack(tickets, from_path))
        .route_service("/topics", stack(tickets, Topics::new(hub.clone())))
        .route("/hand/{id}", any_service(stack(tickets, hand)));
    serve(router.into_service::<hyper::body::Incoming>()).await
}

/// A memory hub, its tickets and the app serving both.
async fn setup() -> (MemoryHub, Tickets, SocketAddr) {
    let hub = MemoryHub::new();
    let tickets = Tickets::new(Key::generate(1));
    let addr = app(&hub, &tickets).await;
    (hub, tickets, addr)
}

/// A ticket for alice without a grant.
fn ungranted(tickets: &Tickets) -> String {
    tickets
        .mint("alice", &Binding::new())
        .unwrap()
        .into_string()
}

fn opened(t: Transport) -> StatusCode {
    match t {
        Transport::Ws => StatusCode::SWITCHING_PROTOCOLS,
        _ => StatusCode::OK,
    }
}

async fn grant_is_enforced(kind: Kind, t: Transport) {
    let (hub, tickets, addr) = setup().await;
    let mint = |grant: Option<&str>| {
        let mut binding = Binding::new();
        if let Some(pattern) = grant {
            binding = binding.topics(TopicGrant::new([pattern]).unwrap());
        }
        tickets.mint("alice", &binding).unwrap().into_string()
    };
    let url = |order: u32, ticket: String| format!("{}ticket={ticket}", kind.path(order));

    // Granted exactly the topic the endpoint chooses: it opens.
    assert_eq!(
        status(t, addr, &url(1, mint(Some("order:1")))).await,
        opened(t),
        "{kind:?} {t:?}: granted topic"
    );
    // Granted another topic: 403 before any upgrade, and nothing subscribed.
    let other = match kind {
        Kind::Fixed => url(1, mint(Some("order:2"))),
        _ => url(2, mint(Some("order:1"))),
    };
    assert_eq!(
        status(t, addr, &other).await,
        StatusCode::FORBIDDEN,
        "{kind:?} {t:?}: ungranted topic"
    );
    let refused = match kind {
        Kind::Fixed => None,
        _ => Some("order:2"),
    };
    if let Some(refused) = refused {
        assert_eq!(
            hub.topic_stats(refused),
            None,
            "{kind:?} {t:?}: a refused topic is never subscribed"
        );
    }
    // A pattern grant covers its prefix.
    assert_eq!(
        status(t, addr, &url(1, mint(Some("order:*")))).await,
        opened(t),
        "{kind:?} {t:?}: pattern grant"
    );
    // A ticket without grants keeps today's meaning: any topic.
    assert_eq!(
        status(t, addr, &url(2, mint(None))).await,
        opened(t),
        "{kind:?} {t:?}: no grant"
    );
}

macro_rules! grant_tests {
    ($($name:ident: $kind:ident, $transport:ident;)*) => {$(
        #[tokio::test]
        async fn $name() {
            grant_is_enforced(Kind::$kind, Transport::$transport).await;
        }
    )*};
}

grant_tests! {
    subscribe_grant_enforced_over_sse: Fixed, Sse;
    subscribe_grant_enforced_over_long_poll: Fixed, LongPoll;
    subscribe_grant_enforced_over_websocket: Fixed, Ws;
    subscribe_from_fn_grant_enforced_over_sse: FromFn, Sse;
    subscribe_from_fn_grant_enforced_over_long_poll: FromFn, LongPoll;
    subscribe_from_fn_grant_enforced_over_websocket: FromFn, Ws;
    topics_grant_enforced_over_sse: Topics, Sse;
    topics_grant_enforced_over_long_poll: Topics, LongPoll;
    topics_grant_enforced_over_websocket: Topics, Ws;
    check_access_grant_enforced_over_sse: Hand, Sse;
    check_access_grant_enforced_over_long_poll: Hand, LongPoll;
    check_access_grant_enforced_over_websocket: Hand, Ws;
}

/// `Subscribe::from_fn`: a topic name outside the rules answers 400 with the reason, and a
/// `Reject` from the function is the answer.
#[tokio::test]
async fn subscribe_from_fn_checks_the_name_and_passes_refusals_through() {
    let (hub, tickets, addr) = setup().await;
    let ticket = || ungranted(&tickets);
    for t in ALL_TRANSPORTS {
        assert_eq!(
            status(
                t,
                addr,
                &format!("/orders/a%20b/events?ticket={}", ticket())
            )
            .await,
            StatusCode::BAD_REQUEST,
            "{t:?}"
        );
        assert_eq!(
            status(t, addr, &format!("/hand/a@b?ticket={}", ticket())).await,
            StatusCode::BAD_REQUEST,
            "{t:?}"
        );
    }
    assert_eq!(hub.topic_count(), 0, "refused requests create no topic");
}

/// `Subscribe::from_fn` keeps `Subscribe`'s wire format: plain cursors as ids, event names
/// as published, and a resume from the last id loses nothing.
#[tokio::test]
async fn subscribe_from_fn_speaks_like_subscribe() {
    let (hub, tickets, addr) = setup().await;
    let ticket = || ungranted(&tickets);
    let (parts, mut events) = open_sse(
        &h1(),
        sse_request(addr, &format!("/orders/7/events?ticket={}", ticket()), None),
    )
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    // The response head is out, so the subscription exists (the id-only priming event is not
    // dispatched by WHATWG parsers).
    let first = hub
        .publish(
            "order:7",
            tower_push::Event::new()
                .event("status")
                .unwrap()
                .data("paid"),
        )
        .await
        .unwrap();
    let got = next_event(&mut events).await;
    assert_eq!((got.event.as_str(), got.data.as_str()), ("status", "paid"));
    assert_eq!(got.id, first.as_str(), "the id is the topic's own cursor");
    assert!(
        !got.id.starts_with('_'),
        "not a composite cursor: {}",
        got.id
    );
    drop(events);
    hub.publish("order:7", tower_push::Event::new().data("shipped"))
        .await
        .unwrap();
    let (_, mut resumed) = open_sse(
        &h1(),
        sse_request(
            addr,
            &format!("/orders/7/events?ticket={}", ticket()),
            Some(&got.id),
        ),
    )
    .await;
    assert_eq!(next_event(&mut resumed).await.data, "shipped");
}
