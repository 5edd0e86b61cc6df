use crate::{push::IntoPush, push::Push};
use futures_core::Stream;
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

pin_project! {
    /// Stream for [`PushStreamExt::heartbeat`](super::PushStreamExt::heartbeat).
    #[must_use = "streams do nothing unless polled"]
    pub struct Heartbeat<S> {
        #[pin]
        stream: S,
        #[pin]
        sleep: Sleep,
        every: Duration,
        done: bool,
    }
}

impl<S> Heartbeat<S> {
    pub(super) fn new(stream: S, every: Duration) -> Self {
        Self {
            stream,
            sleep: tokio::time::sleep(every),
            every,
            done: false,
        }
    }

    /// The idle interval after which a heartbeat is yielded.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Gets a reference to the underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Gets a mutable reference to the underlying stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Gets a pinned mutable reference to the underlying stream.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut S> {
        self.project().stream
    }

    /// Consumes `self`, returning the underlying stream.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

impl<S> fmt::Debug for Heartbeat<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat")
            .field("stream", &std::any::type_name::<S>())
            .field("every", &self.every)
            .field("done", &self.done)
            .finish()
    }
}

impl<S> Stream for Heartbeat<S>
where
    S: Stream,
    S::Item: IntoPush,
{
    type Item = Result<Push, <S::Item as IntoPush>::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.stream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                this.sleep.reset(Instant::now() + *this.every);
                Poll::Ready(Some(item.into_push()))
            }
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.sleep.as_mut().poll(cx));
                this.sleep.reset(Instant::now() + *this.every);
                Poll::Ready(Some(Ok(Push::Heartbeat)))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // Heartbeats come on top of the stream's own items, without an upper bound.
        (self.stream.size_hint().0, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{event::Event, stream::PushStreamExt};
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::UnboundedReceiverStream;
    use tokio_test::{assert_pending, assert_ready, assert_ready_eq, task};

    const EVERY: Duration = Duration::from_secs(15);

    fn channel() -> (
        mpsc::UnboundedSender<Event>,
        task::Spawn<Heartbeat<UnboundedReceiverStream<Event>>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            tx,
            task::spawn(UnboundedReceiverStream::new(rx).heartbeat(EVERY)),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn idle_stream_yields_heartbeats_at_the_interval() {
        let (_tx, mut beats) = channel();
        assert_pending!(beats.poll_next());
        tokio::time::advance(EVERY - Duration::from_millis(1)).await;
        assert_pending!(beats.poll_next());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_ready_eq!(beats.poll_next(), Some(Ok(Push::Heartbeat)));
        assert_pending!(beats.poll_next());
        tokio::time::advance(EVERY).await;
        assert_ready_eq!(beats.poll_next(), Some(Ok(Push::Heartbeat)));
    }

    #[tokio::test(start_paused = true)]
    async fn every_event_restarts_the_timer() {
        let (tx, mut beats) = channel();
        tokio::time::advance(Duration::from_secs(10)).await;
        tx.send(Event::new().data("a")).unwrap();
        assert_ready_eq!(
            beats.poll_next(),
            Some(Ok(Push::Event(Event::new().data("a"))))
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_pending!(beats.poll_next(), "10 s after the event is not idle enough");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_ready_eq!(beats.poll_next(), Some(Ok(Push::Heartbeat)));
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_stops_when_stream_ends_and_stays_fused() {
        let (tx, mut beats) = channel();
        drop(tx);
        assert_ready_eq!(beats.poll_next(), None);
        tokio::time::advance(EVERY * 3).await;
        assert_ready_eq!(beats.poll_next(), None);
        assert_eq!(beats.size_hint(), (0, Some(0)));
    }

    #[tokio::test(start_paused = true)]
    async fn error_items_pass_through() {
        let items = tokio_stream::iter(vec![Err::<Event, std::io::Error>(std::io::Error::other(
            "x",
        ))]);
        let mut beats = task::spawn(items.heartbeat(EVERY));
        let item = assert_ready!(beats.poll_next());
        assert!(matches!(item, Some(Err(_))));
    }
}
