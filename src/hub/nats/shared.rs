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

pub(super) use crate::hub::backbone::{lock, MAX_BACKOFF};
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
/// * **Subscribe**: one ordered push consumer **per topic per process**, started after the
///   last message it has fanned out, feeds the local subscribers through a bounded buffer;
///   there is never a consumer per client. Ordered consumers are ephemeral and flow-controlled
///   by the server, and restart by themselves on a gap, which is why they are used rather than
///   a core subscription (whose messages carry no stream sequence) plus catch-up. A
///   subscription replays the history after its cursor with direct gets
///   (`next_by_subject`), then continues live, with no gap and no duplicate at the seam.
/// * **Epochs**: the cursor is `<epoch>-<stream sequence>`, the epoch being the stream's
///   creation time. A deleted, recreated or lost stream has another epoch: old cursors get
///   `reset` (`unknown-epoch`), live subscribers `reset` (`expired`). History deleted past a
///   cursor (limits, purge) gives `reset` (`expired`), never a silent gap.
/// * **Faults**: a reader whose consumer fails (NATS restarting, the connection lost)
///   restarts with backoff (50 ms to 5 s) from the last sequence it fanned out; subscribers
///   see no gap and no duplicate for what JetStream kept. Heartbeats (a layer on the stream)
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
    /// One publish at a time per topic in this process (striped).
    pub(super) publishing: Box<[tokio::sync::Mutex<()>]>,
    /// When the stream's epoch was last checked, and a lock so one reader checks at a time.
    pub(super) checked: tokio::sync::Mutex<std::time::Instant>,
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
    url: String,
    prefix: String,
    stream: Option<String>,
    max_per_topic: i64,
    max_age: Duration,
    buffer: usize,
    block: Duration,
    timeout: Duration,
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

    /// Size of the local live buffer a topic's subscribers share in this process. Default 256.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// How long a reader waits for a message before it checks for an idle topic and for a
    /// recreated stream. Default 2 s.
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

    /// Connects and creates the stream if it is missing (an existing stream of that name is
    /// used as it is).
    ///
    /// # Errors
    ///
    /// When NATS cannot be reached, has no JetStream, or refuses the stream.
    pub async fn connect(self) -> Result<NatsHub, NatsHubError> {
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout));
        let client = within(
            self.timeout,
            async_nats::connect_with_options(self.url.as_str(), options),
        )
        .await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(self.timeout);
        let stream_name = self.stream.unwrap_or_else(|| {
            let name: String = self
                .prefix
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("TOWER_PUSH_{name}")
        });
        let config = stream_config(&stream_name, &self.prefix, self.max_per_topic, self.max_age);
        let stream = within(self.timeout, js.get_or_create_stream(config)).await?;
        let epoch: Arc<str> =
            wire::epoch(stream.cached_info().created.unix_timestamp_nanos()).into();
        Ok(NatsHub {
            inner: Arc::new(Inner {
                client,
                js,
                prefix: self.prefix,
                stream_name,
                max_per_topic: self.max_per_topic,
                max_age: self.max_age,
                buffer: self.buffer,
                block: self.block,
                timeout: self.timeout,
                stream: Mutex::new((stream, epoch)),
                last: Mutex::new(HashMap::new()),
                health: backbone::Health::default(),
                readers: Mutex::new(HashMap::new()),
                publishing: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
                checked: tokio::sync::Mutex::new(std::time::Instant::now()),
            }),
        })
    }
}

fn stream_config(
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
            buffer: 256,
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

    /// Topics with a reader in this process.
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
        let stream = self.op(self.inner.js.get_or_create_stream(config)).await?;
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
