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

/// The client's TypeScript declarations (`TowerPush.connect` and its options).
pub const TYPES: &str = include_str!("tower-push.d.ts");

/// Service that answers every request with the client script
/// (`Content-Type: text/javascript`), or with its TypeScript declarations when the path ends
/// in `.d.ts` (`Content-Type: application/typescript`): mount it at `/tower-push.js` and
/// `/tower-push.d.ts`.
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (body, content_type) = if req.uri().path().ends_with(".d.ts") {
            (TYPES, "application/typescript; charset=utf-8")
        } else {
            (SCRIPT, "text/javascript; charset=utf-8")
        };
        let mut res = Response::new(Full::new(body));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future as _;

    fn get(path: &str) -> Response<Full> {
        let mut fut = ClientScript.call(Request::get(path).body(()).unwrap());
        let waker = std::task::Waker::noop();
        match std::pin::Pin::new(&mut fut).poll(&mut Context::from_waker(waker)) {
            Poll::Ready(Ok(res)) => res,
            _ => unreachable!("answered at once"),
        }
    }

    #[test]
    fn serves_the_script_and_its_types_by_path() {
        let script = get("/static/tower-push.js");
        assert_eq!(
            script.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let types = get("/static/tower-push.d.ts");
        assert_eq!(
            types.headers()[header::CONTENT_TYPE],
            "application/typescript; charset=utf-8"
        );
        assert!(SCRIPT.contains("global.TowerPush = { connect: connect }"));
        assert!(TYPES.contains("function connect(options: Options): Connection;"));
    }
}
