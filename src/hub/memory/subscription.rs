//! The subscription stream of the in-memory hub: the position first, then replayed history,
//! then live events: the first ones from history, then from the topic's live buffer.

use super::{cursor, reset_event, waiters::Slot, Entry, MemoryHub, ResetReason, Topic};
use crate::cursor::StartAt;
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
    /// The topic's live buffer, once joined (`None` before: see [`Self::catch_up`]). Read
    /// only when the topic's `sent` offset says an event is there: a subscription waits in the
    /// topic's [`Waiters`](super::waiters::Waiters), not in the buffer's wait list.
    rx: Option<broadcast::Receiver<Entry>>,
    /// The offset of the next live event to deliver.
    next: u64,
    /// Its place among the topic's waiters, while it waits.
    waiting: Slot,
    /// Whether, not joined to the buffer, it took live events from history already.
    took_history: bool,
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
    /// live events from offset `next`: from the buffer `rx`, or, without one, from history
    /// first. The caller counted it in the topic's subscribers.
    #[allow(clippy::box_collection)] // the field's type: see its comment
    pub(super) fn new(
        rx: Option<broadcast::Receiver<Entry>>,
        next: u64,
        head: Event,
        pending: Option<Box<VecDeque<Event>>>,
        topic: Arc<Topic>,
    ) -> Self {
        Self {
            rx,
            next,
            waiting: None,
            took_history: false,
            head: Some(head),
            pending,
            topic,
        }
    }

    /// Takes what was sent from offset `next` on: from the topic's recent events when they
    /// reach back that far, else from history, else a reset (`expired`). The first event is
    /// returned, the rest wait in `pending`.
    ///
    /// This is how a subscription catches up after lagging behind the buffer, and how one
    /// not joined to the buffer reads its first live events. The second time it needs events
    /// (it reads on: a stream, not a poll), it joins the buffer here, under the topic's lock,
    /// so that what came before is read here and the buffer has what comes after.
    fn catch_up(&mut self) -> Option<Event> {
        let state = lock(&self.topic.state);
        let joined = self.rx.is_some();
        if !joined {
            if self.took_history {
                self.rx = Some(subscribe_buffer(&self.topic));
            }
            self.took_history = true;
        }
        let recent_from = state
            .recent
            .front()
            .map_or(state.next, |entry| entry.offset);
        let first = if !joined && self.next >= recent_from {
            let skip = (self.next - recent_from) as usize;
            take(
                &mut self.pending,
                state
                    .recent
                    .iter()
                    .skip(skip)
                    .map(|entry| entry.event.clone()),
            )
        } else if self.next >= state.oldest() {
            let skip = (self.next - state.oldest()) as usize;
            take(
                &mut self.pending,
                state.ring.iter().skip(skip).map(|k| k.entry.event.clone()),
            )
        } else {
            if let Some(pending) = &mut self.pending {
                pending.clear();
            }
            let current = cursor(&self.topic.epoch, state.last());
            Some(reset_event(ResetReason::Expired, &current))
        };
        self.next = state.next;
        first
    }
}

/// The first of `events`; the rest go to `pending`.
#[allow(clippy::box_collection)] // the field's type: see its comment
fn take(
    pending: &mut Option<Box<VecDeque<Event>>>,
    mut events: impl ExactSizeIterator<Item = Event>,
) -> Option<Event> {
    let first = events.next();
    // One event (a poll's) needs no queue.
    if events.len() > 0 {
        pending.get_or_insert_with(Default::default).extend(events);
    }
    first
}

impl MemoryHub {
    /// A subscription to `topic` (which the caller keeps from being swept meanwhile).
    pub(super) fn subscribe_to(&self, topic: &Arc<Topic>, from: StartAt) -> MemorySubscription {
        let mut state = lock(&topic.state);
        let resume = self.resume_point(from, &state);
        let next = state.next;
        let (head, rx, pending) = match resume {
            // At the current offset: nothing to replay, and the first live events can come
            // from the topic's recent events, so the subscription joins the buffer only if it
            // reads on after them. A long poll never does: it costs no place in the buffer
            // (taken and given up under the buffer's lock, which every poll woken by the same
            // event wants at once).
            Ok(after) if after == state.last() => (self.position(&mut state, after), None, None),
            Ok(after) => {
                // Subscribed under the lock: the buffer holds exactly the events after
                // `state.next - 1`, and history the ones it missed, replayed first.
                let rx = subscribe_buffer(topic);
                let skip = (after + 1 - state.oldest()) as usize;
                let replay = state.ring.iter().skip(skip);
                let replay = Box::new(replay.map(|k| k.entry.event.clone()).collect());
                (self.position(&mut state, after), Some(rx), Some(replay))
            }
            Err(reason) => (
                reset_event(reason, &self.cursor(state.last())),
                Some(subscribe_buffer(topic)),
                None,
            ),
        };
        // Counted under the lock, before the sweep could see the topic unused.
        topic.subscribers.fetch_add(1, Ordering::AcqRel);
        drop(state);
        MemorySubscription::new(rx, next, head, pending, topic.clone())
    }
}

/// A receiver of `topic`'s live buffer, made by the first subscriber that joins (call under
/// `state`).
fn subscribe_buffer(topic: &Topic) -> broadcast::Receiver<Entry> {
    topic
        .tx
        .get_or_init(|| broadcast::channel(topic.buffer).0)
        .subscribe()
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
            let Some(rx) = &mut this.rx else {
                if let Some(event) = this.catch_up() {
                    return Poll::Ready(Some(event));
                }
                continue;
            };
            let caught_up = match rx.try_recv() {
                Err(TryRecvError::Closed) => return Poll::Ready(None),
                Ok(entry) if entry.offset < this.next => continue, // already delivered
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
            };
            if let Some(event) = caught_up {
                return Poll::Ready(Some(event));
            }
        }
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        self.topic.waiters.unregister(self.waiting);
        self.topic.subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}
