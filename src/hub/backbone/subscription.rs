//! The subscription stream of a shared backbone: replay (or catch-up) first, then the
//! reader's live entries.

use super::{start, Backbone, Live, Phase, Reader, Registered, Start, StartFuture};
use crate::cursor::{ParsedCursor, StartAt};
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

pub(crate) struct Subscription<B: Backbone> {
    /// Replay (or catch-up) in progress.
    start: Option<StartFuture<B::Id>>,
    pending: VecDeque<Event>,
    rx: LiveReceiver<Live<B::Id>>,
    /// Live entries up to here were delivered (or replayed).
    last: B::Id,
    epoch: Arc<str>,
    backbone: B,
    reader: Arc<Reader<B>>,
    /// The start gave up: the stream is over.
    ended: bool,
}

// No field is pinned structurally: the start future is boxed.
impl<B: Backbone> Unpin for Subscription<B> {}

impl<B: Backbone> Subscription<B> {
    /// Subscribes to `topic` after `from`.
    pub(crate) fn new(backbone: &B, topic: &str, from: StartAt) -> Self {
        observe::record_topic(topic);
        let (reader, rx, registered) = super::register(backbone, topic);
        let start = Box::pin(start(
            backbone.clone(),
            reader.clone(),
            registered,
            from,
            Phase::Subscribe,
        ));
        Self {
            start: Some(start),
            pending: VecDeque::new(),
            rx: LiveReceiver::new(rx),
            last: B::Id::default(),
            epoch: Arc::from(""),
            backbone: backbone.clone(),
            reader,
            ended: false,
        }
    }
}

impl<B: Backbone> Drop for Subscription<B> {
    fn drop(&mut self) {
        // The sweeper looks at this topic's reader: it may have no subscriber left.
        super::lock(self.backbone.released()).push(self.reader.clone());
    }
}

impl<B: Backbone> fmt::Debug for Subscription<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("backbone", &B::NAME)
            .field("topic", &self.reader.topic)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl<B: Backbone> Stream for Subscription<B> {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(start) = &mut this.start {
                let started = ready!(start.as_mut().poll(cx));
                this.start = None;
                let Some(Start { items, epoch, last }) = started else {
                    // The backbone could not serve it in time: end, so the client resumes.
                    this.ended = true;
                    return Poll::Ready(None);
                };
                this.pending.extend(items);
                this.epoch = epoch;
                this.last = this.last.max(last);
            }
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(event));
            }
            match ready!(this.rx.poll_recv(cx)) {
                Ok(Live::Entry { id, event }) => {
                    if id > this.last {
                        this.last = id;
                        return Poll::Ready(Some(event));
                    }
                }
                Ok(Live::Reset(position)) => {
                    this.epoch = position.epoch.clone();
                    this.last = position.last;
                    let current = B::cursor(&position.epoch, position.last);
                    return Poll::Ready(Some(reset_event(ResetReason::Expired, &current)));
                }
                Err(RecvError::Lagged(_)) => {
                    // Fell behind the local buffer: catch up from the backbone.
                    observe::lagged();
                    let from = ParsedCursor::parse(B::cursor(&this.epoch, this.last).as_str())
                        .map_or(StartAt::Unplaced, StartAt::After);
                    let registered = Registered {
                        at: this.reader.position.borrow().clone(),
                        watch: this.reader.position.subscribe(),
                    };
                    this.start = Some(Box::pin(start(
                        this.backbone.clone(),
                        this.reader.clone(),
                        registered,
                        from,
                        Phase::CatchUp,
                    )));
                }
                Ok(Live::End) | Err(RecvError::Closed) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}
