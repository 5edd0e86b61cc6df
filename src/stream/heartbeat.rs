use crate::{push::IntoPush, push::Push};
use futures_core::Stream;
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll, Waker},
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
        // When the stream is idle enough for a heartbeat: the last item's time + `every`.
        // Items move only this (a clock read); the timer catches up when it fires, so the
        // timer wheel is touched once per interval instead of once per item.
        due: Instant,
        // The waker the timer holds: while it is this task's and the timer has not fired,
        // a pending poll need not poll the timer again (about 200 instructions per event).
        armed: Option<Waker>,
        every: Duration,
        done: bool,
    }
}

impl<S> Heartbeat<S> {
    pub(super) fn new(stream: S, every: Duration) -> Self {
        let due = Instant::now() + every;
        Self {
            stream,
            sleep: tokio::time::sleep_until(due),
            due,
            armed: None,
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
                *this.due = Instant::now() + *this.every;
                Poll::Ready(Some(item.into_push()))
            }
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => loop {
                if this.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
                    && !this.sleep.is_elapsed()
                {
                    return Poll::Pending;
                }
                let fired = this.sleep.as_mut().poll(cx);
                if !this.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *this.armed = Some(cx.waker().clone());
                }
                ready!(fired);
                if this.sleep.deadline() < *this.due {
                    // Items came since the timer was set: wait for the idle deadline.
                    let due = *this.due;
                    this.sleep.as_mut().reset(due);
                    // A fired timer gave its waker away: poll it again to register.
                    *this.armed = None;
                    continue;
                }
                *this.due = Instant::now() + *this.every;
                let due = *this.due;
                this.sleep.as_mut().reset(due);
                *this.armed = None;
                return Poll::Ready(Some(Ok(Push::Heartbeat)));
            },
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
    async fn a_steady_stream_never_beats_and_the_beat_comes_every_after_the_last_item() {
        let (tx, mut beats) = channel();
        // An item every 10 s for a minute: never idle for 15 s.
        for n in 0..6 {
            tokio::time::advance(Duration::from_secs(10)).await;
            assert_pending!(beats.poll_next(), "not idle for 15 s yet");
            tx.send(Event::new().data(n.to_string())).unwrap();
            assert!(matches!(
                assert_ready!(beats.poll_next()),
                Some(Ok(Push::Event(_)))
            ));
        }
        assert_pending!(beats.poll_next());
        tokio::time::advance(EVERY - Duration::from_millis(1)).await;
        assert_pending!(beats.poll_next(), "1 ms short of idle");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_ready_eq!(beats.poll_next(), Some(Ok(Push::Heartbeat)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_is_woken_at_the_idle_deadline_after_items() {
        let (tx, mut beats) = channel();
        assert_pending!(beats.poll_next());
        tokio::time::advance(Duration::from_secs(5)).await;
        tx.send(Event::new().data("a")).unwrap();
        assert!(beats.is_woken());
        assert!(matches!(
            assert_ready!(beats.poll_next()),
            Some(Ok(Push::Event(_)))
        ));
        // Idle from 5 s: the timer (set for 15 s) already holds this task's waker.
        assert_pending!(beats.poll_next());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(beats.is_woken(), "woken when the timer set for 15 s fires");
        assert_pending!(beats.poll_next(), "idle for 10 s only");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(beats.is_woken(), "woken at the idle deadline, 20 s");
        assert_ready_eq!(beats.poll_next(), Some(Ok(Push::Heartbeat)));
        assert_pending!(beats.poll_next());
        tokio::time::advance(EVERY).await;
        assert!(beats.is_woken(), "and every 15 s after");
        assert_ready_eq!(beats.poll_next(), Some(Ok(Push::Heartbeat)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_moved_to_another_task_wakes_that_task() {
        let (_tx, rx) = mpsc::unbounded_channel::<Event>();
        let stream = Box::pin(UnboundedReceiverStream::new(rx).heartbeat(EVERY));
        let mut first = task::spawn(stream);
        assert_pending!(first.poll_next());
        // The same stream, now polled by another task.
        let mut second = task::spawn(first.into_inner());
        assert_pending!(second.poll_next());
        tokio::time::advance(EVERY).await;
        assert!(second.is_woken(), "the task that polled last is woken");
        assert_ready_eq!(second.poll_next(), Some(Ok(Push::Heartbeat)));
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
