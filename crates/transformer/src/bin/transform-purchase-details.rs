//! Firehose transformer Lambda for the `purchase_details` table.

/// mimalloc: the handlers allocate many small strings and maps per record, where it is markedly
/// faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderflow_transformer::run(orderflow_domain::Table::PurchaseDetails).await
}
