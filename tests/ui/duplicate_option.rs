use cached_redis::redis_cached;

#[redis_cached(domain = "natal", ttl = 60, ttl = 120)]
fn natal(day: u32) -> u32 {
    day
}

fn main() {}
