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

use futures_util::StreamExt as _;
use serde_json::Value;
use std::{
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};
use support::{hub_suite, instances, proxy, scale, *};
use tokio_tungstenite::tungstenite;
use tower::Layer as _;
use tower_push::{
    auth_ticket::NatsTicketStore,
    hub::{Hub, NatsHub, NatsHubError, Subscribe},
    negotiate::NegotiateLayer,
    Event, Push,
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
        let mut sub = hub.subscribe(topic, tower_push::cursor::StartAt::Now);
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
    let (a, b, _cleanup) = two_hubs().await;
    instances::sse_resumes_on_the_other_instance(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_alternating_between_instances_loses_nothing() {
    let (a, b, _cleanup) = two_hubs().await;
    instances::long_poll_alternating_loses_nothing(a, b).await;
}

/// Two hubs on one NATS with one prefix: two instances.
async fn two_hubs() -> (NatsHub, NatsHub, Cleanup) {
    let mut cleanup = Cleanup {
        url: nats_url(),
        streams: Vec::new(),
    };
    let prefix = prefix();
    let a = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    let b = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    (a, b, cleanup)
}

/// A WebSocket client reads on A, drops, and resumes on B with exactly what it missed.
#[tokio::test]
async fn websocket_resumes_on_the_other_instance() {
    let (a, b, _cleanup) = two_hubs().await;
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
    let (a, b, mut cleanup) = two_hubs().await;
    cleanup.streams.push(NatsTicketStore::stream_name(&a));
    let store_a = NatsTicketStore::new(&a).await.unwrap();
    let store_b = NatsTicketStore::new(&b).await.unwrap();
    instances::a_ticket_is_redeemed_once((a, store_a), (b, store_b)).await;
}

/// A `nats-server -js` of the test's own, on a free port, with its own store directory.
struct OwnNats {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
    /// Whether a restart starts from an empty store.
    wipe_on_restart: bool,
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
            wipe_on_restart: false,
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

impl instances::OwnServer for OwnNats {
    fn stop(&mut self) {
        OwnNats::stop(self);
    }

    fn start_again(&mut self) {
        if self.wipe_on_restart {
            self.wipe();
        }
        self.spawn();
    }
}

/// NATS restarts mid-stream (see `instances::restart_mid_stream`), with its store kept or
/// wiped.
async fn restart(wipe: bool) -> Vec<Push> {
    let mut nats = OwnNats::start();
    nats.wipe_on_restart = wipe;
    let hub = NatsHub::builder(&nats.url(), "restart")
        .block(Duration::from_millis(200))
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect("own NATS answers");
    let scenario = instances::Restart {
        name: "NATS",
        unavailable: |e: &NatsHubError| e.is_unavailable(),
        recovery: Duration::from_secs(30),
    };
    instances::restart_mid_stream(&hub, &mut nats, scenario).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_store_kept_loses_nothing() {
    let got = restart(false).await;
    // "x" was published as NATS went down: the caller got an error, but the client may have
    // written it before it noticed, and then it is stored (an unknown outcome, as for any
    // request whose answer is lost). Either way, in order and once.
    assert_eq!(
        without_x(instances::datas(&got), 3),
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
        without_x(instances::datas(&got), 4),
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

fn nats_addr() -> std::net::SocketAddr {
    let url = nats_url();
    let hostport = url.trim_start_matches("nats://");
    std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .unwrap()
        .next()
        .unwrap()
}

/// A hub whose connection to NATS goes through a proxy the test can cut, and a publisher on
/// the same stream connected directly; the streams are deleted when the cleanup drops.
async fn proxied_hub() -> (proxy::Proxy, NatsHub, NatsHub, Cleanup) {
    let proxy = proxy::Proxy::start(nats_addr()).await;
    let prefix = prefix();
    let mut cleanup = Cleanup {
        url: nats_url(),
        streams: Vec::new(),
    };
    let hub = hub_at(&format!("nats://{}", proxy.addr), &prefix, &mut cleanup).await;
    let publisher = hub_at(&nats_url(), &prefix, &mut cleanup).await;
    (proxy, hub, publisher, cleanup)
}

/// The instance's connection to NATS is cut twice (through a proxy) while a publisher runs:
/// the client reconnects, and every topic reads what it missed from the stream, so the
/// subscriber gets every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_loses_nothing() {
    let (proxy, hub, publisher, _cleanup) = proxied_hub().await;
    scale::live_loss_is_recovered(&hub, &publisher, "t", 300, || proxy.cut()).await;
}

/// Two instances with 10,000 topics each on one stream: every message reaches the right
/// subscriber once, with no consumer on the stream; once the subscribers leave, every topic
/// is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_10000_topics_each() {
    let (a, b, _cleanup) = two_hubs().await;
    let subs = scale::many_topics_on_two_instances(&a, &b, 10_000).await;
    assert_eq!(a.active_topics(), 10_000);
    assert_eq!(b.active_topics(), 10_000);
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(a.stream_name()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.consumer_count, 0,
        "no consumer, whatever the topics"
    );
    drop(subs);
    tokio::time::timeout(Duration::from_secs(10), async {
        while a.active_topics() + b.active_topics() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every topic is released once its subscribers leave");
}

#[tokio::test]
async fn nats_damaged_cursors_reset_or_resume_exactly() {
    for seed in 1..=3 {
        let (hub, _cleanup) = hub().await;
        let resets = hub_suite::damaged_cursors_reset_or_resume_exactly(hub, seed, 40).await;
        assert!(resets > 0, "seed {seed}: some damage must be unplaceable");
    }
}

#[tokio::test]
async fn nats_a_damaged_composite_resets_what_it_cannot_place() {
    let (hub, _cleanup) = hub().await;
    hub_suite::a_damaged_composite_resets_what_it_cannot_place(hub).await;
}

/// Messages deleted before this instance read them (published while it was cut off from
/// NATS, then removed from the stream) are a gap: when it reconnects, its subscriber gets a
/// `reset` before the next message, never a silent jump over them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_deleted_unread_is_a_reset() {
    let (proxy, hub, publisher, _cleanup) = proxied_hub().await;
    let mut sub = hub.subscribe("t", tower_push::cursor::StartAt::Now);
    hub_suite::next(&mut sub).await; // position
    hub_suite::settle().await;
    publisher
        .publish("t", Event::new().data("m1"))
        .await
        .unwrap();
    assert_eq!(hub_suite::next(&mut sub).await.get_data(), Some("m1"));

    // Cut off: m2 and m3 are published, and m2 deleted, while this instance cannot read.
    proxy.refuse(true);
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m2 = publisher
        .publish("t", Event::new().data("m2"))
        .await
        .unwrap();
    publisher
        .publish("t", Event::new().data("m3"))
        .await
        .unwrap();
    let seq: u64 = m2.as_str().rsplit('-').next().unwrap().parse().unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let stream = js.get_stream(publisher.stream_name()).await.unwrap();
    assert!(stream.delete_message(seq).await.unwrap(), "m2 deleted");
    proxy.refuse(false);

    let reset = hub_suite::next(&mut sub).await;
    assert_eq!(
        reset.get_event(),
        Some(tower_push::hub::RESET_EVENT),
        "a gap, not {reset:?}"
    );
    assert_eq!(hub_suite::next(&mut sub).await.get_data(), Some("m3"));
}

/// NATS restarts with its store wiped, on every transport's path (a hub subscription from a
/// cursor, which SSE, long-poll and WebSocket resume through): a client resuming with a
/// cursor of the lost history gets `reset`, never a silent continuation, whether it comes
/// back before or after the first publish of the new history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_of_a_wiped_history_resets() {
    let mut nats = OwnNats::start();
    let hub = NatsHub::builder(&nats.url(), "wiped")
        .block(Duration::from_millis(200))
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect("own NATS answers");
    let mut old = String::new();
    for i in 0..3 {
        old = hub
            .publish("room", Event::new().data(format!("before {i}")))
            .await
            .unwrap()
            .as_str()
            .to_owned();
    }
    nats.stop();
    nats.wipe();
    nats.spawn();
    let first_reset = |mut sub: <NatsHub as Hub>::Subscription| async move {
        let first = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match sub.next().await {
                    Some(event) => return event,
                    None => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
        .await
        .expect("the subscription answers");
        (first, sub)
    };
    // Back before anything was published again.
    let (first, _) = first_reset(hub.subscribe(
        "room",
        tower_push::cursor::StartAt::parse(Some(&old)).unwrap(),
    ))
    .await;
    assert_eq!(
        first.get_event(),
        Some(tower_push::hub::RESET_EVENT),
        "{old} after the wipe: {first:?}"
    );
    // And after new history exists, longer than the old one: the old cursor's sequence
    // now names a message of the new history, and only the epoch tells them apart.
    let mut published = 0;
    for _ in 0..300 {
        if hub
            .publish("room", Event::new().data("after"))
            .await
            .is_ok()
        {
            published += 1;
            if published == 6 {
                break;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(published, 6, "publishing works again after the restart");
    let (first, _) = first_reset(hub.subscribe(
        "room",
        tower_push::cursor::StartAt::parse(Some(&old)).unwrap(),
    ))
    .await;
    assert_eq!(
        first.get_event(),
        Some(tower_push::hub::RESET_EVENT),
        "{old} after the wipe and a publish: {first:?}"
    );
}
