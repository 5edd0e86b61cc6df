use super::{store::RedeemFuture, TicketStore};
use crate::hub::RedisHub;
use redis::aio::ConnectionManager;
use std::fmt;

/// A [`TicketStore`] in Redis: a ticket is redeemed once across every instance sharing the
/// Redis (`SET key 1 NX EXAT <expiry>`: atomic, and Redis forgets it when the ticket would
/// have expired anyway). Keys: `<prefix>:ticket:<nonce in hex>`.
///
/// A redemption waits at most the hub's [timeout](crate::hub::RedisHubBuilder::timeout)
/// (default 1 s); an unreachable Redis refuses the ticket with `503` and `Retry-After`.
#[derive(Clone)]
pub struct RedisTicketStore {
    hub: RedisHub,
    conn: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for RedisTicketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTicketStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisTicketStore {
    /// A store on `hub`'s Redis connection, with keys under the hub's prefix.
    pub fn new(hub: &RedisHub) -> Self {
        Self {
            hub: hub.clone(),
            conn: hub.connection(),
            prefix: hub.prefix().to_owned(),
        }
    }
}

impl TicketStore for RedisTicketStore {
    fn redeem(&self, nonce: [u8; 16], expires_at: u64) -> RedeemFuture {
        let mut conn = self.conn.clone();
        let key = format!(
            "{}:ticket:{}",
            self.prefix,
            nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let hub = self.hub.clone();
        Box::pin(async move {
            let set: Option<String> = hub
                .op(redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("EXAT")
                    .arg(expires_at.max(1))
                    .query_async(&mut conn))
                .await?;
            Ok(set.is_some())
        })
    }
}
