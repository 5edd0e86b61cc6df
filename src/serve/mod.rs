//! The hardened serving recipe: a hyper server for push routes whose every wait has a
//! deadline, and whose shutdown always finishes.
//!
//! A push server's connections live for hours, so the server around the routes matters as
//! much as the routes. [`Server`] is hyper's HTTP/1.1 server with WebSocket upgrades, and with
//! the `http2` feature (which `tls` turns on) its HTTP/1.1 + HTTP/2 server (RFC 8441 extended
//! CONNECT enabled; [`http1_only`](Server::http1_only) for about half the memory per
//! connection), with these settings:
//!
//! | wait | deadline or limit | default |
//! |---|---|---|
//! | a new connection sending its first request head (HTTP/1.1, or the HTTP/2 preface and a first request; counted from accept, so a silent socket is closed too) | [`header_read_timeout`](Server::header_read_timeout) | 10 s, then the connection is closed |
//! | a client sending a later request head (HTTP/1.1 keep-alive) | [`header_read_timeout`](Server::header_read_timeout) | 10 s, then the connection is closed |
//! | an HTTP/2 connection with no open stream | [`idle_timeout`](Server::idle_timeout) | 60 s (checked once per period: closed within 60 to 120 s) |
//! | request head size | [`max_headers`](Server::max_headers), [`max_header_bytes`](Server::max_header_bytes) | 64 headers, 16 KiB (`431` / connection closed) |
//! | a client that stops reading | [`stall_timeout`](Server::stall_timeout) ([`GuardedIo`](crate::connection::GuardedIo)) | 30 s without write progress |
//! | an HTTP/2 stream its client stops reading (its window spent; the connection's other streams go on) | [`stall_timeout`](Server::stall_timeout), per stream | 30 s with a frame waiting for the window, then the stream is reset (`CANCEL`) |
//! | the TLS handshake (feature `tls`) | counted in the first-request deadline | 10 s from accept |
//! | streams on one HTTP/2 connection | [`max_concurrent_streams`](Server::max_concurrent_streams) | 100 (browsers queue past it; other clients get `REFUSED_STREAM`) |
//! | unsent bytes held per HTTP/2 stream | | 64 KiB (what a stalled stream costs until its reset) |
//! | HTTP/2 receive windows | | 256 KiB per stream, 1 MiB per connection |
//! | a dead HTTP/2 peer | HTTP/2 PING every 20 s, 20 s to answer | |
//! | shutdown | [`grace`](Server::grace), then connections closed by force, then the drain's [close timeout](crate::drain::Drain::close_timeout) | 10 s + 1 s |
//!
//! Every HTTP/1.x request head is checked before it reaches the service: exactly one `Host`
//! header (HTTP/1.1, RFC 9112 section 3.2; at most one in HTTP/1.0) and `chunked` at most
//! once in `Transfer-Encoding`. Anything else is answered `400 Bad Request` and the
//! connection is closed.
//!
//! Connections that have not sent a request head yet are not capped in number beyond the
//! process's open-file limit; the first-request deadline bounds how long each holds a file.
//! Put a connection-count limit in front (a load balancer, or the kernel's `somaxconn` and
//! the listener's backlog) if a flood of silent sockets within that deadline is a concern.
//!
//! Request *bodies* are the business of the routes that take them: put tower-http's
//! `TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, ..)` and
//! `RequestBodyLimitLayer` (or your framework's body limit) on them, as `examples/chat/main.rs`
//! does. Push routes take no body, and a timeout around them would cut their streams.
//!
//! # HTTPS and HTTP/2 to browsers
//!
//! Browsers speak HTTP/2 only over TLS, and over HTTP/1.1 they hold at most six connections
//! per origin: a seventh tab's event stream waits. With the `tls` feature,
//! [`Server::tls`] serves HTTPS with ALPN `h2` and `http/1.1` ([`Tls`] reads a PEM chain and
//! key, and [`Tls::reload`] swaps them without a restart): every event stream of the page is a
//! stream of one connection, WebSockets ride it too (RFC 8441 extended CONNECT, which
//! [`extended_connect`](Server::extended_connect) turns off), and long-polls share it. The
//! deadlines, limits, drain and stall policy above apply alike; at shutdown an HTTP/2
//! connection gets `GOAWAY`, its SSE streams end (the browser reconnects), its WebSockets
//! get 1012, and it closes once they are done.
//!
//! [`Server::run`] serves until its shutdown future completes (for example
//! [`shutdown_signal`]: SIGTERM or SIGINT), then ends every push stream through the
//! [`Drain`] (SSE ends, WebSockets get 1012, held polls answer), lets ordinary requests
//! finish for the rest of the grace period, closes what is left by force, and returns within
//! `grace + close_timeout`.
//!
//! # Example
//!
//! ```no_run
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder};
//! use tower_push::{drain::Drain, negotiate::NegotiateLayer, serve::{self, Server}, Event};
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let drain = Drain::new();
//! let endpoint = ServiceBuilder::new()
//!     .layer(NegotiateLayer::new())
//!     .layer(drain.layer())
//!     .service(service_fn(|_req: http::Request<hyper::body::Incoming>| async {
//!         Ok::<_, Infallible>(tokio_stream::pending::<Event>())
//!     }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! let report = Server::new(&drain)
//!     .run(listener, endpoint, serve::shutdown_signal())
//!     .await;
//! println!("{report:?}");
//! # Ok(())
//! # }
//! ```

use crate::{connection::ConnectionGuard, drain::Drain, error::BoxError};
use http::{Request, Response};
use hyper::body::Incoming;
#[cfg(feature = "http2")]
use hyper_util::server::conn::auto;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::{GracefulShutdown, Watcher},
};
use std::{future::Future, pin::pin, sync::Arc, time::Duration};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_service::Service;

mod served;
mod streams;
#[cfg(feature = "tls")]
mod tls;
use served::{Checked, Served};
#[cfg(feature = "http2")]
use streams::StreamExec;
#[cfg(feature = "tls")]
pub use tls::{Tls, TlsError};

/// The default most concurrent streams on one HTTP/2 connection: 100 (RFC 9113 section 6.5.2
/// recommends no fewer).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// The receive window of each HTTP/2 stream: 256 KiB.
#[cfg(feature = "http2")]
const HTTP2_STREAM_WINDOW: u32 = 256 << 10;
/// The receive window of an HTTP/2 connection: 1 MiB.
#[cfg(feature = "http2")]
const HTTP2_CONNECTION_WINDOW: u32 = 1 << 20;
/// The unsent bytes one HTTP/2 stream may hold: 64 KiB.
#[cfg(feature = "http2")]
const HTTP2_SEND_BUFFER: usize = 64 << 10;

/// Serves a tower service with the hardened settings. See the [module docs](self).
#[derive(Debug, Clone)]
#[must_use]
pub struct Server {
    drain: Drain,
    stall_timeout: Duration,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_headers: usize,
    max_header_bytes: usize,
    grace: Duration,
    http1_only: bool,
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    max_concurrent_streams: u32,
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    extended_connect: bool,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

/// What a [`Server::run`] left behind when it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shutdown {
    /// Push streams still open when the drain gave up (0 when all ended).
    pub streams: usize,
    /// Connections still open when the close timeout ran out (0 when all closed).
    pub connections: usize,
    /// How long the shutdown took, from the signal.
    pub took: Duration,
}

impl Server {
    /// The default settings (see the [module docs](self)), with `drain` ending the push
    /// streams and closing the connections at shutdown. Put `drain.layer()` on the push routes.
    pub fn new(drain: &Drain) -> Self {
        Self {
            drain: drain.clone(),
            stall_timeout: crate::connection::DEFAULT_STALL_TIMEOUT,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            grace: Duration::from_secs(10),
            http1_only: false,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            extended_connect: true,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serves HTTPS with this certificate (feature `tls`): ALPN offers `h2` then `http/1.1`
    /// (only `http/1.1` with [`http1_only`](Server::http1_only)), so browsers speak HTTP/2
    /// and one page can hold any number of event streams to the origin on one connection.
    /// The TLS handshake counts against the first-request deadline
    /// ([`header_read_timeout`](Server::header_read_timeout)), from accept.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The most streams a client may open at once on one HTTP/2 connection (its
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`). Browsers queue the requests past it until a stream
    /// ends (so the page's 101st event stream waits, as the seventh does over HTTP/1.1); a
    /// client that opens more anyway gets those streams refused (`REFUSED_STREAM`, safe to
    /// retry). Default [`DEFAULT_MAX_CONCURRENT_STREAMS`] (100).
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = streams;
        self
    }

    /// Whether HTTP/2 connections offer RFC 8441 extended CONNECT, over which browsers carry
    /// WebSockets on the page's HTTP/2 connection. Off, browsers open a separate HTTP/1.1
    /// connection for each WebSocket. Default `true`.
    pub fn extended_connect(mut self, enabled: bool) -> Self {
        self.extended_connect = enabled;
        self
    }

    /// Serves HTTP/1.1 only: WebSocket upgrades work, HTTP/2 (and WebSocket over HTTP/2,
    /// RFC 8441) does not. Without the `http2` feature every connection is HTTP/1.1 anyway. Each connection is then hyper's HTTP/1.1 connection without the
    /// protocol detection, which holds about half the memory per idle connection (see the
    /// README's serving recipe for the measurement). Default `false`.
    pub fn http1_only(mut self, enabled: bool) -> Self {
        self.http1_only = enabled;
        self
    }

    /// How long a write may make no progress before the connection is closed. Default 30 s.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// How long a client may take to send a request head before the connection is closed:
    /// from accept to its first complete request head whatever the protocol (a silent socket,
    /// or a bare HTTP/2 preface, is closed when it passes), and each later HTTP/1.1 request
    /// head. Default 10 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long an HTTP/2 connection may have no open stream before it is closed (an
    /// HTTP/1.1 connection between requests is bounded by
    /// [`header_read_timeout`](Server::header_read_timeout)). Checked once per period, so a
    /// connection idle since just after a check goes within twice this. Default 60 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The most header fields in a request (HTTP/1.1). Default 64.
    pub fn max_headers(mut self, headers: usize) -> Self {
        self.max_headers = headers;
        self
    }

    /// The largest request head, in bytes (HTTP/1.1 read buffer and HTTP/2 header list).
    /// Default 16 KiB; at least 8 KiB (hyper's minimum).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes.max(8192);
        self
    }

    /// How long, after the shutdown signal, streams and ordinary requests may take to finish
    /// before the connections are closed by force. Default 10 s.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The HTTP/1.1-only builder with these settings.
    fn http1_builder(&self) -> hyper::server::conn::http1::Builder {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_headers(self.max_headers)
            .max_buf_size(self.max_header_bytes);
        builder
    }

    /// The hyper builder with these settings.
    #[cfg(feature = "http2")]
    fn builder(&self) -> auto::Builder<StreamExec> {
        let mut builder = auto::Builder::new(StreamExec {
            stall: self.stall_timeout,
        });
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_headers(self.max_headers)
            .max_buf_size(self.max_header_bytes);
        let mut http2 = builder.http2();
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_concurrent_streams(self.max_concurrent_streams)
            // What a client may send before we read it: requests, and WebSocket messages
            // over extended CONNECT (64 KiB each by default).
            .initial_stream_window_size(HTTP2_STREAM_WINDOW)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
            // What one stream may hold unsent while its client does not read: the memory a
            // stalled stream costs until the stall timeout resets it.
            .max_send_buf_size(HTTP2_SEND_BUFFER)
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX));
        if self.extended_connect {
            http2.enable_connect_protocol();
        }
        builder
    }

    /// Serves `service` on `listener` until `signal` completes, then shuts down (see the
    /// [module docs](self)) and reports what was left. Returns within `grace +
    /// close_timeout` of the signal.
    pub async fn run<S, B>(
        self,
        listener: TcpListener,
        service: S,
        signal: impl Future<Output = ()>,
    ) -> Shutdown
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let graceful = GracefulShutdown::new();
        // HTTP/1.1-only connections: hyper-util's graceful watcher does not take them with
        // upgrades, so they stop on this token and are awaited through this tracker.
        let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
        let conns = Arc::new(Conns {
            #[cfg(feature = "http2")]
            builder: self.builder(),
            http1: self.http1_builder(),
            #[cfg(feature = "http2")]
            http1_only: self.http1_only,
            stop: stop.clone(),
            tracker: tracker.clone(),
            first: self.header_read_timeout,
            idle: self.idle_timeout,
        });
        #[cfg(feature = "tls")]
        let tls = self.tls.as_ref().map(|tls| tls.acceptor(!self.http1_only));
        let guard = ConnectionGuard::new()
            .stall_timeout(self.stall_timeout)
            .drain(&self.drain);
        let mut signal = pin!(signal);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut signal => break,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // Out of file descriptors, most likely: let connections close first.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let io = guard.wrap(tcp);
            #[cfg(feature = "tls")]
            if let Some(acceptor) = &tls {
                let (acceptor, conns, service) = (acceptor.clone(), conns.clone(), service.clone());
                let watcher = graceful.watcher();
                // The handshake counts against the first-request deadline, from accept.
                let deadline = Instant::now() + conns.first;
                tokio::spawn(async move {
                    match tokio::time::timeout_at(deadline, acceptor.accept(io)).await {
                        Ok(Ok(io)) => conns.serve(io, service, deadline, watcher),
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake not done within the deadline"),
                    }
                });
                continue;
            }
            let deadline = Instant::now() + conns.first;
            conns.serve(io, service.clone(), deadline, graceful.watcher());
        }
        drop(listener);
        let started = Instant::now();
        tracing::info!("shutting down: ending push streams");
        // Streams end and connections stop taking requests at once; both get the grace.
        stop.cancel();
        tracker.close();
        let connections_done = async {
            tokio::join!(graceful.shutdown(), tracker.wait());
        };
        let (streams, finished) = tokio::join!(
            self.drain.shutdown(self.grace),
            tokio::time::timeout(self.grace, connections_done)
        );
        if finished.is_err() {
            self.drain.close_connections();
        }
        let connections = self
            .drain
            .wait_connections(self.drain.get_close_timeout())
            .await;
        let took = started.elapsed();
        tracing::info!(streams, connections, ?took, "shut down");
        Shutdown {
            streams,
            connections,
            took,
        }
    }
}

/// What serving one accepted connection needs, shared by the accept loop and the TLS
/// handshakes.
struct Conns {
    #[cfg(feature = "http2")]
    builder: auto::Builder<StreamExec>,
    http1: hyper::server::conn::http1::Builder,
    /// Every connection HTTP/1.1 (without the `http2` feature, always).
    #[cfg(feature = "http2")]
    http1_only: bool,
    stop: CancellationToken,
    tracker: TaskTracker,
    first: Duration,
    idle: Duration,
}

impl Conns {
    /// Spawns the task serving `io`, whose first request head must come by `deadline`
    /// (`watcher` tells an HTTP/2 connection about the shutdown).
    fn serve<I, S, B>(&self, io: I, service: S, deadline: Instant, watcher: Watcher)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (service, activity) = Checked::new(service);
        let io = TokioIo::new(io);
        let first = deadline.saturating_duration_since(Instant::now());
        #[cfg(feature = "http2")]
        if !self.http1_only {
            let conn = self
                .builder
                .serve_connection_with_upgrades(io, service)
                .into_owned();
            tokio::spawn(Served::new(
                watcher.watch(conn),
                None,
                |_| {},
                activity,
                first,
                self.idle,
            ));
            return;
        }
        // HTTP/1.1 connections stop on the token and are awaited through the tracker.
        drop(watcher);
        let conn = self.http1.serve_connection(io, service).with_upgrades();
        self.tracker.spawn(Served::new(
            conn,
            Some(self.stop.clone().cancelled_owned()),
            |conn| conn.graceful_shutdown(),
            activity,
            first,
            self.idle,
        ));
    }
}

/// Completes on SIGTERM (what container orchestrators send) or SIGINT (Ctrl-C); on platforms
/// without Unix signals, on Ctrl-C.
///
/// # Panics
///
/// When the signal handlers cannot be installed (outside a tokio runtime with signals).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
