//! Lambda entry point of the consumer: configuration and client at start-up, then the runtime loop.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use orderflow_consumer::{
    DEADLINE_MARGIN, ORDERS_TABLE_ENV, OrderRecordsEvent, WritePolicy, handle_batch,
};
use tokio::time::Instant;

/// mimalloc: the handlers allocate many small strings and maps per record, where it is markedly
/// faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    orderflow_domain::init_lambda_logs();
    let table = match std::env::var(ORDERS_TABLE_ENV) {
        Ok(table) if !table.is_empty() => table,
        _ => {
            let message = format!(
                "{ORDERS_TABLE_ENV} is not set: the consumer needs the name of the DynamoDB orders table"
            );
            report_init_error(&message).await;
            return Err(message.into());
        }
    };
    let config = aws_config::load_from_env().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        orderflow_consumer::client_config(aws_sdk_dynamodb::config::Builder::from(&config)).build(),
    );
    let policy = WritePolicy::default();
    lambda_runtime::run(service_fn(|event: LambdaEvent<OrderRecordsEvent>| {
        let (client, table, policy) = (&client, &table, &policy);
        async move {
            let deadline = instant_of(event.context.deadline) - DEADLINE_MARGIN;
            let (response, _summary) =
                handle_batch(&event.payload.0, client, table, policy, deadline).await;
            Ok::<_, Error>(response)
        }
    }))
    .await
}

/// The monotonic instant of a deadline given in milliseconds since the Unix epoch.
fn instant_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// Tells Lambda that initialisation failed (`POST /runtime/init/error`), so the error shows as an
/// init error with its message instead of a bare process exit. Best effort: if the Runtime API is
/// not reachable (e.g. run by hand), the message is still printed and the process exits non-zero.
async fn report_init_error(message: &str) {
    tracing::error!(error = message, "initialisation failed");
    let body = serde_json::json!({ "errorType": "Runtime.InitError", "errorMessage": message });
    let request = lambda_runtime_api_client::build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .body(lambda_runtime_api_client::body::Body::from(
            body.to_string(),
        ));
    let Ok(client) = lambda_runtime_api_client::Client::builder().build() else {
        return;
    };
    if let Ok(request) = request
        && let Err(error) = client.call(request).await
    {
        tracing::error!(error = %error, "could not report the init error to the Runtime API");
    }
}
