//! One long-poll cycle without the network: a poll that carries the current cursor arrives,
//! is held, one event is published, and the answer's body is taken. tower-push's `LongPoll`
//! over `Subscribe<MemoryHub>` against what a hand-written handler does for the same
//! (read the cursor from the request, `tokio::sync::broadcast` subscribe, wait with a
//! deadline, keep a history, serialize `{"events":[..],"cursor":..}` with serde_json, as the
//! axum peer in `../shared/bench` does), in the same run.
//!
//! This is the library's own share of a poll's cost: parsing the request, the HTTP
//! connection and the kernel are the same for both and left out (see `../shared/bench` for
//! the whole server).
//!
//! Run with `cargo bench --bench long_poll`.
#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::BodyExt as _;
use std::{future::Future, hint::black_box, pin::pin, sync::Arc, task::Context};
use tokio::sync::broadcast;
use tower::Service as _;
use tower_push::{
    hub::{MemoryHub, Subscribe},
    long_poll::LongPoll,
    Event,
};

/// Polls `future` once; it must be pending (the poll is held).
fn held<F: Future>(future: std::pin::Pin<&mut F>) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(future.poll(&mut cx).is_pending(), "the poll is held");
}

fn cycle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("long_poll/cycle");

    let hub = MemoryHub::new();
    let mut service = LongPoll::new(Subscribe::new(hub.clone(), "bench"));
    let mut cursor = hub
        .publish_now("bench", Event::new().data("0"))
        .unwrap()
        .as_str()
        .to_owned();
    let mut n = 0u64;
    group.bench_function("tower-push LongPoll<Subscribe<MemoryHub>>", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = Request::get("/poll")
                    .header("last-event-id", cursor.as_str())
                    .body(())
                    .unwrap();
                let mut future = pin!(service.call(req));
                held(future.as_mut());
                n += 1;
                cursor = hub
                    .publish_now("bench", Event::new().data(n.to_string()))
                    .unwrap()
                    .as_str()
                    .to_owned();
                let res = future.await.unwrap();
                black_box(res.into_body().collect().await.unwrap().to_bytes())
            })
        })
    });

    // The hand-written handler: the axum peer's long-poll, without axum.
    #[derive(Debug, serde::Serialize)]
    struct Ev {
        id: u64,
        data: String,
    }
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        events: Vec<&'a Ev>,
        cursor: &'a str,
    }
    let (tx, _keep) = broadcast::channel::<Arc<Ev>>(1024);
    let history = std::sync::Mutex::new(std::collections::VecDeque::<Arc<Ev>>::new());
    let mut id = 0u64;
    group.bench_function("broadcast + serde_json", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = Request::get("/poll")
                    .header("last-event-id", id.to_string())
                    .body(())
                    .unwrap();
                let since: u64 = req.headers()["last-event-id"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let mut rx = tx.subscribe();
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(25);
                let mut recv = pin!(tokio::time::timeout_at(deadline, rx.recv()));
                held(recv.as_mut());
                id += 1;
                let ev = Arc::new(Ev {
                    id,
                    data: id.to_string(),
                });
                {
                    let mut history = history.lock().unwrap();
                    if history.len() == 1024 {
                        history.pop_front();
                    }
                    history.push_back(ev.clone());
                }
                tx.send(ev).unwrap();
                let ev = recv.await.unwrap().unwrap();
                assert!(ev.id > since);
                let cursor = ev.id.to_string();
                let body = serde_json::to_vec(&Answer {
                    events: vec![&*ev],
                    cursor: &cursor,
                })
                .unwrap();
                let res = http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(http_body_util::Full::new(Bytes::from(body)))
                    .unwrap();
                black_box(res.into_body().collect().await.unwrap().to_bytes())
            })
        })
    });
    group.finish();
}

criterion_group!(benches, cycle);
criterion_main!(benches);
