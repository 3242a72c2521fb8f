use cached_redis::redis_cached;

#[redis_cached(domain = "natal", ttl = "15x")]
fn natal(day: u32) -> u32 {
    day
}

fn main() {
    let _ = natal(1);
    let _ = forever(1);
}

#[redis_cached(domain = "natal", ttl = "999999999999999999d")]
fn forever(day: u32) -> u32 {
    day
}
