//! Push routes over HTTPS with HTTP/2: the serving recipe with a certificate (feature `tls`).
//! One endpoint, `/events`, serves the hub's `ticks` topic over SSE, long-poll or WebSocket
//! (RFC 8441 over HTTP/2); a tick is published every `TICK_MS` milliseconds (0: never).
//! `/streams` answers how many push streams are open.
//!
//! ```text
//! # a self-signed pair for development (browsers: accept it once, or use mkcert)
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
//!     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
//!     -keyout key.pem -out cert.pem
//! TLS_CERT=cert.pem TLS_KEY=key.pem cargo run --example https --features tls
//! curl -k --http2 -N -H 'accept: text/event-stream' https://localhost:3443/events
//! ```
//!
//! `scripts/h2-memory.sh` measures this server's memory per idle stream with `h2load`
//! (docs/PERFORMANCE.md). It has no auth: put the ticket layer in front for real use, as the
//! chat does.

use std::time::Duration;
use tower::ServiceBuilder;
use tower_push::{
    drain::Drain,
    hub::{MemoryHub, Subscribe},
    negotiate::NegotiateLayer,
    serve::{self, Server, Tls},
    Event,
};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Serves `/events` on `listener` with `tls` until `signal`.
async fn run(
    listener: tokio::net::TcpListener,
    tls: Tls,
    hub: MemoryHub,
    signal: impl std::future::Future<Output = ()>,
) -> serve::Shutdown {
    let drain = Drain::new();
    let events = ServiceBuilder::new()
        .layer(NegotiateLayer::new())
        .layer(drain.layer())
        .service(Subscribe::new(hub, "ticks"));
    // How many push streams are open (what `scripts/h2-memory.sh` waits for).
    let open = drain.clone();
    let app = axum::Router::new().route_service("/events", events).route(
        "/streams",
        axum::routing::get(move || async move { open.open().to_string() }),
    );
    Server::new(&drain)
        .tls(tls)
        .run(listener, app, signal)
        .await
}

#[tokio::main]
async fn main() {
    let tls = Tls::from_pem_files(env("TLS_CERT", "cert.pem"), env("TLS_KEY", "key.pem"))
        .unwrap_or_else(|error| panic!("TLS_CERT / TLS_KEY: {error}"));
    let port = env("PORT", "3443");
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("bind");
    let hub = MemoryHub::new();
    let tick: u64 = env("TICK_MS", "1000").parse().unwrap_or(1000);
    if tick > 0 {
        let hub = hub.clone();
        tokio::spawn(async move {
            for i in 0u64.. {
                tokio::time::sleep(Duration::from_millis(tick)).await;
                let _ = hub.publish_now("ticks", Event::new().data(i.to_string()));
            }
        });
    }
    println!("https://localhost:{port}/events (HTTP/2 and HTTP/1.1)");
    let report = run(listener, tls, hub, serve::shutdown_signal()).await;
    println!("shut down: {report:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example over HTTPS with a certificate the test makes, through `curl --http2`: the
    /// SSE stream arrives over HTTP/2 and carries a published tick.
    #[tokio::test]
    async fn an_sse_stream_over_https_h2() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let tls = Tls::from_pem(
            cert.cert.pem().as_bytes(),
            cert.key_pair.serialize_pem().as_bytes(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hub = MemoryHub::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(listener, tls, hub.clone(), async {
            let _ = stopped.await;
        }));
        let curl = tokio::process::Command::new("curl")
            .args([
                "-sk",
                "--http2",
                "-N",
                "-m",
                "5",
                "-w",
                "\nversion %{http_version}\n",
            ])
            .args(["-H", "accept: text/event-stream"])
            .arg(format!("https://localhost:{port}/events"))
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("curl runs");
        tokio::time::sleep(Duration::from_millis(500)).await;
        hub.publish_now("ticks", Event::new().data("tick over h2"))
            .unwrap();
        let out = tokio::time::timeout(Duration::from_secs(10), curl.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("data: tick over h2"), "{out}");
        assert!(out.contains("version 2"), "{out}");
        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
