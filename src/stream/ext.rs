//! [`PushStreamExt`]: the stream adapters, as methods.

use futures_core::Stream;

/// Adapters for streams of [`IntoPush`](crate::push::IntoPush) items ([`Event`](crate::event::Event), `Result<Event, E>`, ...).
pub trait PushStreamExt: Stream {
    /// Yields [`Push::Heartbeat`](crate::push::Push::Heartbeat) whenever the stream has been idle
    /// for `every`; the timer restarts on every item. The result is fused and ends when the
    /// stream ends.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_stream::StreamExt as _;
    /// use tower_push::{Push, PushStreamExt, Event};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let events = tokio_stream::pending::<Event>();
    /// let mut beats = std::pin::pin!(events.heartbeat(Duration::from_secs(15)));
    /// assert_eq!(beats.next().await.unwrap().unwrap(), Push::Heartbeat);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    #[cfg(feature = "heartbeat")]
    #[cfg_attr(docsrs, doc(cfg(feature = "heartbeat")))]
    fn heartbeat(self, every: std::time::Duration) -> super::Heartbeat<Self>
    where
        Self: Sized,
        Self::Item: crate::push::IntoPush,
    {
        super::Heartbeat::new(self, every)
    }
}

impl<S: Stream + ?Sized> PushStreamExt for S {}
