//! The subscription stream: the shared backbone's, named for NATS.

use super::shared::NatsHub;
use crate::{event::Event, hub::backbone::Subscription};
use futures_core::Stream;
use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

/// The subscription stream of a [`NatsHub`]. See the [module docs](crate::hub).
#[must_use = "streams do nothing unless polled"]
pub struct NatsSubscription(pub(super) Subscription<NatsHub>);

impl fmt::Debug for NatsSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Stream for NatsSubscription {
    type Item = Event;

    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        Pin::new(&mut self.0).poll_next(cx)
    }
}
