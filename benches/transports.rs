//! Server CPU per delivered event: long-poll vs SSE, both tower-push, 1,000 clients each; and
//! SSE with every connection wrapped in `connection::GuardedIo` (the write-stall deadline and
//! forced close) vs without.
//!
//! The server runs in a child process (this binary, re-executed with `TP_BENCH_SERVER=1`) so
//! its CPU time (user + system, from `/proc/<pid>/stat`) is measured apart from the clients'.
//! For each transport: 1,000 clients subscribe, the server publishes events (see `PACES`) at a
//! steady pace, every client receives every event, and the server's CPU time over that
//! window is divided by the deliveries. Bounded: at most 120 s per transport.
//!
//! Run with `cargo bench --bench transports` (Linux only; needs /proc).
#![allow(missing_docs)]

mod support;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use std::{
    convert::Infallible,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tower::{service_fn, ServiceExt};
use tower_push::{
    connection::ConnectionGuard,
    drain::Drain,
    hub::{MemoryHub, Subscribe},
    negotiate::Negotiate,
    Event,
};

const CLIENTS: usize = 1_000;

/// (events, gap between events): a dense pace where long-poll batches, and a sparse pace
/// where every poll carries one event.
const PACES: [(usize, u64); 2] = [(200, 5), (40, 50)];

fn pace() -> (usize, Duration) {
    let events = std::env::var("TP_EVENTS").unwrap().parse().unwrap();
    let gap = std::env::var("TP_GAP_MS").unwrap().parse().unwrap();
    (events, Duration::from_millis(gap))
}

fn main() {
    if std::env::var_os("TP_BENCH_SERVER").is_some() {
        return server();
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes every bench binary.
    }
    for (events, gap) in PACES {
        std::env::set_var("TP_EVENTS", events.to_string());
        std::env::set_var("TP_GAP_MS", gap.to_string());
        println!("{CLIENTS} clients, {events} events {gap} ms apart:");
        let mut results = Vec::new();
        for transport in ["sse", "long-poll", "sse+guard"] {
            let (cpu, requests, elapsed) = run(transport);
            let deliveries = (CLIENTS * events) as f64;
            let per_event_us = cpu.as_secs_f64() * 1e6 / deliveries;
            println!(
                "  {transport:>9}: server CPU {cpu:?} for {deliveries} deliveries = {per_event_us:.2} µs/event \
                 ({requests} HTTP requests, {:.2} events per request, wall {elapsed:?})",
                deliveries / requests as f64
            );
            results.push(per_event_us);
        }
        println!(
            "  long-poll / SSE server CPU per delivered event: {:.2}x",
            results[1] / results[0]
        );
        println!(
            "  SSE through GuardedIo / SSE: {:.3}x",
            results[2] / results[0]
        );
    }
}

// ---- server (child process) ----

fn server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (events_total, gap) = pace();
    rt.block_on(async {
        let hub = MemoryHub::builder().history(events_total * 2).build();
        let events = Negotiate::new(Subscribe::new(hub.clone(), "t"));
        let app = service_fn(move |req: Request<hyper::body::Incoming>| {
            let events = events.clone();
            let hub = hub.clone();
            async move {
                let res: Response<UnsyncBoxBody<Bytes, Infallible>> = match req.uri().path() {
                    "/events" => events.oneshot(req).await?.map(|b| b.boxed_unsync()),
                    "/publish" => {
                        tokio::spawn(async move {
                            let mut tick = tokio::time::interval(gap);
                            for i in 0..events_total {
                                tick.tick().await;
                                hub.publish_now(
                                    "t",
                                    Event::new().event("n").unwrap().data(i.to_string()),
                                )
                                .unwrap();
                            }
                        });
                        Response::new(Full::from("ok").boxed_unsync())
                    }
                    _ => {
                        let n = hub.topic_stats("t").map_or(0, |s| s.subscribers);
                        Response::new(Full::from(n.to_string()).boxed_unsync())
                    }
                };
                Ok::<_, Infallible>(res)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let drain = Drain::new();
        let guard = std::env::var_os("TP_GUARD")
            .is_some()
            .then(|| ConnectionGuard::new().drain(&drain));
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = TowerToHyperService::new(app.clone());
            match &guard {
                Some(guard) => {
                    let io = TokioIo::new(guard.wrap(stream));
                    tokio::spawn(async move {
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    });
                }
                None => {
                    tokio::spawn(async move {
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        }
    })
}

// ---- clients (parent process) ----

fn run(transport: &str) -> (Duration, usize, Duration) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env("TP_BENCH_SERVER", "1").stdout(Stdio::piped());
    let transport = match transport {
        "sse+guard" => {
            command.env("TP_GUARD", "1");
            "sse"
        }
        other => other,
    };
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();

    let (events_total, _) = pace();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(CLIENTS)
            .build_http::<Empty<Bytes>>();
        let requests = Arc::new(AtomicUsize::new(0));
        let get = move |path: String, sse: bool| {
            let mut req = Request::get(format!("http://{addr}{path}"));
            if sse {
                req = req.header("accept", "text/event-stream");
            }
            req.body(Empty::new()).unwrap()
        };
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let client = client.clone();
                let requests = requests.clone();
                let sse = transport == "sse";
                tokio::spawn(async move {
                    let mut received = 0;
                    if sse {
                        use eventsource_stream::Eventsource as _;
                        use futures_util::StreamExt as _;
                        requests.fetch_add(1, Ordering::Relaxed);
                        let res = client.request(get("/events".into(), true)).await.unwrap();
                        let mut events = res.into_body().into_data_stream().eventsource();
                        while received < events_total {
                            let event = events.next().await.unwrap().unwrap();
                            if event.event == "n" {
                                received += 1;
                            }
                        }
                    } else {
                        let mut cursor: Option<String> = None;
                        while received < events_total {
                            let path = match &cursor {
                                Some(c) => format!("/events?lastEventId={c}"),
                                None => "/events".into(),
                            };
                            requests.fetch_add(1, Ordering::Relaxed);
                            let res = client.request(get(path, false)).await.unwrap();
                            let body = res.into_body().collect().await.unwrap().to_bytes();
                            let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
                            received += batch["events"].as_array().unwrap().len();
                            cursor = batch["cursor"].as_str().map(str::to_owned);
                        }
                    }
                })
            })
            .collect();

        // Wait until every client is subscribed (held polls count as subscribers).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let res = client.request(get("/stats".into(), false)).await.unwrap();
            let n: usize =
                String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
                    .unwrap()
                    .parse()
                    .unwrap();
            if n >= CLIENTS {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "clients did not subscribe in time ({n})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before_requests = requests.load(Ordering::Relaxed);
        let before = support::cpu_of(child.id());
        let start = Instant::now();
        client.request(get("/publish".into(), false)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(120), async {
            for task in tasks {
                task.await.unwrap();
            }
        })
        .await
        .expect("every client received every event within 120 s");
        let cpu = support::cpu_of(child.id()) - before;
        let requests = match transport {
            "sse" => CLIENTS,
            _ => requests.load(Ordering::Relaxed) - before_requests + CLIENTS,
        };
        (cpu, requests, start.elapsed())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    result
}
