use cached_redis::redis_cached;

#[redis_cached(domain = "natal", ttl = 1.5)]
fn natal(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", ttl = 99999999999999999999999)]
fn transit(day: u32) -> u32 {
    day
}

fn main() {}
