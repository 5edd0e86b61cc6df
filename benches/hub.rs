//! Hub fan-out: one published event delivered to 10,000 subscribers, tower-push's
//! `MemoryHub` against a plain `tokio::sync::broadcast` of `Arc`'d events in the same run.
//!
//! Two baselines: `broadcast/try_recv` (the cheapest possible consumer, not a stream) and
//! `broadcast/stream` (`BroadcastStream`, what an SSE handler would actually poll).
//!
//! Run with `cargo bench --bench hub`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_core::Stream;
use std::{hint::black_box, pin::Pin, sync::Arc, task::Context};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tower_push::{hub::MemoryHub, Event};

const SUBSCRIBERS: usize = 10_000;

fn poll_one<S: Stream + Unpin>(s: &mut S) -> S::Item {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(s).poll_next(&mut cx) {
        std::task::Poll::Ready(Some(item)) => item,
        _ => panic!("an item is ready"),
    }
}

/// Polls until the stream parks (returns `Pending`), as a server task does between events.
fn park<S: Stream + Unpin>(s: &mut S) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(
        Pin::new(s).poll_next(&mut cx).is_pending(),
        "nothing else is ready"
    );
}

fn event(data: &str) -> Event {
    Event::new().event("news").unwrap().data(data)
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub/fan_out_10k");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    let data = "z".repeat(200);

    group.bench_function("tower-push MemoryHub", |b| {
        use tower_push::hub::Hub as _;
        let hub = MemoryHub::builder().buffer(16).build();
        let mut subs: Vec<_> = (0..SUBSCRIBERS)
            .map(|_| hub.subscribe("t", tower_push::cursor::StartAt::Now))
            .collect();
        for sub in &mut subs {
            poll_one(sub); // the position event
        }
        b.iter(|| {
            hub.publish_now("t", event(&data)).unwrap();
            for sub in &mut subs {
                black_box(poll_one(sub));
            }
        })
    });

    group.bench_function("broadcast<Arc<Event>>/stream", |b| {
        let (tx, _) = broadcast::channel::<Arc<Event>>(16);
        let mut subs: Vec<_> = (0..SUBSCRIBERS)
            .map(|_| BroadcastStream::new(tx.subscribe()))
            .collect();
        b.iter(|| {
            tx.send(Arc::new(event(&data))).unwrap();
            for sub in &mut subs {
                black_box(poll_one(sub).unwrap());
            }
        })
    });

    group.bench_function("broadcast<Arc<Event>>/try_recv", |b| {
        let (tx, _) = broadcast::channel::<Arc<Event>>(16);
        let mut subs: Vec<_> = (0..SUBSCRIBERS).map(|_| tx.subscribe()).collect();
        b.iter(|| {
            tx.send(Arc::new(event(&data))).unwrap();
            for sub in &mut subs {
                black_box(sub.try_recv().unwrap());
            }
        })
    });
    group.finish();
}

/// The realistic pattern: every subscriber is parked when the event is published, receives
/// it, and parks again.
fn fan_out_parked(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub/fan_out_10k_parked");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    let data = "z".repeat(200);

    group.bench_function("tower-push MemoryHub", |b| {
        use tower_push::hub::Hub as _;
        let hub = MemoryHub::builder().buffer(16).build();
        let mut subs: Vec<_> = (0..SUBSCRIBERS)
            .map(|_| hub.subscribe("t", tower_push::cursor::StartAt::Now))
            .collect();
        for sub in &mut subs {
            poll_one(sub);
            park(sub);
        }
        b.iter(|| {
            hub.publish_now("t", event(&data)).unwrap();
            for sub in &mut subs {
                black_box(poll_one(sub));
                park(sub);
            }
        })
    });

    group.bench_function("broadcast<Arc<Event>>/stream", |b| {
        let (tx, _) = broadcast::channel::<Arc<Event>>(16);
        let mut subs: Vec<_> = (0..SUBSCRIBERS)
            .map(|_| BroadcastStream::new(tx.subscribe()))
            .collect();
        for sub in &mut subs {
            park(sub);
        }
        b.iter(|| {
            tx.send(Arc::new(event(&data))).unwrap();
            for sub in &mut subs {
                black_box(poll_one(sub).unwrap());
                park(sub);
            }
        })
    });
    group.finish();
}

/// Several topics per connection: the same 4 events delivered to 1,000 parked subscribers,
/// each encoded for SSE as a connection would (a multi-topic subscription gives every
/// connection its own ids, so encodings are no longer shared). Cases: the single-topic
/// `Subscribe` path; `Topics` with one topic; `Topics` with the 4 events spread over 4 topics.
fn topics_fan_out(c: &mut Criterion) {
    use tower_push::hub::{Hub as _, Topics};
    const SUBS: usize = 1_000;
    const EVENTS: usize = 4;
    let mut group = c.benchmark_group("hub/topics_1k_parked_sse");
    group.throughput(Throughput::Elements((SUBS * EVENTS) as u64));
    let data = "z".repeat(200);

    fn topics_sub(
        hub: &MemoryHub,
        topics: &[&str],
    ) -> tower_push::hub::TopicsSubscription<tower_push::hub::MemorySubscription> {
        let mut svc = Topics::fixed(hub.clone(), topics.iter().copied());
        let req = http::Request::get("/").body(()).unwrap();
        tower::Service::call(&mut svc, req).into_inner().unwrap()
    }

    fn run<S: Stream<Item = Event> + Unpin>(
        b: &mut criterion::Bencher<'_>,
        hub: &MemoryHub,
        mut subs: Vec<S>,
        topics: &[&str],
        data: &str,
    ) {
        for sub in &mut subs {
            poll_one(sub); // position
            park(sub);
        }
        b.iter(|| {
            for i in 0..EVENTS {
                hub.publish_now(topics[i % topics.len()], event(data))
                    .unwrap();
            }
            for sub in &mut subs {
                for _ in 0..EVENTS {
                    black_box(poll_one(sub).to_sse());
                }
                park(sub);
            }
        })
    }

    group.bench_function("Subscribe, 1 topic", |b| {
        let hub = MemoryHub::builder().buffer(16).build();
        let subs: Vec<_> = (0..SUBS)
            .map(|_| hub.subscribe("t0", tower_push::cursor::StartAt::Now))
            .collect();
        run(b, &hub, subs, &["t0"], &data);
    });
    group.bench_function("Topics, 1 topic", |b| {
        let hub = MemoryHub::builder().buffer(16).build();
        let subs: Vec<_> = (0..SUBS).map(|_| topics_sub(&hub, &["t0"])).collect();
        run(b, &hub, subs, &["t0"], &data);
    });
    group.bench_function("Topics, 4 topics", |b| {
        let hub = MemoryHub::builder().buffer(16).build();
        let all = ["t0", "t1", "t2", "t3"];
        let subs: Vec<_> = (0..SUBS).map(|_| topics_sub(&hub, &all)).collect();
        run(b, &hub, subs, &all, &data);
    });
    group.finish();
}

criterion_group!(benches, fan_out, fan_out_parked, topics_fan_out);
criterion_main!(benches);
