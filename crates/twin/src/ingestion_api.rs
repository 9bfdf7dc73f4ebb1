//! The ingestion API: what API Gateway is in AWS (`tofu/modules/ingestion_api`). The routes,
//! models and answers are the [`orderflow_api`] router; here they write into the twin's
//! [`Stream`] (the Kinesis integration, `PutRecord`/`PutRecords`) and are served on loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use orderflow_api::{ApiConfig, RecordEntry, RecordResult, RecordSink, SinkError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::{self, Health};
use crate::stream::{BUSY_RETRY_AFTER, Stream, StreamError};

/// The API's routes over `stream`, as API Gateway's integrations write to Kinesis.
pub fn router(config: ApiConfig, stream: Stream) -> axum::Router {
    orderflow_api::router(config, Arc::new(stream))
}

/// Serves `router` on `127.0.0.1:port` (0: a free port) until the token returned is cancelled;
/// the API's health follows the server. Returns the address it listens on.
pub async fn serve(
    router: axum::Router,
    port: u16,
    health: Health,
) -> Result<(SocketAddr, CancellationToken, JoinHandle<()>)> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the API to {address}"))?;
    let address = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    health.up(health::API);
    let task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let serve = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            match serve.await {
                Ok(()) => health.down(health::API, None),
                Err(error) => {
                    tracing::error!(error = %error, "the API server failed");
                    health.down(health::API, Some(&error.to_string()));
                }
            }
        })
    };
    Ok((address, shutdown, task))
}

impl RecordSink for Stream {
    async fn put_records(&self, entries: Vec<RecordEntry>) -> Result<Vec<RecordResult>, SinkError> {
        self.append(entries).await.map_err(|error| match error {
            StreamError::Busy(_) => SinkError::Busy {
                retry_after: BUSY_RETRY_AFTER,
            },
            error => SinkError::Unavailable(error.to_string()),
        })
    }
}
