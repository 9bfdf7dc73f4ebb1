//! Firehose transformer Lambda for the `orders` table.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderflow_transformer::run(orderflow_domain::Table::Orders).await
}
