//! The hub's shared state: the handle, its settings and connection, whether Redis is known to
//! be down, and each topic's reader as subscriptions see it.

use super::{
    error::{within, RedisHubError},
    wire::Rid,
};
use crate::hub::backbone;
use redis::{aio::ConnectionManager, Client, Script};
use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::mpsc;

/// The default idle age of a topic's keys: 24 hours.
pub const DEFAULT_REDIS_IDLE_TOPIC_AGE: Duration = Duration::from_secs(24 * 3600);

pub(super) use crate::hub::backbone::{lock, MAX_BACKOFF};

/// A [`Hub`](crate::hub::Hub) on Redis Streams, for several processes: any instance serves any client, resume
/// included.
///
/// * **Connections**: a fixed set per process, whatever the number of topics and clients:
///   one shared auto-reconnecting connection for commands, and
///   [`pubsub_connections`](RedisHubBuilder::pubsub_connections) Pub/Sub connections (1 by
///   default) for live delivery. 100,000 topics cost what 10 cost in connections.
/// * **Publish** is one Lua script: `XADD` with an approximate `MAXLEN` (default 10,000 per
///   topic) into the topic's stream (its history), and `PUBLISH` of the entry, with the id of
///   the entry before it, on the topic's channel (named like the stream). Redis unreachable:
///   the caller gets the error.
/// * **Subscribe**: the first subscriber of a topic in this process subscribes its channel
///   (`SUBSCRIBE`s are batched as topics come and go) and fans messages out locally through a
///   bounded buffer. A message whose previous id is not the topic's position (one was lost, a
///   Pub/Sub reconnect, a new epoch) makes the topic read its stream from its position with
///   `XRANGE`, so nothing is lost and nothing is delivered twice. A subscription replays the
///   history after its cursor with `XRANGE`, then continues live, with no gap and no
///   duplicate at the seam. A topic whose last subscriber left is unsubscribed within
///   [`block`](RedisHubBuilder::block).
/// * **Epochs**: each stream has an epoch kept in Redis (`<prefix>:<topic>:epoch`) and stored
///   in every entry. When the stream is missing (deleted, or lost when Redis restarted
///   without persistence) the next publish or reader start creates it with a new epoch, so
///   old cursors get `reset` (reason `unknown-epoch`), and live subscribers get `reset`
///   (reason `expired`) instead of a silent gap. A cursor older than the trimmed history
///   (`XINFO STREAM`'s `max-deleted-entry-id`) gets `reset` (`expired`).
/// * **Faults**: a Pub/Sub connection that fails (or stops answering its `PING` within the
///   timeout, at least 5 s) reconnects with exponential backoff (50 ms to 5 s), subscribes every topic
///   again in batches, and each topic reads its stream from the last id it delivered;
///   subscribers see no gap and no duplicate for what Redis kept. Heartbeats (a layer on the
///   stream) keep flowing meanwhile.
/// * A subscriber that falls behind its local buffer catches up from Redis with `XRANGE`.
///
/// Cursors look like `k3Xq9Z.1700000000000-0` (epoch, stream id). Events keep their
/// name and data; `retry` and comments are not stored.
///
/// Keys: `<prefix>:<topic>` (the stream) and `<prefix>:<topic>:epoch`. Both expire when the
/// topic has been idle for [`idle_topic_age`](RedisHubBuilder::idle_topic_age) (24 hours by
/// default), so topics do not accumulate in Redis.
///
/// ```no_run
/// use tower_push::hub::{Hub, RedisHub};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
/// let hub = RedisHub::connect(&url, "chat").await?;
/// hub.publish("room", tower_push::Event::new().data("hi")).await?;
/// # Ok(()) }
/// # let _ = demo;
/// ```
#[derive(Clone)]
pub struct RedisHub {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) client: Client,
    pub(super) conn: ConnectionManager,
    pub(super) prefix: String,
    pub(super) maxlen: usize,
    pub(super) buffer: usize,
    pub(super) block: Duration,
    pub(super) idle: Duration,
    /// How long one operation may wait on Redis.
    pub(super) timeout: Duration,
    /// Set when an operation found Redis unreachable, cleared by the next success.
    pub(super) health: backbone::Health,
    pub(super) readers: Mutex<HashMap<String, Arc<Reader>>>,
    /// Readers whose subscriptions ended since the last sweep.
    pub(super) released: Mutex<Vec<Arc<Reader>>>,
    /// Each Pub/Sub shard's task.
    pub(super) shards: Vec<mpsc::UnboundedSender<Command>>,
    /// Topics waiting to read their streams.
    pub(super) syncs: backbone::SyncQueue<RedisHub>,
    pub(super) start: Script,
    pub(super) publish: Script,
}

impl fmt::Debug for RedisHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHub")
            .field("prefix", &self.inner.prefix)
            .field("maxlen", &self.inner.maxlen)
            .finish_non_exhaustive()
    }
}

/// Builder for [`RedisHub`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisHubBuilder {
    pub(super) url: String,
    pub(super) prefix: String,
    pub(super) maxlen: usize,
    pub(super) buffer: usize,
    pub(super) block: Duration,
    pub(super) idle: Duration,
    pub(super) timeout: Duration,
    pub(super) pubsub: usize,
}

impl RedisHubBuilder {
    /// How long a publish, a replay, a ticket redemption or a connection attempt may wait on
    /// Redis before it fails with an error that [is
    /// unavailable](RedisHubError::is_unavailable). Default 1 s. While Redis is known to be
    /// down, [`Hub::available`](crate::hub::Hub::available) says so at once, so new subscriptions are refused with `503`
    /// instead of waiting; everything recovers by itself when Redis answers again.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// Approximate number of events kept per topic (`XADD MAXLEN ~`). Default 10,000.
    pub fn maxlen(mut self, events: usize) -> Self {
        self.maxlen = events.max(1);
        self
    }

    /// How long a topic's keys live after its last publish while no instance reads it
    /// (`PEXPIRE`, refreshed by every publish and, while it has subscribers in this process,
    /// every third of the age). Default [`DEFAULT_REDIS_IDLE_TOPIC_AGE`] (24 hours);
    /// `Duration::ZERO` keeps keys forever. Topics asked for once and never used again so
    /// leave Redis by themselves; resuming a topic that expired gets `reset`.
    pub fn idle_topic_age(mut self, age: Duration) -> Self {
        self.idle = age;
        self
    }

    /// Size of the local live buffer a topic's subscribers share in this process. Default
    /// [`DEFAULT_BACKBONE_BUFFER`](crate::hub::DEFAULT_BACKBONE_BUFFER) (16): every topic
    /// read here holds one, so it is what a topic costs; a subscriber that falls further
    /// behind catches up from the backbone's history (nothing is lost).
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// How often topics without subscribers release their channel (so a topic's state
    /// lives this much longer than its last subscriber), and how often each Pub/Sub
    /// connection is checked with a `PING` (at least every 500 ms). Default 2 s.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.max(Duration::from_millis(10));
        self
    }

    /// How many Pub/Sub connections carry this process's topics (each topic's channel lives
    /// on one, by a hash of its name). Default 1, between 1 and 16: one connection holds any
    /// number of channels; more spread the decoding over more tasks.
    pub fn pubsub_connections(mut self, connections: usize) -> Self {
        self.pubsub = connections.clamp(1, 16);
        self
    }
}

impl RedisHub {
    /// Connects to `url` (for example `redis://127.0.0.1:6379`, or `REDIS_URL`) with keys
    /// under `prefix`, and the default settings.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisHubError> {
        Self::builder(url, prefix).connect().await
    }

    /// A builder for the settings.
    pub fn builder(url: &str, prefix: &str) -> RedisHubBuilder {
        RedisHubBuilder {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            maxlen: 10_000,
            buffer: crate::hub::DEFAULT_BACKBONE_BUFFER,
            block: Duration::from_secs(2),
            idle: DEFAULT_REDIS_IDLE_TOPIC_AGE,
            timeout: Duration::from_secs(1),
            pubsub: 1,
        }
    }

    /// The idle age in milliseconds, as the scripts take it (0: never expire).
    pub(super) fn idle_ms(&self) -> u64 {
        self.inner.idle.as_millis().try_into().unwrap_or(u64::MAX)
    }

    /// Runs one Redis operation under the hub's timeout and records whether Redis answered.
    pub(crate) async fn op<T, E>(
        &self,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, RedisHubError>
    where
        RedisHubError: From<E>,
    {
        let result = within(self.inner.timeout, op).await;
        self.record(result.as_ref().err());
        result
    }

    /// Notes an operation's outcome: Redis is down after an unavailable error, up after any
    /// answer.
    pub(crate) fn record(&self, error: Option<&RedisHubError>) {
        let unavailable = error.is_some_and(RedisHubError::is_unavailable);
        self.inner
            .health
            .record(unavailable, "redis", &self.inner.prefix);
    }

    /// A connection to the same Redis, shared with the hub (for the
    /// [`RedisTicketStore`](crate::auth_ticket::RedisTicketStore)).
    #[cfg(feature = "auth-ticket")]
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Topics read in this process (subscribed on a Pub/Sub connection).
    pub fn active_topics(&self) -> usize {
        lock(&self.inner.readers).len()
    }

    pub(super) fn keys(&self, topic: &str) -> Keys {
        let stream = format!("{}:{topic}", self.inner.prefix);
        Keys { stream }
    }
}

/// Where a topic lives in Redis: its stream (also the name of its Pub/Sub channel), and its
/// epoch key (made when needed: every topic read here holds its keys).
pub(crate) struct Keys {
    pub(super) stream: String,
}

impl Keys {
    pub(super) fn epoch_key(&self) -> String {
        format!("{}:epoch", self.stream)
    }
}

/// What a Pub/Sub shard's task is asked to do, in order.
pub(super) enum Command {
    /// Subscribe the topic's channel, then find the topic's position.
    Subscribe(Arc<Reader>),
    /// Unsubscribe a channel whose topic has no subscriber left.
    Unsubscribe(String),
}

/// A topic's reader in this process.
pub(super) type Reader = backbone::Reader<RedisHub>;
/// Where a topic's reader is.
pub(super) type Position = backbone::Position<Rid>;
