//! The hub's shared state: the handle, its settings and connection, whether Redis is known to
//! be down, and each topic's reader as subscriptions see it.

use super::{
    error::{within, RedisHubError},
    scripts::{ENSURE, PUBLISH},
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

/// The default idle age of a topic's keys: 24 hours.
pub const DEFAULT_REDIS_IDLE_TOPIC_AGE: Duration = Duration::from_secs(24 * 3600);

pub(super) use crate::hub::backbone::{lock, MAX_BACKOFF};

/// A [`Hub`](crate::hub::Hub) on Redis Streams, for several processes: any instance serves any client, resume
/// included.
///
/// * **Publish** is one `XADD` (through a Lua script) with an approximate `MAXLEN` (default
///   10,000 per topic), on a shared auto-reconnecting connection. Redis unreachable: the
///   caller gets the error.
/// * **Subscribe**: one reader task **per topic per process** does blocking `XREAD`s on its
///   own connection and fans entries out locally through a bounded buffer; there is never a
///   Redis connection per client. A subscription replays the history after its cursor with
///   `XRANGE` on the shared connection, then continues with the reader's live entries, with
///   no gap and no duplicate at the seam.
/// * **Epochs**: each stream has an epoch kept in Redis (`<prefix>:<topic>:epoch`) and stored
///   in every entry. When the stream is missing (deleted, or lost when Redis restarted
///   without persistence) the next publish or reader start creates it with a new epoch, so
///   old cursors get `reset` (reason `unknown-epoch`), and live subscribers get `reset`
///   (reason `expired`) instead of a silent gap. A cursor older than the trimmed history
///   (`XINFO STREAM`'s `max-deleted-entry-id`) gets `reset` (`expired`).
/// * **Faults**: a reader whose connection fails reconnects with exponential backoff (50 ms
///   to 5 s) and resumes from the last id it read; subscribers see no gap and no duplicate for
///   what Redis kept. Heartbeats (a layer on the stream) keep flowing meanwhile.
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
    pub(super) ensure: Script,
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
    url: String,
    pub(super) prefix: String,
    pub(super) maxlen: usize,
    pub(super) buffer: usize,
    pub(super) block: Duration,
    pub(super) idle: Duration,
    pub(super) timeout: Duration,
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
    /// (`PEXPIRE`, refreshed by every publish and, while it has subscribers, by its reader
    /// every [`block`](Self::block) period). Default [`DEFAULT_REDIS_IDLE_TOPIC_AGE`] (24 hours);
    /// `Duration::ZERO` keeps keys forever. Topics asked for once and never used again so
    /// leave Redis by themselves; resuming a topic that expired gets `reset`.
    pub fn idle_topic_age(mut self, age: Duration) -> Self {
        self.idle = age;
        self
    }

    /// Size of the local live buffer a topic's subscribers share in this process. Default 256.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// How long a reader's `XREAD` blocks before it checks for an idle topic. Default 2 s.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.max(Duration::from_millis(10));
        self
    }

    /// Connects.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or Redis cannot be reached.
    pub async fn connect(self) -> Result<RedisHub, RedisHubError> {
        let client = Client::open(self.url.as_str())?;
        // Fail fast: each attempt is bounded by the timeout, and a broken connection is
        // re-established in the background (a few quick retries), not while callers wait.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_max_delay(self.timeout);
        let conn = within(
            self.timeout,
            client.get_connection_manager_with_config(config),
        )
        .await?;
        Ok(RedisHub {
            inner: Arc::new(Inner {
                client,
                conn,
                prefix: self.prefix,
                maxlen: self.maxlen,
                buffer: self.buffer,
                block: self.block,
                idle: self.idle,
                timeout: self.timeout,
                health: backbone::Health::default(),
                readers: Mutex::new(HashMap::new()),
                ensure: Script::new(ENSURE),
                publish: Script::new(PUBLISH),
            }),
        })
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
            buffer: 256,
            block: Duration::from_secs(2),
            idle: DEFAULT_REDIS_IDLE_TOPIC_AGE,
            timeout: Duration::from_secs(1),
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
    pub(super) fn record(&self, error: Option<&RedisHubError>) {
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

    /// Topics with a reader in this process.
    pub fn active_topics(&self) -> usize {
        lock(&self.inner.readers).len()
    }

    pub(super) fn keys(&self, topic: &str) -> Keys {
        let stream = format!("{}:{topic}", self.inner.prefix);
        let epoch_key = format!("{stream}:epoch");
        Keys { stream, epoch_key }
    }
}

/// Where a topic lives in Redis: its stream and its epoch key.
pub(crate) struct Keys {
    pub(super) stream: String,
    pub(super) epoch_key: String,
}

/// A topic's reader in this process.
pub(super) type Reader = backbone::Reader<RedisHub>;
/// Where a topic's reader is.
pub(super) type Position = backbone::Position<Rid>;
