//! The subscription stream: replay (or catch-up) first, then the reader's live messages.

use super::{
    shared::{Live, NatsHub, Reader, Registered},
    start::{start, Phase, Start, StartFuture},
    wire,
};
use crate::{
    event::Event,
    hub::{live::LiveReceiver, reset_event, ResetReason},
    observe,
};
use futures_core::Stream;
use std::{
    collections::VecDeque,
    fmt,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};
use tokio::sync::broadcast::error::RecvError;

/// The subscription stream of a [`NatsHub`]. See the [module docs](crate::hub).
#[must_use = "streams do nothing unless polled"]
pub struct NatsSubscription {
    /// Replay (or catch-up) in progress.
    pub(super) start: Option<StartFuture>,
    pub(super) pending: VecDeque<Event>,
    pub(super) rx: LiveReceiver<Live>,
    /// Live messages up to here were delivered (or replayed).
    pub(super) last: u64,
    pub(super) epoch: Arc<str>,
    pub(super) hub: NatsHub,
    pub(super) reader: Arc<Reader>,
}

impl fmt::Debug for NatsSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSubscription")
            .field("topic", &self.reader.topic)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Stream for NatsSubscription {
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
                Ok(Live::Entry { seq, event }) => {
                    if seq > this.last {
                        this.last = seq;
                        return Poll::Ready(Some(event));
                    }
                }
                Ok(Live::Reset(position)) => {
                    this.epoch = position.epoch.clone();
                    this.last = position.last;
                    let current = wire::cursor(&position.epoch, position.last);
                    return Poll::Ready(Some(reset_event(ResetReason::Expired, &current)));
                }
                Err(RecvError::Lagged(_)) => {
                    // Fell behind the local buffer: catch up from JetStream.
                    observe::lagged();
                    let from = wire::cursor(&this.epoch, this.last).to_string();
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
