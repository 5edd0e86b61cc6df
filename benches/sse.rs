//! SSE encoding and fan-out: tower-push vs `axum::response::Sse`, in the same run.
//!
//! (a) `encode_and_poll`: build N events and drain them through the response body
//!     (small data and 1 KiB data).
//! (b) `fan_out`: one event sent into 10,000 response bodies (one per connection).
//! (c) `heartbeat_15s`: N events through a body with a 15 s idle heartbeat (tower-push's
//!     `heartbeat`, axum's `KeepAlive`) and, for reference, tower-push without one.
//!
//! Run with `cargo bench --bench sse`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::{convert::Infallible, hint::black_box, task::Context};
use tower::{service_fn, Service, ServiceExt as _};

const N: usize = 1_000;
const FAN_OUT: usize = 10_000;

/// Drains a body whose stream is always ready, returning the bytes written.
fn drain<B>(body: B) -> usize
where
    B: http_body::Body,
    B::Data: bytes::Buf,
    B::Error: std::fmt::Debug,
{
    use bytes::Buf as _;
    let mut body = std::pin::pin!(body);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut n = 0;
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            std::task::Poll::Ready(Some(frame)) => {
                if let Ok(data) = frame.unwrap().into_data() {
                    n += data.remaining();
                }
            }
            std::task::Poll::Ready(None) => return n,
            // `tokio_stream::iter` yields every 32 items and wakes itself at once.
            std::task::Poll::Pending => {}
        }
    }
}

fn now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("ready services"),
    }
}

fn tower_push_body<St>(stream: St) -> tower_push::body::PushBody<St>
where
    St: futures_core::Stream,
    St::Item: tower_push::IntoPush,
{
    let mut stream = Some(stream);
    let svc = tower_push::sse::Sse::new(service_fn(move |_req: http::Request<()>| {
        std::future::ready(Ok::<_, Infallible>(stream.take().unwrap()))
    }));
    now(svc.oneshot(http::Request::new(())))
        .unwrap()
        .into_body()
}

fn axum_body<St>(stream: St) -> axum::body::Body
where
    St: futures_core::Stream<Item = Result<axum::response::sse::Event, Infallible>>
        + Send
        + 'static,
{
    use axum::response::IntoResponse as _;
    axum::response::Sse::new(stream).into_response().into_body()
}

fn encode_and_poll(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse/encode_and_poll");
    group.throughput(Throughput::Elements(N as u64));
    for (label, size) in [("small", 16), ("1KiB", 1024)] {
        let data: String = "x".repeat(size - 1) + "\n";
        let data = data.as_str();
        group.bench_with_input(BenchmarkId::new("tower-push", label), &data, |b, data| {
            b.iter(|| {
                let events = (0..N).map(|i| {
                    tower_push::Event::new()
                        .event("tick")
                        .unwrap()
                        .id(i.to_string())
                        .unwrap()
                        .data(*data)
                });
                black_box(drain(tower_push_body(tokio_stream::iter(events))))
            })
        });
        group.bench_with_input(BenchmarkId::new("axum", label), &data, |b, data| {
            b.iter(|| {
                let events = (0..N).map(|i| {
                    Ok(axum::response::sse::Event::default()
                        .event("tick")
                        .id(i.to_string())
                        .data(*data))
                });
                let events: Vec<_> = events.collect();
                black_box(drain(axum_body(tokio_stream::iter(events))))
            })
        });
    }
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse/fan_out_10k");
    group.throughput(Throughput::Elements(FAN_OUT as u64));
    let data = "y".repeat(200);
    group.bench_function("tower-push", |b| {
        b.iter(|| {
            let event = tower_push::Event::new()
                .id("7")
                .unwrap()
                .event("news")
                .unwrap()
                .data(data.as_str());
            let mut svc =
                tower_push::sse::Sse::new(service_fn(|req: http::Request<tower_push::Event>| {
                    std::future::ready(Ok::<_, Infallible>(tokio_stream::once(req.into_body())))
                }));
            let mut total = 0;
            for _ in 0..FAN_OUT {
                let res = now(svc.ready())
                    .unwrap()
                    .call(http::Request::new(event.clone()));
                total += drain(now(res).unwrap().into_body());
            }
            black_box(total)
        })
    });
    group.bench_function("axum", |b| {
        b.iter(|| {
            let event = axum::response::sse::Event::default()
                .id("7")
                .event("news")
                .data(data.as_str());
            let mut total = 0;
            for _ in 0..FAN_OUT {
                let stream = tokio_stream::once(Ok::<_, Infallible>(event.clone()));
                total += drain(axum_body(stream));
            }
            black_box(total)
        })
    });
    group.finish();
}

fn heartbeat(c: &mut Criterion) {
    use tower_push::PushStreamExt as _;
    let every = std::time::Duration::from_secs(15);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _timers = rt.enter();
    let mut group = c.benchmark_group("sse/heartbeat_15s");
    group.throughput(Throughput::Elements(N as u64));
    let events: Vec<_> = (0..N)
        .map(|i| {
            tower_push::Event::new()
                .id(i.to_string())
                .unwrap()
                .data("x")
        })
        .collect();
    for event in &events {
        // Encoded once, as a hub's events are before fan-out.
        black_box(event.to_sse());
    }
    group.bench_function("tower-push, no heartbeat", |b| {
        b.iter(|| black_box(drain(tower_push_body(tokio_stream::iter(events.clone())))))
    });
    group.bench_function("tower-push", |b| {
        b.iter(|| {
            let stream = tokio_stream::iter(events.clone()).heartbeat(every);
            black_box(drain(tower_push_body(stream)))
        })
    });
    let axum_events: Vec<_> = (0..N)
        .map(|i| {
            Ok::<_, Infallible>(
                axum::response::sse::Event::default()
                    .id(i.to_string())
                    .data("x"),
            )
        })
        .collect();
    group.bench_function("axum KeepAlive", |b| {
        b.iter(|| {
            use axum::response::IntoResponse as _;
            let sse = axum::response::Sse::new(tokio_stream::iter(axum_events.clone()))
                .keep_alive(axum::response::sse::KeepAlive::new().interval(every));
            black_box(drain(sse.into_response().into_body()))
        })
    });
    group.finish();
}

criterion_group!(benches, encode_and_poll, fan_out, heartbeat);
criterion_main!(benches);
