//! Who may subscribe to which topic: one check that [`Subscribe`](super::Subscribe),
//! [`Topics`](super::Topics) and hand-written services share.

use crate::{
    principal::Principal,
    rejection::Reject,
    topic::{check_topic, TopicGrant},
};
use http::{Extensions, StatusCode};

/// An application's own per-topic rule: `false` answers `403`.
pub(crate) type AuthorizeFn = dyn Fn(Option<&Principal>, &str) -> bool + Send + Sync;

/// Checks that the request whose extensions are `extensions` may subscribe to `topic`, the
/// same check [`Subscribe`](super::Subscribe) and [`Topics`](super::Topics) make. Call it in a
/// hand-written inner service before [`Hub::subscribe`](super::Hub::subscribe).
///
/// * `400 Bad Request` when `topic` breaks the [topic rules](crate::topic#topic-names) (the
///   message says why);
/// * `403 Forbidden` when the request carries a [`TopicGrant`] (an
///   [`auth_ticket`](crate::auth_ticket) ticket minted with topics puts one there) that does
///   not allow `topic`.
///
/// A request without a grant (no ticket layer, or a ticket minted without topics) may
/// subscribe to any well-formed topic: the grant narrows what a ticket opens, and your own
/// rule (for example [`Subscribe::authorize`](super::Subscribe::authorize)) decides the rest.
///
/// ```
/// use http::{Request, StatusCode};
/// use tower_push::{hub::check_access, topic::TopicGrant};
///
/// let mut req = Request::new(());
/// req.extensions_mut().insert(TopicGrant::new(["order:1"]).unwrap());
/// assert!(check_access(req.extensions(), "order:1").is_ok());
/// assert_eq!(
///     check_access(req.extensions(), "order:2").unwrap_err().status(),
///     StatusCode::FORBIDDEN
/// );
/// assert_eq!(
///     check_access(req.extensions(), "order 2").unwrap_err().status(),
///     StatusCode::BAD_REQUEST
/// );
/// ```
///
/// # Errors
///
/// The [`Reject`] to answer with, which the transports turn into the response before any
/// stream starts (so before a WebSocket upgrade).
pub fn check_access(extensions: &Extensions, topic: &str) -> Result<(), Reject> {
    check_name(topic)?;
    check_grant(extensions, topic, None)
}

/// `400` for a topic name outside the rules.
pub(crate) fn check_name(topic: &str) -> Result<(), Reject> {
    check_topic(topic).map_err(|error| {
        let shown: String = topic.chars().take(80).collect();
        Reject::new(StatusCode::BAD_REQUEST, format!("topic {shown:?}: {error}"))
            .cause(crate::reason::Refusal::Topics)
    })
}

/// `403` unless the request's grant (if any) and `authorize` (if any) allow `topic`.
pub(crate) fn check_grant(
    extensions: &Extensions,
    topic: &str,
    authorize: Option<&AuthorizeFn>,
) -> Result<(), Reject> {
    let granted = extensions
        .get::<TopicGrant>()
        .is_none_or(|grant| grant.allows(topic));
    if granted && authorize.is_none_or(|f| f(extensions.get::<Principal>(), topic)) {
        return Ok(());
    }
    tracing::debug!(topic, "subscription refused: topic not granted");
    Err(Reject::new(
        StatusCode::FORBIDDEN,
        format!("not allowed to subscribe to topic {topic:?}"),
    )
    .cause(crate::reason::Refusal::Topics))
}
