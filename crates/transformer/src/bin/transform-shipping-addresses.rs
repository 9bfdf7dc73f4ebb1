//! Firehose transformer Lambda for the `shipping_addresses` table.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderflow_transformer::run(orderflow_domain::Table::ShippingAddresses).await
}
