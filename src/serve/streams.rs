//! The stall policy for HTTP/2 streams. A client that stops reading one stream exhausts that
//! stream's flow-control window while the connection's other streams go on, so the
//! connection-level guard ([`GuardedIo`](crate::connection::GuardedIo)) sees writes progress
//! and hyper simply stops polling the stream's body: nothing inside the body can notice. The
//! executor hyper spawns each stream's task on ([`StreamExec`]) wraps it in [`Watched`],
//! which sees the body's frames through a [`Progress`] and drops the task (hyper then resets
//! the stream with `CANCEL`) when a frame has waited for the window longer than the stall
//! timeout.

use pin_project_lite::pin_project;
use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// What a stream's body has handed to hyper.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Data frames yielded so far.
    frames: AtomicU64,
    /// The last frame was yielded and the body has not been polled since: hyper holds it,
    /// waiting for the window.
    waiting: AtomicBool,
}

impl Progress {
    /// The body is polled: hyper took what it had.
    pub(super) fn polled(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// The body yielded a data frame.
    pub(super) fn yielded(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.waiting.store(true, Ordering::Relaxed);
    }
}

thread_local! {
    /// The progress of the stream whose request the connection just handed to the service;
    /// hyper spawns that stream's task right after, in the same poll.
    static NEXT: RefCell<Option<Arc<Progress>>> = const { RefCell::new(None) };
}

/// Called by the connection's service for an HTTP/2 request: the task hyper spawns next is
/// watched through the returned progress.
pub(super) fn watch_next() -> Arc<Progress> {
    let progress = Arc::new(Progress::default());
    NEXT.with(|next| *next.borrow_mut() = Some(progress.clone()));
    progress
}

/// hyper's executor for HTTP/2 stream tasks: tokio's, with each stream watched.
#[cfg(feature = "http2")]
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamExec {
    pub(super) stall: Duration,
}

#[cfg(feature = "http2")]
impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, task: F) {
        match NEXT.with(|next| next.borrow_mut().take()) {
            Some(progress) => {
                tokio::spawn(Watched {
                    task,
                    progress,
                    stall: self.stall,
                    deadline: None,
                    frames: 0,
                });
            }
            None => {
                tokio::spawn(task);
            }
        }
    }
}

pin_project! {
    /// A stream's task, dropped when a frame of its body waited for the window longer than
    /// the stall timeout.
    struct Watched<F> {
        #[pin]
        task: F,
        progress: Arc<Progress>,
        stall: Duration,
        // Set while a frame waits (made once, reset after).
        deadline: Option<Pin<Box<Sleep>>>,
        // The frame count the deadline was set for.
        frames: u64,
    }
}

impl<F: Future<Output = ()>> Future for Watched<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.task.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let progress = &this.progress;
        if !progress.waiting.load(Ordering::Relaxed) {
            // Waiting for the body, not for the client: no deadline (the sleep is kept).
            *this.frames = u64::MAX;
            return Poll::Pending;
        }
        let frames = progress.frames.load(Ordering::Relaxed);
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(*this.stall)));
        if *this.frames != frames {
            // A new frame waits: its own deadline.
            *this.frames = frames;
            deadline.as_mut().reset(Instant::now() + *this.stall);
        }
        if deadline.as_mut().poll(cx).is_ready() {
            tracing::debug!(after = ?this.stall, "HTTP/2 stream not read; resetting it");
            crate::observe::write_stalled();
            return Poll::Ready(());
        }
        Poll::Pending
    }
}
