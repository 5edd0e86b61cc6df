//! Two instances on one shared backbone (Redis, NATS): the scenarios each backbone's test file
//! runs with its own hubs and ticket stores.

use super::*;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Empty;
use serde_json::Value;
use std::{net::SocketAddr, time::Duration};
use tower::{Layer as _, ServiceBuilder};
use tower_push::{
    auth_ticket::{AuthTicketLayer, Binding, Key, TicketStore, Tickets},
    hub::{Hub, Subscribe},
    negotiate::NegotiateLayer,
    sse::Sse,
    Event,
};

/// An SSE client on B receives what A publishes, and a client that read on A resumes on B
/// with exactly the missed events, then live ones.
pub async fn sse_resumes_on_the_other_instance<H: Hub>(a: H, b: H) {
    let server_a = serve(Sse::new(Subscribe::new(a.clone(), "room"))).await;
    let server_b = serve(Sse::new(Subscribe::new(b.clone(), "room"))).await;
    let client = h1();

    let (_, mut on_b) = open_sse(&client, sse_request(server_b, "/", None)).await;
    let (_, mut on_a) = open_sse(&client, sse_request(server_a, "/", None)).await;
    // Both subscriptions have their position: give the readers a moment to register.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = a
        .publish("room", Event::new().event("msg").unwrap().data("from A"))
        .await
        .unwrap();
    let got = next_event(&mut on_b).await;
    assert_eq!(
        (got.id.as_str(), got.data.as_str()),
        (id.as_str(), "from A")
    );
    assert_eq!(next_event(&mut on_a).await.id, id.as_str());
    drop(on_a);

    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(
            a.publish("room", Event::new().data(format!("m{i}")))
                .await
                .unwrap(),
        );
    }
    let (_, mut resumed) = open_sse(&client, sse_request(server_b, "/", Some(id.as_str()))).await;
    for cursor in &missed {
        assert_eq!(next_event(&mut resumed).await.id, cursor.as_str());
    }
    let live = b.publish("room", Event::new().data("live")).await.unwrap();
    assert_eq!(
        next_event(&mut resumed).await.id,
        live.as_str(),
        "then live, no duplicate"
    );
}

/// A long-poll alternating between A and B while A publishes loses nothing.
pub async fn long_poll_alternating_loses_nothing<H: Hub>(a: H, b: H) {
    const TOTAL: usize = 300;
    let servers: [SocketAddr; 2] = [
        serve(NegotiateLayer::new().layer(Subscribe::new(a.clone(), "room"))).await,
        serve(NegotiateLayer::new().layer(Subscribe::new(b.clone(), "room"))).await,
    ];
    let client = h1();
    let poll = |addr: SocketAddr, cursor: Option<String>| {
        let client = client.clone();
        async move {
            let path = cursor.map_or("/".to_owned(), |c| format!("/?lastEventId={c}"));
            let res = within(client.request(get(addr, &path).body(Empty::<Bytes>::new()).unwrap()))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            serde_json::from_slice::<Value>(&body_bytes(res).await).unwrap()
        }
    };
    let mut cursor = poll(servers[0], None).await["cursor"]
        .as_str()
        .map(str::to_owned);
    let publisher = tokio::spawn(async move {
        for i in 0..TOTAL {
            a.publish("room", Event::new().data(i.to_string()))
                .await
                .unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let mut seen = Vec::new();
    let mut turn = 0;
    tokio::time::timeout(Duration::from_secs(60), async {
        while seen.len() < TOTAL {
            let batch = poll(servers[turn % 2], cursor.clone()).await;
            turn += 1;
            for e in batch["events"].as_array().unwrap() {
                seen.push(e["data"].as_str().unwrap().to_owned());
            }
            cursor = batch["cursor"].as_str().map(str::to_owned);
        }
    })
    .await
    .expect("every event within 60 s");
    within(publisher).await.unwrap();
    assert_eq!(seen, (0..TOTAL).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(turn > 2, "several polls, on both instances ({turn})");
}

/// A ticket minted on A is redeemed on B once; a second redemption anywhere is refused.
pub async fn a_ticket_is_redeemed_once<H: Hub, St: TicketStore>(a: (H, St), b: (H, St)) {
    let tickets = Tickets::new(Key::new(1, b"shared between instances, 32 b!!"));
    let server = |(hub, store): (H, St)| {
        let tickets = tickets.clone();
        async move {
            serve(
                ServiceBuilder::new()
                    .layer(AuthTicketLayer::new(tickets).store(store))
                    .layer(NegotiateLayer::new())
                    .service(Subscribe::new(hub, "room")),
            )
            .await
        }
    };
    let (server_a, server_b) = (server(a).await, server(b).await);
    let t = tickets.mint("alice", &Binding::new()).unwrap();
    let status = |addr: SocketAddr| {
        let path = format!("/?ticket={}", t.as_str());
        async move {
            let req = get(addr, &path).body(Empty::<Bytes>::new()).unwrap();
            within(h1().request(req)).await.unwrap().status()
        }
    };
    assert_eq!(
        status(server_b).await,
        StatusCode::OK,
        "minted on A, redeemed on B"
    );
    assert_eq!(
        status(server_a).await,
        StatusCode::UNAUTHORIZED,
        "a second redemption anywhere is refused"
    );
    assert_eq!(status(server_b).await, StatusCode::UNAUTHORIZED);
}
