#![cfg(all(
    feature = "nats",
    feature = "sse",
    feature = "negotiate",
    feature = "ws",
    feature = "auth-ticket",
    feature = "heartbeat"
))]
//! The NATS JetStream backbone against a real NATS: `NATS_URL` (default
//! `nats://127.0.0.1:4222`) for shared-server tests, each under a unique subject prefix and
//! stream, deleted at the end (even when the test fails); restart tests start their own
//! `nats-server -js` on a free port with their own store (never the shared one).

mod support;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::StatusCode;
use http_body_util::Empty;
use serde_json::Value;
use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};
use support::{hub_suite, *};
use tokio_tungstenite::tungstenite;
use tower::{Layer as _, ServiceBuilder};
use tower_push::{
    auth_ticket::{AuthTicketLayer, Binding, Key, NatsTicketStore, Tickets},
    hub::{Hub, NatsHub, Subscribe},
    negotiate::NegotiateLayer,
    sse::Sse,
    Event, Push, PushStreamExt as _,
};

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "tp-test-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes the streams (and key-value buckets) a test made when it ends, however it ends.
struct Cleanup {
    url: String,
    streams: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (url, streams) = (self.url.clone(), std::mem::take(&mut self.streams));
        // A thread of its own: this may run inside a runtime, or while panicking.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let Ok(Ok(client)) =
                        tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url))
                            .await
                    else {
                        return;
                    };
                    let js = async_nats::jetstream::new(client);
                    for name in streams {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), js.delete_stream(&name))
                                .await;
                    }
                })
        })
        .join();
    }
}

async fn hub_at(url: &str, prefix: &str, cleanup: &mut Cleanup) -> NatsHub {
    let hub = NatsHub::builder(url, prefix)
        .block(Duration::from_millis(200))
        .connect()
        .await
        .expect("NATS with JetStream answers");
    cleanup.streams.push(hub.stream_name().to_owned());
    hub
}

async fn hub() -> (NatsHub, Cleanup) {
    let mut cleanup = Cleanup {
        url: nats_url(),
        streams: Vec::new(),
    };
    let hub = hub_at(&nats_url(), &prefix(), &mut cleanup).await;
    (hub, cleanup)
}

#[tokio::test]
async fn nats_starts_with_position_then_live() {
    let (hub, _cleanup) = hub().await;
    hub_suite::starts_with_position_then_live(hub).await;
}

#[tokio::test]
async fn nats_resume_replays_exactly_the_missed_events() {
    let (hub, _cleanup) = hub().await;
    hub_suite::resume_replays_exactly_the_missed_events(hub).await;
}

#[tokio::test]
async fn nats_foreign_cursor_resets() {
    let (hub, _cleanup) = hub().await;
    let (other, _other_cleanup) = self::hub().await;
    let foreign = other.publish("t", Event::new()).await.unwrap();
    hub_suite::foreign_cursor_resets(hub, foreign.as_str()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_concurrent_publishers_and_joining_subscribers() {
    let (hub, _cleanup) = hub().await;
    hub_suite::concurrent_publishers_and_joining_subscribers(hub).await;
}

#[tokio::test]
async fn nats_several_topics_resume_exactly() {
    let (hub, _cleanup) = hub().await;
    hub_suite::several_topics_resume_exactly(hub).await;
}

#[tokio::test]
async fn nats_a_trimmed_topic_resets_alone() {
    let mut cleanup = Cleanup {
        url: nats_url(),
        streams: Vec::new(),
    };
    let hub = NatsHub::builder(&nats_url(), &prefix())
        .max_per_topic(4)
        .block(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    cleanup.streams.push(hub.stream_name().to_owned());
    hub_suite::a_trimmed_topic_resets_alone(hub, 10).await;
}

/// Topic names that are not subject tokens are encoded, never refused, and never collide.
#[tokio::test]
async fn any_topic_name_has_its_own_subject() {
    let (hub, _cleanup) = hub().await;
    let topics = ["room.lobby", "room_2Elobby", "a b", "*", ">", "é", ""];
    let mut subs = Vec::new();
    for topic in topics {
        let mut sub = hub.subscribe(topic, None);
        hub_suite::next(&mut sub).await;
        subs.push(sub);
    }
    for topic in topics {
        hub.publish(topic, Event::new().data(format!("to {topic:?}")))
            .await
            .unwrap();
    }
    for (topic, sub) in topics.iter().zip(&mut subs) {
        let event = hub_suite::next(sub).await;
        assert_eq!(event.get_data(), Some(&*format!("to {topic:?}")));
    }
}

/// Two instances on one NATS: an SSE client on B receives what A publishes, and a client that
/// read on A resumes on B with exactly the missed events.
#[tokio::test]
async fn two_instances_share_topics_and_cursors() {
    let mut cleanup = Cleanup {
        url: nats_url(),
        streams: Vec::new(),
    };
    let prefix = prefix();
    let a = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    let b = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    let server_a = serve(Sse::new(Subscribe::new(a.clone(), "room"))).await;
    let server_b = serve(Sse::new(Subscribe::new(b.clone(), "room"))).await;
    let client = h1();

    let (_, mut on_b) = open_sse(&client, sse_request(server_b, "/", None)).await;
    let (_, mut on_a) = open_sse(&client, sse_request(server_a, "/", None)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_alternating_between_instances_loses_nothing() {
    const TOTAL: usize = 300;
    let mut cleanup = Cleanup {
        url: nats_url(),
        streams: Vec::new(),
    };
    let prefix = prefix();
    let a = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    let b = hub_at(&nats_url(), &prefix, &mut cleanup).await;
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
    .expect("all events within 60 s");
    within(publisher).await.unwrap();
    assert_eq!(seen, (0..TOTAL).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(turn > 2, "several polls, on both instances ({turn})");
}

/// A WebSocket client reads on A, drops, and resumes on B with exactly what it missed.
#[tokio::test]
async fn websocket_resumes_on_the_other_instance() {
    let mut cleanup = Cleanup {
        url: nats_url(),
        streams: Vec::new(),
    };
    let prefix = prefix();
    let a = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    let b = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    let server_a = serve(NegotiateLayer::new().layer(Subscribe::new(a.clone(), "room"))).await;
    let server_b = serve(NegotiateLayer::new().layer(Subscribe::new(b.clone(), "room"))).await;
    let next_data = async |ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >| loop {
        match within(ws.next()).await.unwrap().unwrap() {
            tungstenite::Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v.get("data").is_some() {
                    return v;
                }
            }
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{server_a}/"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.publish("room", Event::new().data("one")).await.unwrap();
    let first = next_data(&mut ws).await;
    ws.close(None).await.unwrap();
    for data in ["two", "three"] {
        b.publish("room", Event::new().data(data)).await.unwrap();
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{server_b}/?lastEventId={}",
        first["id"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(next_data(&mut ws).await["data"], "two");
    assert_eq!(next_data(&mut ws).await["data"], "three");
    a.publish("room", Event::new().data("four")).await.unwrap();
    assert_eq!(next_data(&mut ws).await["data"], "four", "then live");
}

#[tokio::test]
async fn a_ticket_is_redeemed_once_across_instances() {
    let mut cleanup = Cleanup {
        url: nats_url(),
        streams: Vec::new(),
    };
    let prefix = prefix();
    let a = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    let b = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    cleanup.streams.push(NatsTicketStore::stream_name(&a));
    let tickets = Tickets::new(Key::new(1, b"shared between instances, 32 b!!"));
    let server = |hub: NatsHub| {
        let tickets = tickets.clone();
        async move {
            let store = NatsTicketStore::new(&hub).await.unwrap();
            serve(
                ServiceBuilder::new()
                    .layer(AuthTicketLayer::new(tickets).store(store))
                    .layer(NegotiateLayer::new())
                    .service(Subscribe::new(hub, "room")),
            )
            .await
        }
    };
    let (on_a, on_b) = (server(a.clone()).await, server(b.clone()).await);
    let ticket = tickets.mint("alice", &Binding::new()).unwrap();
    let status = |addr: SocketAddr| {
        let path = format!("/?ticket={}", ticket.as_str());
        async move {
            within(h1().request(get(addr, &path).body(Empty::<Bytes>::new()).unwrap()))
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        status(on_b).await,
        StatusCode::OK,
        "minted on A, redeemed on B"
    );
    assert_eq!(
        status(on_a).await,
        StatusCode::UNAUTHORIZED,
        "then refused on A"
    );
    assert_eq!(status(on_b).await, StatusCode::UNAUTHORIZED, "and on B");
}

/// A `nats-server -js` of the test's own, on a free port, with its own store directory.
struct OwnNats {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl OwnNats {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("tower-push-nats-{}", prefix()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nats = Self {
            port,
            dir,
            child: None,
        };
        nats.spawn();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = Command::new(binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nats-server did not start");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wipe(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).unwrap();
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn publish_retrying(hub: &NatsHub, data: String) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if hub
                .publish("room", Event::new().data(data.clone()))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("a publish succeeds within 30 s of NATS coming back")
}

/// NATS restarts mid-stream: the reader restarts and subscribers lose nothing JetStream kept
/// (or get `reset` when the store was wiped); heartbeats flow while it is down; a publish
/// while it is down is an error to the caller, within the timeout.
async fn restart(wipe: bool) -> Vec<Push> {
    let mut nats = OwnNats::start();
    let hub = NatsHub::builder(&nats.url(), "restart")
        .block(Duration::from_millis(200))
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect("own NATS answers");
    let mut sub = Box::pin(
        hub.subscribe("room", None)
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
        publish_retrying(&hub, format!("before {i}")).await;
    }
    while got
        .iter()
        .filter(|p| matches!(p, Push::Event(e) if e.get_data().is_some()))
        .count()
        < 3
    {
        next(&mut got).await;
    }

    nats.stop();
    let publish = tokio::time::timeout(
        Duration::from_secs(5),
        hub.publish("room", Event::new().data("x")),
    )
    .await
    .expect("publishing to a stopped NATS returns, it does not hang");
    assert!(
        publish.is_err_and(|e| e.is_unavailable()),
        "publishing to a stopped NATS is an error"
    );
    let beats_before = got.iter().filter(|p| **p == Push::Heartbeat).count();
    while got.iter().filter(|p| **p == Push::Heartbeat).count() < beats_before + 2 {
        next(&mut got).await;
    }
    if wipe {
        nats.wipe();
    }
    nats.spawn();
    for i in 0..3 {
        publish_retrying(&hub, format!("after {i}")).await;
    }
    tokio::time::timeout(Duration::from_secs(30), async {
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

fn datas(got: &[Push]) -> Vec<String> {
    got.iter()
        .filter_map(|p| match p {
            Push::Event(e) if e.get_event() == Some("reset") => Some("<reset>".into()),
            Push::Event(e) => e.get_data().map(str::to_owned),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_store_kept_loses_nothing() {
    let got = restart(false).await;
    // "x" was published as NATS went down: the caller got an error, but the client may have
    // written it before it noticed, and then it is stored (an unknown outcome, as for any
    // request whose answer is lost). Either way, in order and once.
    assert_eq!(
        without_x(datas(&got), 3),
        ["before 0", "before 1", "before 2", "after 0", "after 1", "after 2"]
    );
}

/// `got` without the "x" published as NATS went down, after checking that it came at most
/// once, at `at` (just before the events published after the restart).
fn without_x(got: Vec<String>, at: usize) -> Vec<String> {
    let xs: Vec<usize> = (0..got.len()).filter(|&i| got[i] == "x").collect();
    assert!(xs.len() <= 1, "x at most once: {got:?}");
    assert!(xs.iter().all(|&i| i == at), "x in order: {got:?}");
    got.into_iter().filter(|d| d != "x").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_store_wiped_resets_then_continues() {
    let got = restart(true).await;
    assert_eq!(
        without_x(datas(&got), 4),
        ["before 0", "before 1", "before 2", "<reset>", "after 0", "after 1", "after 2"]
    );
}

#[tokio::test]
async fn connecting_to_no_nats_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        NatsHub::connect(&format!("nats://127.0.0.1:{port}"), "x"),
    )
    .await;
    assert!(matches!(result, Ok(Err(_))), "a clear error, not a hang");
}
