//! Keys are a stored format: a release that changed them would turn every
//! deployed cache cold at once. These were computed by an earlier release.

mod common;

use std::collections::BTreeMap;

use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;

#[redis_cached(domain = "natal", ttl = 3600, runtime = rt, skip(rt))]
async fn natal_chart(req: &NatalRequest, rt: &Runtime) -> Chart {
    compute_chart(req)
}

#[redis_cached(domain = "batch", segments(size), hash_len = 12, version = "v2", runtime = rt, skip(rt))]
fn batch<T: serde::Serialize>(size: u32, items: BTreeMap<String, T>, rt: &Runtime) -> u32 {
    size + items.len() as u32
}

#[tokio::test]
async fn keys_are_stable_across_releases() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    natal_chart(&NatalRequest::new("1990-01-01T12:00:00Z"), &rt).await;
    let items: BTreeMap<String, f64> = [("a".to_owned(), 1.5)].into();
    batch(500, items, &rt);
    assert_eq!(
        wait_for_keys(&server, "meridian:*", 2),
        [
            "meridian:v1:natal:73377b627cd7d476",
            "meridian:v2:batch:500:a9dee2e4209d"
        ]
    );
}
