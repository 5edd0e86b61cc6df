//! Liveness and readiness answers for orchestrator probes (Kubernetes `livenessProbe` and
//! `readinessProbe`, a load balancer's health check).
//!
//! * [`Health::liveness`]: `200 ok` whenever the process answers HTTP at all, draining or
//!   not, backbone up or down. Restarting a process does not bring a backbone back, and a
//!   draining process is finishing its streams on purpose.
//! * [`Health::readiness`]: `200 ready` while the process should get new clients; `503`
//!   with `Retry-After: 1` and one line per reason otherwise: the [`Drain`] is draining (a
//!   shutdown began), a hub's backbone is known to be down ([`Hub::available`]), or a check
//!   of your own fails.
//!
//! Both answer `GET` and `HEAD` (other methods get `405`), with `Cache-Control: no-store`, at
//! once: nothing waits on the network; a hub's availability is what its own traffic and
//! connection checks last saw (within its check period, for example
//! [`RedisHubBuilder::block`](crate::hub::RedisHubBuilder::block)).
//!
//! ```
//! use axum::Router;
//! use tower_push::{drain::Drain, health::Health, hub::MemoryHub};
//!
//! let drain = Drain::new();
//! let health = Health::new().drain(&drain).hub(MemoryHub::new());
//! let app: Router = Router::new()
//!     .route_service("/healthz", health.liveness())
//!     .route_service("/readyz", health.readiness());
//! # let _ = app;
//! ```
//!
//! With Kubernetes:
//!
//! ```yaml
//! livenessProbe:
//!   httpGet: { path: /healthz, port: 3000 }
//!   periodSeconds: 10
//! readinessProbe:
//!   httpGet: { path: /readyz, port: 3000 }
//!   periodSeconds: 2
//!   failureThreshold: 1
//! ```

use crate::{body::Full, drain::Drain, hub::Hub};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use std::{
    convert::Infallible,
    fmt,
    future::{ready, Ready},
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

type Check = dyn Fn() -> Result<(), String> + Send + Sync;

/// The checks behind the probes; see the [module docs](self).
#[derive(Clone, Default)]
#[must_use]
pub struct Health {
    drain: Option<Drain>,
    checks: Vec<(&'static str, Arc<Check>)>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Health")
            .field("drain", &self.drain)
            .field("checks", &names)
            .finish()
    }
}

impl Health {
    /// No check yet: ready always.
    pub fn new() -> Self {
        Self::default()
    }

    /// Not ready once `drain` is draining (a shutdown began).
    pub fn drain(mut self, drain: &Drain) -> Self {
        self.drain = Some(drain.clone());
        self
    }

    /// Not ready while `hub`'s backbone is known to be down ([`Hub::available`]).
    pub fn hub<H: Hub>(self, hub: H) -> Self {
        self.check("backbone", move || {
            hub.available().map_err(|error| error.to_string())
        })
    }

    /// Not ready while `check` fails; its message is a line of the `503` answer, after `name`.
    /// It runs on every readiness probe, so it must answer at once (read a flag, not the
    /// network).
    pub fn check(
        mut self,
        name: &'static str,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Arc::new(check)));
        self
    }

    /// The liveness service: `200 ok`.
    pub fn liveness(&self) -> Probe {
        Probe { health: None }
    }

    /// The readiness service: `200 ready`, or `503` with the reasons.
    pub fn readiness(&self) -> Probe {
        Probe {
            health: Some(Arc::new(self.clone())),
        }
    }

    /// Why the process is not ready (empty when it is).
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.drain.as_ref().is_some_and(Drain::is_draining) {
            reasons.push("draining: shutting down".to_owned());
        }
        for (name, check) in &self.checks {
            if let Err(why) = check() {
                reasons.push(format!("{name}: {why}"));
            }
        }
        reasons
    }
}

/// A probe service from [`Health::liveness`] or [`Health::readiness`].
#[derive(Clone, Debug)]
pub struct Probe {
    /// `None`: liveness.
    health: Option<Arc<Health>>,
}

impl<B> Service<Request<B>> for Probe {
    type Response = Response<Full>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut res = answer(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n".to_owned());
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return ready(Ok(res));
        }
        let reasons = self
            .health
            .as_ref()
            .map(|health| health.reasons())
            .unwrap_or_default();
        let res = match (&self.health, reasons.is_empty()) {
            (None, _) => answer(StatusCode::OK, "ok\n".to_owned()),
            (Some(_), true) => answer(StatusCode::OK, "ready\n".to_owned()),
            (Some(_), false) => {
                let mut res = answer(StatusCode::SERVICE_UNAVAILABLE, reasons.join("\n") + "\n");
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                res
            }
        };
        ready(Ok(res))
    }
}

fn answer(status: StatusCode, text: String) -> Response<Full> {
    let mut res = Response::new(Full::new(text));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    async fn probe(service: &mut Probe, method: Method) -> (StatusCode, String) {
        let req = Request::builder().method(method).body(()).unwrap();
        let res = service.call(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_follows_the_drain_and_the_checks() {
        let drain = Drain::new();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let health = Health::new().drain(&drain).check("cache", {
            let up = up.clone();
            move || {
                if up.load(std::sync::atomic::Ordering::Relaxed) {
                    Ok(())
                } else {
                    Err("unreachable".to_owned())
                }
            }
        });
        let (mut live, mut ready) = (health.liveness(), health.readiness());
        assert_eq!(
            probe(&mut ready, Method::GET).await,
            (StatusCode::OK, "ready\n".into())
        );
        up.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            probe(&mut ready, Method::GET).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cache: unreachable\n".into()
            )
        );
        up.store(true, std::sync::atomic::Ordering::Relaxed);
        drain.shutdown(std::time::Duration::ZERO).await;
        assert_eq!(
            probe(&mut ready, Method::HEAD).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        // Alive while draining.
        assert_eq!(
            probe(&mut live, Method::GET).await,
            (StatusCode::OK, "ok\n".into())
        );
        assert_eq!(
            probe(&mut live, Method::POST).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
