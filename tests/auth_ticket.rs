#![cfg(all(
    feature = "auth-ticket",
    feature = "negotiate",
    feature = "hub",
    feature = "ws"
))]
//! Auth tickets against a real server: every refusal, rotation, the three carriers,
//! reconnection on each transport, mutated tickets, the store's bound, and logs.

mod support;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use serde_json::Value;
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use support::*;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};
use tower::{service_fn, ServiceBuilder, ServiceExt as _};
use tower_push::{
    auth_ticket::{
        AuthTicketLayer, Binding, Key, MemoryTicketStore, MintTicket, TicketStore, Tickets,
    },
    cursor::LastEventId,
    hub::{Hub, MemoryHub},
    negotiate::NegotiateLayer,
    principal::Principal,
    ws::WsLayer,
    Event,
};

const SECRET: &[u8] = b"test secret, test secret, test!!";

fn tickets() -> Tickets {
    Tickets::new(Key::new(1, SECRET))
}

/// The inner service: a room subscription that starts with an event telling what the inner
/// service saw (principal, URI).
fn seen_then_room(
    hub: MemoryHub,
) -> impl tower::Service<
    Request<Incoming>,
    Response = impl futures_core::Stream<Item = Event> + Send + 'static,
    Error = tower_push::Reject,
    Future: Send,
> + Clone
       + Send
       + 'static {
    service_fn(move |req: Request<Incoming>| {
        let hub = hub.clone();
        async move {
            let principal = req
                .extensions()
                .get::<Principal>()
                .map(|p| p.as_str().to_owned());
            let seen = serde_json::json!({"principal": principal, "uri": req.uri().to_string()});
            let seen = Event::new().event("seen").unwrap().data(seen.to_string());
            let from = req
                .extensions()
                .get::<LastEventId>()
                .map(|c| c.as_str().to_owned());
            let room = hub.subscribe("room", tower_push::cursor::StartAt::parse(from.as_deref())?);
            Ok::<_, tower_push::Reject>(tokio_stream::iter([seen]).chain(room))
        }
    })
}

async fn app_with(layer: AuthTicketLayer<impl TicketStore>, hub: &MemoryHub) -> SocketAddr {
    serve(
        ServiceBuilder::new()
            .layer(layer)
            .layer(NegotiateLayer::new().ws(WsLayer::new().protocols(["chat.v1"])))
            .service(seen_then_room(hub.clone())),
    )
    .await
}

async fn app(hub: &MemoryHub) -> SocketAddr {
    app_with(AuthTicketLayer::new(tickets()), hub).await
}

async fn poll(addr: SocketAddr, path_and_query: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    let req = get(addr, path_and_query)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = within(h1().request(req)).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, body_bytes(res).await)
}

/// Polls and returns the "seen" event's data.
async fn seen(addr: SocketAddr, path_and_query: &str) -> Value {
    let (status, _, body) = poll(addr, path_and_query).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let batch: Value = serde_json::from_slice(&body).unwrap();
    serde_json::from_str(batch["events"][0]["data"].as_str().unwrap()).unwrap()
}

async fn refused(addr: SocketAddr, path_and_query: &str, code: &str) {
    let (status, headers, body) = poll(addr, path_and_query).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{path_and_query}: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        headers["www-authenticate"],
        format!("Ticket error=\"{code}\""),
        "{path_and_query}"
    );
    assert!(String::from_utf8_lossy(&body).starts_with("auth ticket"));
}

#[tokio::test]
async fn valid_ticket_admits_and_the_inner_service_sees_the_principal_not_the_ticket() {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let t = tickets().mint("alice", &Binding::new()).unwrap();
    let seen = seen(addr, &format!("/events?a=1&ticket={}&b=2", t.as_str())).await;
    assert_eq!(seen["principal"], "alice");
    assert_eq!(
        seen["uri"], "/events?a=1&b=2",
        "the ticket is gone from the URI"
    );
}

#[tokio::test]
async fn every_bad_ticket_is_a_401_with_its_reason() {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    refused(addr, "/events", "missing").await;
    let t = tickets().mint("alice", &Binding::new()).unwrap();
    refused(
        addr,
        &format!("/events?ticket={}", &t.as_str()[..t.as_str().len() - 10]),
        "malformed",
    )
    .await;
    refused(
        addr,
        &format!("/events?ticket={}", &t.as_str()[..30]),
        "malformed",
    )
    .await;
    refused(addr, "/events?ticket=***not-base64***", "malformed").await;
    let forged = Tickets::new(Key::new(1, b"an attacker's guess at the key!!"))
        .mint("admin", &Binding::new())
        .unwrap();
    refused(
        addr,
        &format!("/events?ticket={}", forged.as_str()),
        "bad_signature",
    )
    .await;
    let unknown = Tickets::new(Key::new(7, SECRET))
        .mint("alice", &Binding::new())
        .unwrap();
    refused(
        addr,
        &format!("/events?ticket={}", unknown.as_str()),
        "unknown_key",
    )
    .await;
}

#[tokio::test]
async fn expired_replayed_and_bound_tickets_are_refused() {
    let hub = MemoryHub::new();
    let now = Arc::new(AtomicU64::new(2_000_000_000));
    let clock = {
        let now = now.clone();
        move || now.load(Ordering::Relaxed)
    };
    let tickets = tickets()
        .ttl(Duration::from_secs(30))
        .clock_skew(Duration::from_secs(2))
        .clock(clock.clone());
    let store = MemoryTicketStore::with_clock(clock);
    let addr = app_with(AuthTicketLayer::new(tickets.clone()).store(store), &hub).await;

    let t = tickets.mint("alice", &Binding::new()).unwrap();
    now.fetch_add(33, Ordering::Relaxed);
    refused(addr, &format!("/events?ticket={}", t.as_str()), "expired").await;

    let t = tickets.mint("alice", &Binding::new()).unwrap();
    seen(addr, &format!("/events?ticket={}", t.as_str())).await;
    refused(addr, &format!("/events?ticket={}", t.as_str()), "replayed").await;

    let t = tickets.mint("alice", &Binding::new().path("/a")).unwrap();
    refused(addr, &format!("/b?ticket={}", t.as_str()), "wrong_path").await;
    seen(addr, &format!("/a?ticket={}", t.as_str())).await;

    let t = tickets
        .mint("alice", &Binding::new().origin("http://app.example"))
        .unwrap();
    let req = get(addr, &format!("/events?ticket={}", t.as_str()))
        .header("origin", "http://evil.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = within(h1().request(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Ticket error=\"wrong_origin\""
    );
    let req = get(addr, &format!("/events?ticket={}", t.as_str()))
        .header("origin", "http://app.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(
        within(h1().request(req)).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn key_rotation_accepts_the_old_key_until_it_is_removed() {
    let hub = MemoryHub::new();
    let old = Tickets::new(Key::new(1, SECRET));
    let t1 = old.mint("alice", &Binding::new()).unwrap();
    let t2 = old.mint("alice", &Binding::new()).unwrap();
    let rotating = Tickets::new(Key::new(2, b"the new secret, the new secret!!"))
        .verify_with(Key::new(1, SECRET));
    let addr = app_with(AuthTicketLayer::new(rotating.clone()), &hub).await;
    seen(addr, &format!("/events?ticket={}", t1.as_str())).await;
    let new = rotating.mint("bob", &Binding::new()).unwrap();
    assert_eq!(
        seen(addr, &format!("/events?ticket={}", new.as_str())).await["principal"],
        "bob"
    );

    let rotated = Tickets::new(Key::new(2, b"the new secret, the new secret!!"));
    let addr = app_with(AuthTicketLayer::new(rotated), &hub).await;
    refused(
        addr,
        &format!("/events?ticket={}", t2.as_str()),
        "unknown_key",
    )
    .await;
}

#[tokio::test]
async fn cookie_carrier() {
    let hub = MemoryHub::new();
    let addr = app_with(AuthTicketLayer::new(tickets()).cookie("push_ticket"), &hub).await;
    let t = tickets().mint("carol", &Binding::new()).unwrap();
    let req = get(addr, "/events")
        .header("cookie", format!("theme=dark; push_ticket={}", t.as_str()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = within(h1().request(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let batch: Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
    let seen: Value = serde_json::from_str(batch["events"][0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(seen["principal"], "carol");
}

#[tokio::test]
async fn websocket_carrier_through_sec_websocket_protocol_echoes_only_the_real_protocol() {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let t = tickets().mint("dave", &Binding::new()).unwrap();
    let mut req = format!("ws://{addr}/events").into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("chat.v1, ticket.{}", t.as_str()).parse().unwrap(),
    );
    let (mut ws, res) = within(tokio_tungstenite::connect_async(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v1");
    let frame = within(ws.next()).await.unwrap().unwrap();
    let tungstenite::Message::Text(text) = frame else {
        panic!("{frame:?}")
    };
    let event: Value = serde_json::from_str(text.as_str()).unwrap();
    let seen: Value = serde_json::from_str(event["data"].as_str().unwrap()).unwrap();
    assert_eq!(seen["principal"], "dave");

    // Only the ticket offered: 101 with no subprotocol at all (checked on the raw answer).
    let t = tickets().mint("dave", &Binding::new()).unwrap();
    let raw = Request::get(format!("http://{addr}/events"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", format!("ticket.{}", t.as_str()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = within(h1().request(raw)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(res.headers().get("sec-websocket-protocol").is_none());
}

/// Each transport reconnects the same way: a fresh ticket plus the last cursor.
#[tokio::test]
async fn reconnection_needs_a_fresh_ticket_and_resumes_with_the_cursor() {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let client = h1();
    let fresh = || {
        tickets()
            .mint("erin", &Binding::new())
            .unwrap()
            .into_string()
    };

    // SSE.
    let t1 = fresh();
    let (_, mut events) = open_sse(
        &client,
        sse_request(addr, &format!("/events?ticket={t1}"), None),
    )
    .await;
    assert_eq!(next_event(&mut events).await.event, "seen");
    let first = hub.publish_now("room", Event::new().data("one")).unwrap();
    assert_eq!(next_event(&mut events).await.id, first.as_str());
    drop(events);
    hub.publish_now("room", Event::new().data("two")).unwrap();
    let res = within(client.request(sse_request(
        addr,
        &format!("/events?ticket={t1}"),
        Some(first.as_str()),
    )))
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the old ticket is spent"
    );
    let (_, mut events) = open_sse(
        &client,
        sse_request(
            addr,
            &format!("/events?ticket={}", fresh()),
            Some(first.as_str()),
        ),
    )
    .await;
    assert_eq!(next_event(&mut events).await.event, "seen");
    assert_eq!(next_event(&mut events).await.data, "two");

    // Long-poll: a ticket per poll.
    let t = fresh();
    let (status, _, body) = poll(addr, &format!("/events?ticket={t}&lastEventId={first}")).await;
    assert_eq!(status, StatusCode::OK);
    let batch: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(batch["events"][1]["data"], "two");
    refused(
        addr,
        &format!("/events?ticket={t}&lastEventId={first}"),
        "replayed",
    )
    .await;

    // WebSocket.
    let cursor = batch["cursor"].as_str().unwrap().to_owned();
    hub.publish_now("room", Event::new().data("three")).unwrap();
    let (mut ws, _) = within(tokio_tungstenite::connect_async(format!(
        "ws://{addr}/events?ticket={}&lastEventId={cursor}",
        fresh()
    )))
    .await
    .unwrap();
    let mut datas = Vec::new();
    while datas.len() < 2 {
        if let tungstenite::Message::Text(t) = within(ws.next()).await.unwrap().unwrap() {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if let Some(d) = v["data"].as_str() {
                datas.push(d.to_owned());
            }
        }
    }
    assert_eq!(datas[1], "three");
}

#[tokio::test]
async fn mint_service_answers_json_for_a_principal_and_401_without() {
    let mint = MintTicket::new(tickets()).bind_path("/events");
    let mut req = Request::post("/api/ticket").body(()).unwrap();
    req.extensions_mut().insert(Principal::new("frank"));
    let res = mint.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    use http_body_util::BodyExt as _;
    let json: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(json["expires_in"], 30);
    let claims = tickets()
        .verify(json["ticket"].as_str().unwrap(), "/events", None)
        .unwrap();
    assert_eq!(claims.principal, "frank");
    let res = mint
        .oneshot(Request::post("/api/ticket").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// A small deterministic PRNG (xorshift64*), so the run is bounded and reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test]
async fn ten_thousand_mutated_tickets_are_all_refused() {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.%~ \x7f";
    let svc = ServiceBuilder::new()
        .layer(AuthTicketLayer::new(tickets()))
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(tower_push::body::Full::new("admitted")))
        }));
    let valid = tickets()
        .mint("alice", &Binding::new().path("/events"))
        .unwrap()
        .into_string();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut refused = 0;
    for i in 0..10_000 {
        let mut t = valid.clone().into_bytes();
        match i % 5 {
            // Flip one to three characters.
            0 => {
                for _ in 0..=rng.below(3) {
                    let at = rng.below(t.len());
                    let c = ALPHABET[rng.below(62)];
                    if t[at] == c {
                        t[at] = if c == b'A' { b'B' } else { b'A' };
                    } else {
                        t[at] = c;
                    }
                }
                // A later flip can restore an earlier one: then flip once more, so every
                // case is a real mutation.
                if t == valid.as_bytes() {
                    let at = rng.below(t.len());
                    t[at] = if t[at] == b'A' { b'B' } else { b'A' };
                }
            }
            1 => t.truncate(rng.below(t.len())),
            2 => {
                for _ in 0..=rng.below(8) {
                    t.push(ALPHABET[rng.below(ALPHABET.len())]);
                }
            }
            3 => {
                let (a, b) = (rng.below(t.len()), rng.below(t.len()));
                t.swap(a, b);
                if t == valid.as_bytes() {
                    t.push(b'A');
                }
            }
            _ => {
                t = (0..rng.below(200))
                    .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                    .collect()
            }
        }
        assert_ne!(t, valid.as_bytes(), "mutation {i} is a mutation");
        let t: String = t.into_iter().map(char::from).collect();
        let encoded = percent_encoding::utf8_percent_encode(&t, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        let req = Request::get(format!("/events?ticket={encoded}"))
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "mutation {i} admitted: {t:?}"
        );
        refused += 1;
    }
    assert_eq!(refused, 10_000);
    // The ticket they were made from is admitted: the refusals were for the mutations.
    let req = Request::get(format!("/events?ticket={valid}"))
        .body(())
        .unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn memory_store_stays_bounded_under_a_stream_of_redemptions() {
    let now = Arc::new(AtomicU64::new(1_000));
    let store = MemoryTicketStore::with_clock({
        let now = now.clone();
        move || now.load(Ordering::Relaxed)
    });
    let mut max = 0;
    // 100 redemptions per simulated second for 10 minutes; tickets live 30 s (+5 s skew).
    for second in 0..600u64 {
        now.store(1_000 + second, Ordering::Relaxed);
        for i in 0..100u64 {
            let mut nonce = [0u8; 16];
            nonce[..8].copy_from_slice(&second.to_be_bytes());
            nonce[8..].copy_from_slice(&i.to_be_bytes());
            assert!(store.redeem(nonce, 1_000 + second + 35).await.unwrap());
        }
        // A nonce redeemed a second ago (still unexpired) is refused the second time.
        if second > 0 {
            let mut nonce = [0u8; 16];
            nonce[..8].copy_from_slice(&(second - 1).to_be_bytes());
            nonce[8..].copy_from_slice(&7u64.to_be_bytes());
            assert!(
                !store.redeem(nonce, 1_000 + second + 34).await.unwrap(),
                "a nonce is redeemed once"
            );
        }
        max = max.max(store.len());
    }
    assert!(max <= 100 * 37, "store grew to {max}");
    assert!(
        store.len() >= 100 * 30,
        "still remembers what has not expired"
    );
}
