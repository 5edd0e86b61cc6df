//! The ready-made minting endpoint.

use super::{Binding, Principal, TicketError, Tickets};
use crate::topic::TopicGrant;
use crate::{body::Full, json::json_string, rejection};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Request, Response, StatusCode};
use std::{
    convert::Infallible,
    fmt,
    future::{ready, Ready},
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// Service that mints a ticket for the [`Principal`] an upstream auth layer put in the
/// request extensions, answering `200` JSON `{"ticket":"...","expires_in":N}` (seconds) with
/// `Cache-Control: no-store`; `401` when no principal is there.
///
/// ```
/// use http::Request;
/// use tower::ServiceExt;
/// use tower_push::auth_ticket::{Key, MintTicket, Principal, Tickets};
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
}

type GrantFn = dyn Fn(&str) -> TopicGrant + Send + Sync;

impl fmt::Debug for MintTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintTicket")
            .field("tickets", &self.tickets)
            .field("path", &self.path)
            .field("bind_origin", &self.bind_origin)
            .field("topics", &self.topics.is_some())
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
        }
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
        let mut json = BytesMut::with_capacity(ticket.as_str().len() + 40);
        json.extend_from_slice(b"{\"ticket\":");
        json_string(&mut json, ticket.as_str());
        json.extend_from_slice(
            format!(",\"expires_in\":{}}}", ticket.expires_in().as_secs()).as_bytes(),
        );
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
        let res = match req.extensions().get::<Principal>() {
            None => rejection::text(
                StatusCode::UNAUTHORIZED,
                Bytes::from_static(b"not authenticated"),
            )
            .map(Full::new),
            Some(principal) => {
                let origin = req
                    .headers()
                    .get(header::ORIGIN)
                    .and_then(|o| o.to_str().ok());
                match self.mint(principal.as_str(), origin) {
                    Ok(ticket) => Self::respond(&ticket),
                    Err(error) => {
                        rejection::text(StatusCode::BAD_REQUEST, Bytes::from(error.to_string()))
                            .map(Full::new)
                    }
                }
            }
        };
        ready(Ok(res))
    }
}
