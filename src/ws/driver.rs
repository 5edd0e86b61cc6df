//! The connection loop of the stream-driven transport: outbound events, inbound messages,
//! heartbeat pings with a pong deadline, and the close handshake.

use super::{
    close_code,
    config::Config,
    handshake::{self, Handshake},
    socket::{close_code_for, close_frame, Message, Stream as WsStream},
};
use crate::{
    error::BoxError,
    event::Event,
    observe::{self, Connection},
    push::{IntoPush, Push},
    reason::CloseReason,
};
use futures_core::Stream;
use futures_util::task::AtomicWaker;
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::upgrade::OnUpgrade;
use std::{
    future::poll_fn,
    pin::{pin, Pin},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll, Wake, Waker},
    time::Duration,
};
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::tungstenite;
use tracing::{Instrument as _, Span};

/// At most this many ready events are written before one flush.
const MAX_BATCH: usize = 64;

/// Why the loop ended.
enum End {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The peer closed, vanished or broke the connection, or missed a deadline: nothing more
    /// to send. The close reason for the connection's report.
    Gone(CloseReason),
}

pub(crate) async fn run<St>(
    on_upgrade: OnUpgrade,
    stream: St,
    inbound: mpsc::Sender<Message>,
    config: Config,
    span: Span,
) where
    St: Stream,
    St::Item: IntoPush,
{
    let Some(mut ws) = super::socket::accept(on_upgrade, &config).await else {
        return;
    };
    let mut connection = Connection::open(span, "websocket");
    let end = drive(&mut ws, stream, inbound, &config, &mut connection).await;
    connection.close_reason(match end {
        End::Gone(reason) => reason,
        End::Close(code, _) => match code {
            close_code::NORMAL => CloseReason::StreamEnded,
            close_code::RESTART => CloseReason::Drain,
            close_code::TOO_BIG => CloseReason::MessageTooBig,
            close_code::INVALID | close_code::PROTOCOL => CloseReason::ProtocolError,
            _ => CloseReason::Error,
        },
    });
    if let End::Close(code, reason) = end {
        // Nothing is sent after Close; wait for the peer's Close, then drop. The whole
        // handshake, our write included, is bounded by the close timeout.
        let handshake = async {
            if ws.close(Some(close_frame(code, reason))).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
        };
        let _ = tokio::time::timeout(config.close_timeout, handshake).await;
    }
}

async fn drive<St>(
    ws: &mut WsStream,
    stream: St,
    inbound: mpsc::Sender<Message>,
    config: &Config,
    connection: &mut Connection,
) -> End
where
    St: Stream,
    St::Item: IntoPush,
{
    let mut stream = pin!(stream);
    let mut batch = Vec::new();
    let mut frames = Vec::new();
    let mut inbound = Some(inbound);
    // Set when a Ping is sent and no frame has arrived since; the timer is only polled (and
    // only reset) while it is set.
    let mut pong_deadline: Option<Instant> = None;
    let deadline = tokio::time::sleep(Duration::ZERO);
    let read_gate = ReadGate::new();
    let mut deadline = pin!(deadline);

    loop {
        tokio::select! {
            frame = poll_fn(|cx| read_gate.poll_read(ws, cx)) => {
                // Any frame proves the peer alive.
                pong_deadline = None;
                match frame {
                    None => return End::Gone(CloseReason::ClientGone),
                    Some(Ok(tungstenite::Message::Text(text))) => {
                        forward(&mut inbound, Message::Text(text.as_str().to_owned())).await;
                    }
                    Some(Ok(tungstenite::Message::Binary(data))) => {
                        forward(&mut inbound, Message::Binary(data)).await;
                    }
                    // The codec queued the Pong (RFC 6455 §5.5.2) or the Close reply: send it.
                    Some(Ok(tungstenite::Message::Ping(_))) => {
                        if ws.flush().await.is_err() {
                            return End::Gone(CloseReason::ClientGone);
                        }
                    }
                    Some(Ok(tungstenite::Message::Close(_))) => {
                        let _ = ws.flush().await;
                        return End::Gone(CloseReason::ClientGone);
                    }
                    Some(Ok(tungstenite::Message::Pong(_) | tungstenite::Message::Frame(_))) => {}
                    Some(Err(error)) => {
                        tracing::debug!(%error, "websocket read failed");
                        return match close_code_for(&error) {
                            Some(code) => End::Close(code.into(), reason_for(code.into())),
                            None => End::Gone(CloseReason::ClientGone),
                        };
                    }
                }
            }
            () = poll_fn(|cx| poll_batch(stream.as_mut(), &mut batch, cx)) => {
                // Items became frames as they were taken, so no item is held across an
                // await. Every ready frame is fed, then one flush.
                let mut end = None;
                for out in batch.drain(..) {
                    match out {
                        Out::Event(event) => {
                            let text = event.to_ws_text();
                            connection.delivered(&event, text.len());
                            frames.push(tungstenite::Message::Text(text));
                        }
                        Out::Ping => {
                            if pong_deadline.is_none() {
                                let at = Instant::now() + config.pong_timeout;
                                pong_deadline = Some(at);
                                deadline.as_mut().reset(at);
                            }
                            frames.push(tungstenite::Message::Ping(bytes::Bytes::new()));
                        }
                        Out::End(code, reason) => {
                            end = Some(End::Close(code, reason));
                            break;
                        }
                    }
                }
                let write = async {
                    for frame in frames.drain(..) {
                        ws.feed(frame).await?;
                    }
                    ws.flush().await
                };
                // A peer that stops reading blocks the write: the pong deadline still
                // holds (and the stall deadline of the socket below).
                let written = tokio::select! {
                    written = write => written,
                    () = &mut deadline, if pong_deadline.is_some() => {
                        tracing::debug!("no pong within the deadline while writing; dropping the websocket");
                        observe::pong_timeout();
                        return End::Gone(CloseReason::PongTimeout);
                    }
                };
                if let Err(error) = written {
                    tracing::debug!(%error, "websocket write failed");
                    return End::Gone(match error {
                        tungstenite::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                            CloseReason::WriteStalled
                        }
                        _ => CloseReason::ClientGone,
                    });
                }
                if let Some(end) = end {
                    return end;
                }
            }
            () = &mut deadline, if pong_deadline.is_some() => {
                tracing::debug!("no pong within the deadline; dropping the websocket");
                observe::pong_timeout();
                return End::Gone(CloseReason::PongTimeout);
            }
        }
    }
}

/// Polls the socket's read side only when the socket woke the task.
///
/// `select!` polls every branch whenever the task wakes, and the codec zero-fills its read
/// buffer on every read attempt, so polling the socket for each outbound event would cost a
/// memset of the buffer per event per connection. The read side gets its own waker, which
/// raises a flag and wakes the task; without the flag the read branch stays pending.
struct ReadGate {
    shared: Arc<ReadWake>,
    waker: Waker,
}

struct ReadWake {
    ready: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl ReadGate {
    fn new() -> Self {
        let shared = Arc::new(ReadWake {
            // The first poll reads: there may be bytes already.
            ready: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(shared.clone());
        Self { shared, waker }
    }

    fn poll_read(
        &self,
        ws: &mut WsStream,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<tungstenite::Message, tungstenite::Error>>> {
        // Register before checking the flag, so a wake in between is not lost.
        self.shared.task.register(cx.waker());
        if !self.shared.ready.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        match ws.poll_next_unpin(&mut Context::from_waker(&self.waker)) {
            Poll::Ready(frame) => {
                // More frames may be buffered already: read again next time.
                self.shared.ready.store(true, Ordering::Release);
                Poll::Ready(frame)
            }
            // The socket wakes `self.waker` when it is readable.
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Takes every item that is ready (up to [`MAX_BATCH`]) with the task's own waker; ready
/// once there is at least one. An ended stream is the batch's last item and is not polled
/// again, as it need not be fused.
fn poll_batch<St>(mut stream: Pin<&mut St>, batch: &mut Vec<Out>, cx: &mut Context<'_>) -> Poll<()>
where
    St: Stream,
    St::Item: IntoPush,
{
    while batch.len() < MAX_BATCH {
        match stream.as_mut().poll_next(cx) {
            Poll::Ready(item) => {
                let out = outbound(item);
                let end = matches!(out, Out::End(..));
                batch.push(out);
                if end {
                    break;
                }
            }
            Poll::Pending => break,
        }
    }
    if batch.is_empty() {
        Poll::Pending
    } else {
        Poll::Ready(())
    }
}

/// What an item of the stream asks the socket to do.
enum Out {
    Event(Event),
    Ping,
    End(u16, &'static str),
}

fn outbound<I: IntoPush>(item: Option<I>) -> Out {
    match item.map(IntoPush::into_push) {
        Some(Ok(Push::Event(event))) => Out::Event(event),
        Some(Ok(Push::Heartbeat)) => Out::Ping,
        Some(Ok(Push::Shutdown)) => Out::End(close_code::RESTART, "server restarting"),
        Some(Err(error)) => {
            let error: BoxError = error.into();
            tracing::debug!(%error, "push stream failed; closing the websocket");
            Out::End(close_code::ERROR, "stream failed")
        }
        None => Out::End(close_code::NORMAL, "stream ended"),
    }
}

/// Hands an inbound message to the application; discards it once nobody listens.
async fn forward(inbound: &mut Option<mpsc::Sender<Message>>, message: Message) {
    if let Some(tx) = inbound {
        if tx.send(message).await.is_err() {
            *inbound = None;
        }
    }
}

fn reason_for(code: u16) -> &'static str {
    match code {
        close_code::TOO_BIG => "message too big",
        close_code::INVALID => "invalid UTF-8",
        close_code::PROTOCOL => "protocol error",
        _ => "",
    }
}

/// An accepted handshake waiting for the inner service's stream.
pub(crate) struct Pending {
    pub(crate) handshake: Handshake,
    pub(crate) on_upgrade: OnUpgrade,
    pub(crate) inbound: mpsc::Sender<Message>,
    pub(crate) config: Config,
    pub(crate) span: Span,
}

impl Pending {
    /// Spawns the connection task and returns the handshake's answer.
    pub(crate) fn spawn<St>(self, stream: St) -> http::Response<()>
    where
        St: Stream + Send + 'static,
        St::Item: IntoPush,
    {
        let res = handshake::response(&self.handshake);
        let span = self.span.clone();
        tokio::spawn(
            run(
                self.on_upgrade,
                stream,
                self.inbound,
                self.config,
                self.span,
            )
            .instrument(span),
        );
        res
    }
}
