//! Connecting: the client (its connection events feeding the live task), the stream, the live
//! subscription and the sweeper.

use super::{
    error::{within, NatsHubError},
    live,
    shared::{ensure_stream, stream_config, Inner, NatsHub, NatsHubBuilder, LIVE},
    wire,
};
use crate::hub::backbone;
use async_nats::jetstream;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

impl NatsHubBuilder {
    /// Connects and creates the stream if it is missing (an existing stream of that name is
    /// used as it is).
    ///
    /// # Errors
    ///
    /// When NATS cannot be reached, has no JetStream, or refuses the stream.
    pub async fn connect(self) -> Result<NatsHub, NatsHubError> {
        // The client's connection events reach the live task (reconnects: read what was
        // missed).
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .event_callback(move |event| {
                let _ = events_tx.send(event);
                std::future::ready(())
            });
        let client = within(
            self.timeout,
            async_nats::connect_with_options(self.url.as_str(), options),
        )
        .await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(self.timeout);
        let stream_name = self.stream.unwrap_or_else(|| {
            let name: String = self
                .prefix
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("TOWER_PUSH_{name}")
        });
        let config = stream_config(&stream_name, &self.prefix, self.max_per_topic, self.max_age);
        let stream = ensure_stream(&js, config, self.timeout).await?;
        let epoch: Arc<str> =
            wire::epoch(stream.cached_info().created.unix_timestamp_nanos()).into();
        let messages = within(
            self.timeout,
            client.subscribe(format!("{LIVE}.{}.>", self.prefix)),
        )
        .await?;
        let (syncs, sync_queue) = tokio::sync::mpsc::unbounded_channel();
        let hub = NatsHub {
            inner: Arc::new(Inner {
                client,
                js,
                prefix: self.prefix,
                stream_name,
                max_per_topic: self.max_per_topic,
                max_age: self.max_age,
                buffer: self.buffer,
                block: self.block,
                timeout: self.timeout,
                stream: Mutex::new((stream, epoch)),
                last: Mutex::new(HashMap::new()),
                health: backbone::Health::default(),
                readers: Mutex::new(HashMap::new()),
                released: Mutex::new(Vec::new()),
                publishing: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
                checked: tokio::sync::Mutex::new(std::time::Instant::now()),
                syncs,
            }),
        };
        // The tasks hold the hub weakly: they end with it.
        tokio::spawn(live::run_live(Arc::downgrade(&hub.inner), messages, events));
        tokio::spawn(live::sweep(Arc::downgrade(&hub.inner)));
        let weak = Arc::downgrade(&hub.inner);
        backbone::spawn_workers(move || live::upgrade(&weak), sync_queue);
        Ok(hub)
    }
}
