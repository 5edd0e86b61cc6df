//! The ready-made minting endpoint.

use super::{Binding, TicketError, Tickets};
use crate::principal::Principal;
use crate::topic::TopicGrant;
use crate::{
    body::Full,
    json::json_string,
    rejection::{self, Reject},
};
use bytes::{Bytes, BytesMut};
use http::{header, request::Parts, HeaderValue, Request, Response, StatusCode};
use std::{
    convert::Infallible,
    fmt,
    future::{ready, Ready},
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// Service that mints a ticket for the [`Principal`] an upstream auth layer put in the
/// request extensions, answering `200` JSON `{"ticket":"...","expires_in":N}` (seconds, and
/// `"topics":[..]` when the ticket grants exact topic names) with `Cache-Control: no-store`;
/// `401` when no principal is there.
///
/// # Per-resource tickets
///
/// [`bind_with`](MintTicket::bind_with) computes each ticket's binding from the mint request:
/// `POST /orders/42/ticket` mints a ticket only good on `/orders/42/events` for the topic
/// `order:42`, after your own check that the principal may see order 42. The push endpoint
/// takes the topic from its path ([`Subscribe::from_fn`](crate::hub::Subscribe::from_fn)),
/// and the ticket's path and grant make any other order a refusal. The browser client's
/// `ticket` function mints a fresh one before every reconnect:
///
/// ```
/// use http::StatusCode;
/// use tower_push::{auth_ticket::{Binding, Key, MintTicket, Tickets}, topic::TopicGrant, Reject};
///
/// let mint = MintTicket::new(Tickets::new(Key::generate(1))).bind_with(|parts, principal| {
///     let id = parts
///         .uri
///         .path()
///         .strip_prefix("/orders/")
///         .and_then(|rest| rest.strip_suffix("/ticket"))
///         .ok_or_else(|| Reject::new(StatusCode::NOT_FOUND, "no such order"))?;
///     // Your own rule: may this principal see this order?
///     if principal.as_str() != "alice" {
///         return Err(Reject::new(StatusCode::FORBIDDEN, "not your order"));
///     }
///     let grant = TopicGrant::new([format!("order:{id}")])
///         .map_err(|e| Reject::new(StatusCode::BAD_REQUEST, e.to_string()))?;
///     Ok(Binding::new().path(format!("/orders/{id}/events")).topics(grant))
/// });
/// # let _ = mint;
/// ```
///
/// `examples/orders.rs` runs it end to end: mint, connect, reconnect with a new ticket and
/// resume.
///
/// ```
/// use http::Request;
/// use tower::ServiceExt;
/// use tower_push::{auth_ticket::{Key, MintTicket, Tickets}, principal::Principal};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mint = MintTicket::new(Tickets::new(Key::generate(1))).bind_path("/events");
/// let mut req = Request::post("/api/ticket").body(()).unwrap();
/// req.extensions_mut().insert(Principal::new("alice")); // your auth layer does this
/// let res = mint.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), 200);
/// # }
/// ```
#[derive(Clone)]
pub struct MintTicket {
    tickets: Tickets,
    path: Option<String>,
    bind_origin: bool,
    topics: Option<Arc<GrantFn>>,
    bind_with: Option<Arc<BindFn>>,
}

type GrantFn = dyn Fn(&str) -> TopicGrant + Send + Sync;
type BindFn = dyn Fn(&Parts, &Principal) -> Result<Binding, Reject> + Send + Sync;

impl fmt::Debug for MintTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintTicket")
            .field("tickets", &self.tickets)
            .field("path", &self.path)
            .field("bind_origin", &self.bind_origin)
            .field("topics", &self.topics.is_some())
            .field("bind_with", &self.bind_with.is_some())
            .finish()
    }
}

impl MintTicket {
    /// Mints unbound tickets with `tickets`.
    pub fn new(tickets: Tickets) -> Self {
        Self {
            tickets,
            path: None,
            bind_origin: false,
            topics: None,
            bind_with: None,
        }
    }

    /// Computes each ticket's [`Binding`] (its path, its topics) from the mint request and its
    /// principal; a [`Reject`] it returns is the answer (for example `403` for a resource the
    /// principal may not see). It replaces [`bind_path`](Self::bind_path) and
    /// [`grant_topics`](Self::grant_topics); [`bind_origin`](Self::bind_origin) still adds
    /// the request's `Origin`. See [per-resource tickets](Self#per-resource-tickets).
    #[must_use]
    pub fn bind_with<F>(mut self, bind: F) -> Self
    where
        F: Fn(&Parts, &Principal) -> Result<Binding, Reject> + Send + Sync + 'static,
    {
        self.bind_with = Some(Arc::new(bind));
        self
    }

    /// Binds each ticket to the topics `grant` gives its principal (see
    /// [`Binding::topics`]): the push endpoint then refuses any other topic with `403`, with
    /// no database call. Default: no grant (every topic, as far as the ticket goes).
    ///
    /// ```
    /// use tower_push::auth_ticket::{Key, MintTicket, Tickets};
    /// use tower_push::topic::TopicGrant;
    ///
    /// let mint = MintTicket::new(Tickets::new(Key::generate(1))).grant_topics(|principal| {
    ///     TopicGrant::new(["room.*".to_owned(), format!("user:{principal}")])
    ///         .unwrap_or_else(|_| TopicGrant::new(["room.*"]).unwrap())
    /// });
    /// # let _ = mint;
    /// ```
    #[must_use]
    pub fn grant_topics<F>(mut self, grant: F) -> Self
    where
        F: Fn(&str) -> TopicGrant + Send + Sync + 'static,
    {
        self.topics = Some(Arc::new(grant));
        self
    }

    /// Binds each ticket to the push route's path. Default: unbound.
    #[must_use]
    pub fn bind_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Binds each ticket to the `Origin` of the minting request (which must then be present).
    /// Default `false`.
    #[must_use]
    pub fn bind_origin(mut self, enabled: bool) -> Self {
        self.bind_origin = enabled;
        self
    }

    /// Mints for `principal` with this service's bindings (`origin` is the minting request's).
    ///
    /// # Errors
    ///
    /// See [`Tickets::mint`]; [`TicketError::WrongOrigin`] when origin binding is on and
    /// `origin` is `None`.
    pub fn mint(
        &self,
        principal: &str,
        origin: Option<&str>,
    ) -> Result<super::Ticket, TicketError> {
        let mut binding = Binding::new();
        if let Some(path) = &self.path {
            binding = binding.path(path.clone());
        }
        if self.bind_origin {
            binding = binding.origin(origin.ok_or(TicketError::WrongOrigin)?);
        }
        if let Some(grant) = &self.topics {
            binding = binding.topics(grant(principal));
        }
        self.tickets.mint(principal, &binding)
    }

    /// The JSON answer for a minted ticket.
    pub fn respond(ticket: &super::Ticket) -> Response<Full> {
        Self::respond_with(ticket, None)
    }

    /// The JSON answer for a ticket granting `topics`: they are listed (`"topics":[..]`) when
    /// every pattern is an exact topic name, for the client to ask for.
    fn respond_with(ticket: &super::Ticket, topics: Option<&TopicGrant>) -> Response<Full> {
        let mut json = BytesMut::with_capacity(ticket.as_str().len() + 40);
        json.extend_from_slice(b"{\"ticket\":");
        json_string(&mut json, ticket.as_str());
        json.extend_from_slice(
            format!(",\"expires_in\":{}", ticket.expires_in().as_secs()).as_bytes(),
        );
        if let Some(grant) = topics.filter(|g| g.patterns().all(|p| !p.ends_with('*'))) {
            json.extend_from_slice(b",\"topics\":[");
            for (i, topic) in grant.patterns().enumerate() {
                if i > 0 {
                    json.extend_from_slice(b",");
                }
                json_string(&mut json, topic);
            }
            json.extend_from_slice(b"]");
        }
        json.extend_from_slice(b"}");
        let mut res = Response::new(Full::new(json.freeze()));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

impl<B> Service<Request<B>> for MintTicket {
    type Response = Response<Full>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full>, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (parts, _body) = req.into_parts();
        let Some(principal) = parts.extensions.get::<Principal>() else {
            return ready(Ok(rejection::text(
                StatusCode::UNAUTHORIZED,
                Bytes::from_static(b"not authenticated"),
            )
            .map(Full::new)));
        };
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        let minted = match &self.bind_with {
            None => self
                .mint(principal.as_str(), origin)
                .map(|ticket| (ticket, self.topics.as_ref().map(|g| g(principal.as_str())))),
            Some(bind) => match bind(&parts, principal) {
                Err(reject) => return ready(Ok(reject.into_http_response().map(Full::new))),
                Ok(mut binding) => {
                    if self.bind_origin && !binding.has_origin() {
                        match origin {
                            Some(origin) => binding = binding.origin(origin),
                            None => {
                                return ready(Ok(bad_request(&TicketError::WrongOrigin)));
                            }
                        }
                    }
                    let topics = binding.get_topics().cloned();
                    self.tickets
                        .mint(principal.as_str(), &binding)
                        .map(|ticket| (ticket, topics))
                }
            },
        };
        ready(Ok(match minted {
            Ok((ticket, topics)) => Self::respond_with(&ticket, topics.as_ref()),
            Err(error) => bad_request(&error),
        }))
    }
}

fn bad_request(error: &TicketError) -> Response<Full> {
    rejection::text(StatusCode::BAD_REQUEST, Bytes::from(error.to_string())).map(Full::new)
}
