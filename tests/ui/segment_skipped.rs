use cached_redis::redis_cached;

#[redis_cached(domain = "batch", skip(size), segments(size))]
fn plan(size: u32, ids: Vec<u32>) -> u32 {
    size + ids.len() as u32
}

fn main() {}
