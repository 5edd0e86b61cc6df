//! WebSocket broadcast to 1,000 sockets: tower-push's `Ws` transport over its hub against
//! axum's `WebSocketUpgrade` over a `tokio::sync::broadcast`, in the same run.
//!
//! Each server runs in a child process (this binary, re-executed) so its CPU time and RSS
//! are measured apart from the clients (1,000 tokio-tungstenite connections in this
//! process). Reported per server: RSS per idle connection (RSS growth after 1,000 sockets
//! connect, divided by 1,000) and server CPU per delivered message (`EVENTS` messages,
//! `GAP` apart, to every socket). Both send the same JSON payload per message.
//!
//! Run with `cargo bench --bench ws` (Linux only; needs /proc). Bounded: 120 s per server.
#![allow(missing_docs)]

mod support;

use axum::extract::ws::{Message as AxumMessage, Utf8Bytes, WebSocketUpgrade};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::Request;
use http_body_util::{BodyExt, Empty};
use std::{
    convert::Infallible,
    time::{Duration, Instant},
};
use tokio::sync::broadcast;
use tower_push::{
    hub::{MemoryHub, Subscribe},
    ws::Ws,
    Event,
};

const CLIENTS: usize = 1_000;
const EVENTS: usize = 100;
const GAP: Duration = Duration::from_millis(20);

fn payload(i: usize) -> Event {
    Event::new()
        .event("n")
        .unwrap()
        .data(format!("message number {i} with some text"))
}

fn main() {
    if let Ok(role) = std::env::var("TP_BENCH_SERVER") {
        return server(&role);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only = std::env::var("TP_ONLY").ok();
    let mut results = Vec::new();
    for role in ["tower-push", "axum"] {
        if only.as_deref().is_some_and(|o| o != role) {
            continue;
        }
        let (rss, cpu) = run(role);
        let per_msg = cpu.as_secs_f64() * 1e6 / (CLIENTS * EVENTS) as f64;
        println!(
            "{role:>10}: RSS per idle connection {:.1} KiB; server CPU {cpu:?} for {} messages = {per_msg:.2} µs/message",
            rss as f64 / 1024.0,
            CLIENTS * EVENTS
        );
        results.push((rss as f64, per_msg));
    }
    if results.len() < 2 {
        return;
    }
    println!(
        "tower-push / axum: RSS per idle connection {:.2}x, CPU per delivered message {:.2}x",
        results[0].0 / results[1].0,
        results[0].1 / results[1].1
    );
}

fn server(role: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let hub = MemoryHub::builder().history(EVENTS * 2).build();
        let (tx, _) = broadcast::channel::<Utf8Bytes>(EVENTS * 2);
        let push = Ws::new(Subscribe::new(hub.clone(), "t"));
        let publish = {
            let (hub, tx) = (hub.clone(), tx.clone());
            move || {
                let (hub, tx) = (hub.clone(), tx.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(GAP);
                    for i in 0..EVENTS {
                        tick.tick().await;
                        let event = payload(i);
                        // axum's side gets the same bytes, encoded once.
                        let _ = tx.send(Utf8Bytes::try_from(event.to_json()).unwrap());
                        hub.publish_now("t", event).unwrap();
                    }
                });
            }
        };
        let stats = {
            let (hub, tx) = (hub.clone(), tx.clone());
            move || hub.topic_stats("t").map_or(0, |s| s.subscribers) + tx.receiver_count()
        };
        let app = axum::Router::new()
            .route(
                "/ws",
                axum::routing::get(move |ws: WebSocketUpgrade| {
                    let tx = tx.clone();
                    async move {
                        ws.on_upgrade(move |mut socket| async move {
                            let mut rx = tx.subscribe();
                            while let Ok(text) = rx.recv().await {
                                if socket.send(AxumMessage::Text(text)).await.is_err() {
                                    break;
                                }
                            }
                        })
                    }
                }),
            )
            .route_service("/push", push)
            .route(
                "/publish",
                axum::routing::get(move || async move {
                    publish();
                    "ok"
                }),
            )
            .route(
                "/stats",
                axum::routing::get(move || async move { stats().to_string() }),
            );
        let _ = role;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let res = client
        .request(
            Request::get(format!("http://{addr}{path}"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn run(role: &str) -> (u64, Duration) {
    let (mut child, addr) = support::spawn_server(role, &[]);
    let path = if role == "tower-push" { "/push" } else { "/ws" };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rss_before = support::rss_of(child.id());
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
                .await
                .unwrap();
            clients.push(ws);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(addr, "/stats").await.parse::<usize>().unwrap() < CLIENTS {
            assert!(
                Instant::now() < deadline,
                "sockets did not subscribe in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rss = (support::rss_of(child.id()).saturating_sub(rss_before)) / CLIENTS as u64;

        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut ws| {
                tokio::spawn(async move {
                    let mut received = 0;
                    while received < EVENTS {
                        match ws.next().await.unwrap().unwrap() {
                            tokio_tungstenite::tungstenite::Message::Text(t)
                                if t.contains("\"event\":\"n\"") =>
                            {
                                received += 1
                            }
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        let before = support::cpu_of(child.id());
        get(addr, "/publish").await;
        tokio::time::timeout(Duration::from_secs(120), async {
            for task in tasks {
                task.await.unwrap();
            }
        })
        .await
        .expect("every socket received every message within 120 s");
        (rss, support::cpu_of(child.id()) - before)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let _: Option<Infallible> = None;
    result
}
