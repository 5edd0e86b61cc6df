//! [`TopicsSubscription`]: one stream of several topics' subscriptions, each event's id the
//! composite cursor of every topic.

use super::composite::{self, Tag};
use crate::{
    event::Event,
    hub::{reset_data, RESET_EVENT},
};
use futures_core::Stream;
use std::{
    collections::VecDeque,
    fmt,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll, Wake, Waker},
};

/// The most topics one subscription merges: 64 (one bit each in the wake-up mask).
pub(crate) const MAX_MEMBERS: usize = 64;

/// Which members were woken, and the task to wake for them.
#[derive(Default)]
struct Signal {
    ready: AtomicU64,
    task: Mutex<Option<Waker>>,
}

impl Signal {
    fn register(&self, waker: &Waker) {
        let mut task = crate::sync::lock(&self.task);
        if !task.as_ref().is_some_and(|t| t.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }
}

/// A member's waker: marks the member ready and wakes the task.
struct MemberWaker {
    bit: u64,
    signal: Arc<Signal>,
}

impl Wake for MemberWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.signal.ready.fetch_or(self.bit, Ordering::AcqRel);
        let task = crate::sync::lock(&self.signal.task).clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

struct Member<S> {
    sub: S,
    waker: Waker,
    topic: Arc<str>,
    tag: Tag,
    /// The topic's own cursor: the id of the last event it gave.
    cursor: Option<Box<str>>,
}

/// The subscription stream of [`Topics`](super::Topics): the events of several topics in one
/// stream, each topic's in its order.
///
/// It starts, like a single topic's subscription, with a position event (id only) once every
/// topic has told its starting position, preceded by a [`RESET_EVENT`] for each topic whose
/// cursor could not be honoured (`event: reset` with that topic; its data JSON adds
/// `"topic"`). Every later event carries its topic ([`Event::get_topic`]) and, as its id, the
/// composite cursor of all the topics: sent back, it resumes every topic exactly.
///
/// Only the topics that were woken are polled, so a connection's cost per event does not grow
/// with its number of topics. The stream ends when one topic's stream ends (the client
/// reconnects and resumes them all).
#[must_use = "streams do nothing unless polled"]
pub struct TopicsSubscription<S> {
    members: Box<[Member<S>]>,
    signal: Arc<Signal>,
    /// Members to poll again without a wake-up (they gave an event; they may have more).
    again: u64,
    /// Members that have not given their first event yet.
    starting: u64,
    /// Members that started while others had not: not polled until all have started.
    held: u64,
    /// The resets and the position event that open the stream.
    opening: VecDeque<Event>,
    /// Where the next round of polling starts, for fairness between topics.
    next: usize,
    /// The composite cursor, rebuilt into this buffer for every event.
    composite: String,
    done: bool,
}

impl<S> TopicsSubscription<S> {
    /// Merges `subs` (each a topic's subscription, in the order of `topics`).
    pub(crate) fn new(members: Vec<(Arc<str>, S)>) -> Self {
        debug_assert!(members.len() <= MAX_MEMBERS && !members.is_empty());
        let signal = Arc::new(Signal::default());
        let members: Box<[Member<S>]> = members
            .into_iter()
            .enumerate()
            .map(|(i, (topic, sub))| Member {
                sub,
                waker: Waker::from(Arc::new(MemberWaker {
                    bit: 1 << i,
                    signal: signal.clone(),
                })),
                tag: composite::tag(&topic),
                topic,
                cursor: None,
            })
            .collect();
        let all = if members.len() == 64 {
            u64::MAX
        } else {
            (1u64 << members.len()) - 1
        };
        Self {
            members,
            signal,
            again: all,
            starting: all,
            held: 0,
            opening: VecDeque::new(),
            next: 0,
            composite: String::with_capacity(64),
            done: false,
        }
    }

    /// The topics, in order.
    pub fn topics(&self) -> impl ExactSizeIterator<Item = &str> {
        self.members.iter().map(|m| &*m.topic)
    }

    fn id(&mut self) -> Box<str> {
        composite::encode(
            self.members.iter().map(|m| (&m.tag, m.cursor.as_deref())),
            &mut self.composite,
        );
        self.composite.as_str().into()
    }

    /// A topic's reset, with the composite id and the topic in its data.
    fn reset(&mut self, i: usize, event: &Event) -> Event {
        let id = self.id();
        let topic = self.members[i].topic.clone();
        let reason = event
            .get_data()
            .and_then(|d| d.strip_prefix("{\"reason\":\""))
            .and_then(|d| d.split_once('"'))
            .map_or("invalid", |(reason, _)| reason);
        event
            .retarget(id.clone(), Some(&topic))
            .data(reset_data(reason, &id, Some(&topic)))
    }

    /// Handles member `i`'s event: the event to give, if any.
    fn on_event(&mut self, i: usize, event: Event) -> Option<Event> {
        let bit = 1u64 << i;
        if let Some(id) = event.get_id() {
            self.members[i].cursor = Some(id.into());
        }
        let is_reset = event.get_event() == Some(RESET_EVENT);
        if self.starting & bit != 0 {
            self.starting &= !bit;
            self.held |= bit;
            // The first event is the topic's position (kept in its cursor) or its reset.
            if is_reset || !event.is_cursor_only() {
                self.opening
                    .push_back(event.retarget("".into(), Some(&self.members[i].topic)));
            }
            if self.starting == 0 {
                self.again |= self.held;
                self.held = 0;
                // Now every topic's cursor is known: write the opening's ids.
                let opening = std::mem::take(&mut self.opening);
                for event in opening {
                    let (j, _) = self
                        .members
                        .iter()
                        .enumerate()
                        .find(|(_, m)| Some(&*m.topic) == event.get_topic())
                        .expect("opening events carry their member's topic");
                    let event = if event.get_event() == Some(RESET_EVENT) {
                        self.reset(j, &event)
                    } else {
                        let id = self.id();
                        event.retarget(id, None)
                    };
                    self.opening.push_back(event);
                }
                let position = Event::new()
                    .id(self.id().into_string())
                    .expect("composites hold no line breaks");
                self.opening.push_back(position);
            }
            return None;
        }
        if is_reset {
            return Some(self.reset(i, &event));
        }
        let id = self.id();
        if event.is_cursor_only() {
            return Some(Event::new().id(id.into_string()).expect("no line breaks"));
        }
        let topic = self.members[i].topic.clone();
        Some(event.retarget(id, Some(&topic)))
    }
}

impl<S: Stream<Item = Event> + Unpin> Stream for TopicsSubscription<S> {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.starting == 0 {
            if let Some(event) = this.opening.pop_front() {
                return Poll::Ready(Some(event));
            }
        }
        this.signal.register(cx.waker());
        let n = this.members.len();
        loop {
            let mut ready = (this.signal.ready.swap(0, Ordering::AcqRel) | this.again) & !this.held;
            this.again = 0;
            if ready == 0 {
                return Poll::Pending;
            }
            for k in 0..n {
                let i = (this.next + k) % n;
                let bit = 1u64 << i;
                if ready & bit == 0 {
                    continue;
                }
                ready &= !bit;
                let member = &mut this.members[i];
                let mut member_cx = Context::from_waker(&member.waker);
                match Pin::new(&mut member.sub).poll_next(&mut member_cx) {
                    Poll::Pending => {}
                    Poll::Ready(None) => {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(event)) => {
                        // The member may have more, and the rest of this round is owed.
                        this.again |= ready | bit;
                        this.next = (i + 1) % n;
                        if let Some(event) = this.on_event(i, event) {
                            return Poll::Ready(Some(event));
                        }
                        if this.starting == 0 {
                            if let Some(event) = this.opening.pop_front() {
                                return Poll::Ready(Some(event));
                            }
                        }
                        break;
                    }
                }
            }
        }
    }
}

impl<S> fmt::Debug for TopicsSubscription<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicsSubscription")
            .field("topics", &self.topics().collect::<Vec<_>>())
            .field("starting", &self.starting.count_ones())
            .finish_non_exhaustive()
    }
}
