//! [`ClientScript`]: the service that serves the browser client.

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
