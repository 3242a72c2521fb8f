use cached_redis::redis_cached;

#[redis_cached(domain = "natal", ttl = 0)]
fn natal(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", ttl = "0s")]
fn transit(day: u32) -> u32 {
    day
}

fn main() {
    let _ = transit(1);
}
