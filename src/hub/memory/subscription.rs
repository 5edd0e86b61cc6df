//! The subscription stream of the in-memory hub: the position first, then replayed history,
//! then the topic's live buffer.

use super::{cursor, reset_event, waiters::Slot, Entry, ResetReason, Topic};
use crate::sync::lock;
use crate::{event::Event, observe};
use futures_core::Stream;
use std::{
    collections::VecDeque,
    fmt,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::{Context, Poll, Waker},
};
use tokio::sync::broadcast::{self, error::TryRecvError};

/// The subscription stream of a [`MemoryHub`](super::MemoryHub). See the [module docs](crate::hub).
#[must_use = "streams do nothing unless polled"]
pub struct MemorySubscription {
    // Hot fields first, and small: fan-out to many subscribers is bound by memory traffic.
    /// Read only when the topic's `sent` offset says an event is there: a subscription waits
    /// in the topic's [`Waiters`](super::waiters::Waiters), not in the buffer's wait list.
    rx: broadcast::Receiver<Entry>,
    /// The offset of the next live event to deliver.
    next: u64,
    /// Its place among the topic's waiters, while it waits.
    waiting: Slot,
    /// The position or reset event, first.
    head: Option<Event>,
    /// Replayed history, or a catch-up after lagging (or its reset); boxed because
    /// it is empty (`None`) nearly always.
    #[allow(clippy::box_collection)] // 8 bytes instead of 32 on the hot struct
    pending: Option<Box<VecDeque<Event>>>,
    topic: Arc<Topic>,
}

impl MemorySubscription {
    /// Starts with `head` (the position or a reset), then `pending` (replayed history), then
    /// the live buffer from offset `next`.
    #[allow(clippy::box_collection)] // the field's type: see its comment
    pub(super) fn new(
        rx: broadcast::Receiver<Entry>,
        next: u64,
        head: Event,
        pending: Option<Box<VecDeque<Event>>>,
        topic: Arc<Topic>,
    ) -> Self {
        Self {
            rx,
            next,
            waiting: None,
            head: Some(head),
            pending,
            topic,
        }
    }

    /// After lagging behind the live buffer: take the missed events from history, or reset.
    fn catch_up(&mut self) {
        let state = lock(&self.topic.state);
        let pending = self.pending.get_or_insert_with(Default::default);
        if self.next < state.oldest() {
            pending.clear();
            let current = cursor(&self.topic.epoch, state.last());
            pending.push_back(reset_event(ResetReason::Expired, &current));
        } else {
            let skip = (self.next - state.oldest()) as usize;
            pending.extend(state.ring.iter().skip(skip).map(|k| k.entry.event.clone()));
        }
        self.next = state.next;
    }
}

impl fmt::Debug for MemorySubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySubscription")
            .field("next", &self.next)
            .field("pending", &self.pending.as_ref().map_or(0, |p| p.len()))
            .finish_non_exhaustive()
    }
}

impl Stream for MemorySubscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(head));
        }
        loop {
            if let Some(pending) = &mut this.pending {
                match pending.pop_front() {
                    Some(event) => return Poll::Ready(Some(event)),
                    None => this.pending = None,
                }
            }
            // Nothing sent past this subscription: wait for the next publish. A look with the
            // no-op waker asks only what is ready now (a long poll that has its answer and sees
            // whether more events can join it), so it takes no place among the waiters.
            if this.topic.sent.load(Ordering::Acquire) <= this.next {
                if cx.waker().will_wake(Waker::noop()) {
                    return Poll::Pending;
                }
                this.topic.waiters.register(&mut this.waiting, cx.waker());
                // A publish between the look and the registration woke the list before this
                // waker was in it: look again.
                if this.topic.sent.load(Ordering::Acquire) <= this.next {
                    return Poll::Pending;
                }
            }
            match this.rx.try_recv() {
                Err(TryRecvError::Closed) => return Poll::Ready(None),
                Ok(entry) if entry.offset < this.next => {} // already delivered
                Ok(entry) if entry.offset == this.next => {
                    this.next += 1;
                    return Poll::Ready(Some(entry.event));
                }
                // A gap: only after lagging, which the buffer reports first; handled alike.
                Ok(_) | Err(TryRecvError::Lagged(_)) => {
                    observe::lagged();
                    this.catch_up()
                }
                // `sent` is stored after the event went into the buffer, so this does not
                // happen; should it, history has what the buffer lacks.
                Err(TryRecvError::Empty) => this.catch_up(),
            }
        }
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        self.topic.waiters.unregister(self.waiting);
    }
}
