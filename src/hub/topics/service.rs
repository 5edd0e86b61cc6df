//! [`Topics`]: the inner service that subscribes each request to the topics it asks for.

use super::{
    composite,
    merge::{TopicsSubscription, MAX_MEMBERS},
};
use crate::{
    cursor::{LastEventId, ParsedCursor, StartAt},
    hub::{
        access::{check_grant, check_name, AuthorizeFn},
        subscribe::available,
        Hub,
    },
    principal::Principal,
    rejection::Reject,
};
use http::{request::Parts, Request, StatusCode};
use std::{
    borrow::Cow,
    fmt,
    future::{ready, Ready},
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// The default most topics per connection: 8.
pub const DEFAULT_MAX_TOPICS: usize = 8;

/// The default query parameter topics are read from: `topic` (repeated:
/// `?topic=a&topic=b`).
pub const DEFAULT_TOPIC_PARAM: &str = "topic";

type SelectFn = dyn Fn(&Parts) -> Result<Vec<String>, Reject> + Send + Sync;

#[derive(Clone)]
enum Select {
    Query(Cow<'static, str>),
    Fixed(Arc<[String]>),
    Custom(Arc<SelectFn>),
}

/// Service that subscribes each request to the topics it asks for, on one connection with one
/// cursor: the multi-topic sibling of [`Subscribe`](crate::hub::Subscribe). See the
/// [module docs](crate::hub#several-topics-on-one-connection).
///
/// Before any stream starts (so before a WebSocket upgrade), it refuses:
///
/// * `400 Bad Request` for no topic, more than [`max_topics`](Topics::max_topics), or a name
///   outside the [rules](crate::topic#topic-names) (the message says which and why);
/// * `403 Forbidden` for a topic the request's [`TopicGrant`](crate::topic::TopicGrant) (from its ticket) does not
///   cover, or that the [`authorize`](Topics::authorize) function refuses;
/// * `503 Service Unavailable` with `Retry-After: 1` while the hub is known to be down.
///
/// ```
/// use tower_push::{hub::{MemoryHub, Topics}, negotiate::Negotiate};
///
/// let hub = MemoryHub::new();
/// // `GET /events?topic=room.lobby&topic=user:alice`
/// let endpoint = Negotiate::new(
///     Topics::new(hub.clone())
///         .authorize(|principal, topic| match topic.strip_prefix("user:") {
///             Some(user) => principal.is_some_and(|p| p.as_str() == user),
///             None => true,
///         }),
/// );
/// # let _ = endpoint;
/// ```
#[derive(Clone)]
pub struct Topics<H> {
    hub: H,
    select: Select,
    authorize: Option<Arc<AuthorizeFn>>,
    max_topics: usize,
}

impl<H: Hub> Topics<H> {
    /// Topics from the repeated query parameter `topic` (`?topic=a&topic=b`).
    pub fn new(hub: H) -> Self {
        Self::from_query(hub, DEFAULT_TOPIC_PARAM)
    }

    /// Topics from the repeated query parameter `name`.
    pub fn from_query(hub: H, name: impl Into<Cow<'static, str>>) -> Self {
        Self::with(hub, Select::Query(name.into()))
    }

    /// The same topics for every request (checked like any other, per request).
    pub fn fixed<I>(hub: H, topics: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        Self::with(hub, Select::Fixed(topics.into()))
    }

    /// Topics chosen by `select` from the request's head (its path, query, headers, or the
    /// [`Principal`] in its extensions). A [`Reject`] it returns is the answer. The topics are
    /// then checked like any other.
    pub fn from_fn<F>(hub: H, select: F) -> Self
    where
        F: Fn(&Parts) -> Result<Vec<String>, Reject> + Send + Sync + 'static,
    {
        Self::with(hub, Select::Custom(Arc::new(select)))
    }

    fn with(hub: H, select: Select) -> Self {
        Self {
            hub,
            select,
            authorize: None,
            max_topics: DEFAULT_MAX_TOPICS,
        }
    }

    /// Decides per topic whether the request's principal may subscribe (`false`: `403`). It
    /// runs after the ticket's [`TopicGrant`](crate::topic::TopicGrant), when there is one, has allowed the topic.
    /// Default: every topic the grant allows (every topic without a grant).
    #[must_use]
    pub fn authorize<F>(mut self, authorize: F) -> Self
    where
        F: Fn(Option<&Principal>, &str) -> bool + Send + Sync + 'static,
    {
        self.authorize = Some(Arc::new(authorize));
        self
    }

    /// The most topics one request may ask for (more: `400`). Default 8; between 1 and 64.
    ///
    /// Each topic adds at most 13 bytes to the cursor on [`MemoryHub`](crate::hub::MemoryHub)
    /// (offsets below 10⁶), 16 on `NatsHub` and about 29 on `RedisHub`; a cursor longer than the transports' cap (512 bytes by
    /// default, [`LastEventIdLayer::max_len`](crate::last_event_id::LastEventIdLayer::max_len))
    /// is refused with `400`, so raise both together.
    #[must_use]
    pub fn max_topics(mut self, max: usize) -> Self {
        self.max_topics = max.clamp(1, MAX_MEMBERS);
        self
    }

    /// The hub.
    pub fn hub(&self) -> &H {
        &self.hub
    }

    /// The topics this service reads for a request with this head, decoded the way it decodes
    /// them (percent-decoding, duplicates removed), or the refusal it answers (`400` for a
    /// bad name or too many, `403` outside the grant). For an app that needs the same topics
    /// beside the stream, for example to know which room a WebSocket's messages go to.
    ///
    /// # Errors
    ///
    /// The [`Reject`] the service answers such a request with.
    pub fn requested_topics(&self, parts: &Parts) -> Result<Vec<String>, Reject> {
        self.topics(parts)
    }

    fn topics(&self, parts: &Parts) -> Result<Vec<String>, Reject> {
        let requested = match &self.select {
            Select::Fixed(topics) => topics.to_vec(),
            Select::Custom(select) => select(parts)?,
            Select::Query(name) => query_values(parts.uri.query().unwrap_or(""), name)?,
        };
        let mut topics: Vec<String> = Vec::with_capacity(requested.len());
        for topic in requested {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        if topics.is_empty() {
            let hint = match &self.select {
                Select::Query(name) => format!(" (?{name}=NAME)"),
                _ => String::new(),
            };
            return Err(bad_request(format!("no topic requested{hint}")));
        }
        if topics.len() > self.max_topics {
            return Err(bad_request(format!(
                "{} topics requested; at most {} per connection",
                topics.len(),
                self.max_topics
            )));
        }
        for topic in &topics {
            check_name(topic)?;
        }
        for topic in &topics {
            check_grant(&parts.extensions, topic, self.authorize.as_deref())?;
        }
        Ok(topics)
    }
}

fn bad_request(message: String) -> Reject {
    Reject::new(StatusCode::BAD_REQUEST, message).cause(crate::reason::Refusal::Topics)
}

/// Every value of the query parameter `name`, percent-decoded.
fn query_values(query: &str, name: &str) -> Result<Vec<String>, Reject> {
    let mut values = Vec::new();
    for (key, value) in crate::cursor::query_pairs(query) {
        if *crate::cursor::decode(key) != *name.as_bytes() {
            continue;
        }
        // Bounded before decoding: more values than any limit allows are refused below.
        if values.len() > MAX_MEMBERS {
            break;
        }
        let value = String::from_utf8(crate::cursor::decode(value).into_owned())
            .map_err(|_| bad_request(format!("?{name}= is not valid UTF-8")))?;
        values.push(value);
    }
    Ok(values)
}

/// Where each topic starts, from the request's (composite) cursor; `400` for a cursor that is
/// neither a composite nor a cursor at all.
fn starting_points(topics: &[String], from: Option<&str>) -> Result<Vec<StartAt>, Reject> {
    let Some(from) = from.filter(|f| !f.is_empty()) else {
        return Ok(vec![StartAt::Now; topics.len()]);
    };
    let Some(entries) = composite::decode(from) else {
        // One topic: a cursor of that topic (from a single-topic endpoint) resumes it. Several:
        // it cannot say which topic it is from, so every topic resets.
        let parsed = ParsedCursor::parse(from)?;
        let start = if topics.len() == 1 {
            StartAt::After(parsed)
        } else {
            StartAt::Unplaced
        };
        return Ok(vec![start; topics.len()]);
    };
    let tags: Vec<composite::Tag> = topics.iter().map(|t| composite::tag(t)).collect();
    Ok(tags
        .iter()
        .map(|tag| {
            if tags.iter().filter(|t| *t == tag).count() > 1 {
                // Two of the requested topics share a tag: neither can be told apart.
                return StartAt::Unplaced;
            }
            // A topic the cursor does not name cannot be placed (an entry lost, or a topic
            // added since), nor can an entry that is not a cursor: it resets, so the client
            // learns it may have missed events.
            entries
                .iter()
                .find(|(t, _)| t == tag)
                .and_then(|(_, cursor)| ParsedCursor::parse(cursor).ok())
                .map_or(StartAt::Unplaced, StartAt::After)
        })
        .collect())
}

impl<H: Hub, B> Service<Request<B>> for Topics<H> {
    type Response = TopicsSubscription<H::Subscription>;
    type Error = Reject;
    type Future = Ready<Result<Self::Response, Reject>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (parts, _body) = req.into_parts();
        let topics = match self.topics(&parts) {
            Ok(topics) => topics,
            Err(reject) => return ready(Err(reject)),
        };
        if let Err(reject) = available(&self.hub) {
            return ready(Err(reject));
        }
        let from = parts
            .extensions
            .get::<LastEventId>()
            .map(LastEventId::as_str);
        let starts = match starting_points(&topics, from) {
            Ok(starts) => starts,
            Err(reject) => return ready(Err(reject)),
        };
        let all = topics.join(",");
        let members = topics
            .into_iter()
            .zip(starts)
            .map(|(topic, from)| {
                let sub = self.hub.subscribe(&topic, from);
                (Arc::<str>::from(topic), sub)
            })
            .collect();
        // The connection's span names every topic (each subscription recorded its own).
        crate::observe::record_topic(&all);
        ready(Ok(TopicsSubscription::new(members)))
    }
}

impl<H: fmt::Debug> fmt::Debug for Topics<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let select = match &self.select {
            Select::Query(name) => format!("query {name:?}"),
            Select::Fixed(topics) => format!("fixed {topics:?}"),
            Select::Custom(_) => "custom".to_owned(),
        };
        f.debug_struct("Topics")
            .field("hub", &self.hub)
            .field("select", &select)
            .field("authorize", &self.authorize.is_some())
            .field("max_topics", &self.max_topics)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_points_follow_the_composite() {
        let topics = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let mut composite = String::new();
        let (ta, tb) = (composite::tag("a"), composite::tag("b"));
        composite::encode(
            [(&ta, Some("e-1")), (&tb, Some("e-2"))].into_iter(),
            &mut composite,
        );
        let after = |c: &str| StartAt::After(ParsedCursor::parse(c).unwrap());
        assert_eq!(
            starting_points(&topics, Some(&composite)).unwrap(),
            vec![after("e-1"), after("e-2"), StartAt::Unplaced],
            "a topic the composite does not name resets"
        );
        assert_eq!(
            starting_points(&topics, None).unwrap(),
            vec![StartAt::Now; 3]
        );
        assert_eq!(
            starting_points(&topics, Some("e-1")).unwrap(),
            vec![StartAt::Unplaced; 3],
            "a plain cursor cannot say which topic it is from"
        );
        assert_eq!(
            starting_points(&topics[..1], Some("e-1")).unwrap(),
            vec![after("e-1")]
        );
        assert_eq!(
            starting_points(&topics, Some("not a cursor"))
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST,
            "neither a composite nor a cursor: refused at the edge"
        );
    }

    #[test]
    fn query_values_are_decoded_and_bounded() {
        assert_eq!(
            query_values("topic=a&x=1&topic=b%3Ac&topic", "topic").unwrap(),
            vec!["a", "b:c", ""]
        );
        let many = vec!["topic=a"; 1000].join("&");
        assert!(query_values(&many, "topic").unwrap().len() <= MAX_MEMBERS + 1);
    }
}
