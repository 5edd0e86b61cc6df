//! Live delivery on a fixed set of connections, whatever the number of topics.
//!
//! The publish script announces each entry on a Pub/Sub channel named like the topic's stream,
//! with the id of the entry before it. A few shared Pub/Sub connections (shards) carry every
//! topic this process reads; `SUBSCRIBE` and `UNSUBSCRIBE` are sent in batches as topics come
//! and go. A message whose previous id is the topic's position is fanned out at once; anything
//! else (a gap, a new epoch, a malformed message, a reconnect) makes the topic read its stream
//! from its position (`sync`), so nothing is lost and nothing is delivered twice. A sweeper
//! releases topics without subscribers and keeps the keys of the others from expiring.

use super::{
    error::{within, RedisHubError},
    shared::{lock, Command, Inner, Position, Reader, RedisHub, MAX_BACKOFF},
    wire::{parse_entries, parse_live, to_event, LiveEntry, Rid, PAGE},
};
use crate::{
    hub::{
        backbone::{end_refused, fan_out, fan_out_reset, on_live, release_idle, request_sync},
        new_epoch,
    },
    observe,
};
use futures_util::StreamExt as _;
use redis::Value;
use std::{
    hash::{Hash, Hasher},
    sync::{Arc, Weak},
    task::Poll,
    time::Duration,
};
use tokio::sync::mpsc;

/// Channels per `SUBSCRIBE` / `UNSUBSCRIBE`, and keys per refresh pipeline.
const BATCH: usize = 512;

/// The shard a topic's channel lives on.
pub(super) fn shard_of(topic: &str, shards: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut hasher);
    (hasher.finish() % shards as u64) as usize
}

/// The hub, while it lives (every background task holds it weakly).
pub(super) fn upgrade(weak: &Weak<Inner>) -> Option<RedisHub> {
    weak.upgrade().map(|inner| RedisHub { inner })
}

/// One shard: its Pub/Sub connection, reconnected with backoff, every topic of the shard
/// subscribed again (in batches) and read from its position after each reconnect.
pub(super) async fn run_shard(
    weak: Weak<Inner>,
    shard: usize,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match serve_shard(&weak, shard, &mut commands).await {
            Ok(()) => return, // the hub is gone
            Err(error) => {
                let Some(hub) = upgrade(&weak) else { return };
                hub.record(Some(&error));
                observe::backbone_reconnect("redis");
                tracing::debug!(%error, shard, ?backoff, "redis hub: Pub/Sub connection lost; reconnecting");
            }
        }
        // Wait out the backoff; commands queued meanwhile are in the readers map already.
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                command = commands.recv() => if command.is_none() { return },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How long a Pub/Sub command or `PING` may take before the connection counts as dead: the
/// hub's timeout, but at least 5 s, so a busy instance or Redis (a `SUBSCRIBE` of hundreds of
/// channels while thousands of clients connect) does not cause a reconnect, which would make
/// every topic subscribe and read again.
fn pubsub_deadline(hub: &RedisHub) -> Duration {
    hub.inner.timeout.max(Duration::from_secs(5))
}

async fn serve_shard(
    weak: &Weak<Inner>,
    shard: usize,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Result<(), RedisHubError> {
    let Some(hub) = upgrade(weak) else {
        return Ok(());
    };
    let timeout = pubsub_deadline(&hub);
    let pubsub = within(timeout, hub.inner.client.get_async_pubsub()).await?;
    let (mut sink, mut messages) = pubsub.split();
    // Everything asked for so far is in the readers map: subscribe it all, then read each
    // topic from its position (what was published while we were away).
    while commands.try_recv().is_ok() {}
    let shards = hub.inner.shards.len();
    let topics: Vec<Arc<Reader>> = lock(&hub.inner.readers)
        .values()
        .filter(|reader| shard_of(&reader.topic, shards) == shard)
        .cloned()
        .collect();
    for chunk in topics.chunks(BATCH) {
        let channels: Vec<&str> = chunk.iter().map(|r| r.key.stream.as_str()).collect();
        match within(timeout, sink.subscribe(channels)).await {
            Ok(()) => {}
            Err(error) if error.is_unavailable() => return Err(error),
            Err(error) => refused(&hub, chunk, &error),
        }
    }
    hub.record(None);
    for reader in &topics {
        request_sync(&hub, reader);
    }
    drop(topics);
    let ping_every = hub.inner.block.max(Duration::from_millis(500));
    drop(hub);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(connection_lost("the Pub/Sub connection closed"));
                };
                let Some(hub) = upgrade(weak) else { return Ok(()) };
                dispatch(&hub, &message);
            }
            command = commands.recv() => {
                let Some(command) = command else { return Ok(()) };
                let Some(hub) = upgrade(weak) else { return Ok(()) };
                let mut batch = vec![command];
                while batch.len() < BATCH {
                    match commands.try_recv() {
                        Ok(command) => batch.push(command),
                        Err(_) => break,
                    }
                }
                apply(&hub, &mut sink, batch).await?;
            }
            _ = ping.tick() => {
                // A peer that stopped answering is noticed within the timeout.
                within(timeout, sink.ping::<Value>()).await?;
            }
        }
    }
}

fn connection_lost(what: &'static str) -> RedisHubError {
    RedisHubError::from(redis::RedisError::from((redis::ErrorKind::Io, what)))
}

/// Runs a batch of commands in order, consecutive ones of a kind as one command.
async fn apply(
    hub: &RedisHub,
    sink: &mut redis::aio::PubSubSink,
    batch: Vec<Command>,
) -> Result<(), RedisHubError> {
    let mut subscribe: Vec<Arc<Reader>> = Vec::new();
    let mut unsubscribe: Vec<String> = Vec::new();
    for command in batch {
        match command {
            Command::Subscribe(reader) => {
                flush_unsubscribe(hub, sink, &mut unsubscribe).await?;
                subscribe.push(reader);
            }
            Command::Unsubscribe(channel) => {
                flush_subscribe(hub, sink, &mut subscribe).await?;
                unsubscribe.push(channel);
            }
        }
    }
    flush_subscribe(hub, sink, &mut subscribe).await?;
    flush_unsubscribe(hub, sink, &mut unsubscribe).await
}

/// Sends `command` on the Pub/Sub connection now, in order with every command before and
/// after it, and waits for Redis's confirmation in a task of its own, so a large
/// `UNSUBSCRIBE` does not hold up the `SUBSCRIBE`s behind it (nor the messages).
async fn send_in_order(command: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut command = Box::pin(command);
    // The first poll hands the command to the connection (redis-rs queues it before its first
    // wait), so commands leave in the order the shard takes them.
    let first = std::future::poll_fn(|cx| Poll::Ready(command.as_mut().poll(cx))).await;
    if first.is_pending() {
        tokio::spawn(command);
    }
}

async fn flush_subscribe(
    hub: &RedisHub,
    sink: &redis::aio::PubSubSink,
    readers: &mut Vec<Arc<Reader>>,
) -> Result<(), RedisHubError> {
    if readers.is_empty() {
        return Ok(());
    }
    let readers = std::mem::take(readers);
    let channels: Vec<String> = readers.iter().map(|r| r.key.stream.clone()).collect();
    let (mut sink, deadline, weak) = (
        sink.clone(),
        pubsub_deadline(hub),
        Arc::downgrade(&hub.inner),
    );
    send_in_order(async move {
        match within(deadline, sink.subscribe(&channels)).await {
            // Subscribed: whatever is published from now on arrives; find where each topic
            // is.
            Ok(()) => {
                if let Some(hub) = upgrade(&weak) {
                    for reader in &readers {
                        request_sync(&hub, reader);
                    }
                }
            }
            // A dead connection is noticed by its PING, and the reconnect subscribes every
            // topic again.
            Err(error) if error.is_unavailable() => {
                tracing::debug!(%error, "redis hub: SUBSCRIBE failed; the reconnect retries it");
            }
            // Refused (an ACL without Pub/Sub rights, say): see `refused`.
            Err(error) => {
                if let Some(hub) = upgrade(&weak) {
                    refused(&hub, &readers, &error);
                }
            }
        }
    })
    .await;
    Ok(())
}

/// Redis refused to subscribe these topics' channels: nothing would ever arrive on them, so
/// their subscriptions end (their clients resume later) and the topics are forgotten (the
/// next subscription asks again).
fn refused(hub: &RedisHub, readers: &[Arc<Reader>], error: &RedisHubError) {
    let ended: usize = readers.iter().map(|r| end_refused(hub, r)).sum();
    tracing::warn!(%error, topics = readers.len(), subscriptions = ended, "redis hub: SUBSCRIBE refused; ending these topics' subscriptions (their clients resume)");
}

async fn flush_unsubscribe(
    hub: &RedisHub,
    sink: &redis::aio::PubSubSink,
    channels: &mut Vec<String>,
) -> Result<(), RedisHubError> {
    if channels.is_empty() {
        return Ok(());
    }
    let channels = std::mem::take(channels);
    let (mut sink, deadline) = (sink.clone(), pubsub_deadline(hub));
    send_in_order(async move {
        if let Err(error) = within(deadline, sink.unsubscribe(&channels)).await {
            tracing::debug!(%error, "redis hub: UNSUBSCRIBE failed");
        }
    })
    .await;
    Ok(())
}

/// A channel message: fanned out when it follows the topic's position, else the topic reads
/// its stream.
fn dispatch(hub: &RedisHub, message: &redis::Msg) {
    let channel = message.get_channel_name();
    let Some(topic) = channel
        .strip_prefix(hub.inner.prefix.as_str())
        .and_then(|rest| rest.strip_prefix(':'))
    else {
        return;
    };
    let Some(reader) = lock(&hub.inner.readers).get(topic).cloned() else {
        return; // released meanwhile
    };
    let live = parse_live(message.get_payload_bytes());
    if live.is_none() {
        tracing::debug!(
            topic,
            "redis hub: unreadable channel message; reading the stream"
        );
    }
    on_live(hub, &reader, |reader| follows(reader, live.as_ref()));
}

/// Fans `live` out when it continues the topic's position (`true`), or ignores it when it is
/// one already delivered (`true`); `false` when the stream must be read.
fn follows(reader: &Reader, live: Option<&LiveEntry>) -> bool {
    let position = reader.position.borrow().clone();
    let (Some(position), Some(live)) = (position, live) else {
        return false;
    };
    if *position.epoch != *live.epoch {
        return false;
    }
    if live.id <= position.last {
        return true; // read from the stream already
    }
    if live.prev != position.last {
        return false; // something in between was missed
    }
    fan_out(reader, live.id, live.event());
    true
}

/// Reads the topic's stream (see `Backbone::sync_once`).
pub(super) async fn sync_once(hub: &RedisHub, reader: &Reader) -> Result<(), redis::RedisError> {
    let mut conn = hub.inner.conn.clone();
    let (epoch, last): (String, String) = hub
        .inner
        .start
        .key(&reader.key.stream)
        .key(reader.key.epoch_key())
        .arg(new_epoch())
        .arg(hub.idle_ms())
        .invoke_async(&mut conn)
        .await?;
    let last = Rid::parse(&last).unwrap_or(Rid::ZERO);
    let current = reader.position.borrow().clone();
    let mut after = match current {
        // First start: live entries begin after the stream's current end.
        None => {
            reader.position.send_replace(Some(Position {
                epoch: epoch.into(),
                last,
            }));
            return Ok(());
        }
        // The stream was lost while we were away: subscribers reset, then get everything the
        // new stream holds (all of it came after the loss).
        Some(p) if *p.epoch != *epoch => {
            fan_out_reset(
                reader,
                Position {
                    epoch: epoch.into(),
                    last: Rid::ZERO,
                },
            );
            Rid::ZERO
        }
        // Nothing after the position: no read (the common case after a `SUBSCRIBE`).
        Some(p) if p.last >= last => return Ok(()),
        Some(p) => p.last,
    };
    loop {
        let reply: Value = redis::cmd("XRANGE")
            .arg(&reader.key.stream)
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await?;
        let entries = parse_entries(reply);
        let full = entries.len() == PAGE;
        let Some(position) = reader.position.borrow().clone() else {
            return Ok(());
        };
        let mut reset = false;
        for (id, fields) in entries {
            let mut new_epoch_seen = None;
            let event = to_event(&position.epoch, id, &fields, &mut new_epoch_seen);
            if let Some(epoch) = new_epoch_seen {
                // Recreated under our feet: reset subscribers just before this entry, which
                // the next page returns again.
                fan_out_reset(
                    reader,
                    Position {
                        epoch: epoch.into(),
                        last: id.before(),
                    },
                );
                after = id.before();
                reset = true;
                break;
            }
            after = id;
            fan_out(reader, id, event);
        }
        if !full && !reset {
            return Ok(());
        }
    }
}

/// Every `block` period: releases topics no subscriber reads any more (their channels are
/// unsubscribed) and, every third of the idle age, keeps the keys of the others from
/// expiring. Ends with the hub.
pub(super) async fn sweep(weak: Weak<Inner>) {
    let Some(hub) = upgrade(&weak) else { return };
    let every = hub.inner.block;
    let refresh_every = (!hub.inner.idle.is_zero()).then(|| (hub.inner.idle / 3).max(every));
    drop(hub);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refreshed = tokio::time::Instant::now();
    let mut due = Vec::new();
    loop {
        tick.tick().await;
        let Some(hub) = upgrade(&weak) else { return };
        let shards = hub.inner.shards.len();
        // Under the readers lock: a subscription registering now either found the reader
        // (and holds a receiver) or starts a new one, whose SUBSCRIBE is queued after this
        // UNSUBSCRIBE.
        release_idle(&hub, &mut due, |reader| {
            let _ = hub.inner.shards[shard_of(&reader.topic, shards)]
                .send(Command::Unsubscribe(reader.key.stream.clone()));
        });
        if let Some(refresh_every) = refresh_every {
            if refreshed.elapsed() >= refresh_every {
                refreshed = tokio::time::Instant::now();
                refresh(&hub).await;
            }
        }
    }
}

async fn refresh(hub: &RedisHub) {
    let keys: Vec<(String, String)> = lock(&hub.inner.readers)
        .values()
        .map(|r| (r.key.stream.clone(), r.key.epoch_key()))
        .collect();
    let idle = hub.idle_ms();
    for chunk in keys.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for (stream, epoch_key) in chunk {
            pipe.cmd("PEXPIRE").arg(stream).arg(idle).ignore();
            pipe.cmd("PEXPIRE").arg(epoch_key).arg(idle).ignore();
        }
        let mut conn = hub.inner.conn.clone();
        if let Err(error) = hub.op(pipe.query_async::<()>(&mut conn)).await {
            tracing::debug!(%error, "redis hub: refreshing subscribed topics failed");
            return;
        }
    }
}
