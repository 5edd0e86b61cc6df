//! A TCP proxy on 127.0.0.1 whose connections the test can cut, to sever a client's
//! connection to a server without stopping the server.

use std::net::SocketAddr;
use tokio::{net::TcpListener, sync::watch};

pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<u64>,
}

impl Proxy {
    /// Forwards every connection to `target`, until the proxy is dropped.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, generation) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut cut = generation.clone();
                if cut.has_changed().is_err() {
                    return; // the proxy is gone
                }
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {} // cut (or the proxy dropped): both sockets close
                    }
                });
            }
        });
        Self { addr, cut }
    }

    /// Closes every connection open through the proxy now (new ones still go through).
    pub fn cut(&self) {
        self.cut.send_modify(|g| *g += 1);
    }
}
