//! End to end on the embedded bus: see `common::demo_end_to_end`.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pipeline_end_to_end_embedded() {
    common::demo_end_to_end(None).await;
}
