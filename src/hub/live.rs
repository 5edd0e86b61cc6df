//! Reading a topic's live broadcast buffer, shared by the backbone hubs (Redis, NATS).

use std::task::{ready, Context, Poll};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio_util::sync::ReusableBoxFuture;

type Received<T> = Option<(Result<T, RecvError>, broadcast::Receiver<T>)>;

async fn wait<T: Clone>(rx: Option<broadcast::Receiver<T>>) -> Received<T> {
    let mut rx = rx?;
    let result = rx.recv().await;
    Some((result, rx))
}

/// A broadcast receiver polled like a stream, without `BroadcastStream`'s per-item future.
///
/// A subscriber that keeps up parks its receiver in a reusable future between items, as
/// `BroadcastStream` does. When items are found already waiting (a burst, or a subscriber
/// behind), it switches to `try_recv`, which needs no future at all, until the buffer is
/// empty again.
pub(crate) struct LiveReceiver<T> {
    /// The receiver, while it is not parked in `wait`.
    rx: Option<broadcast::Receiver<T>>,
    /// Waits for the next item when the buffer is empty, then hands the receiver back.
    /// Reused, so waiting allocates nothing after the first time.
    wait: ReusableBoxFuture<'static, Received<T>>,
    /// Whether items were found waiting: read them with `try_recv`.
    backlog: bool,
}

impl<T: Clone + Send + 'static> LiveReceiver<T> {
    pub(crate) fn new(rx: broadcast::Receiver<T>) -> Self {
        Self {
            rx: Some(rx),
            wait: ReusableBoxFuture::new(wait(None)),
            // A new receiver is empty nearly always (a poll or reconnect that kept up): wait
            // at once. Entries already there make the first wait ready, and then `try_recv`
            // takes the rest.
            backlog: false,
        }
    }

    /// The next item; `Err(Lagged)` after falling behind the buffer, `Err(Closed)` at the end.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        if let Some(rx) = &mut self.rx {
            if self.backlog {
                match rx.try_recv() {
                    Ok(item) => return Poll::Ready(Ok(item)),
                    Err(TryRecvError::Lagged(n)) => return Poll::Ready(Err(RecvError::Lagged(n))),
                    Err(TryRecvError::Closed) => return Poll::Ready(Err(RecvError::Closed)),
                    Err(TryRecvError::Empty) => self.backlog = false,
                }
            }
            let rx = self.rx.take();
            self.wait.set(wait(rx));
            if let Poll::Ready(received) = self.wait.poll(cx) {
                // Ready on the first poll: entries are waiting.
                self.backlog = true;
                return Poll::Ready(self.restore(received));
            }
            return Poll::Pending;
        }
        let received = ready!(self.wait.poll(cx));
        Poll::Ready(self.restore(received))
    }

    fn restore(&mut self, received: Received<T>) -> Result<T, RecvError> {
        match received {
            // The finished future stays in place; it is replaced before it is polled again.
            Some((result, rx)) => {
                self.rx = Some(rx);
                result
            }
            // The receiver is parked in `wait` whenever `rx` is empty, so this does not
            // happen; ending the stream is the safe answer if it ever did.
            None => Err(RecvError::Closed),
        }
    }
}
