use super::{live::LiveReceiver, new_epoch, position_event, reset_event, Cursor, Hub, ResetReason};
use crate::event::Event;
use futures_core::Stream;
use redis::{
    aio::ConnectionManager, aio::MultiplexedConnection, AsyncConnectionConfig, Client, Script,
    Value,
};
use std::{
    collections::{HashMap, VecDeque},
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::sync::{broadcast, broadcast::error::RecvError, watch};

/// Entries read per `XREAD` / `XRANGE` call.
const PAGE: usize = 256;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The Lua that creates the stream with a fresh epoch when it is missing (never created,
/// deleted, or lost with a restart) or has no epoch, leaving the epoch in `epoch`.
/// KEYS: stream, epoch key. ARGV[1]: a candidate epoch.
macro_rules! ensure_lua {
    () => {
        r"
local epoch = redis.call('GET', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 or not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
  redis.call('XADD', KEYS[1], '*', 'init', epoch)
end
"
    };
}

/// Ensures the stream; returns the epoch.
const ENSURE: &str = concat!(ensure_lua!(), "return epoch\n");

/// Ensures the stream, then appends the event (tagged with its epoch) with an approximate
/// `MAXLEN`. ARGV after the candidate epoch: maxlen, has name (0/1), name, has data, data.
const PUBLISH: &str = concat!(
    ensure_lua!(),
    r"
local fields = {'p', epoch}
if ARGV[3] == '1' then table.insert(fields, 'n'); table.insert(fields, ARGV[4]) end
if ARGV[5] == '1' then table.insert(fields, 'd'); table.insert(fields, ARGV[6]) end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
return {epoch, id}
"
);

/// A Redis stream entry id (`ms-seq`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Rid(u64, u64);

impl Rid {
    const ZERO: Rid = Rid(0, 0);

    /// The id just before this one.
    fn before(self) -> Rid {
        match self {
            Rid(0, 0) => Rid::ZERO,
            Rid(ms, 0) => Rid(ms - 1, u64::MAX),
            Rid(ms, seq) => Rid(ms, seq - 1),
        }
    }

    fn parse(s: &str) -> Option<Rid> {
        let (ms, seq) = s.split_once('-')?;
        Some(Rid(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl fmt::Display for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

fn cursor(epoch: &str, id: Rid) -> Cursor {
    Cursor::new(format!("{epoch}.{id}"))
}

/// `op`, failing with [`ErrorKind::TimedOut`] after `timeout`.
async fn within<T, E>(
    timeout: Duration,
    op: impl Future<Output = Result<T, E>>,
) -> Result<T, RedisHubError>
where
    RedisHubError: From<E>,
{
    match tokio::time::timeout(timeout, op).await {
        Ok(result) => result.map_err(RedisHubError::from),
        Err(_) => Err(RedisHubError {
            kind: ErrorKind::TimedOut(timeout),
        }),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What [`RedisHub`] operations fail with: Redis could not be reached in time, or answered
/// an error.
#[derive(Debug)]
pub struct RedisHubError {
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Redis(redis::RedisError),
    /// No answer within the hub's timeout.
    TimedOut(Duration),
    /// Redis is known to be unreachable (the last operation failed).
    Down,
}

impl RedisHubError {
    /// Whether Redis could not be reached (no connection, no answer in time, or known to be
    /// down): worth a `503` with `Retry-After` rather than a `500`.
    pub fn is_unavailable(&self) -> bool {
        match &self.kind {
            ErrorKind::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
            }
            ErrorKind::TimedOut(_) | ErrorKind::Down => true,
        }
    }
}

impl fmt::Display for RedisHubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Redis(e) => write!(f, "redis hub: {e}"),
            ErrorKind::TimedOut(after) => {
                write!(f, "redis hub: Redis did not answer within {after:?}")
            }
            ErrorKind::Down => f.write_str("redis hub: Redis is unreachable; retry later"),
        }
    }
}

impl std::error::Error for RedisHubError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Redis(e) => Some(e),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for RedisHubError {
    fn from(inner: redis::RedisError) -> Self {
        Self {
            kind: ErrorKind::Redis(inner),
        }
    }
}

/// A [`Hub`] on Redis Streams, for several processes: any instance serves any client, resume
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
/// Cursors look like `9f3a0c1d2e4b5a67.1700000000000-0` (epoch, stream id). Events keep their
/// name and data; `retry` and comments are not stored.
///
/// Keys: `<prefix>:<topic>` (the stream) and `<prefix>:<topic>:epoch`.
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
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    conn: ConnectionManager,
    prefix: String,
    maxlen: usize,
    buffer: usize,
    block: Duration,
    /// How long one operation may wait on Redis.
    timeout: Duration,
    /// Set when an operation found Redis unreachable, cleared by the next success.
    down: AtomicBool,
    readers: Mutex<HashMap<String, Arc<Reader>>>,
    ensure: Script,
    publish: Script,
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
    prefix: String,
    maxlen: usize,
    buffer: usize,
    block: Duration,
    timeout: Duration,
}

impl RedisHubBuilder {
    /// How long a publish, a replay, a ticket redemption or a connection attempt may wait on
    /// Redis before it fails with an error that [is
    /// unavailable](RedisHubError::is_unavailable). Default 1 s. While Redis is known to be
    /// down, [`Hub::available`] says so at once, so new subscriptions are refused with `503`
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
                timeout: self.timeout,
                down: AtomicBool::new(false),
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
            timeout: Duration::from_secs(1),
        }
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
    fn record(&self, error: Option<&RedisHubError>) {
        let down = error.is_some_and(RedisHubError::is_unavailable);
        if self.inner.down.swap(down, Ordering::Relaxed) != down {
            if down {
                tracing::warn!(prefix = %self.inner.prefix, "redis hub: Redis is unreachable");
            } else {
                tracing::info!(prefix = %self.inner.prefix, "redis hub: Redis answers again");
            }
        }
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

    fn keys(&self, topic: &str) -> (String, String) {
        let stream = format!("{}:{topic}", self.inner.prefix);
        let epoch = format!("{stream}:epoch");
        (stream, epoch)
    }

    /// The topic's reader, started if needed, and a registration with it.
    fn register(&self, topic: &str) -> (Arc<Reader>, broadcast::Receiver<Live>, Registered) {
        let mut readers = lock(&self.inner.readers);
        let reader = match readers.get(topic) {
            Some(reader) => reader.clone(),
            None => {
                let (stream, epoch_key) = self.keys(topic);
                let reader = Arc::new(Reader {
                    topic: topic.to_owned(),
                    stream,
                    epoch_key,
                    tx: broadcast::channel(self.inner.buffer).0,
                    position: watch::channel(None).0,
                });
                readers.insert(topic.to_owned(), reader.clone());
                tokio::spawn(run_reader(self.clone(), reader.clone()));
                reader
            }
        };
        // Under the reader's position lock: the receiver gets exactly the entries after the
        // position read here.
        let position = reader.position.borrow();
        let rx = reader.tx.subscribe();
        let registered = Registered {
            at: position.clone(),
            watch: reader.position.subscribe(),
        };
        drop(position);
        drop(readers);
        (reader, rx, registered)
    }
}

/// The reader's position when a subscription registered; `None` while the reader has not
/// started (then nothing was fanned out yet, and its first position is the registration point).
struct Registered {
    at: Option<Position>,
    watch: watch::Receiver<Option<Position>>,
}

/// Where a topic's reader is: the stream's epoch and the last id it has fanned out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    epoch: Arc<str>,
    last: Rid,
}

/// What a reader fans out.
#[derive(Debug, Clone)]
enum Live {
    Entry {
        id: Rid,
        event: Event,
    },
    /// The stream was lost and recreated: continue from `position`.
    Reset(Position),
}

struct Reader {
    topic: String,
    stream: String,
    epoch_key: String,
    tx: broadcast::Sender<Live>,
    /// `None` until the reader has found the stream's end; updated with each fan-out.
    position: watch::Sender<Option<Position>>,
}

impl Hub for RedisHub {
    type Subscription = RedisSubscription;
    type Error = RedisHubError;

    fn publish(
        &self,
        topic: &str,
        event: Event,
    ) -> impl Future<Output = Result<Cursor, RedisHubError>> + Send {
        let (stream, epoch_key) = self.keys(topic);
        let hub = self.clone();
        async move {
            let mut conn = hub.inner.conn.clone();
            let mut invocation = hub.inner.publish.key(stream);
            invocation
                .key(epoch_key)
                .arg(new_epoch())
                .arg(hub.inner.maxlen)
                .arg(u8::from(event.get_event().is_some()))
                .arg(event.get_event().unwrap_or(""))
                .arg(u8::from(event.get_data().is_some()))
                .arg(event.get_data().unwrap_or(""));
            let (epoch, id): (String, String) = hub.op(invocation.invoke_async(&mut conn)).await?;
            let id = Rid::parse(&id).ok_or_else(|| {
                redis::RedisError::from((redis::ErrorKind::Parse, "XADD returned an unexpected id"))
            })?;
            Ok(cursor(&epoch, id))
        }
    }

    fn available(&self) -> Result<(), RedisHubError> {
        if self.inner.down.load(Ordering::Relaxed) {
            Err(RedisHubError {
                kind: ErrorKind::Down,
            })
        } else {
            Ok(())
        }
    }

    fn subscribe(&self, topic: &str, from: Option<&str>) -> RedisSubscription {
        let (reader, rx, registered) = self.register(topic);
        let start = Box::pin(start(
            self.clone(),
            reader.clone(),
            registered,
            from.map(str::to_owned),
            Phase::Subscribe,
        ));
        RedisSubscription {
            start: Some(start),
            pending: VecDeque::new(),
            rx: LiveReceiver::new(rx),
            last: Rid::ZERO,
            epoch: Arc::from(""),
            hub: self.clone(),
            reader,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Subscribe,
    CatchUp,
}

/// The beginning of a subscription (or a catch-up after lagging): what to deliver first, and
/// from which id live entries count.
struct Start {
    items: VecDeque<Event>,
    epoch: Arc<str>,
    last: Rid,
}

type StartFuture = Pin<Box<dyn Future<Output = Start> + Send>>;

async fn start(
    hub: RedisHub,
    reader: Arc<Reader>,
    registered: Registered,
    from: Option<String>,
    phase: Phase,
) -> Start {
    // Entries up to `here` are replayed (or were published before the subscription), entries
    // after it arrive live.
    let here = match registered.at {
        Some(at) => at,
        None => {
            let mut watch = registered.watch;
            loop {
                if let Some(p) = watch.borrow_and_update().clone() {
                    break p;
                }
                if watch.changed().await.is_err() {
                    // The reader is gone: nothing will ever arrive.
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        // Each command is bounded by the connection's response timeout (the hub's timeout);
        // the replay as a whole is not, as a long one is legitimate.
        let result = try_start(&hub, &reader, &here, from.as_deref(), phase)
            .await
            .map_err(RedisHubError::from);
        hub.record(result.as_ref().err());
        match result {
            Ok(start) => return start,
            Err(error) => {
                tracing::debug!(%error, topic = %reader.topic, "redis hub: replay failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn try_start(
    hub: &RedisHub,
    reader: &Reader,
    here: &Position,
    from: Option<&str>,
    phase: Phase,
) -> Result<Start, redis::RedisError> {
    let reset = |reason| Start {
        items: VecDeque::from([reset_event(reason, &cursor(&here.epoch, here.last))]),
        epoch: here.epoch.clone(),
        last: here.last,
    };
    let Some(from) = from else {
        return Ok(Start {
            items: VecDeque::from([position_event(&cursor(&here.epoch, here.last))]),
            epoch: here.epoch.clone(),
            last: here.last,
        });
    };
    let Some((epoch, id)) = from
        .split_once('.')
        .and_then(|(e, id)| Some((e, Rid::parse(id)?)))
    else {
        return Ok(reset(ResetReason::Invalid));
    };
    if epoch != &*here.epoch {
        let well_formed = epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_hexdigit());
        return Ok(reset(if well_formed {
            ResetReason::UnknownEpoch
        } else {
            ResetReason::Invalid
        }));
    }
    let mut conn = hub.inner.conn.clone();
    if history_lost_after(&mut conn, &reader.stream, id).await? {
        return Ok(reset(ResetReason::Expired));
    }
    let mut items = VecDeque::new();
    if phase == Phase::Subscribe {
        items.push_back(position_event(&cursor(epoch, id)));
    }
    // Replay (id, here.last] in pages.
    let mut after = id;
    while after < here.last {
        let page: Value = redis::cmd("XRANGE")
            .arg(&reader.stream)
            .arg(format!("({after}"))
            .arg(here.last.to_string())
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await?;
        let entries = parse_entries(page);
        if entries.is_empty() {
            break;
        }
        for (rid, fields) in entries {
            after = rid;
            if let Some(event) = to_event(&here.epoch, rid, &fields, &mut None) {
                items.push_back(event);
            }
        }
    }
    Ok(Start {
        items,
        epoch: here.epoch.clone(),
        last: here.last.max(id),
    })
}

/// Whether entries after `id` may have been removed, from `XINFO STREAM`: an entry newer
/// than `id` was deleted (`max-deleted-entry-id`, set by `XDEL`), or the oldest kept entry is
/// newer than `id` and is not the stream's creation marker (trimming removed the front).
/// Conservative: a cursor exactly at the trim boundary is reset too, never a silent gap.
async fn history_lost_after(
    conn: &mut ConnectionManager,
    stream: &str,
    id: Rid,
) -> Result<bool, redis::RedisError> {
    let info: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await?;
    let pairs: Vec<(Value, Value)> = match info {
        Value::Map(pairs) => pairs,
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        _ => Vec::new(),
    };
    for (k, v) in pairs {
        match as_str(&k).as_deref() {
            Some("max-deleted-entry-id")
                if as_str(&v)
                    .and_then(|s| Rid::parse(&s))
                    .is_some_and(|deleted| deleted > id) =>
            {
                return Ok(true);
            }
            Some("first-entry") => {
                if let Some((first, fields)) = parse_entries(Value::Array(vec![v])).pop() {
                    if first > id && !fields.contains_key("init") {
                        return Ok(true);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(false)
}

fn as_str(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Entries of an `XRANGE` reply (or of one stream of an `XREAD` reply).
fn parse_entries(v: Value) -> Vec<(Rid, HashMap<String, String>)> {
    let Value::Array(entries) = v else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(mut parts) = entry else {
                return None;
            };
            if parts.len() != 2 {
                return None;
            }
            let fields = parts.pop()?;
            let id = Rid::parse(&as_str(&parts.pop()?)?)?;
            let Value::Array(flat) = fields else {
                return None;
            };
            let mut map = HashMap::new();
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                map.insert(as_str(&k)?, as_str(&v)?);
            }
            Some((id, map))
        })
        .collect()
}

/// Entries of an `XREAD` reply for one stream.
fn parse_xread(v: Value) -> Vec<(Rid, HashMap<String, String>)> {
    match v {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => {
                    parse_entries(kv.pop().unwrap_or(Value::Nil))
                }
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, v)| parse_entries(v))
            .collect(),
        _ => Vec::new(),
    }
}

/// The event of an entry, or `None` for a marker. `epoch_seen` collects an entry's epoch
/// when it differs from `epoch` (the stream was recreated).
fn to_event(
    epoch: &str,
    id: Rid,
    fields: &HashMap<String, String>,
    epoch_seen: &mut Option<String>,
) -> Option<Event> {
    let entry_epoch = fields.get("p").or_else(|| fields.get("init"))?;
    if entry_epoch != epoch {
        *epoch_seen = Some(entry_epoch.clone());
        return None;
    }
    if fields.contains_key("init") {
        return None;
    }
    let mut event = Event::new();
    if let Some(data) = fields.get("d") {
        event = event.data(data.as_str());
    }
    if let Some(name) = fields.get("n") {
        // A name written by another producer may not be valid SSE: drop it rather than fail.
        event = event.clone().event(name.as_str()).unwrap_or(event);
    }
    event.id(cursor(epoch, id).as_str()).ok()
}

async fn reader_connection(hub: &RedisHub) -> Result<MultiplexedConnection, redis::RedisError> {
    // Blocking reads hold the connection: a dedicated one per topic reader, with a response
    // timeout above the block time so a vanished server is noticed.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(hub.inner.timeout))
        .set_response_timeout(Some(hub.inner.block + Duration::from_secs(3)));
    hub.inner
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// The topic's one reader in this process: blocking `XREAD`s, fanned out locally.
async fn run_reader(hub: RedisHub, reader: Arc<Reader>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match read_until_error(&hub, &reader).await {
            Ok(()) => return, // idle: stopped
            Err(error) => {
                hub.record(Some(&RedisHubError::from(error.clone())));
                tracing::debug!(%error, topic = %reader.topic, ?backoff, "redis hub: reader reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn read_until_error(hub: &RedisHub, reader: &Arc<Reader>) -> Result<(), redis::RedisError> {
    let mut conn = reader_connection(hub).await?;
    let epoch: String = hub
        .inner
        .ensure
        .key(&reader.stream)
        .key(&reader.epoch_key)
        .arg(new_epoch())
        .invoke_async(&mut conn)
        .await?;
    hub.record(None);
    let current = reader.position.borrow().clone();
    match current {
        // First start: live entries begin after the stream's current end.
        None => {
            let last = stream_end(&mut conn, &reader.stream).await?;
            reader.position.send_replace(Some(Position {
                epoch: epoch.into(),
                last,
            }));
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
        }
        // Reconnected to the same stream: resume from the last id fanned out.
        Some(_) => {}
    }
    loop {
        if stop_if_idle(hub, reader) {
            return Ok(());
        }
        let Some(position) = reader.position.borrow().clone() else {
            return Ok(());
        };
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(hub.inner.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&reader.stream)
            .arg(position.last.to_string())
            .query_async(&mut conn)
            .await?;
        let entries = parse_xread(reply);
        if entries.is_empty() {
            // Idle: check that the stream still exists under the same epoch.
            let epoch: Option<String> = redis::cmd("GET")
                .arg(&reader.epoch_key)
                .query_async(&mut conn)
                .await?;
            let exists: bool = redis::cmd("EXISTS")
                .arg(&reader.stream)
                .query_async(&mut conn)
                .await?;
            if !exists || epoch.as_deref() != Some(&*position.epoch) {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "stream lost; restarting the reader",
                )));
            }
            continue;
        }
        let mut new_epoch_seen = None;
        for (id, fields) in entries {
            let event = to_event(&position.epoch, id, &fields, &mut new_epoch_seen);
            if let Some(epoch) = new_epoch_seen.take() {
                // Recreated under our feet: reset subscribers just before this entry, which
                // the next read returns again.
                fan_out_reset(
                    reader,
                    Position {
                        epoch: epoch.into(),
                        last: id.before(),
                    },
                );
                break;
            }
            fan_out(reader, id, event);
        }
    }
}

/// The id of the stream's last entry (`0-0` when empty).
async fn stream_end(
    conn: &mut MultiplexedConnection,
    stream: &str,
) -> Result<Rid, redis::RedisError> {
    let last: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(parse_entries(last).first().map_or(Rid::ZERO, |(id, _)| *id))
}

/// Advances the position past `id` and, for an event, hands it to the local subscribers.
fn fan_out(reader: &Reader, id: Rid, event: Option<Event>) {
    reader.position.send_modify(|p| {
        if let Some(p) = p {
            p.last = id;
        }
        // Sent while the position is held: a subscriber registering now sees either this
        // position (and not the entry) or the old one (and the entry).
        if let Some(event) = event {
            let _ = reader.tx.send(Live::Entry { id, event });
        }
    });
}

fn fan_out_reset(reader: &Reader, position: Position) {
    reader.position.send_modify(|p| {
        *p = Some(position.clone());
        let _ = reader.tx.send(Live::Reset(position));
    });
}

/// Stops the reader when no subscriber is left (under the hub's readers lock, so a
/// concurrent subscribe either finds it running or starts a new one).
fn stop_if_idle(hub: &RedisHub, reader: &Arc<Reader>) -> bool {
    let mut readers = lock(&hub.inner.readers);
    if reader.tx.receiver_count() > 0 {
        return false;
    }
    if readers
        .get(&reader.topic)
        .is_some_and(|r| Arc::ptr_eq(r, reader))
    {
        readers.remove(&reader.topic);
    }
    true
}

/// The subscription stream of a [`RedisHub`]. See the [module docs](crate::hub).
#[must_use = "streams do nothing unless polled"]
pub struct RedisSubscription {
    /// Replay (or catch-up) in progress.
    start: Option<StartFuture>,
    pending: VecDeque<Event>,
    rx: LiveReceiver<Live>,
    /// Live entries up to here were delivered (or replayed).
    last: Rid,
    epoch: Arc<str>,
    hub: RedisHub,
    reader: Arc<Reader>,
}

impl fmt::Debug for RedisSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSubscription")
            .field("topic", &self.reader.topic)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Stream for RedisSubscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        loop {
            if let Some(start) = &mut this.start {
                let Start { items, epoch, last } = ready!(start.as_mut().poll(cx));
                this.start = None;
                this.pending.extend(items);
                this.epoch = epoch;
                this.last = this.last.max(last);
            }
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(event));
            }
            match ready!(this.rx.poll_recv(cx)) {
                Ok(Live::Entry { id, event }) => {
                    if id > this.last {
                        this.last = id;
                        return Poll::Ready(Some(event));
                    }
                }
                Ok(Live::Reset(position)) => {
                    this.epoch = position.epoch.clone();
                    this.last = position.last;
                    let current = cursor(&position.epoch, position.last);
                    return Poll::Ready(Some(reset_event(ResetReason::Expired, &current)));
                }
                Err(RecvError::Lagged(_)) => {
                    // Fell behind the local buffer: catch up from Redis.
                    let from = cursor(&this.epoch, this.last).to_string();
                    let registered = Registered {
                        at: this.reader.position.borrow().clone(),
                        watch: this.reader.position.subscribe(),
                    };
                    this.start = Some(Box::pin(start(
                        this.hub.clone(),
                        this.reader.clone(),
                        registered,
                        Some(from),
                        Phase::CatchUp,
                    )));
                }
                Err(RecvError::Closed) => return Poll::Ready(None),
            }
        }
    }
}
