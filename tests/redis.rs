#![cfg(all(
    feature = "redis",
    feature = "sse",
    feature = "negotiate",
    feature = "auth-ticket",
    feature = "heartbeat"
))]
//! The Redis backbone against a real Redis: `REDIS_URL` (default `redis://127.0.0.1:6379`)
//! for shared-server tests, each under a unique key prefix; restart tests start their own
//! `redis-server` on a free port (never the shared one).

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use serde_json::Value;
use std::{
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};
use support::{hub_suite, instances, proxy, scale, *};
use tokio_stream::StreamExt as _;
use tower::Layer as _;
use tower_push::{
    auth_ticket::RedisTicketStore,
    hub::{Hub, RedisHub, RedisHubError, Subscribe},
    negotiate::NegotiateLayer,
    Event, Push,
};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "tower-push-test:{}:{nanos}:{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn hub_at(url: &str, prefix: &str) -> RedisHub {
    RedisHub::builder(url, prefix)
        .block(Duration::from_millis(200))
        .connect()
        .await
        .expect("Redis answers")
}

async fn hub() -> RedisHub {
    hub_at(&redis_url(), &prefix()).await
}

#[tokio::test]
async fn redis_starts_with_position_then_live() {
    hub_suite::starts_with_position_then_live(hub().await).await;
}

#[tokio::test]
async fn redis_resume_replays_exactly_the_missed_events() {
    hub_suite::resume_replays_exactly_the_missed_events(hub().await).await;
}

#[tokio::test]
async fn redis_foreign_cursor_resets() {
    let other = hub().await;
    let foreign = other
        .publish("t", Event::new().data("elsewhere"))
        .await
        .unwrap();
    hub_suite::foreign_cursor_resets(hub().await, foreign.as_str()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_concurrent_publishers_and_joining_subscribers() {
    hub_suite::concurrent_publishers_and_joining_subscribers(hub().await).await;
}

#[tokio::test]
async fn redis_several_topics_resume_exactly() {
    hub_suite::several_topics_resume_exactly(hub().await).await;
}

#[tokio::test]
async fn redis_a_trimmed_topic_resets_alone() {
    let hub = RedisHub::builder(&redis_url(), &prefix())
        .maxlen(10)
        .block(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    hub_suite::a_trimmed_topic_resets_alone(hub, 500).await;
}

/// Topics expire from Redis once idle; a reader keeps a subscribed topic alive.
#[tokio::test]
async fn idle_topics_expire_from_redis() {
    let prefix = prefix();
    let hub = RedisHub::builder(&redis_url(), &prefix)
        .idle_topic_age(Duration::from_millis(600))
        .block(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    hub.publish("gone", Event::new().data("x")).await.unwrap();
    let mut kept = hub.subscribe("kept", tower_push::cursor::StartAt::Now);
    hub_suite::next(&mut kept).await;
    hub.publish("kept", Event::new().data("y")).await.unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = |conn: &mut redis::aio::MultiplexedConnection| {
        let pattern = format!("{prefix}:*");
        let mut conn = conn.clone();
        async move {
            let mut keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.sort();
            keys
        }
    };
    let before = keys(&mut conn).await;
    assert_eq!(before.len(), 4, "{before:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}:gone"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 600, "{ttl}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        keys(&mut conn).await,
        [format!("{prefix}:kept"), format!("{prefix}:kept:epoch")],
        "the idle topic expired; the subscribed one was kept alive by its reader"
    );
    hub.publish("kept", Event::new().data("z")).await.unwrap();
    assert_eq!(hub_suite::next(&mut kept).await.get_data(), Some("y"));
    assert_eq!(hub_suite::next(&mut kept).await.get_data(), Some("z"));
    drop(kept);
}

#[tokio::test]
async fn history_trimmed_past_the_cursor_resets() {
    let hub = RedisHub::builder(&redis_url(), &prefix())
        .maxlen(10)
        .block(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let first = hub.publish("t", Event::new().data("first")).await.unwrap();
    for i in 0..500 {
        hub.publish("t", Event::new().data(i.to_string()))
            .await
            .unwrap();
    }
    let mut sub = hub.subscribe(
        "t",
        tower_push::cursor::StartAt::parse(Some(first.as_str())).unwrap(),
    );
    let reset = hub_suite::next(&mut sub).await;
    assert_eq!(reset.get_event(), Some("reset"));
    let data: Value = serde_json::from_str(reset.get_data().unwrap()).unwrap();
    assert_eq!(data["reason"], "expired");
}

/// Two instances on one Redis: an SSE client on B receives what A publishes, and a client
/// that read on A resumes on B with exactly the missed events.
#[tokio::test]
async fn two_instances_share_topics_and_cursors() {
    let prefix = prefix();
    let a = hub_at(&redis_url(), &prefix).await;
    let b = hub_at(&redis_url(), &prefix).await;
    instances::sse_resumes_on_the_other_instance(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_alternating_between_instances_loses_nothing() {
    let prefix = prefix();
    let a = hub_at(&redis_url(), &prefix).await;
    let b = hub_at(&redis_url(), &prefix).await;
    instances::long_poll_alternating_loses_nothing(a, b).await;
}

#[tokio::test]
async fn a_ticket_is_redeemed_once_across_instances() {
    let prefix = prefix();
    let a = hub_at(&redis_url(), &prefix).await;
    let b = hub_at(&redis_url(), &prefix).await;
    let (store_a, store_b) = (RedisTicketStore::new(&a), RedisTicketStore::new(&b));
    instances::a_ticket_is_redeemed_once((a, store_a), (b, store_b)).await;
}

/// A private `redis-server` on a free port, restartable with the same data directory.
struct OwnRedis {
    port: u16,
    dir: std::path::PathBuf,
    persistent: bool,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(persistent: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("tower-push-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self {
            port,
            dir,
            persistent,
            child: None,
        };
        redis.spawn();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let (aof, fsync) = if self.persistent {
            ("yes", "always")
        } else {
            ("no", "no")
        };
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                aof,
                "--appendfsync",
                fsync,
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SHUTDOWN flushes the AOF when persistence is on; then the process exits.
            let _ = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "shutdown"])
                .output();
            if child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(200));
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl instances::OwnServer for OwnRedis {
    fn stop(&mut self) {
        OwnRedis::stop(self);
    }

    fn start_again(&mut self) {
        self.spawn();
    }
}

/// Redis restarts mid-stream (see `instances::restart_mid_stream`).
async fn restart(persistent: bool) -> Vec<Push> {
    let mut redis = OwnRedis::start(persistent);
    let hub = hub_at(&redis.url(), "restart").await;
    let scenario = instances::Restart {
        name: "Redis",
        unavailable: |e: &RedisHubError| e.is_unavailable(),
        recovery: Duration::from_secs(10),
    };
    instances::restart_mid_stream(&hub, &mut redis, scenario).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_persistence_loses_nothing() {
    let got = restart(true).await;
    assert_eq!(
        instances::datas(&got),
        ["before 0", "before 1", "before 2", "after 0", "after 1", "after 2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_persistence_resets_then_continues() {
    let got = restart(false).await;
    assert_eq!(
        instances::datas(&got),
        ["before 0", "before 1", "before 2", "<reset>", "after 0", "after 1", "after 2"]
    );
}

#[tokio::test]
async fn connecting_to_no_redis_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        RedisHub::connect(&format!("redis://127.0.0.1:{port}"), "x"),
    )
    .await;
    assert!(matches!(result, Ok(Err(_))), "a clear error, not a hang");
    let _ = Request::get("/").body(()).unwrap();
}

/// While Redis is down, a publish, a new subscription and a ticket redemption each fail
/// within the hub's timeout (the endpoint answers `503` with `Retry-After`), and everything
/// recovers by itself when Redis returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_then_recovers() {
    use tower_push::auth_ticket::TicketStore as _;
    let mut redis = OwnRedis::start(false);
    let timeout = Duration::from_millis(500);
    let hub = RedisHub::builder(&redis.url(), &prefix())
        .block(Duration::from_millis(200))
        .timeout(timeout)
        .connect()
        .await
        .expect("Redis answers");
    let store = RedisTicketStore::new(&hub);
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let addr = serve(NegotiateLayer::new().layer(Subscribe::new(hub.clone(), "room"))).await;
    let client = h1();
    let poll = || async {
        let res = within(client.request(get(addr, "/").body(Empty::<Bytes>::new()).unwrap()))
            .await
            .unwrap();
        let retry_after = res.headers().get("retry-after").cloned();
        (res.status(), retry_after)
    };
    assert_eq!(poll().await.0, StatusCode::OK);
    hub.publish("room", Event::new().data("up")).await.unwrap();

    redis.stop();
    // Each bound is the timeout plus scheduling slack; a hang or the old ~9.5 s retry loop
    // fails it.
    let bound = timeout + Duration::from_millis(1500);
    let started = tokio::time::Instant::now();
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        hub.publish("room", Event::new().data("down")),
    )
    .await
    .expect("publish returned")
    .unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert!(
        started.elapsed() < bound,
        "publish failed after {:?}",
        started.elapsed()
    );

    let started = tokio::time::Instant::now();
    let (status, retry_after) = poll().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.unwrap(), "1");
    assert!(
        started.elapsed() < bound,
        "refused after {:?}",
        started.elapsed()
    );

    let started = tokio::time::Instant::now();
    let redeemed = tokio::time::timeout(Duration::from_secs(10), store.redeem([7; 16], expires))
        .await
        .expect("redeem returned");
    assert!(
        redeemed.is_err(),
        "an unreachable store is an error, not a yes or no"
    );
    assert!(
        started.elapsed() < bound,
        "redeem failed after {:?}",
        started.elapsed()
    );

    redis.spawn();
    instances::publish_retrying(&hub, "back".into(), Duration::from_secs(10)).await;
    assert_eq!(
        poll().await.0,
        StatusCode::OK,
        "subscriptions are served again"
    );
    assert!(store.redeem([8; 16], expires).await.unwrap());
}

/// Redis `CLIENT KILL`s the instance's Pub/Sub connection twice while a publisher runs: the
/// instance reconnects, subscribes again and reads what it missed from the stream, so the
/// subscriber gets every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pubsub_connection_loses_nothing() {
    let redis = OwnRedis::start(false);
    let hub = hub_at(&redis.url(), "kill").await;
    let publisher = hub_at(&redis.url(), "kill").await;
    let port = redis.port.to_string();
    scale::live_loss_is_recovered(&hub, &publisher, "t", 300, || {
        let out = Command::new("redis-cli")
            .args(["-p", &port, "CLIENT", "KILL", "TYPE", "pubsub"])
            .output()
            .expect("redis-cli runs");
        let killed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(killed.trim(), "1", "one Pub/Sub connection killed");
    })
    .await;
}

/// A new topic's position is read beside its `SUBSCRIBE`, so it can be delivered before Redis
/// has subscribed the channel. Here the Pub/Sub connection's commands reach Redis 400 ms late
/// (through a proxy): an event published right after the position event misses the channel,
/// and must still arrive (read from the stream once the `SUBSCRIBE` is confirmed).
#[tokio::test]
async fn an_event_published_before_the_subscribe_lands_is_delivered() {
    let redis: std::net::SocketAddr = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("REDIS_URL is redis://host:port");
    // The hub's first connection is its command connection, the second its Pub/Sub one.
    let delay = proxy::Delay {
        nth: 1,
        by: Duration::from_millis(400),
    };
    let proxy = proxy::Proxy::start_delaying(redis, Some(delay)).await;
    let prefix = prefix();
    let hub = hub_at(&format!("redis://{}", proxy.addr), &prefix).await;
    let publisher = hub_at(&redis_url(), &prefix).await;
    for round in 0..3 {
        let topic = format!("t{round}");
        let mut sub = hub.subscribe(&topic, tower_push::cursor::StartAt::Now);
        let position = hub_suite::next(&mut sub).await;
        assert!(position.is_cursor_only(), "{position:?}");
        publisher
            .publish(&topic, Event::new().data("early"))
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), hub_suite::next(&mut sub))
            .await
            .expect("the early event arrives");
        assert_eq!(event.get_data(), Some("early"));
    }
}

/// An entry that reached the stream but not the channel (a lost message) is read from the
/// stream when the next message's previous id shows the gap: nothing lost, in order.
#[tokio::test]
async fn a_message_missing_from_the_channel_is_read_from_the_stream() {
    let prefix = prefix();
    let hub = hub_at(&redis_url(), &prefix).await;
    let mut sub = hub.subscribe("t", tower_push::cursor::StartAt::Now);
    hub_suite::next(&mut sub).await;
    hub.publish("t", Event::new().data("one")).await.unwrap();
    assert_eq!(hub_suite::next(&mut sub).await.get_data(), Some("one"));
    // Written to the stream the way the publish script writes it, but never announced.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let epoch: String = redis::cmd("GET")
        .arg(format!("{prefix}:t:epoch"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("{prefix}:t"))
        .arg("*")
        .arg("p")
        .arg(&epoch)
        .arg("d")
        .arg("unannounced")
        .query_async(&mut conn)
        .await
        .unwrap();
    hub.publish("t", Event::new().data("three")).await.unwrap();
    assert_eq!(
        hub_suite::next(&mut sub).await.get_data(),
        Some("unannounced")
    );
    assert_eq!(hub_suite::next(&mut sub).await.get_data(), Some("three"));
}

/// The number of clients connected to a private Redis (the test's own connection included).
fn connected_clients(port: u16) -> usize {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "CLIENT", "LIST"])
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn pubsub_channels(port: u16) -> usize {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "PUBSUB", "CHANNELS"])
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Two instances with 10,000 topics each on one Redis: every message reaches the right
/// subscriber once; each instance holds 2 connections (one for commands, one for Pub/Sub)
/// whatever the number of topics; once the subscribers leave, every channel is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_10000_topics_each() {
    let redis = OwnRedis::start(false);
    let a = hub_at(&redis.url(), "many").await;
    let b = hub_at(&redis.url(), "many").await;
    let baseline = connected_clients(redis.port);
    let t0 = tokio::time::Instant::now();
    let subs = scale::many_topics_on_two_instances(&a, &b, 10_000).await;
    assert_eq!(a.active_topics(), 10_000);
    assert_eq!(pubsub_channels(redis.port), 20_000);
    let clients = connected_clients(redis.port);
    assert_eq!(
        clients, baseline,
        "no connection per topic: {clients} clients with 20,000 topics, {baseline} with none"
    );
    assert!(
        clients <= 2 * 2 + 1,
        "{clients} clients for two instances (and redis-cli)"
    );
    let started = tokio::time::Instant::now();
    drop(subs);
    tokio::time::timeout(Duration::from_secs(10), async {
        while a.active_topics() + b.active_topics() > 0 || pubsub_channels(redis.port) > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every topic and channel is released once its subscribers leave");
    eprintln!(
        "released in {:?}; total {:?}",
        started.elapsed(),
        t0.elapsed()
    );
}

/// A subscription Redis cannot serve (here: an ACL user without Pub/Sub rights) does not wait
/// forever: past its start deadline the stream ends, so the client resumes elsewhere or later.
#[tokio::test]
async fn a_subscription_redis_cannot_serve_ends_instead_of_waiting_forever() {
    let redis = OwnRedis::start(false);
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args([
            "ACL",
            "SETUSER",
            "nopubsub",
            "on",
            ">secret",
            "~*",
            "resetchannels",
            "+@all",
        ])
        .output()
        .expect("redis-cli runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let url = format!("redis://nopubsub:secret@127.0.0.1:{}", redis.port);
    let hub = RedisHub::builder(&url, "limited")
        .timeout(Duration::from_millis(100))
        .block(Duration::from_millis(200))
        .connect()
        .await
        .expect("commands work for this user");
    let mut sub = hub.subscribe("t", tower_push::cursor::StartAt::Now);
    // Its position may come first (the stream is readable); then the refused `SUBSCRIBE`
    // ends it, rather than a stream on which nothing ever arrives.
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = sub.next().await {
            seen.push(event);
        }
    })
    .await
    .expect("the subscription ends");
    assert!(
        seen.len() <= 1 && seen.iter().all(tower_push::Event::is_cursor_only),
        "{seen:?}"
    );
    // The topic is forgotten, so a later subscription asks Redis again (and ends again).
    assert_eq!(hub.active_topics(), 0);
    let again = tokio::time::timeout(Duration::from_secs(10), async {
        let mut sub = hub.subscribe("t", tower_push::cursor::StartAt::Now);
        while sub.next().await.is_some() {}
    })
    .await;
    assert!(again.is_ok(), "the second subscription ends too");
}

/// The readiness probe follows the backbone: `200` while Redis answers, `503` (naming the
/// backbone) within a few `block` periods of Redis stopping, `200` again once it is back;
/// liveness stays `200` throughout.
#[tokio::test]
async fn readiness_follows_redis() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let mut redis = OwnRedis::start(false);
    let hub = RedisHub::builder(&redis.url(), "health")
        .timeout(Duration::from_millis(200))
        .block(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let health = tower_push::health::Health::new().hub(hub.clone());
    let probe = |service: tower_push::health::Probe| async move {
        let res = service
            .oneshot(http::Request::get("/readyz").body(()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let until = |want: StatusCode| {
        let (health, probe) = (health.clone(), probe);
        async move {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let (status, body) = probe(health.readiness()).await;
                    if status == want {
                        return body;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("readiness never became {want}"))
        }
    };
    assert_eq!(until(StatusCode::OK).await, "ready\n");
    redis.stop();
    let body = until(StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body.starts_with("backbone: "), "{body}");
    assert_eq!(probe(health.liveness()).await.0, StatusCode::OK);
    redis.spawn();
    until(StatusCode::OK).await;
}

#[tokio::test]
async fn redis_damaged_cursors_reset_or_resume_exactly() {
    for seed in 1..=3 {
        let resets =
            hub_suite::damaged_cursors_reset_or_resume_exactly(hub().await, seed, 40).await;
        assert!(resets > 0, "seed {seed}: some damage must be unplaceable");
    }
}

#[tokio::test]
async fn redis_a_damaged_composite_resets_what_it_cannot_place() {
    hub_suite::a_damaged_composite_resets_what_it_cannot_place(hub().await).await;
}
