//! Connecting: the command connection, the Pub/Sub shards' tasks and the sweeper.

use super::{
    error::{within, RedisHubError},
    live,
    scripts::{PUBLISH, START},
    shared::{Inner, RedisHub, RedisHubBuilder},
};
use crate::hub::backbone;
use redis::{Client, Script};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::mpsc;

impl RedisHubBuilder {
    /// Connects.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or Redis cannot be reached.
    pub async fn connect(self) -> Result<RedisHub, RedisHubError> {
        let client = Client::open(self.url.as_str())?;
        // Fail fast: each attempt is bounded by the timeout, and a broken connection is
        // re-established in the background (a few quick retries), not while callers wait.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            // Callers fail within the hub's timeout anyway (`RedisHub::op`); a late answer
            // under load must not make the manager drop a healthy connection and open
            // another (the instance's connection count would then grow while both live).
            .set_response_timeout(Some(self.timeout.max(Duration::from_secs(5))))
            .set_number_of_retries(2)
            .set_max_delay(self.timeout);
        let conn = within(
            self.timeout,
            client.get_connection_manager_with_config(config),
        )
        .await?;
        let (syncs, sync_queue) = mpsc::unbounded_channel();
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..self.pubsub).map(|_| mpsc::unbounded_channel()).unzip();
        let hub = RedisHub {
            inner: Arc::new(Inner {
                client,
                conn,
                prefix: self.prefix,
                maxlen: self.maxlen,
                buffer: self.buffer,
                block: self.block,
                idle: self.idle,
                timeout: self.timeout,
                health: backbone::Health::default(),
                readers: Mutex::new(HashMap::new()),
                released: Mutex::new(Vec::new()),
                shards: senders,
                syncs,
                start: Script::new(START),
                publish: Script::new(PUBLISH),
            }),
        };
        // The tasks hold the hub weakly: they end with it.
        for (shard, commands) in receivers.into_iter().enumerate() {
            tokio::spawn(live::run_shard(Arc::downgrade(&hub.inner), shard, commands));
        }
        tokio::spawn(live::sweep(Arc::downgrade(&hub.inner)));
        let weak = Arc::downgrade(&hub.inner);
        backbone::spawn_workers(move || live::upgrade(&weak), sync_queue);
        Ok(hub)
    }
}
