//! A WebSocket echo server on the raw `WebSocketUpgrade` API, used to run the Autobahn
//! conformance cases against tower-push.
//!
//! Run with `cargo run --example echo` (listens on 127.0.0.1:9002; `PORT` changes it), then
//! `kosoku 127.0.0.1:9002 -x '12.*' -x '13.*'` (`pip install kosoku==0.1.0`).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use std::convert::Infallible;
use tower::service_fn;
use tower_push::ws::{WebSocketUpgrade, WsLayer};

/// Echoes every message back with its type; refusals for anything that is not a handshake.
async fn echo(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Autobahn's cases send messages up to 16 MiB.
    let layer = WsLayer::new().max_message_size(16 * 1024 * 1024);
    let upgrade = match WebSocketUpgrade::from_request(&mut req, &layer) {
        Ok(upgrade) => upgrade,
        Err(refusal) => return Ok(refusal.into_http_response().map(Full::new)),
    };
    Ok(upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if socket.send(message).await.is_err() {
                break;
            }
        }
    }))
}

async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().enable_connect_protocol();
            let svc = TowerToHyperService::new(service_fn(echo));
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9002);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("echo on ws://{}", listener.local_addr().unwrap());
    serve(listener).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    #[tokio::test]
    async fn echoes_text_and_binary() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        ws.send(Message::Text("héllo".into())).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text("héllo".into())
        );
        ws.send(Message::Binary(Bytes::from_static(&[0, 255])))
            .await
            .unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Binary(Bytes::from_static(&[0, 255]))
        );
    }

    /// Autobahn's conformance cases, run by `kosoku` (`pip install kosoku==0.1.0`; `.ci/run`
    /// installs it). Every case except permessage-deflate (12.*, 13.*: not supported) must
    /// pass; Autobahn's NON-STRICT and INFORMATIONAL verdicts count as passes, as in
    /// Autobahn's own summary.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn autobahn_cases_pass() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        let out = std::env::temp_dir().join(format!("tower-push-autobahn-{}", std::process::id()));
        let run = tokio::process::Command::new("kosoku")
            .arg(addr.to_string())
            .args(["-x", "12.*", "-x", "13.*", "-p", "2", "-o"])
            .arg(&out)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(std::time::Duration::from_secs(600), run)
            .await
            .expect("kosoku finished within 10 minutes")
            .expect("kosoku is installed: pip install kosoku==0.1.0");
        let stdout = String::from_utf8_lossy(&output.stdout);
        println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "kosoku failed");

        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
        let cases: Vec<(String, String)> = index
            .as_object()
            .unwrap()
            .values()
            .flat_map(|cases| cases.as_object().unwrap().iter())
            .map(|(id, r)| {
                (
                    id.clone(),
                    format!("{}/{}", r["behavior"], r["behaviorClose"]),
                )
            })
            .collect();
        assert!(
            cases.len() >= 300,
            "the whole non-compression suite ran ({})",
            cases.len()
        );
        let failed: Vec<_> = cases
            .iter()
            .filter(|(_, verdict)| {
                !verdict
                    .split('/')
                    .all(|v| matches!(v, "\"OK\"" | "\"NON-STRICT\"" | "\"INFORMATIONAL\""))
            })
            .collect();
        assert!(failed.is_empty(), "failed cases: {failed:?}");
        let _ = std::fs::remove_dir_all(&out);
    }
}
