#![cfg(all(feature = "ws", feature = "hub"))]
//! Interop with a WebSocket client from another language that nobody here wrote: Python's
//! `websockets` (`pip install websockets`; `.ci/run` installs it).

mod support;

use hyper::body::Incoming;
use support::*;
use tower::service_fn;
use tower_push::{
    cursor::LastEventId,
    hub::{Hub, MemoryHub},
    negotiate::Negotiate,
    ws::{Inbound, Message},
    Event,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_client_talks_to_the_endpoint() {
    let hub = MemoryHub::new();
    let addr = serve(Negotiate::new(service_fn(
        move |req: http::Request<Incoming>| {
            let hub = hub.clone();
            async move {
                if let Some(inbound) = req.extensions().get::<Inbound>().cloned() {
                    let hub = hub.clone();
                    tokio::spawn(async move {
                        while let Some(Message::Text(text)) = inbound.recv().await {
                            hub.publish_now(
                                "room",
                                Event::new().event("message").unwrap().data(text),
                            )
                            .unwrap();
                        }
                    });
                }
                let from = req
                    .extensions()
                    .get::<LastEventId>()
                    .map(|c| c.as_str().to_owned());
                let from = tower_push::cursor::StartAt::parse(from.as_deref())?;
                Ok::<_, tower_push::Reject>(hub.subscribe("room", from))
            }
        },
    )))
    .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/websockets_client.py"
    );
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("ws://{addr}/events"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the client finished within 60 s")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("websockets interop ok"), "{stdout}");
}
