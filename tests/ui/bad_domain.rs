use cached_redis::redis_cached;

#[redis_cached(domain = "Natal Chart")]
fn natal(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "")]
fn transit(day: u32) -> u32 {
    day
}

fn main() {}
