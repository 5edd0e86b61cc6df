//! Several topics on one connection: [`Topics`] (the inner service) and
//! [`TopicsSubscription`] (its stream). See the
//! [hub's module docs](crate::hub#several-topics-on-one-connection).

mod composite;
mod merge;
mod service;

pub use merge::TopicsSubscription;
pub use service::{Topics, DEFAULT_MAX_TOPICS, DEFAULT_TOPIC_PARAM};
