//! The hub's shared state: the handle, its settings, the stream and its epoch, whether NATS
//! is known to be down, and each topic's reader as subscriptions see it.

use super::{
    error::{within, NatsHubError},
    wire,
};
use crate::hub::backbone;
use async_nats::jetstream::{self, stream};
use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

pub(super) use crate::hub::backbone::lock;
/// The subject prefix the stream republishes live copies under.
pub(super) const LIVE: &str = "_TP_LIVE";
/// The most topics whose last sequence the hub remembers for publishing.
pub(super) const PUBLISH_CACHE: usize = 10_000;

/// A [`Hub`](crate::hub::Hub) on NATS JetStream, for teams that already run NATS: any
/// instance serves any client, resume included.
///
/// * **One stream** (`TOWER_PUSH_<prefix>` by default) holds every topic, each on its own
///   subject `<prefix>.<topic>` (a topic that is not a valid subject token is encoded:
///   `.` and `_` become `_2E` and `_5F`, and so on; never refused). History is limited per
///   subject: [`max_per_topic`](NatsHubBuilder::max_per_topic) messages (default 10,000) and
///   an optional [`max_age`](NatsHubBuilder::max_age).
/// * **Publish** waits for JetStream's ack and returns the caller an error when NATS is down
///   (within [`timeout`](NatsHubBuilder::timeout), default 1 s); while the client knows it is
///   disconnected, at once, without queueing the message. A publish that times out has an
///   unknown outcome, as any request whose answer was lost: if the client had written it just
///   before the connection broke, it is sent again after the reconnect and stored (once, in
///   order). Each message names the
///   topic's previous message (`Tp-Prev`, kept exact by JetStream's
///   `Nats-Expected-Last-Subject-Sequence`), which is how a cursor whose history was deleted is
///   told apart from one that simply missed nothing.
/// * **Subscribe**: one connection and **no consumer**, whatever the number of topics. The
///   stream republishes each message it stores, with its stream sequence, to
///   `_TP_LIVE.<subject>`; the hub reads them all with one core subscription
///   (`_TP_LIVE.<prefix>.>`) and hands each to its topic's subscribers in this process through
///   a bounded buffer (each instance so receives the stream's live traffic once, and nothing
///   per topic). A message whose previous one (`Tp-Prev`) is not the topic's position (one
///   was lost, the connection was cut) makes the topic read the stream from there with direct
///   gets; after a reconnect every topic does so. A subscription replays the history after
///   its cursor with direct gets (`next_by_subject`), then continues live, with no gap and no
///   duplicate at the seam. A topic whose last subscriber left is released within
///   [`block`](NatsHubBuilder::block).
/// * **Epochs**: the cursor is `<epoch>-<stream sequence>`, the epoch being the stream's
///   creation time. A deleted, recreated or lost stream has another epoch: old cursors get
///   `reset` (`unknown-epoch`), live subscribers `reset` (`expired`). History deleted past a
///   cursor (limits, purge) gives `reset` (`expired`), never a silent gap.
/// * **Faults**: when the connection comes back (NATS restarting, the connection cut), every
///   topic reads the stream from the last sequence it fanned out (retrying with backoff, 50 ms
///   to 5 s); subscribers see no gap and no duplicate for what JetStream kept. Heartbeats (a layer on the stream)
///   keep flowing meanwhile. While NATS is known to be down,
///   [`Hub::available`](crate::hub::Hub::available) says so and new subscriptions get `503`.
///
/// Events keep their name and data; `retry` and comments are not stored. The stream needs
/// NATS 2.9 or later (direct gets).
///
/// ```no_run
/// use tower_push::hub::{Hub, NatsHub};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
/// let hub = NatsHub::connect(&url, "chat").await?;
/// hub.publish("room", tower_push::Event::new().data("hi")).await?;
/// # Ok(()) }
/// # let _ = demo;
/// ```
#[derive(Clone)]
pub struct NatsHub {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) client: async_nats::Client,
    pub(super) js: jetstream::Context,
    pub(super) prefix: String,
    pub(super) stream_name: String,
    pub(super) max_per_topic: i64,
    pub(super) max_age: Duration,
    pub(super) buffer: usize,
    pub(super) block: Duration,
    pub(super) timeout: Duration,
    /// The stream handle and its epoch, refreshed when the stream is found missing.
    pub(super) stream: Mutex<(stream::Stream, Arc<str>)>,
    /// The last sequence published per topic (the next message's `Tp-Prev`).
    pub(super) last: Mutex<HashMap<String, u64>>,
    pub(super) health: backbone::Health,
    pub(super) readers: Mutex<HashMap<String, Arc<Reader>>>,
    /// Readers whose subscriptions ended since the last sweep.
    pub(super) released: Mutex<Vec<Arc<Reader>>>,
    /// One publish at a time per topic in this process (striped).
    pub(super) publishing: Box<[tokio::sync::Mutex<()>]>,
    /// When the stream's epoch was last checked, and a lock so one reader checks at a time.
    pub(super) checked: tokio::sync::Mutex<std::time::Instant>,
    /// Topics waiting to read the stream.
    pub(super) syncs: backbone::SyncQueue<NatsHub>,
}

impl fmt::Debug for NatsHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsHub")
            .field("prefix", &self.inner.prefix)
            .field("stream", &self.inner.stream_name)
            .field("max_per_topic", &self.inner.max_per_topic)
            .finish_non_exhaustive()
    }
}

/// Builder for [`NatsHub`].
#[derive(Debug, Clone)]
#[must_use]
pub struct NatsHubBuilder {
    pub(super) url: String,
    pub(super) prefix: String,
    pub(super) stream: Option<String>,
    pub(super) max_per_topic: i64,
    pub(super) max_age: Duration,
    pub(super) buffer: usize,
    pub(super) block: Duration,
    pub(super) timeout: Duration,
}

impl NatsHubBuilder {
    /// The JetStream stream's name. Default `TOWER_PUSH_<prefix>` (characters a stream name
    /// cannot hold become `_`).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(name.into());
        self
    }

    /// Messages kept per topic (the stream's `max_msgs_per_subject`). Default 10,000.
    pub fn max_per_topic(mut self, messages: i64) -> Self {
        self.max_per_topic = messages.max(1);
        self
    }

    /// How long messages are kept (the stream's `max_age`). Default: no limit
    /// (`Duration::ZERO`). With a limit, topics nobody publishes to empty themselves.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
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

    /// How often topics without subscribers are released (so a topic's state lives this much
    /// longer than its last subscriber) and the stream is checked for having been recreated.
    /// Default 2 s.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.max(Duration::from_millis(10));
        self
    }

    /// How long a publish, a replay step, a ticket redemption or the connection attempt may
    /// wait on NATS before it fails with an error that [is
    /// unavailable](NatsHubError::is_unavailable). Default 1 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }
}

/// The stream with `config`, created when missing; one without the live republish (made by
/// an earlier release) gets it.
pub(super) async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
    timeout: Duration,
) -> Result<stream::Stream, NatsHubError> {
    let name = config.name.clone();
    let republish = config.republish.clone();
    let mut stream = within(timeout, js.get_or_create_stream(config)).await?;
    let current = stream.cached_info().config.republish.clone();
    let same = match (&current, &republish) {
        (Some(a), Some(b)) => a.source == b.source && a.destination == b.destination,
        (None, None) => true,
        _ => false,
    };
    if !same {
        let mut updated = stream.cached_info().config.clone();
        updated.republish = republish;
        within(timeout, js.update_stream(updated)).await?;
        stream = within(timeout, js.get_stream(name)).await?;
    }
    Ok(stream)
}

pub(super) fn stream_config(
    name: &str,
    prefix: &str,
    max_per_topic: i64,
    max_age: Duration,
) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{prefix}.>")],
        max_messages_per_subject: max_per_topic,
        max_age,
        allow_direct: true,
        republish: Some(stream::Republish {
            source: format!("{prefix}.>"),
            destination: format!("{LIVE}.{prefix}.>"),
            headers_only: false,
        }),
        ..Default::default()
    }
}

impl NatsHub {
    /// Connects to `url` (for example `nats://127.0.0.1:4222`, or `NATS_URL`) with subjects
    /// under `prefix`, and the default settings.
    ///
    /// # Errors
    ///
    /// When NATS cannot be reached, has no JetStream, or refuses the stream.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, NatsHubError> {
        Self::builder(url, prefix).connect().await
    }

    /// A builder for the settings.
    pub fn builder(url: &str, prefix: &str) -> NatsHubBuilder {
        NatsHubBuilder {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            stream: None,
            max_per_topic: 10_000,
            max_age: Duration::ZERO,
            buffer: crate::hub::DEFAULT_BACKBONE_BUFFER,
            block: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
        }
    }

    /// The subject prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The JetStream stream's name.
    pub fn stream_name(&self) -> &str {
        &self.inner.stream_name
    }

    /// The NATS client (for the [`NatsTicketStore`](crate::auth_ticket::NatsTicketStore)).
    #[cfg(feature = "auth-ticket")]
    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// Topics read in this process.
    pub fn active_topics(&self) -> usize {
        lock(&self.inner.readers).len()
    }

    pub(super) fn subject(&self, topic: &str) -> String {
        wire::subject(&self.inner.prefix, topic)
    }

    /// The stream handle and its epoch as last seen.
    pub(super) fn stream(&self) -> (stream::Stream, Arc<str>) {
        lock(&self.inner.stream).clone()
    }

    /// Finds (or creates) the stream again and refreshes its epoch: after it was found
    /// missing, and to check for a recreated stream.
    pub(super) async fn refresh(&self) -> Result<(stream::Stream, Arc<str>), NatsHubError> {
        let config = stream_config(
            &self.inner.stream_name,
            &self.inner.prefix,
            self.inner.max_per_topic,
            self.inner.max_age,
        );
        let result = ensure_stream(&self.inner.js, config, self.inner.timeout).await;
        self.record(result.as_ref().err());
        let stream = result?;
        let epoch: Arc<str> =
            wire::epoch(stream.cached_info().created.unix_timestamp_nanos()).into();
        let mut current = lock(&self.inner.stream);
        if *current.1 != *epoch {
            lock(&self.inner.last).clear();
        }
        *current = (stream.clone(), epoch.clone());
        Ok((stream, epoch))
    }

    /// The stream's epoch, checked against NATS at most once per block period for the whole
    /// hub (quiet readers call this every period).
    pub(super) async fn recent_epoch(&self) -> Result<Arc<str>, NatsHubError> {
        let mut checked = self.inner.checked.lock().await;
        if checked.elapsed() < self.inner.block {
            return Ok(self.stream().1);
        }
        let (_, epoch) = self.refresh().await?;
        *checked = std::time::Instant::now();
        Ok(epoch)
    }

    /// Runs one NATS operation under the hub's timeout and records whether NATS answered.
    pub(crate) async fn op<T, E>(
        &self,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, NatsHubError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let result = within(self.inner.timeout, op).await;
        self.record(result.as_ref().err());
        result
    }

    /// Notes an operation's outcome: NATS is down after an unavailable error, up after any
    /// answer.
    pub(crate) fn record(&self, error: Option<&NatsHubError>) {
        let unavailable = error.is_some_and(NatsHubError::is_unavailable);
        self.inner
            .health
            .record(unavailable, "nats", &self.inner.prefix);
    }

    pub(super) fn is_down(&self) -> bool {
        self.inner.health.is_down()
    }
}

/// A topic's reader in this process (its key: the topic's subject).
pub(super) type Reader = backbone::Reader<NatsHub>;
/// Where a topic's reader is: the sequence of the topic's last message it has fanned out.
pub(super) type Position = backbone::Position<u64>;
