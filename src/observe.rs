//! What tower-push tells operators: a `tracing` span per push connection, and metrics through
//! the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! # Tracing
//!
//! Every push connection (an SSE response, a WebSocket, one long-poll) gets a span named
//! `push_connection` with the fields `transport` (`sse`, `websocket`, `long-poll`),
//! `http_version` (`1.1`, `2`, ...),
//! `principal` (from a [`Principal`] in the request's extensions, when there is one) and
//! `topic` (recorded by [`Hub::subscribe`](crate::hub::Hub::subscribe)). Tickets never appear:
//! the ticket layer removes them before the transport sees the request. The span is entered
//! wherever the connection's work runs (the response body, the WebSocket task), so your own
//! events inside the stream carry it too.
//!
//! Two `INFO` events per connection, nothing per event at `INFO`:
//!
//! * `push connection opened`;
//! * `push connection closed`, with `reason` (see below), `events`, `bytes` and
//!   `duration_ms`.
//!
//! Close reasons: `client_gone` (the client closed or vanished, or its connection was cut),
//! `stream_ended`, `drain` (shutdown), `error` (the stream failed), `pong_timeout`,
//! `write_stalled`, `message_too_big`, `protocol_error` (WebSocket), and for long-poll
//! `answered` (events) and `timeout` (held until the timeout).
//!
//! `DEBUG` events: resets (with their reason), lagged subscribers catching up, refusals.
//!
//! # Metrics
//!
//! With the `metrics` feature, tower-push records these through the `metrics` facade; install
//! any recorder (for example `metrics-exporter-prometheus`) and they appear. Without a
//! recorder the calls do nothing. Labels stay low-cardinality: no topic or user.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `tower_push_connections` | gauge | `transport` | open push connections |
//! | `tower_push_requests_total` | counter | `transport`, `http_version` | push requests that reached a transport (`http_version`: `1.0`, `1.1`, `2`, `3`): how many streams ride HTTP/2, WebSockets over RFC 8441 included |
//! | `tower_push_connections_opened_total` | counter | `transport` | connections opened |
//! | `tower_push_connections_closed_total` | counter | `transport`, `reason` | connections closed, by close reason |
//! | `tower_push_connection_duration_seconds` | histogram | `transport` | how long connections lived |
//! | `tower_push_events_delivered_total` | counter | `transport` | events written to clients |
//! | `tower_push_bytes_written_total` | counter | `transport` | payload bytes written (events, heartbeats, long-poll bodies) |
//! | `tower_push_publish_to_write_seconds` | histogram | `transport` | from the hub's publish (or, for Redis, its arrival in this process) to the write |
//! | `tower_push_resets_total` | counter | `reason` | `reset` events: `invalid`, `unknown-epoch`, `expired` |
//! | `tower_push_lagged_catchups_total` | counter | | subscribers that fell behind the live buffer and caught up from history |
//! | `tower_push_refusals_total` | counter | `status`, `cause` | requests refused before a stream: `ticket`, `origin`, `limit`, `drain`, `handshake`, `cursor`, `method`, `accept`, `backbone`, `inner` |
//! | `tower_push_pong_timeouts_total` | counter | | WebSockets dropped for a missing pong |
//! | `tower_push_write_stalls_total` | counter | | connections cut for making no write progress |
//! | `tower_push_events_published_total` | counter | `backbone` | events published (`memory`, `redis`) |
//! | `tower_push_backbone_reconnects_total` | counter | `backbone` | backbone reader reconnections |
//! | `tower_push_subscriptions_stalled_total` | counter | `backbone` | subscriptions ended because the backbone could not start them in time (the client resumes) |
//! | `tower_push_topics_refused_total` | counter | `backbone` | publishes to a new topic refused at the hub's topic limit ([`MemoryHubBuilder::max_topics`](crate::hub::MemoryHubBuilder::max_topics)) |
//! | `tower_push_history_evicted_total` | counter | `backbone` | events evicted, oldest first, to keep a hub's history within its byte budget ([`MemoryHubBuilder::max_history_bytes`](crate::hub::MemoryHubBuilder::max_history_bytes)) |
//!
//! Each connection counts its deliveries and bytes itself and adds them to the shared
//! counters every 16 events and when it closes (so a busy server does not contend on one
//! atomic per delivery); the publish-to-write histogram samples one delivery in 8 per
//! connection, the first included.
//!
//! Call [`describe`] once after installing the recorder to give each its help text and unit.
//!
//! [`Principal`]: crate::principal::Principal

#[cfg(transport)]
use crate::reason::CloseReason;
use crate::reason::Refusal;
#[cfg(transport)]
use crate::{event::Event, principal::Principal};
#[cfg(transport)]
use std::time::{Duration, Instant};
use tracing::Span;

/// Gauge: open push connections, by `transport`.
pub const CONNECTIONS: &str = "tower_push_connections";
/// Counter: push requests that reached a transport, by `transport` and `http_version`.
pub const REQUESTS: &str = "tower_push_requests_total";
/// Counter: connections opened, by `transport`.
pub const CONNECTIONS_OPENED: &str = "tower_push_connections_opened_total";
/// Counter: connections closed, by `transport` and `reason`.
pub const CONNECTIONS_CLOSED: &str = "tower_push_connections_closed_total";
/// Histogram: connection lifetime in seconds, by `transport`.
pub const CONNECTION_DURATION: &str = "tower_push_connection_duration_seconds";
/// Counter: events written to clients, by `transport`.
pub const EVENTS_DELIVERED: &str = "tower_push_events_delivered_total";
/// Counter: payload bytes written, by `transport`.
pub const BYTES_WRITTEN: &str = "tower_push_bytes_written_total";
/// Histogram: seconds from publish to write, by `transport`.
pub const PUBLISH_TO_WRITE: &str = "tower_push_publish_to_write_seconds";
/// Counter: `reset` events, by `reason`.
pub const RESETS: &str = "tower_push_resets_total";
/// Counter: lagged subscribers that caught up from history.
pub const LAGGED_CATCHUPS: &str = "tower_push_lagged_catchups_total";
/// Counter: refusals, by `status` and `cause`.
pub const REFUSALS: &str = "tower_push_refusals_total";
/// Counter: WebSockets dropped for a missing pong.
pub const PONG_TIMEOUTS: &str = "tower_push_pong_timeouts_total";
/// Counter: connections cut because their writes made no progress.
pub const WRITE_STALLS: &str = "tower_push_write_stalls_total";
/// Counter: events published, by `backbone`.
pub const EVENTS_PUBLISHED: &str = "tower_push_events_published_total";
/// Counter: backbone reader reconnections, by `backbone`.
pub const BACKBONE_RECONNECTS: &str = "tower_push_backbone_reconnects_total";
/// Counter: subscriptions ended because the backbone could not start them in time, by
/// `backbone`.
pub const SUBSCRIPTIONS_STALLED: &str = "tower_push_subscriptions_stalled_total";
/// Counter: publishes to a new topic refused at the hub's topic limit, by `backbone`.
pub const TOPICS_REFUSED: &str = "tower_push_topics_refused_total";

/// Counter: events evicted from a hub's history to keep it within its byte budget, by
/// `backbone`.
pub const HISTORY_EVICTED: &str = "tower_push_history_evicted_total";

/// Gives every metric its help text and unit in the installed recorder (feature `metrics`;
/// without it, does nothing).
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
        describe_gauge!(CONNECTIONS, "Open push connections.");
        describe_counter!(
            REQUESTS,
            "Push requests that reached a transport, by HTTP version."
        );
        describe_counter!(CONNECTIONS_OPENED, "Push connections opened.");
        describe_counter!(CONNECTIONS_CLOSED, "Push connections closed, by reason.");
        describe_histogram!(
            CONNECTION_DURATION,
            Unit::Seconds,
            "How long push connections lived."
        );
        describe_counter!(EVENTS_DELIVERED, "Events written to clients.");
        describe_counter!(
            BYTES_WRITTEN,
            Unit::Bytes,
            "Payload bytes written to clients."
        );
        describe_histogram!(
            PUBLISH_TO_WRITE,
            Unit::Seconds,
            "From the hub's publish to the transport's write."
        );
        describe_counter!(RESETS, "Reset events sent, by reason.");
        describe_counter!(
            LAGGED_CATCHUPS,
            "Lagged subscribers that caught up from history."
        );
        describe_counter!(
            REFUSALS,
            "Requests refused before a stream, by status and cause."
        );
        describe_counter!(PONG_TIMEOUTS, "WebSockets dropped for a missing pong.");
        describe_counter!(
            WRITE_STALLS,
            "Connections cut for making no write progress."
        );
        describe_counter!(EVENTS_PUBLISHED, "Events published, by backbone.");
        describe_counter!(BACKBONE_RECONNECTS, "Backbone reader reconnections.");
        describe_counter!(
            SUBSCRIPTIONS_STALLED,
            "Subscriptions ended because the backbone could not start them in time."
        );
        describe_counter!(
            TOPICS_REFUSED,
            "Publishes to a new topic refused at the hub's topic limit."
        );
        describe_counter!(
            HISTORY_EVICTED,
            "Events evicted from history to keep it within the hub's byte budget."
        );
    }
}

/// The span of a push connection about to be served. See the [module docs](self).
#[cfg(transport)]
pub(crate) fn connection_span<B>(transport: &'static str, req: &http::Request<B>) -> Span {
    let http_version = match req.version() {
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    };
    #[cfg(feature = "metrics")]
    metrics::counter!(REQUESTS, "transport" => transport, "http_version" => http_version)
        .increment(1);
    // No subscriber takes info now: the span would be disabled, so skip making it (the
    // global level is one atomic load; making a disabled span looks up its callsite).
    if !tracing::level_enabled!(tracing::Level::INFO) {
        return Span::none();
    }
    let span = tracing::info_span!(
        "push_connection",
        transport,
        http_version,
        principal = tracing::field::Empty,
        topic = tracing::field::Empty
    );
    // No subscriber wants it: `Span::none()` costs nothing to enter, where a disabled span
    // still goes through `tracing`'s `log` fallback on every enter and exit when some
    // dependency turns that feature on (about 300 instructions per long poll).
    if span.is_disabled() {
        return Span::none();
    }
    // Looked up only for a span someone records.
    if let Some(principal) = req.extensions().get::<Principal>() {
        span.record("principal", principal.as_str());
    }
    span
}

/// Records `topic` in the current connection span (if any).
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
pub(crate) fn record_topic(topic: &str) {
    // Connection spans are info spans: none exists below that level.
    if tracing::level_enabled!(tracing::Level::INFO) {
        Span::current().record("topic", topic);
    }
}

/// An open push connection: counts what it delivers, and reports its close when dropped.
#[cfg(transport)]
pub(crate) struct Connection {
    span: Span,
    transport: &'static str,
    /// When it opened; read only for the close's log line and duration metric, so not at
    /// all when neither is wanted (a clock read per poll otherwise).
    opened: Option<Instant>,
    events: u64,
    bytes: u64,
    reason: CloseReason,
    #[cfg(feature = "metrics")]
    handles: Handles,
    /// Counted here, added to the shared counters every [`FLUSH_EVERY`] events and at close:
    /// one shared atomic add per delivery on every connection would contend across cores.
    #[cfg(feature = "metrics")]
    unflushed: (u64, u64),
}

/// Deliveries counted per connection before they are added to the shared counters.
#[cfg(all(feature = "metrics", transport))]
const FLUSH_EVERY: u64 = 16;
/// One delivery in this many (per connection, the first included) records its
/// publish-to-write delay.
#[cfg(all(feature = "metrics", transport))]
const SAMPLE_EVERY: u64 = 8;

#[cfg(transport)]
#[cfg(feature = "metrics")]
struct Handles {
    delivered: metrics::Counter,
    bytes: metrics::Counter,
    delay: metrics::Histogram,
}

#[cfg(transport)]
impl Connection {
    /// Opens the connection in `span` (from [`connection_span`]).
    pub(crate) fn open(span: Span, transport: &'static str) -> Self {
        span.in_scope(|| tracing::info!("push connection opened"));
        #[cfg(feature = "metrics")]
        let handles = {
            metrics::gauge!(CONNECTIONS, "transport" => transport).increment(1.0);
            metrics::counter!(CONNECTIONS_OPENED, "transport" => transport).increment(1);
            Handles {
                delivered: metrics::counter!(EVENTS_DELIVERED, "transport" => transport),
                bytes: metrics::counter!(BYTES_WRITTEN, "transport" => transport),
                delay: metrics::histogram!(PUBLISH_TO_WRITE, "transport" => transport),
            }
        };
        Self {
            span,
            transport,
            opened: (cfg!(feature = "metrics") || tracing::level_enabled!(tracing::Level::INFO))
                .then(Instant::now),
            events: 0,
            bytes: 0,
            reason: CloseReason::ClientGone,
            #[cfg(feature = "metrics")]
            handles,
            #[cfg(feature = "metrics")]
            unflushed: (0, 0),
        }
    }

    /// The connection's span.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// An event was handed to the connection's writer as `bytes` bytes. A cursor-only event
    /// (the position a subscription starts with) counts as bytes, not as an event.
    #[inline]
    pub(crate) fn delivered(&mut self, event: &Event, bytes: usize) {
        if event.is_cursor_only() {
            self.wrote(bytes);
            return;
        }
        self.events += 1;
        self.bytes += bytes as u64;
        #[cfg(feature = "metrics")]
        {
            if self.events % SAMPLE_EVERY == 1 {
                if let Some(at) = event.published_at() {
                    self.handles.delay.record(at.elapsed().as_secs_f64());
                }
            }
            self.unflushed.0 += 1;
            self.unflushed.1 += bytes as u64;
            if self.unflushed.0 >= FLUSH_EVERY {
                self.flush();
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = event;
    }

    /// Adds what this connection counted to the shared counters.
    #[cfg(feature = "metrics")]
    fn flush(&mut self) {
        let (events, bytes) = std::mem::take(&mut self.unflushed);
        if events > 0 {
            self.handles.delivered.increment(events);
        }
        if bytes > 0 {
            self.handles.bytes.increment(bytes);
        }
    }

    /// Other payload (a heartbeat, a long-poll body's framing) was written.
    #[inline]
    pub(crate) fn wrote(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        #[cfg(feature = "metrics")]
        {
            self.unflushed.1 += bytes as u64;
        }
    }

    /// Why the connection will close (the last call wins; default `client_gone`).
    pub(crate) fn close_reason(&mut self, reason: CloseReason) {
        self.reason = reason;
    }
}

#[cfg(transport)]
impl Drop for Connection {
    fn drop(&mut self) {
        let duration = self
            .opened
            .map_or(Duration::ZERO, |opened| opened.elapsed());
        self.span.in_scope(|| {
            tracing::info!(
                reason = self.reason.as_str(),
                events = self.events,
                bytes = self.bytes,
                duration_ms = duration.as_millis() as u64,
                "push connection closed"
            );
        });
        #[cfg(feature = "metrics")]
        {
            // Everything about the connection first, the gauge last: whoever sees the gauge
            // fall sees the connection's counts and its close.
            self.flush();
            let transport = self.transport;
            metrics::counter!(CONNECTIONS_CLOSED, "transport" => transport, "reason" => self.reason.as_str())
                .increment(1);
            metrics::histogram!(CONNECTION_DURATION, "transport" => transport)
                .record(duration.as_secs_f64());
            metrics::gauge!(CONNECTIONS, "transport" => transport).decrement(1.0);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = self.transport;
    }
}

#[cfg(transport)]
impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("transport", &self.transport)
            .field("events", &self.events)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// A request refused with `status` before any stream, because of `cause`.
pub(crate) fn refused(status: http::StatusCode, cause: Refusal) {
    let cause = cause.as_str();
    tracing::debug!(status = status.as_u16(), cause, "push request refused");
    #[cfg(feature = "metrics")]
    metrics::counter!(REFUSALS, "status" => status.as_str().to_owned(), "cause" => cause)
        .increment(1);
}

/// A `reset` event was sent, for `reason`.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
pub(crate) fn reset(reason: &'static str) {
    tracing::debug!(reason, "cursor reset");
    #[cfg(feature = "metrics")]
    metrics::counter!(RESETS, "reason" => reason).increment(1);
}

/// A subscriber fell behind the live buffer and catches up from history.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
pub(crate) fn lagged() {
    tracing::debug!("subscriber lagged; catching up from history");
    #[cfg(feature = "metrics")]
    metrics::counter!(LAGGED_CATCHUPS).increment(1);
}

/// A WebSocket was dropped for a missing pong.
#[cfg_attr(not(feature = "ws"), allow(dead_code))]
pub(crate) fn pong_timeout() {
    #[cfg(feature = "metrics")]
    metrics::counter!(PONG_TIMEOUTS).increment(1);
}

/// A connection was cut for making no write progress.
#[cfg_attr(not(feature = "connection"), allow(dead_code))]
pub(crate) fn write_stalled() {
    #[cfg(feature = "metrics")]
    metrics::counter!(WRITE_STALLS).increment(1);
}

/// An event was published on `backbone`.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
pub(crate) fn published(backbone: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(EVENTS_PUBLISHED, "backbone" => backbone).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = backbone;
}

/// A publish to a new topic was refused: the hub holds its most topics.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
pub(crate) fn topic_refused(backbone: &'static str) {
    tracing::debug!(backbone, "publish to a new topic refused: topic limit");
    #[cfg(feature = "metrics")]
    metrics::counter!(TOPICS_REFUSED, "backbone" => backbone).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = backbone;
}

/// `evicted` events left a hub's history for its byte budget.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
pub(crate) fn history_evicted(backbone: &'static str, evicted: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!(HISTORY_EVICTED, "backbone" => backbone).increment(evicted);
    #[cfg(not(feature = "metrics"))]
    let _ = (backbone, evicted);
}

/// A subscription ended because its backbone could not start it in time.
#[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
pub(crate) fn subscription_stalled(backbone: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(SUBSCRIPTIONS_STALLED, "backbone" => backbone).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = backbone;
}

/// A backbone reader reconnects.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn backbone_reconnect(backbone: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(BACKBONE_RECONNECTS, "backbone" => backbone).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = backbone;
}
