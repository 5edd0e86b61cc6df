//! The browser client: a small script, served by a tower service, that connects to a
//! [`Negotiate`](crate::negotiate::Negotiate) endpoint.
//!
//! It prefers WebSocket, falls back to SSE and then long-poll when a transport cannot open,
//! fetches a fresh [auth ticket](crate::auth_ticket) before every (re)connect, resumes with
//! the last cursor (`lastEventId`), and reports its status. No dependencies; about 5 KB.
//! Over SSE it reads the cursor from `position` events, so enable
//! [`SseLayer::named_positions`](crate::sse::SseLayer::named_positions) on the endpoint.
//!
//! ```html
//! <script src="/tower-push.js"></script>
//! <script>
//!   const conn = TowerPush.connect({
//!     url: "/api/events",
//!     ticket: async () => (await (await fetch("/api/ticket", { method: "POST" })).json()).ticket,
//!     onEvent: (e) => console.log(e.event, e.data),
//!     onStatus: (status, transport) => console.log(status, transport),
//!   });
//! </script>
//! ```
//!
//! Serve it with [`ClientScript`], e.g. axum's `route_service("/tower-push.js", ClientScript)`.

use crate::body::Full;
use http::{header, HeaderValue, Request, Response};
use std::{
    convert::Infallible,
    future::{ready, Ready},
    task::{Context, Poll},
};
use tower_service::Service;

/// The client script's source.
pub const SCRIPT: &str = include_str!("tower-push.js");

/// Service that answers every request with the client script
/// (`Content-Type: text/javascript`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientScript;

impl<B> Service<Request<B>> for ClientScript {
    type Response = Response<Full>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full>, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut res = Response::new(Full::new(SCRIPT));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        ready(Ok(res))
    }
}
