//! The verifying layer.

use super::{store::RedeemFuture, MemoryTicketStore, TicketError, TicketStore, Tickets};
use crate::principal::Principal;
use crate::{body::GuardBody, rejection};
use bytes::Bytes;
use http::{header, uri::PathAndQuery, HeaderValue, Request, Response, StatusCode, Uri};
use pin_project_lite::pin_project;
use std::{
    borrow::Cow,
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use tower_layer::Layer;
use tower_service::Service;

/// The prefix of a `Sec-WebSocket-Protocol` entry that carries a ticket: `ticket.<ticket>`.
pub const PROTOCOL_PREFIX: &str = "ticket.";

/// Where tickets are looked for, in this order: the query parameter, then
/// `Sec-WebSocket-Protocol`, then the cookie.
#[derive(Debug, Clone)]
struct Carriers {
    query: Option<Cow<'static, str>>,
    protocol: bool,
    cookie: Option<Cow<'static, str>>,
}

/// Layer that applies [`RequireAuthTicket`]. See the [module docs](crate::auth_ticket).
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthTicketLayer<St = MemoryTicketStore> {
    tickets: Tickets,
    store: St,
    carriers: Carriers,
}

impl AuthTicketLayer<MemoryTicketStore> {
    /// Verifies with `tickets`, redeems in a new [`MemoryTicketStore`], and reads the
    /// `ticket` query parameter and `Sec-WebSocket-Protocol: ticket.<t>`.
    pub fn new(tickets: Tickets) -> Self {
        Self {
            tickets,
            store: MemoryTicketStore::new(),
            carriers: Carriers {
                query: Some(Cow::Borrowed("ticket")),
                protocol: true,
                cookie: None,
            },
        }
    }
}

impl<St> AuthTicketLayer<St> {
    /// Redeems in `store` instead (share one between layers, or use a cluster-wide one).
    pub fn store<T: TicketStore>(self, store: T) -> AuthTicketLayer<T> {
        AuthTicketLayer {
            tickets: self.tickets,
            store,
            carriers: self.carriers,
        }
    }

    /// The query parameter that carries the ticket. Default `ticket`.
    pub fn query_param(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.carriers.query = Some(name.into());
        self
    }

    /// Don't read tickets from the query.
    pub fn no_query_param(mut self) -> Self {
        self.carriers.query = None;
        self
    }

    /// Whether a `Sec-WebSocket-Protocol` entry `ticket.<t>` carries the ticket (it is
    /// removed before the handshake picks a subprotocol, so only real subprotocols are
    /// answered). Default `true`.
    pub fn websocket_protocol(mut self, enabled: bool) -> Self {
        self.carriers.protocol = enabled;
        self
    }

    /// Also read the ticket from this cookie. Default: no cookie.
    pub fn cookie(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.carriers.cookie = Some(name.into());
        self
    }
}

impl<S, St: Clone> Layer<S> for AuthTicketLayer<St> {
    type Service = RequireAuthTicket<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuthTicket {
            inner,
            tickets: self.tickets.clone(),
            store: self.store.clone(),
            carriers: self.carriers.clone(),
        }
    }
}

/// Middleware that admits a request only with a valid, unused ticket, puts its
/// [`Principal`] in the extensions and removes the ticket from the request.
///
/// See the [module docs](crate::auth_ticket) for an example.
#[derive(Debug, Clone)]
pub struct RequireAuthTicket<S, St = MemoryTicketStore> {
    inner: S,
    tickets: Tickets,
    store: St,
    carriers: Carriers,
}

impl<S, St> RequireAuthTicket<S, St> {
    define_inner_service_accessors!();
}

/// The query's pairs, without empty ones (`a&&b`).
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    crate::cursor::query_pairs(query).filter(|(name, value)| !(name.is_empty() && value.is_empty()))
}

fn decode(s: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy()
}

impl Carriers {
    /// Finds the ticket and removes it from the request.
    fn take<B>(&self, req: &mut Request<B>) -> Option<String> {
        if let Some(name) = &self.query {
            let found = req.uri().query().and_then(|query| {
                query_pairs(query)
                    .find(|(n, _)| decode(n) == **name)
                    .map(|(_, value)| decode(value).into_owned())
            });
            if let Some(ticket) = found {
                strip_query(req, name);
                return Some(ticket);
            }
        }
        if self.protocol {
            if let Some(ticket) = strip_protocol(req) {
                return Some(ticket);
            }
        }
        if let Some(name) = &self.cookie {
            let cookies = req.headers().get_all(header::COOKIE);
            for cookie in cookies
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
            {
                if let Some((n, v)) = cookie.trim().split_once('=') {
                    if n == name {
                        return Some(v.trim_matches('"').to_owned());
                    }
                }
            }
        }
        None
    }
}

/// Rebuilds the URI without the `name` parameter, so inner layers and tracing never see it.
fn strip_query<B>(req: &mut Request<B>, name: &str) {
    let uri = req.uri();
    let Some(query) = uri.query() else { return };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && decode(p.split_once('=').map_or(*p, |(n, _)| n)) != name)
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// Takes a `ticket.<t>` entry out of `Sec-WebSocket-Protocol`, keeping the other entries.
fn strip_protocol<B>(req: &mut Request<B>) -> Option<String> {
    let mut ticket = None;
    let mut kept = Vec::new();
    for value in req.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        for entry in value
            .to_str()
            .ok()?
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            match entry.strip_prefix(PROTOCOL_PREFIX) {
                Some(t) if ticket.is_none() => ticket = Some(t.to_owned()),
                _ => kept.push(entry.to_owned()),
            }
        }
    }
    let ticket = ticket?;
    req.headers_mut().remove(header::SEC_WEBSOCKET_PROTOCOL);
    if !kept.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&kept.join(", ")) {
            req.headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    Some(ticket)
}

/// `401` with `WWW-Authenticate` and the short reason; `503` when the store is unreachable.
fn refusal(error: TicketError) -> Response<Bytes> {
    tracing::debug!(reason = error.code(), "auth ticket refused");
    let status = match error {
        TicketError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    crate::observe::refused(status, crate::reason::Refusal::Ticket);
    let mut res = rejection::text(status, Bytes::from(error.to_string()));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if status == StatusCode::UNAUTHORIZED {
        let challenge = format!("Ticket error=\"{}\"", error.code());
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&challenge).expect("codes are ASCII"),
        );
    }
    res
}

impl<S, St, B, ResBody> Service<Request<B>> for RequireAuthTicket<S, St>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    St: TicketStore,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(ticket) = self.carriers.take(&mut req) else {
            return ResponseFuture::refused(refusal(TicketError::Missing));
        };
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        let claims = match self.tickets.verify(&ticket, req.uri().path(), origin) {
            Ok(claims) => claims,
            Err(error) => return ResponseFuture::refused(refusal(error)),
        };
        // Remembered until the ticket would be refused as expired anyway.
        let expires_at = claims.expires_at.saturating_add(self.tickets.skew_secs());
        req.extensions_mut()
            .insert(Principal::new(claims.principal));
        if let Some(grant) = claims.topics {
            req.extensions_mut().insert(grant);
        }
        let redeem = self.store.redeem(claims.nonce, expires_at);
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            kind: Kind::Redeeming {
                redeem,
                next: Some((inner, req)),
            },
        }
    }
}

pin_project! {
    /// Response future of [`RequireAuthTicket`].
    pub struct ResponseFuture<S, F, B> {
        #[pin]
        kind: Kind<S, F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, F, B> {
        Redeeming { redeem: RedeemFuture, next: Option<(S, Request<B>)> },
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Bytes>> },
    }
}

impl<S, F, B> ResponseFuture<S, F, B> {
    fn refused(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
}

impl<S, F, B> fmt::Debug for ResponseFuture<S, F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, S::Future, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<GuardBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut kind = self.as_mut().project().kind;
            match kind.as_mut().project() {
                KindProj::Redeeming { redeem, next } => {
                    let first = match ready!(redeem.as_mut().poll(cx)) {
                        Ok(first) => first,
                        Err(error) => {
                            tracing::warn!(%error, "auth ticket store failed");
                            let res = refusal(TicketError::StoreUnavailable);
                            kind.set(Kind::Refused {
                                response: Some(res),
                            });
                            continue;
                        }
                    };
                    if !first {
                        kind.set(Kind::Refused {
                            response: Some(refusal(TicketError::Replayed)),
                        });
                        continue;
                    }
                    let (mut inner, req) = next.take().expect("polled after completion");
                    let future = inner.call(req);
                    kind.set(Kind::Inner { future });
                }
                KindProj::Inner { future } => {
                    let res = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(res.map(GuardBody::inner)));
                }
                KindProj::Refused { response } => {
                    let res = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(res.map(GuardBody::refused)));
                }
            }
        }
    }
}
