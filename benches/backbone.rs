//! Publish-to-deliver latency at 1,000 subscribers: through NATS JetStream (two `NatsHub`s)
//! and Redis (two `RedisHub`s), each as two instances with 500 subscribers each, publishing on
//! one, against the in-memory hub (one `MemoryHub`, 1,000 subscribers), in the same run.
//!
//! Needs Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`) and NATS with JetStream at
//! `NATS_URL` (default `nats://127.0.0.1:4222`; the bench deletes its stream). Bounded: 200
//! events, 60 s per backbone. Run with `cargo bench --all-features --bench backbone`.
#![allow(missing_docs)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio_stream::StreamExt as _;
use tower_push::{
    hub::{Hub, MemoryHub, NatsHub, RedisHub},
    Event,
};

const SUBSCRIBERS: usize = 1_000;
const EVENTS: usize = 200;
const GAP: Duration = Duration::from_millis(10);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let memory = MemoryHub::new();
        let m = run(memory.clone(), vec![memory]).await;
        report("memory", &m);

        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("tower-push-bench:{}", std::process::id());
        let a = RedisHub::connect(&url, &prefix)
            .await
            .expect("Redis answers");
        let b = RedisHub::connect(&url, &prefix)
            .await
            .expect("Redis answers");
        let r = run(a.clone(), vec![a, b]).await;
        report("redis (2 hubs)", &r);
        println!(
            "redis / memory: p50 {:.1}x, p99 {:.1}x",
            r.0.as_secs_f64() / m.0.as_secs_f64(),
            r.1.as_secs_f64() / m.1.as_secs_f64()
        );

        let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let prefix = format!("tower-push-bench-{}", std::process::id());
        let a = NatsHub::connect(&url, &prefix).await.expect("NATS answers");
        let b = NatsHub::connect(&url, &prefix).await.expect("NATS answers");
        let stream = a.stream_name().to_owned();
        let n = run(a.clone(), vec![a, b]).await;
        report("nats (2 hubs)", &n);
        println!(
            "nats / memory: p50 {:.1}x, p99 {:.1}x; nats / redis: p50 {:.2}x, p99 {:.2}x",
            n.0.as_secs_f64() / m.0.as_secs_f64(),
            n.1.as_secs_f64() / m.1.as_secs_f64(),
            n.0.as_secs_f64() / r.0.as_secs_f64(),
            n.1.as_secs_f64() / r.1.as_secs_f64()
        );
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let _ = js.delete_stream(stream).await;
    });
}

fn report(name: &str, (p50, p99): &(Duration, Duration)) {
    println!("{name:>15}: publish-to-deliver p50 {p50:?}, p99 {p99:?} ({SUBSCRIBERS} subscribers x {EVENTS} events)");
}

/// Subscribers spread over `hubs`, events published on `publisher`; latencies p50 and p99.
async fn run<P: Hub, H: Hub>(publisher: P, hubs: Vec<H>) -> (Duration, Duration) {
    let base = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(SUBSCRIBERS * EVENTS)));
    let mut tasks = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut sub = hubs[i % hubs.len()].subscribe("bench", tower_push::cursor::StartAt::Now);
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(EVENTS);
            while mine.len() < EVENTS {
                let event = sub.next().await.expect("subscription open");
                if let Some(data) = event.get_data() {
                    let sent: u64 = data.parse().unwrap();
                    mine.push(base.elapsed().saturating_sub(Duration::from_nanos(sent)));
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    // Let every subscription take its position (Redis readers start asynchronously).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tick = tokio::time::interval(GAP);
    for _ in 0..EVENTS {
        tick.tick().await;
        let now = base.elapsed().as_nanos() as u64;
        publisher
            .publish("bench", Event::new().data(now.to_string()))
            .await
            .expect("published");
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("every subscriber got every event within 60 s");
    let mut all = latencies.lock().unwrap().clone();
    all.sort();
    (all[all.len() / 2], all[all.len() * 99 / 100])
}
