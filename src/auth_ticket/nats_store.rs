use super::{store::RedeemFuture, TicketStore};
use crate::hub::{NatsHub, NatsHubError};
use async_nats::{
    header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
    jetstream::{context::PublishErrorKind, stream},
    HeaderMap,
};
use bytes::Bytes;
use std::{fmt, time::Duration};

/// How long the store keeps a redeemed ticket's nonce: longer than any ticket lives.
pub const NATS_TICKET_RETENTION: Duration = Duration::from_secs(3600);

/// A [`TicketStore`] on NATS JetStream: a ticket is redeemed once across every instance
/// sharing the NATS, and nonces are forgotten after [`NATS_TICKET_RETENTION`] (tickets expire
/// long before).
///
/// It is JetStream's key-value pattern, on a stream of its own (`<hub's stream>_TICKETS`,
/// subjects `<prefix>-tickets.<nonce>`, one message per subject, `max_age` the retention): a
/// redemption publishes the nonce's subject with `Nats-Expected-Last-Subject-Sequence: 0`,
/// which JetStream accepts only when the subject holds nothing yet, atomically across
/// instances. (The same thing a key-value bucket's `create` does, written out so that it runs
/// on every JetStream server, 2.9 included.)
///
/// A redemption waits at most the hub's [timeout](crate::hub::NatsHubBuilder::timeout)
/// (default 1 s); an unreachable NATS refuses the ticket with `503` and `Retry-After`.
#[derive(Clone)]
pub struct NatsTicketStore {
    hub: NatsHub,
    subject: String,
}

impl fmt::Debug for NatsTicketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsTicketStore")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl NatsTicketStore {
    /// A store on `hub`'s NATS connection, creating its stream if it is missing.
    ///
    /// # Errors
    ///
    /// When NATS cannot be reached or refuses the stream.
    pub async fn new(hub: &NatsHub) -> Result<Self, NatsHubError> {
        let subject = format!("{}-tickets", hub.prefix());
        let config = stream::Config {
            name: Self::stream_name(hub),
            subjects: vec![format!("{subject}.*")],
            max_messages_per_subject: 1,
            max_age: NATS_TICKET_RETENTION,
            ..Default::default()
        };
        hub.op(hub.jetstream().get_or_create_stream(config)).await?;
        Ok(Self {
            hub: hub.clone(),
            subject,
        })
    }

    /// The name of the store's stream for `hub`.
    pub fn stream_name(hub: &NatsHub) -> String {
        format!("{}_TICKETS", hub.stream_name())
    }
}

impl TicketStore for NatsTicketStore {
    fn redeem(&self, nonce: [u8; 16], _expires_at: u64) -> RedeemFuture {
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let subject = format!("{}.{nonce}", self.subject);
        let hub = self.hub.clone();
        Box::pin(async move {
            let mut headers = HeaderMap::new();
            headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
            let sent = hub
                .op(hub
                    .jetstream()
                    .publish_with_headers(subject, headers, Bytes::new()))
                .await?;
            match hub.op(std::future::IntoFuture::into_future(sent)).await {
                Ok(_) => Ok(true),
                Err(error) => {
                    let replayed = std::error::Error::source(&error)
                        .and_then(|e| {
                            e.downcast_ref::<async_nats::jetstream::context::PublishError>()
                        })
                        .is_some_and(|e| e.kind() == PublishErrorKind::WrongLastSequence);
                    if replayed {
                        hub.record(None);
                        Ok(false)
                    } else {
                        Err(error.into())
                    }
                }
            }
        })
    }
}
