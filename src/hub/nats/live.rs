//! Live delivery on the hub's one connection, whatever the number of topics, with no consumer.
//!
//! The stream republishes every message it stores, with its stream sequence
//! (`Nats-Sequence`), to `_TP_LIVE.<subject>`; the hub reads them all with one core
//! subscription (`_TP_LIVE.<prefix>.>`) and hands each to its topic's subscribers in this
//! process. Every message names its topic's previous message (`Tp-Prev`), so a message whose
//! previous one is not the topic's position (one was lost, the connection was cut, the client
//! was a slow consumer) makes the topic read the stream from its position with direct gets
//! (`sync`): nothing lost, nothing delivered twice. After a reconnect every topic does so. A
//! sweeper releases topics without subscribers and notices a recreated stream.

use super::{
    error::{ErrorKind, NatsHubError},
    shared::{lock, Inner, NatsHub, Position, Reader, LIVE},
    start::next_on,
    wire,
};
use crate::{
    hub::backbone::{fan_out, fan_out_reset, on_live, release_idle, sync_all},
    observe,
};
use futures_util::StreamExt as _;
use std::sync::Weak;
use tokio::sync::mpsc;

/// The hub, while it lives (every background task holds it weakly).
pub(super) fn upgrade(weak: &Weak<Inner>) -> Option<NatsHub> {
    weak.upgrade().map(|inner| NatsHub { inner })
}

/// Reads the live copies and the client's connection events until the hub is gone.
pub(super) async fn run_live(
    weak: Weak<Inner>,
    mut messages: async_nats::Subscriber,
    mut events: mpsc::UnboundedReceiver<async_nats::Event>,
) {
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return };
                let Some(hub) = upgrade(&weak) else { return };
                dispatch(&hub, &message);
            }
            event = events.recv() => {
                let Some(event) = event else { return };
                let Some(hub) = upgrade(&weak) else { return };
                match event {
                    async_nats::Event::Connected => {
                        // Reconnected (the client subscribed again): read what was missed.
                        hub.record(None);
                        sync_all(&hub);
                    }
                    async_nats::Event::Disconnected => {
                        observe::backbone_reconnect("nats");
                        hub.record(Some(&NatsHubError { kind: ErrorKind::Down }));
                    }
                    async_nats::Event::SlowConsumer(_) => {
                        tracing::warn!(prefix = %hub.inner.prefix, "nats hub: live messages dropped by the client (slow consumer); reading them from the stream");
                        sync_all(&hub);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A live copy: fanned out when it follows its topic's position, else the topic reads the
/// stream.
fn dispatch(hub: &NatsHub, message: &async_nats::Message) {
    let Some(topic) = message
        .subject
        .as_str()
        .strip_prefix(LIVE)
        .and_then(|s| s.strip_prefix('.'))
        .and_then(|s| s.strip_prefix(hub.inner.prefix.as_str()))
        .and_then(|s| s.strip_prefix('.'))
        .and_then(wire::topic_of)
    else {
        return;
    };
    let Some(reader) = lock(&hub.inner.readers).get(&topic).cloned() else {
        return; // not read in this process
    };
    on_live(hub, &reader, |reader| follows(hub, reader, message));
}

/// Fans `message` out when it continues the topic's position (`true`), or ignores it when it
/// was delivered already (`true`); `false` when the stream must be read.
fn follows(hub: &NatsHub, reader: &Reader, message: &async_nats::Message) -> bool {
    let Some(position) = reader.position.borrow().clone() else {
        return false;
    };
    if position.epoch != hub.stream().1 {
        return false; // the stream was recreated: sequences start again
    }
    let headers = message.headers.as_ref();
    let Some(seq) = wire::sequence(headers) else {
        return false;
    };
    if seq <= position.last {
        return true; // read from the stream already
    }
    if wire::prev(headers) != position.last {
        return false; // something in between was missed
    }
    let event = wire::to_event(&position.epoch, seq, headers, &message.payload);
    fan_out(reader, seq, Some(event));
    true
}

/// Reads the topic from the stream (see `Backbone::sync_once`).
pub(super) async fn sync_once(hub: &NatsHub, reader: &Reader) -> Result<(), NatsHubError> {
    let epoch = hub.recent_epoch().await?;
    let current = reader.position.borrow().clone();
    let mut after = match current {
        // First start: live messages begin after the topic's last one.
        None => {
            let last = hub.last_on(&reader.key).await?;
            reader.position.send_replace(Some(Position { epoch, last }));
            return Ok(());
        }
        // The stream was lost or recreated: subscribers reset, then get everything the new
        // stream holds (all of it came after the loss).
        Some(p) if p.epoch != epoch => {
            fan_out_reset(
                reader,
                Position {
                    epoch: epoch.clone(),
                    last: 0,
                },
            );
            0
        }
        Some(p) => p.last,
    };
    while let Some(message) = next_on(hub, &reader.key, after + 1).await? {
        let seq = message.sequence;
        let headers = Some(&message.headers);
        if wire::prev(headers) > after && after > 0 {
            // Messages between were deleted while no one read them: reset subscribers just
            // before this one.
            fan_out_reset(
                reader,
                Position {
                    epoch: epoch.clone(),
                    last: seq - 1,
                },
            );
        }
        fan_out(
            reader,
            seq,
            Some(wire::to_event(&epoch, seq, headers, &message.payload)),
        );
        after = seq;
    }
    Ok(())
}

/// Every `block` period: releases topics no subscriber reads any more, and checks the stream
/// (once per hub): a recreated one makes every topic read it again (its subscribers reset).
pub(super) async fn sweep(weak: Weak<Inner>) {
    let Some(hub) = upgrade(&weak) else { return };
    let every = hub.inner.block;
    let mut known = hub.stream().1;
    drop(hub);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due = Vec::new();
    loop {
        tick.tick().await;
        let Some(hub) = upgrade(&weak) else { return };
        release_idle(&hub, &mut due, |_| {});
        if lock(&hub.inner.readers).is_empty() {
            continue;
        }
        if let Ok(epoch) = hub.recent_epoch().await {
            if epoch != known {
                known = epoch;
                sync_all(&hub);
            }
        }
    }
}
