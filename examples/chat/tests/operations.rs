//! The chat's operational contract: API body limits, `/metrics`, and SIGTERM in a real
//! process.

use super::*;
use tokio::io::AsyncWriteExt as _;

/// The API's bodies are bounded in size (413) and in time: a body that stops half-way is
/// answered after the body timeout instead of holding the connection.
#[tokio::test]
async fn api_bodies_are_limited_in_size_and_time() {
    let server = Server::start(memory_app, false).await;
    let addr = server.addr;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let big = format!(r#"{{"user":"alice","text":"{}"}}"#, "x".repeat(MAX_BODY));
    assert_eq!(
        request(&client, post(addr, "/api/messages", &big)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"POST /api/messages HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"user\":",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(API_TIMEOUT + Duration::from_secs(5), async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf)
                .await
                .unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the stalled body was answered");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        started.elapsed() >= API_TIMEOUT - Duration::from_millis(500),
        "answered after {:?}",
        started.elapsed()
    );
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "408 for the stalled body: {answer}"
    );
}

/// `GET /metrics` after real traffic: Prometheus text with the documented names.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn metrics_are_scraped_after_real_traffic() {
    let server = Server::start(memory_app, false).await;
    let addr = server.addr;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut sse = open_sse(addr, &ticket(&client, addr).await)
        .await
        .into_body();
    assert_eq!(
        request(
            &client,
            post(
                addr,
                "/api/messages",
                r#"{"user":"alice","text":"scrape me"}"#
            )
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("scrape me") {
        let frame = tokio::time::timeout(Duration::from_secs(10), sse.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.extend_from_slice(&frame.into_data().unwrap());
    }
    let refused = http::Request::get(format!("http://{addr}/api/events"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(request(&client, refused).await.0, StatusCode::UNAUTHORIZED);
    let scrape = http::Request::get(format!("http://{addr}/metrics"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = request(&client, scrape).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    for name in [
        "tower_push_connections{transport=\"sse\"} ",
        "tower_push_connections_opened_total{transport=\"sse\"}",
        "tower_push_events_delivered_total{transport=\"sse\"}",
        "tower_push_bytes_written_total{transport=\"sse\"}",
        "tower_push_events_published_total{backbone=\"memory\"}",
        "tower_push_refusals_total{status=\"401\",cause=\"ticket\"}",
        "# HELP tower_push_connections Open push connections.",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

/// The child process of `sigterm_drains_every_transport_and_exits_0`: serves the chat
/// exactly as `main` does (the same `run`, signal handling included) until SIGTERM. Run
/// by that test only, hence ignored.
#[tokio::test]
#[ignore = "the child process of sigterm_drains_every_transport_and_exits_0"]
async fn serve_as_main_until_sigterm() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    run(listener).await;
}

/// The chat as `main` runs it, in a child process (optionally with its open-file limit
/// lowered to `open_files`), and where it listens.
pub(super) async fn chat_process(
    open_files: Option<u32>,
    envs: &[(&str, &str)],
) -> (tokio::process::Child, SocketAddr) {
    let exe = std::env::current_exe().unwrap();
    let limit = open_files.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    // `ulimit -n` only lowers the soft limit of the shell, which the chat inherits.
    let script = if open_files.is_some() {
        format!("ulimit -n {limit} && exec \"$0\" \"$@\"")
    } else {
        "exec \"$0\" \"$@\"".to_owned()
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .args([
            "--exact",
            "tests::operations::serve_as_main_until_sigterm",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env_remove("REDIS_URL")
        .env_remove("NATS_URL")
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            // libtest prints the test's name on the same line.
            if let Some((_, rest)) = line.split_once("chat on ") {
                let rest = rest.split_once("://").unwrap().1;
                return rest.split(' ').next().unwrap().parse().unwrap();
            }
        }
        panic!("the chat never said where it listens");
    })
    .await
    .unwrap();
    // Keep reading its output, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    (child, addr)
}

/// 300 connections that never send a request head (or only the HTTP/2 preface) against the
/// chat with 256 open files: the server closes each 10 s (its first-request deadline) after
/// accepting it, so a normal client, queued behind them, is served within the deadline + 1 s
/// rather than locked out for as long as the silent sockets care to stay.
async fn silent_sockets_do_not_lock_clients_out(first_bytes: &'static [u8]) {
    const DEADLINE: Duration = Duration::from_secs(10);
    let (_child, addr) = chat_process(Some(256), &[]).await;
    let started = tokio::time::Instant::now();
    let mut silent = Vec::new();
    for _ in 0..300 {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(first_bytes).await.unwrap();
        silent.push(tcp);
    }
    // A normal client, behind them.
    let mut normal = tokio::net::TcpStream::connect(addr).await.unwrap();
    normal
        .write_all(b"GET /tower-push.js HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE + Duration::from_secs(1), async {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 4096];
        while !answer.starts_with(b"HTTP/1.1 200") {
            let n = normal.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not served within the deadline + 1 s ({:?}): {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&answer)
        )
    });
    // Every silent socket is closed by the server: those queued behind the first ones are
    // accepted when those close, and closed a deadline later.
    let closed = tokio::time::timeout(3 * DEADLINE, async {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 1024];
        for tcp in &mut silent {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // an HTTP/2 server's SETTINGS or GOAWAY
                }
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "silent sockets still open after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= DEADLINE - Duration::from_millis(500),
        "closed before the deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_are_closed_by_the_first_request_deadline() {
    silent_sockets_do_not_lock_clients_out(b"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_http2_preface_is_closed_by_the_first_request_deadline() {
    silent_sockets_do_not_lock_clients_out(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
}

/// SIGTERM (what orchestrators send) drains every transport with its goodbye, in a real
/// process running the chat's `run`: the SSE body ends cleanly, the WebSocket gets 1012, a
/// held poll is answered with its cursor, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_every_transport_and_exits_0() {
    let (mut child, addr) = chat_process(None, &[]).await;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    let mut sse = open_sse(addr, &ticket(&client, addr).await)
        .await
        .into_body();
    tokio::time::timeout(Duration::from_secs(10), sse.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap(); // the priming event
    let mut ws = open_ws(addr, &ticket(&client, addr).await).await;
    let get = |path: String| {
        http::Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let cursor = poll_cursor(&client, addr).await;
    let held = get(format!(
        "/api/events?ticket={}&lastEventId={cursor}",
        ticket(&client, addr).await
    ));
    let poll = tokio::spawn({
        let client = client.clone();
        async move { request(&client, held).await }
    });
    // Let the poll reach the server and be held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the poll is held");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    // SSE: the body ends cleanly (the final chunk), not cut.
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = sse.frame().await {
            frame.expect("the SSE body ends cleanly, not with an error");
        }
    })
    .await
    .expect("the SSE body ended");
    // WebSocket: Close 1012 (service restart).
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
                    break u16::from(frame.code)
                }
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 1012);
    // Long-poll: answered at once with its cursor.
    let (status, _, body) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["cursor"], cursor.as_str());

    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the process exits after the drain")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}

/// Messages to new rooms past the hub's topic limit get `503` with `Retry-After` (the hub's
/// typed refusal), and the rooms that exist keep taking messages.
#[tokio::test]
async fn messages_to_new_rooms_past_the_topic_limit_get_503() {
    let server = Server::start(
        |origins| {
            app(
                MemoryHub::builder().max_topics(3).build(),
                tickets(),
                MemoryTicketStore::new(),
                origins,
                &Drain::new(),
            )
        },
        false,
    )
    .await;
    let addr = server.addr;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let say = |room: &str| {
        post(
            addr,
            "/api/messages",
            &serde_json::json!({ "user": "alice", "room": room, "text": "hi" }).to_string(),
        )
    };
    for room in ["r1", "r2", "r3"] {
        assert_eq!(
            request(&client, say(room)).await.0,
            StatusCode::ACCEPTED,
            "{room}"
        );
    }
    let (status, headers, body) = request(&client, say("r4")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    assert!(
        String::from_utf8_lossy(&body).contains("3 topics"),
        "{body:?}"
    );
    assert_eq!(request(&client, say("r1")).await.0, StatusCode::ACCEPTED);
}
