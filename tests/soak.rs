#![cfg(all(
    feature = "serve",
    feature = "negotiate",
    feature = "hub",
    feature = "ws",
    feature = "heartbeat",
    feature = "drain"
))]
//! Soak: many clients connect, receive, drop and resume on all three transports for a while,
//! against the hardened server, with every event's sequence number checked end to end (none
//! lost, none duplicated), and the process's open fds back to baseline at the end.
//!
//! Bounded in time and count. CI runs the short form (the defaults); by hand, longer and
//! larger, in release:
//!
//! ```text
//! SOAK_SECS=120 SOAK_ROUNDS=5 SOAK_CLIENTS=3000 SOAK_RATE=50 cargo test --release --all-features --test soak -- --nocapture
//! ```

mod support;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Empty};
use serde_json::Value;
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use support::*;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tower::ServiceBuilder;
use tower_push::{
    drain::Drain,
    heartbeat::HeartbeatLayer,
    hub::{MemoryHub, Subscribe},
    negotiate::NegotiateLayer,
    serve::Server,
    Event,
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What one client saw: sequence numbers in order, checked as they arrive.
struct Seen {
    /// The cursor to resume from.
    cursor: Option<String>,
    /// The last sequence number received.
    last: Option<u64>,
    received: u64,
    /// Published count before the first connection and after its position arrived: the
    /// first event must lie between.
    first_window: (u64, u64),
}

impl Seen {
    fn event(&mut self, id: &str, data: &str) -> Result<(), String> {
        if data.is_empty() {
            // The position: only the cursor.
            self.cursor = Some(id.to_owned());
            return Ok(());
        }
        let seq: u64 = data
            .parse()
            .map_err(|_| format!("not a sequence number: {data:?}"))?;
        match self.last {
            Some(last) if seq != last + 1 => {
                return Err(format!(
                    "after {last} came {seq}: {}",
                    if seq <= last { "a duplicate" } else { "a gap" }
                ))
            }
            // The counter is stored just after each publish: one of slack on either side.
            None if seq + 1 < self.first_window.0 || seq > self.first_window.1 + 1 => {
                return Err(format!("first event {seq} outside {:?}", self.first_window))
            }
            _ => {}
        }
        self.last = Some(seq);
        self.received += 1;
        self.cursor = Some(id.to_owned());
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Transport {
    Sse,
    WebSocket,
    LongPoll,
}

/// One connection on `transport`, resuming from `seen.cursor`, until `until`; then dropped.
async fn session(
    addr: SocketAddr,
    transport: Transport,
    seen: &mut Seen,
    until: Instant,
    published: &AtomicU64,
    caught_up_at: u64,
) -> Result<(), String> {
    let first = seen.cursor.is_none();
    let query = seen
        .cursor
        .as_ref()
        .map(|c| format!("?lastEventId={c}"))
        .unwrap_or_default();
    let bound = until + Duration::from_secs(15);
    let deadline_error = || format!("no progress by {:?} past the slice", bound - until);
    match transport {
        Transport::Sse => {
            let client = h1();
            let req = get(addr, &format!("/{query}"))
                .header("accept", "text/event-stream")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let res = tokio::time::timeout_at(bound, client.request(req))
                .await
                .map_err(|_| deadline_error())?
                .map_err(|e| e.to_string())?;
            use eventsource_stream::Eventsource as _;
            let mut events = res.into_body().into_data_stream().eventsource();
            loop {
                let next = tokio::select! {
                    next = events.next() => next,
                    () = tokio::time::sleep_until(until), if !(first && seen.cursor.is_none()) => return Ok(()),
                };
                let event = next.ok_or("SSE ended")?.map_err(|e| e.to_string())?;
                if event.event == "reset" {
                    return Err("reset".into());
                }
                if first && seen.cursor.is_none() {
                    seen.first_window.1 = published.load(Ordering::SeqCst);
                }
                seen.event(&event.id, &event.data)?;
            }
        }
        Transport::WebSocket => {
            let (mut ws, _) = tokio::time::timeout_at(
                bound,
                tokio_tungstenite::connect_async(format!("ws://{addr}/{query}")),
            )
            .await
            .map_err(|_| deadline_error())?
            .map_err(|e| e.to_string())?;
            loop {
                let next = tokio::select! {
                    next = ws.next() => next,
                    () = tokio::time::sleep_until(until), if !(first && seen.cursor.is_none()) => return Ok(()),
                };
                match next.ok_or("WebSocket ended")?.map_err(|e| e.to_string())? {
                    tungstenite::Message::Text(text) => {
                        let v: Value = serde_json::from_str(text.as_str()).unwrap();
                        if v["event"] == "reset" {
                            return Err("reset".into());
                        }
                        if first && seen.cursor.is_none() {
                            seen.first_window.1 = published.load(Ordering::SeqCst);
                        }
                        seen.event(
                            v["id"].as_str().unwrap_or_default(),
                            v["data"].as_str().unwrap_or_default(),
                        )?;
                    }
                    tungstenite::Message::Close(frame) => return Err(format!("closed: {frame:?}")),
                    _ => {}
                }
            }
        }
        Transport::LongPoll => {
            let client = h1();
            loop {
                let query = seen
                    .cursor
                    .as_ref()
                    .map(|c| format!("?lastEventId={c}"))
                    .unwrap_or_default();
                let req = get(addr, &format!("/{query}"))
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let res = tokio::time::timeout_at(bound, client.request(req))
                    .await
                    .map_err(|_| deadline_error())?
                    .map_err(|e| e.to_string())?;
                let body = tokio::time::timeout_at(bound, res.into_body().collect())
                    .await
                    .map_err(|_| deadline_error())?
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                let batch = support::long_poll_answer(&body);
                if seen.cursor.is_none() {
                    seen.first_window.1 = published.load(Ordering::SeqCst);
                }
                for event in batch["events"].as_array().ok_or("no events array")? {
                    if event["event"] == "reset" {
                        return Err("reset".into());
                    }
                    seen.event(
                        event["id"].as_str().unwrap_or_default(),
                        event["data"].as_str().unwrap_or_default(),
                    )?;
                }
                seen.cursor = batch["cursor"].as_str().map(str::to_owned);
                if Instant::now() >= until || seen.last.is_some_and(|l| l + 1 >= caught_up_at) {
                    return Ok(());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_every_transport_loses_nothing_and_frees_everything() {
    let secs = env("SOAK_SECS", 10);
    let clients = env("SOAK_CLIENTS", 600) as usize;
    let rate = env("SOAK_RATE", 10);
    let run_for = Duration::from_secs(secs);

    let hub = MemoryHub::builder()
        .history((rate * (secs + 60)) as usize + 1000)
        .build();
    let drain = Drain::new();
    let endpoint = ServiceBuilder::new()
        .layer(NegotiateLayer::new())
        .layer(drain.layer())
        .layer(HeartbeatLayer::new(Duration::from_secs(5)))
        .service(Subscribe::new(hub.clone(), "room"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(Server::new(&drain).grace(Duration::from_secs(2)).run(
        listener,
        endpoint,
        async {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let published = Arc::new(AtomicU64::new(0));
    // The first two rounds warm the allocator up; the rounds after them show that churn
    // leaves nothing behind: fds back to baseline after every round, and no memory growth
    // from the second round to the last (RSS in one process never returns to its pre-run
    // figure: the allocator keeps freed pages for reuse).
    let rounds = env("SOAK_ROUNDS", 3).max(3);
    let fds_before = open_fds();
    let mut rss = vec![rss_kib()];
    let (mut connections, mut delivered) = (0, 0);
    for _ in 0..rounds {
        let (c, d) = round(addr, &hub, &published, run_for, clients, rate).await;
        settle(&drain, fds_before).await;
        assert_eq!(drain.open(), 0, "every stream was dropped");
        assert_eq!(drain.connections(), 0, "every connection was closed");
        assert!(
            open_fds() <= fds_before,
            "fds back to baseline: {fds_before} -> {}",
            open_fds()
        );
        rss.push(rss_kib());
        connections += c;
        delivered += d;
    }
    let total = published.load(Ordering::SeqCst);
    println!(
        "soak: {rounds} rounds of {secs} s, {clients} clients each; {connections} connections \
         churned over SSE, WebSocket and long-poll; {total} events published, {delivered} \
         deliveries checked (0 lost, 0 duplicated); fds {fds_before} -> {} after every round; \
         RSS (KiB) before and after each round: {rss:?}",
        open_fds(),
    );
    let (warm, last) = (rss[2], rss[rounds as usize]);
    assert!(
        last <= warm + warm * 3 / 20,
        "memory grows with churn: {warm} KiB after round 2, {last} KiB after round {rounds}"
    );
    stop.send(()).unwrap();
    let report = within(server).await.unwrap();
    assert_eq!((report.streams, report.connections), (0, 0));
}

/// Waits (bounded) until the server holds no stream or connection and the fds are back.
async fn settle(drain: &Drain, fds: usize) {
    let wait = Instant::now();
    while (drain.open() > 0 || drain.connections() > 0 || open_fds() > fds)
        && wait.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One round: `clients` clients churn for `run_for` while events are published at `rate`,
/// then each resumes to the last event. Returns (connections, deliveries checked).
async fn round(
    addr: SocketAddr,
    hub: &MemoryHub,
    published: &Arc<AtomicU64>,
    run_for: Duration,
    clients: usize,
    rate: u64,
) -> (usize, u64) {
    // The publisher: the next sequence numbers at `rate` per second until the end.
    let end = Instant::now() + run_for;
    let publisher = {
        let (hub, published) = (hub.clone(), published.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
            while Instant::now() < end {
                tick.tick().await;
                let seq = published.load(Ordering::SeqCst);
                hub.publish_now("room", Event::new().data(seq.to_string()))
                    .unwrap();
                published.store(seq + 1, Ordering::SeqCst);
            }
        })
    };

    let connections = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (published, connections) = (published.clone(), connections.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the first connections over the first second.
            tokio::time::sleep(Duration::from_micros((client as u64 * 997) % 1_000_000)).await;
            let mut seen = Seen {
                cursor: None,
                last: None,
                received: 0,
                first_window: (published.load(Ordering::SeqCst), 0),
            };
            let transports = [Transport::Sse, Transport::WebSocket, Transport::LongPoll];
            let mut round = client;
            // Sessions of 0.5 to 3 s on rotating transports, each resuming from the last.
            while Instant::now() < end {
                let slice = Duration::from_millis(500 + ((round as u64 * 7919) % 2500));
                let until = (Instant::now() + slice).min(end);
                connections.fetch_add(1, Ordering::Relaxed);
                session(
                    addr,
                    transports[round % 3],
                    &mut seen,
                    until,
                    &published,
                    u64::MAX,
                )
                .await
                .map_err(|e| format!("client {client}: {e}"))?;
                round += 1;
            }
            Ok::<_, String>(seen)
        }));
    }
    let mut seens = Vec::new();
    for task in tasks {
        let seen = tokio::time::timeout(run_for + Duration::from_secs(60), task)
            .await
            .expect("every client finished")
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"));
        seens.push(seen);
    }
    publisher.await.unwrap();
    let total = published.load(Ordering::SeqCst);

    // A last resume for each client: everything up to the final event, exactly once.
    let mut finals = Vec::new();
    for (client, mut seen) in seens.into_iter().enumerate() {
        let published = published.clone();
        finals.push(tokio::spawn(async move {
            if seen.last.is_none_or(|l| l + 1 < total) {
                let until = Instant::now() + Duration::from_secs(10);
                session(
                    addr,
                    Transport::LongPoll,
                    &mut seen,
                    until,
                    &published,
                    total,
                )
                .await
                .unwrap_or_else(|e| panic!("client {client}, final resume: {e}"));
            }
            assert_eq!(seen.last, Some(total - 1), "client {client}");
            seen.received
        }));
    }
    let mut delivered = 0;
    for last in finals {
        delivered += within(last).await.unwrap();
    }

    (connections.load(Ordering::Relaxed), delivered)
}
