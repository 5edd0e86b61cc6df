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

/// A backbone server a test owns (never the shared one): stopped and started again
/// mid-stream.
pub trait OwnServer {
    /// Stops the server (its clients see the connection drop).
    fn stop(&mut self);
    /// Starts it again on the same port (with its data, or without, as the test set it up).
    fn start_again(&mut self);
}

/// How a backbone's restart scenario runs: what it is called, how to tell "unreachable"
/// from its errors, and how long it may take to answer again after it restarts.
pub struct Restart<F> {
    pub name: &'static str,
    pub unavailable: F,
    pub recovery: Duration,
}

/// Publishes `data` to "room", retrying until the backbone answers, within `recovery`.
pub async fn publish_retrying<H: Hub>(hub: &H, data: String, recovery: Duration) {
    tokio::time::timeout(recovery, async {
        loop {
            if hub
                .publish("room", Event::new().data(data.clone()))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a publish succeeds once the backbone is back")
}

/// The backbone restarts mid-stream: the reader reconnects and subscribers lose nothing the
/// backbone kept (or get `reset` when it lost it); heartbeats flow while it is down; a
/// publish while it is down is an error to the caller, within 5 s. Returns what the
/// subscriber received.
pub async fn restart_mid_stream<H, F>(
    hub: &H,
    server: &mut impl OwnServer,
    restart: Restart<F>,
) -> Vec<tower_push::Push>
where
    H: Hub,
    F: Fn(&H::Error) -> bool,
{
    use tower_push::{Push, PushStreamExt as _};
    let recovery = restart.recovery;
    let mut sub = Box::pin(
        hub.subscribe("room", tower_push::cursor::StartAt::Now)
            .heartbeat(Duration::from_millis(100)),
    );
    let mut got = Vec::new();
    let mut next = async |got: &mut Vec<Push>| {
        let item = within(sub.next()).await.unwrap().unwrap();
        got.push(item.clone());
        item
    };
    next(&mut got).await; // position
    for i in 0..3 {
        publish_retrying(hub, format!("before {i}"), recovery).await;
    }
    while got
        .iter()
        .filter(|p| matches!(p, Push::Event(e) if e.get_data().is_some()))
        .count()
        < 3
    {
        next(&mut got).await;
    }

    server.stop();
    let publish = tokio::time::timeout(
        Duration::from_secs(5),
        hub.publish("room", Event::new().data("x")),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "publishing to a stopped {} returns, it does not hang",
            restart.name
        )
    });
    assert!(
        publish.is_err_and(|e| (restart.unavailable)(&e)),
        "publishing to a stopped {} is an error",
        restart.name
    );
    // Heartbeats keep flowing while the backbone is down.
    let beats_before = got.iter().filter(|p| **p == Push::Heartbeat).count();
    while got.iter().filter(|p| **p == Push::Heartbeat).count() < beats_before + 2 {
        next(&mut got).await;
    }
    server.start_again();
    for i in 0..3 {
        publish_retrying(hub, format!("after {i}"), recovery).await;
    }
    tokio::time::timeout(recovery, async {
        while !got
            .iter()
            .any(|p| matches!(p, Push::Event(e) if e.get_data() == Some("after 2")))
        {
            next(&mut got).await;
        }
    })
    .await
    .expect("the events after the restart arrive");
    got
}

/// The data of what a subscriber received, `<reset>` for a reset.
pub fn datas(got: &[tower_push::Push]) -> Vec<String> {
    use tower_push::Push;
    got.iter()
        .filter_map(|p| match p {
            Push::Event(e) if e.get_event() == Some("reset") => Some("<reset>".into()),
            Push::Event(e) => e.get_data().map(str::to_owned),
            _ => None,
        })
        .collect()
}
