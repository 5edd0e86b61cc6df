//! What a transport takes from a stream: [`Push`] items, from anything that is
//! [`IntoPush`].

use crate::{error::BoxError, event::Event};
use std::convert::Infallible;

/// One item of a push stream as the transports see it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Push {
    /// An event to deliver.
    Event(Event),
    /// The stream has been idle: keep the connection alive. SSE writes a comment line,
    /// WebSocket sends a Ping, long-poll skips it.
    Heartbeat,
    /// The server is shutting down (see [`drain`](crate::drain)): end the connection with the
    /// transport's signal to come back. SSE ends the body (the client reconnects after its
    /// retry interval), WebSocket closes with 1012 (service restart), long-poll answers at
    /// once with what it has.
    Shutdown,
}

impl From<Event> for Push {
    fn from(event: Event) -> Self {
        Push::Event(event)
    }
}

/// Items a transport accepts from a stream: [`Event`], [`Push`], and `Result`s of either.
///
/// An `Err` item ends the stream: the transport logs it and closes cleanly (SSE ends the
/// body, long-poll answers with what it has), so a client resumes from its last cursor.
pub trait IntoPush {
    /// The error an item can carry.
    type Error: Into<BoxError>;

    /// Converts the item.
    ///
    /// # Errors
    ///
    /// When the item is an `Err`.
    fn into_push(self) -> Result<Push, Self::Error>;
}

impl IntoPush for Event {
    type Error = Infallible;
    fn into_push(self) -> Result<Push, Infallible> {
        Ok(Push::Event(self))
    }
}

impl IntoPush for Push {
    type Error = Infallible;
    fn into_push(self) -> Result<Push, Infallible> {
        Ok(self)
    }
}

impl<E: Into<BoxError>> IntoPush for Result<Event, E> {
    type Error = E;
    fn into_push(self) -> Result<Push, E> {
        self.map(Push::Event)
    }
}

impl<E: Into<BoxError>> IntoPush for Result<Push, E> {
    type Error = E;
    fn into_push(self) -> Result<Push, E> {
        self
    }
}
