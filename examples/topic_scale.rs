//! Topics at scale: one instance holding many small topics on a shared backbone, and the load
//! client that measures it. `scripts/topic-scale.py` runs both and samples the instance and
//! the backbone from `/proc`; the figures are in `docs/SCALING.md`.
//!
//! ```text
//! # the instance: SSE with several topics per connection (?topic=a&topic=b), on Redis or NATS
//! BACKBONE=redis URL=redis://127.0.0.1:6379 PREFIX=ts PORT=3000 \
//!     cargo run --release --example topic_scale --features redis,nats -- server
//! # the client: 12,500 connections x 8 topics, then 30 s of 1,000 publishes/s on random topics,
//! # then 60 s of 1,000 new topics per second (and as many leaving)
//! BACKBONE=redis URL=redis://127.0.0.1:6379 PREFIX=ts ADDR=127.0.0.1:3000 CONNS=12500 \
//!     cargo run --release --example topic_scale --features redis,nats -- client
//! ```
//!
//! The client prints one `PHASE <name> <start|end>` line at each phase boundary (the script
//! samples the instance there) and one `RESULT {json}` line per measurement.

use futures_util::{stream, StreamExt as _};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tower::ServiceBuilder;
use tower_push::{
    drain::Drain,
    heartbeat::HeartbeatLayer,
    hub::{Hub, NatsHub, RedisHub, Topics},
    serve,
    sse::SseLayer,
    Event,
};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_num(name: &str, default: u64) -> u64 {
    env(name, &default.to_string()).parse().unwrap_or(default)
}

/// The instance: `GET /events?topic=..` over SSE on the backbone, `http1_only`.
async fn server<H: Hub>(hub: H, listener: tokio::net::TcpListener) {
    let drain = Drain::new();
    let events = ServiceBuilder::new()
        .layer(SseLayer::new())
        .layer(drain.layer())
        .layer(HeartbeatLayer::new(Duration::from_secs(60)))
        .service(Topics::new(hub));
    let app = axum::Router::new().route_service("/events", events);
    serve::Server::new(&drain)
        .http1_only(true)
        .run(listener, app, serve::shutdown_signal())
        .await;
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// What the connections record.
#[derive(Default)]
struct Shared {
    /// Publish-to-delivery latencies (µs) while `recording`.
    latencies: Mutex<Vec<u64>>,
    recording: std::sync::atomic::AtomicBool,
    delivered: AtomicU64,
    open: AtomicUsize,
}

/// Opens one SSE connection for `topics`; returns when its first event (the position) has
/// arrived, with the time that took, and leaves a task reading it until `stop`.
async fn connect(
    addr: SocketAddr,
    topics: &[String],
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Duration> {
    let started = Instant::now();
    // Spread over source addresses 127.0.0.2-127.0.0.250: one address has about 28,000
    // ports, and churn leaves closed ones in TIME_WAIT.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let source = std::net::Ipv4Addr::new(
        127,
        0,
        0,
        2 + (NEXT.fetch_add(1, Ordering::Relaxed) % 249) as u8,
    );
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let mut tcp = socket.connect(addr).await?;
    let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
    let request = format!(
        "GET /events?{} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n",
        query.join("&")
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 2048];
    let mut filled = 0;
    // The head, then the position event's `id:` line.
    loop {
        let n = tcp.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the position event"));
        }
        filled += n;
        let text = &buf[..filled];
        if !text.starts_with(b"HTTP/1.1 200") && text.len() > 12 {
            return Err(std::io::Error::other(format!(
                "refused: {}",
                String::from_utf8_lossy(&text[..text.len().min(80)])
            )));
        }
        if memchr::memmem::find(text, b"\nid:").is_some() {
            break;
        }
        if filled == buf.len() {
            return Err(std::io::Error::other("no position event"));
        }
    }
    let took = started.elapsed();
    shared.open.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(read_events(tcp, shared, stop));
    Ok(took)
}

/// Reads `data: <µs>` lines until `stop` (or the server closes), recording latencies.
async fn read_events(
    mut tcp: TcpStream,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 1024];
    // A line cut between two reads continues at the start of the buffer.
    let mut kept = 0;
    loop {
        if kept == buf.len() {
            kept = 0; // a line longer than the buffer: not one of ours
        }
        let n = tokio::select! {
            n = tcp.read(&mut buf[kept..]) => match n { Ok(0) | Err(_) => break, Ok(n) => n },
            _ = stop.changed() => break,
        };
        let received = now_micros();
        let filled = kept + n;
        let complete = buf[..filled]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in buf[..complete].split(|b| *b == b'\n') {
            let Some(sent) = line
                .strip_prefix(b"data: ")
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.trim().parse::<u64>().ok())
            else {
                continue;
            };
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            if shared.recording.load(Ordering::Relaxed) {
                if let Ok(mut l) = shared.latencies.lock() {
                    l.push(received.saturating_sub(sent));
                }
            }
        }
        buf.copy_within(complete..filled, 0);
        kept = filled - complete;
    }
    shared.open.fetch_sub(1, Ordering::Relaxed);
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn result(name: &str, fields: &[(&str, String)]) {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!("RESULT {{\"measure\":\"{name}\",{}}}", body.join(","));
}

fn phase(name: &str, edge: &str) {
    println!("PHASE {name} {edge}");
}

/// What a client run saw, for the example's test.
#[derive(Debug, Default)]
struct Summary {
    connections: usize,
    published: u64,
    delivered: u64,
    churn_opened: usize,
    churn_failed: u64,
}

async fn client<H: Hub>(hub: H) -> Summary {
    let mut summary = Summary::default();
    let addr: SocketAddr = env("ADDR", "127.0.0.1:3000").parse().expect("ADDR");
    let conns = env_num("CONNS", 12_500) as usize;
    let per = env_num("TOPICS_PER_CONN", 8) as usize;
    // SHARED=1: every connection reads the same `per` topics (the connections' cost without
    // the topics').
    let shared_topics = env("SHARED", "0") == "1";
    let idle_secs = env_num("IDLE_SECS", 60);
    let publish_secs = env_num("PUBLISH_SECS", 30);
    let publish_rate = env_num("PUBLISH_RATE", 1000) as usize;
    let churn_secs = env_num("CHURN_SECS", 60);
    let churn_rate = env_num("CHURN_RATE", 1000) as usize;
    let run = format!("{:x}", now_micros());
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);

    // 1. Subscribe: every connection with its topics, 256 opening at a time.
    let topic_of = |conn: usize, i: usize| {
        if shared_topics {
            format!("s{run}.{i}")
        } else {
            format!("t{run}.{}", conn * per + i)
        }
    };
    phase("subscribe", "start");
    let started = Instant::now();
    let mut opens: Vec<u64> = stream::iter(0..conns)
        .map(|c| {
            let topics: Vec<String> = (0..per).map(|i| topic_of(c, i)).collect();
            let (shared, stop) = (shared.clone(), stop.clone());
            async move {
                connect(addr, &topics, shared, stop)
                    .await
                    .map(|d| d.as_micros() as u64)
            }
        })
        .buffer_unordered(256)
        .filter_map(|r| async move { r.map_err(|e| eprintln!("connection failed: {e}")).ok() })
        .collect()
        .await;
    let took = started.elapsed();
    opens.sort_unstable();
    summary.connections = opens.len();
    phase("subscribe", "end");
    result(
        "subscribe",
        &[
            ("connections", opens.len().to_string()),
            ("topics", (opens.len() * per).to_string()),
            ("seconds", format!("{:.2}", took.as_secs_f64())),
            ("open_p50_ms", format!("{:.2}", percentile(&opens, 0.5))),
            ("open_p99_ms", format!("{:.2}", percentile(&opens, 0.99))),
        ],
    );

    // 2. Idle: nothing published; the script measures CPU and memory.
    phase("idle", "start");
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    phase("idle", "end");

    // 3. Light load: `publish_rate` publishes per second on random subscribed topics, the
    // publish time in the data.
    let topics_total = if shared_topics { per } else { conns * per };
    shared.recording.store(true, Ordering::Relaxed);
    let delivered_before = shared.delivered.load(Ordering::Relaxed);
    phase("publish", "start");
    let mut published = 0u64;
    let mut seed = now_micros() | 1;
    for _ in 0..publish_secs {
        let second = Instant::now();
        let batch: Vec<String> = (0..publish_rate)
            .map(|_| {
                // xorshift: cheap, good enough to pick topics.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let t = (seed % topics_total as u64) as usize;
                topic_of(t / per, t % per)
            })
            .collect();
        // Spread over the second.
        let gap = Duration::from_secs(1) / publish_rate.max(1) as u32;
        for (i, topic) in batch.into_iter().enumerate() {
            let at = second + gap * i as u32;
            tokio::time::sleep_until(at.into()).await;
            let hub = hub.clone();
            tokio::spawn(async move {
                let _ = hub
                    .publish(&topic, Event::new().data(now_micros().to_string()))
                    .await;
            });
            published += 1;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    phase("publish", "end");
    shared.recording.store(false, Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *shared.latencies.lock().unwrap());
    latencies.sort_unstable();
    let delivered = shared.delivered.load(Ordering::Relaxed) - delivered_before;
    let subscribers_per_publish = if shared_topics { conns as u64 } else { 1 };
    summary.published = published;
    summary.delivered = delivered;
    result(
        "publish",
        &[
            ("published", published.to_string()),
            ("delivered", delivered.to_string()),
            (
                "expected",
                (published * subscribers_per_publish).to_string(),
            ),
            ("p50_ms", format!("{:.2}", percentile(&latencies, 0.5))),
            ("p99_ms", format!("{:.2}", percentile(&latencies, 0.99))),
        ],
    );

    // 4. Churn: `churn_rate` connections per second each open a new topic, and as many
    // opened before close.
    phase("churn", "start");
    let churn_opens = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(AtomicU64::new(0));
    let mut live: std::collections::VecDeque<tokio::sync::watch::Sender<bool>> =
        std::collections::VecDeque::new();
    let window = churn_rate.max(1);
    let mut n = 0usize;
    for _ in 0..churn_secs {
        let second = Instant::now();
        let gap = Duration::from_secs(1) / churn_rate.max(1) as u32;
        for i in 0..churn_rate {
            tokio::time::sleep_until((second + gap * i as u32).into()).await;
            let (tx, rx) = tokio::sync::watch::channel(false);
            let topic = vec![format!("c{run}.{n}")];
            n += 1;
            let (shared, opens, failures) = (shared.clone(), churn_opens.clone(), failures.clone());
            tokio::spawn(async move {
                match connect(addr, &topic, shared, rx).await {
                    Ok(took) => opens.lock().unwrap().push(took.as_micros() as u64),
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            live.push_back(tx);
            if live.len() > window {
                if let Some(old) = live.pop_front() {
                    let _ = old.send(true);
                }
            }
        }
    }
    for old in live.drain(..) {
        let _ = old.send(true);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    phase("churn", "end");
    let mut churned = std::mem::take(&mut *churn_opens.lock().unwrap());
    churned.sort_unstable();
    summary.churn_opened = churned.len();
    summary.churn_failed = failures.load(Ordering::Relaxed);
    result(
        "churn",
        &[
            ("opened", churned.len().to_string()),
            ("failed", failures.load(Ordering::Relaxed).to_string()),
            ("open_p50_ms", format!("{:.2}", percentile(&churned, 0.5))),
            ("open_p99_ms", format!("{:.2}", percentile(&churned, 0.99))),
        ],
    );

    // 5. Everyone leaves; the script checks the backbone is left with nothing.
    let _ = stop_tx.send(true);
    phase("leave", "start");
    tokio::time::sleep(Duration::from_secs(env_num("LEAVE_SECS", 10))).await;
    phase("leave", "end");
    result(
        "leave",
        &[("open", shared.open.load(Ordering::Relaxed).to_string())],
    );
    summary
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let role = std::env::args().nth(1).unwrap_or_else(|| "server".into());
    let backbone = env("BACKBONE", "redis");
    let prefix = env("PREFIX", "topic-scale");
    let url = env(
        "URL",
        if backbone == "nats" {
            "nats://127.0.0.1:4222"
        } else {
            "redis://127.0.0.1:6379"
        },
    );
    let port: u16 = env_num("PORT", 3000) as u16;
    if env("TRACE", "0") == "1" {
        // The instance's own logs on stderr (reconnects, refusals), for looking into a run.
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    macro_rules! with_hub {
        ($hub:expr) => {{
            let hub = $hub;
            if role == "client" {
                let summary = client(hub).await;
                eprintln!("{summary:?}");
            } else {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
                println!("READY {} {}", std::process::id(), listener.local_addr()?);
                server(hub, listener).await;
            }
        }};
    }
    if backbone == "nats" {
        with_hub!(NatsHub::connect(&url, &prefix).await?);
    } else {
        with_hub!(
            RedisHub::builder(&url, &prefix)
                .idle_topic_age(Duration::from_secs(600))
                .connect()
                .await?
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instance and the client at a small scale on the shared Redis: every connection
    /// opens, every publish is delivered, churned connections open, and the instance releases
    /// every topic once the client leaves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_measures_and_leaves_nothing() {
        let url = env("REDIS_URL", "redis://127.0.0.1:6379");
        let prefix = format!("topic-scale-test:{}", std::process::id());
        let connect = || async {
            RedisHub::builder(&url, &prefix)
                .block(Duration::from_millis(100))
                .connect()
                .await
                .expect("Redis answers")
        };
        let (instance, publisher) = (connect().await, connect().await);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(server(instance.clone(), listener));
        for (k, v) in [
            ("ADDR", addr.to_string()),
            ("CONNS", "40".into()),
            ("TOPICS_PER_CONN", "4".into()),
            ("IDLE_SECS", "0".into()),
            ("PUBLISH_SECS", "1".into()),
            ("PUBLISH_RATE", "50".into()),
            ("CHURN_SECS", "1".into()),
            ("CHURN_RATE", "20".into()),
            ("LEAVE_SECS", "1".into()),
        ] {
            std::env::set_var(k, v);
        }
        let summary = client(publisher).await;
        assert_eq!(summary.connections, 40, "{summary:?}");
        assert_eq!(summary.published, 50, "{summary:?}");
        assert_eq!(
            summary.delivered, 50,
            "each publish reached its topic's one connection"
        );
        assert_eq!(
            (summary.churn_opened, summary.churn_failed),
            (20, 0),
            "{summary:?}"
        );
        assert_eq!(
            instance.active_topics(),
            0,
            "every topic released once the client left"
        );
    }
}
