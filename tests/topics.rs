#![cfg(all(
    feature = "negotiate",
    feature = "ws",
    feature = "hub",
    feature = "auth-ticket"
))]
//! Several topics on one connection, against a real server and real clients on every
//! transport: one cursor resumes every topic exactly, a topic trimmed past the cursor resets
//! alone, grants and limits refuse before any upgrade, and idle topics leave the hub.

mod support;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::StatusCode;
use http_body_util::Empty;
use serde_json::Value;
use std::{collections::BTreeMap, net::SocketAddr, time::Duration};
use support::*;
use tokio_tungstenite::tungstenite;
use tower::{ServiceBuilder, ServiceExt as _};
use tower_push::{
    auth_ticket::{AuthTicketLayer, Binding, Key, Tickets},
    hub::{Hub, MemoryHub, Topics},
    negotiate::NegotiateLayer,
    topic::TopicGrant,
    Event,
};

/// One event as the client saw it: (topic, event name, data, id).
#[derive(Debug, Clone, PartialEq)]
struct Got {
    topic: String,
    name: String,
    data: String,
    id: String,
}

async fn app<H: Hub>(hub: &H) -> SocketAddr {
    serve(
        ServiceBuilder::new()
            .layer(NegotiateLayer::new())
            .service(Topics::new(hub.clone())),
    )
    .await
}

fn query(topics: &[&str], cursor: Option<&str>) -> String {
    let mut q: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
    if let Some(cursor) = cursor {
        q.push(format!("lastEventId={cursor}"));
    }
    format!("/events?{}", q.join("&"))
}

/// A connected client of one transport, reading `Got`s.
enum Client {
    Sse(Box<dyn futures_util::Stream<Item = SseEvent> + Unpin + Send>),
    LongPoll {
        addr: SocketAddr,
        topics: Vec<String>,
        cursor: Option<String>,
        buffered: Vec<Got>,
    },
    Ws(
        Box<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
        >,
    ),
}

impl Client {
    async fn open(t: Transport, addr: SocketAddr, topics: &[&str], cursor: Option<&str>) -> Self {
        match t {
            Transport::Sse => {
                let (parts, events) =
                    open_sse(&h1(), sse_request(addr, &query(topics, None), cursor)).await;
                assert_eq!(parts.status, StatusCode::OK);
                Client::Sse(Box::new(events))
            }
            Transport::LongPoll => {
                let mut client = Client::LongPoll {
                    addr,
                    topics: topics.iter().map(|t| t.to_string()).collect(),
                    cursor: cursor.map(str::to_owned),
                    buffered: Vec::new(),
                };
                if cursor.is_none() {
                    // A poll without cursor answers with the position at once.
                    client.poll().await;
                }
                client
            }
            Transport::Ws => {
                let url = format!("ws://{addr}{}", query(topics, cursor));
                let (ws, _) = within(tokio_tungstenite::connect_async(url)).await.unwrap();
                Client::Ws(Box::new(ws))
            }
        }
    }

    async fn poll(&mut self) {
        let Client::LongPoll {
            addr,
            topics,
            cursor,
            buffered,
        } = self
        else {
            unreachable!()
        };
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let req = get(*addr, &query(&topics, cursor.as_deref()))
            .header("accept", "application/json")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = within(h1().request(req)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let batch = support::long_poll_answer(&body_bytes(res).await);
        for e in batch["events"].as_array().unwrap() {
            buffered.push(from_json(e));
        }
        *cursor = batch["cursor"].as_str().map(str::to_owned);
    }

    /// The next event with data (id-only events are skipped), within 10 s.
    async fn next(&mut self) -> Got {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no event within 10 s"
            );
            match self {
                Client::Sse(events) => {
                    let e = next_event(events).await;
                    let (name, topic) = e.event.rsplit_once('@').expect("name@topic");
                    return Got {
                        topic: topic.into(),
                        name: name.into(),
                        data: e.data,
                        id: e.id,
                    };
                }
                Client::LongPoll { buffered, .. } => {
                    if !buffered.is_empty() {
                        return buffered.remove(0);
                    }
                    self.poll().await;
                }
                Client::Ws(ws) => match within(ws.next()).await.expect("open").expect("frame") {
                    tungstenite::Message::Text(text) => {
                        let e: Value = serde_json::from_str(text.as_str()).unwrap();
                        if e.get("data").is_some() {
                            return from_json(&e);
                        }
                    }
                    tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
                    other => panic!("unexpected {other:?}"),
                },
            }
        }
    }

    async fn read(&mut self, n: usize) -> Vec<Got> {
        let mut out = Vec::new();
        while out.len() < n {
            out.push(self.next().await);
        }
        out
    }
}

fn from_json(e: &Value) -> Got {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
    Got {
        topic: s("topic"),
        name: if e.get("event").is_some() {
            s("event")
        } else {
            "message".into()
        },
        data: s("data"),
        id: s("id"),
    }
}

/// Each topic's data, in the order received.
fn by_topic(got: &[Got]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in got {
        map.entry(g.topic.clone()).or_default().push(g.data.clone());
    }
    map
}

fn expect(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(t, d)| (t.to_string(), d.iter().map(|s| s.to_string()).collect()))
        .collect()
}

fn publish(hub: &MemoryHub, topic: &str, data: &str) {
    hub.publish_now(topic, Event::new().data(data)).unwrap();
}

async fn publish_to<H: Hub>(hub: &H, topic: &str, data: &str) {
    hub.publish(topic, Event::new().data(data)).await.unwrap();
}

/// Two topics on one connection; both published to while the client is away; the last id
/// resumes both exactly. `settle`: how long a backbone's readers take to register.
async fn two_topics_resume<H: Hub>(t: Transport, hub: H, settle: Duration) {
    let addr = app(&hub).await;
    let mut client = Client::open(t, addr, &["a", "b"], None).await;
    tokio::time::sleep(settle).await;
    publish_to(&hub, "a", "a1").await;
    publish_to(&hub, "b", "b1").await;
    let first = client.read(2).await;
    assert_eq!(
        by_topic(&first),
        expect(&[("a", &["a1"]), ("b", &["b1"])]),
        "{t:?}"
    );
    let last = first[1].id.clone();
    assert!(last.len() <= 128, "{t:?}: {last}");
    drop(client);

    for (topic, data) in [
        ("a", "a2"),
        ("b", "b2"),
        ("a", "a3"),
        ("b", "b3"),
        ("c", "c1"),
    ] {
        publish_to(&hub, topic, data).await;
    }
    let mut client = Client::open(t, addr, &["a", "b"], Some(&last)).await;
    let missed = client.read(4).await;
    assert_eq!(
        by_topic(&missed),
        expect(&[("a", &["a2", "a3"]), ("b", &["b2", "b3"])]),
        "{t:?}: exactly the missed events of both topics, each in order"
    );
    assert!(missed.iter().all(|g| g.name == "message"), "{t:?}");
    // Nothing more (no duplicate): the next events are the live ones.
    tokio::time::sleep(settle).await;
    publish_to(&hub, "b", "b4").await;
    publish_to(&hub, "a", "a4").await;
    let live = client.read(2).await;
    assert_eq!(
        by_topic(&live),
        expect(&[("a", &["a4"]), ("b", &["b4"])]),
        "{t:?}"
    );

    // Resuming from the middle of the missed batch gives exactly the rest.
    let mid = missed[1].id.clone();
    let mut client = Client::open(t, addr, &["b", "a"], Some(&mid)).await;
    let rest = client.read(4).await;
    let mut expected = by_topic(&missed[2..]);
    for (topic, data) in by_topic(&live) {
        expected.entry(topic).or_default().extend(data);
    }
    assert_eq!(by_topic(&rest), expected, "{t:?}: resumed mid-batch");
}

#[tokio::test]
async fn two_topics_resume_over_sse() {
    two_topics_resume(Transport::Sse, MemoryHub::new(), Duration::ZERO).await;
}

#[tokio::test]
async fn two_topics_resume_over_long_poll() {
    two_topics_resume(Transport::LongPoll, MemoryHub::new(), Duration::ZERO).await;
}

#[tokio::test]
async fn two_topics_resume_over_websocket() {
    two_topics_resume(Transport::Ws, MemoryHub::new(), Duration::ZERO).await;
}

/// The same on Redis, over every transport (`REDIS_URL`, a fresh key prefix each).
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_topics_resume_on_redis_over_every_transport() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    for t in ALL_TRANSPORTS {
        let prefix = format!(
            "tower-push-test:topics:{}:{t:?}:{}",
            std::process::id(),
            nanos()
        );
        let hub = tower_push::hub::RedisHub::builder(&url, &prefix)
            .block(Duration::from_millis(200))
            .connect()
            .await
            .expect("Redis answers");
        two_topics_resume(t, hub, Duration::from_millis(300)).await;
    }
}

/// The same on NATS JetStream, over every transport (`NATS_URL`; each stream deleted after).
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_topics_resume_on_nats_over_every_transport() {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.expect("NATS answers"));
    for t in ALL_TRANSPORTS {
        let prefix = format!("tp-test-topics-{}-{t:?}-{}", std::process::id(), nanos());
        let hub = tower_push::hub::NatsHub::builder(&url, &prefix)
            .block(Duration::from_millis(200))
            .connect()
            .await
            .expect("NATS answers");
        let stream = hub.stream_name().to_owned();
        let outcome = tokio::spawn(two_topics_resume(t, hub, Duration::from_millis(300))).await;
        js.delete_stream(&stream).await.unwrap();
        outcome.unwrap();
    }
}

#[cfg(any(feature = "redis", feature = "nats"))]
fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// One topic trimmed past the cursor gives that topic's reset; the other resumes.
#[tokio::test]
async fn a_trimmed_topic_resets_alone() {
    for t in ALL_TRANSPORTS {
        let hub = MemoryHub::builder().history(2).build();
        let addr = app(&hub).await;
        let mut client = Client::open(t, addr, &["a", "b"], None).await;
        publish(&hub, "a", "a0");
        publish(&hub, "b", "b0");
        let last = client.read(2).await[1].id.clone();
        drop(client);
        for i in 1..=5 {
            publish(&hub, "a", &format!("a{i}"));
        }
        publish(&hub, "b", "b1");

        let mut client = Client::open(t, addr, &["a", "b"], Some(&last)).await;
        let got = client.read(2).await;
        let reset = got.iter().find(|g| g.topic == "a").expect("a's reset");
        assert_eq!(reset.name, "reset", "{t:?}: {got:?}");
        let data: Value = serde_json::from_str(&reset.data).unwrap();
        assert_eq!(data["reason"], "expired", "{t:?}");
        assert_eq!(data["topic"], "a", "{t:?}");
        assert_eq!(data["cursor"], reset.id, "{t:?}");
        let b = got.iter().find(|g| g.topic == "b").expect("b resumes");
        assert_eq!(b.data, "b1", "{t:?}");
        // After the reset, a continues live; b's cursor survived the reset.
        publish(&hub, "a", "a6");
        let next = client.next().await;
        assert_eq!(
            (next.topic.as_str(), next.data.as_str()),
            ("a", "a6"),
            "{t:?}"
        );
        let mut again = Client::open(t, addr, &["a", "b"], Some(&next.id)).await;
        publish(&hub, "b", "b2");
        let resumed = again.next().await;
        assert_eq!(
            (resumed.topic.as_str(), resumed.data.as_str()),
            ("b", "b2"),
            "{t:?}"
        );
    }
}

#[tokio::test]
async fn too_many_or_bad_topics_answer_400_before_any_upgrade() {
    let hub = MemoryHub::new();
    let addr = app(&hub).await;
    let nine: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    for t in ALL_TRANSPORTS {
        for path in [
            query(&nine, None),
            "/events?topic=a%20b".to_owned(),
            "/events?topic=".to_owned(),
            "/events?topic=a@b".to_owned(),
            format!("/events?topic={}", "x".repeat(65)),
            "/events".to_owned(),
        ] {
            assert_eq!(
                status(t, addr, &path).await,
                StatusCode::BAD_REQUEST,
                "{t:?} {path}"
            );
        }
        assert_eq!(
            status(t, addr, &query(&nine[..8], None)).await,
            if matches!(t, Transport::Ws) {
                StatusCode::SWITCHING_PROTOCOLS
            } else {
                StatusCode::OK
            },
            "{t:?}: eight topics are fine"
        );
    }
    // The message says why.
    let req = get(addr, "/events?topic=a%20b")
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let body = body_bytes(within(h1().request(req)).await.unwrap()).await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("a b") && text.contains("only ASCII letters"),
        "{text}"
    );
    assert_eq!(hub.topic_count(), 8, "refused requests create no topic");
}

#[tokio::test]
async fn a_topic_outside_the_tickets_grant_answers_403_before_any_upgrade() {
    let hub = MemoryHub::new();
    let tickets = Tickets::new(Key::generate(1));
    let addr = serve(
        ServiceBuilder::new()
            .layer(AuthTicketLayer::new(tickets.clone()))
            .layer(NegotiateLayer::new())
            .service(Topics::new(hub.clone()).authorize(|principal, topic| {
                // The app's own rule on top of the grant: no one reads "secret".
                principal.is_some() && topic != "room.secret"
            })),
    )
    .await;
    let mint = |patterns: &[&str]| {
        let grant = TopicGrant::new(patterns.iter().copied()).unwrap();
        tickets
            .mint("alice", &Binding::new().topics(grant))
            .unwrap()
            .into_string()
    };
    for t in ALL_TRANSPORTS {
        let ok = if matches!(t, Transport::Ws) {
            StatusCode::SWITCHING_PROTOCOLS
        } else {
            StatusCode::OK
        };
        for (grant, topics, expected) in [
            (
                &["room.*", "user:alice"][..],
                &["room.x", "user:alice"][..],
                ok,
            ),
            (
                &["room.*", "user:alice"],
                &["room.x", "user:bob"],
                StatusCode::FORBIDDEN,
            ),
            (&["room.*"], &["room.secret"], StatusCode::FORBIDDEN),
            (&["room.x"], &["room.xy"], StatusCode::FORBIDDEN),
        ] {
            let path = format!("{}&ticket={}", query(topics, None), mint(grant));
            assert_eq!(
                status(t, addr, &path).await,
                expected,
                "{t:?} {grant:?} {topics:?}"
            );
        }
    }
    assert_eq!(
        hub.topic_stats("user:bob"),
        None,
        "a refused topic is never subscribed"
    );
}

/// 100,000 distinct random topics asked for through the service: the hub's topic count
/// returns to its baseline once they are older than the idle age.
#[tokio::test]
async fn random_topics_do_not_grow_the_hub() {
    let hub = MemoryHub::builder()
        .idle_topic_age(Duration::from_millis(300))
        .build();
    let keep = hub.subscribe("kept", tower_push::cursor::StartAt::Now);
    hub.publish_now("kept", Event::new().data("x")).unwrap();
    let baseline = hub.topic_count();
    let service = Topics::new(hub.clone());
    let mut peak = 0;
    let mut held = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..100_000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let topic = format!("r{i}-{seed:016x}");
        let req = http::Request::get(format!("/events?topic={topic}"))
            .body(())
            .unwrap();
        let sub = service.clone().oneshot(req).await.unwrap();
        if i % 10 == 0 {
            // Some topics get history too.
            hub.publish_now(&topic, Event::new().data("h")).unwrap();
        }
        held.push(sub);
        if held.len() == 1000 {
            held.clear();
            peak = peak.max(hub.topic_count());
        }
    }
    drop(held);
    peak = peak.max(hub.topic_count());
    assert!(peak > baseline, "topics were created (peak {peak})");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hub.topic_count() > baseline {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} topics left, baseline {baseline}",
            hub.topic_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        hub.topic_stats("kept").is_some(),
        "a subscribed topic stays"
    );
    eprintln!(
        "random topics: baseline {baseline}, peak {peak}, back to {}",
        hub.topic_count()
    );
    drop(keep);
}
