//! Deadlines for the connection itself: a peer that stops reading is cut off, and a shutdown
//! can close what is left by force.
//!
//! A push response lives for hours, so the peer at the other end decides how long its memory
//! and socket are held. A client that stops reading (a frozen tab, a phone that lost its
//! radio, a malicious peer) lets its socket buffers fill; from then on every write waits,
//! forever. For WebSocket tower-push owns the socket and applies the deadline itself; for SSE
//! and long-poll hyper owns the socket, so the deadline has to sit in the IO that hyper
//! writes to. [`GuardedIo`] is that IO: wrap each accepted connection with
//! [`ConnectionGuard::wrap`] before handing it to hyper (the [`serve`](crate::serve) recipe
//! does it for you).
//!
//! * **Stalled writes**: a write (or flush) that makes no progress for the stall deadline
//!   ([`DEFAULT_STALL_TIMEOUT`], 30 s) fails with [`std::io::ErrorKind::TimedOut`]; hyper
//!   then closes the connection and drops the response body with the stream it held. Progress
//!   resets the deadline, so a slow reader that keeps reading is never cut off. The client
//!   reconnects and resumes with its cursor, losing nothing.
//! * **Forced close** (with a [`Drain`](crate::drain::Drain), feature `drain`): once the
//!   drain's grace period is over ([`Drain::close_connections`](crate::drain::Drain::close_connections)),
//!   every guarded connection fails its next read or write at once, so a shutdown never waits
//!   on a peer.
//!
//! Reads have no deadline here: a push connection's request side is legitimately silent for
//! hours. Deadlines for reading request heads and bodies belong to the HTTP server
//! (`header_read_timeout`) and to the routes that take bodies (for example tower-http's
//! `TimeoutLayer`, answering `408`); see [`serve`](crate::serve).
//!
//! HTTP/2 flow control bounds what one HTTP/2 stream can queue (its window), so a stalled
//! HTTP/2 stream holds at most its window of memory; the write deadline applies to the
//! connection as a whole.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower_push::connection::ConnectionGuard;
//!
//! async fn accept_loop(listener: tokio::net::TcpListener) -> std::io::Result<()> {
//!     let guard = ConnectionGuard::new().stall_timeout(Duration::from_secs(20));
//!     loop {
//!         let (tcp, _) = listener.accept().await?;
//!         let io = hyper_util::rt::TokioIo::new(guard.wrap(tcp));
//!         // hand `io` to hyper's `serve_connection_with_upgrades`
//!         # let _ = io;
//!     }
//! }
//! # let _ = accept_loop;
//! ```

use std::{
    fmt,
    future::Future as _,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// The default stall deadline: 30 seconds without write progress.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for [`GuardedIo`]: the write stall deadline and, optionally, the drain that may
/// close the connection by force. Cheap to clone; one per server.
#[derive(Clone)]
#[must_use]
pub struct ConnectionGuard {
    stall_timeout: Duration,
    #[cfg(feature = "drain")]
    drain: Option<crate::drain::Drain>,
}

impl Default for ConnectionGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionGuard")
            .field("stall_timeout", &self.stall_timeout)
            .finish_non_exhaustive()
    }
}

impl ConnectionGuard {
    /// A guard with the [`DEFAULT_STALL_TIMEOUT`] and no drain.
    pub fn new() -> Self {
        Self {
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            #[cfg(feature = "drain")]
            drain: None,
        }
    }

    /// How long a write may make no progress before the connection fails. Default 30 s
    /// ([`DEFAULT_STALL_TIMEOUT`]); at least 1 ms.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The drain whose [`close_connections`](crate::drain::Drain::close_connections) closes
    /// these connections by force, and which counts them while they are open. A second call
    /// replaces the first.
    #[cfg(feature = "drain")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drain")))]
    pub fn drain(mut self, drain: &crate::drain::Drain) -> Self {
        self.drain = Some(drain.clone());
        self
    }

    /// The stall deadline.
    pub fn get_stall_timeout(&self) -> Duration {
        self.stall_timeout
    }

    /// Wraps an accepted connection.
    pub fn wrap<T>(&self, io: T) -> GuardedIo<T> {
        GuardedIo {
            io,
            stall_timeout: self.stall_timeout,
            stall: None,
            stalled_since: None,
            #[cfg(feature = "drain")]
            force: self.drain.as_ref().map(crate::drain::Drain::link),
        }
    }
}

/// An IO with a write-progress deadline and, with a drain, a forced close. Made by
/// [`ConnectionGuard::wrap`]; see the [module docs](self).
pub struct GuardedIo<T> {
    io: T,
    stall_timeout: Duration,
    /// The stall timer, made at the first stall and reused.
    stall: Option<Pin<Box<Sleep>>>,
    /// Set while a write is waiting; cleared by progress.
    stalled_since: Option<Instant>,
    #[cfg(feature = "drain")]
    force: Option<crate::drain::ConnectionLink>,
}

impl<T> fmt::Debug for GuardedIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedIo")
            .field("io", &std::any::type_name::<T>())
            .field("stall_timeout", &self.stall_timeout)
            .field("stalled", &self.stalled_since.is_some())
            .finish()
    }
}

impl<T> GuardedIo<T> {
    /// A guarded IO with the given stall deadline and no drain (what the WebSocket driver
    /// uses inside the upgraded connection).
    #[cfg(any(feature = "ws", test))]
    pub(crate) fn with_stall_timeout(io: T, stall_timeout: Duration) -> Self {
        ConnectionGuard::new().stall_timeout(stall_timeout).wrap(io)
    }

    /// The wrapped IO.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The wrapped IO, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The wrapped IO.
    pub fn into_inner(self) -> T {
        self.io
    }

    /// Err once the drain closed connections by force; registers for that otherwise.
    fn poll_forced(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        #[cfg(feature = "drain")]
        if let Some(force) = &mut self.force {
            if force.poll_closed(cx).is_ready() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "connection closed by the server's shutdown",
                ));
            }
        }
        let _ = cx;
        Ok(())
    }

    /// A write made progress: the deadline starts again at the next stall.
    #[inline]
    fn progressed(&mut self) {
        self.stalled_since = None;
    }

    /// A write is waiting: arms the deadline (once per stall) and fails when it has passed.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_forced(cx)?;
        if self.stalled_since.is_none() {
            let now = Instant::now();
            self.stalled_since = Some(now);
            let deadline = now + self.stall_timeout;
            match &mut self.stall {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.stall = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let sleep = self.stall.as_mut().expect("armed above");
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                crate::observe::write_stalled();
                tracing::debug!(
                    timeout = ?self.stall_timeout,
                    "peer stopped reading; closing the connection"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "write stalled: the peer stopped reading",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// The outcome of a write-side poll, with the deadline applied.
    #[inline]
    fn write_outcome<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
        made_progress: impl FnOnce(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(Ok(r)) => {
                if made_progress(&r) {
                    self.progressed();
                }
                Poll::Ready(Ok(r))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.stalled(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => {
                this.poll_forced(cx)?;
                Poll::Pending
            }
            ready @ Poll::Ready(_) => ready,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_forced(cx)?;
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.write_outcome(cx, poll, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_forced(cx)?;
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.write_outcome(cx, poll, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.poll_forced(cx)?;
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.write_outcome(cx, poll, |()| true)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.write_outcome(cx, poll, |()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// A write into a pipe nobody reads fails at the deadline, not before; a reader that
    /// keeps reading is never cut off.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_fails_at_the_deadline() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = GuardedIo::with_stall_timeout(a, Duration::from_secs(30));
        let started = Instant::now();
        let chunk = [7u8; 1024];
        let error = io.write_all(&chunk).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));

        // Progress resets the deadline: 64 bytes every 20 s never trips a 30 s deadline.
        let (a, mut b2) = tokio::io::duplex(64);
        let mut io = GuardedIo::with_stall_timeout(a, Duration::from_secs(30));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 1024 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                total += tokio::io::AsyncReadExt::read(&mut b2, &mut buf)
                    .await
                    .unwrap();
            }
            total
        });
        io.write_all(&chunk).await.unwrap();
        assert_eq!(reader.await.unwrap(), 1024);
        drop(b.shutdown().await);
    }
}
