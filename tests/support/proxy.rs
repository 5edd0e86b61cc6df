//! A TCP proxy on 127.0.0.1 whose connections the test can cut, to sever a client's
//! connection to a server without stopping the server.

use std::net::SocketAddr;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::watch,
};

pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<u64>,
    refusing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A connection whose bytes to the server are held back: the `nth` accepted (from 0), each
/// read from the client forwarded `by` later.
#[derive(Clone, Copy)]
pub struct Delay {
    pub nth: usize,
    pub by: std::time::Duration,
}

impl Proxy {
    /// Forwards every connection to `target`, until the proxy is dropped.
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_delaying(target, None).await
    }

    /// Like [`Proxy::start`], with one connection's upstream bytes delayed.
    pub async fn start_delaying(target: SocketAddr, delay: Option<Delay>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, generation) = watch::channel(0u64);
        let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refused = refusing.clone();
        tokio::spawn(async move {
            for accepted in 0usize.. {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if refused.load(std::sync::atomic::Ordering::Relaxed) {
                    continue; // closed at once
                }
                let held = delay.filter(|d| d.nth == accepted).map(|d| d.by);
                let mut cut = generation.clone();
                if cut.has_changed().is_err() {
                    return; // the proxy is gone
                }
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let forward = async {
                        match held {
                            None => {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                            Some(by) => {
                                let (mut from_client, mut to_client) = inbound.split();
                                let (mut from_server, mut to_server) = outbound.split();
                                let up = async {
                                    let mut buf = vec![0u8; 16 * 1024];
                                    loop {
                                        let n = match from_client.read(&mut buf).await {
                                            Ok(0) | Err(_) => return,
                                            Ok(n) => n,
                                        };
                                        tokio::time::sleep(by).await;
                                        if to_server.write_all(&buf[..n]).await.is_err() {
                                            return;
                                        }
                                    }
                                };
                                let down = tokio::io::copy(&mut from_server, &mut to_client);
                                tokio::select! {
                                    () = up => {}
                                    _ = down => {}
                                }
                            }
                        }
                    };
                    tokio::select! {
                        () = forward => {}
                        _ = cut.changed() => {} // cut (or the proxy dropped): both sockets close
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            refusing,
        }
    }

    /// While `true`, new connections are closed as soon as they are accepted.
    pub fn refuse(&self, refusing: bool) {
        self.refusing
            .store(refusing, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes every connection open through the proxy now (new ones still go through).
    pub fn cut(&self) {
        self.cut.send_modify(|g| *g += 1);
    }
}
